//! Storage of FHIR resources: every version of every resource, never overwritten.
//!
//! One interface ([`Store`]) over two databases: SQLite (the default, one file, one
//! process) and PostgreSQL (a region's deployment). The store knows nothing of FHIR
//! semantics beyond what it must index; it keeps the bytes it is given and hands them back
//! unchanged, so a read never re-serialises.
//!
//! Concurrency control is optimistic: every [`Write`] names the version it replaces, and
//! the store refuses it ([`StoreError::VersionConflict`]) if that is no longer current.
//! That is what turns `If-Match` into a 412 and makes a lost update impossible.

mod access_inputs;
pub mod accounts;
pub mod audit;
pub mod break_glass;
mod cache;
pub mod card_links;
pub mod identities;
mod members;
pub mod oauth;
pub mod onboarding;
pub mod postgres;
pub mod search;
mod sql;
pub mod sqlite;
/// Test helpers (a fresh PostgreSQL schema per test, or a skip); feature `testing`.
#[cfg(feature = "testing")]
pub mod testing;

pub use audit::{AuditEntry, AuditQuery, AuditRecord, ChainHead, Sensitivity};
use bytes::Bytes;

/// One stored version of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub resource_type: String,
    pub id: String,
    pub version_id: i64,
    /// `meta.lastUpdated`, microseconds since the Unix epoch (UTC).
    pub last_updated_us: i64,
    pub deleted: bool,
    /// The resource JSON exactly as stored (with `id` and `meta` stamped); empty when deleted.
    pub body: Bytes,
}

/// How a token criterion matches the system part of `system|code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemMatch {
    /// `code`: any system.
    Any,
    /// `|code`: no system.
    Absent,
    /// `system|code`.
    Is(String),
}

/// One `param=[system|]code` criterion of a conditional create (all criteria must match).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCriterion {
    pub param: String,
    pub system: SystemMatch,
    pub code: String,
}

/// The access decision's inputs for one version, kept beside it so a search can apply the
/// caller's visibility inside its query (see `search::Visibility`). The store does not
/// interpret them beyond comparing bits; the server computes them from the resource with
/// the `access` crate's own readers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessInputs {
    /// The children whose records hold the resource (empty: it belongs to no child).
    pub patients: Vec<String>,
    /// Passport sections, as `access::SectionSet::bits`.
    pub sections: u16,
    /// Security labels, as `access::LabelSet::bits`.
    pub labels: u8,
    /// An active MedicationStatement.
    pub active_medication: bool,
    /// A CareTeam's members and when each is one (`access::CareTeamMember::spans`), kept
    /// in `access_member` for the children its `patient` parameter names, so a search can
    /// find the children whose care team names the caller inside its SQL (migration 16).
    pub members: Vec<CareTeamMemberRow>,
}

/// One member of a CareTeam, as `access_member` keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CareTeamMemberRow {
    /// `Practitioner`, `Organization` or `PractitionerRole`.
    pub member_type: &'static str,
    /// The member's logical id.
    pub member_id: String,
    /// A member from (Unix seconds, inclusive); `None`: always.
    pub starts: Option<i64>,
    /// A member until (Unix seconds, exclusive); `None`: for good.
    pub ends: Option<i64>,
}

/// `acc_flags` bits (migration 14).
pub(crate) mod acc_flags {
    pub const ACTIVE_MEDICATION: i64 = 1;
    pub const MORE_CHILDREN: i64 = 2;
    pub const COMPUTED: i64 = 4;
}

impl AccessInputs {
    /// `(acc_patient, acc_sections, acc_labels, acc_flags)` for a version row.
    pub(crate) fn columns(&self) -> (Option<&str>, i64, i64, i64) {
        let mut flags = acc_flags::COMPUTED;
        if self.active_medication {
            flags |= acc_flags::ACTIVE_MEDICATION;
        }
        if self.patients.len() > 1 {
            flags |= acc_flags::MORE_CHILDREN;
        }
        (
            self.patients.first().map(String::as_str),
            i64::from(self.sections),
            i64::from(self.labels),
            flags,
        )
    }
}

