//! SQLite side of search: index maintenance (on the writer thread, inside the write's
//! savepoint) and running the shared search SQL on a reader connection.

use bytes::Bytes;
use rusqlite::Connection;

use crate::Write;
use crate::search::{self, Match, SArg, SortValue, Sql};

pub(crate) fn params(args: &[SArg]) -> Vec<rusqlite::types::Value> {
    args.iter()
        .map(|a| match a {
            SArg::Text(s) => rusqlite::types::Value::Text(s.clone()),
            SArg::Int(i) => rusqlite::types::Value::Integer(*i),
            SArg::Real(f) => rusqlite::types::Value::Real(*f),
            SArg::TextList(l) => rusqlite::types::Value::Text(
                serde_json::to_string(l).expect("a list of strings serialises"),
            ),
        })
        .collect()
}

/// Rows per multi-row `INSERT` statement: a table's rows go in chunks of these sizes,
/// largest first (so at most a few statements per table, each prepared once and cached).
const CHUNKS: [usize; 3] = [16, 4, 1];

/// One index table's insert statements, one per [`CHUNKS`] size, built once. Every row is
/// `(?1 = rid, n, ?2 = resource_type, <cols>…)`; `n` and the columns are bound per row.
struct InsertSql {
    table: &'static str,
    cols: &'static [&'static str],
    sql: std::sync::OnceLock<[String; 3]>,
}

