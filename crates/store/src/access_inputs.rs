//! Filling in the access decision's inputs for versions stored before migration 14
//! (see `migrations/*/0014_access_inputs.sql`). The server computes each version's
//! [`AccessInputs`] from its stored body with the `access` crate's readers; the store
//! records them beside the version (and on `resource_current` when it is the current one).
//! Stored bodies are never changed.

use bytes::Bytes;

use crate::{AccessInputs, Result, Store, acc_flags};

/// Versions filled in per transaction.
const BATCH: i64 = 500;

/// Pending versions, oldest first: `seq` and the body to compute from (for a deletion, the
/// body of the last version with content before it: a deletion is seen by those who could
/// see what it deleted).
const PENDING_SQL: &str = "SELECT v.seq, CASE WHEN v.deleted THEN (SELECT p.body FROM resource_versions p \
     WHERE p.resource_type = v.resource_type AND p.id = v.id AND p.seq < v.seq AND NOT p.deleted \
     ORDER BY p.seq DESC LIMIT 1) ELSE v.body END \
     FROM resource_versions v WHERE v.acc_flags = 0 ORDER BY v.seq LIMIT ";

impl Store {
    /// Computes and records the access inputs of every version that has none yet
    /// (databases written before migration 14), in batches; returns how many. Run at
    /// start-up, before requests are served.
    pub async fn fill_access_inputs(
        &self,
        compute: impl Fn(&[u8]) -> AccessInputs,
    ) -> Result<usize> {
        let mut done = 0;
        loop {
            let pending = self.pending_access().await?;
            if pending.is_empty() {
                return Ok(done);
            }
            done += pending.len();
            let rows: Vec<(i64, AccessInputs)> = pending
                .into_iter()
                .map(|(seq, body)| (seq, compute(&body)))
                .collect();
            match self {
                Store::Sqlite(s) => s.set_access(rows).await?,
                Store::Postgres(s) => s.set_access(rows).await?,
            }
        }
    }

    async fn pending_access(&self) -> Result<Vec<(i64, Bytes)>> {
        let sql = format!("{PENDING_SQL}{BATCH}");
        match self {
            Store::Sqlite(s) => s.pending_access(&sql),
            Store::Postgres(s) => s.pending_access(&sql).await,
        }
    }
}

impl crate::sqlite::SqliteStore {
    fn pending_access(&self, sql: &str) -> Result<Vec<(i64, Bytes)>> {
        self.with_reader(|c| {
            let mut stmt = c.prepare(sql)?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get(0)?,
                    Bytes::from(r.get::<_, Option<Vec<u8>>>(1)?.unwrap_or_default()),
                ))
            })?;
            rows.collect()
        })
    }

    async fn set_access(&self, rows: Vec<(i64, AccessInputs)>) -> Result<()> {
        self.in_transaction(move |tx| {
            for (seq, inputs) in &rows {
                let (patient, sections, labels, flags) = inputs.columns();
                for table in ["resource_versions", "resource_current"] {
                    tx.prepare_cached(&format!(
                        "UPDATE {table} SET acc_patient = ?1, acc_sections = ?2, \
                         acc_labels = ?3, acc_flags = ?4 WHERE seq = ?5"
                    ))?
                    .execute(rusqlite::params![patient, sections, labels, flags, seq])?;
                }
                if flags & acc_flags::MORE_CHILDREN != 0 {
                    for p in inputs.patients.iter().skip(1) {
                        tx.prepare_cached(
                            "INSERT OR IGNORE INTO access_child (seq, patient) VALUES (?1, ?2)",
                        )?
                        .execute((seq, p))?;
                    }
                }
                if !inputs.members.is_empty() {
                    tx.prepare_cached(crate::members::CLEAR_SQLITE)?
                        .execute([seq])?;
                    for m in &inputs.members {
                        tx.prepare_cached(crate::members::BACKFILL_SQLITE)?
                            .execute(rusqlite::params![
                                m.member_type,
                                m.member_id,
                                m.starts,
                                m.ends,
                                seq
                            ])?;
                    }
                }
            }
            Ok(())
        })
        .await
    }
}
