//! The PostgreSQL backend: a region's deployment, several server processes on one database.
//!
//! * **URL**: `postgres://user@host:port/database` (or `postgresql://`), parsed by
//!   tokio-postgres, so every libpq-style parameter it knows works. To keep the tables in a
//!   schema of their own, pass the server option `search_path` through the `options`
//!   parameter: `postgres://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dmyschema`
//!   (the schema must already exist; this is how each test gets a fresh schema, see
//!   `passport_store::testing::fresh_pg_url` behind the `testing` feature).
//! * **Connections**: a pool of at most [`Limits::pool_size`] clients, opened on demand;
//!   each caches its prepared statements and runs with `statement_timeout` set
//!   ([`Limits::statement_timeout`]; migrations and `ANALYZE` lift it for themselves).
//! * **Writes**: one transaction per write, at READ COMMITTED. Lost updates are impossible:
//!   the current row is locked (`SELECT … FOR UPDATE`) before the version check, so two
//!   writers replacing the same version serialise and the second sees a conflict; two
//!   creators of the same id collide on the unique (type, id, version) key, which is
//!   reported as [`StoreError::VersionConflict`]. Conditional creates and writes that add
//!   index tokens first take transaction-scoped advisory locks on a hash of (type, param,
//!   code) of each criterion / token, in sorted order, so a conditional create's check and
//!   a concurrent write that would make it match cannot interleave.
//! * **Migrations**: `migrate()` holds a session advisory lock (keyed by the current schema)
//!   while it applies what `schema_migrations` lacks, so concurrent migrators wait.
//! * **close()**: waits for the writes in progress, then refuses new ones. Reads keep working.

mod access_inputs;
mod accounts;
mod audit;
mod break_glass;
mod card_links;
mod identities;
mod oauth;
mod onboarding;
mod pool;
mod search;
mod statistics;

use tokio::sync::RwLock;
use tokio_postgres::Config;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::sql::{self, Arg, Dialect, Migration};
use crate::*;
use pool::{Conn, Pool};

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "search",
        sql: include_str!("../migrations/postgres/0002_search.sql"),
    },
    Migration {
        version: 3,
        name: "audit",
        sql: include_str!("../migrations/postgres/0003_audit.sql"),
    },
    Migration {
        version: 4,
        name: "accounts",
        sql: include_str!("../migrations/postgres/0004_accounts.sql"),
    },
    Migration {
        version: 5,
        name: "oauth",
        sql: include_str!("../migrations/postgres/0005_oauth.sql"),
    },
    Migration {
        version: 6,
        name: "external_identities",
        sql: include_str!("../migrations/postgres/0006_external_identities.sql"),
    },
    Migration {
        version: 7,
        name: "onboarding",
        sql: include_str!("../migrations/postgres/0007_onboarding.sql"),
    },
    Migration {
        version: 8,
        name: "search_rid",
        sql: include_str!("../migrations/postgres/0008_search_rid.sql"),
    },
    Migration {
        version: 9,
        name: "partial_reference_url",
        sql: include_str!("../migrations/postgres/0009_partial_reference_url.sql"),
    },
    Migration {
        version: 10,
        name: "access_enforcement",
        sql: include_str!("../migrations/postgres/0010_access_enforcement.sql"),
    },
    Migration {
        version: 11,
        name: "break_glass",
        sql: include_str!("../migrations/postgres/0011_break_glass.sql"),
    },
    Migration {
        version: 12,
        name: "launch",
        sql: include_str!("../migrations/postgres/0012_launch.sql"),
    },
    Migration {
        version: 13,
        name: "audit_outbox",
        sql: include_str!("../migrations/postgres/0013_audit_outbox.sql"),
    },
    Migration {
        version: 14,
        name: "access_inputs",
        sql: include_str!("../migrations/postgres/0014_access_inputs.sql"),
    },
    Migration {
        version: 15,
        name: "email_verification",
        sql: include_str!("../migrations/postgres/0015_email_verification.sql"),
    },
    Migration {
        version: 16,
        name: "care_team_members",
        sql: include_str!("../migrations/postgres/0016_care_team_members.sql"),
    },
    Migration {
        version: 17,
        name: "card_links",
        sql: include_str!("../migrations/postgres/0017_card_links.sql"),
    },
];

