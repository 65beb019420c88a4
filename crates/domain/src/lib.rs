//! Passport's domain layer: what every surface (the FHIR API, the pages, the OAuth server,
//! `passport admin`, the demo loader) shares, and the one path by which they reach what is
//! stored. It has no HTTP types.
//!
//! - [`Records`]: the only way code outside this crate reads or writes FHIR resources —
//!   validate → stamp → index → (the caller's access decision) → AuditEvent in the same
//!   transaction → store → tell the observers ([`records::Observer`]).
//! - [`Data`]: what is kept that is not a FHIR resource (accounts and sessions, OAuth
//!   clients, codes, tokens and keys, external identities, invitations, break-glass grants,
//!   the audit log).
//! - The caller's facts and views for `access::decide` ([`facts`], [`views`]), the auditor
//!   and its AuditEvent builder ([`audit`]), the directory ([`directory`]), credentials
//!   ([`auth`]), the demo data ([`demo`]) and the start-up data checks ([`startup`]).
//!
//! Only this crate depends on `passport-store` (the compiler enforces the layering: the
//! server and the CLI cannot name the store). The value types the surfaces handle — stored
//! versions, accounts, OAuth rows, search queries — are re-exported in [`types`].

pub mod audit;
pub mod auth;
pub mod break_glass;
pub mod card_link;
pub mod clock;
mod data;
pub mod dates;
pub mod demo;
pub mod directory;
pub mod facts;
pub mod guard;
mod inputs;
pub mod onboarding;
pub mod passport;
pub mod photo;
pub mod records;
pub mod region;
pub mod startup;
pub mod views;

use std::sync::Arc;

use passport_store::Store;
use passport_store::audit::AuditKey;

pub use data::Data;
pub use records::{Agent, Records};

/// The store's value types that cross the domain's boundary. `Store` itself is not among
/// them.
pub mod types {
    /// Runs a FHIR API request (see [`passport_store::api_request`]).
    pub use passport_store::api_request;
    pub use passport_store::{
        AccessInputs, AuditQuery, AuditRecord, ChainHead, HistoryQuery, Limits, Sensitivity,
        StoreError, Stored, SystemMatch, TokenCriterion, Write, WriteAllError, accounts,
        break_glass, identities, oauth, onboarding,
    };
    pub use passport_store::{audit, search};
}

use types::StoreError;

/// How to open the domain.
pub struct Settings {
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// The server's base URL: the observer named in AuditEvents.
    pub base_url: String,
    pub auditor: audit::AuditorConfig,
    /// Signs audit checkpoints; `None`: no checkpoints (`passport admin`, whose writes
    /// carry their AuditEvents in their own transactions).
    pub audit_key: Option<AuditKey>,
    /// How long the database may take (statement timeout, pool).
    pub limits: types::Limits,
}

impl Settings {
    /// For `passport admin`: the same domain, whose writes carry their AuditEvents in their
    /// own transactions; no checkpoints (the server signs them).
    pub fn admin(database_url: &str, base_url: &str) -> Settings {
        Settings {
            database_url: database_url.to_owned(),
            base_url: base_url.to_owned(),
            auditor: audit::AuditorConfig {
                queue: 256,
                flush_interval: std::time::Duration::from_millis(50),
                checkpoint_interval: std::time::Duration::from_secs(3600),
                checkpoint_file: None,
            },
            audit_key: None,
            limits: types::Limits::default(),
        }
    }
}

/// The domain: the store behind [`Records`] and [`Data`], the auditor, the child facts
/// and caller views caches and the regional policy.
pub struct Domain {
    data: Data,
    base_url: String,
    /// Records AuditEvents that are not part of a write (reads, sign-ins).
    pub audit: audit::Auditor,
    pub facts: facts::FactsCache,
    pub views: views::ViewCache,
    pub organisations: directory::OrganisationCache,
    pub policy: access::RegionalPolicy,
}

impl Domain {
    /// Opens the store, migrates it, fills in the access inputs of versions stored before
    /// they were kept (store migration 14), and starts the auditor.
    pub async fn open(settings: Settings) -> Result<Arc<Domain>, StoreError> {
        let store = Arc::new(Store::open_with(&settings.database_url, &settings.limits).await?);
        store.migrate().await?;
        let filled = store
            .fill_access_inputs(|body| {
                inputs::access_inputs(
                    &serde_json::from_slice(body).unwrap_or(serde_json::Value::Null),
                )
            })
            .await?;
        if filled > 0 {
            tracing::info!(
                versions = filled,
                "filled in the access inputs of stored versions"
            );
        }
        let audit = audit::Auditor::new(settings.auditor, settings.audit_key);
        audit.spawn(store.clone());
        Ok(Arc::new(Domain {
            data: Data::new(store),
            base_url: settings.base_url.trim_end_matches('/').to_owned(),
            audit,
            facts: facts::FactsCache::default(),
            views: views::ViewCache::default(),
            organisations: directory::OrganisationCache::default(),
            policy: access::RegionalPolicy::default(),
        }))
    }

    /// Opens the store and brings its schema up to date, and nothing else (`passport
    /// migrate`).
    pub async fn migrate(database_url: &str) -> Result<(), StoreError> {
        let store = Store::open(database_url).await?;
        let r = store.migrate().await;
        store.close().await;
        r
    }

    /// Checks the audit log of the database at `database_url` against `checkpoints`
    /// (`passport audit verify`). Opens the store without migrating it, so a copy under
    /// investigation is not changed.
    pub async fn verify_audit(
        database_url: &str,
        checkpoints: &[types::audit::Checkpoint],
        key: Option<&AuditKey>,
    ) -> Result<types::audit::Verified, Result<types::audit::Tampered, StoreError>> {
        let store = Store::open(database_url).await.map_err(Err)?;
        let public = key.map(AuditKey::public);
        let r = passport_store::audit::verify(&store, checkpoints, public.as_ref()).await;
        store.close().await;
        r
    }

    /// The FHIR resources.
    pub fn records(&self) -> Records<'_> {
        Records::of(self)
    }

    /// What is kept that is not a FHIR resource.
    pub fn data(&self) -> &Data {
        &self.data
    }

    /// The base URL AuditEvents name as their observer (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Appends the queued audit records and the final checkpoint, then closes the store
    /// (which commits any queued writes).
    pub async fn close(&self) {
        if let Err(e) = self.audit.close().await {
            tracing::error!(error = %e, "closing the audit recorder");
        }
        self.data.store().close().await;
    }

    pub(crate) fn store(&self) -> &Store {
        self.data.store()
    }
}
