//! The schema and its versioned migrations.
//!
//! Every table is keyed by subject first, so the schema can be distributed with Citus by the
//! subject column (see `docs/postgres.md`). The version lives in `healthanalyzer_meta`; each
//! migration runs in one transaction under an advisory lock, so replicas starting together
//! migrate once.

use tokio_postgres::Client;

use crate::error::PostgresError;

/// Advisory lock key taken while migrating (`"HAnl"`).
const LOCK: i64 = 0x4841_6e6c;

/// The migrations, in order: migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: measurements, checkpoints, subjects.
    "
    CREATE TABLE measurement (
        subject text   NOT NULL,   -- healthanalyzer_store::backend::identifier_key; the Citus distribution column
        id      uuid   NOT NULL,
        kind    text   NOT NULL,
        t_s     bigint NOT NULL,   -- effective instant: whole seconds (floor) ...
        t_ns    int    NOT NULL,   -- ... and nanoseconds 0..1e9, so (t_s, t_ns) sorts
        body    text   NOT NULL,   -- the measurement as JSON (the model's serde form)
        PRIMARY KEY (subject, id)
    );
    CREATE INDEX measurement_id ON measurement (id);
    CREATE INDEX measurement_subject_kind_time ON measurement (subject, kind, t_s, t_ns, id);
    CREATE INDEX measurement_subject_time ON measurement (subject, t_s, t_ns, id);
    CREATE INDEX measurement_time ON measurement (t_s, t_ns, id);
    CREATE TABLE checkpoint (
        source_id text NOT NULL PRIMARY KEY,
        cursor    text NOT NULL
    );
    CREATE TABLE subject (
        key  text NOT NULL PRIMARY KEY,
        body text NOT NULL
    );
    CREATE TABLE subject_identifier (
        identifier text NOT NULL PRIMARY KEY,
        subject    text NOT NULL
    );
    CREATE INDEX subject_identifier_subject ON subject_identifier (subject);
    ",
    // 2: versions kept by the store (ADR 0007). Records written through the FHIR API before
    // carry their version in the kept resource's `meta.versionId`; it becomes the stored one,
    // so versions never go back. Every other record starts at 1.
    r#"
    ALTER TABLE measurement ADD COLUMN version bigint NOT NULL DEFAULT 1;
    ALTER TABLE subject ADD COLUMN version bigint NOT NULL DEFAULT 1;
    UPDATE measurement
       SET version = GREATEST(1, substring(body::jsonb #>> '{provenance,payload,content}'
                                           FROM '"versionId"\s*:\s*"([0-9]{1,18})"')::bigint)
     WHERE body LIKE '%versionId%'
       AND substring(body::jsonb #>> '{provenance,payload,content}'
                     FROM '"versionId"\s*:\s*"([0-9]{1,18})"') IS NOT NULL;
    UPDATE subject
       SET version = GREATEST(1, substring(body::jsonb #>> '{payload,content}'
                                           FROM '"versionId"\s*:\s*"([0-9]{1,18})"')::bigint)
     WHERE body LIKE '%versionId%'
       AND substring(body::jsonb #>> '{payload,content}'
                     FROM '"versionId"\s*:\s*"([0-9]{1,18})"') IS NOT NULL;
    "#,
    // 3: documents (FHIR resources kept beside the measurements) and their search keys.
    crate::documents::V3,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The tables we create; finding one without our meta table means the schema is not ours.
const TABLES: &[&str] = &[
    "measurement",
    "checkpoint",
    "subject",
    "subject_identifier",
    "document",
    "document_key",
];

/// Brings the schema in the connection's `search_path` up to [`SCHEMA_VERSION`].
pub(crate) async fn migrate(client: &mut Client) -> Result<(), PostgresError> {
    let connect = |source| PostgresError::Connect { source };
    let tx = client.transaction().await.map_err(connect)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
        .await
        .map_err(connect)?;
    let has_meta: bool = tx
        .query_one("SELECT to_regclass('healthanalyzer_meta') IS NOT NULL", &[])
        .await
        .map_err(connect)?
        .get(0);
    let mut version: i64 = 0;
    if has_meta {
        let row = tx
            .query_opt(
                "SELECT value FROM healthanalyzer_meta WHERE key = 'schema_version'",
                &[],
            )
            .await
            .map_err(connect)?;
        version = row
            .and_then(|r| r.get::<_, String>(0).parse().ok())
            .unwrap_or(0);
    } else {
        for table in TABLES {
            let exists: bool = tx
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[table])
                .await
                .map_err(connect)?
                .get(0);
            if exists {
                return Err(PostgresError::NotOurs {
                    table: (*table).to_string(),
                });
            }
        }
    }
    if version > SCHEMA_VERSION {
        return Err(PostgresError::TooNew {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    while version < SCHEMA_VERSION {
        let next = version + 1;
        let fail = |source| PostgresError::Migrate {
            version: next,
            source,
        };
        if version == 0 {
            tx.batch_execute(
                "CREATE TABLE healthanalyzer_meta (key text PRIMARY KEY, value text NOT NULL);
                 INSERT INTO healthanalyzer_meta VALUES ('application', 'health-analyzer'), ('schema_version', '0');",
            )
            .await
            .map_err(fail)?;
        }
        let step = MIGRATIONS[version as usize];
        tx.batch_execute(step).await.map_err(fail)?;
        tx.execute(
            "UPDATE healthanalyzer_meta SET value = $1 WHERE key = 'schema_version'",
            &[&next.to_string()],
        )
        .await
        .map_err(fail)?;
        version = next;
    }
    tx.commit().await.map_err(connect)
}
