//! Search: a structured query over the index tables (see `migrations/*/0002_search.sql`)
//! and the SQL it becomes, shared by both backends.
//!
//! A [`SearchQuery`] is an AND of OR-groups ([`Filter`]) of [`Condition`]s. Each condition
//! becomes a subquery yielding the `rid`s (see `migrations/*/0008_search_rid.sql`: each
//! resource's integer key, which index rows carry instead of its type and id) of one type
//! that satisfy it, entirely from one index table (index rows exist only for current,
//! non-deleted versions), and the search is `resource_current` restricted by
//! `rid IN (…)` / `rid NOT IN (…)` — one SQL statement, driven by the index. Paging is keyset: results are ordered by the sort keys and then by
//! id (stable: ids never change), and the next page starts strictly after the last row's
//! (sort values, id), so pages stay right while others write.

use std::fmt::Write as _;

use fhir::search::{IndexEntry, IndexValue, ParamType};

/// Date / number comparison prefixes (R4 search §3.1.1.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Sa,
    Eb,
    Ap,
}

/// How a token's system is matched.
pub use crate::SystemMatch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringMode {
    StartsWith,
    Exact,
    Contains,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriMode {
    Exact,
    /// The stored uri is a prefix of the searched one (`:above`).
    Above,
    /// The searched uri is a prefix of the stored one (`:below`).
    Below,
}

/// Which index table a parameter lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Token,
    String,
    Date,
    Reference,
    Number,
    Uri,
    Composite,
}

impl Table {
    pub fn for_kind(kind: ParamType) -> Option<Table> {
        Some(match kind {
            ParamType::Token => Table::Token,
            ParamType::String => Table::String,
            ParamType::Date => Table::Date,
            ParamType::Reference => Table::Reference,
            ParamType::Number | ParamType::Quantity => Table::Number,
            ParamType::Uri => Table::Uri,
            ParamType::Composite => Table::Composite,
            ParamType::Special => return None,
        })
    }
    fn name(self) -> &'static str {
        match self {
            Table::Token => "index_token",
            Table::String => "index_string",
            Table::Date => "index_date",
            Table::Reference => "index_reference",
            Table::Number => "index_number",
            Table::Uri => "index_uri",
            Table::Composite => "index_composite",
        }
    }
}

/// The second component of a composite criterion.
#[derive(Debug, Clone, PartialEq)]
pub enum Second {
    Token {
        system: SystemMatch,
        code: String,
    },
    Number {
        prefix: Prefix,
        value: f64,
        low: f64,
        high: f64,
    },
    Date {
        prefix: Prefix,
        low_us: i64,
        high_us: i64,
    },
    String {
        value: String,
    },
}

/// One criterion on resources of the type being searched.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `_id`.
    Id { id: String },
    /// `_lastUpdated` (an instant compared with the search range).
    LastUpdated {
        prefix: Prefix,
        low_us: i64,
        high_us: i64,
    },
    /// `param:missing=true|false`.
    Missing {
        param: String,
        table: Table,
        missing: bool,
    },
    /// `param=[system|]code` (`not`: `:not`). `code = None` for `system|`.
    Token {
        param: String,
        system: SystemMatch,
        code: Option<String>,
        not: bool,
    },
    /// `param:text=…` (starts-with on the normalised display text).
    TokenText { param: String, text: String },
    /// `identifier:of-type=typesystem|typecode|value`.
    TokenOfType {
        param: String,
        type_system: String,
        type_code: String,
        value: String,
    },
    /// `param[:exact|:contains]=value` (`value` normalised unless exact).
    String {
        param: String,
        value: String,
        mode: StringMode,
    },
    /// Date range `low..=high` of the searched value, compared per prefix.
    Date {
        param: String,
        prefix: Prefix,
        low_us: i64,
        high_us: i64,
    },
    /// Number or quantity: `value` as written, `low..high` its precision's range.
    Number {
        param: String,
        prefix: Prefix,
        value: f64,
        low: f64,
        high: f64,
        system: Option<String>,
        code: Option<String>,
    },
    /// A reference: any of the given parts that are `Some` must match.
    Reference {
        param: String,
        target_type: Option<String>,
        target_id: Option<String>,
        url: Option<String>,
    },
    /// `param:identifier=system|value`.
    ReferenceIdentifier {
        param: String,
        system: SystemMatch,
        value: String,
    },
    Uri {
        param: String,
        value: String,
        mode: UriMode,
    },
    /// Composite: first component token, second per [`Second`].
    Composite {
        param: String,
        system: SystemMatch,
        code: String,
        second: Second,
    },
    /// `param[:Type].chained=…`: the reference `param` points at a resource of one of
    /// `target_types` that satisfies `inner` (evaluated on that type).
    Chain {
        param: String,
        target_types: Vec<String>,
        inner: Box<Condition>,
    },
    /// `_has:source_type:param:…`: some `source_type` whose reference `param` points here
    /// satisfies `inner` (evaluated on `source_type`).
    Has {
        source_type: String,
        param: String,
        inner: Box<Condition>,
    },
}

/// An OR of conditions.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub any_of: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SortBy {
    Id,
    LastUpdated,
    Param { param: String, table: Table },
}

#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub by: SortBy,
    pub descending: bool,
}

/// A sort value of a row (the cursor carries them).
#[derive(Debug, Clone, PartialEq)]
pub enum SortValue {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

/// Where a page starts: strictly after this row.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    pub values: Vec<SortValue>,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    pub resource_type: String,
    pub filters: Vec<Filter>,
    pub sort: Vec<SortKey>,
    /// Page size.
    pub count: usize,
    pub after: Option<Cursor>,
    /// Page backwards: the page ends strictly before this row (the query runs in reverse
    /// order and the page is turned round). Used instead of `after`.
    pub before: Option<Cursor>,
    /// Count every match as well.
    pub total: bool,
}

/// One match: its position (for a cursor) and its stored bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub resource_type: String,
    pub id: String,
    pub version_id: i64,
    pub last_updated_us: i64,
    pub body: bytes::Bytes,
    pub sort_values: Vec<SortValue>,
}

impl Match {
    pub fn cursor(&self) -> Cursor {
        Cursor {
            values: self.sort_values.clone(),
            id: self.id.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchResult {
    pub matches: Vec<Match>,
    pub total: Option<u64>,
    /// Where the next page starts, if there is one.
    pub next: Option<Cursor>,
    /// Where the previous page ends (the first row of this page), if there is one.
    pub previous: Option<Cursor>,
}

/// `$everything` of one patient: the patient and every resource whose compartment
/// parameters (per type) point at it, ordered by (type, id).
#[derive(Debug, Clone, PartialEq)]
pub struct EverythingQuery {
    pub patient_id: String,
    /// For each type, the reference parameters that put it in the compartment.
    pub members: Vec<(String, Vec<String>)>,
    pub since_us: Option<i64>,
    pub count: usize,
    /// Strictly after this (type, id).
    pub after: Option<(String, String)>,
}

/// A caller's visibility, applied inside every statement a search builds (the main query,
/// each chain and `_has` subquery, criteria and sort keys on redacted elements, totals,
/// `$everything` and history), so hidden rows never take part: the answer is the one it
/// would be if the hidden data did not exist. The server builds each [`View`] from
/// `access::search_view`, the decision's only author; the store only compares bits.
#[derive(Clone, Copy)]
pub enum Visibility<'a> {
    /// The domain's own system reads (child facts, token checks), which are not a caller's
    /// search and are not audited per read.
    System,
    /// What this caller may see.
    Caller(&'a dyn Views),
}

/// The views of one caller, per resource type.
pub trait Views: Send + Sync {
    /// The view of `resource_type` (the same answer every time within one search).
    fn view(&self, resource_type: &str) -> std::sync::Arc<View>;
    /// Is `param` of `resource_type` a search parameter on elements hidden from this caller
    /// where a grant's `address` is false? Criteria and sort keys on it then match nothing.
    fn redacted(&self, resource_type: &str, param: &str) -> bool;
}

/// What one caller may see among resources of one type (`access::TypeView`, as bits).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct View {
    /// Rows that belong to no child: visible if one of these admits them.
    pub no_child: Vec<RowRule>,
    /// Rows in children's records: visible if, for each child holding it, a grant naming
    /// that child admits it.
    pub grants: Vec<RowGrant>,
}

/// A test on a row's `acc_sections`, `acc_labels` and `acc_flags`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowRule {
    /// Visible if it carries one of these sections (a bit mask)...
    pub sections: i64,
    /// ...or no section at all...
    pub untagged: bool,
    /// ...or (`Some(medicines bit)`) is an active MedicationStatement in that section.
    pub current_medicines: Option<i64>,
    /// And one section of each of these masks.
    pub tags: Vec<i64>,
    /// And none of these labels (the complement of the caller's clearance).
    pub not_cleared: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowGrant {
    /// The children it applies to.
    pub children: GrantChildren,
    pub rule: RowRule,
    /// The caller may see these children's addresses.
    pub address: bool,
}

/// Whose rows a [`RowGrant`] applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantChildren {
    /// Every child.
    All,
    /// These children (logical ids of their Patients).
    Listed(Vec<String>),
    /// The children whose care team names the caller at the time given (`access_member`,
    /// migration 16), except some: a care team's thousands, without a list.
    CareTeam(CareTeamOf),
}

/// A caller's care-team memberships, tested inside the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CareTeamOf {
    pub organisation: Option<String>,
    pub practitioner: Option<String>,
    /// The caller's PractitionerRoles (a role in a care team is its practitioner).
    pub roles: Vec<String>,
    /// Children left out (the server gives them grants from their own facts).
    pub except: Vec<String>,
    /// The time memberships are tested at (Unix seconds).
    pub now: i64,
}

