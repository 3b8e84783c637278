//! The schema, its versioned migrations, and the checks that keep us off files that are not ours.
//!
//! The file is marked with `PRAGMA application_id` ([`APPLICATION_ID`]) and carries its schema
//! version in `PRAGMA user_version`. Each migration runs in one `BEGIN IMMEDIATE` transaction that
//! also sets the version, so a crash mid-migration leaves the previous version intact, and two
//! processes opening the same new file do not both migrate it.

use std::io::Read;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::error::{SqliteError, is_corrupt};

/// `PRAGMA application_id` of a Health Analyzer database: `"HAnl"` in ASCII.
pub const APPLICATION_ID: i32 = 0x4841_6e6c;

/// One schema step: SQL, or Rust where rows must be re-encoded.
enum Step {
    Sql(&'static str),
    Rust(fn(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>),
}

/// The migrations, in order: migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[Step] = &[
    Step::Sql(
    // 1: measurements and checkpoints.
    "
    PRAGMA application_id = 1212247660;
    CREATE TABLE measurement (
        id      BLOB    NOT NULL UNIQUE,  -- 16 bytes, big-endian: byte order is id order
        subject TEXT    NOT NULL,         -- healthanalyzer_store::backend::identifier_key
        kind    TEXT    NOT NULL,
        t_s     INTEGER NOT NULL,         -- effective instant: whole seconds (floor) ...
        t_ns    INTEGER NOT NULL,         -- ... and nanoseconds 0..1e9, so (t_s, t_ns) sorts
        body    TEXT    NOT NULL          -- the measurement as JSON (the model's serde form)
    );
    CREATE INDEX measurement_subject_kind_time ON measurement (subject, kind, t_s, t_ns, id);
    CREATE INDEX measurement_subject_time ON measurement (subject, t_s, t_ns, id);
    CREATE TABLE checkpoint (
        source_id TEXT NOT NULL PRIMARY KEY,
        cursor    TEXT NOT NULL
    ) WITHOUT ROWID;
    "),
    // 2: subjects, and queries across subjects by time.
    Step::Sql("
    CREATE TABLE subject (
        key  TEXT NOT NULL PRIMARY KEY,   -- identifier_key of the primary identifier
        body TEXT NOT NULL                -- the subject as JSON
    );
    CREATE TABLE subject_identifier (
        identifier TEXT NOT NULL PRIMARY KEY,  -- identifier_key of any identifier
        subject    TEXT NOT NULL               -- subject.key
    ) WITHOUT ROWID;
    CREATE INDEX subject_identifier_subject ON subject_identifier (subject);
    CREATE INDEX measurement_time ON measurement (t_s, t_ns, id);
    "),
    // 3: versions kept by the store (ADR 0007). Records written through the FHIR API before
    // carry their version in the kept resource's `meta.versionId`; it becomes the stored one,
    // so versions never go back. Every other record starts at 1.
    Step::Sql("
    ALTER TABLE measurement ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE subject ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    UPDATE measurement
       SET version = max(1, CAST(json_extract(json_extract(body, '$.provenance.payload.content'), '$.meta.versionId') AS INTEGER))
     WHERE instr(body, 'versionId') > 0
       AND json_valid(json_extract(body, '$.provenance.payload.content'));
    UPDATE subject
       SET version = max(1, CAST(json_extract(json_extract(body, '$.payload.content'), '$.meta.versionId') AS INTEGER))
     WHERE instr(body, 'versionId') > 0
       AND json_valid(json_extract(body, '$.payload.content'));
    "),
    // 4: the layout for throughput (ADR 0008): subjects and kinds as small integers from
    // dictionaries, the kept record apart from the body, both compressed.
    Step::Rust(to_v4),
    // 5: documents (FHIR resources kept beside the measurements) and their search keys.
    Step::Sql(crate::documents::V5),
];

/// Schema 4's tables and indexes.
const V4: &str = "
    CREATE TABLE series (
        n   INTEGER PRIMARY KEY,
        key TEXT    NOT NULL UNIQUE       -- healthanalyzer_store::backend::identifier_key of the subject
    );
    CREATE TABLE kind_name (
        n    INTEGER PRIMARY KEY,
        name TEXT    NOT NULL UNIQUE
    );
    CREATE TABLE measurement_v4 (
        id           BLOB    NOT NULL UNIQUE,  -- 16 bytes, big-endian: byte order is id order
        subject      INTEGER NOT NULL,         -- series.n
        kind         INTEGER NOT NULL,         -- kind_name.n
        t_s          INTEGER NOT NULL,         -- effective instant: whole seconds (floor) ...
        t_ns         INTEGER NOT NULL,         -- ... and nanoseconds 0..1e9
        version      INTEGER NOT NULL DEFAULT 1,
        body         BLOB    NOT NULL,         -- the measurement without its kept record, packed
        payload_type TEXT,                     -- the kept record's media type ...
        payload      BLOB                      -- ... and its bytes, packed (codec.rs)
    );
";

/// The measurement table's secondary indexes (schema 4 and later): the unique id index is the
/// table's own (`UNIQUE`), these three the writer's bulk path drops and builds again.
pub(crate) const SECONDARY_INDEXES: &str = "
    CREATE INDEX measurement_subject_kind_time ON measurement (subject, kind, t_s, t_ns, id);
    CREATE INDEX measurement_subject_time ON measurement (subject, t_s, t_ns, id);
    CREATE INDEX measurement_time ON measurement (t_s, t_ns, id);
";

/// Drops [`SECONDARY_INDEXES`].
pub(crate) const DROP_SECONDARY_INDEXES: &str = "
    DROP INDEX measurement_subject_kind_time;
    DROP INDEX measurement_subject_time;
    DROP INDEX measurement_time;
";

/// Schema 3 to 4: every row re-encoded into the new table, which then takes the old one's name.
fn to_v4(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    use std::collections::HashMap;
    tx.execute_batch(V4)?;
    let mut keys: HashMap<String, i64> = HashMap::new();
    let mut kinds: HashMap<String, i64> = HashMap::new();
    {
        let mut read = tx.prepare(
            "SELECT id, subject, kind, t_s, t_ns, version, body FROM measurement ORDER BY rowid",
        )?;
        let mut write = tx.prepare(
            "INSERT INTO measurement_v4 (id, subject, kind, t_s, t_ns, version, body, payload_type, payload)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        let mut series = tx.prepare("INSERT INTO series (key) VALUES (?1) RETURNING n")?;
        let mut kind_name = tx.prepare("INSERT INTO kind_name (name) VALUES (?1) RETURNING n")?;
        let mut rows = read.query([])?;
        while let Some(r) = rows.next()? {
            let id: Vec<u8> = r.get(0)?;
            let subject: String = r.get(1)?;
            let kind: String = r.get(2)?;
            let body: String = r.get(6)?;
            let s = match keys.get(&subject) {
                Some(n) => *n,
                None => {
                    let n: i64 = series.query_row([&subject], |x| x.get(0))?;
                    keys.insert(subject, n);
                    n
                }
            };
            let k = match kinds.get(&kind) {
                Some(n) => *n,
                None => {
                    let n: i64 = kind_name.query_row([&kind], |x| x.get(0))?;
                    kinds.insert(kind, n);
                    n
                }
            };
            // A body this build cannot read is kept as it was (packed raw), never dropped: it
            // reads back as the same damaged row it was before.
            let (body, payload_type, payload) =
                match serde_json::from_str::<healthanalyzer_model::Measurement>(&body)
                    .ok()
                    .and_then(|mut m| crate::rows::encode_parts(&mut m).ok())
                {
                    Some(parts) => parts,
                    None => (crate::codec::pack(body.as_bytes()), None, None),
                };
            write.execute(rusqlite::params![
                id,
                s,
                k,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                body,
                payload_type,
                payload
            ])?;
        }
    }
    tx.execute_batch("DROP TABLE measurement; ALTER TABLE measurement_v4 RENAME TO measurement;")?;
    tx.execute_batch(SECONDARY_INDEXES)
}

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// What an existing file holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// No file, an empty file, or an SQLite database with no tables and no application id.
    Empty,
    /// Ours, at this schema version.
    Ours(i64),
}

/// Inspects `path` without changing it: reads the header, then opens it read-only.
pub(crate) fn inspect(path: &Path) -> Result<Found, SqliteError> {
    inspect_once(path, false)
}

/// [`inspect`]; `recovered` once a hot journal was rolled back (then a second one is an error).
fn inspect_once(path: &Path, recovered: bool) -> Result<Found, SqliteError> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Empty),
        Err(e) => {
            return Err(SqliteError::Open {
                path: path.into(),
                source: rusqlite::Error::InvalidPath(format!("{}: {e}", path.display()).into()),
            });
        }
    };
    let mut header = [0u8; 100];
    let mut n = 0;
    while n < header.len() {
        match file.read(&mut header[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => {
                return Err(SqliteError::Open {
                    path: path.into(),
                    source: rusqlite::Error::InvalidPath(format!("{}: {e}", path.display()).into()),
                });
            }
        }
    }
    if n == 0 {
        return Ok(Found::Empty);
    }
    if n < 100 || &header[..16] != b"SQLite format 3\0" {
        return Err(SqliteError::NotSqlite { path: path.into() });
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| classify(path, source))?;
    let app_id: i32 = match conn.pragma_query_value(None, "application_id", |r| r.get(0)) {
        Ok(id) => id,
        // A process killed inside a rollback-journal transaction (before the file switched to
        // WAL, or while it was created) leaves a hot journal, which a read-only connection may
        // not roll back. Roll it back as any SQLite client would, then look again.
        Err(e) if is_hot_journal(&e) && !recovered => {
            drop(conn);
            recover_hot_journal(path).map_err(|source| classify(path, source))?;
            return inspect_once(path, true);
        }
        Err(source) => return Err(classify(path, source)),
    };
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|source| classify(path, source))?;
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name LIMIT 5")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<_, _>>()
        })
        .map_err(|source| classify(path, source))?;
    match app_id {
        APPLICATION_ID if version > SCHEMA_VERSION => Err(SqliteError::TooNew {
            path: path.into(),
            found: version,
            supported: SCHEMA_VERSION,
        }),
        APPLICATION_ID => Ok(Found::Ours(version)),
        0 if tables.is_empty() && version == 0 => Ok(Found::Empty),
        0 => Err(SqliteError::NotOurs {
            path: path.into(),
            what: format!("tables {}", tables.join(", ")),
        }),
        other => Err(SqliteError::NotOurs {
            path: path.into(),
            what: format!("application id {other:#010x}"),
        }),
    }
}

