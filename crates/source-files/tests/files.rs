//! Each file format keeps the source contract, reports bad records with file and line, and
//! resumes or refuses cursors by file identity.

use std::io::Write;
use std::path::{Path, PathBuf};

use healthanalyzer_model::{Identifier, Value, systems};
use healthanalyzer_source::{Batch, Cursor, Source, testkit};
use healthanalyzer_source_files::{CsvMapping, FileOptions, FileSource, Format};

fn options() -> FileOptions {
    FileOptions::new(Identifier::new(systems::CPR, "0101709995"))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

async fn all(source: &FileSource) -> Batch {
    let mut out = Batch::default();
    for b in testkit::pull_all(source, &Cursor::start(), 1000).await {
        out.measurements.extend(b.measurements);
        out.subjects.extend(b.subjects);
        out.rejected.extend(b.rejected);
    }
    out
}

const OMRON: &str = "\"Measurement Date\",\"Timezone\",\"SYS(mmHg)\",\"DIA(mmHg)\",\"Pulse(bpm)\",\"Irregular heartbeat detected\",\"Device\"
\"2024/11/21 11:40\",\"Europe/Copenhagen\",\"105\",\"73\",\"73\",,\"HEM-7141T1\"
\"2024/11/21 12:26\",\"Europe/Copenhagen\",\"312\",\"315\",\"68\",,\"HEM-7141T1\"
\"2024/11/21 12:28\",\"Europe/Copenhagen\",\"103\",\"66\",\"\",,\"HEM-7141T1\"
\"2024/13/40 99:99\",\"Europe/Copenhagen\",\"102\",\"68\",\"61\",,\"HEM-7141T1\"
\"2024/11/22 07:05\",\"Europe/Copenhagen\",\"118\",\"79\",\"64\",,\"HEM-7141T1\"
";

#[tokio::test]
async fn an_omron_export_reads_with_the_bad_rows_reported_by_line() {
    let dir = tempfile::tempdir().expect("dir");
    let path = write(dir.path(), "omron.csv", OMRON);
    let source = FileSource::detect("omron", &path, options()).expect("detect");
    assert_eq!(source.format(), &Format::Csv(CsvMapping::omron_connect()));
    let b = all(&source).await;
    // 5 rows: 4 with blood pressure + pulse, 1 without pulse; the 312/315 reading and the
    // impossible date are reported.
    let bp = b
        .measurements
        .iter()
        .filter(|m| m.kind.as_str() == "blood-pressure")
        .count();
    let hr = b
        .measurements
        .iter()
        .filter(|m| m.kind.as_str() == "heart-rate")
        .count();
    assert_eq!((bp, hr), (3, 3), "{:?}", b.rejected);
    assert_eq!(b.rejected.len(), 2, "{:?}", b.rejected);
    assert!(
        b.rejected[0].location.ends_with("omron.csv:3"),
        "{:?}",
        b.rejected[0]
    );
    assert!(
        b.rejected[0].reason.contains("systolic"),
        "{:?}",
        b.rejected[0]
    );
    assert!(
        b.rejected[1].location.ends_with("omron.csv:5"),
        "{:?}",
        b.rejected[1]
    );
    assert!(
        b.rejected[1].reason.contains("Measurement Date"),
        "{:?}",
        b.rejected[1]
    );
    // Local time in the row's zone, with its offset (CET in November).
    let first = &b.measurements[0];
    assert_eq!(
        first.effective.start().to_string(),
        "2024-11-21T11:40:00+01:00"
    );
    assert_eq!(
        first.device.as_ref().and_then(|d| d.model.as_deref()),
        Some("HEM-7141T1")
    );
    let Value::Components(c) = &first.value else {
        panic!("a panel")
    };
    assert_eq!(c.len(), 2);
}

#[tokio::test]
async fn every_streamed_and_whole_format_keeps_the_source_contract() {
    let dir = tempfile::tempdir().expect("dir");
    let bp_app = "timestampUnixMs;systolic;diastolic;pulse;notes\n1703175660000;312;315;46;x\n1703175600000;123;71;63;\n1703175700000;null;null;null;\n1703175800000;130;80;null;\n1703175900000;128;82;61;ok\n";
    let ndjson = [
        r#"{"resourceType":"Patient","id":"p1","identifier":[{"system":"urn:oid:1.2.208.176.1.2","value":"0101709995"}]}"#,
        r#"{"resourceType":"Observation","id":"o1","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2024-05-01T07:31:00+02:00","valueQuantity":{"value":64,"system":"http://unitsofmeasure.org","code":"/min"}}"#,
        "",
        r#"{"resourceType":"Observation","id":"o2","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2024-05-01T07:32:00+02:00","valueQuantity":{"value":185,"system":"http://unitsofmeasure.org","code":"[lb_av]"}}"#,
        r#"{"resourceType":"Observation","id":"o3","status":"final"}"#,
        r#"{not json"#,
        r#"{"resourceType":"Observation","id":"o4","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2024-05-01T08:31:00+02:00","valueQuantity":{"value":66,"system":"http://unitsofmeasure.org","code":"/min"}}"#,
    ]
    .join("\n");
    let bundle = format!(
        r#"{{"resourceType":"Bundle","type":"collection","entry":[{}]}}"#,
        ndjson
            .lines()
            .filter(
                |l| l.contains("\"status\":\"final\",\"code\"") || l.contains("Patient\",\"id\"")
            )
            .map(|l| format!(r#"{{"resource":{l}}}"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    let tsv = "07/19/2014 10:44:15 AM\t1405791855000\t105\tFlat\tdexcom\n07/19/2014 10:39:15 AM\t1405791555000\t5\tNOT COMPUTABLE\tdexcom\n\n07/19/2014 10:34:15 AM\t1405791255000\t110\tFlat\tdexcom\n";
    let json = r#"[{"_id":"a","type":"sgv","sgv":"120","date":1405792155000,"dateString":"2014-07-19T10:49:15.000-07:00"},{"type":"sgv","sgv":5,"date":1405791855000},{"type":"cal","date":1405791555000},{"type":"mbg","mbg":140,"date":1405791255000}]"#;
    let omh = r#"[{"header":{"id":"dp-1","creation_date_time":"2024-05-01T07:31:00Z","schema_id":{"namespace":"omh","name":"blood-pressure","version":"4.0"}},"body":{"systolic_blood_pressure":{"value":128,"unit":"mmHg"},"diastolic_blood_pressure":{"value":82,"unit":"mmHg"},"effective_time_frame":{"date_time":"2024-05-01T07:31:00+02:00"}}},
 {"body_weight":{"value":165,"unit":"lb"},"effective_time_frame":{"date_time":"2024-05-01T07:35:00+02:00"}},
 {"heart_rate":{"value":50,"unit":"beats/min"},"effective_time_frame":{"time_interval":{"start_date_time":"2024-05-01T00:00:00+02:00","end_date_time":"2024-05-02T00:00:00+02:00"}},"descriptive_statistic":"minimum"},
 {"step_count":8042,"effective_time_frame":{"time_interval":{"start_date_time":"2024-05-01T00:00:00+02:00","duration":{"value":1,"unit":"d"}}}}]"#;
    let apple = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE HealthData [
<!ELEMENT HealthData (ExportDate,Me,(Record|Correlation|Workout|ActivitySummary)*)>
<!ATTLIST HealthData locale CDATA #REQUIRED>
]>
<HealthData locale="da_DK">
 <ExportDate value="2024-05-02 20:00:00 +0200"/>
 <Me HKCharacteristicTypeIdentifierDateOfBirth="1970-01-01"/>
 <Record type="HKQuantityTypeIdentifierHeartRate" sourceName="Apple Watch" device="&lt;&lt;HKDevice&gt;&gt;" unit="count/min" creationDate="2024-05-01 07:32:00 +0200" startDate="2024-05-01 07:31:00 +0200" endDate="2024-05-01 07:31:00 +0200" value="64">
  <MetadataEntry key="HKMetadataKeyHeartRateMotionContext" value="0"/>
 </Record>
 <Record type="HKQuantityTypeIdentifierBodyMass" sourceName="Scale" unit="lb" startDate="2024-05-01 07:35:00 +0200" endDate="2024-05-01 07:35:00 +0200" value="165"/>
 <Record type="HKQuantityTypeIdentifierOxygenSaturation" sourceName="Apple Watch" unit="%" startDate="2024-05-01 07:36:00 +0200" endDate="2024-05-01 07:36:00 +0200" value="0.97"/>
 <Record type="HKQuantityTypeIdentifierActiveEnergyBurned" sourceName="Apple Watch" unit="kcal" startDate="2024-05-01 07:36:00 +0200" endDate="2024-05-01 07:40:00 +0200" value="12"/>
 <Record type="HKQuantityTypeIdentifierStepCount" sourceName="iPhone" unit="count" startDate="2024-05-01 08:00:00 +0200" endDate="2024-05-01 09:00:00 +0200" value="1234"/>
 <Record type="HKQuantityTypeIdentifierHeartRate" sourceName="Apple Watch" unit="count/min" startDate="yesterday" endDate="yesterday" value="70"/>
 <Record type="HKQuantityTypeIdentifierBloodPressureSystolic" sourceName="Omron" unit="mmHg" startDate="2024-05-01 21:00:00 +0200" endDate="2024-05-01 21:00:00 +0200" value="128"/>
 <Record type="HKQuantityTypeIdentifierBloodPressureDiastolic" sourceName="Omron" unit="mmHg" startDate="2024-05-01 21:00:00 +0200" endDate="2024-05-01 21:00:00 +0200" value="82"/>
 <Correlation type="HKCorrelationTypeIdentifierBloodPressure" sourceName="Omron" startDate="2024-05-01 21:00:00 +0200" endDate="2024-05-01 21:00:00 +0200">
  <MetadataEntry key="HKWasUserEntered" value="0"/>
  <Record type="HKQuantityTypeIdentifierBloodPressureSystolic" sourceName="Omron" unit="mmHg" startDate="2024-05-01 21:00:00 +0200" endDate="2024-05-01 21:00:00 +0200" value="128"/>
  <Record type="HKQuantityTypeIdentifierBloodPressureDiastolic" sourceName="Omron" unit="mmHg" startDate="2024-05-01 21:00:00 +0200" endDate="2024-05-01 21:00:00 +0200" value="82"/>
 </Correlation>
 <Workout workoutActivityType="HKWorkoutActivityTypeRunning" startDate="2024-05-01 18:00:00 +0200" endDate="2024-05-01 18:30:00 +0200">
  <WorkoutRoute><Location date="2024-05-01 18:00:00 +0200" latitude="55.6" longitude="12.5"/></WorkoutRoute>
 </Workout>
 <ActivitySummary dateComponents="2024-05-01" activeEnergyBurned="590"/>
</HealthData>
"#;
    let withings = r#"{"status":0,"body":{"timezone":"Europe/Copenhagen","updatetime":1435524025,"measuregrps":[
 {"attrib":0,"category":1,"date":1433052383,"grpid":366956482,"measures":[{"type":9,"unit":0,"value":68},{"type":10,"unit":0,"value":104},{"type":11,"unit":0,"value":41},{"type":18,"unit":-3,"value":-1000},{"type":1,"unit":-3,"value":74126}]},
 {"attrib":0,"category":2,"date":1429550036,"grpid":347186704,"measures":[{"type":1,"unit":-3,"value":70000}]},
 {"attrib":2,"category":1,"date":1424719489,"grpid":320419189,"measures":[{"type":4,"unit":-3,"value":1930},{"type":71,"unit":0,"value":37}]},
 {"attrib":2,"category":1,"date":1424719489,"grpid":320419190,"measures":[{"type":11,"unit":0,"value":"x"}]}]}}"#;
    let cases = [
        ("app.csv", bp_app, (6, 2)),
        ("omron.csv", OMRON, (6, 2)),
        ("export.ndjson", ndjson.as_str(), (3, 2)),
        ("bundle.json", bundle.as_str(), (3, 0)),
        ("entries.tsv", tsv, (2, 1)),
        ("entries.json", json, (2, 1)),
        ("points.json", omh, (3, 1)),
        ("export.xml", apple, (5, 1)),
        ("withings.json", withings, (5, 1)),
    ];
    for (name, text, (measurements, rejected)) in cases {
        // FHIR files need the `fhir` feature (`fhir_files_without_the_feature_are_refused`).
        if !cfg!(feature = "fhir") && matches!(name, "export.ndjson" | "bundle.json") {
            continue;
        }
        let path = write(dir.path(), name, text);
        let a = FileSource::detect("files", &path, options()).expect(name);
        let b = FileSource::detect("files", &path, options()).expect(name);
        testkit::run_all(&a, &b, 1).await;
        testkit::run_all(&a, &b, 2).await;
        let got = all(&a).await;
        assert_eq!(
            (got.measurements.len(), got.rejected.len()),
            (measurements, rejected),
            "{name}: {:?}",
            got.rejected
        );
    }
}

