//! The writer thread: the only connection that writes, group-committing queued writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::{Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use super::{BATCH_CAP, MIGRATIONS, backend, to_sql};
use crate::sql::{self, Dialect};
use crate::*;

pub(super) type Reply = oneshot::Sender<Result<Stored>>;
pub(super) type AllReply = oneshot::Sender<Result<Vec<Stored>, WriteAllError>>;
pub(super) type AuditReply = oneshot::Sender<Result<()>>;

pub(super) enum Job {
    Write(Box<Write>, Reply),
    /// Several writes, all or nothing (`Store::write_all`): one savepoint for them all.
    WriteAll(Vec<Write>, AllReply),
    /// Audit records to append to the chain (`Store::append_audit`), all or nothing.
    Audit(Vec<AuditRecord>, AuditReply),
    /// Runs on the write connection, in order with the writes.
    Call(Box<dyn FnOnce(&mut Connection) + Send>),
    /// Finish what is queued, answer, stop.
    Close(oneshot::Sender<()>),
}

/// A job waiting in the current batch: one write, or several that stand or fall together.
pub(super) enum Pending {
    One(Box<Write>, Reply),
    All(Vec<Write>, AllReply),
    Audit(Vec<AuditRecord>, AuditReply),
}

impl Pending {
    fn writes(&self) -> &[Write] {
        match self {
            Pending::One(w, _) => std::slice::from_ref(&**w),
            Pending::All(ws, _) => ws,
            Pending::Audit(..) => &[],
        }
    }

    fn refuse(self, e: StoreError) {
        match self {
            Pending::One(_, reply) => {
                let _ = reply.send(Err(e));
            }
            Pending::All(_, reply) => {
                let _ = reply.send(Err(WriteAllError::whole(e)));
            }
            Pending::Audit(_, reply) => {
                let _ = reply.send(Err(e));
            }
        }
    }
}

/// The outcome of one pending job: `Err` names the refused write (by position in the job)
/// when one was refused.
type Outcome = std::result::Result<(), (Option<usize>, StoreError)>;

pub(super) fn run(mut conn: Connection, mut rx: mpsc::Receiver<Job>, commits: Arc<AtomicU64>) {
    let mut batch: Vec<Pending> = Vec::with_capacity(BATCH_CAP);
    let mut closing = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Write(w, reply) => batch.push(Pending::One(w, reply)),
                Job::WriteAll(ws, reply) => batch.push(Pending::All(ws, reply)),
                Job::Audit(rs, reply) => batch.push(Pending::Audit(rs, reply)),
                Job::Call(f) => {
                    commit_batch(&mut conn, &mut batch, &commits);
                    f(&mut conn);
                }
                Job::Close(done) => {
                    closing.push(done);
                    break;
                }
            }
            if batch.len() < BATCH_CAP {
                next = rx.try_recv().ok();
            }
        }
        commit_batch(&mut conn, &mut batch, &commits);
        if !closing.is_empty() {
            break;
        }
    }
    // Refuse whatever arrived after the close (and anything still waiting to be queued).
    rx.close();
    while let Ok(job) = rx.try_recv() {
        match job {
            Job::Write(_, reply) => {
                let _ = reply.send(Err(StoreError::Closed));
            }
            Job::WriteAll(_, reply) => {
                let _ = reply.send(Err(WriteAllError::whole(StoreError::Closed)));
            }
            Job::Audit(_, reply) => {
                let _ = reply.send(Err(StoreError::Closed));
            }
            Job::Call(f) => drop(f),
            Job::Close(done) => closing.push(done),
        }
    }
    // Closing the last write connection checkpoints the WAL into the database file.
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing the SQLite write connection");
    }
    for done in closing {
        let _ = done.send(());
    }
}