/// The index entry of a token (conditional create's `identifier`, `_id`).
pub fn token_entry(param: &str, system: Option<&str>, code: &str) -> IndexEntry {
    IndexEntry {
        param: param.to_owned(),
        kind: ParamType::Token,
        value: IndexValue::Token {
            system: system.map(str::to_owned),
            code: Some(code.to_owned()),
            text: None,
            type_system: None,
            type_code: None,
        },
    }
}

// ---------------------------------------------------------------------------------------
// SQL

/// A query argument (owned: queries are built per request).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SArg {
    Text(String),
    Int(i64),
    Real(f64),
    /// A list of texts (PostgreSQL `text[]`; SQLite a JSON array read by `json_each`).
    TextList(Vec<String>),
}

pub(crate) struct Sql<'v> {
    pg: bool,
    pub text: String,
    pub args: Vec<SArg>,
    vis: Visibility<'v>,
    /// Placeholder numbers of child lists already bound (by the grant's address), so a
    /// list used by several subqueries is sent once.
    lists: std::collections::HashMap<usize, usize>,
    /// The membership tests already written (by the care team's address), so a test used
    /// by several subqueries binds its values once.
    member_tests: std::collections::HashMap<usize, String>,
    /// Every view used so far, kept to the end of the statement: the two maps above are
    /// keyed by addresses inside them, which must not be freed and reused meanwhile.
    held: Vec<std::sync::Arc<View>>,
}

impl<'v> Sql<'v> {
    pub(crate) fn new(pg: bool) -> Self {
        Sql::with(pg, Visibility::System)
    }
    pub(crate) fn with(pg: bool, vis: Visibility<'v>) -> Self {
        Sql {
            pg,
            text: String::with_capacity(512),
            args: Vec::new(),
            vis,
            lists: std::collections::HashMap::new(),
            member_tests: std::collections::HashMap::new(),
            held: Vec::new(),
        }
    }
    pub(crate) fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }
    fn arg(&mut self, a: SArg) -> &mut Self {
        self.args.push(a);
        let n = self.args.len();
        self.placeholder(n)
    }
    /// `$n` (PostgreSQL) or `?n` (SQLite): an argument already bound, used again.
    fn placeholder(&mut self, n: usize) -> &mut Self {
        let sigil = if self.pg { '$' } else { '?' };
        let _ = write!(self.text, "{sigil}{n}");
        self
    }
    fn text_arg(&mut self, s: &str) -> &mut Self {
        self.arg(SArg::Text(s.to_owned()))
    }
    fn int(&mut self, i: i64) -> &mut Self {
        self.arg(SArg::Int(i))
    }
    pub(crate) fn real(&mut self, f: f64) -> &mut Self {
        self.arg(SArg::Real(f))
    }

    /// ` AND <alias's row is visible>`, for a row of `ty` (`address`: the criterion or sort
    /// key reads an element hidden where a grant's `address` is false).
    fn visible(&mut self, alias: &str, ty: &str, address: bool) {
        let Visibility::Caller(views) = self.vis else {
            return;
        };
        let view = views.view(ty);
        self.push(" AND ");
        self.view_pred(alias, &view, address, fhir::compartment::in_one_record(ty));
        self.held.push(view);
    }

    /// ` AND <visible>` for rows whose type is one of `types`, each under its own view
    /// (types with equal views share one test).
    fn visible_types(&mut self, alias: &str, types: &[&str]) {
        let Visibility::Caller(views) = self.vis else {
            return;
        };
        let mut groups: Vec<(Vec<&str>, std::sync::Arc<View>)> = Vec::new();
        for t in types {
            let v = views.view(t);
            match groups.iter_mut().find(|(_, g)| **g == *v) {
                Some((ts, _)) => ts.push(t),
                None => groups.push((vec![t], v)),
            }
        }
        groups.retain(|(_, v)| !v.no_child.is_empty() || !v.grants.is_empty());
        self.push(" AND (");
        if groups.is_empty() {
            self.push("1 = 0");
        }
        for (i, (ts, view)) in groups.iter().enumerate() {
            if i > 0 {
                self.push(" OR ");
            }
            self.push(&format!("({alias}.resource_type IN ("));
            for (j, t) in ts.iter().enumerate() {
                if j > 0 {
                    self.push(", ");
                }
                self.text_arg(t);
            }
            self.push(") AND ");
            let one = ts.iter().all(|t| fhir::compartment::in_one_record(t));
            self.view_pred(alias, view, false, one);
            self.push(")");
        }
        self.push(")");
        self.held.extend(groups.into_iter().map(|(_, v)| v));
    }

    /// The view as a condition on `alias`'s access columns (see migration 14). `one_record`:
    /// the row's type is never in more than one child's record, so its several-children
    /// test, which could never run, is left out.
    fn view_pred(&mut self, alias: &str, view: &View, address: bool, one_record: bool) {
        let grants: Vec<&RowGrant> = view
            .grants
            .iter()
            .filter(|g| g.address || !address)
            .collect();
        // Only the branches that can hold are written: every branch is more for PostgreSQL
        // to plan and (its subqueries) to start up on each statement.
        self.push("(");
        if !view.no_child.is_empty() {
            let _ = write!(self.text, "({alias}.acc_patient IS NULL AND (");
            for (i, r) in view.no_child.iter().enumerate() {
                if i > 0 {
                    self.push(" OR ");
                }
                self.rule(alias, r);
            }
            self.push("))");
        }
        if !grants.is_empty() {
            if !view.no_child.is_empty() {
                self.push(" OR ");
            }
            let _ = write!(self.text, "({alias}.acc_patient IS NOT NULL AND (");
            self.grants(&format!("{alias}.acc_patient"), alias, &grants);
            if one_record {
                self.push("))");
            } else {
                // A row in several children's records: every one of them must admit it.
                let _ = write!(
                    self.text,
                    ") AND (({alias}.acc_flags & {}) = 0 OR NOT EXISTS (SELECT 1 FROM access_child \
                     e WHERE e.seq = {alias}.seq AND NOT (",
                    crate::acc_flags::MORE_CHILDREN
                );
                self.grants("e.patient", alias, &grants);
                self.push("))))");
            }
        }
        if view.no_child.is_empty() && grants.is_empty() {
            self.push("1 = 0");
        }
        self.push(")");
    }

    /// Some grant names the child `patient` and admits the row `alias`.
    fn grants(&mut self, patient: &str, alias: &str, grants: &[&RowGrant]) {
        for (i, g) in grants.iter().enumerate() {
            if i > 0 {
                self.push(" OR ");
            }
            self.push("(");
            match &g.children {
                GrantChildren::All => {}
                GrantChildren::Listed(children) => {
                    self.in_list(patient, children);
                    self.push(" AND ");
                }
                GrantChildren::CareTeam(c) => {
                    // Probed per row through `access_member_patient`: a scalar subquery with
                    // a LIMIT, not EXISTS, which PostgreSQL would turn into a hashed subplan
                    // reading every membership of the caller (thousands) per statement.
                    let _ = write!(
                        self.text,
                        "(SELECT 1 FROM access_member am WHERE am.patient = {patient} AND "
                    );
                    let test = self.member_test(c);
                    self.push(&test).push(" LIMIT 1) = 1 AND ");
                    if !c.except.is_empty() {
                        self.push("NOT ");
                        self.in_list(patient, &c.except);
                        self.push(" AND ");
                    }
                }
            }
            self.rule(alias, &g.rule);
            self.push(")");
        }
    }

    /// `<expr> IN <the list>`, the list bound once per statement however often it is used.
    fn in_list(&mut self, expr: &str, list: &Vec<String>) {
        let key = std::ptr::from_ref::<Vec<String>>(list) as usize;
        let n = match self.lists.get(&key) {
            Some(n) => *n,
            None => {
                self.args.push(SArg::TextList(list.clone()));
                let n = self.args.len();
                self.lists.insert(key, n);
                n
            }
        };
        // A long list (a care team's exceptions, a role's children) is a subquery, not
        // `= ANY($n)`: PostgreSQL then hashes it once, even in a generic (cached) plan,
        // instead of comparing each row with every child. A short one (a family's children)
        // is `= ANY`: a few comparisons cost less than starting a hashed subplan.
        if self.pg && list.len() <= SHORT_LIST {
            let _ = write!(self.text, "({expr} = ANY(${n}::text[]))");
        } else if self.pg {
            let _ = write!(self.text, "({expr} IN (SELECT unnest(${n}::text[])))");
        } else {
            let _ = write!(self.text, "({expr} IN (SELECT value FROM json_each(?{n})))");
        }
    }

    /// `(<am names the caller>) AND <am is current>` for the care team `c`, its values bound
    /// once per statement however often the test is used.
    fn member_test(&mut self, c: &CareTeamOf) -> String {
        let key = std::ptr::from_ref::<CareTeamOf>(c) as usize;
        if let Some(t) = self.member_tests.get(&key) {
            return t.clone();
        }
        let start = self.text.len();
        self.push("(");
        self.members("am", c);
        self.push(") AND (am.starts IS NULL OR am.starts <= ")
            .int(c.now)
            .push(") AND (am.ends IS NULL OR am.ends > ");
        // The same instant: one placeholder.
        let n = self.args.len();
        self.placeholder(n).push(")");
        let test = self.text.split_off(start);
        self.member_tests.insert(key, test.clone());
        test
    }

    /// `access_member` row `a` names the caller of `c` (its organisation, its practitioner
    /// or one of the practitioner's roles).
    fn members(&mut self, a: &str, c: &CareTeamOf) {
        let mut first = true;
        let mut or = |b: &mut Self| {
            if !first {
                b.push(" OR ");
            }
            first = false;
        };
        if let Some(o) = &c.organisation {
            or(self);
            self.push(&format!(
                "({a}.member_type = 'Organization' AND {a}.member_id = "
            ))
            .text_arg(o)
            .push(")");
        }
        if let Some(p) = &c.practitioner {
            or(self);
            self.push(&format!(
                "({a}.member_type = 'Practitioner' AND {a}.member_id = "
            ))
            .text_arg(p)
            .push(")");
        }
        if !c.roles.is_empty() {
            or(self);
            self.push(&format!("({a}.member_type = 'PractitionerRole' AND "));
            self.in_list(&format!("{a}.member_id"), &c.roles);
            self.push(")");
        }
        if first {
            self.push("1 = 0");
        }
    }

    fn rule(&mut self, a: &str, r: &RowRule) {
        // Written straight into the statement: this runs for every grant of every search.
        let t = &mut self.text;
        t.push_str("((");
        let mut alts = 0;
        let mut or = |t: &mut String| {
            if alts > 0 {
                t.push_str(" OR ");
            }
            alts += 1;
        };
        if r.sections != 0 {
            or(t);
            let _ = write!(t, "({a}.acc_sections & {}) <> 0", r.sections);
        }
        if r.untagged {
            or(t);
            let _ = write!(t, "{a}.acc_sections = 0");
        }
        if let Some(med) = r.current_medicines {
            or(t);
            let _ = write!(
                t,
                "(({a}.acc_flags & {}) <> 0 AND ({a}.acc_sections & {med}) <> 0)",
                crate::acc_flags::ACTIVE_MEDICATION
            );
        }
        if alts == 0 {
            t.push_str("1 = 0");
        }
        let _ = write!(t, ") AND ({a}.acc_labels & {}) = 0", r.not_cleared);
        for tag in &r.tags {
            let _ = write!(t, " AND ({a}.acc_sections & {tag}) <> 0");
        }
        t.push(')');
    }

    /// ` AND <the row x.rid of ty may show this parameter>` for criteria on elements
    /// redacted for this caller.
    fn redacted_guard(&mut self, x: &str, ty: &str, param: &str) {
        let Visibility::Caller(views) = self.vis else {
            return;
        };
        if views.redacted(ty, param) {
            self.push(&format!(
                " AND EXISTS (SELECT 1 FROM resource_current a WHERE a.rid = {x}.rid"
            ));
            self.visible("a", ty, true);
            self.push(")");
        }
    }
}