#[tokio::test]
async fn a_cursor_of_another_file_is_refused_and_a_grown_file_continues() {
    let dir = tempfile::tempdir().expect("dir");
    let path = write(dir.path(), "omron.csv", OMRON);
    let source = FileSource::detect("omron", &path, options()).expect("detect");
    let batches = testkit::pull_all(&source, &Cursor::start(), 1000).await;
    let end = batches.last().expect("batch").cursor.clone();
    let before = all(&source).await.measurements.len();

    // The export grows: the next pull from the saved cursor gives the new row only.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open");
    f.write_all(
        b"\"2024/11/23 07:00\",\"Europe/Copenhagen\",\"121\",\"80\",\"66\",,\"HEM-7141T1\"\n",
    )
    .expect("append");
    drop(f);
    let next = source.pull(&end, 1000).await.expect("pull");
    assert_eq!(next.measurements.len(), 2);
    assert_eq!(all(&source).await.measurements.len(), before + 2);

    // Another file (other first bytes) refuses the cursor, with an error retrying cannot fix.
    let other = write(dir.path(), "other.csv", &OMRON.replace("105", "106"));
    let other = FileSource::detect("omron", &other, options()).expect("detect");
    let e = other.pull(&end, 10).await.expect_err("another file");
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("another file"), "{e}");
}

