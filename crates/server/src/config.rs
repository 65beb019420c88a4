//! Server configuration: one struct, filled by the CLI from flags and `PASSPORT_*` variables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub addr: SocketAddr,
    /// `sqlite://path` or `postgres://…`.
    pub database_url: String,
    /// The public URL of this service, without a trailing slash. Used in `Location`,
    /// links and `fullUrl`s; never taken from the request's `Host` header, which a client
    /// controls.
    pub base_url: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Where signed audit checkpoints are appended (outside the database). Default: next to
    /// a SQLite database file (`audit-checkpoints.jsonl`), else a fresh temporary directory.
    pub audit_checkpoint_file: PathBuf,
    /// The Ed25519 key signing audit checkpoints (created, mode 0600, if missing). Default:
    /// `audit-signing.key` beside the checkpoint file.
    pub audit_key_file: PathBuf,
    /// How often the audit chain head is signed (if it moved); also at shutdown.
    pub audit_checkpoint_interval: Duration,
    /// The longest an audit record waits before it is appended.
    pub audit_flush_interval: Duration,
    /// Audit records that may wait in the queue before requests wait.
    pub audit_queue: usize,
    /// The OAuth 2 / SMART authorisation server: token lifetimes, key rotation.
    pub oauth: crate::oauth::OAuthConfig,
    /// External OpenID Connect providers for signing in (see `web::oidc`).
    pub oidc_providers: Vec<crate::web::oidc::ProviderConfig>,
    /// Demo mode (`--demo`): without SMTP, emailed links are printed on stdout instead.
    pub demo: bool,
    /// Outgoing email (see [`crate::mail`]): `smtps://HOST`, `smtp://HOST?tls=required`,
    /// or plain `smtp://` to this machine only. `None`: nothing is sent.
    pub smtp_url: Option<String>,
    /// The `From` of every message, like `Passport <no-reply@passport.example.nhs.uk>`
    /// (required with `smtp_url`).
    pub mail_from: Option<String>,
    /// Self-registrations (`/register`, and new sign-ins at `/join/{code}`) accepted per email
    /// address per hour; more get 429.
    pub register_limit_per_address: u32,
    /// The same per client IP address (IPv6: per /64) per hour.
    pub register_limit_per_ip: u32,
    /// How long the database may take: statement timeout, pool size, the connections kept
    /// from the FHIR API, and the longest wait for one.
    pub db: domain::types::Limits,
    /// Search parameters (each `_sort` key and `_include` counted too) one search may have.
    pub max_search_criteria: usize,
    /// Values (comma-separated alternatives) one search parameter may have.
    pub max_search_values: usize,
    /// The largest one resource may be, as JSON (larger: 413). A photo (5 MB, base64 in
    /// its DocumentReference) fits the default.
    pub max_resource_bytes: usize,
    /// The most bytes of resources one page of a search, history or `$everything` holds:
    /// past it the page ends early and its `next` link goes on from there.
    pub max_bundle_bytes: usize,
    /// Connection timeouts and the cap on open connections (see [`crate::listen`]).
    pub connections: crate::listen::ConnectionLimits,
}

impl Config {
    pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
    pub const DEFAULT_AUDIT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);
    pub const DEFAULT_AUDIT_FLUSH_INTERVAL: Duration = Duration::from_millis(200);
    pub const DEFAULT_AUDIT_QUEUE: usize = 1024;
    pub const DEFAULT_REGISTER_LIMIT_PER_ADDRESS: u32 = 5;
    pub const DEFAULT_REGISTER_LIMIT_PER_IP: u32 = 20;
    pub const DEFAULT_MAX_SEARCH_CRITERIA: usize = 64;
    pub const DEFAULT_MAX_SEARCH_VALUES: usize = 100;
    pub const DEFAULT_MAX_RESOURCE_BYTES: usize = 8 * 1024 * 1024;
    pub const DEFAULT_MAX_BUNDLE_BYTES: usize = 32 * 1024 * 1024;

    /// A configuration for `addr` and `database_url` with defaults elsewhere.
    pub fn new(addr: SocketAddr, database_url: impl Into<String>) -> Self {
        let database_url = database_url.into();
        let audit_dir = default_audit_dir(&database_url);
        Config {
            addr,
            base_url: format!("http://{addr}"),
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            audit_checkpoint_file: audit_dir.join("audit-checkpoints.jsonl"),
            audit_key_file: audit_dir.join("audit-signing.key"),
            audit_checkpoint_interval: Self::DEFAULT_AUDIT_CHECKPOINT_INTERVAL,
            audit_flush_interval: Self::DEFAULT_AUDIT_FLUSH_INTERVAL,
            audit_queue: Self::DEFAULT_AUDIT_QUEUE,
            oauth: crate::oauth::OAuthConfig::default(),
            oidc_providers: Vec::new(),
            demo: false,
            smtp_url: None,
            mail_from: None,
            register_limit_per_address: Self::DEFAULT_REGISTER_LIMIT_PER_ADDRESS,
            register_limit_per_ip: Self::DEFAULT_REGISTER_LIMIT_PER_IP,
            db: domain::types::Limits::default(),
            max_search_criteria: Self::DEFAULT_MAX_SEARCH_CRITERIA,
            max_search_values: Self::DEFAULT_MAX_SEARCH_VALUES,
            max_resource_bytes: Self::DEFAULT_MAX_RESOURCE_BYTES,
            max_bundle_bytes: Self::DEFAULT_MAX_BUNDLE_BYTES,
            connections: crate::listen::ConnectionLimits::default(),
            database_url,
        }
    }

    /// The audit recorder's settings.
    pub fn auditor(&self) -> crate::audit::AuditorConfig {
        crate::audit::AuditorConfig {
            queue: self.audit_queue,
            flush_interval: self.audit_flush_interval,
            checkpoint_interval: self.audit_checkpoint_interval,
            checkpoint_file: Some(self.audit_checkpoint_file.clone()),
        }
    }

    /// `base_url` without a trailing slash.
    pub fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }
}

/// The directory of a SQLite database file (`sqlite://path`); otherwise (a temporary SQLite
/// database, PostgreSQL) a new directory under the system temp directory, so tests get
/// checkpoints of their own. A PostgreSQL deployment names its files (the CLI does).
fn default_audit_dir(database_url: &str) -> PathBuf {
    if database_url != "sqlite::memory:"
        && let Some(path) = database_url
            .strip_prefix("sqlite://")
            .or_else(|| database_url.strip_prefix("sqlite:"))
            .filter(|p| !p.is_empty())
    {
        return Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
    }
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "passport-audit-{}-{}-{}",
        std::process::id(),
        crate::clock::now_us(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}