/// SQLite's planner has no statistics: offered `resource_type = ?` (a prefix of an index)
/// next to `rid IN (…)`, it may walk every resource of the type instead of looking up the
/// few rids. A unary `+` keeps the comparison but takes it out of index selection.
fn no_index(pg: bool) -> &'static str {
    if pg { "" } else { "+" }
}

/// Does some filter hold only for rids its positive subqueries list (so those drive)?
fn driven_by_index(filters: &[Filter]) -> bool {
    filters
        .iter()
        .any(|f| !f.any_of.is_empty() && f.any_of.iter().all(|c| !negated(c)))
}

fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The smallest string greater than every string starting with `s` (for index range
/// scans of a prefix), or `None` if there is none.
fn prefix_upper(s: &str) -> Option<String> {
    let mut chars: Vec<char> = s.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = char::from_u32(last as u32 + 1) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn system_match(b: &mut Sql, col: &str, s: &SystemMatch) {
    match s {
        SystemMatch::Any => {}
        SystemMatch::Absent => {
            b.push(&format!(" AND {col} IS NULL"));
        }
        SystemMatch::Is(v) => {
            b.push(&format!(" AND {col} = ")).text_arg(v);
        }
    }
}

/// `low..=high` (a stored range) compared with the searched range `ql..=qh` per prefix.
fn range_cmp(b: &mut Sql, low: &str, high: &str, prefix: Prefix, ql: i64, qh: i64) {
    match prefix {
        Prefix::Eq => {
            b.push(&format!(" AND {low} >= ")).int(ql);
            b.push(&format!(" AND {high} <= ")).int(qh);
        }
        Prefix::Ne => {
            b.push(&format!(" AND ({low} < ")).int(ql);
            b.push(&format!(" OR {high} > ")).int(qh).push(")");
        }
        Prefix::Gt => {
            b.push(&format!(" AND {high} > ")).int(qh);
        }
        Prefix::Lt => {
            b.push(&format!(" AND {low} < ")).int(ql);
        }
        Prefix::Ge => {
            b.push(&format!(" AND ({high} > ")).int(qh);
            b.push(&format!(" OR ({low} >= ")).int(ql);
            b.push(&format!(" AND {high} <= ")).int(qh).push("))");
        }
        Prefix::Le => {
            b.push(&format!(" AND ({low} < ")).int(ql);
            b.push(&format!(" OR ({low} >= ")).int(ql);
            b.push(&format!(" AND {high} <= ")).int(qh).push("))");
        }
        Prefix::Sa => {
            b.push(&format!(" AND {low} > ")).int(qh);
        }
        Prefix::Eb => {
            b.push(&format!(" AND {high} < ")).int(ql);
        }
        Prefix::Ap => {
            // Overlap with the searched range widened by 10% of its distance from now.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
                .unwrap_or(0);
            let gap = (now.saturating_sub(ql)).unsigned_abs() / 10;
            let gap = i64::try_from(gap).unwrap_or(i64::MAX).max(86_400_000_000);
            b.push(&format!(" AND {low} <= "))
                .int(qh.saturating_add(gap));
            b.push(&format!(" AND {high} >= "))
                .int(ql.saturating_sub(gap));
        }
    }
}

/// A stored number `col` compared with the searched value (`v`, precision range `l..h`).
fn number_cmp(b: &mut Sql, col: &str, prefix: Prefix, v: f64, l: f64, h: f64) {
    match prefix {
        Prefix::Eq => {
            b.push(&format!(" AND {col} >= ")).real(l);
            b.push(&format!(" AND {col} < ")).real(h);
        }
        Prefix::Ne => {
            b.push(&format!(" AND ({col} < ")).real(l);
            b.push(&format!(" OR {col} >= ")).real(h).push(")");
        }
        Prefix::Gt | Prefix::Sa => {
            b.push(&format!(" AND {col} > ")).real(v);
        }
        Prefix::Lt | Prefix::Eb => {
            b.push(&format!(" AND {col} < ")).real(v);
        }
        Prefix::Ge => {
            b.push(&format!(" AND {col} >= ")).real(v);
        }
        Prefix::Le => {
            b.push(&format!(" AND {col} <= ")).real(v);
        }
        Prefix::Ap => {
            let d = (v.abs() * 0.1).max(h - l);
            b.push(&format!(" AND {col} >= ")).real(v - d);
            b.push(&format!(" AND {col} <= ")).real(v + d);
        }
    }
}

/// Is the condition's subquery the set of ids NOT to return?
fn negated(c: &Condition) -> bool {
    matches!(
        c,
        Condition::Missing { missing: true, .. } | Condition::Token { not: true, .. }
    )
}

/// `SELECT rid FROM <table> WHERE resource_type = <ty> AND …`: the rids of `ty` the
/// condition holds for — or, for a [`negated`] condition, the rids it does NOT hold for.
/// A criterion on an element redacted for the caller holds only where they may see it.
fn subquery(b: &mut Sql, ty: &str, c: &Condition) {
    subquery_rows(b, ty, c);
    if let Some(param) = index_param(c) {
        b.redacted_guard("x", ty, param);
    }
}

/// The parameter of a criterion read from an index table under the alias `x`.
fn index_param(c: &Condition) -> Option<&str> {
    match c {
        Condition::Missing { param, .. }
        | Condition::Token { param, .. }
        | Condition::TokenText { param, .. }
        | Condition::TokenOfType { param, .. }
        | Condition::String { param, .. }
        | Condition::Date { param, .. }
        | Condition::Number { param, .. }
        | Condition::Reference { param, .. }
        | Condition::ReferenceIdentifier { param, .. }
        | Condition::Uri { param, .. }
        | Condition::Composite { param, .. } => Some(param),
        Condition::Id { .. }
        | Condition::LastUpdated { .. }
        | Condition::Chain { .. }
        | Condition::Has { .. } => None,
    }
}

fn subquery_rows(b: &mut Sql, ty: &str, c: &Condition) {
    match c {
        Condition::Id { id } => {
            b.push("SELECT x.rid FROM resource_current x WHERE x.resource_type = ")
                .text_arg(ty)
                .push(" AND x.id = ")
                .text_arg(id)
                .push(" AND NOT x.deleted");
        }
        Condition::LastUpdated {
            prefix,
            low_us,
            high_us,
        } => {
            b.push("SELECT x.rid FROM resource_current x WHERE x.resource_type = ")
                .text_arg(ty)
                .push(" AND NOT x.deleted");
            range_cmp(
                b,
                "x.last_updated_us",
                "x.last_updated_us",
                *prefix,
                *low_us,
                *high_us,
            );
        }
        Condition::Missing { param, table, .. } => {
            b.push(&format!(
                "SELECT x.rid FROM {} x WHERE x.resource_type = ",
                table.name()
            ))
            .text_arg(ty)
            .push(" AND x.param = ")
            .text_arg(param);
        }
        Condition::Token {
            param,
            system,
            code,
            ..
        } => {
            b.push("SELECT x.rid FROM index_token x WHERE x.resource_type = ")
                .text_arg(ty)
                .push(" AND x.param = ")
                .text_arg(param);
            if let Some(code) = code {
                b.push(" AND x.code = ").text_arg(code);
            }
            system_match(b, "x.system", system);
        }
        Condition::TokenText { param, text } => {
            b.push("SELECT x.rid FROM index_token x WHERE x.resource_type = ")
                .text_arg(ty)
                .push(" AND x.param = ")
                .text_arg(param)
                .push(" AND x.text LIKE ")
                .text_arg(&format!("%{}%", like_escape(text)))
                .push(" ESCAPE '\\'");
        }
        Condition::TokenOfType {
            param,
            type_system,
            type_code,
            value,
        } => {
            b.push("SELECT x.rid FROM index_token x WHERE x.resource_type = ")
                .text_arg(ty)
                .push(" AND x.param = ")
                .text_arg(param)
                .push(" AND x.code = ")
                .text_arg(value)
                .push(" AND x.type_system = ")
                .text_arg(type_system)
                .push(" AND x.type_code = ")
                .text_arg(type_code);
        }
        Condition::String { param, value, mode } => {
            b.push("SELECT x.rid FROM index_string x WHERE x.resource_type = ")
                .text_arg(ty)
                .push(" AND x.param = ")
                .text_arg(param);
            match mode {
                StringMode::Exact => {
                    b.push(" AND x.exact = ").text_arg(value);
                }
                StringMode::Contains => {
                    b.push(" AND x.normalized LIKE ")
                        .text_arg(&format!("%{}%", like_escape(value)))
                        .push(" ESCAPE '\\'");
                }
                StringMode::StartsWith => {
                    b.push(" AND x.normalized >= ").text_arg(value);
                    if let Some(upper) = prefix_upper(value) {
                        b.push(" AND x.normalized < ").text_arg(&upper);
                    }
                }
            }
        }
        Condition::Date {
            param,
            prefix,
            low_us,
            high_us,
        } => {
            b.push("SELECT x.rid FROM index_date x WHERE x.resource_type = ")
                .text_arg(ty)
                .push(" AND x.param = ")
                .text_arg(param);
            range_cmp(b, "x.low_us", "x.high_us", *prefix, *low_us, *high_us);
        }
        Condition::Number {
            param,
            prefix,
            value,
            low,
            high,
            system,
            code,
        } => {
            b.push("SELECT x.rid FROM index_number x WHERE x.resource_type = ")
                .text_arg(ty)
                .push(" AND x.param = ")
                .text_arg(param);
            number_cmp(b, "x.value", *prefix, *value, *low, *high);
            if let Some(s) = system {
                b.push(" AND x.system = ").text_arg(s);
            }
            if let Some(c) = code {
                if system.is_some() {
                    b.push(" AND x.code = ").text_arg(c);
                } else {
                    b.push(" AND (x.code = ").text_arg(c);
                    b.push(" OR x.unit = ").text_arg(c).push(")");
                }
            }
        }
        Condition::Reference {
            param,
            target_type,
            target_id,
            url,
        } => {
            b.push("SELECT x.rid FROM index_reference x WHERE x.resource_type = ")
                .text_arg(ty)
                .push(" AND x.param = ")
                .text_arg(param);
            if let Some(t) = target_type {
                b.push(" AND x.target_type = ").text_arg(t);
            }
            if let Some(i) = target_id {
                b.push(" AND x.target_id = ").text_arg(i);
            }
            if let Some(u) = url {
                b.push(" AND x.url = ").text_arg(u);
            }
        }
        Condition::ReferenceIdentifier {
            param,
            system,
            value,
        } => {
            b.push("SELECT x.rid FROM index_reference x WHERE x.resource_type = ")
                .text_arg(ty)
                .push(" AND x.param = ")
                .text_arg(param)
                .push(" AND x.identifier_value = ")
                .text_arg(value);
            system_match(b, "x.identifier_system", system);
        }
        Condition::Uri { param, value, mode } => {
            b.push("SELECT x.rid FROM index_uri x WHERE x.resource_type = ")
                .text_arg(ty)
                .push(" AND x.param = ")
                .text_arg(param);
            match mode {
                UriMode::Exact => {
                    b.push(" AND x.value = ").text_arg(value);
                }
                UriMode::Below => {
                    b.push(" AND x.value >= ").text_arg(value);
                    if let Some(upper) = prefix_upper(value) {
                        b.push(" AND x.value < ").text_arg(&upper);
                    }
                }
                UriMode::Above => {
                    b.push(" AND substr(").text_arg(value);
                    b.push(", 1, length(x.value)) = x.value");
                }
            }
        }
        Condition::Composite {
            param,
            system,
            code,
            second,
        } => {
            b.push("SELECT x.rid FROM index_composite x WHERE x.resource_type = ")
                .text_arg(ty)
                .push(" AND x.param = ")
                .text_arg(param)
                .push(" AND x.c1_code = ")
                .text_arg(code);
            system_match(b, "x.c1_system", system);
            match second {
                Second::Token { system, code } => {
                    b.push(" AND x.c2_code = ").text_arg(code);
                    system_match(b, "x.c2_system", system);
                }
                Second::Number {
                    prefix,
                    value,
                    low,
                    high,
                } => {
                    b.push(" AND x.c2_value IS NOT NULL");
                    number_cmp(b, "x.c2_value", *prefix, *value, *low, *high);
                }
                Second::Date {
                    prefix,
                    low_us,
                    high_us,
                } => {
                    b.push(" AND x.c2_low_us IS NOT NULL");
                    range_cmp(b, "x.c2_low_us", "x.c2_high_us", *prefix, *low_us, *high_us);
                }
                Second::String { value } => {
                    b.push(" AND x.c2_string >= ").text_arg(value);
                    if let Some(upper) = prefix_upper(value) {
                        b.push(" AND x.c2_string < ").text_arg(&upper);
                    }
                }
            }
        }
        Condition::Chain {
            param,
            target_types,
            inner,
        } => {
            // The targets' ids (from their rids), then the references to them.
            b.push("SELECT r.rid FROM index_reference r WHERE r.resource_type = ")
                .text_arg(ty)
                .push(" AND r.param = ")
                .text_arg(param)
                .push(" AND (");
            for (i, t) in target_types.iter().enumerate() {
                if i > 0 {
                    b.push(" OR ");
                }
                b.push("(r.target_type = ").text_arg(t);
                b.push(
                    " AND r.target_id IN (SELECT ct.id FROM resource_current ct WHERE ct.rid IN (",
                );
                // The targets' own rows carry their visibility: no second read of them.
                condition_ids(b, t, inner);
                b.push(")");
                b.visible("ct", t, false);
                b.push("))");
            }
            if target_types.is_empty() {
                b.push("1 = 0");
            }
            b.push(")");
        }
        Condition::Has {
            source_type,
            param,
            inner,
        } => {
            // The ids the matching sources point at, as rids.
            // Driven by the sources' rids (their rows by primary key / owner index).
            let plus = no_index(b.pg);
            b.push("SELECT h.rid FROM resource_current h WHERE h.resource_type = ")
                .text_arg(ty)
                .push(" AND NOT h.deleted AND h.id IN (")
                .push("SELECT r.target_id FROM index_reference r WHERE ")
                .push(plus)
                .push("r.target_type = ")
                .text_arg(ty)
                .push(" AND ")
                .push(plus)
                .push("r.resource_type = ")
                .text_arg(source_type)
                .push(" AND ")
                .push(plus)
                .push("r.param = ")
                .text_arg(param)
                .push(" AND r.rid IN (");
            positive_ids(b, source_type, inner);
            b.push("))");
        }
    }
}

/// The rids of current resources of `ty` the condition holds for (negations resolved
/// against all current resources of the type) that the caller may see: a `_has` source takes
/// part only if it is visible (a chain's targets are tested on their own row instead).
fn positive_ids(b: &mut Sql, ty: &str, c: &Condition) {
    let caller = matches!(b.vis, Visibility::Caller(_));
    if caller {
        b.push("SELECT s.rid FROM resource_current s WHERE s.rid IN (");
    }
    condition_ids(b, ty, c);
    if caller {
        b.push(")");
        b.visible("s", ty, false);
    }
}

/// The rids of current resources of `ty` the condition holds for (negations resolved
/// against all current resources of the type), visible or not.
fn condition_ids(b: &mut Sql, ty: &str, c: &Condition) {
    if negated(c) {
        b.push("SELECT y.rid FROM resource_current y WHERE y.resource_type = ")
            .text_arg(ty)
            .push(" AND NOT y.deleted AND y.rid NOT IN (");
        subquery(b, ty, c);
        b.push(")");
    } else {
        subquery(b, ty, c);
    }
}

/// Plain criteria (one alternative, not negated) each get a `c.rid IN (…)` of their own up
/// to this many; the rest are folded into one `c.rid IN (… INTERSECT …)`. PostgreSQL turns
/// each `IN` into a semi-join on `c.rid`, and its planning work grows faster than the square
/// of their number (every pair is an equality to weigh): 100 took 0.6 s to plan and 300 did
/// not finish. An INTERSECT is planned in time linear in its parts. The first few stay
/// separate so that an ordinary search is still driven by its most selective index.
const SEPARATE_CRITERIA: usize = 8;

/// Lists of up to this many children are tested with `= ANY` on PostgreSQL (see `in_list`).
const SHORT_LIST: usize = 8;

/// ` AND (c.rid IN (…) OR …)` for each filter (see [`SEPARATE_CRITERIA`]).
fn where_filters(b: &mut Sql, ty: &str, filters: &[Filter]) {
    let mut separate = 0;
    let mut folded = Vec::new();
    for f in filters {
        if f.any_of.is_empty() {
            continue;
        }
        if let [c] = f.any_of.as_slice()
            && !negated(c)
        {
            if separate == SEPARATE_CRITERIA {
                folded.push(c);
                continue;
            }
            separate += 1;
        }
        b.push(" AND (");
        for (i, c) in f.any_of.iter().enumerate() {
            if i > 0 {
                b.push(" OR ");
            }
            b.push(if negated(c) {
                "c.rid NOT IN ("
            } else {
                "c.rid IN ("
            });
            subquery(b, ty, c);
            b.push(")");
        }
        b.push(")");
    }
    if !folded.is_empty() {
        b.push(" AND c.rid IN (");
        for (i, c) in folded.into_iter().enumerate() {
            if i > 0 {
                b.push(" INTERSECT ");
            }
            subquery(b, ty, c);
        }
        b.push(")");
    }
}

/// Does the sort key compare text (so PostgreSQL must compare it bytewise, like SQLite)?
fn is_text(key: &SortKey) -> bool {
    match &key.by {
        SortBy::Id => true,
        SortBy::LastUpdated => false,
        SortBy::Param { table, .. } => !matches!(table, Table::Date | Table::Number),
    }
}

/// The expression giving a row's value for a sort key.
fn sort_expr(b: &mut Sql, ty: &str, key: &SortKey) {
    let agg = if key.descending { "MAX" } else { "MIN" };
    match &key.by {
        SortBy::Id => {
            b.push("c.id");
        }
        SortBy::LastUpdated => {
            b.push("c.last_updated_us");
        }
        SortBy::Param { param, table } => {
            let col = match (table, key.descending) {
                (Table::Token, _) => "s.code",
                (Table::String, _) => "s.normalized",
                (Table::Date, false) => "s.low_us",
                (Table::Date, true) => "s.high_us",
                (Table::Reference, _) => "COALESCE(s.target_type || '/' || s.target_id, s.url)",
                (Table::Number, _) => "s.value",
                (Table::Uri, _) => "s.value",
                (Table::Composite, _) => "s.c1_code",
            };
            b.push(&format!(
                "(SELECT {agg}({col}) FROM {} s WHERE s.rid = c.rid AND s.param = ",
                table.name()
            ))
            .text_arg(param);
            // A sort key on an element redacted for the caller is no value at all.
            b.redacted_guard("s", ty, param);
            b.push(")");
        }
    }
}

fn sort_value_arg(b: &mut Sql, v: &SortValue) {
    match v {
        SortValue::Null => {
            b.push("NULL");
        }
        SortValue::Int(i) => {
            b.int(*i);
        }
        SortValue::Real(f) => {
            b.real(*f);
        }
        SortValue::Text(s) => {
            b.text_arg(s);
        }
    }
}

/// The page query: `id, version_id, last_updated_us, body, s0, s1, …`.
pub(crate) fn search_sql<'v>(pg: bool, q: &SearchQuery, vis: Visibility<'v>) -> Sql<'v> {
    let mut b = Sql::with(pg, vis);
    let ty = q.resource_type.as_str();
    let collate = if pg { " COLLATE \"C\"" } else { "" };
    b.push("SELECT m.id, v.version_id, v.last_updated_us, v.body");
    for i in 0..q.sort.len() {
        b.push(&format!(", m.s{i}"));
    }
    b.push(" FROM (SELECT c.id, c.seq");
    for (i, k) in q.sort.iter().enumerate() {
        b.push(", ");
        sort_expr(&mut b, ty, k);
        b.push(&format!(" AS s{i}"));
    }
    let plus = if driven_by_index(&q.filters) {
        no_index(pg)
    } else {
        ""
    };
    b.push(" FROM resource_current c WHERE ")
        .push(plus)
        .push("c.resource_type = ")
        .text_arg(ty)
        .push(" AND NOT c.deleted");
    b.visible("c", ty, false);
    where_filters(&mut b, ty, &q.filters);
    b.push(") m JOIN resource_versions v ON v.seq = m.seq WHERE 1 = 1");
    let backward = q.before.is_some();
    if let Some(cur) = q.before.as_ref().or(q.after.as_ref()) {
        // (k0, k1, …, id) strictly after (or, backwards, before) the cursor, NULLs last in
        // either sort direction.
        b.push(" AND (");
        let n = q.sort.len().min(cur.values.len());
        for i in 0..=n {
            if i > 0 {
                b.push(" OR ");
            }
            b.push("(1 = 1");
            for j in 0..i {
                match &cur.values[j] {
                    SortValue::Null => {
                        b.push(&format!(" AND m.s{j} IS NULL"));
                    }
                    v => {
                        b.push(&format!(" AND m.s{j} = "));
                        sort_value_arg(&mut b, v);
                    }
                }
            }
            if i == n {
                let op = if backward { "<" } else { ">" };
                b.push(&format!(" AND m.id{collate} {op} "))
                    .text_arg(&cur.id);
            } else {
                match (&cur.values[i], backward) {
                    // Nothing sorts after a NULL; every value sorts before one.
                    (SortValue::Null, false) => {
                        b.push(" AND 1 = 0");
                    }
                    (SortValue::Null, true) => {
                        b.push(&format!(" AND m.s{i} IS NOT NULL"));
                    }
                    (v, false) => {
                        let op = if q.sort[i].descending { "<" } else { ">" };
                        let collate = if is_text(&q.sort[i]) { collate } else { "" };
                        b.push(&format!(" AND (m.s{i} IS NULL OR m.s{i}{collate} {op} "));
                        sort_value_arg(&mut b, v);
                        b.push(")");
                    }
                    (v, true) => {
                        let op = if q.sort[i].descending { ">" } else { "<" };
                        let collate = if is_text(&q.sort[i]) { collate } else { "" };
                        b.push(&format!(" AND m.s{i}{collate} {op} "));
                        sort_value_arg(&mut b, v);
                    }
                }
            }
            b.push(")");
        }
        b.push(")");
    }
    // Backwards: the exact reverse of the forward order (the caller turns the page round).
    let flip = |d: bool| if d != backward { "DESC" } else { "ASC" };
    b.push(" ORDER BY ");
    for (i, k) in q.sort.iter().enumerate() {
        let dir = flip(k.descending);
        let nulls = flip(false);
        let collate = if is_text(k) { collate } else { "" };
        b.push(&format!(
            "(CASE WHEN m.s{i} IS NULL THEN 1 ELSE 0 END) {nulls}, m.s{i}{collate} {dir}, "
        ));
    }
    // The limit is written into the statement, not bound: with a bound LIMIT PostgreSQL
    // costs a generic plan for an unknown row count and keeps planning the statement
    // afresh on every execution; a literal lets it settle on one plan per page size.
    let limit = i64::try_from(q.count).unwrap_or(i64::MAX).saturating_add(1);
    b.push(&format!("m.id{collate} {} LIMIT {limit}", flip(false)));
    b
}

