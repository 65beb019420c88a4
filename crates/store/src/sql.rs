//! SQL shared by both backends: migrations, and the text of the queries whose shape depends
//! on their arguments (token criteria). Placeholders are numbered (`?1` for
//! SQLite, `$1` for PostgreSQL), and the arguments are returned alongside the text, in order.

use crate::{StoreError, SystemMatch, TokenCriterion, Write};

/// One numbered schema migration (`migrations/<backend>/NNNN_name.sql`).
pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// A query argument: every argument of these queries is text or a 64-bit integer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    Text(&'a str),
    Int(i64),
}

/// Which placeholder syntax to write.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    fn placeholder(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    }
}

struct Builder<'a> {
    dialect: Dialect,
    sql: String,
    args: Vec<Arg<'a>>,
}

impl<'a> Builder<'a> {
    fn new(dialect: Dialect) -> Self {
        Builder {
            dialect,
            sql: String::with_capacity(256),
            args: Vec::new(),
        }
    }
    fn push(&mut self, s: &str) {
        self.sql.push_str(s);
    }
    /// Appends a placeholder bound to `arg`.
    fn arg(&mut self, arg: Arg<'a>) {
        self.args.push(arg);
        let p = self.dialect.placeholder(self.args.len());
        self.sql.push_str(&p);
    }
}

/// Ids (ascending, distinct) of current non-deleted resources of `resource_type` matching
/// every criterion. With no criteria every current non-deleted resource of the type
/// matches (the vacuous "all of none").
///
/// Token rows exist only for current, non-deleted versions, so the index alone answers.
pub(crate) fn find_by_tokens<'a>(
    dialect: Dialect,
    resource_type: &'a str,
    criteria: &'a [TokenCriterion],
) -> (String, Vec<Arg<'a>>) {
    let mut b = Builder::new(dialect);
    let Some((first, rest)) = criteria.split_first() else {
        b.push("SELECT c.id FROM resource_current c WHERE c.resource_type = ");
        b.arg(Arg::Text(resource_type));
        b.push(" AND NOT c.deleted ORDER BY c.id");
        return (b.sql, b.args);
    };
    // Index rows carry the resource's integer key (`rid`); its id is in resource_current.
    b.push(
        "SELECT DISTINCT c.id FROM index_token t0 JOIN resource_current c ON c.rid = t0.rid \
         WHERE t0.resource_type = ",
    );
    b.arg(Arg::Text(resource_type));
    criterion(&mut b, "t0", first);
    for (i, c) in rest.iter().enumerate() {
        let alias = format!("t{}", i + 1);
        b.push(&format!(
            " AND EXISTS (SELECT 1 FROM index_token {alias} WHERE {alias}.rid = t0.rid"
        ));
        criterion(&mut b, &alias, c);
        b.push(")");
    }
    b.push(" ORDER BY c.id");
    (b.sql, b.args)
}

fn criterion<'a>(b: &mut Builder<'a>, alias: &str, c: &'a TokenCriterion) {
    b.push(&format!(" AND {alias}.param = "));
    b.arg(Arg::Text(&c.param));
    b.push(&format!(" AND {alias}.code = "));
    b.arg(Arg::Text(&c.code));
    match &c.system {
        SystemMatch::Any => {}
        SystemMatch::Absent => b.push(&format!(" AND {alias}.system IS NULL")),
        SystemMatch::Is(s) => {
            b.push(&format!(" AND {alias}.system = "));
            b.arg(Arg::Text(s));
        }
    }
}

/// Checks what a write says about itself before any database is touched.
pub(crate) fn check_write(w: &Write) -> Result<(), StoreError> {
    let expected = match w.replaces {
        None => 1,
        Some(n) => n
            .checked_add(1)
            .ok_or_else(|| StoreError::Backend("version overflow".into()))?,
    };
    if w.version_id != expected {
        return Err(StoreError::Backend(format!(
            "inconsistent write: version_id {} does not follow replaces {:?}",
            w.version_id, w.replaces
        )));
    }
    if w.resource_type.is_empty() || w.id.is_empty() {
        return Err(StoreError::Backend(
            "inconsistent write: empty resource type or id".into(),
        ));
    }
    Ok(())
}

/// A stable 64-bit FNV-1a hash of the parts (separated), used for PostgreSQL advisory lock
/// keys. Stable across processes and versions: two servers must agree on the keys.
pub(crate) fn stable_hash(parts: &[&str]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0xff;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        for &byte in p.as_bytes() {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_sql_handles_system_variants() {
        let c = vec![
            TokenCriterion {
                param: "identifier".into(),
                system: SystemMatch::Any,
                code: "1".into(),
            },
            TokenCriterion {
                param: "identifier".into(),
                system: SystemMatch::Absent,
                code: "2".into(),
            },
            TokenCriterion {
                param: "identifier".into(),
                system: SystemMatch::Is("s".into()),
                code: "3".into(),
            },
        ];
        let (sql, args) = find_by_tokens(Dialect::Sqlite, "Patient", &c);
        assert_eq!(args.len(), 1 + 2 + 2 + 3);
        assert!(sql.contains("t1.system IS NULL"));
        assert!(sql.contains("t2.system = ?8"));
    }

    #[test]
    fn stable_hash_is_stable() {
        assert_eq!(stable_hash(&["a", "b"]), stable_hash(&["a", "b"]));
        assert_ne!(stable_hash(&["ab", ""]), stable_hash(&["a", "b"]));
    }
}
