//! Break-glass grants on SQLite: writes on the writer thread, reads on reader connections.

use rusqlite::Row;

use super::SqliteStore;
use crate::Result;
use crate::break_glass::{BreakGlassRow, COLUMNS};

fn row(r: &Row<'_>) -> rusqlite::Result<BreakGlassRow> {
    Ok(BreakGlassRow {
        id: r.get(0)?,
        patient_id: r.get(1)?,
        practitioner_id: r.get(2)?,
        account_id: r.get(3)?,
        organisation_id: r.get(4)?,
        reason: r.get(5)?,
        starts_us: r.get(6)?,
        expires_us: r.get(7)?,
        reviewed_us: r.get(8)?,
        reviewed_by: r.get(9)?,
    })
}

impl SqliteStore {
    pub(crate) async fn create_break_glass(&self, g: BreakGlassRow) -> Result<()> {
        self.in_transaction(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO break_glass_grants ({COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ),
                rusqlite::params![
                    g.id,
                    g.patient_id,
                    g.practitioner_id,
                    g.account_id,
                    g.organisation_id,
                    g.reason,
                    g.starts_us,
                    g.expires_us,
                    g.reviewed_us,
                    g.reviewed_by
                ],
            )
            .map(|_| ())
        })
        .await
    }

    /// `column` is never user input.
    pub(crate) fn break_glass_where(
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
        self.with_reader(|c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM break_glass_grants WHERE {column} = ?1{unreviewed} \
                 ORDER BY starts_us DESC, id DESC"
            ))?
            .query_map([value], row)?
            .collect()
        })
    }

    pub(crate) async fn mark_break_glass_reviewed(
        &self,
        id: String,
        reviewer: String,
        now: i64,
    ) -> Result<bool> {
        self.in_transaction(move |c| {
            c.execute(
                "UPDATE break_glass_grants SET reviewed_us = ?3, reviewed_by = ?2 \
                 WHERE id = ?1 AND reviewed_us IS NULL",
                rusqlite::params![id, reviewer, now],
            )
            .map(|n| n == 1)
        })
        .await
    }
}
