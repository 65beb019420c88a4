//! Break-glass grants on PostgreSQL.

use tokio_postgres::Row;

use super::{PgStore, pg_error};
use crate::Result;
use crate::break_glass::{BreakGlassRow, COLUMNS};

fn row(r: &Row) -> BreakGlassRow {
    BreakGlassRow {
        id: r.get(0),
        patient_id: r.get(1),
        practitioner_id: r.get(2),
        account_id: r.get(3),
        organisation_id: r.get(4),
        reason: r.get(5),
        starts_us: r.get(6),
        expires_us: r.get(7),
        reviewed_us: r.get(8),
        reviewed_by: r.get(9),
    }
}

impl PgStore {
    pub(crate) async fn create_break_glass(&self, g: &BreakGlassRow) -> Result<()> {
        let _open = self.closed_check().await?;
        let conn = self.pool.get().await?;
        conn.client
            .execute(
                &format!(
                    "INSERT INTO break_glass_grants ({COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                ),
                &[
                    &g.id,
                    &g.patient_id,
                    &g.practitioner_id,
                    &g.account_id,
                    &g.organisation_id,
                    &g.reason,
                    &g.starts_us,
                    &g.expires_us,
                    &g.reviewed_us,
                    &g.reviewed_by,
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    /// `column` is never user input.
    pub(crate) async fn break_glass_where(
        &self,
        column: &str,
        value: &str,
        only_unreviewed: bool,
    ) -> Result<Vec<BreakGlassRow>> {
        let unreviewed = if only_unreviewed {
            " AND reviewed_us IS NULL"
        } else {
            ""
        };
        let mut conn = self.pool.get().await?;
        let stmt = conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM break_glass_grants WHERE {column} = $1{unreviewed} \
                 ORDER BY starts_us DESC, id DESC"
            ))
            .await?;
        let rows = conn
            .client
            .query(&stmt, &[&value])
            .await
            .map_err(pg_error)?;
        Ok(rows.iter().map(row).collect())
    }

    pub(crate) async fn mark_break_glass_reviewed(
        &self,
        id: &str,
        reviewer: &str,
        now: i64,
    ) -> Result<bool> {
        let _open = self.closed_check().await?;
        let conn = self.pool.get().await?;
        let n = conn
            .client
            .execute(
                "UPDATE break_glass_grants SET reviewed_us = $3, reviewed_by = $2 \
                 WHERE id = $1 AND reviewed_us IS NULL",
                &[&id, &reviewer, &now],
            )
            .await
            .map_err(pg_error)?;
        Ok(n == 1)
    }
}
