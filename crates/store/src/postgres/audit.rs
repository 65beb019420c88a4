//! The audit log on PostgreSQL: appenders (one per server process, perhaps several processes)
//! serialise on a transaction-scoped advisory lock keyed by the schema, then read the head
//! and append under it, so the chain has one order.

use tokio_postgres::Transaction;

use super::{PgStore, pg_error};
use crate::audit::{self, AuditEntry, AuditQuery, AuditRecord, ChainHead};
use crate::sql::Dialect;
use crate::{Result, StoreError};

/// First key of the two-key advisory lock guarding the chain (the second is the schema).
const AUDIT_LOCK: i32 = 0x4155_4454; // "AUDT"

const LOCK_SQL: &str = "SELECT pg_advisory_xact_lock($1::int4, hashtext(current_schema()))";
const HEAD_SQL: &str = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1";
const INSERT_SQL: &str = "INSERT INTO audit_log \
     (seq, recorded_us, patient_id, sensitivity, event, prev_hash, hash) \
     SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[], $5::bytea[], \
     $6::bytea[], $7::bytea[])";

/// Appends `records` inside `tx`, after taking the chain lock (held until `tx` ends). Take it
/// after any other lock the transaction needs, so that it is always the last one taken.
pub(super) async fn append(tx: &Transaction<'_>, records: &[AuditRecord]) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    tx.execute(LOCK_SQL, &[&AUDIT_LOCK])
        .await
        .map_err(pg_error)?;
    let head = match tx.query_opt(HEAD_SQL, &[]).await.map_err(pg_error)? {
        Some(r) => Some(ChainHead {
            seq: r.get(0),
            hash: r
                .get::<_, &[u8]>(1)
                .try_into()
                .map_err(|_| StoreError::Backend("the audit head's hash is not 32 bytes".into()))?,
        }),
        None => None,
    };
    let entries = audit::link(head, records);
    let seqs: Vec<i64> = entries.iter().map(|e| e.seq).collect();
    let recorded: Vec<i64> = entries.iter().map(|e| e.record.recorded_us).collect();
    let patients: Vec<Option<&str>> = entries
        .iter()
        .map(|e| e.record.patient_id.as_deref())
        .collect();
    let sensitivity: Vec<&str> = entries
        .iter()
        .map(|e| e.record.sensitivity.as_str())
        .collect();
    let events: Vec<&[u8]> = entries.iter().map(|e| &e.record.event[..]).collect();
    let prev: Vec<&[u8]> = entries.iter().map(|e| &e.prev_hash[..]).collect();
    let hashes: Vec<&[u8]> = entries.iter().map(|e| &e.hash[..]).collect();
    tx.execute(
        INSERT_SQL,
        &[
            &seqs,
            &recorded,
            &patients,
            &sensitivity,
            &events,
            &prev,
            &hashes,
        ],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

fn entry(r: &tokio_postgres::Row) -> Result<AuditEntry> {
    audit::entry(
        r.get(0),
        r.get(1),
        r.get(2),
        r.get(3),
        r.get::<_, &[u8]>(4).to_vec(),
        r.get(5),
        r.get(6),
    )
}

impl PgStore {
    pub async fn append_audit(&self, records: Vec<AuditRecord>) -> Result<()> {
        let closed = self.closed.read().await;
        if *closed {
            return Err(StoreError::Closed);
        }
        let mut conn = self.pool.get().await?;
        let tx = conn.client.transaction().await.map_err(pg_error)?;
        append(&tx, &records).await?;
        tx.commit().await.map_err(pg_error)?;
        drop(closed);
        Ok(())
    }

    pub async fn audit_head(&self) -> Result<Option<ChainHead>> {
        let conn = self.pool.get().await?;
        let row = conn
            .client
            .query_opt(HEAD_SQL, &[])
            .await
            .map_err(pg_error)?;
        row.map(|r| {
            Ok(ChainHead {
                seq: r.get(0),
                hash: r.get::<_, &[u8]>(1).try_into().map_err(|_| {
                    StoreError::Backend("the audit head's hash is not 32 bytes".into())
                })?,
            })
        })
        .transpose()
    }

    pub async fn list_audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let (text, args) = audit::list_sql(Dialect::Postgres, q);
        let mut conn = self.pool.get().await?;
        let stmt = conn.prepare(&text).await?;
        let rows = conn
            .client
            .query(&stmt, &super::to_sql(&args))
            .await
            .map_err(pg_error)?;
        rows.iter().map(entry).collect()
    }

    pub async fn audit_chain(&self, after_seq: i64, limit: usize) -> Result<Vec<AuditEntry>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut conn = self.pool.get().await?;
        let stmt = conn
            .prepare(&format!(
                "SELECT {} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
                audit::COLUMNS
            ))
            .await?;
        let rows = conn
            .client
            .query(&stmt, &[&after_seq, &limit])
            .await
            .map_err(pg_error)?;
        rows.iter().map(entry).collect()
    }
}
