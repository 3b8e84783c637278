//! PostgreSQL's raw write ceiling, shared by `store-bench` and `import-bench`.

use std::time::{Duration, Instant};

/// PostgreSQL's raw ceiling: the rows the store wrote into schema `store` (already encoded:
/// dictionary numbers, packed bodies, ADR 0015), read into memory first, then timed: one
/// binary `COPY` in one transaction into an empty table with the same columns and indexes, in
/// schema `raw`. Returns (time, rows).
pub(crate) async fn ceiling(
    url: &str,
    store: &str,
    raw: &str,
) -> Result<(Duration, u64), tokio_postgres::Error> {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    use tokio_postgres::types::Type;
    let (mut client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {raw} CASCADE; CREATE SCHEMA {raw};
             CREATE TABLE {raw}.measurement (LIKE {store}.measurement INCLUDING ALL);
             CHECKPOINT"
        ))
        .await?;
    let rows = client
        .query(
            &format!(
                "SELECT id, sid, kid, t_s, t_ns, version, body, payload_type, payload
                 FROM {store}.measurement"
            ),
            &[],
        )
        .await?;
    let t = Instant::now();
    let tx = client.transaction().await?;
    let sink = tx
        .copy_in(&format!(
            "COPY {raw}.measurement (id, sid, kid, t_s, t_ns, version, body, payload_type, payload)
             FROM STDIN BINARY"
        ))
        .await?;
    let writer = BinaryCopyInWriter::new(
        sink,
        &[
            Type::UUID,
            Type::INT4,
            Type::INT4,
            Type::INT8,
            Type::INT4,
            Type::INT8,
            Type::BYTEA,
            Type::TEXT,
            Type::BYTEA,
        ],
    );
    let mut writer = std::pin::pin!(writer);
    for r in &rows {
        let id: uuid::Uuid = r.get(0);
        let (sid, kid, t_s, t_ns, version): (i32, i32, i64, i32, i64) =
            (r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
        let (body, payload_type, payload): (&[u8], Option<&str>, Option<&[u8]>) =
            (r.get(6), r.get(7), r.get(8));
        writer
            .as_mut()
            .write(&[
                &id,
                &sid,
                &kid,
                &t_s,
                &t_ns,
                &version,
                &body,
                &payload_type,
                &payload,
            ])
            .await?;
    }
    let n = writer.finish().await?;
    tx.commit().await?;
    Ok((t.elapsed(), n))
}
