//! The audit log on SQLite: appended only on the writer thread (so the chain has the writer's
//! one order), read on the reader connections.

use rusqlite::{Connection, OptionalExtension, Row};
use tokio::sync::oneshot;

use super::{SqliteStore, to_sql, writer};
use crate::audit::{self, AuditEntry, AuditQuery, AuditRecord, ChainHead};
use crate::sql::Dialect;
use crate::{Result, StoreError};

const HEAD_SQL: &str = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1";

/// Appends `records` after the current head, inside the writer's open transaction (and the
/// job's savepoint: a rolled-back job takes its records with it, and the next job reads the
/// head again).
pub(super) fn append(conn: &Connection, records: &[AuditRecord]) -> rusqlite::Result<()> {
    let entries = audit::link(head(conn)?, records);
    let mut insert = conn.prepare_cached(
        "INSERT INTO audit_log (seq, recorded_us, patient_id, sensitivity, event, prev_hash, hash) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for e in &entries {
        insert.execute((
            e.seq,
            e.record.recorded_us,
            e.record.patient_id.as_deref(),
            e.record.sensitivity.as_str(),
            &e.record.event[..],
            &e.prev_hash[..],
            &e.hash[..],
        ))?;
    }
    Ok(())
}

fn head(conn: &Connection) -> rusqlite::Result<Option<ChainHead>> {
    conn.prepare_cached(HEAD_SQL)?
        .query_row([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
        .optional()?
        .map(|(seq, hash)| {
            let hash = hash.try_into().map_err(|_| {
                rusqlite::Error::InvalidColumnType(1, "hash".into(), rusqlite::types::Type::Blob)
            })?;
            Ok(ChainHead { seq, hash })
        })
        .transpose()
}

/// A row of `audit::COLUMNS`.
fn row(r: &Row<'_>) -> rusqlite::Result<Result<AuditEntry>> {
    Ok(audit::entry(
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        &r.get::<_, String>(3)?,
        r.get(4)?,
        &r.get::<_, Vec<u8>>(5)?,
        &r.get::<_, Vec<u8>>(6)?,
    ))
}

impl SqliteStore {
    pub async fn append_audit(&self, records: Vec<AuditRecord>) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .send(writer::Job::Audit(records, tx))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    pub async fn audit_head(&self) -> Result<Option<ChainHead>> {
        self.with_reader(head)
    }

    pub async fn list_audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let (text, args) = audit::list_sql(Dialect::Sqlite, q);
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(&text)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args.iter().map(to_sql)), row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?
        .into_iter()
        .collect()
    }

    pub async fn audit_chain(&self, after_seq: i64, limit: usize) -> Result<Vec<AuditEntry>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {} FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                audit::COLUMNS
            ))?;
            let rows = stmt.query_map((after_seq, limit), row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?
        .into_iter()
        .collect()
    }
}
