//! Onboarding on SQLite: writes on the writer thread (`call`), reads on reader connections.

use rusqlite::{OptionalExtension, Row};

use super::{SqliteStore, backend};
use crate::Result;
use crate::onboarding::*;

fn invitation(r: &Row<'_>) -> rusqlite::Result<Invitation> {
    Ok(Invitation {
        id: r.get(0)?,
        code_hash: r.get(1)?,
        patient_id: r.get(2)?,
        issued_by_account: r.get(3)?,
        organisation_id: r.get(4)?,
        parent_email: r.get(5)?,
        created_us: r.get(6)?,
        expires_us: r.get(7)?,
        redeemed_us: r.get(8)?,
        redeemed_by: r.get(9)?,
        revoked_us: r.get(10)?,
    })
}

impl SqliteStore {
    pub(crate) async fn create_invitations(&self, all: Vec<Invitation>) -> Result<()> {
        self.call(move |c| {
            let tx = super::write_transaction(c).map_err(backend)?;
            for i in &all {
                tx.execute(
                    &format!(
                        "INSERT INTO invitations ({INVITATION_COLUMNS}) VALUES \
                         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                    ),
                    rusqlite::params![
                        i.id,
                        i.code_hash,
                        i.patient_id,
                        i.issued_by_account,
                        i.organisation_id,
                        i.parent_email,
                        i.created_us,
                        i.expires_us,
                        i.redeemed_us,
                        i.redeemed_by,
                        i.revoked_us
                    ],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    /// `column` is never user input.
    pub(crate) fn invitation_where(
        &self,
        column: &str,
        value: Vec<u8>,
    ) -> Result<Option<Invitation>> {
        self.with_reader(|c| {
            c.prepare_cached(&format!(
                "SELECT {INVITATION_COLUMNS} FROM invitations WHERE {column} = ?1"
            ))?
            .query_row([value], invitation)
            .optional()
        })
    }

    pub(crate) fn invitations_for(&self, patient_id: &str) -> Result<Vec<Invitation>> {
        self.with_reader(|c| {
            c.prepare_cached(&format!(
                "SELECT {INVITATION_COLUMNS} FROM invitations WHERE patient_id = ?1 \
                 ORDER BY created_us DESC, id DESC"
            ))?
            .query_map([patient_id], invitation)?
            .collect()
        })
    }

    pub(crate) async fn redeem_invitation(
        &self,
        hash: Vec<u8>,
        account: String,
        now: i64,
    ) -> Result<bool> {
        self.call(move |c| {
            let n = c
                .execute(
                    "UPDATE invitations SET redeemed_us = ?2, redeemed_by = ?3 \
                     WHERE code_hash = ?1 AND redeemed_us IS NULL AND revoked_us IS NULL \
                     AND expires_us > ?2",
                    rusqlite::params![hash, now, account],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    pub(crate) async fn unredeem_invitation(&self, hash: Vec<u8>) -> Result<()> {
        self.call(move |c| {
            c.execute(
                "UPDATE invitations SET redeemed_us = NULL, redeemed_by = NULL WHERE code_hash = ?1",
                [hash],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn revoke_invitation(&self, id: String, now: i64) -> Result<bool> {
        self.call(move |c| {
            let n = c
                .execute(
                    "UPDATE invitations SET revoked_us = ?2 \
                     WHERE id = ?1 AND redeemed_us IS NULL AND revoked_us IS NULL",
                    rusqlite::params![id, now],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    pub(crate) async fn record_family_link(
        &self,
        patient: String,
        person: String,
        related: String,
        now: i64,
        last: Option<i64>,
    ) -> Result<()> {
        self.call(move |c| {
            c.execute(
                "INSERT INTO family_links (patient_id, person_id, related_person_id, linked_us, \
                 last_family_activity_us) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (patient_id, person_id) DO UPDATE SET \
                 last_family_activity_us = COALESCE(excluded.last_family_activity_us, \
                 family_links.last_family_activity_us)",
                rusqlite::params![patient, person, related, now, last],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn record_family_activity(&self, person: String, now: i64) -> Result<()> {
        self.call(move |c| {
            c.execute(
                "UPDATE family_links SET last_family_activity_us = ?2 WHERE person_id = ?1",
                rusqlite::params![person, now],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    pub(crate) fn passport_facts(&self, now: i64) -> Result<Vec<PassportFacts>> {
        self.with_reader(|c| {
            c.prepare_cached(&FACTS_SQL.replace("$1", "?1"))?
                .query_map([now], |r| {
                    Ok(PassportFacts {
                        patient_id: r.get(0)?,
                        open_invitation: r.get::<_, i64>(1)? > 0,
                        linked_us: r.get(2)?,
                        last_family_activity_us: r.get(3)?,
                    })
                })?
                .collect()
        })
    }
}
