//! Server configuration: one struct, filled by the CLI from flags and `PASSPORT_*` variables.

use std::net::SocketAddr;

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
}

impl Config {
    pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

    /// A configuration for `addr` and `database_url` with defaults elsewhere.
    pub fn new(addr: SocketAddr, database_url: impl Into<String>) -> Self {
        Config {
            addr,
            database_url: database_url.into(),
            base_url: format!("http://{addr}"),
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// `base_url` without a trailing slash.
    pub fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }
}
