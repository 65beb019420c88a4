//! PostgreSQL side of filling in access inputs (see `crate::access_inputs`).

use bytes::Bytes;

use super::pg_error;
use crate::{AccessInputs, Result, acc_flags};

impl super::PgStore {
    pub(crate) async fn pending_access(&self, sql: &str) -> Result<Vec<(i64, Bytes)>> {
        let conn = self.pool.get().await?;
        let rows = conn.client.query(sql, &[]).await.map_err(pg_error)?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    Bytes::copy_from_slice(r.get::<_, Option<&[u8]>>(1).unwrap_or_default()),
                )
            })
            .collect())
    }

    pub(crate) async fn set_access(&self, rows: Vec<(i64, AccessInputs)>) -> Result<()> {
        let mut conn = self.pool.get().await?;
        let tx = conn.client.transaction().await.map_err(pg_error)?;
        for (seq, inputs) in &rows {
            let (patient, sections, labels, flags) = inputs.columns();
            let (sections, labels, flags) = (sections as i32, labels as i32, flags as i32);
            for table in ["resource_versions", "resource_current"] {
                tx.execute(
                    &format!(
                        "UPDATE {table} SET acc_patient = $1, acc_sections = $2, \
                         acc_labels = $3, acc_flags = $4 WHERE seq = $5"
                    ),
                    &[&patient, &sections, &labels, &flags, seq],
                )
                .await
                .map_err(pg_error)?;
            }
            if i64::from(flags) & acc_flags::MORE_CHILDREN != 0 {
                let more: Vec<&str> = inputs.patients.iter().skip(1).map(String::as_str).collect();
                tx.execute(
                    "INSERT INTO access_child (seq, patient) \
                     SELECT $1, p FROM unnest($2::text[]) AS p ON CONFLICT DO NOTHING",
                    &[seq, &more],
                )
                .await
                .map_err(pg_error)?;
            }
            if !inputs.members.is_empty() {
                tx.execute(crate::members::CLEAR_PG, &[seq])
                    .await
                    .map_err(pg_error)?;
                for m in &inputs.members {
                    tx.execute(
                        crate::members::BACKFILL_PG,
                        &[&m.member_type, &m.member_id, &m.starts, &m.ends, seq],
                    )
                    .await
                    .map_err(pg_error)?;
                }
            }
        }
        tx.commit().await.map_err(pg_error)
    }
}