/// A new version to store.
#[derive(Debug, Clone)]
pub struct Write {
    pub resource_type: String,
    pub id: String,
    /// The version this one replaces: `None` means the resource must not exist yet (in any
    /// version, deleted or not); `Some(n)` means version `n` must be the current one.
    pub replaces: Option<i64>,
    /// `replaces + 1`, or 1.
    pub version_id: i64,
    pub last_updated_us: i64,
    /// A delete is a new version with `deleted = true` and an empty body.
    pub deleted: bool,
    pub body: Bytes,
    /// Search index entries for this version (replacing those of the previous version;
    /// ignored for a deletion). Conditional create looks up the `identifier` and `_id`
    /// token entries, so writers include an `_id` token.
    pub index: Vec<fhir::search::IndexEntry>,
    /// The access decision's inputs for this version (ignored for a deletion, which keeps
    /// those of the version it deletes).
    pub access: AccessInputs,
    /// Conditional create (`If-None-Exist`): the write is refused with
    /// [`StoreError::ConditionMatched`] if any current, non-deleted resource of this type
    /// matches every criterion. Checked in the same transaction as the insert.
    pub unless_exists: Option<Vec<TokenCriterion>>,
    /// AuditEvents stored in the same transaction as this version: stored if and only if
    /// the write is (usually empty; see [`audit`]). On SQLite they are chained in that
    /// transaction; on PostgreSQL they go to the audit outbox and are chained moments later
    /// ([`Store::drain_audit_outbox`]).
    pub audit: Vec<AuditRecord>,
}

/// Which history to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// `None`: the whole system.
    pub resource_type: Option<String>,
    /// `Some` only with `resource_type`: one instance.
    pub id: Option<String>,
    /// `_since`: versions with `last_updated_us >= since`.
    pub since_us: Option<i64>,
    /// `_at`: only versions that were current at that instant (the latest version of each
    /// resource with `last_updated_us <= at`).
    pub at_us: Option<i64>,
    /// Keyset paging: only entries with a sequence number below this one.
    pub before_seq: Option<i64>,
    /// Page size.
    pub count: usize,
}

/// One history entry and its position in the store's global write order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub seq: i64,
    pub version: Stored,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The write named a version that is not (or no longer) the current one.
    #[error("version conflict: the current version is {current:?}")]
    VersionConflict { current: Option<i64> },
    /// Conditional create found existing matches (their ids).
    #[error("conditional create matched {} existing resource(s)", .0.len())]
    ConditionMatched(Vec<String>),
    #[error("database URL not understood: {0}")]
    BadUrl(String),
    #[error("database error: {0}")]
    Backend(String),
    /// The store is shutting down and takes no more writes.
    #[error("the store is closed")]
    Closed,
    /// The database could not answer in time: no connection came free within the pool's
    /// wait, or a statement ran past the statement timeout (and was cancelled). Nothing was
    /// changed; the caller may try again later (HTTP 503 with `Retry-After`).
    #[error("the database is busy: {0}")]
    Busy(&'static str),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Why [`Store::write_all`] stored nothing.
#[derive(Debug, thiserror::Error)]
#[error("transaction refused (write {index:?}): {error}")]
pub struct WriteAllError {
    /// The position (in the list given) of the write that was refused, or `None` when the
    /// transaction as a whole failed (the database, a shutdown).
    pub index: Option<usize>,
    pub error: StoreError,
}

impl WriteAllError {
    pub(crate) fn whole(error: StoreError) -> Self {
        WriteAllError { index: None, error }
    }
}

/// What a successful write stored.
pub(crate) fn stored_of(w: Write) -> Stored {
    Stored {
        body: if w.deleted { Bytes::new() } else { w.body },
        resource_type: w.resource_type,
        id: w.id,
        version_id: w.version_id,
        last_updated_us: w.last_updated_us,
        deleted: w.deleted,
    }
}

/// The store: one of the two backends. An enum rather than a trait object so calls are
/// static and async methods need no boxing.
pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

tokio::task_local! {
    static API_REQUEST: ();
}

/// Runs `request` as a request to the FHIR API: on PostgreSQL, API requests between them
/// never hold the connections [`Limits::pool_reserved`] keeps for the pages and `/readyz`.
pub async fn api_request<F: std::future::Future>(request: F) -> F::Output {
    API_REQUEST.scope((), request).await
}

/// Is this task running inside [`api_request`]?
pub(crate) fn in_api_request() -> bool {
    API_REQUEST.try_with(|_| ()).is_ok()
}

/// How long the database may take: limits that keep one hostile request from stalling the
/// service (see docs/SECURITY.md, "Limits").
#[derive(Debug, Clone)]
pub struct Limits {
    /// The longest one SQL statement may run before it is cancelled (PostgreSQL:
    /// `statement_timeout` on every connection; SQLite: searches and history are
    /// interrupted). Migrations and statistics refreshes are exempt.
    pub statement_timeout: std::time::Duration,
    /// PostgreSQL connections in the pool.
    pub pool_size: usize,
    /// Of those, how many requests to the FHIR API (whose searches' cost the caller shapes)
    /// may never take: they stay free for `/readyz`, the pages and sign-in.
    pub pool_reserved: usize,
    /// The longest a request waits for a free connection before it is refused as busy.
    pub pool_wait: std::time::Duration,
}

impl Limits {
    pub const DEFAULT_STATEMENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
    pub const DEFAULT_POOL_SIZE: usize = 8;
    pub const DEFAULT_POOL_RESERVED: usize = 2;
    pub const DEFAULT_POOL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            statement_timeout: Self::DEFAULT_STATEMENT_TIMEOUT,
            pool_size: Self::DEFAULT_POOL_SIZE,
            pool_reserved: Self::DEFAULT_POOL_RESERVED,
            pool_wait: Self::DEFAULT_POOL_WAIT,
        }
    }
}

