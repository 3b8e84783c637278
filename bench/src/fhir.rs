//! `fhir-bench`: parse and map a Bundle of 10,000 blood-pressure Observations (and the same as
//! NDJSON), and write them back; beside it, in the same run, the strict check (fhirbolt's typed
//! model, the new pass `r4check::fast_check`, `check_strict`), strict reads, and
//! `serde_json::Value`. One thread.
//!
//! ```text
//! cargo run --release -p healthanalyzer-bench --bin fhir-bench -- [--n 10000] [--rounds 5]
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use healthanalyzer_fhir::r4check::{Verdict, fast_check, fhirbolt_check};
use healthanalyzer_fhir::{
    BundleKind, ReadOptions, Validation, WriteOptions, check_strict, read_bundle, read_ndjson,
    write_bundle, write_bundle_text, write_ndjson,
};
use healthanalyzer_model::Catalog;

fn observation(i: usize) -> String {
    format!(
        r#"{{"resourceType":"Observation","id":"bp-{i}","meta":{{"profile":["http://hl7.org/fhir/StructureDefinition/vitalsigns"]}},"status":"final","category":[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"Vital Signs"}}]}}],"code":{{"coding":[{{"system":"http://loinc.org","code":"85354-9","display":"Blood pressure panel with all children optional"}}],"text":"Blood pressure"}},"subject":{{"identifier":{{"system":"urn:oid:1.2.208.176.1.2","value":"01017{:05}"}}}},"effectiveDateTime":"2024-{:02}-{:02}T{:02}:{:02}:00+01:00","device":{{"display":"Omron M7"}},"component":[{{"code":{{"coding":[{{"system":"http://loinc.org","code":"8480-6","display":"Systolic blood pressure"}}]}},"valueQuantity":{{"value":{}.{},"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}}},{{"code":{{"coding":[{{"system":"http://loinc.org","code":"8462-4","display":"Diastolic blood pressure"}}]}},"valueQuantity":{{"value":{},"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}}}]}}"#,
        i % 1000,
        1 + i % 12,
        1 + i % 28,
        i % 24,
        i % 60,
        100 + i % 60,
        i % 10,
        60 + i % 30
    )
}

fn best(rounds: usize, mut f: impl FnMut()) -> Duration {
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap()
}