/// First key of the two-key advisory lock guarding migrations (the second is the schema).
const MIGRATION_LOCK: i32 = 0x5041_5353; // "PASS"

const READ_SQL: &str = "SELECT v.version_id, v.last_updated_us, v.deleted, v.body \
     FROM resource_current c JOIN resource_versions v ON v.seq = c.seq \
     WHERE c.resource_type = $1 AND c.id = $2";
const VREAD_SQL: &str = "SELECT version_id, last_updated_us, deleted, body FROM resource_versions \
     WHERE resource_type = $1 AND id = $2 AND version_id = $3";
const CURRENT_SQL: &str =
    "SELECT version_id FROM resource_current WHERE resource_type = $1 AND id = $2";
const CURRENT_FOR_UPDATE_SQL: &str =
    "SELECT version_id FROM resource_current WHERE resource_type = $1 AND id = $2 FOR UPDATE";
const LOCK_SQL: &str = "SELECT pg_advisory_xact_lock(k) FROM unnest($1::int8[]) AS k";
/// Inserts a version and makes it current: `rid, seq, previous seq`. The access inputs
/// (`$7..$10`) are the write's own, or for a deletion (`$5`) those of the version it deletes.
const INSERT_SQL: &str = "WITH prev AS (\
       SELECT seq, acc_patient, acc_sections, acc_labels, acc_flags FROM resource_current \
       WHERE resource_type = $1 AND id = $2), \
     acc AS (\
       SELECT p.acc_patient, p.acc_sections, p.acc_labels, p.acc_flags FROM prev p WHERE $5 \
       UNION ALL SELECT $7::text, $8::int4, $9::int4, $10::int4 \
       WHERE NOT ($5 AND EXISTS (SELECT 1 FROM prev))), \
     v AS (\
       INSERT INTO resource_versions (resource_type, id, version_id, last_updated_us, deleted, body, \
         acc_patient, acc_sections, acc_labels, acc_flags) \
       SELECT $1, $2, $3, $4, $5, $6, acc.acc_patient, acc.acc_sections, acc.acc_labels, \
         acc.acc_flags FROM acc \
       RETURNING seq, acc_patient, acc_sections, acc_labels, acc_flags) \
     INSERT INTO resource_current (resource_type, id, version_id, seq, deleted, last_updated_us, rid, \
       acc_patient, acc_sections, acc_labels, acc_flags) \
     SELECT $1, $2, $3, v.seq, $5, $4, v.seq, v.acc_patient, v.acc_sections, v.acc_labels, \
       v.acc_flags FROM v \
     ON CONFLICT (resource_type, id) DO UPDATE SET version_id = EXCLUDED.version_id, \
       seq = EXCLUDED.seq, deleted = EXCLUDED.deleted, last_updated_us = EXCLUDED.last_updated_us, \
       acc_patient = EXCLUDED.acc_patient, acc_sections = EXCLUDED.acc_sections, \
       acc_labels = EXCLUDED.acc_labels, acc_flags = EXCLUDED.acc_flags \
     RETURNING rid, seq, acc_flags, (SELECT seq FROM prev)";
/// The further children of a version (several children's records hold it).
const ACCESS_CHILD_SQL: &str = "INSERT INTO access_child (seq, patient) \
     SELECT $1, p FROM unnest($2::text[]) AS p ON CONFLICT DO NOTHING";
/// A deletion's further children: those of the version it deletes.
const ACCESS_CHILD_COPY_SQL: &str = "INSERT INTO access_child (seq, patient) \
     SELECT $1, patient FROM access_child WHERE seq = $2 ON CONFLICT DO NOTHING";