/// `SELECT COUNT(*)` of every match.
pub(crate) fn count_sql<'v>(pg: bool, q: &SearchQuery, vis: Visibility<'v>) -> Sql<'v> {
    let mut b = Sql::with(pg, vis);
    let ty = q.resource_type.as_str();
    let plus = if driven_by_index(&q.filters) {
        no_index(pg)
    } else {
        ""
    };
    b.push("SELECT COUNT(*) FROM resource_current c WHERE ")
        .push(plus)
        .push("c.resource_type = ")
        .text_arg(ty)
        .push(" AND NOT c.deleted");
    b.visible("c", ty, false);
    where_filters(&mut b, ty, &q.filters);
    b
}

/// Current resources `(type, id)` referenced through `param` (any, if `None`) by the given
/// resources of `source_type`, restricted to `target_type` if given:
/// `resource_type, id, version_id, last_updated_us, body`.
pub(crate) fn include_sql(
    pg: bool,
    source_type: &str,
    ids: &[String],
    param: Option<&str>,
    target_type: Option<&str>,
) -> Sql<'static> {
    // Driven from the source resources' own reference rows (the owner index), then joined
    // to their targets: cost grows with the page, not with the database.
    let mut b = Sql::new(pg);
    b.push(
        "SELECT c.resource_type, c.id, v.version_id, v.last_updated_us, v.body \
         FROM (SELECT DISTINCT r.target_type, r.target_id \
               FROM resource_current s JOIN index_reference r ON r.rid = s.rid \
               WHERE s.resource_type = ",
    )
    .text_arg(source_type)
    .push(" AND s.id IN (");
    id_list(&mut b, ids);
    b.push(") AND r.target_type IS NOT NULL AND r.target_id IS NOT NULL");
    if let Some(p) = param {
        b.push(" AND r.param = ").text_arg(p);
    }
    if let Some(t) = target_type {
        b.push(" AND r.target_type = ").text_arg(t);
    }
    b.push(
        ") t JOIN resource_current c ON c.resource_type = t.target_type AND c.id = t.target_id \
         JOIN resource_versions v ON v.seq = c.seq WHERE NOT c.deleted",
    );
    b
}

