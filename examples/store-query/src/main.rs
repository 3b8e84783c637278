//! Open a store by URL, write a batch with a checkpoint, query it page by page:
//!
//! ```text
//! cargo run -p example-store-query                       # sqlite::memory:
//! cargo run -p example-store-query -- sqlite:example.db  # or postgres://…
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::ops::Bound;
use std::process::ExitCode;

use healthanalyzer_model::jiff::Timestamp;
use healthanalyzer_model::{DateTime, Identifier, Measurement, Provenance, Value, parse_decimal};
use healthanalyzer_store::{Checkpoint, Filter, Order, Query};

fn reading(patient: &str, kind: &str, value: &str, unit: &str, day: u8) -> Measurement {
    Measurement::new(
        Provenance::new("example", format!("{patient}-{kind}-{day}")),
        Identifier::new("urn:example:patient", patient),
        kind,
        Value::quantity(parse_decimal(value).unwrap_or_default(), unit),
        DateTime::parse(&format!("2024-03-{day:02}T08:00:00+01:00")).unwrap_or_else(|_| {
            DateTime::parse("2024-03-01T08:00:00+01:00").expect("a valid constant")
        }),
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sqlite::memory:".into());
    match run(&url).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let store = healthanalyzer_pipeline::open_store(url).await?;
    let mut batch = Vec::new();
    for day in 1..=5 {
        batch.push(reading(
            "anna",
            "body-weight",
            &format!("80.{day}"),
            "kg",
            day,
        ));
        batch.push(reading("anna", "heart-rate", "64", "/min", day));
        batch.push(reading("bo", "body-weight", "71", "kg", day));
    }
    // The batch and the source's cursor, in one transaction; writing it again changes nothing.
    let summary = store
        .write(&batch, Some(&Checkpoint::new("example", "after-day-5")))
        .await?;
    println!("first write: {} new", summary.inserted);
    let again = store.write(&batch, None).await?;
    println!(
        "second write: {} new, {} unchanged",
        again.inserted, again.unchanged
    );

    // Anna's weights from 2 March on, newest first, two per page.
    let from: Timestamp = "2024-03-02T00:00:00+01:00".parse()?;
    let filter = Filter::subject(Identifier::new("urn:example:patient", "anna"))
        .kinds(["body-weight"])
        .between(Bound::Included(from), Bound::Unbounded);
    println!(
        "Anna's weights since 2 March: {}",
        store.count(&filter).await?
    );
    let mut query = Query::new(filter, 2).order(Order::Descending);
    let mut page_no = 1;
    loop {
        let page = store.query(&query).await?;
        for m in &page.items {
            if let Value::Quantity(o) = &m.value {
                println!(
                    "  page {page_no}: {} {} {}",
                    m.effective.start(),
                    o.quantity.value,
                    o.quantity.unit
                );
            }
        }
        match page.next {
            Some(token) => query.page = Some(token),
            None => break,
        }
        page_no += 1;
    }
    let cp = store.checkpoint("example").await?;
    println!(
        "saved cursor of source example: {}",
        cp.map(|c| c.cursor).unwrap_or_default()
    );
    Ok(())
}