pub struct PgStore {
    pool: std::sync::Arc<Pool>,
    /// When to refresh the planner's statistics (see statistics.rs).
    statistics: std::sync::Arc<statistics::Statistics>,
    /// `true` once closed. Writes hold a read guard while they run; `close` takes the
    /// write guard, so it waits for them, and writes arriving later see `true`.
    closed: RwLock<bool>,
}

impl PgStore {
    pub async fn open(url: &str, limits: &Limits) -> Result<Self> {
        let mut config: Config = url
            .parse()
            .map_err(|e| StoreError::BadUrl(format!("{e}")))?;
        // Appended to any options the URL gives, so the URL cannot lift the limit by
        // accident (a later `-c` wins).
        let timeout = format!(
            "-c statement_timeout={}",
            limits.statement_timeout.as_millis().max(1)
        );
        let options = match config.get_options() {
            Some(o) if !o.is_empty() => format!("{o} {timeout}"),
            _ => timeout,
        };
        config.options(&options);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("passport");
        }
        Ok(PgStore {
            pool: std::sync::Arc::new(
                Pool::new(
                    config,
                    limits.pool_size,
                    limits.pool_reserved,
                    limits.pool_wait,
                )
                .await?,
            ),
            statistics: Default::default(),
            closed: RwLock::new(false),
        })
    }

    /// Refreshes the planner's statistics for the resource and index tables now.
    pub async fn analyze(&self) -> Result<()> {
        analyze(&self.pool).await
    }

    pub async fn migrate(&self) -> Result<()> {
        let mut conn = self.pool.get().await?;
        // A migration may rewrite large tables, and may wait for another process's.
        conn.client
            .batch_execute("SET statement_timeout = 0")
            .await
            .map_err(pg_error)?;
        conn.client
            .execute(
                "SELECT pg_advisory_lock($1, hashtext(COALESCE(current_schema(), '')))",
                &[&MIGRATION_LOCK],
            )
            .await
            .map_err(pg_error)?;
        let result = migrate_locked(&mut conn).await;
        let unlocked = conn
            .client
            .execute(
                "SELECT pg_advisory_unlock($1, hashtext(COALESCE(current_schema(), '')))",
                &[&MIGRATION_LOCK],
            )
            .await
            .map_err(pg_error);
        let reset = conn
            .client
            .batch_execute("RESET statement_timeout")
            .await
            .map_err(pg_error);
        result.and(unlocked.map(|_| ())).and(reset)
    }

    pub async fn ping(&self) -> Result<()> {
        let conn = self.pool.get().await?;
        conn.client
            .simple_query("SELECT 1")
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    pub async fn read(&self, t: &str, id: &str) -> Result<Option<Stored>> {
        let mut conn = self.pool.get().await?;
        let stmt = conn.prepare(READ_SQL).await?;
        let row = conn
            .client
            .query_opt(&stmt, &[&t, &id])
            .await
            .map_err(pg_error)?;
        Ok(row.map(|r| stored(&r, t, id)))
    }

    pub async fn vread(&self, t: &str, id: &str, v: i64) -> Result<Option<Stored>> {
        let mut conn = self.pool.get().await?;
        let stmt = conn.prepare(VREAD_SQL).await?;
        let row = conn
            .client
            .query_opt(&stmt, &[&t, &id, &v])
            .await
            .map_err(pg_error)?;
        Ok(row.map(|r| stored(&r, t, id)))
    }

    pub async fn write(&self, w: Write) -> Result<Stored> {
        sql::check_write(&w)?;
        let closed = self.closed.read().await;
        if *closed {
            return Err(StoreError::Closed);
        }
        let mut conn = self.pool.get().await?;
        match write_in(&mut conn, &w).await {
            Ok(()) => {}
            Err(WriteError::Store(e)) => return Err(e),
            Err(WriteError::Raced) => {
                // Another creator committed first: report what is current now.
                let stmt = conn.prepare(CURRENT_SQL).await?;
                let row = conn
                    .client
                    .query_opt(&stmt, &[&w.resource_type, &w.id])
                    .await
                    .map_err(pg_error)?;
                return Err(StoreError::VersionConflict {
                    current: row.map(|r| r.get(0)),
                });
            }
        }
        drop(conn);
        drop(closed);
        self.wrote(1);
        Ok(Stored {
            body: if w.deleted { Bytes::new() } else { w.body },
            resource_type: w.resource_type,
            id: w.id,
            version_id: w.version_id,
            last_updated_us: w.last_updated_us,
            deleted: w.deleted,
        })
    }

    /// Several writes in one database transaction, all or nothing (`Store::write_all`).
    pub async fn write_all(&self, writes: Vec<Write>) -> Result<Vec<Stored>, WriteAllError> {
        let closed = self.closed.read().await;
        if *closed {
            return Err(WriteAllError::whole(StoreError::Closed));
        }
        let mut conn = self.pool.get().await.map_err(WriteAllError::whole)?;
        match write_all_in(&mut conn, &writes).await {
            Ok(()) => {}
            Err((index, WriteError::Store(error))) => return Err(WriteAllError { index, error }),
            Err((index, WriteError::Raced)) => {
                // Another creator committed first: report what is current now.
                let current = match index.and_then(|i| writes.get(i)) {
                    Some(w) => {
                        let stmt = conn
                            .prepare(CURRENT_SQL)
                            .await
                            .map_err(WriteAllError::whole)?;
                        conn.client
                            .query_opt(&stmt, &[&w.resource_type, &w.id])
                            .await
                            .map_err(|e| WriteAllError::whole(pg_error(e)))?
                            .map(|r| r.get(0))
                    }
                    None => None,
                };
                return Err(WriteAllError {
                    index,
                    error: StoreError::VersionConflict { current },
                });
            }
        }
        drop(conn);
        drop(closed);
        self.wrote(writes.len() as u64);
        Ok(writes.into_iter().map(stored_of).collect())
    }

    /// Counts written resources and, when the data has grown enough, refreshes the planner's
    /// statistics in the background (statistics.rs says why).
    fn wrote(&self, n: u64) {
        if !self.statistics.wrote(n) {
            return;
        }
        let (pool, statistics) = (self.pool.clone(), self.statistics.clone());
        tokio::spawn(async move {
            if let Err(e) = analyze(&pool).await {
                tracing::warn!(error = %e, "refreshing PostgreSQL statistics failed");
            }
            statistics.analyzed();
        });
    }

    pub async fn find_by_tokens(&self, t: &str, c: &[TokenCriterion]) -> Result<Vec<String>> {
        let mut conn = self.pool.get().await?;
        let (text, args) = sql::find_by_tokens(Dialect::Postgres, t, c);
        let stmt = conn.prepare(&text).await?;
        let rows = conn
            .client
            .query(&stmt, &to_sql(&args))
            .await
            .map_err(pg_error)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Waits for the writes in progress, then refuses new ones with
    /// [`StoreError::Closed`]. Reads keep working. Idempotent.
    ///
    /// Then chains whatever writes left in the audit outbox, so a closed store's outbox is
    /// empty (a failure is logged: the rows stay, and the next drain chains them).
    pub async fn close(&self) {
        *self.closed.write().await = true;
        if let Err(e) = self.drain_audit_outbox().await {
            tracing::error!(error = %e, "cannot chain the audit outbox at close");
        }
    }
}

enum WriteError {
    Store(StoreError),
    /// A unique-key collision: a concurrent writer of the same version won.
    Raced,
}

impl From<StoreError> for WriteError {
    fn from(e: StoreError) -> Self {
        WriteError::Store(e)
    }
}

fn write_error(e: tokio_postgres::Error) -> WriteError {
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        WriteError::Raced
    } else {
        WriteError::Store(pg_error(e))
    }
}