#[tokio::test]
async fn strict_mode_stops_at_the_first_bad_record() {
    let dir = tempfile::tempdir().expect("dir");
    let path = write(dir.path(), "omron.csv", OMRON);
    let mut o = options();
    o.strict = true;
    let source = FileSource::detect("omron", &path, o).expect("detect");
    let e = source
        .pull(&Cursor::start(), 1000)
        .await
        .expect_err("strict");
    assert!(e.to_string().contains("omron.csv:3"), "{e}");
}

#[tokio::test]
async fn an_unknown_layout_says_what_is_known() {
    let dir = tempfile::tempdir().expect("dir");
    let path = write(dir.path(), "mystery.csv", "a,b\n1,2\n");
    let e = FileSource::detect("x", &path, options()).expect_err("unknown");
    assert!(e.to_string().contains("column mapping"), "{e}");
}

/// Without the `fhir` feature a FHIR file is an error that names the feature, from `detect`
/// and from a source made for the format by hand; the other formats still read.
#[cfg(not(feature = "fhir"))]
#[tokio::test]
async fn fhir_files_without_the_feature_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let ndjson = write(
        dir.path(),
        "export.ndjson",
        r#"{"resourceType":"Patient","id":"p1"}"#,
    );
    let bundle = write(
        dir.path(),
        "bundle.json",
        "{\n  \"resourceType\": \"Bundle\",\n  \"type\": \"collection\",\n  \"entry\": []\n}\n",
    );
    for (path, format) in [(&ndjson, Format::FhirNdjson), (&bundle, Format::FhirJson)] {
        assert_eq!(Format::detect(path).expect("detect"), format);
        let e = FileSource::detect("fhir", path, options()).expect_err("no fhir feature");
        assert!(e.to_string().contains("`fhir` feature"), "{e}");
        let source = FileSource::new("fhir", path, format, options());
        let e = source
            .pull(&Cursor::start(), 10)
            .await
            .expect_err("no fhir feature");
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("`fhir` feature"), "{e}");
        assert!(e.to_string().contains(&*path.to_string_lossy()), "{e}");
    }
    let omron = write(dir.path(), "omron.csv", OMRON);
    let source = FileSource::detect("omron", &omron, options()).expect("detect");
    assert_eq!(all(&source).await.measurements.len(), 6);
}

