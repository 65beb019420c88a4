//! PostgreSQL side of search: index maintenance (one statement per write, inside its
//! transaction) and running the shared search SQL.

use bytes::Bytes;
use tokio_postgres::types::ToSql;

use super::{PgStore, pg_error};
use crate::search::{self, Match, SArg, SortValue, Sql};
use crate::{Result, Write};

/// Inserts a resource's index rows into every table in one round trip: `$1` is its `rid`,
/// `$2` its type, then one array per column (`UNNEST`: one bulk insert per table).
macro_rules! insert_ctes {
    () => {
        "i1 AS (INSERT INTO index_token (rid, resource_type, param, system, code, text, type_system, type_code) \
   SELECT $1, $2, u.* FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[]) AS u), \
 i2 AS (INSERT INTO index_string (rid, resource_type, param, normalized, exact) \
   SELECT $1, $2, u.* FROM unnest($9::text[], $10::text[], $11::text[]) AS u), \
 i3 AS (INSERT INTO index_date (rid, resource_type, param, low_us, high_us) \
   SELECT $1, $2, u.* FROM unnest($12::text[], $13::int8[], $14::int8[]) AS u), \
 i4 AS (INSERT INTO index_reference (rid, resource_type, param, target_type, target_id, url, identifier_system, identifier_value) \
   SELECT $1, $2, u.* FROM unnest($15::text[], $16::text[], $17::text[], $18::text[], $19::text[], $20::text[]) AS u), \
 i5 AS (INSERT INTO index_number (rid, resource_type, param, value, low, high, system, code, unit) \
   SELECT $1, $2, u.* FROM unnest($21::text[], $22::float8[], $23::float8[], $24::float8[], $25::text[], $26::text[], $27::text[]) AS u), \
 i6 AS (INSERT INTO index_uri (rid, resource_type, param, value) \
   SELECT $1, $2, u.* FROM unnest($28::text[], $29::text[]) AS u), \
 i7 AS (INSERT INTO index_composite (rid, resource_type, param, c1_system, c1_code, c2_system, c2_code, c2_value, c2_low_us, c2_high_us, c2_string) \
   SELECT $1, $2, u.* FROM unnest($30::text[], $31::text[], $32::text[], $33::text[], $34::text[], $35::float8[], $36::int8[], $37::int8[], $38::text[]) AS u) \
 SELECT 1"
    };
}

/// A new resource's index rows (nothing to delete).
pub(super) const INSERT_INDEXES_SQL: &str = concat!("WITH ", insert_ctes!());

/// Deletes the rows of every index table for `rid` and inserts the new ones, in one round
/// trip. Data-modifying CTEs share one snapshot, so the deletes cannot see (and so cannot
/// remove) the rows being inserted.
pub(super) const REPLACE_INDEXES_SQL: &str = concat!(
    "WITH \
 d1 AS (DELETE FROM index_token WHERE rid = $1), \
 d2 AS (DELETE FROM index_string WHERE rid = $1), \
 d3 AS (DELETE FROM index_date WHERE rid = $1), \
 d4 AS (DELETE FROM index_reference WHERE rid = $1), \
 d5 AS (DELETE FROM index_number WHERE rid = $1), \
 d6 AS (DELETE FROM index_uri WHERE rid = $1), \
 d7 AS (DELETE FROM index_composite WHERE rid = $1), ",
    insert_ctes!()
);

