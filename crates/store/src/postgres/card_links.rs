//! Card links on PostgreSQL.

use tokio_postgres::Row;

use super::{PgStore, pg_error};
use crate::Result;
use crate::card_links::{COLUMNS, CardLinkRow};

fn row(r: &Row) -> CardLinkRow {
    CardLinkRow {
        id: r.get(0),
        patient_id: r.get(1),
        token_sha256: r.get(2),
        created_by: r.get(3),
        created_by_name: r.get(4),
        created_us: r.get(5),
        expires_us: r.get(6),
        revoked_us: r.get(7),
        passcode_hash: r.get(8),
        failed_attempts: r.get(9),
    }
}

impl PgStore {
    pub(crate) async fn create_card_link(&self, l: &CardLinkRow) -> Result<()> {
        let _open = self.closed_check().await?;
        let conn = self.pool.get().await?;
        conn.client
            .execute(
                &format!(
                    "INSERT INTO card_links ({COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                ),
                &[
                    &l.id,
                    &l.patient_id,
                    &l.token_sha256,
                    &l.created_by,
                    &l.created_by_name,
                    &l.created_us,
                    &l.expires_us,
                    &l.revoked_us,
                    &l.passcode_hash,
                    &l.failed_attempts,
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    /// `column` is never user input.
    pub(crate) async fn card_links_where(
        &self,
        column: &str,
        value: &str,
    ) -> Result<Vec<CardLinkRow>> {
        let conn = self.pool.get().await?;
        let rows = conn
            .client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM card_links WHERE {column} = $1 \
                     ORDER BY created_us DESC, id DESC"
                ),
                &[&value],
            )
            .await
            .map_err(pg_error)?;
        Ok(rows.iter().map(row).collect())
    }

    /// `sql` is a constant with parameters `$1`–`$3` (id, patient, time).
    pub(crate) async fn card_link_update(
        &self,
        sql: &'static str,
        id: &str,
        patient: &str,
        now: i64,
    ) -> Result<bool> {
        let _open = self.closed_check().await?;
        let conn = self.pool.get().await?;
        let n = conn
            .client
            .execute(sql, &[&id, &patient, &now])
            .await
            .map_err(pg_error)?;
        Ok(n == 1)
    }

    pub(crate) async fn card_link_failed(&self, id: &str) -> Result<i64> {
        let _open = self.closed_check().await?;
        let conn = self.pool.get().await?;
        let r = conn
            .client
            .query_one(
                "UPDATE card_links SET failed_attempts = failed_attempts + 1 WHERE id = $1 \
                 RETURNING failed_attempts",
                &[&id],
            )
            .await
            .map_err(pg_error)?;
        Ok(r.get(0))
    }
}