/// Runs the batch in one transaction, a savepoint per job (one write, or all the writes of
/// a `write_all`), commits once, answers each.
fn commit_batch(conn: &mut Connection, batch: &mut Vec<Pending>, commits: &AtomicU64) {
    if batch.is_empty() {
        return;
    }
    let outcomes = run_batch(conn, batch);
    if outcomes.is_ok() {
        commits.fetch_add(1, Ordering::Relaxed);
    }
    tracing::trace!(jobs = batch.len(), ok = outcomes.is_ok(), "sqlite batch");
    match outcomes {
        Ok(results) => {
            for (pending, r) in batch.drain(..).zip(results) {
                match pending {
                    Pending::One(w, reply) => {
                        let _ = reply.send(r.map(|()| stored_of(*w)).map_err(|(_, e)| e));
                    }
                    Pending::All(ws, reply) => {
                        let _ = reply.send(
                            r.map(|()| ws.into_iter().map(stored_of).collect())
                                .map_err(|(index, error)| WriteAllError { index, error }),
                        );
                    }
                    Pending::Audit(_, reply) => {
                        let _ = reply.send(r.map_err(|(_, e)| e));
                    }
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, jobs = batch.len(), "sqlite batch failed");
            for pending in batch.drain(..) {
                pending.refuse(StoreError::Backend(e.clone()));
            }
        }
    }
}

/// `Ok(per-job outcomes)` if the transaction committed; `Err` if nothing was committed.
fn run_batch(conn: &Connection, batch: &[Pending]) -> Result<Vec<Outcome>, String> {
    exec(conn, "BEGIN IMMEDIATE").map_err(|e| format!("cannot begin: {e}"))?;
    let mut results = Vec::with_capacity(batch.len());
    for pending in batch {
        let r: Outcome = match exec(conn, "SAVEPOINT w") {
            Ok(()) => match apply_job(conn, pending) {
                Ok(()) => exec(conn, "RELEASE w").map_err(|e| (None, backend(e))),
                Err((i, e)) => {
                    // Undo this job only; the savepoint stays open until released.
                    let undone = exec(conn, "ROLLBACK TO w").and_then(|()| exec(conn, "RELEASE w"));
                    if let Err(u) = undone {
                        abandon(conn);
                        return Err(format!("cannot roll back a failed write ({e}): {u}"));
                    }
                    Err((Some(i), e))
                }
            },
            Err(e) => Err((None, backend(e))),
        };
        // Some errors (I/O, disk full) make SQLite roll back the whole transaction: then
        // nothing of this batch will be committed, whatever the other writes said.
        if conn.is_autocommit() {
            return Err(format!("the transaction was rolled back by SQLite ({r:?})"));
        }
        results.push(r);
    }
    if let Err(e) = exec(conn, "COMMIT") {
        abandon(conn);
        return Err(format!("commit failed: {e}"));
    }
    Ok(results)
}

/// Applies a job: its writes in order (each with the audit records attached to it), or its
/// audit records. The first refusal stops it (and names its position).
fn apply_job(conn: &Connection, pending: &Pending) -> std::result::Result<(), (usize, StoreError)> {
    if let Pending::Audit(records, _) = pending {
        return super::audit::append(conn, records).map_err(|e| (0, backend(e)));
    }
    for (i, w) in pending.writes().iter().enumerate() {
        apply(conn, w).map_err(|e| (i, e))?;
        if !w.audit.is_empty() {
            super::audit::append(conn, &w.audit).map_err(|e| (i, backend(e)))?;
        }
    }
    Ok(())
}

fn abandon(conn: &Connection) {
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
}

fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// One write inside the batch's transaction (in its own savepoint).
fn apply(conn: &Connection, w: &Write) -> Result<()> {
    // (version_id, rid, seq) of the current version.
    let found: Option<(i64, i64, i64)> = conn
        .prepare_cached(
            "SELECT version_id, rid, seq FROM resource_current WHERE resource_type = ?1 AND id = ?2",
        )
        .and_then(|mut s| {
            s.query_row((&w.resource_type, &w.id), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
        })
        .map_err(backend)?;
    let current = found.map(|(v, _, _)| v);
    if current != w.replaces {
        return Err(StoreError::VersionConflict { current });
    }
    if let Some(criteria) = &w.unless_exists {
        let ids = find_by_tokens(conn, &w.resource_type, criteria).map_err(backend)?;
        if !ids.is_empty() {
            return Err(StoreError::ConditionMatched(ids));
        }
    }
    let body: &[u8] = if w.deleted { &[] } else { &w.body };
    // The access decision's inputs: a deletion keeps those of the version it deletes.
    let (patient, sections, labels, flags) = match (w.deleted, found) {
        (true, Some((_, _, old))) => conn
            .prepare_cached(
                "SELECT acc_patient, acc_sections, acc_labels, acc_flags \
                 FROM resource_versions WHERE seq = ?1",
            )
            .and_then(|mut s| {
                s.query_row([old], |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                    ))
                })
            })
            .map_err(backend)?,
        _ => {
            let (p, s, l, f) = w.access.columns();
            (p.map(str::to_owned), s, l, f)
        }
    };
    conn.prepare_cached(
        "INSERT INTO resource_versions (resource_type, id, version_id, last_updated_us, deleted, \
         body, acc_patient, acc_sections, acc_labels, acc_flags) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .and_then(|mut s| {
        s.execute(rusqlite::params![
            &w.resource_type,
            &w.id,
            w.version_id,
            w.last_updated_us,
            w.deleted,
            body,
            patient,
            sections,
            labels,
            flags
        ])
    })
    .map_err(backend)?;
    let seq = conn.last_insert_rowid();
    if flags & crate::acc_flags::MORE_CHILDREN != 0 {
        match (w.deleted, found) {
            (true, Some((_, _, old))) => {
                conn.prepare_cached(
                    "INSERT INTO access_child (seq, patient) \
                     SELECT ?1, patient FROM access_child WHERE seq = ?2",
                )
                .and_then(|mut s| s.execute([seq, old]))
                .map_err(backend)?;
            }
            _ => {
                let mut insert = conn
                    .prepare_cached(
                        "INSERT OR IGNORE INTO access_child (seq, patient) VALUES (?1, ?2)",
                    )
                    .map_err(backend)?;
                for p in w.access.patients.iter().skip(1) {
                    insert.execute((seq, p)).map_err(backend)?;
                }
            }
        }
    }
    // A resource's `rid` (its index rows' key) is the seq of its first version, for good.
    let rid = match found {
        Some((_, rid, _)) => {
            conn.prepare_cached(
                "UPDATE resource_current SET version_id = ?2, seq = ?3, deleted = ?4, \
                 last_updated_us = ?5, acc_patient = ?6, acc_sections = ?7, acc_labels = ?8, \
                 acc_flags = ?9 WHERE rid = ?1",
            )
            .and_then(|mut s| {
                s.execute(rusqlite::params![
                    rid,
                    w.version_id,
                    seq,
                    w.deleted,
                    w.last_updated_us,
                    patient,
                    sections,
                    labels,
                    flags
                ])
            })
            .map_err(backend)?;
            rid
        }
        None => {
            conn.prepare_cached(
                "INSERT INTO resource_current \
                 (rid, resource_type, id, version_id, seq, deleted, last_updated_us, \
                  acc_patient, acc_sections, acc_labels, acc_flags) \
                 VALUES (?1, ?2, ?3, ?4, ?1, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .and_then(|mut s| {
                s.execute(rusqlite::params![
                    seq,
                    &w.resource_type,
                    &w.id,
                    w.version_id,
                    w.deleted,
                    w.last_updated_us,
                    patient,
                    sections,
                    labels,
                    flags
                ])
            })
            .map_err(backend)?;
            seq
        }
    };
    // The index tables change in the same transaction as the version.
    super::search::replace_indexes(conn, w, rid, found.is_some()).map_err(backend)?;
    if w.resource_type == "CareTeam" {
        replace_members(conn, w, rid).map_err(backend)?;
    }
    Ok(())
}