/// Runs [`REPLACE_INDEXES_SQL`] or [`INSERT_INDEXES_SQL`] (prepared as `stmt`) for the
/// write of resource `rid`.
pub(super) async fn replace_indexes(
    tx: &tokio_postgres::Transaction<'_>,
    stmt: &tokio_postgres::Statement,
    w: &Write,
    rid: i64,
) -> std::result::Result<(), tokio_postgres::Error> {
    let empty: &[fhir::search::IndexEntry] = &[];
    let r = search::rows(if w.deleted { empty } else { &w.index });
    let t_param: Vec<&str> = r.token.iter().map(|x| x.param).collect();
    let t_system: Vec<Option<&str>> = r.token.iter().map(|x| x.system).collect();
    let t_code: Vec<&str> = r.token.iter().map(|x| x.code).collect();
    let t_text: Vec<Option<&str>> = r.token.iter().map(|x| x.text.as_deref()).collect();
    let t_ts: Vec<Option<&str>> = r.token.iter().map(|x| x.type_system).collect();
    let t_tc: Vec<Option<&str>> = r.token.iter().map(|x| x.type_code).collect();
    let s_param: Vec<&str> = r.string.iter().map(|x| x.0).collect();
    let s_norm: Vec<&str> = r.string.iter().map(|x| x.1).collect();
    let s_exact: Vec<&str> = r.string.iter().map(|x| x.2).collect();
    let d_param: Vec<&str> = r.date.iter().map(|x| x.0).collect();
    let d_low: Vec<i64> = r.date.iter().map(|x| x.1).collect();
    let d_high: Vec<i64> = r.date.iter().map(|x| x.2).collect();
    let r_param: Vec<&str> = r.reference.iter().map(|x| x.param).collect();
    let r_tt: Vec<Option<&str>> = r.reference.iter().map(|x| x.target_type).collect();
    let r_ti: Vec<Option<&str>> = r.reference.iter().map(|x| x.target_id).collect();
    let r_url: Vec<Option<&str>> = r.reference.iter().map(|x| x.url).collect();
    let r_is: Vec<Option<&str>> = r.reference.iter().map(|x| x.identifier_system).collect();
    let r_iv: Vec<Option<&str>> = r.reference.iter().map(|x| x.identifier_value).collect();
    let n_param: Vec<&str> = r.number.iter().map(|x| x.param).collect();
    let n_value: Vec<f64> = r.number.iter().map(|x| x.value).collect();
    let n_low: Vec<f64> = r.number.iter().map(|x| x.low).collect();
    let n_high: Vec<f64> = r.number.iter().map(|x| x.high).collect();
    let n_system: Vec<Option<&str>> = r.number.iter().map(|x| x.system).collect();
    let n_code: Vec<Option<&str>> = r.number.iter().map(|x| x.code).collect();
    let n_unit: Vec<Option<&str>> = r.number.iter().map(|x| x.unit).collect();
    let u_param: Vec<&str> = r.uri.iter().map(|x| x.0).collect();
    let u_value: Vec<&str> = r.uri.iter().map(|x| x.1).collect();
    let c = &r.composite;
    let c_param: Vec<&str> = c.iter().map(|x| x.param).collect();
    let c_1s: Vec<Option<&str>> = c.iter().map(|x| x.c1_system).collect();
    let c_1c: Vec<Option<&str>> = c.iter().map(|x| x.c1_code).collect();
    let c_2s: Vec<Option<&str>> = c.iter().map(|x| x.c2_system).collect();
    let c_2c: Vec<Option<&str>> = c.iter().map(|x| x.c2_code).collect();
    let c_2v: Vec<Option<f64>> = c.iter().map(|x| x.c2_value).collect();
    let c_2l: Vec<Option<i64>> = c.iter().map(|x| x.c2_low_us).collect();
    let c_2h: Vec<Option<i64>> = c.iter().map(|x| x.c2_high_us).collect();
    let c_2str: Vec<Option<&str>> = c.iter().map(|x| x.c2_string).collect();
    let params: [&(dyn ToSql + Sync); 38] = [
        &rid,
        &w.resource_type,
        &t_param,
        &t_system,
        &t_code,
        &t_text,
        &t_ts,
        &t_tc,
        &s_param,
        &s_norm,
        &s_exact,
        &d_param,
        &d_low,
        &d_high,
        &r_param,
        &r_tt,
        &r_ti,
        &r_url,
        &r_is,
        &r_iv,
        &n_param,
        &n_value,
        &n_low,
        &n_high,
        &n_system,
        &n_code,
        &n_unit,
        &u_param,
        &u_value,
        &c_param,
        &c_1s,
        &c_1c,
        &c_2s,
        &c_2c,
        &c_2v,
        &c_2l,
        &c_2h,
        &c_2str,
    ];
    tx.execute(stmt, &params).await.map(|_| ())
}