async fn write_in(conn: &mut Conn, w: &Write) -> Result<(), WriteError> {
    let p = prepare_write(conn, w).await?;
    let lock = if p.keys.is_empty() {
        None
    } else {
        Some(conn.prepare(LOCK_SQL).await?)
    };
    let outbox = if w.audit.is_empty() {
        None
    } else {
        Some(conn.prepare(audit::OUTBOX_SQL).await?)
    };
    let tx = conn.client.transaction().await.map_err(pg_error)?;
    if let Some(lock) = &lock {
        tx.execute(lock, &[&p.keys]).await.map_err(pg_error)?;
    }
    apply_in(&tx, w, p).await?;
    // The AuditEvents commit with the write, in the outbox: no chain lock (`audit`).
    if let Some(outbox) = &outbox {
        audit::to_outbox(&tx, outbox, &w.audit).await?;
    }
    tx.commit().await.map_err(write_error)
}

/// Several writes in one transaction, all or nothing (`Store::write_all`). Advisory locks
/// on every write's keys and on each resource written are taken first, in sorted order, so
/// concurrent transactions over the same resources queue instead of deadlocking on rows.
/// An error names the write refused (`None`: the transaction as a whole failed).
async fn write_all_in(
    conn: &mut Conn,
    writes: &[Write],
) -> Result<(), (Option<usize>, WriteError)> {
    let whole = |e: WriteError| (None, e);
    let mut keys: Vec<i64> = Vec::new();
    let mut prepared = Vec::with_capacity(writes.len());
    for w in writes {
        let p = prepare_write(conn, w).await.map_err(whole)?;
        keys.extend_from_slice(&p.keys);
        keys.push(sql::stable_hash(&["resource", &w.resource_type, &w.id]));
        prepared.push(p);
    }
    keys.sort_unstable();
    keys.dedup();
    let lock = conn.prepare(LOCK_SQL).await.map_err(|e| whole(e.into()))?;
    let records: Vec<AuditRecord> = writes.iter().flat_map(|w| w.audit.clone()).collect();
    let outbox = if records.is_empty() {
        None
    } else {
        Some(
            conn.prepare(audit::OUTBOX_SQL)
                .await
                .map_err(|e| whole(e.into()))?,
        )
    };
    let tx = conn
        .client
        .transaction()
        .await
        .map_err(|e| whole(pg_error(e).into()))?;
    tx.execute(&lock, &[&keys])
        .await
        .map_err(|e| whole(pg_error(e).into()))?;
    for (i, (w, p)) in writes.iter().zip(prepared).enumerate() {
        apply_in(&tx, w, p).await.map_err(|e| (Some(i), e))?;
    }
    // The AuditEvents commit with the writes, in the outbox: no chain lock (`audit`).
    if let Some(outbox) = &outbox {
        audit::to_outbox(&tx, outbox, &records)
            .await
            .map_err(|e| whole(e.into()))?;
    }
    tx.commit().await.map_err(|e| whole(write_error(e)))
}

