//! Onboarding on PostgreSQL. Redemption is one conditional UPDATE, so a code works once
//! even across server processes.

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{PgStore, pg_error};
use crate::onboarding::*;
use crate::{Result, StoreError};

fn invitation(r: &Row) -> Invitation {
    Invitation {
        id: r.get(0),
        code_hash: r.get(1),
        patient_id: r.get(2),
        issued_by_account: r.get(3),
        organisation_id: r.get(4),
        parent_email: r.get(5),
        created_us: r.get(6),
        expires_us: r.get(7),
        redeemed_us: r.get(8),
        redeemed_by: r.get(9),
        revoked_us: r.get(10),
    }
}

impl PgStore {
    /// Runs one statement that changes something; the number of rows.
    async fn onboarding_change(&self, sql: &str, args: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let closed = self.closed.read().await;
        if *closed {
            return Err(StoreError::Closed);
        }
        let mut conn = self.pool.get().await?;
        let stmt = conn.prepare(sql).await?;
        conn.client.execute(&stmt, args).await.map_err(pg_error)
    }

    async fn onboarding_query(&self, sql: &str, args: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let mut conn = self.pool.get().await?;
        let stmt = conn.prepare(sql).await?;
        conn.client.query(&stmt, args).await.map_err(pg_error)
    }

    pub(crate) async fn create_invitations(&self, all: &[Invitation]) -> Result<()> {
        let closed = self.closed.read().await;
        if *closed {
            return Err(StoreError::Closed);
        }
        let mut conn = self.pool.get().await?;
        let stmt = conn
            .prepare(&format!(
                "INSERT INTO invitations ({INVITATION_COLUMNS}) VALUES \
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            ))
            .await?;
        let tx = conn.client.transaction().await.map_err(pg_error)?;
        for i in all {
            tx.execute(
                &stmt,
                &[
                    &i.id,
                    &i.code_hash,
                    &i.patient_id,
                    &i.issued_by_account,
                    &i.organisation_id,
                    &i.parent_email,
                    &i.created_us,
                    &i.expires_us,
                    &i.redeemed_us,
                    &i.redeemed_by,
                    &i.revoked_us,
                ],
            )
            .await
            .map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)
    }

    pub(crate) async fn invitation_where_hash(&self, hash: &[u8]) -> Result<Option<Invitation>> {
        let rows = self
            .onboarding_query(
                &format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE code_hash = $1"),
                &[&hash],
            )
            .await?;
        Ok(rows.first().map(invitation))
    }

    pub(crate) async fn invitations_for(&self, patient_id: &str) -> Result<Vec<Invitation>> {
        let rows = self
            .onboarding_query(
                &format!(
                    "SELECT {INVITATION_COLUMNS} FROM invitations WHERE patient_id = $1 \
                     ORDER BY created_us DESC, id DESC"
                ),
                &[&patient_id],
            )
            .await?;
        Ok(rows.iter().map(invitation).collect())
    }

    pub(crate) async fn redeem_invitation(
        &self,
        hash: &[u8],
        account: &str,
        now: i64,
    ) -> Result<bool> {
        let n = self
            .onboarding_change(
                "UPDATE invitations SET redeemed_us = $2, redeemed_by = $3 \
                 WHERE code_hash = $1 AND redeemed_us IS NULL AND revoked_us IS NULL \
                 AND expires_us > $2",
                &[&hash, &now, &account],
            )
            .await?;
        Ok(n == 1)
    }

    pub(crate) async fn unredeem_invitation(&self, hash: &[u8]) -> Result<()> {
        self.onboarding_change(
            "UPDATE invitations SET redeemed_us = NULL, redeemed_by = NULL WHERE code_hash = $1",
            &[&hash],
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn revoke_invitation(&self, id: &str, now: i64) -> Result<bool> {
        let n = self
            .onboarding_change(
                "UPDATE invitations SET revoked_us = $2 \
                 WHERE id = $1 AND redeemed_us IS NULL AND revoked_us IS NULL",
                &[&id, &now],
            )
            .await?;
        Ok(n == 1)
    }

    pub(crate) async fn record_family_link(
        &self,
        patient: &str,
        person: &str,
        related: &str,
        now: i64,
        last: Option<i64>,
    ) -> Result<()> {
        self.onboarding_change(
            "INSERT INTO family_links (patient_id, person_id, related_person_id, linked_us, \
             last_family_activity_us) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (patient_id, person_id) DO UPDATE SET \
             last_family_activity_us = COALESCE(excluded.last_family_activity_us, \
             family_links.last_family_activity_us)",
            &[&patient, &person, &related, &now, &last],
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn record_family_activity(&self, person: &str, now: i64) -> Result<()> {
        self.onboarding_change(
            "UPDATE family_links SET last_family_activity_us = $2 WHERE person_id = $1",
            &[&person, &now],
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn passport_facts(&self, now: i64) -> Result<Vec<PassportFacts>> {
        let rows = self.onboarding_query(FACTS_SQL, &[&now]).await?;
        Ok(rows
            .iter()
            .map(|r| PassportFacts {
                patient_id: r.get(0),
                open_invitation: r.get::<_, i64>(1) > 0,
                linked_us: r.get(2),
                last_family_activity_us: r.get(3),
            })
            .collect())
    }
}