/// Current resources of `source_type` whose reference `param` (any, if `None`) points at
/// one of `ids` of `target_type`.
pub(crate) fn revinclude_sql(
    pg: bool,
    source_type: &str,
    param: Option<&str>,
    target_type: &str,
    ids: &[String],
) -> Sql<'static> {
    let mut b = Sql::new(pg);
    // Driven from the reference index (the targets' rows), joined by rid.
    b.push(
        "SELECT c.resource_type, c.id, v.version_id, v.last_updated_us, v.body \
         FROM resource_current c JOIN resource_versions v ON v.seq = c.seq \
         WHERE NOT c.deleted AND c.rid IN (SELECT r.rid FROM index_reference r WHERE r.target_type = ",
    )
    .text_arg(target_type)
    .push(" AND r.resource_type = ")
    .text_arg(source_type);
    if let Some(p) = param {
        b.push(" AND r.param = ").text_arg(p);
    }
    b.push(" AND r.target_id IN (");
    id_list(&mut b, ids);
    b.push("))");
    b
}

fn id_list(b: &mut Sql, ids: &[String]) {
    if ids.is_empty() {
        b.push("NULL");
    }
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        b.text_arg(id);
    }
}

/// `$everything`: `resource_type, id, version_id, last_updated_us, body`, by (type, id).
pub(crate) fn everything_sql<'v>(pg: bool, q: &EverythingQuery, vis: Visibility<'v>) -> Sql<'v> {
    let mut b = Sql::with(pg, vis);
    let collate = if pg { " COLLATE \"C\"" } else { "" };
    // The members come from the reference index (patient → resources pointing at it), so
    // the cost follows the size of this child's record, not of the database.
    b.push(
        "SELECT c.resource_type, c.id, v.version_id, v.last_updated_us, v.body \
         FROM (SELECT p.rid FROM resource_current p WHERE p.resource_type = 'Patient' AND p.id = ",
    )
    .text_arg(&q.patient_id);
    let members: Vec<_> = q.members.iter().filter(|(_, p)| !p.is_empty()).collect();
    if !members.is_empty() {
        b.push(
            " UNION SELECT r.rid FROM index_reference r \
             WHERE r.target_type = 'Patient' AND r.target_id = ",
        )
        .text_arg(&q.patient_id);
        if pg {
            // One array of "type param" pairs, not an OR per type: PostgreSQL planned the
            // OR form afresh on every call (custom plans: 0.4 ms of planning for 0.08 ms of
            // execution, most of the passport page's database time); this form is cheap
            // to plan and keeps its cached plan.
            let pairs = members
                .iter()
                .flat_map(|(ty, params)| params.iter().map(move |p| format!("{ty} {p}")))
                .collect();
            b.args.push(SArg::TextList(pairs));
            let n = b.args.len();
            b.push(&format!(
                " AND r.resource_type || ' ' || r.param = ANY(${n}::text[])"
            ));
        } else {
            b.push(" AND (");
            for (i, (ty, params)) in members.iter().enumerate() {
                if i > 0 {
                    b.push(" OR ");
                }
                b.push("(r.resource_type = ")
                    .text_arg(ty)
                    .push(" AND r.param IN (");
                for (j, p) in params.iter().enumerate() {
                    if j > 0 {
                        b.push(", ");
                    }
                    b.text_arg(p);
                }
                b.push("))");
            }
            b.push(")");
        }
    }
    b.push(
        ") m JOIN resource_current c ON c.rid = m.rid \
         JOIN resource_versions v ON v.seq = c.seq WHERE NOT c.deleted",
    );
    let mut types: Vec<&str> = vec!["Patient"];
    types.extend(
        members
            .iter()
            .map(|(t, _)| t.as_str())
            .filter(|t| *t != "Patient"),
    );
    b.visible_types("c", &types);
    if let Some(since) = q.since_us {
        b.push(" AND c.last_updated_us >= ").int(since);
    }
    if let Some((t, id)) = &q.after {
        b.push(&format!(" AND (c.resource_type{collate} > "))
            .text_arg(t);
        b.push(" OR (c.resource_type = ").text_arg(t);
        b.push(&format!(" AND c.id{collate} > "))
            .text_arg(id)
            .push("))");
    }
    // A literal limit, as in `search_sql`.
    let limit = i64::try_from(q.count).unwrap_or(i64::MAX).saturating_add(1);
    b.push(&format!(
        " ORDER BY c.resource_type{collate}, c.id{collate} LIMIT {limit}"
    ));
    b
}