/// Whether a read-only connection failed because the file has a hot rollback journal.
fn is_hot_journal(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_READONLY_ROLLBACK)
}

/// Rolls back a hot journal: the first read of a read-write connection (never creating the
/// file) replays it, which restores the last committed state.
fn recover_hot_journal(path: &Path) -> rusqlite::Result<()> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(drop)
}

fn classify(path: &Path, source: rusqlite::Error) -> SqliteError {
    if is_corrupt(&source) {
        SqliteError::Corrupt {
            path: path.into(),
            detail: source.to_string(),
        }
    } else {
        SqliteError::Open {
            path: path.into(),
            source,
        }
    }
}

/// Brings an open read-write connection up to `target` (at most [`SCHEMA_VERSION`]).
pub(crate) fn migrate(conn: &mut Connection, path: &Path, target: i64) -> Result<(), SqliteError> {
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|source| classify(path, source))?;
        // Read inside the write transaction: another process may have migrated meanwhile.
        let (app_id, version): (i32, i64) = tx
            .query_row(
                "SELECT * FROM pragma_application_id, pragma_user_version",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|source| classify(path, source))?;
        if version > 0 && app_id != APPLICATION_ID {
            return Err(SqliteError::NotOurs {
                path: path.into(),
                what: format!("application id {app_id:#010x}"),
            });
        }
        if version >= target {
            return Ok(());
        }
        let Some(step) = usize::try_from(version)
            .ok()
            .and_then(|v| MIGRATIONS.get(v))
        else {
            return Err(SqliteError::TooNew {
                path: path.into(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        };
        let next = version + 1;
        match step {
            Step::Sql(sql) => tx.execute_batch(sql),
            Step::Rust(f) => f(&tx),
        }
        .and_then(|()| tx.pragma_update(None, "user_version", next))
        .and_then(|()| tx.commit())
        .map_err(|source| SqliteError::Migrate {
            path: path.into(),
            version: next,
            source,
        })?;
    }
}