impl InsertSql {
    const fn new(table: &'static str, cols: &'static [&'static str]) -> Self {
        InsertSql {
            table,
            cols,
            sql: std::sync::OnceLock::new(),
        }
    }

    fn sql(&self, chunk: usize) -> &str {
        let all = self.sql.get_or_init(|| {
            CHUNKS.map(|rows| {
                let mut s = format!(
                    "INSERT INTO {} (rid, n, resource_type, {}) VALUES ",
                    self.table,
                    self.cols.join(", ")
                );
                let mut p = 3;
                for r in 0..rows {
                    if r > 0 {
                        s.push_str(", ");
                    }
                    s.push_str("(?1, ?");
                    s.push_str(&p.to_string());
                    p += 1;
                    s.push_str(", ?2");
                    for _ in self.cols {
                        s.push_str(", ?");
                        s.push_str(&p.to_string());
                        p += 1;
                    }
                    s.push(')');
                }
                s
            })
        });
        let i = CHUNKS.iter().position(|&c| c == chunk).unwrap_or(2);
        &all[i]
    }

    /// Inserts `rows` in chunks; `bind(stmt, first_param, row)` binds one row's columns.
    fn insert<T>(
        &self,
        conn: &Connection,
        rid: i64,
        resource_type: &str,
        rows: &[T],
        bind: impl Fn(&mut rusqlite::Statement<'_>, usize, &T) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<()> {
        let per_row = 1 + self.cols.len();
        let mut done = 0;
        for chunk in CHUNKS {
            while rows.len() - done >= chunk {
                let mut s = conn.prepare_cached(self.sql(chunk))?;
                s.raw_bind_parameter(1, rid)?;
                s.raw_bind_parameter(2, resource_type)?;
                for (k, row) in rows[done..done + chunk].iter().enumerate() {
                    let first = 3 + k * per_row;
                    s.raw_bind_parameter(first, (done + k) as i64)?;
                    bind(&mut s, first + 1, row)?;
                }
                s.raw_execute()?;
                done += chunk;
            }
        }
        Ok(())
    }
}

static TOKEN: InsertSql = InsertSql::new(
    "index_token",
    &[
        "param",
        "system",
        "code",
        "text",
        "type_system",
        "type_code",
    ],
);
static STRING: InsertSql = InsertSql::new("index_string", &["param", "normalized", "exact"]);
static DATE: InsertSql = InsertSql::new("index_date", &["param", "low_us", "high_us"]);
static REFERENCE: InsertSql = InsertSql::new(
    "index_reference",
    &[
        "param",
        "target_type",
        "target_id",
        "url",
        "identifier_system",
        "identifier_value",
    ],
);
static NUMBER: InsertSql = InsertSql::new(
    "index_number",
    &["param", "value", "low", "high", "system", "code", "unit"],
);
static URI: InsertSql = InsertSql::new("index_uri", &["param", "value"]);
static COMPOSITE: InsertSql = InsertSql::new(
    "index_composite",
    &[
        "param",
        "c1_system",
        "c1_code",
        "c2_system",
        "c2_code",
        "c2_value",
        "c2_low_us",
        "c2_high_us",
        "c2_string",
    ],
);

/// Deletes a resource's rows: a range of each table's primary key `(rid, n)`.
const DELETES: [&str; 7] = [
    "DELETE FROM index_token WHERE rid = ?1",
    "DELETE FROM index_string WHERE rid = ?1",
    "DELETE FROM index_date WHERE rid = ?1",
    "DELETE FROM index_reference WHERE rid = ?1",
    "DELETE FROM index_number WHERE rid = ?1",
    "DELETE FROM index_uri WHERE rid = ?1",
    "DELETE FROM index_composite WHERE rid = ?1",
];

/// Replaces the index rows of the resource `rid` with those of the version just written
/// (none for a deletion), in every index table: multi-row inserts, statements cached.
pub(super) fn replace_indexes(
    conn: &Connection,
    w: &Write,
    rid: i64,
    existed: bool,
) -> rusqlite::Result<()> {
    if existed {
        for sql in DELETES {
            conn.prepare_cached(sql)?.execute([rid])?;
        }
    }
    if w.deleted || w.index.is_empty() {
        return Ok(());
    }
    let t = w.resource_type.as_str();
    let r = search::rows(&w.index);
    TOKEN.insert(conn, rid, t, &r.token, |s, i, x| {
        s.raw_bind_parameter(i, x.param)?;
        s.raw_bind_parameter(i + 1, x.system)?;
        s.raw_bind_parameter(i + 2, x.code)?;
        s.raw_bind_parameter(i + 3, x.text.as_deref())?;
        s.raw_bind_parameter(i + 4, x.type_system)?;
        s.raw_bind_parameter(i + 5, x.type_code)
    })?;
    STRING.insert(conn, rid, t, &r.string, |s, i, (p, n, e)| {
        s.raw_bind_parameter(i, p)?;
        s.raw_bind_parameter(i + 1, n)?;
        s.raw_bind_parameter(i + 2, e)
    })?;
    DATE.insert(conn, rid, t, &r.date, |s, i, (p, l, h)| {
        s.raw_bind_parameter(i, p)?;
        s.raw_bind_parameter(i + 1, l)?;
        s.raw_bind_parameter(i + 2, h)
    })?;
    REFERENCE.insert(conn, rid, t, &r.reference, |s, i, x| {
        s.raw_bind_parameter(i, x.param)?;
        s.raw_bind_parameter(i + 1, x.target_type)?;
        s.raw_bind_parameter(i + 2, x.target_id)?;
        s.raw_bind_parameter(i + 3, x.url)?;
        s.raw_bind_parameter(i + 4, x.identifier_system)?;
        s.raw_bind_parameter(i + 5, x.identifier_value)
    })?;
    NUMBER.insert(conn, rid, t, &r.number, |s, i, x| {
        s.raw_bind_parameter(i, x.param)?;
        s.raw_bind_parameter(i + 1, x.value)?;
        s.raw_bind_parameter(i + 2, x.low)?;
        s.raw_bind_parameter(i + 3, x.high)?;
        s.raw_bind_parameter(i + 4, x.system)?;
        s.raw_bind_parameter(i + 5, x.code)?;
        s.raw_bind_parameter(i + 6, x.unit)
    })?;
    URI.insert(conn, rid, t, &r.uri, |s, i, (p, v)| {
        s.raw_bind_parameter(i, p)?;
        s.raw_bind_parameter(i + 1, v)
    })?;
    COMPOSITE.insert(conn, rid, t, &r.composite, |s, i, x| {
        s.raw_bind_parameter(i, x.param)?;
        s.raw_bind_parameter(i + 1, x.c1_system)?;
        s.raw_bind_parameter(i + 2, x.c1_code)?;
        s.raw_bind_parameter(i + 3, x.c2_system)?;
        s.raw_bind_parameter(i + 4, x.c2_code)?;
        s.raw_bind_parameter(i + 5, x.c2_value)?;
        s.raw_bind_parameter(i + 6, x.c2_low_us)?;
        s.raw_bind_parameter(i + 7, x.c2_high_us)?;
        s.raw_bind_parameter(i + 8, x.c2_string)
    })?;
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
    q: &Sql<'_>,
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
pub(super) fn typed_rows(conn: &Connection, q: &Sql<'_>) -> rusqlite::Result<Vec<Match>> {
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

pub(super) fn count(conn: &Connection, q: &Sql<'_>) -> rusqlite::Result<u64> {
    conn.prepare_cached(&q.text)?
        .query_row(rusqlite::params_from_iter(params(&q.args)), |r| {
            r.get::<_, i64>(0)
        })
        .map(|n| n.max(0) as u64)
}

impl super::SqliteStore {
    pub(crate) fn search_page(
        &self,
        q: &Sql<'_>,
        resource_type: &str,
        sort_keys: usize,
    ) -> crate::Result<Vec<Match>> {
        self.with_reader(|c| page(c, q, resource_type, sort_keys))
    }

    pub(crate) fn search_rows(&self, q: &Sql<'_>) -> crate::Result<Vec<Match>> {
        self.with_reader(|c| typed_rows(c, q))
    }

    pub(crate) fn search_count(&self, q: &Sql<'_>) -> crate::Result<u64> {
        self.with_reader(|c| count(c, q))
    }

    /// Rows of [`search::history_sql`].
    pub(crate) fn history_rows(&self, q: &Sql<'_>) -> crate::Result<Vec<crate::HistoryEntry>> {
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(&q.text)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(params(&q.args)), |r| {
                Ok(crate::HistoryEntry {
                    seq: r.get(0)?,
                    version: crate::Stored {
                        resource_type: r.get(1)?,
                        id: r.get(2)?,
                        version_id: r.get(3)?,
                        last_updated_us: r.get(4)?,
                        deleted: r.get(5)?,
                        body: Bytes::from(r.get::<_, Vec<u8>>(6)?),
                    },
                })
            })?;
            rows.collect()
        })
    }

    /// The first column of every row, as text.
    pub(crate) fn text_rows(&self, q: &Sql<'_>) -> crate::Result<Vec<String>> {
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(&q.text)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(params(&q.args)), |r| r.get(0))?;
            rows.collect()
        })
    }
}