/// History, newest first: `seq, resource_type, id, version_id, last_updated_us, deleted,
/// body`, each version shown only if the caller may see it (a deletion carries the inputs
/// of what it deleted), so pages and `next` links count nothing hidden.
pub(crate) fn history_sql<'v>(pg: bool, q: &crate::HistoryQuery, vis: Visibility<'v>) -> Sql<'v> {
    let mut b = Sql::with(pg, vis);
    b.push(
        "SELECT v.seq, v.resource_type, v.id, v.version_id, v.last_updated_us, v.deleted, v.body \
         FROM resource_versions v WHERE 1 = 1",
    );
    if let Some(t) = &q.resource_type {
        b.push(" AND v.resource_type = ").text_arg(t);
    }
    if let Some(id) = &q.id {
        b.push(" AND v.id = ").text_arg(id);
    }
    if let Some(since) = q.since_us {
        b.push(" AND v.last_updated_us >= ").int(since);
    }
    if let Some(before) = q.before_seq {
        b.push(" AND v.seq < ").int(before);
    }
    if let Some(at) = q.at_us {
        // The version current at `at`: written no later than `at`, and no later version of
        // the same resource was written by then either.
        b.push(" AND v.last_updated_us <= ").int(at);
        b.push(
            " AND NOT EXISTS (SELECT 1 FROM resource_versions w \
             WHERE w.resource_type = v.resource_type AND w.id = v.id \
             AND w.version_id > v.version_id AND w.last_updated_us <= ",
        )
        .int(at)
        .push(")");
    }
    match &q.resource_type {
        Some(t) => b.visible("v", t, false),
        None => b.visible_types("v", fhir::types::SUPPORTED_TYPES),
    }
    // One resource's versions are written in version order, so newest-first by version
    // is newest-first by seq — and the unique (type, id, version) index gives it, where
    // ordering by seq led SQLite to walk every version of the type (issue 10's review
    // page read one allergy's history in tens of milliseconds).
    let order = if q.resource_type.is_some() && q.id.is_some() {
        " ORDER BY v.version_id DESC LIMIT "
    } else {
        " ORDER BY v.seq DESC LIMIT "
    };
    b.push(order)
        .int(i64::try_from(q.count).unwrap_or(i64::MAX));
    b
}

/// The children of the RelatedPersons a Person (a family sign-in) links to: distinct
/// Patient ids, a superset of those it may see (the view decides per child). Driven from the
/// Person's links: SQLite, without statistics, would otherwise start from every reference
/// to a Patient, so the unary `+` keeps those comparisons out of index selection.
pub(crate) fn children_sql(pg: bool, person: &str) -> Sql<'static> {
    let mut b = Sql::new(pg);
    let plus = no_index(pg);
    b.push(&format!(
        "SELECT DISTINCT p.target_id FROM index_reference p \
         WHERE {plus}p.param = 'patient' AND {plus}p.target_type = 'Patient' AND p.rid IN ("
    ));
    b.push(
        "SELECT rp.rid FROM resource_current rp WHERE rp.resource_type = 'RelatedPerson' \
         AND rp.id IN (SELECT l.target_id FROM index_reference l \
         WHERE l.rid = (SELECT per.rid FROM resource_current per \
         WHERE per.resource_type = 'Person' AND per.id = ",
    )
    .text_arg(person)
    .push(&format!(
        ") AND {plus}l.param = 'link' AND {plus}l.target_type = 'RelatedPerson'))"
    ));
    b
}

/// Children whose care team names the caller of `c` (at any time) and who need their own
/// facts: those with a Consent (a sharing choice may be in force) and those with a
/// break-glass grant for the practitioner. Driven from the caller's membership rows.
pub(crate) fn exceptions_sql(pg: bool, c: &CareTeamOf) -> Sql<'static> {
    let mut b = Sql::new(pg);
    b.push("SELECT DISTINCT am.patient FROM access_member am WHERE (");
    b.members("am", c);
    b.push(
        ") AND EXISTS (SELECT 1 FROM index_reference cr WHERE cr.target_type = 'Patient' \
         AND cr.target_id = am.patient AND cr.param = 'patient' \
         AND cr.resource_type = 'Consent')",
    );
    if let Some(p) = &c.practitioner {
        b.push(" UNION SELECT g.patient_id FROM break_glass_grants g WHERE g.practitioner_id = ")
            .text_arg(p);
    }
    b
}

// ---------------------------------------------------------------------------------------
// Index rows

/// Index rows of one write, grouped by table, ready to insert.
#[derive(Debug, Default)]
pub(crate) struct Rows<'a> {
    pub token: Vec<TokenRow<'a>>,
    pub string: Vec<(&'a str, &'a str, &'a str)>,
    pub date: Vec<(&'a str, i64, i64)>,
    pub reference: Vec<RefRow<'a>>,
    pub number: Vec<NumRow<'a>>,
    pub uri: Vec<(&'a str, &'a str)>,
    pub composite: Vec<CompRow<'a>>,
}

#[derive(Debug)]
pub(crate) struct TokenRow<'a> {
    pub param: &'a str,
    pub system: Option<&'a str>,
    pub code: &'a str,
    pub text: Option<String>,
    pub type_system: Option<&'a str>,
    pub type_code: Option<&'a str>,
}

#[derive(Debug)]
pub(crate) struct RefRow<'a> {
    pub param: &'a str,
    pub target_type: Option<&'a str>,
    pub target_id: Option<&'a str>,
    pub url: Option<&'a str>,
    pub identifier_system: Option<&'a str>,
    pub identifier_value: Option<&'a str>,
}

#[derive(Debug)]
pub(crate) struct NumRow<'a> {
    pub param: &'a str,
    pub value: f64,
    pub low: f64,
    pub high: f64,
    pub system: Option<&'a str>,
    pub code: Option<&'a str>,
    pub unit: Option<&'a str>,
}

#[derive(Debug, Default)]
pub(crate) struct CompRow<'a> {
    pub param: &'a str,
    pub c1_system: Option<&'a str>,
    pub c1_code: Option<&'a str>,
    pub c2_system: Option<&'a str>,
    pub c2_code: Option<&'a str>,
    pub c2_value: Option<f64>,
    pub c2_low_us: Option<i64>,
    pub c2_high_us: Option<i64>,
    pub c2_string: Option<&'a str>,
}