/// What one write needs before its transaction begins: its advisory lock keys (sorted) and
/// its statements, prepared (and cached) on the connection.
struct Prepared<'a> {
    keys: Vec<i64>,
    current_stmt: tokio_postgres::Statement,
    find: Option<(tokio_postgres::Statement, Vec<Arg<'a>>)>,
    insert: tokio_postgres::Statement,
    tokens: tokio_postgres::Statement,
}

async fn prepare_write<'a>(conn: &mut Conn, w: &'a Write) -> Result<Prepared<'a>, WriteError> {
    // Advisory lock keys, so conditional creates serialise with writes that could make
    // them match (see the module documentation).
    let mut keys: Vec<i64> = Vec::new();
    if let Some(criteria) = &w.unless_exists {
        keys.extend(
            criteria
                .iter()
                .map(|c| sql::stable_hash(&[&w.resource_type, &c.param, &c.code])),
        );
    }
    if !w.deleted {
        keys.extend(w.index.iter().filter_map(|e| match &e.value {
            fhir::search::IndexValue::Token {
                code: Some(code), ..
            } if e.param == "identifier" || e.param == "_id" => {
                Some(sql::stable_hash(&[&w.resource_type, &e.param, code]))
            }
            _ => None,
        }));
    }
    keys.sort_unstable();
    keys.dedup();

    let current_stmt = conn.prepare(CURRENT_FOR_UPDATE_SQL).await?;
    let find = match &w.unless_exists {
        Some(criteria) => {
            let (text, args) = sql::find_by_tokens(Dialect::Postgres, &w.resource_type, criteria);
            Some((conn.prepare(&text).await?, args))
        }
        None => None,
    };
    let insert = conn.prepare(INSERT_SQL).await?;
    // A create (no current version, or it is a conflict) has no index rows to delete.
    let tokens = conn
        .prepare(if w.replaces.is_none() {
            search::INSERT_INDEXES_SQL
        } else {
            search::REPLACE_INDEXES_SQL
        })
        .await?;
    Ok(Prepared {
        keys,
        current_stmt,
        find,
        insert,
        tokens,
    })
}

