//! SQLite side of search: index maintenance (on the writer thread, inside the write's
//! savepoint) and running the shared search SQL on a reader connection.

use bytes::Bytes;
use rusqlite::Connection;

use crate::Write;
use crate::search::{self, Match, SArg, SortValue, Sql};

fn params(args: &[SArg]) -> Vec<rusqlite::types::Value> {
    args.iter()
        .map(|a| match a {
            SArg::Text(s) => rusqlite::types::Value::Text(s.clone()),
            SArg::Int(i) => rusqlite::types::Value::Integer(*i),
            SArg::Real(f) => rusqlite::types::Value::Real(*f),
        })
        .collect()
}

/// Replaces the index rows of (type, id) with those of the version just written (none for
/// a deletion), in every index table.
pub(super) fn replace_indexes(conn: &Connection, w: &Write, existed: bool) -> rusqlite::Result<()> {
    let (t, id) = (&w.resource_type, &w.id);
    if existed {
        for table in search::TABLES {
            conn.prepare_cached(&format!(
                "DELETE FROM {table} WHERE resource_type = ?1 AND id = ?2"
            ))?
            .execute((t, id))?;
        }
    }
    if w.deleted || w.index.is_empty() {
        return Ok(());
    }
    let r = search::rows(&w.index);
    if !r.token.is_empty() {
        let mut s = conn.prepare_cached(
            "INSERT INTO index_token (resource_type, id, param, system, code, text, type_system, type_code) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for x in &r.token {
            s.execute((
                t,
                id,
                x.param,
                x.system,
                x.code,
                &x.text,
                x.type_system,
                x.type_code,
            ))?;
        }
    }
    if !r.string.is_empty() {
        let mut s = conn.prepare_cached(
            "INSERT INTO index_string (resource_type, id, param, normalized, exact) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (p, n, e) in &r.string {
            s.execute((t, id, p, n, e))?;
        }
    }
    if !r.date.is_empty() {
        let mut s = conn.prepare_cached(
            "INSERT INTO index_date (resource_type, id, param, low_us, high_us) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (p, l, h) in &r.date {
            s.execute((t, id, p, l, h))?;
        }
    }
    if !r.reference.is_empty() {
        let mut s = conn.prepare_cached(
            "INSERT INTO index_reference (resource_type, id, param, target_type, target_id, url, identifier_system, identifier_value) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for x in &r.reference {
            s.execute((
                t,
                id,
                x.param,
                x.target_type,
                x.target_id,
                x.url,
                x.identifier_system,
                x.identifier_value,
            ))?;
        }
    }
    if !r.number.is_empty() {
        let mut s = conn.prepare_cached(
            "INSERT INTO index_number (resource_type, id, param, value, low, high, system, code, unit) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for x in &r.number {
            s.execute((
                t, id, x.param, x.value, x.low, x.high, x.system, x.code, x.unit,
            ))?;
        }
    }
    if !r.uri.is_empty() {
        let mut s = conn.prepare_cached(
            "INSERT INTO index_uri (resource_type, id, param, value) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (p, v) in &r.uri {
            s.execute((t, id, p, v))?;
        }
    }
    if !r.composite.is_empty() {
        let mut s = conn.prepare_cached(
            "INSERT INTO index_composite (resource_type, id, param, c1_system, c1_code, c2_system, c2_code, c2_value, c2_low_us, c2_high_us, c2_string) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        for x in &r.composite {
            s.execute(rusqlite::params![
                t,
                id,
                x.param,
                x.c1_system,
                x.c1_code,
                x.c2_system,
                x.c2_code,
                x.c2_value,
                x.c2_low_us,
                x.c2_high_us,
                x.c2_string
            ])?;
        }
    }
    Ok(())
}

fn sort_value(v: rusqlite::types::ValueRef<'_>) -> SortValue {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => SortValue::Null,
        ValueRef::Integer(i) => SortValue::Int(i),
        ValueRef::Real(f) => SortValue::Real(f),
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            SortValue::Text(String::from_utf8_lossy(t).into_owned())
        }
    }
}

/// The page rows of [`search::search_sql`].
pub(super) fn page(
    conn: &Connection,
    q: &Sql,
    resource_type: &str,
    sort_keys: usize,
) -> rusqlite::Result<Vec<Match>> {
    let mut stmt = conn.prepare_cached(&q.text)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(params(&q.args)), |r| {
        Ok(Match {
            resource_type: resource_type.to_owned(),
            id: r.get(0)?,
            version_id: r.get(1)?,
            last_updated_us: r.get(2)?,
            body: Bytes::from(r.get::<_, Vec<u8>>(3)?),
            sort_values: (0..sort_keys)
                .map(|i| r.get_ref(4 + i).map(sort_value))
                .collect::<rusqlite::Result<_>>()?,
        })
    })?;
    rows.collect()
}

/// Rows of `resource_type, id, version_id, last_updated_us, body`.
pub(super) fn typed_rows(conn: &Connection, q: &Sql) -> rusqlite::Result<Vec<Match>> {
    let mut stmt = conn.prepare_cached(&q.text)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(params(&q.args)), |r| {
        Ok(Match {
            resource_type: r.get(0)?,
            id: r.get(1)?,
            version_id: r.get(2)?,
            last_updated_us: r.get(3)?,
            body: Bytes::from(r.get::<_, Vec<u8>>(4)?),
            sort_values: Vec::new(),
        })
    })?;
    rows.collect()
}

pub(super) fn count(conn: &Connection, q: &Sql) -> rusqlite::Result<u64> {
    conn.prepare_cached(&q.text)?
        .query_row(rusqlite::params_from_iter(params(&q.args)), |r| {
            r.get::<_, i64>(0)
        })
        .map(|n| n.max(0) as u64)
}

impl super::SqliteStore {
    pub(crate) fn search_page(
        &self,
        q: &Sql,
        resource_type: &str,
        sort_keys: usize,
    ) -> crate::Result<Vec<Match>> {
        self.with_reader(|c| page(c, q, resource_type, sort_keys))
    }

    pub(crate) fn search_rows(&self, q: &Sql) -> crate::Result<Vec<Match>> {
        self.with_reader(|c| typed_rows(c, q))
    }

    pub(crate) fn search_count(&self, q: &Sql) -> crate::Result<u64> {
        self.with_reader(|c| count(c, q))
    }
}