pub(crate) fn rows(entries: &[IndexEntry]) -> Rows<'_> {
    let mut r = Rows::default();
    for e in entries {
        let p = e.param.as_str();
        match &e.value {
            IndexValue::String { normalized, exact } => r.string.push((p, normalized, exact)),
            IndexValue::Token {
                system,
                code,
                text,
                type_system,
                type_code,
            } => {
                if code.is_none() && text.is_none() {
                    continue;
                }
                r.token.push(TokenRow {
                    param: p,
                    system: system.as_deref(),
                    code: code.as_deref().unwrap_or(""),
                    text: text.as_deref().map(fhir::search::normalize_string),
                    type_system: type_system.as_deref(),
                    type_code: type_code.as_deref(),
                })
            }
            IndexValue::Date { low_us, high_us } => r.date.push((p, *low_us, *high_us)),
            IndexValue::Reference {
                target_type,
                target_id,
                url,
                identifier_system,
                identifier_value,
            } => r.reference.push(RefRow {
                param: p,
                target_type: target_type.as_deref(),
                target_id: target_id.as_deref(),
                url: url.as_deref(),
                identifier_system: identifier_system.as_deref(),
                identifier_value: identifier_value.as_deref(),
            }),
            IndexValue::Quantity {
                value,
                low,
                high,
                system,
                code,
                unit,
            } => r.number.push(NumRow {
                param: p,
                value: *value,
                low: *low,
                high: *high,
                system: system.as_deref(),
                code: code.as_deref(),
                unit: unit.as_deref(),
            }),
            IndexValue::Number { value, low, high } => r.number.push(NumRow {
                param: p,
                value: *value,
                low: *low,
                high: *high,
                system: None,
                code: None,
                unit: None,
            }),
            IndexValue::Uri { value } => r.uri.push((p, value)),
            IndexValue::Composite(parts) => {
                let mut row = CompRow {
                    param: p,
                    ..Default::default()
                };
                let Some(IndexValue::Token { system, code, .. }) = parts.first() else {
                    continue;
                };
                row.c1_system = system.as_deref();
                row.c1_code = code.as_deref();
                match parts.get(1) {
                    Some(IndexValue::Token { system, code, .. }) => {
                        row.c2_system = system.as_deref();
                        row.c2_code = code.as_deref();
                    }
                    Some(IndexValue::Quantity { value, .. })
                    | Some(IndexValue::Number { value, .. }) => row.c2_value = Some(*value),
                    Some(IndexValue::Date { low_us, high_us }) => {
                        row.c2_low_us = Some(*low_us);
                        row.c2_high_us = Some(*high_us);
                    }
                    Some(IndexValue::String { normalized, .. }) => row.c2_string = Some(normalized),
                    _ => {}
                }
                r.composite.push(row);
            }
        }
    }
    r
}

// ---------------------------------------------------------------------------------------
// The store's search interface

use crate::{Result, Store};

impl Store {
    fn is_pg(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    async fn rows(&self, q: &Sql<'_>) -> Result<Vec<Match>> {
        match self {
            Store::Sqlite(s) => s.search_rows(q),
            Store::Postgres(s) => s.search_rows(q).await,
        }
    }

    /// One page of current, non-deleted matches (one SQL statement), the next page's
    /// cursor, and the number of all matches if asked for.
    pub async fn search(&self, q: &SearchQuery, vis: Visibility<'_>) -> Result<SearchResult> {
        let sql = search_sql(self.is_pg(), q, vis);
        let mut matches = match self {
            Store::Sqlite(s) => s.search_page(&sql, &q.resource_type, q.sort.len())?,
            Store::Postgres(s) => s.search_page(&sql, &q.resource_type, q.sort.len()).await?,
        };
        let more = matches.len() > q.count;
        matches.truncate(q.count);
        let (next, previous) = if q.before.is_some() {
            // Fetched in reverse: `more` means more before this page.
            matches.reverse();
            (
                matches.last().map(Match::cursor),
                if more {
                    matches.first().map(Match::cursor)
                } else {
                    None
                },
            )
        } else {
            (
                if more {
                    matches.last().map(Match::cursor)
                } else {
                    None
                },
                if q.after.is_some() {
                    matches.first().map(Match::cursor)
                } else {
                    None
                },
            )
        };
        let total = if q.total {
            let c = count_sql(self.is_pg(), q, vis);
            Some(match self {
                Store::Sqlite(s) => s.search_count(&c)?,
                Store::Postgres(s) => s.search_count(&c).await?,
            })
        } else {
            None
        };
        Ok(SearchResult {
            matches,
            total,
            next,
            previous,
        })
    }

    /// `_include`: current resources referenced through `param` (or any reference) by the
    /// given resources of `source_type` (of `target_type` only, if given).
    pub async fn include(
        &self,
        source_type: &str,
        ids: &[String],
        param: Option<&str>,
        target_type: Option<&str>,
    ) -> Result<Vec<Match>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.rows(&include_sql(
            self.is_pg(),
            source_type,
            ids,
            param,
            target_type,
        ))
        .await
    }

