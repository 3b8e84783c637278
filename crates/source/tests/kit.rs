//! The test kit passes a correct source and fails each broken one, for the rule it breaks.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use healthanalyzer_model::{DateTime, Identifier, Measurement, Provenance, Value, parse_decimal};
use healthanalyzer_source::{Batch, Cursor, Error, Source, StaticSource, testkit};

fn readings(n: usize) -> Vec<Measurement> {
    (0..n)
        .map(|i| {
            Measurement::new(
                Provenance::new("kit", format!("r{i}")),
                Identifier::local("p1"),
                "heart-rate",
                Value::quantity(
                    parse_decimal(&(60 + i % 40).to_string()).expect("n"),
                    "/min",
                ),
                DateTime::parse("2024-05-01T07:31:00+02:00").expect("time"),
            )
        })
        .collect()
}

/// How a broken source breaks the contract.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Flaw {
    /// Resuming skips the first reading after the cursor.
    Loses,
    /// Resuming repeats the last reading before the cursor.
    Repeats,
    /// Ids depend on the instance.
    UnstableIds,
    /// After exhaustion it starts over.
    Revives,
    /// Any cursor it does not understand means "start".
    AcceptsAnyCursor,
    /// Progress is kept inside, and a dropped pull loses a reading.
    HiddenState,
}

#[derive(Debug)]
struct Broken {
    flaw: Flaw,
    items: Vec<Measurement>,
    salt: u64,
    in_flight: AtomicBool,
}

static INSTANCES: AtomicU64 = AtomicU64::new(0);

impl Broken {
    fn new(flaw: Flaw) -> Self {
        Broken {
            flaw,
            items: readings(23),
            salt: INSTANCES.fetch_add(1, Ordering::Relaxed),
            in_flight: AtomicBool::new(false),
        }
    }
}

/// Yields once, so a pull can be dropped half-way.
struct YieldOnce(bool);
impl Future for YieldOnce {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            std::task::Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
}

#[async_trait]
impl Source for Broken {
    fn id(&self) -> &str {
        "broken"
    }
    fn kind(&self) -> &str {
        "test"
    }
    async fn pull(&self, cursor: &Cursor, limit: usize) -> Result<Batch, Error> {
        let mut from: usize = if cursor.is_start() {
            0
        } else {
            match cursor.as_str().parse() {
                Ok(n) => n,
                Err(_) if self.flaw == Flaw::AcceptsAnyCursor => 0,
                Err(_) => {
                    return Err(Error::BadCursor {
                        reason: "not a position".into(),
                    });
                }
            }
        };
        if self.flaw == Flaw::HiddenState && self.in_flight.swap(true, Ordering::SeqCst) {
            from += 1; // a dropped pull left its mark
        }
        YieldOnce(false).await;
        self.in_flight.store(false, Ordering::SeqCst);
        if !cursor.is_start() {
            match self.flaw {
                Flaw::Loses => from += 1,
                Flaw::Repeats => from = from.saturating_sub(1),
                _ => {}
            }
        }
        let n = self.items.len();
        if from >= n && self.flaw == Flaw::Revives {
            from = 0;
        }
        let from = from.min(n);
        let to = (from + limit).min(n);
        let mut measurements = self.items[from..to].to_vec();
        if self.flaw == Flaw::UnstableIds {
            for m in &mut measurements {
                let record = format!("{}-{}", m.provenance.record_id, self.salt);
                m.provenance = Provenance::new("broken", record);
                m.id = m.provenance.measurement_id();
            }
        }
        Ok(Batch {
            measurements,
            cursor: Cursor::new(to.to_string()),
            exhausted: to == n && (self.flaw != Flaw::Revives || from != 0),
            ..Batch::default()
        })
    }
}

/// Runs a check that must panic; returns its message.
async fn fails<F: Future<Output = ()> + Send + 'static>(check: F) -> String {
    match tokio::spawn(check).await {
        Ok(()) => panic!("the kit passed a broken source"),
        Err(e) => {
            let payload = e.into_panic();
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        }
    }
}

#[tokio::test]
async fn a_static_source_keeps_the_contract() {
    let a = StaticSource::new("kit", readings(23));
    let b = StaticSource::new("kit", readings(23));
    testkit::run_all(&a, &b, 4).await;
    // And an empty one.
    let empty = StaticSource::new("kit", Vec::new());
    testkit::run_all(&empty, &StaticSource::new("kit", Vec::new()), 4).await;
}

#[tokio::test]
async fn each_broken_source_fails_for_the_rule_it_breaks() {
    let msg = fails(async {
        testkit::check_resume_from_every_cursor(&Broken::new(Flaw::Loses), 4).await;
    })
    .await;
    assert!(msg.contains("loses or repeats"), "{msg}");
    let msg = fails(async {
        testkit::check_resume_from_every_cursor(&Broken::new(Flaw::Repeats), 4).await;
    })
    .await;
    assert!(msg.contains("came twice"), "{msg}");
    let msg = fails(async {
        testkit::check_ids_are_stable(
            &Broken::new(Flaw::UnstableIds),
            &Broken::new(Flaw::UnstableIds),
            4,
        )
        .await;
    })
    .await;
    assert!(msg.contains("different measurement ids"), "{msg}");
    let msg = fails(async {
        testkit::check_exhausted_stays_exhausted(&Broken::new(Flaw::Revives), 4).await;
    })
    .await;
    assert!(msg.contains("after exhaustion"), "{msg}");
    let msg = fails(async {
        testkit::check_bad_cursor_is_refused(&Broken::new(Flaw::AcceptsAnyCursor)).await;
    })
    .await;
    assert!(msg.contains("was accepted"), "{msg}");
    let msg = fails(async {
        testkit::check_cancelled_pull_changes_nothing(&Broken::new(Flaw::HiddenState), 4).await;
    })
    .await;
    assert!(msg.contains("dropped half-way"), "{msg}");
}

#[tokio::test]
async fn a_source_that_never_ends_is_caught() {
    #[derive(Debug)]
    struct Stuck;
    #[async_trait]
    impl Source for Stuck {
        fn id(&self) -> &str {
            "stuck"
        }
        fn kind(&self) -> &str {
            "test"
        }
        async fn pull(&self, cursor: &Cursor, _: usize) -> Result<Batch, Error> {
            Ok(Batch {
                cursor: cursor.clone(),
                ..Batch::default()
            })
        }
    }
    let msg = fails(async {
        testkit::pull_all(&Stuck, &Cursor::start(), 4).await;
    })
    .await;
    assert!(msg.contains("loop forever"), "{msg}");
}