/// The real exports beside the project (`HEALTHANALYZER_FIXTURES`): every one imports, with
/// the counts printed for the record and the implausible readings reported.
#[tokio::test]
async fn the_real_exports_import() {
    let Some(fixtures) = std::env::var_os("HEALTHANALYZER_FIXTURES") else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED the_real_exports_import: HEALTHANALYZER_FIXTURES is not set"
        );
        return;
    };
    let root = PathBuf::from(fixtures);
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in [
        "bp-app-csv",
        "nightscout-cgm-remote-monitor",
        "apple-health-export",
        "openmhealth-shimmer-api-samples/withings",
    ] {
        for e in std::fs::read_dir(root.join(dir)).expect("dir") {
            let p = e.expect("entry").path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // Withings sleep and intraday series are not measurements we map.
            let other = name.contains("sleep") || name.contains("intraday");
            if p.extension().is_some_and(|x| x != "md") && !other {
                files.push(p);
            }
        }
    }
    if cfg!(feature = "fhir") {
        files.push(root.join("synthea-smart-generated-sample-data-R4/Buster_Hoeger_ad2e3fc5-2b5d-4cb9-8d03-9ea0f4ac8423.json"));
    }
    files.sort();
    let mut report = String::new();
    let mut implausible_reported = false;
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        let source = match FileSource::detect("fixture", &path, options()) {
            Ok(s) => s,
            Err(e) => {
                // Only the app's "formatted times" test file has no layout we know.
                assert!(name.contains("formatted_times"), "{name}: {e}");
                report.push_str(&format!("{name}: not detected ({e})\n"));
                continue;
            }
        };
        let b = all(&source).await;
        report.push_str(&format!(
            "{name}: {} measurements, {} subjects, {} rejected\n",
            b.measurements.len(),
            b.subjects.len(),
            b.rejected.len()
        ));
        // An export of goals only, and one of empty rows, hold no measurements.
        assert!(
            !b.measurements.is_empty() || name.contains("incomplete") || name.contains("only-goal"),
            "{name}: nothing read"
        );
        if b.rejected
            .iter()
            .any(|r| r.reason.contains("systolic") && r.reason.contains("312"))
        {
            implausible_reported = true;
        }
    }
    let _ = writeln!(std::io::stderr(), "{report}");
    assert!(
        implausible_reported,
        "the 312/315 reading was not reported:\n{report}"
    );
}