    /// `_revinclude`: current resources of `source_type` whose reference `param` (or any)
    /// points at one of `ids` of `target_type`.
    pub async fn revinclude(
        &self,
        source_type: &str,
        param: Option<&str>,
        target_type: &str,
        ids: &[String],
    ) -> Result<Vec<Match>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.rows(&revinclude_sql(
            self.is_pg(),
            source_type,
            param,
            target_type,
            ids,
        ))
        .await
    }

    /// One page of `$everything` (up to `count + 1` rows: one more means another page).
    pub async fn everything(&self, q: &EverythingQuery, vis: Visibility<'_>) -> Result<Vec<Match>> {
        self.rows(&everything_sql(self.is_pg(), q, vis)).await
    }

    /// History, newest first, as `vis` may see it.
    pub async fn history(
        &self,
        q: &crate::HistoryQuery,
        vis: Visibility<'_>,
    ) -> Result<Vec<crate::HistoryEntry>> {
        let sql = history_sql(self.is_pg(), q, vis);
        match self {
            Store::Sqlite(s) => s.history_rows(&sql),
            Store::Postgres(s) => s.history_rows(&sql).await,
        }
    }

    /// The children of a care team who need their own facts ([`exceptions_sql`]). A
    /// superset is harmless: the server gives each its exact grants.
    pub async fn care_team_exceptions(&self, c: &CareTeamOf) -> Result<Vec<String>> {
        let sql = exceptions_sql(self.is_pg(), c);
        match self {
            Store::Sqlite(s) => s.text_rows(&sql),
            Store::Postgres(s) => s.text_rows(&sql).await,
        }
    }

    /// The children a family sign-in may relate to ([`children_sql`]).
    pub async fn family_children(&self, person: &str) -> Result<Vec<String>> {
        let sql = children_sql(self.is_pg(), person);
        match self {
            Store::Sqlite(s) => s.text_rows(&sql),
            Store::Postgres(s) => s.text_rows(&sql).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `EXPLAIN QUERY PLAN` of `q` on a fresh SQLite database with every migration: one
    /// line per step.
    fn sqlite_plan(q: &Sql<'_>) -> Vec<String> {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        // As the store's connections are set (crate::sqlite::configure).
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )
        .unwrap();
        for m in crate::sqlite::MIGRATIONS {
            conn.execute_batch(m.sql).unwrap();
        }
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", q.text))
            .unwrap();
        let args = crate::sqlite::search::params(&q.args);
        stmt.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// Every table is reached through an index (`SEARCH`); the only `SCAN`s are of
    /// subquery results (`m`, `t`: already narrowed by an index).
    fn assert_indexed(name: &str, q: &Sql<'_>) {
        let plan = sqlite_plan(q);
        for step in &plan {
            if let Some(rest) = step.strip_prefix("SCAN ") {
                let target = rest.split(' ').next().unwrap_or("");
                assert!(
                    matches!(target, "m" | "t" | "json_each"),
                    "{name}: {step}\n{}\n{}",
                    q.text,
                    plan.join("\n")
                );
            }
        }
        println!("{name}:\n  {}", plan.join("\n  "));
    }

    /// One resource's history is read through the (type, id, version) index, not by
    /// walking every version of its type in write order.
    #[test]
    fn one_resources_history_uses_its_own_index() {
        let q = crate::HistoryQuery {
            resource_type: Some("AllergyIntolerance".into()),
            id: Some("a1".into()),
            since_us: None,
            at_us: None,
            before_seq: None,
            count: 1000,
        };
        let plan = sqlite_plan(&history_sql(false, &q, Visibility::System)).join("\n");
        assert!(
            plan.contains("sqlite_autoindex_resource_versions"),
            "{plan}"
        );
        assert!(!plan.contains("resource_versions_type_seq"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }

    fn token(param: &str, system: &str, code: &str) -> Condition {
        Condition::Token {
            param: param.into(),
            system: SystemMatch::Is(system.into()),
            code: Some(code.into()),
            not: false,
        }
    }

    fn query(ty: &str, any_of: Vec<Condition>) -> SearchQuery {
        SearchQuery {
            resource_type: ty.into(),
            filters: vec![Filter { any_of }],
            sort: Vec::new(),
            count: 10,
            after: None,
            before: None,
            total: false,
        }
    }

    /// The plans (SQLite, no statistics, as a server runs) of the searches that must stay
    /// index-driven. At the time of writing (SQLite 3.50, migration 8):
    ///
    /// ```text
    /// Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009
    ///   SEARCH c USING INTEGER PRIMARY KEY (rowid=?)
    ///   LIST SUBQUERY 1
    ///   SEARCH x USING COVERING INDEX index_token_lookup (resource_type=? AND param=? AND code=? AND system=?)
    ///   SEARCH v USING INTEGER PRIMARY KEY (rowid=?)
    ///   USE TEMP B-TREE FOR ORDER BY
    /// Condition?subject=Patient/x
    ///   SEARCH c USING INTEGER PRIMARY KEY (rowid=?)
    ///   LIST SUBQUERY 1
    ///   SEARCH x USING INDEX index_reference_url (resource_type=? AND param=?)
    ///   …
    /// ```
    ///
    /// (run `cargo test -p passport-store search_plans -- --nocapture` for all of them).
    #[test]
    fn search_plans_use_indexes() {
        let school = SchoolViews;
        let hospital = HospitalViews;
        for vis in [
            Visibility::System,
            Visibility::Caller(&school),
            Visibility::Caller(&hospital),
        ] {
            plans_use_indexes(vis);
        }
        plans_of_the_rest();
    }

    /// A Patient row is only ever in its own child's record, so a Patient search leaves out
    /// the several-children test (a subquery PostgreSQL would start on every statement);
    /// searches of other types, and of several types at once, keep it.
    #[test]
    fn only_rows_that_can_be_in_several_records_are_tested_for_it() {
        let hospital = HospitalViews;
        let vis = Visibility::Caller(&hospital);
        let nhs = token("identifier", "https://fhir.nhs.uk/Id/nhs-number", "1");
        for pg in [false, true] {
            let patient = search_sql(pg, &query("Patient", vec![nhs.clone()]), vis);
            assert!(!patient.text.contains("access_child"), "{}", patient.text);
            let obs = search_sql(pg, &query("Observation", vec![nhs.clone()]), vis);
            assert!(obs.text.contains("access_child"), "{}", obs.text);
            let all = crate::HistoryQuery {
                resource_type: None,
                id: None,
                since_us: None,
                at_us: None,
                before_seq: None,
                count: 10,
            };
            assert!(history_sql(pg, &all, vis).text.contains("access_child"));
        }
    }

    /// A school's view: two children, some sections, reference data.
    struct SchoolViews;
    impl Views for SchoolViews {
        fn view(&self, _: &str) -> std::sync::Arc<View> {
            let rule = RowRule {
                sections: 0b1001,
                untagged: false,
                current_medicines: None,
                tags: Vec::new(),
                not_cleared: 31,
            };
            std::sync::Arc::new(View {
                no_child: vec![RowRule {
                    sections: 0,
                    untagged: true,
                    ..rule.clone()
                }],
                grants: vec![RowGrant {
                    children: GrantChildren::Listed(vec!["x".into(), "y".into()]),
                    rule,
                    address: false,
                }],
            })
        }
        fn redacted(&self, ty: &str, param: &str) -> bool {
            ty == "Patient" && param.starts_with("address")
        }
    }

    /// A hospital member of staff's view: the children of its care team (but one, with a
    /// sharing choice, under its own rule), and reference data.
    struct HospitalViews;
    impl Views for HospitalViews {
        fn view(&self, _: &str) -> std::sync::Arc<View> {
            let rule = RowRule {
                sections: 0b1111,
                untagged: true,
                current_medicines: None,
                tags: Vec::new(),
                not_cleared: 31,
            };
            std::sync::Arc::new(View {
                no_child: vec![rule.clone()],
                grants: vec![
                    RowGrant {
                        children: GrantChildren::CareTeam(CareTeamOf {
                            organisation: Some("o".into()),
                            practitioner: Some("p".into()),
                            roles: vec!["r".into()],
                            except: vec!["y".into()],
                            now: 1_800_000_000,
                        }),
                        rule: rule.clone(),
                        address: true,
                    },
                    RowGrant {
                        children: GrantChildren::Listed(vec!["y".into()]),
                        rule: RowRule {
                            sections: 0b1,
                            ..rule
                        },
                        address: true,
                    },
                ],
            })
        }
        fn redacted(&self, _: &str, _: &str) -> bool {
            false
        }
    }

    fn plans_use_indexes(vis: Visibility<'_>) {
        let nhs = token(
            "identifier",
            "https://fhir.nhs.uk/Id/nhs-number",
            "9000000009",
        );
        assert_indexed(
            "Patient?identifier=nhs|9000000009",
            &search_sql(false, &query("Patient", vec![nhs.clone()]), vis),
        );
        let mut counted = query("Patient", vec![nhs.clone()]);
        counted.total = true;
        assert_indexed(
            "Patient?identifier=…&_total",
            &count_sql(false, &counted, vis),
        );
        let subject = Condition::Reference {
            param: "subject".into(),
            target_type: Some("Patient".into()),
            target_id: Some("x".into()),
            url: None,
        };
        assert_indexed(
            "Condition?subject=Patient/x",
            &search_sql(false, &query("Condition", vec![subject.clone()]), vis),
        );
        let mut sorted = query("Condition", vec![subject]);
        sorted.sort = vec![SortKey {
            by: SortBy::Param {
                param: "onset-date".into(),
                table: Table::Date,
            },
            descending: true,
        }];
        sorted.after = Some(Cursor {
            values: vec![SortValue::Int(5)],
            id: "a".into(),
        });
        assert_indexed(
            "Condition?subject=Patient/x&_sort=-onset-date (next page)",
            &search_sql(false, &sorted, vis),
        );
        assert_indexed(
            "Condition?subject:Patient.identifier=nhs|9000000009",
            &search_sql(
                false,
                &query(
                    "Condition",
                    vec![Condition::Chain {
                        param: "subject".into(),
                        target_types: vec!["Patient".into()],
                        inner: Box::new(nhs.clone()),
                    }],
                ),
                vis,
            ),
        );
        assert_indexed(
            "Patient?_has:Condition:subject:code=sct|1",
            &search_sql(
                false,
                &query(
                    "Patient",
                    vec![Condition::Has {
                        source_type: "Condition".into(),
                        param: "subject".into(),
                        inner: Box::new(token("code", "sct", "1")),
                    }],
                ),
                vis,
            ),
        );
        let address = Condition::String {
            param: "address-postalcode".into(),
            value: "ls1".into(),
            mode: StringMode::StartsWith,
        };
        assert_indexed(
            "Patient?address-postalcode=ls1",
            &search_sql(false, &query("Patient", vec![address]), vis),
        );
    }

    fn plans_of_the_rest() {
        assert_indexed(
            "children of a care team with their own facts",
            &exceptions_sql(
                false,
                &CareTeamOf {
                    organisation: Some("o".into()),
                    practitioner: Some("p".into()),
                    roles: vec!["r".into()],
                    except: Vec::new(),
                    now: 1_800_000_000,
                },
            ),
        );
        assert_indexed("children of a family member", &children_sql(false, "p"));
        let ids = vec!["a".to_owned(), "b".to_owned()];
        assert_indexed(
            "Condition?…&_include=Condition:subject",
            &include_sql(false, "Condition", &ids, Some("subject"), None),
        );
        assert_indexed(
            "Patient?…&_revinclude=Condition:subject",
            &revinclude_sql(false, "Condition", Some("subject"), "Patient", &ids),
        );
        assert_indexed(
            "Patient/x/$everything",
            &everything_sql(
                false,
                &EverythingQuery {
                    patient_id: "x".into(),
                    members: vec![
                        ("Condition".into(), vec!["subject".into(), "patient".into()]),
                        ("Observation".into(), vec!["subject".into()]),
                    ],
                    since_us: None,
                    count: 10,
                    after: Some(("Condition".into(), "a".into())),
                },
                Visibility::Caller(&SchoolViews),
            ),
        );
        let criteria = vec![crate::TokenCriterion {
            param: "identifier".into(),
            system: SystemMatch::Is("https://fhir.nhs.uk/Id/nhs-number".into()),
            code: "9000000009".into(),
        }];
        let (text, args) =
            crate::sql::find_by_tokens(crate::sql::Dialect::Sqlite, "Patient", &criteria);
        let mut q = Sql::new(false);
        q.text = text;
        q.args = args
            .iter()
            .map(|a| match a {
                crate::sql::Arg::Text(s) => SArg::Text((*s).to_owned()),
                crate::sql::Arg::Int(i) => SArg::Int(*i),
            })
            .collect();
        assert_indexed("find_by_tokens (conditional create)", &q);
    }

    #[test]
    fn prefix_upper_bumps_last_char() {
        assert_eq!(prefix_upper("abc").as_deref(), Some("abd"));
        assert_eq!(prefix_upper("").as_deref(), None);
    }

    #[test]
    fn search_sql_numbers_placeholders() {
        let q = SearchQuery {
            resource_type: "Patient".into(),
            filters: vec![Filter {
                any_of: vec![
                    Condition::Token {
                        param: "identifier".into(),
                        system: SystemMatch::Is("s".into()),
                        code: Some("1".into()),
                        not: false,
                    },
                    Condition::Missing {
                        param: "name".into(),
                        table: Table::String,
                        missing: true,
                    },
                ],
            }],
            sort: vec![SortKey {
                by: SortBy::LastUpdated,
                descending: true,
            }],
            count: 10,
            after: Some(Cursor {
                values: vec![SortValue::Int(5)],
                id: "x".into(),
            }),
            before: None,
            total: false,
        };
        let s = search_sql(true, &q, Visibility::System);
        for n in 1..=s.args.len() {
            assert!(s.text.contains(&format!("${n}")), "{}", s.text);
        }
        assert!(s.text.contains("NOT IN"));
    }

    /// On PostgreSQL the compartment's (type, parameter) pairs are one array parameter:
    /// with an `OR` per type (60-odd parameters) PostgreSQL planned the statement afresh on
    /// every call, which was most of the passport page's database time.
    #[test]
    fn pg_everything_binds_the_compartment_as_one_array() {
        let q = |members: Vec<(String, Vec<String>)>| EverythingQuery {
            patient_id: "x".into(),
            members,
            since_us: None,
            count: 10,
            after: None,
        };
        let all = fhir::compartment::everything_members(|_| true);
        assert!(all.len() > 10, "the compartment has its types");
        let few = everything_sql(
            true,
            &q(vec![("Condition".into(), vec!["subject".into()])]),
            Visibility::System,
        );
        let many = everything_sql(true, &q(all.clone()), Visibility::System);
        assert_eq!(few.args.len(), many.args.len(), "{}", many.text);
        assert!(!many.text.contains(" OR "), "{}", many.text);
        let pairs = many
            .args
            .iter()
            .find_map(|a| match a {
                SArg::TextList(l) => Some(l.clone()),
                _ => None,
            })
            .expect("the pairs are one list");
        let expected: usize = all.iter().map(|(_, p)| p.len()).sum();
        assert_eq!(pairs.len(), expected);
        assert!(pairs.contains(&"AllergyIntolerance patient".to_owned()));
    }
}
