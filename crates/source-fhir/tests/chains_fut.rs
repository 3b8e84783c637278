//! Denmark's FUT end to end against our own server: `FhirSink` under `Profile::Fut` submits
//! one `$submit-measurement` per patient, episode of care and measurement time; the FHIR source
//! with `shape = fut` reads them back through `$search-measurements`, resumably.

mod chains_common;

use chains_common::{measurement, ours, ours_with, pull_all, said};
use healthanalyzer_fhir::{FutContext, FutPerformer, FutSubject, National, Profile, WriteOptions};
use healthanalyzer_model::{Catalog, Identifier};
use healthanalyzer_source::http::reqwest::Method;
use healthanalyzer_source::{Cursor, Source};
use healthanalyzer_source_fhir::{FhirSink, FhirSource, Query, Shape};
use serde_json::json;

const PATIENT_BASE: &str = "https://patient.test.local/fhir";

fn national(cpr: &Identifier) -> National {
    National {
        fut: Some(FutContext {
            patient_base: PATIENT_BASE.into(),
            careplan_base: "https://careplan.test.local/fhir".into(),
            organization_base: "https://organization.test.local/fhir".into(),
            subjects: vec![FutSubject {
                subject: cpr.clone(),
                patient: "76312".into(),
                episode_of_care: "39765".into(),
                service_request: "37067".into(),
                service_request_version: "42".into(),
                performer: FutPerformer::Patient,
            }],
        }),
        pmd: None,
    }
}

fn patient_reference() -> String {
    format!("{PATIENT_BASE}/Patient/76312")
}

