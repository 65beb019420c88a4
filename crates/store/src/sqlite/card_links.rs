//! Card links on SQLite: writes on the writer thread, reads on reader connections.

use rusqlite::Row;

use super::SqliteStore;
use crate::Result;
use crate::card_links::{COLUMNS, CardLinkRow};

fn row(r: &Row<'_>) -> rusqlite::Result<CardLinkRow> {
    Ok(CardLinkRow {
        id: r.get(0)?,
        patient_id: r.get(1)?,
        token_sha256: r.get(2)?,
        created_by: r.get(3)?,
        created_by_name: r.get(4)?,
        created_us: r.get(5)?,
        expires_us: r.get(6)?,
        revoked_us: r.get(7)?,
        passcode_hash: r.get(8)?,
        failed_attempts: r.get(9)?,
    })
}

impl SqliteStore {
    pub(crate) async fn create_card_link(&self, l: CardLinkRow) -> Result<()> {
        self.in_transaction(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO card_links ({COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ),
                rusqlite::params![
                    l.id,
                    l.patient_id,
                    l.token_sha256,
                    l.created_by,
                    l.created_by_name,
                    l.created_us,
                    l.expires_us,
                    l.revoked_us,
                    l.passcode_hash,
                    l.failed_attempts
                ],
            )
            .map(|_| ())
        })
        .await
    }

    /// `column` is never user input.
    pub(crate) fn card_links_where(&self, column: &str, value: &str) -> Result<Vec<CardLinkRow>> {
        self.with_reader(|c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM card_links WHERE {column} = ?1 \
                 ORDER BY created_us DESC, id DESC"
            ))?
            .query_map([value], row)?
            .collect()
        })
    }

    /// `sql` is a constant with parameters `$1`–`$3` (id, patient, time).
    pub(crate) async fn card_link_update(
        &self,
        sql: &'static str,
        id: String,
        patient: String,
        now: i64,
    ) -> Result<bool> {
        self.in_transaction(move |c| {
            // `$n` is a named parameter to SQLite, numbered by first use: `?n` by position.
            c.execute(&sql.replace('$', "?"), rusqlite::params![id, patient, now])
                .map(|n| n == 1)
        })
        .await
    }

    pub(crate) async fn card_link_failed(&self, id: String) -> Result<i64> {
        self.in_transaction(move |c| {
            c.query_row(
                "UPDATE card_links SET failed_attempts = failed_attempts + 1 WHERE id = ?1 \
                 RETURNING failed_attempts",
                [id],
                |r| r.get(0),
            )
        })
        .await
    }
}