fn main() {
    let mut n = 10_000;
    let mut rounds = 5;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--n" => n = args.next().and_then(|v| v.parse().ok()).expect("--n N"),
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--rounds R")
            }
            other => panic!("unknown argument {other}"),
        }
    }
    let observations: Vec<String> = (0..n).map(observation).collect();
    let bundle = format!(
        r#"{{"resourceType":"Bundle","type":"collection","entry":[{}]}}"#,
        observations
            .iter()
            .map(|o| format!(r#"{{"resource":{o}}}"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    let ndjson = observations.join("\n");
    let catalog = Catalog::builtin();
    // The fast path alone; the strict check is measured on its own row.
    let options = ReadOptions::new(catalog, "bench").with_validation(Validation::Lenient);
    let contents = read_bundle(&bundle, &options).unwrap();
    assert_eq!(
        contents.measurements.len(),
        n,
        "{:?}",
        contents.errors.first()
    );

    let ours_bundle = best(rounds, || {
        let c = read_bundle(&bundle, &options).unwrap();
        assert_eq!(c.measurements.len(), n);
    });
    let ours_ndjson = best(rounds, || {
        let c = read_ndjson(&ndjson, &options).unwrap();
        assert_eq!(c.measurements.len(), n);
    });
    let write_back_text = best(rounds, || {
        let b = write_bundle_text(
            BundleKind::Collection,
            &[],
            &contents.measurements,
            &WriteOptions::new(catalog),
        )
        .unwrap();
        std::hint::black_box(b);
    });
    let write_back = best(rounds, || {
        let b = write_bundle(
            BundleKind::Collection,
            &[],
            &contents.measurements,
            &WriteOptions::new(catalog),
        )
        .unwrap();
        std::hint::black_box(b.to_string());
    });
    let mut fresh = contents.measurements.clone();
    for m in &mut fresh {
        m.provenance.payload = None;
    }
    let write_fresh = best(rounds, || {
        std::hint::black_box(write_ndjson(&[], &fresh, &WriteOptions::new(catalog)).unwrap());
    });
    // The path NDJSON took before the text writer: a `serde_json::Value` per Observation.
    let write_fresh_value = best(rounds, || {
        let options = WriteOptions::new(catalog);
        let mut out = String::new();
        for m in &fresh {
            out.push_str(
                &healthanalyzer_fhir::write_observation(m, &options)
                    .unwrap()
                    .to_string(),
            );
            out.push('\n');
        }
        std::hint::black_box(out);
    });
    let write_back_ndjson = best(rounds, || {
        std::hint::black_box(
            write_ndjson(&[], &contents.measurements, &WriteOptions::new(catalog)).unwrap(),
        );
    });
    let value = best(rounds, || {
        let v: serde_json::Value = serde_json::from_str(&bundle).unwrap();
        std::hint::black_box(v);
    });
    // Resource by resource (check_strict bounds one resource at 4 MiB; the Bundle is larger).
    let fhirbolt = best(rounds.min(2), || {
        for o in &observations {
            fhirbolt_check(o).unwrap_or_else(|e| panic!("fhirbolt: {e}"));
        }
    });
    let fast = best(rounds, || {
        for o in &observations {
            assert_eq!(fast_check(o), Verdict::Valid("Observation"));
        }
    });
    let strict_check = best(rounds, || {
        for o in &observations {
            check_strict(o).unwrap_or_else(|e| panic!("check_strict: {e}"));
        }
    });
    let strict_options = ReadOptions::new(catalog, "bench").with_validation(Validation::Strict);
    let strict_ndjson = best(rounds, || {
        let c = read_ndjson(&ndjson, &strict_options).unwrap();
        assert_eq!(c.measurements.len(), n);
    });
    let strict_bundle = best(rounds, || {
        let c = read_bundle(&bundle, &strict_options).unwrap();
        assert_eq!(c.measurements.len(), n);
    });

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let mb = bundle.len() as f64 / 1e6;
    println!("{n} blood-pressure Observations, Bundle {mb:.1} MB; best of {rounds}, one thread");
    println!();
    println!(
        "strict/lenient: read NDJSON {:.2}, read Bundle {:.2}; new pass vs fhirbolt check {:.1}x",
        ours_ndjson.as_secs_f64() / strict_ndjson.as_secs_f64(),
        ours_bundle.as_secs_f64() / strict_bundle.as_secs_f64(),
        fhirbolt.as_secs_f64() / fast.as_secs_f64()
    );
    println!();
    println!("| run | time (ms) | Observations/s | vs fhirbolt |");
    println!("|---|---:|---:|---:|");
    let base = rate(fhirbolt);
    for (name, d) in [
        ("ours: read Bundle (parse + map)", ours_bundle),
        ("ours: read NDJSON (parse + map)", ours_ndjson),
        (
            "ours: write Bundle back (text writer, kept payloads spliced)",
            write_back_text,
        ),
        (
            "ours: write Bundle back through serde_json::Value (the previous path)",
            write_back,
        ),
        (
            "ours: write NDJSON back (kept payloads spliced)",
            write_back_ndjson,
        ),
        (
            "ours: write NDJSON fresh (from the model, text writer)",
            write_fresh,
        ),
        (
            "ours: write NDJSON fresh through serde_json::Value (the previous path)",
            write_fresh_value,
        ),
        ("serde_json::Value parse only", value),
        (
            "strict check, fhirbolt (each Observation as R4 Resource, Strict mode)",
            fhirbolt,
        ),
        ("strict check, new pass (r4check::fast_check alone)", fast),
        (
            "strict check, check_strict (new pass + the mapping's structure)",
            strict_check,
        ),
        ("read NDJSON strict (parse + check + map)", strict_ndjson),
        ("read Bundle strict (parse + check + map)", strict_bundle),
    ] {
        println!(
            "| {name} | {:.1} | {:.0} | {:.1}x |",
            d.as_secs_f64() * 1e3,
            rate(d),
            rate(d) / base
        );
    }
}