/// Open mHealth's own test data points: every should-fail sample is refused; every
/// should-pass sample is read, unless it is a statistic over a period or has no time of day
/// (both reported with that reason).
#[tokio::test]
async fn open_mhealth_samples_pass_and_fail_as_their_authors_say() {
    let Some(fixtures) = std::env::var_os("HEALTHANALYZER_FIXTURES") else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED open_mhealth_samples_pass_and_fail_as_their_authors_say: HEALTHANALYZER_FIXTURES is not set"
        );
        return;
    };
    let root = PathBuf::from(fixtures).join("openmhealth-schemas/test-data/omh");
    // Should-fail samples whose fault is in an element the connector reads.
    const READ_ELEMENTS: &[&str] = &[
        "empty-document",
        "invalid-unit",
        "missing-time-frame",
        "invalid-time-interval",
        "invalid-time-frame",
        "invalid-timeframe-format",
        "invalid-descriptive-statistic",
        "invalid-specimen-source",
        "with-part-of-day",
    ];
    // Read, statistic or no time, failed as expected, total, faults in unread elements.
    let mut counts = [0usize; 5];
    for measure in [
        "blood-pressure",
        "body-weight",
        "body-height",
        "heart-rate",
        "blood-glucose",
        "body-temperature",
        "oxygen-saturation",
        "respiratory-rate",
        "body-mass-index",
        "step-count",
    ] {
        for version in std::fs::read_dir(root.join(measure)).expect("measure") {
            let version = version.expect("version").path();
            for (verdict, pass) in [("shouldPass", true), ("shouldFail", false)] {
                let Ok(files) = std::fs::read_dir(version.join(verdict)) else {
                    continue;
                };
                for f in files {
                    let path = f.expect("file").path();
                    counts[3] += 1;
                    let source = FileSource::new("omh", &path, Format::OpenMhealth, options());
                    let got = match source.pull(&Cursor::start(), 100).await {
                        Ok(b) => b,
                        Err(e) => {
                            assert!(!pass, "{}: {e}", path.display());
                            counts[2] += 1;
                            continue;
                        }
                    };
                    if pass {
                        if got.measurements.len() == 1 {
                            counts[0] += 1;
                        } else {
                            let reason = &got.rejected[0].reason;
                            assert!(
                                reason.contains("descriptive statistic")
                                    || reason.contains("cannot be placed in time"),
                                "{}: {reason}",
                                path.display()
                            );
                            counts[1] += 1;
                        }
                    } else if READ_ELEMENTS
                        .iter()
                        .any(|e| path.to_string_lossy().contains(e))
                    {
                        assert!(
                            got.measurements.is_empty(),
                            "{} should fail but was read",
                            path.display()
                        );
                        counts[2] += 1;
                    } else {
                        // Invalid in an element the connector does not read (a temporal
                        // relationship, a physical-activity value).
                        counts[4] += 1;
                    }
                }
            }
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "Open mHealth samples: {} read, {} statistics or without a time reported, {} should-fail refused, {} should-fail only in elements not read, of {}",
        counts[0],
        counts[1],
        counts[2],
        counts[4],
        counts[3]
    );
    assert!(counts[0] > 30, "{counts:?}");
}
