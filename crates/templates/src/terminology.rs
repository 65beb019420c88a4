//! The curated terminology subset: `testdata/clinical/terminology.csv`, compiled in.
//!
//! Only these codes may appear in a template or be offered to a user. Each row's code
//! and display were found verbatim in a named public source; nothing here is typed from
//! memory. Where the subset has no code for a concept (most dm+d products, for one), the
//! answer is entered as text instead — see `testdata/clinical/README.md`.

use std::sync::OnceLock;

const CSV: &str = include_str!("../../../testdata/clinical/terminology.csv");

/// One coded concept of the subset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concept {
    /// `http://snomed.info/sct` or `https://dmd.nhs.uk`.
    pub system: String,
    pub code: String,
    /// The display as the cited source gives it (a loaded UK edition supersedes it).
    pub display: String,
    /// What the concept is for: `condition`, `allergy-condition`, `substance`,
    /// `communication-need`, `reasonable-adjustment`, `ra-flag`, `device-status`,
    /// `dmd-vmp`, `dmd-vtm`, `product` or `situation`.
    pub kind: String,
}

/// Every concept, in file order. Parsed once, on first use: the file is small and
/// embedded, so there is no I/O and no error to report at run time.
pub fn concepts() -> &'static [Concept] {
    static CONCEPTS: OnceLock<Vec<Concept>> = OnceLock::new();
    CONCEPTS.get_or_init(|| parse(CSV))
}

/// Parses the CSV (header `system,code,display,kind,source1,source2`). Fields may be
/// quoted, with `""` for a quote inside, as RFC 4180 allows; today no field needs it,
/// but displays such as "Cow's milk" show that punctuation does occur in the data.
fn parse(text: &str) -> Vec<Concept> {
    let mut rows = records(text).into_iter();
    let header = rows.next().unwrap_or_default();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("terminology.csv has no '{name}' column"))
    };
    let (system, code, display, kind) = (col("system"), col("code"), col("display"), col("kind"));
    rows.filter(|r| r.iter().any(|f| !f.is_empty()))
        .map(|r| {
            let get = |i: usize| r.get(i).cloned().unwrap_or_default();
            Concept {
                system: get(system),
                code: get(code),
                display: get(display),
                kind: get(kind),
            }
        })
        .collect()
}

/// Splits CSV text into records of fields, honouring quotes (which may hold commas and
/// line breaks).
fn records(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            ',' => record.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                record.push(std::mem::take(&mut field));
                out.push(std::mem::take(&mut record));
            }
            _ => field.push(c),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        out.push(record);
    }
    out
}

/// The concept with this system and code, if the subset has it. Used to check that a
/// coding in a template or an incoming resource is one the subset vouches for.
pub fn lookup(system: &str, code: &str) -> Option<&'static Concept> {
    concepts()
        .iter()
        .find(|c| c.code == code && c.system == system)
}

/// Concepts of the given kinds (all kinds when `kinds` is empty) matching `query`, for
/// search-as-you-type pickers; at most `limit`.
///
/// Matching ignores case. Ranking, best first, each tier in file order:
/// 1. the display starts with the query, or the code does;
/// 2. every word of the query starts a word of the display ("pean" → "Peanut",
///    "allergy pea" → "Allergy to peanut");
/// 3. the display contains the query anywhere ("nut" → "Peanut").
///
/// Word prefixes rank first because people type the start of the word they are thinking
/// of; substring matches still help with compound words. An empty query lists the kinds.
pub fn search(kinds: &[&str], query: &str, limit: usize) -> Vec<&'static Concept> {
    let q = query.trim().to_lowercase();
    let tokens: Vec<&str> = q.split_whitespace().collect();
    let mut tiers: [Vec<&'static Concept>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for c in concepts() {
        if !kinds.is_empty() && !kinds.contains(&c.kind.as_str()) {
            continue;
        }
        let display = c.display.to_lowercase();
        let tier = if q.is_empty() || display.starts_with(&q) || c.code.starts_with(&q) {
            0
        } else if tokens
            .iter()
            .all(|t| words(&display).any(|w| w.starts_with(t)))
        {
            1
        } else if display.contains(&q) {
            2
        } else {
            continue;
        };
        tiers[tier].push(c);
    }
    tiers.into_iter().flatten().take(limit).collect()
}

/// The words of a display: runs of letters and digits ("Cow's milk" → "cow", "s", "milk").
fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_keep_commas_and_quotes() {
        let rows = records("a,b\n\"x, y\",\"say \"\"hi\"\"\"\r\nlast,\n");
        assert_eq!(
            rows,
            vec![vec!["a", "b"], vec!["x, y", "say \"hi\""], vec!["last", ""]]
        );
    }

    #[test]
    fn every_row_parses_with_four_non_empty_columns() {
        let n = CSV.lines().filter(|l| !l.trim().is_empty()).count() - 1;
        assert_eq!(concepts().len(), n);
        for c in concepts() {
            assert!(!c.system.is_empty() && !c.code.is_empty(), "{c:?}");
            assert!(!c.display.is_empty() && !c.kind.is_empty(), "{c:?}");
        }
    }
}