/// A CareTeam's `access_member` rows (migration 16), replaced with the new version's.
fn replace_members(conn: &Connection, w: &Write, rid: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM access_member WHERE rid = ?1")?
        .execute([rid])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO access_member (rid, patient, member_type, member_id, starts, ends) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (patient, m) in crate::members::rows(w) {
        insert.execute(rusqlite::params![
            rid,
            patient,
            m.member_type,
            m.member_id,
            m.starts,
            m.ends
        ])?;
    }
    Ok(())
}

pub(super) fn find_by_tokens(
    conn: &Connection,
    resource_type: &str,
    criteria: &[TokenCriterion],
) -> rusqlite::Result<Vec<String>> {
    let (text, args) = sql::find_by_tokens(Dialect::Sqlite, resource_type, criteria);
    let mut stmt = conn.prepare_cached(&text)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args.iter().map(to_sql)), |r| {
        r.get(0)
    })?;
    rows.collect()
}

/// Applies the migrations not yet recorded in `schema_migrations`, in one transaction.
/// `BEGIN IMMEDIATE` serialises concurrent migrators (other processes included).
pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = super::write_transaction(conn).map_err(backend)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (\
           version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_us INTEGER NOT NULL)",
    )
    .map_err(backend)?;
    let latest: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(backend)?;
    for m in MIGRATIONS.iter().filter(|m| m.version > latest) {
        tx.execute_batch(m.sql).map_err(|e| {
            StoreError::Backend(format!("migration {} ({}): {e}", m.version, m.name))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at_us) VALUES (?1, ?2, ?3)",
            (m.version, m.name, now_us()),
        )
        .map_err(backend)?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "applied SQLite migration"
        );
    }
    if let Some(known) = MIGRATIONS.last()
        && latest > known.version
    {
        tracing::warn!(
            latest,
            known = known.version,
            "the database has migrations this build does not know"
        );
    }
    tx.commit().map_err(backend)
}

pub(crate) fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