fn to_sql(args: &[SArg]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter()
        .map(|a| match a {
            SArg::Text(s) => s as &(dyn ToSql + Sync),
            SArg::Int(i) => i as &(dyn ToSql + Sync),
            SArg::Real(f) => f as &(dyn ToSql + Sync),
            SArg::TextList(l) => l as &(dyn ToSql + Sync),
        })
        .collect()
}

fn sort_value(r: &tokio_postgres::Row, i: usize) -> SortValue {
    use tokio_postgres::types::Type;
    let ty = r.columns()[i].type_();
    if *ty == Type::INT8 {
        r.get::<_, Option<i64>>(i)
            .map_or(SortValue::Null, SortValue::Int)
    } else if *ty == Type::FLOAT8 {
        r.get::<_, Option<f64>>(i)
            .map_or(SortValue::Null, SortValue::Real)
    } else {
        r.get::<_, Option<String>>(i)
            .map_or(SortValue::Null, SortValue::Text)
    }
}

impl PgStore {
    /// Runs a search-shaped statement, cancelled on the server if the caller goes away.
    async fn query(&self, q: &Sql<'_>) -> Result<Vec<tokio_postgres::Row>> {
        let mut conn = self.pool.get().await?;
        // From the prepare on: preparing takes the tables' locks too, so it can wait.
        let guard = super::pool::CancelOnDrop::new(&conn);
        let stmt = conn.prepare(&q.text).await;
        let rows = match stmt {
            Ok(stmt) => conn
                .client
                .query(&stmt, &to_sql(&q.args))
                .await
                .map_err(pg_error),
            Err(e) => Err(e),
        };
        guard.finished();
        rows
    }

    pub(crate) async fn search_page(
        &self,
        q: &Sql<'_>,
        resource_type: &str,
        sort_keys: usize,
    ) -> Result<Vec<Match>> {
        let rows = self.query(q).await?;
        Ok(rows
            .iter()
            .map(|r| Match {
                resource_type: resource_type.to_owned(),
                id: r.get(0),
                version_id: r.get(1),
                last_updated_us: r.get(2),
                body: Bytes::copy_from_slice(r.get::<_, &[u8]>(3)),
                sort_values: (0..sort_keys).map(|i| sort_value(r, 4 + i)).collect(),
            })
            .collect())
    }

    /// Rows of [`search::history_sql`].
    pub(crate) async fn history_rows(&self, q: &Sql<'_>) -> Result<Vec<crate::HistoryEntry>> {
        let rows = self.query(q).await?;
        Ok(rows
            .iter()
            .map(|r| crate::HistoryEntry {
                seq: r.get(0),
                version: crate::Stored {
                    resource_type: r.get(1),
                    id: r.get(2),
                    version_id: r.get(3),
                    last_updated_us: r.get(4),
                    deleted: r.get(5),
                    body: Bytes::copy_from_slice(r.get::<_, &[u8]>(6)),
                },
            })
            .collect())
    }

    /// The first column of every row, as text.
    pub(crate) async fn text_rows(&self, q: &Sql<'_>) -> Result<Vec<String>> {
        Ok(self.query(q).await?.iter().map(|r| r.get(0)).collect())
    }

    pub(crate) async fn search_rows(&self, q: &Sql<'_>) -> Result<Vec<Match>> {
        let rows = self.query(q).await?;
        Ok(rows
            .iter()
            .map(|r| Match {
                resource_type: r.get(0),
                id: r.get(1),
                version_id: r.get(2),
                last_updated_us: r.get(3),
                body: Bytes::copy_from_slice(r.get::<_, &[u8]>(4)),
                sort_values: Vec::new(),
            })
            .collect())
    }

    /// See [`crate::testing::slow_read`].
    #[cfg(feature = "testing")]
    pub(crate) async fn slow_read(&self, seconds: f64) -> Result<()> {
        let mut b = Sql::new(true);
        b.push("SELECT pg_sleep(").real(seconds).push(")::text");
        self.query(&b).await.map(|_| ())
    }

    pub(crate) async fn search_count(&self, q: &Sql<'_>) -> Result<u64> {
        let rows = self.query(q).await?;
        Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0).max(0) as u64))
    }
}