impl Store {
    /// Opens (creating if needed) the database at `url`: `sqlite://path`, `sqlite::memory:`
    /// or `postgres://…`, with the default [`Limits`]. Does not migrate.
    pub async fn open(url: &str) -> Result<Store> {
        Self::open_with(url, &Limits::default()).await
    }

    /// [`Store::open`] with the given limits.
    pub async fn open_with(url: &str, limits: &Limits) -> Result<Store> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Store::Postgres(postgres::PgStore::open(url, limits).await?))
        } else if url.starts_with("sqlite:") {
            Ok(Store::Sqlite(sqlite::SqliteStore::open(url, limits).await?))
        } else {
            Err(StoreError::BadUrl(
                "expected sqlite://PATH or postgres://…".to_owned(),
            ))
        }
    }

    /// Applies any migrations not yet applied; safe to run repeatedly and concurrently.
    pub async fn migrate(&self) -> Result<()> {
        match self {
            Store::Sqlite(s) => s.migrate().await,
            Store::Postgres(s) => s.migrate().await,
        }
    }

    /// Is the database reachable? (`/readyz`)
    pub async fn ping(&self) -> Result<()> {
        match self {
            Store::Sqlite(s) => s.ping().await,
            Store::Postgres(s) => s.ping().await,
        }
    }

    /// The current version (which may be a deletion), or `None` if never created.
    pub async fn read(&self, resource_type: &str, id: &str) -> Result<Option<Stored>> {
        match self {
            Store::Sqlite(s) => match s.cache.get(resource_type, id) {
                Ok(hit) => Ok(Some(hit)),
                Err(ticket) => {
                    let found = s.read(resource_type, id).await?;
                    if let Some(stored) = &found {
                        s.cache.fill(ticket, stored);
                    }
                    Ok(found)
                }
            },
            Store::Postgres(s) => s.read(resource_type, id).await,
        }
    }

    /// One version.
    pub async fn vread(
        &self,
        resource_type: &str,
        id: &str,
        version_id: i64,
    ) -> Result<Option<Stored>> {
        match self {
            Store::Sqlite(s) => s.vread(resource_type, id, version_id).await,
            Store::Postgres(s) => s.vread(resource_type, id, version_id).await,
        }
    }

    /// Stores one new version, durably (committed and on disk) before returning.
    pub async fn write(&self, write: Write) -> Result<Stored> {
        match self {
            Store::Sqlite(s) => {
                let stored = s.write(write).await?;
                s.cache.wrote(&stored);
                Ok(stored)
            }
            Store::Postgres(s) => s.write(write).await,
        }
    }

    /// Stores several versions in ONE transaction, all or nothing (a FHIR `transaction`).
    ///
    /// The writes are applied in the order given, each with its own preconditions
    /// (`replaces`, `unless_exists`) checked inside the transaction, so a later write sees
    /// the earlier ones (two versions of one resource may follow each other). If any write
    /// is refused, nothing is stored and the error names it by its position. Durable before
    /// returning. On SQLite the writes travel to the writer thread as one job, run in one
    /// savepoint of a group commit; on PostgreSQL they are one database transaction, which
    /// first takes advisory locks on every resource written (sorted), so concurrent
    /// transactions touching the same resources serialise instead of deadlocking.
    pub async fn write_all(&self, writes: Vec<Write>) -> Result<Vec<Stored>, WriteAllError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        for (i, w) in writes.iter().enumerate() {
            sql::check_write(w).map_err(|error| WriteAllError {
                index: Some(i),
                error,
            })?;
        }
        match self {
            Store::Sqlite(s) => {
                let stored = s.write_all(writes).await?;
                for one in &stored {
                    s.cache.wrote(one);
                }
                Ok(stored)
            }
            Store::Postgres(s) => s.write_all(writes).await,
        }
    }

    /// Ids of current, non-deleted resources of `resource_type` matching every criterion.
    pub async fn find_by_tokens(
        &self,
        resource_type: &str,
        criteria: &[TokenCriterion],
    ) -> Result<Vec<String>> {
        match self {
            Store::Sqlite(s) => s.find_by_tokens(resource_type, criteria).await,
            Store::Postgres(s) => s.find_by_tokens(resource_type, criteria).await,
        }
    }

    /// Appends AuditEvents to the audit log, numbered and hash-chained by the one appender
    /// (see [`audit`]), durably before returning, all or nothing. On SQLite they travel to the
    /// writer thread (group-committed with whatever else is queued); on PostgreSQL they are
    /// one transaction under the chain's advisory lock, chained after the oldest rows of the
    /// audit outbox (up to 5,000; see [`Store::drain_audit_outbox`]).
    pub async fn append_audit(&self, records: Vec<AuditRecord>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        for r in &records {
            audit::check_record(r)?;
        }
        match self {
            Store::Sqlite(s) => s.append_audit(records).await,
            Store::Postgres(s) => s.append_audit(records).await,
        }
    }

    /// Chains the AuditEvents that writes left in PostgreSQL's audit outbox (every row
    /// committed before the call), returning how many; the server's audit task calls it on
    /// every flush tick. SQLite has no outbox (its writer thread chains a write's records in
    /// the write's own savepoint): 0.
    pub async fn drain_audit_outbox(&self) -> Result<usize> {
        match self {
            Store::Sqlite(_) => Ok(0),
            Store::Postgres(s) => s.drain_audit_outbox().await,
        }
    }

    /// The audit log's last record (seq and hash), or `None` while it is empty.
    pub async fn audit_head(&self) -> Result<Option<ChainHead>> {
        match self {
            Store::Sqlite(s) => s.audit_head().await,
            Store::Postgres(s) => s.audit_head().await,
        }
    }

    /// Audit records, newest first (the family's access log by `patient_id`; a time range).
    /// Safeguarding records only with `include_safeguarding` (the privacy officer). On
    /// PostgreSQL the audit outbox is drained first, so every committed write's record is
    /// listed.
    pub async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        match self {
            Store::Sqlite(s) => s.list_audit(query).await,
            Store::Postgres(s) => s.list_audit(query).await,
        }
    }

    /// Up to `limit` audit records with `seq > after_seq`, in chain order (verification).
    pub async fn audit_chain(&self, after_seq: i64, limit: usize) -> Result<Vec<AuditEntry>> {
        match self {
            Store::Sqlite(s) => s.audit_chain(after_seq, limit).await,
            Store::Postgres(s) => s.audit_chain(after_seq, limit).await,
        }
    }

    /// Finishes queued writes and stops taking new ones (graceful shutdown).
    pub async fn close(&self) {
        match self {
            Store::Sqlite(s) => s.close().await,
            Store::Postgres(s) => s.close().await,
        }
    }
}