/// One write inside a transaction whose advisory locks are already held.
async fn apply_in(
    tx: &tokio_postgres::Transaction<'_>,
    w: &Write,
    p: Prepared<'_>,
) -> Result<(), WriteError> {
    let Prepared {
        current_stmt,
        find,
        insert,
        tokens,
        ..
    } = p;
    let current: Option<i64> = tx
        .query_opt(&current_stmt, &[&w.resource_type, &w.id])
        .await
        .map_err(pg_error)?
        .map(|r| r.get(0));
    if current != w.replaces {
        return Err(StoreError::VersionConflict { current }.into());
    }
    if let Some((stmt, args)) = &find {
        let rows = tx.query(stmt, &to_sql(args)).await.map_err(pg_error)?;
        if !rows.is_empty() {
            return Err(
                StoreError::ConditionMatched(rows.iter().map(|r| r.get(0)).collect()).into(),
            );
        }
    }
    let body: &[u8] = if w.deleted { &[] } else { &w.body };
    let (patient, sections, labels, flags) = w.access.columns();
    let (sections, labels, flags) = (sections as i32, labels as i32, flags as i32);
    // The resource's `rid` (its index rows' key): the seq of its first version, kept.
    let row = tx
        .query_one(
            &insert,
            &[
                &w.resource_type,
                &w.id,
                &w.version_id,
                &w.last_updated_us,
                &w.deleted,
                &body,
                &patient,
                &sections,
                &labels,
                &flags,
            ],
        )
        .await
        .map_err(write_error)?;
    let rid: i64 = row.get(0);
    let seq: i64 = row.get(1);
    let stored_flags: i32 = row.get(2);
    let previous: Option<i64> = row.get(3);
    if i64::from(stored_flags) & crate::acc_flags::MORE_CHILDREN != 0 {
        match (w.deleted, previous) {
            (true, Some(old)) => tx.execute(ACCESS_CHILD_COPY_SQL, &[&seq, &old]).await,
            _ => {
                let more: Vec<&str> = w
                    .access
                    .patients
                    .iter()
                    .skip(1)
                    .map(String::as_str)
                    .collect();
                tx.execute(ACCESS_CHILD_SQL, &[&seq, &more]).await
            }
        }
        .map_err(pg_error)?;
    }
    // Index tables: replaced with the entries of the version just written (none for a
    // deletion), every table in one statement (see `search::REPLACE_INDEXES_SQL`).
    if current.is_some() || (!w.deleted && !w.index.is_empty()) {
        search::replace_indexes(tx, &tokens, w, rid)
            .await
            .map_err(pg_error)?;
    }
    if w.resource_type == "CareTeam" {
        let rows = crate::members::rows(w);
        let patients: Vec<&str> = rows.iter().map(|(p, _)| *p).collect();
        let types: Vec<&str> = rows.iter().map(|(_, m)| m.member_type).collect();
        let ids: Vec<&str> = rows.iter().map(|(_, m)| m.member_id.as_str()).collect();
        let starts: Vec<Option<i64>> = rows.iter().map(|(_, m)| m.starts).collect();
        let ends: Vec<Option<i64>> = rows.iter().map(|(_, m)| m.ends).collect();
        tx.execute(
            REPLACE_MEMBERS_SQL,
            &[&rid, &patients, &types, &ids, &starts, &ends],
        )
        .await
        .map_err(pg_error)?;
    }
    Ok(())
}

