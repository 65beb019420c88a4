//! Card links (migration 17): the link in the QR code of a child's wallet card. Whoever
//! holds it reads the child's emergency content (`access::Identity::CardLink`); the rules
//! (expiry, revocation, passcode, attempts) are `domain::card_link`'s. Only a SHA-256 of
//! the token is kept, so the table cannot be used to open a card.

use crate::{Result, Store};

/// One card link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardLinkRow {
    pub id: String,
    pub patient_id: String,
    /// Hex SHA-256 of the token.
    pub token_sha256: String,
    pub created_by: String,
    pub created_by_name: String,
    pub created_us: i64,
    pub expires_us: i64,
    pub revoked_us: Option<i64>,
    /// argon2id PHC string, if the link needs a passcode.
    pub passcode_hash: Option<String>,
    pub failed_attempts: i64,
}

pub(crate) const COLUMNS: &str = "id, patient_id, token_sha256, created_by, created_by_name, \
     created_us, expires_us, revoked_us, passcode_hash, failed_attempts";

impl Store {
    pub async fn create_card_link(&self, row: &CardLinkRow) -> Result<()> {
        match self {
            Store::Sqlite(s) => s.create_card_link(row.clone()).await,
            Store::Postgres(s) => s.create_card_link(row).await,
        }
    }

    /// A child's card links, newest first.
    pub async fn card_links_for_patient(&self, patient_id: &str) -> Result<Vec<CardLinkRow>> {
        match self {
            Store::Sqlite(s) => s.card_links_where("patient_id", patient_id),
            Store::Postgres(s) => s.card_links_where("patient_id", patient_id).await,
        }
    }

    /// The card link whose token hashes to `token_sha256`.
    pub async fn card_link_by_token(&self, token_sha256: &str) -> Result<Option<CardLinkRow>> {
        let rows = match self {
            Store::Sqlite(s) => s.card_links_where("token_sha256", token_sha256)?,
            Store::Postgres(s) => s.card_links_where("token_sha256", token_sha256).await?,
        };
        Ok(rows.into_iter().next())
    }

    /// Revokes a link of `patient_id` at `now_us`; `false` if there is no such link or it
    /// was already revoked (the first revocation stands).
    pub async fn revoke_card_link(&self, id: &str, patient_id: &str, now_us: i64) -> Result<bool> {
        let sql = "UPDATE card_links SET revoked_us = $3 \
                   WHERE id = $1 AND patient_id = $2 AND revoked_us IS NULL";
        match self {
            Store::Sqlite(s) => {
                let (id, p) = (id.to_owned(), patient_id.to_owned());
                s.card_link_update(sql, id, p, now_us).await
            }
            Store::Postgres(s) => s.card_link_update(sql, id, patient_id, now_us).await,
        }
    }

    /// Counts one wrong passcode for a link; returns the attempts counted so far.
    pub async fn card_link_failed(&self, id: &str) -> Result<i64> {
        match self {
            Store::Sqlite(s) => s.card_link_failed(id.to_owned()).await,
            Store::Postgres(s) => s.card_link_failed(id).await,
        }
    }
}