#[tokio::test]
async fn fut_push_submits_per_measurement_time_and_the_source_reads_it_back_resumably() {
    let s = ours(Vec::new()).await;
    let cpr = Identifier::cpr("0101709995");
    let national = national(&cpr);
    let options = WriteOptions::new(Catalog::builtin())
        .with_profile(Profile::Fut)
        .with_national(&national);
    // A pulse and a weight taken together, a weight the next day, a pulse the day after.
    let pushed = vec![
        measurement(
            "home",
            "a",
            &cpr,
            "heart-rate",
            "64",
            "/min",
            "2024-05-01T07:30:00+02:00",
        ),
        measurement(
            "home",
            "b",
            &cpr,
            "body-weight",
            "72.40",
            "kg",
            "2024-05-01T07:30:00+02:00",
        ),
        measurement(
            "home",
            "c",
            &cpr,
            "body-weight",
            "72.10",
            "kg",
            "2024-05-02T07:31:00+02:00",
        ),
        measurement(
            "home",
            "d",
            &cpr,
            "heart-rate",
            "61",
            "/min",
            "2024-05-03T07:29:00+02:00",
        ),
    ];
    let sink = FhirSink::new(s.client(None), options);
    let summary = sink.push(&[], &pushed).await.expect("push");
    assert!(summary.refused.is_empty(), "{:?}", summary.refused);
    assert_eq!(summary.created, 4, "{summary:?}");
    assert_eq!(
        summary.bundles, 3,
        "one submission per measurement time: {summary:?}"
    );
    // The same push again: every submission a replay of its first, nothing stored twice.
    let again = sink.push(&[], &pushed).await.expect("push again");
    assert!(again.refused.is_empty(), "{:?}", again.refused);
    assert_eq!((again.created, again.existing), (0, 4), "{again:?}");

    // The server holds three submissions, the first with both measurements taken together.
    let search = json!({"resourceType": "Parameters", "parameter": [
        {"name": "patient", "valueReference": {"reference": patient_reference()}},
        {"name": "period", "valuePeriod": {"start": "2024-01-01T00:00:00Z"}}]});
    let (status, answer) = s
        .send(Method::POST, "$search-measurements", Some(&search), None)
        .await;
    assert_eq!(status, 200, "{answer}");
    let submissions = answer["entry"].as_array().expect("entries");
    assert_eq!(submissions.len(), 3, "{answer}");
    let observations = |i: usize| {
        submissions[i]["resource"]["entry"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter(|e| e["resource"]["resourceType"] == "Observation")
                    .map(|e| e["resource"]["id"].as_str().unwrap_or("").to_string())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    assert_eq!(observations(0).len(), 2, "{answer}");
    let mut server_ids: Vec<String> = (0..3).flat_map(observations).collect();
    server_ids.sort();

    // Read back with the fut shape, two at a time: the cursor resumes the search under way.
    let source = FhirSource::new(
        "fut-in",
        s.client(None),
        Query {
            shape: Shape::Fut,
            patient: Some(patient_reference()),
            subject: Some(cpr.clone()),
            ..Query::default()
        },
    );
    source.check().await.expect("check");
    let first = source.pull(&Cursor::start(), 2).await.expect("pull");
    assert_eq!(first.measurements.len(), 2);
    assert!(!first.exhausted, "two of four delivered");
    let (rest, cursor, _) = pull_all(&source, first.cursor.clone(), 2).await;
    let mut read: Vec<_> = first.measurements.iter().chain(&rest).cloned().collect();
    assert_eq!(read.len(), 4, "{read:?}");
    let mut ids: Vec<String> = read
        .iter()
        .map(|m| m.provenance.record_id.clone())
        .collect();
    ids.sort();
    assert_eq!(ids, server_ids, "the records are the server's Observations");
    assert!(
        read.iter().all(|m| m.subject == cpr),
        "subjects named by the configured CPR"
    );
    let mut want: Vec<_> = pushed.iter().map(said).collect();
    want.sort();
    read.sort_by_key(said);
    let got: Vec<_> = read.iter().map(said).collect();
    assert_eq!(got, want);

    // The next sync searches from where this one ended (less the overlap): the old
    // measurements are not read again; a new one is.
    let again = source.pull(&cursor, 10).await.expect("pull");
    assert!(again.measurements.is_empty(), "{:?}", again.measurements);
    assert!(again.exhausted);
    let recent = healthanalyzer_model::jiff::Timestamp::now()
        - healthanalyzer_model::jiff::SignedDuration::from_hours(1);
    let new = measurement(
        "home",
        "e",
        &cpr,
        "heart-rate",
        "70",
        "/min",
        &recent.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    );
    let summary = sink
        .push(&[], std::slice::from_ref(&new))
        .await
        .expect("push");
    assert_eq!((summary.created, summary.bundles), (1, 1));
    let later = source.pull(&again.cursor, 10).await.expect("pull");
    assert_eq!(later.measurements.len(), 1, "{:?}", later.measurements);
    assert_eq!(said(&later.measurements[0]), said(&new));
}

#[tokio::test]
async fn a_measurement_fut_cannot_take_is_reported_and_the_others_are_submitted() {
    let s = ours(Vec::new()).await;
    let cpr = Identifier::cpr("0101709995");
    let stranger = Identifier::cpr("0202709994");
    let national = national(&cpr);
    let options = WriteOptions::new(Catalog::builtin())
        .with_profile(Profile::Fut)
        .with_national(&national);
    let theirs = measurement(
        "home",
        "x",
        &stranger,
        "heart-rate",
        "64",
        "/min",
        "2024-05-01T07:30:00+02:00",
    );
    let mine = measurement(
        "home",
        "y",
        &cpr,
        "heart-rate",
        "66",
        "/min",
        "2024-05-01T07:30:00+02:00",
    );
    let summary = FhirSink::new(s.client(None), options)
        .push(&[], &[theirs.clone(), mine])
        .await
        .expect("push");
    assert_eq!(summary.created, 1, "{summary:?}");
    assert_eq!(
        summary.bundles, 1,
        "the stranger's was never sent: {summary:?}"
    );
    assert_eq!(summary.refused.len(), 1, "{summary:?}");
    let r = &summary.refused[0];
    assert_eq!(r.measurement, theirs.id);
    assert_eq!(r.status, "not sent");
    assert!(
        !r.reason.contains("0202709994"),
        "the CPR number leaked: {}",
        r.reason
    );
}

#[test]
fn a_fut_source_needs_a_patient_or_an_episode_of_care() {
    let client = healthanalyzer_source_fhir::FhirClient::new(
        healthanalyzer_source_fhir::ServerConfig::new("http://127.0.0.1:9/fhir"),
    )
    .expect("client");
    let source = |q: Query| FhirSource::new("fut-in", client.clone(), q);
    let none = source(Query {
        shape: Shape::Fut,
        ..Query::default()
    });
    let e = none.check_settings().expect_err("no patient, no episode");
    assert!(e.to_string().contains("episode_of_care"), "{e}");
    let by_number = source(Query {
        shape: Shape::Fut,
        patient: Some("urn:oid:1.2.208.176.1.2|0101709995".into()),
        ..Query::default()
    });
    assert!(by_number.check_settings().is_err());
    let episode = source(Query {
        shape: Shape::Fut,
        episode_of_care: Some("EpisodeOfCare/39765".into()),
        ..Query::default()
    });
    assert!(episode.check_settings().is_ok());
}

#[tokio::test]
async fn a_period_with_more_submissions_than_the_server_answers_is_read_in_halves() {
    // The server answers at most two submissions per search (422 beyond).
    let s = ours_with(
        Vec::new(),
        healthanalyzer_server::ServerConfig {
            max_count: 2,
            ..healthanalyzer_server::ServerConfig::default()
        },
    )
    .await;
    let cpr = Identifier::cpr("0101709995");
    let national = national(&cpr);
    let options = WriteOptions::new(Catalog::builtin())
        .with_profile(Profile::Fut)
        .with_national(&national);
    let pushed: Vec<_> = (1..=5)
        .map(|day| {
            measurement(
                "home",
                &format!("w{day}"),
                &cpr,
                "body-weight",
                &format!("7{day}.0"),
                "kg",
                &format!("2024-06-0{day}T07:30:00+02:00"),
            )
        })
        .collect();
    let summary = FhirSink::new(s.client(None), options)
        .push(&[], &pushed)
        .await
        .expect("push");
    assert_eq!((summary.created, summary.bundles), (5, 5), "{summary:?}");
    let source = FhirSource::new(
        "fut-in",
        s.client(None),
        Query {
            shape: Shape::Fut,
            patient: Some(patient_reference()),
            subject: Some(cpr.clone()),
            ..Query::default()
        },
    );
    let (read, cursor, pulls) = pull_all(&source, Cursor::start(), 100).await;
    assert!(
        pulls >= 3,
        "at most two submissions a period: {pulls} pulls"
    );
    let mut got: Vec<_> = read.iter().map(said).collect();
    got.sort();
    got.dedup();
    let mut want: Vec<_> = pushed.iter().map(said).collect();
    want.sort();
    assert_eq!(got, want);
    // And the sync after it reads nothing old.
    let (again, _, _) = pull_all(&source, cursor, 100).await;
    assert!(again.is_empty(), "{again:?}");
}