/// A CareTeam's `access_member` rows (migration 16), replaced with the new version's in one
/// statement (the delete cannot see the rows the same statement inserts).
const REPLACE_MEMBERS_SQL: &str = "WITH d AS (DELETE FROM access_member WHERE rid = $1) \
     INSERT INTO access_member (rid, patient, member_type, member_id, starts, ends) \
     SELECT $1, u.* FROM unnest($2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[]) AS u";

async fn migrate_locked(conn: &mut Conn) -> Result<()> {
    conn.client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (\
               version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
               applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await
        .map_err(pg_error)?;
    let latest: i64 = conn
        .client
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::int8 FROM schema_migrations",
            &[],
        )
        .await
        .map_err(pg_error)?
        .get(0);
    for m in MIGRATIONS.iter().filter(|m| m.version > latest) {
        let tx = conn.client.transaction().await.map_err(pg_error)?;
        tx.batch_execute(m.sql).await.map_err(|e| {
            StoreError::Backend(format!(
                "migration {} ({}): {}",
                m.version,
                m.name,
                describe(&e)
            ))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&m.version, &m.name],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "applied PostgreSQL migration"
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
    Ok(())
}

/// A `Stored` from `version_id, last_updated_us, deleted, body`.
fn stored(r: &tokio_postgres::Row, t: &str, id: &str) -> Stored {
    Stored {
        resource_type: t.to_owned(),
        id: id.to_owned(),
        version_id: r.get(0),
        last_updated_us: r.get(1),
        deleted: r.get(2),
        body: Bytes::copy_from_slice(r.get::<_, &[u8]>(3)),
    }
}

fn to_sql<'a>(args: &'a [Arg<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    args.iter()
        .map(|a| match a {
            Arg::Text(s) => s as &(dyn ToSql + Sync),
            Arg::Int(i) => i as &(dyn ToSql + Sync),
        })
        .collect()
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(inner) = source {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                source = inner.source();
            }
            s
        }
    }
}

impl PgStore {
    /// Runs `sql` (statements separated by `;`, no parameters) on one connection.
    #[cfg(feature = "testing")]
    pub(crate) async fn batch(&self, sql: &str) -> Result<()> {
        let conn = self.pool.get().await?;
        conn.client.batch_execute(sql).await.map_err(pg_error)
    }
}

pub(crate) fn pg_error(e: tokio_postgres::Error) -> StoreError {
    if e.code() == Some(&SqlState::QUERY_CANCELED) {
        // The statement timeout (or a cancel for a client that went away).
        return StoreError::Busy("a database statement took longer than the statement timeout");
    }
    StoreError::Backend(describe(&e))
}

async fn analyze(pool: &Pool) -> Result<()> {
    let conn = pool.get().await?;
    // ANALYZE of a large database may take longer than any request should. One simple
    // query is one implicit transaction, so SET LOCAL ends with it, even on failure.
    conn.client
        .batch_execute(&format!(
            "SET LOCAL statement_timeout = 0; {}",
            statistics::ANALYZE_SQL
        ))
        .await
        .map_err(pg_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file in migrations/postgres is listed, in order.
    #[test]
    fn migrations_listed() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| format!("{:04}_{}.sql", m.version, m.name))
            .collect();
        assert_eq!(files, listed);
    }

    /// The `options` URL parameter reaches the server as a startup option.
    #[test]
    fn url_options_are_understood() {
        let c: Config = "postgres://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dabc"
            .parse()
            .unwrap();
        assert_eq!(c.get_options(), Some("-csearch_path=abc"));
    }
}
