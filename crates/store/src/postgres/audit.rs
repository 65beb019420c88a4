//! The audit log on PostgreSQL.
//!
//! **Writes** put their AuditEvents in `audit_outbox` (migration 13) inside their own
//! transaction ([`to_outbox`]), taking no chain lock, so concurrent writes do not serialise
//! on the chain. **Chaining** happens in one place: [`chain`], inside a transaction that takes
//! a transaction-scoped advisory lock keyed by the schema (so appenders in every server
//! process have one order), moves up to [`DRAIN_BATCH`] outbox rows (in `id` order) into
//! `audit_log`, then appends any records it was given after them. The server's audit task
//! calls it with its batches ([`PgStore::append_audit`]) and on every flush tick
//! ([`PgStore::drain_audit_outbox`]); [`PgStore::list_audit`] drains first, so a write's
//! record is listed as soon as the write has committed, and [`PgStore::close`] drains last.
//!
//! A write's record therefore takes its place in the chain when it is drained, not when the
//! write commits: its `recorded` time is unchanged, and the chain proves that nothing was
//! changed, removed or reordered after chaining. Until then it is protected as the write
//! itself is (same transaction, same database).

use tokio_postgres::Transaction;

use super::{PgStore, pg_error};
use crate::audit::{self, AuditEntry, AuditQuery, AuditRecord, ChainHead, Sensitivity};
use crate::sql::Dialect;
use crate::{Result, StoreError};

/// First key of the two-key advisory lock guarding the chain (the second is the schema).
const AUDIT_LOCK: i32 = 0x4155_4454; // "AUDT"

/// The most outbox rows chained in one transaction.
pub(super) const DRAIN_BATCH: i64 = 5_000;

const LOCK_SQL: &str = "SELECT pg_advisory_xact_lock($1::int4, hashtext(current_schema()))";
const HEAD_SQL: &str = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1";
const INSERT_SQL: &str = "INSERT INTO audit_log \
     (seq, recorded_us, patient_id, sensitivity, event, prev_hash, hash) \
     SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[], $5::bytea[], \
     $6::bytea[], $7::bytea[])";
/// A write's records, into the outbox (in the write's transaction; ids in record order).
pub(super) const OUTBOX_SQL: &str = "INSERT INTO audit_outbox \
     (recorded_us, patient_id, sensitivity, event) \
     SELECT r, p, s, e FROM unnest($1::int8[], $2::text[], $3::text[], $4::bytea[]) \
     WITH ORDINALITY AS u(r, p, s, e, o) ORDER BY o";
/// Takes the oldest outbox rows (under the chain lock, so no other drainer runs; `SKIP
/// LOCKED` only keeps a stray concurrent reader of the rows from blocking it).
const TAKE_SQL: &str = "DELETE FROM audit_outbox WHERE id IN \
     (SELECT id FROM audit_outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) \
     RETURNING id, recorded_us, patient_id, sensitivity, event";

/// Puts a write's `records` into the outbox inside the write's transaction `tx` (`stmt`:
/// [`OUTBOX_SQL`], prepared). No lock: the records are chained later by [`chain`].
pub(super) async fn to_outbox(
    tx: &Transaction<'_>,
    stmt: &tokio_postgres::Statement,
    records: &[AuditRecord],
) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let recorded: Vec<i64> = records.iter().map(|r| r.recorded_us).collect();
    let patients: Vec<Option<&str>> = records.iter().map(|r| r.patient_id.as_deref()).collect();
    let sensitivity: Vec<&str> = records.iter().map(|r| r.sensitivity.as_str()).collect();
    let events: Vec<&[u8]> = records.iter().map(|r| &r.event[..]).collect();
    tx.execute(stmt, &[&recorded, &patients, &sensitivity, &events])
        .await
        .map_err(pg_error)?;
    Ok(())
}

/// Inside `tx`: takes the chain lock (held until `tx` ends), moves up to [`DRAIN_BATCH`]
/// outbox rows into the chain in `id` order, then appends `records` after them. Returns how
/// many outbox rows were chained. The transaction takes no other lock, so it cannot deadlock.
async fn chain(tx: &Transaction<'_>, records: &[AuditRecord]) -> Result<usize> {
    tx.execute(LOCK_SQL, &[&AUDIT_LOCK])
        .await
        .map_err(pg_error)?;
    let mut taken = tx
        .query(TAKE_SQL, &[&DRAIN_BATCH])
        .await
        .map_err(pg_error)?;
    taken.sort_by_key(|r| r.get::<_, i64>(0));
    let drained = taken.len();
    if drained == 0 && records.is_empty() {
        return Ok(0);
    }
    let mut all: Vec<AuditRecord> = Vec::with_capacity(drained + records.len());
    for r in &taken {
        let id: i64 = r.get(0);
        let sensitivity: &str = r.get(3);
        all.push(AuditRecord {
            recorded_us: r.get(1),
            patient_id: r.get(2),
            sensitivity: Sensitivity::parse(sensitivity).ok_or_else(|| {
                StoreError::Backend(format!("audit outbox row {id}: unknown sensitivity"))
            })?,
            event: bytes::Bytes::copy_from_slice(r.get::<_, &[u8]>(4)),
        });
    }
    drop(taken);
    all.extend_from_slice(records);
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
    let entries = audit::link(head, &all);
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
    Ok(drained)
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
    /// Chains `records` (the audit task's batch) after the oldest outbox rows, in one
    /// transaction under the chain lock.
    pub async fn append_audit(&self, records: Vec<AuditRecord>) -> Result<()> {
        let closed = self.closed.read().await;
        if *closed {
            return Err(StoreError::Closed);
        }
        let mut conn = self.pool.get().await?;
        let tx = conn.client.transaction().await.map_err(pg_error)?;
        chain(&tx, &records).await?;
        tx.commit().await.map_err(pg_error)?;
        drop(closed);
        Ok(())
    }

    /// Chains every outbox row committed before the call (in transactions of up to
    /// [`DRAIN_BATCH`] rows); returns how many. Works after [`PgStore::close`] too (close
    /// itself drains last).
    pub async fn drain_audit_outbox(&self) -> Result<usize> {
        let mut total = 0;
        let mut conn = self.pool.get().await?;
        loop {
            let tx = conn.client.transaction().await.map_err(pg_error)?;
            let n = chain(&tx, &[]).await?;
            tx.commit().await.map_err(pg_error)?;
            total += n;
            // A short batch: caught up (rows committed later wait for the next drain).
            if (n as i64) < DRAIN_BATCH {
                return Ok(total);
            }
        }
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

    /// Drains the outbox first, so the listing includes every write committed before it.
    pub async fn list_audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        self.drain_audit_outbox().await?;
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
