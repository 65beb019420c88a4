//! Summaries of a run: a plain-text table for the terminal, a Markdown one for
//! docs/PERFORMANCE.md, a JSON results file, and the comparison of two such files.

use crate::stats::median;
use crate::workload::{Tally, Workload};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::time::Duration;

/// One measured repetition of one workload.
pub struct Sample {
    pub tally: Tally,
    pub elapsed: Duration,
    /// CPU seconds the server and the bench used during the measured window.
    pub server_cpu: Option<f64>,
    pub bench_cpu: Option<f64>,
}

impl Sample {
    /// Average cores busy: CPU seconds over wall seconds.
    pub fn cores(cpu: Option<f64>, elapsed: Duration) -> Option<f64> {
        cpu.map(|c| c / elapsed.as_secs_f64().max(1e-9))
    }

    pub fn throughput(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.tally.requests as f64 / s
        } else {
            0.0
        }
    }
}

/// A workload's line: sums over repeats, medians of the rates and percentiles.
pub struct Row {
    pub name: &'static str,
    pub requests: u64,
    pub errors: u64,
    pub conflicts: u64,
    pub throughput: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: u64,
    pub vs_healthz: Option<f64>,
    pub server_cores: Option<f64>,
    pub bench_cores: Option<f64>,
    /// Mean entries per returned Bundle (search, `$everything`).
    pub mean_entries: Option<f64>,
    /// Why the workload did not run ("not supported by this server").
    pub unsupported: Option<String>,
}

pub fn rows(results: &[(Workload, Vec<Sample>)]) -> Vec<Row> {
    let mut rows: Vec<Row> = results
        .iter()
        .map(|(w, samples)| {
            let m = |f: &dyn Fn(&Sample) -> f64| median(&samples.iter().map(f).collect::<Vec<_>>());
            Row {
                name: w.name(),
                requests: samples.iter().map(|s| s.tally.requests).sum(),
                errors: samples.iter().map(|s| s.tally.errors).sum(),
                conflicts: samples.iter().map(|s| s.tally.conflicts).sum(),
                throughput: m(&|s| s.throughput()),
                p50_us: m(&|s| s.tally.hist.percentile(50.0) as f64),
                p90_us: m(&|s| s.tally.hist.percentile(90.0) as f64),
                p99_us: m(&|s| s.tally.hist.percentile(99.0) as f64),
                max_us: samples
                    .iter()
                    .map(|s| s.tally.hist.max())
                    .max()
                    .unwrap_or(0),
                vs_healthz: None,
                server_cores: opt_median(
                    samples
                        .iter()
                        .map(|s| Sample::cores(s.server_cpu, s.elapsed)),
                ),
                bench_cores: opt_median(
                    samples
                        .iter()
                        .map(|s| Sample::cores(s.bench_cpu, s.elapsed)),
                ),
                mean_entries: {
                    let (b, e) = samples.iter().fold((0, 0), |(b, e), s| {
                        (b + s.tally.bundles, e + s.tally.entries)
                    });
                    (b > 0).then(|| e as f64 / b as f64)
                },
                unsupported: None,
            }
        })
        .collect();
    let ceiling = rows
        .iter()
        .find(|r| r.name == "healthz")
        .map(|r| r.throughput);
    if let Some(c) = ceiling.filter(|c| *c > 0.0) {
        for r in &mut rows {
            r.vs_healthz = Some(r.throughput / c);
        }
    }
    rows
}

fn opt_median(xs: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let v: Option<Vec<f64>> = xs.collect();
    v.filter(|v| !v.is_empty()).map(|v| median(&v))
}

pub fn ms(us: f64) -> String {
    let ms = us / 1000.0;
    if ms < 10.0 {
        format!("{ms:.2}")
    } else if ms < 100.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

/// 12345 → "12,345".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn mib(kib: Option<u64>) -> String {
    kib.map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
        .unwrap_or_else(|| "n/a".into())
}

/// What was measured on: the database and how many resources it stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Scale {
    /// "SQLite" or "PostgreSQL" (or "other").
    pub database: String,
    pub stored: u64,
}

impl Scale {
    /// "SQLite, 10k" / "PostgreSQL, 1M".
    pub fn label(&self) -> String {
        format!("{}, {}", self.database, short_count(self.stored))
    }
}

/// 10_000 → "10k", 1_000_000 → "1M", 12_345 → "12.3k", 950 → "950".
pub fn short_count(n: u64) -> String {
    let f = |x: f64, unit: &str| {
        let s = if x >= 100.0 || x.fract().abs() < 0.05 {
            format!("{x:.0}")
        } else {
            format!("{x:.1}")
        };
        format!("{s}{unit}")
    };
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => f(n as f64 / 1e3, "k"),
        _ => f(n as f64 / 1e6, "M"),
    }
}

const N: usize = 13;
const HEADERS: [&str; N] = [
    "workload",
    "requests",
    "errors",
    "conflicts",
    "req/s",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "max ms",
    "vs healthz",
    "server CPU",
    "bench CPU",
    "entries",
];

fn cores(c: Option<f64>) -> String {
    c.map(|c| format!("{c:.2}")).unwrap_or_else(|| "n/a".into())
}

fn cells(r: &Row) -> [String; N] {
    if r.unsupported.is_some() {
        let mut c: [String; N] = std::array::from_fn(|_| "—".to_owned());
        c[0] = r.name.to_owned();
        return c;
    }
    [
        r.name.to_owned(),
        thousands(r.requests),
        thousands(r.errors),
        thousands(r.conflicts),
        thousands(r.throughput.round() as u64),
        ms(r.p50_us),
        ms(r.p90_us),
        ms(r.p99_us),
        ms(r.max_us as f64),
        r.vs_healthz
            .map(|v| format!("{:.1}%", v * 100.0))
            .unwrap_or_else(|| "n/a".into()),
        cores(r.server_cores),
        cores(r.bench_cores),
        r.mean_entries
            .map(|e| format!("{e:.1}"))
            .unwrap_or_else(|| "".into()),
    ]
}

/// Lines naming the workloads the server does not support.
fn unsupported_lines(rows: &[Row]) -> Vec<String> {
    rows.iter()
        .filter_map(|r| {
            let why = r.unsupported.as_ref()?;
            Some(format!("{}: not supported by this server ({why})", r.name))
        })
        .collect()
}

/// Key/value lines describing the run (machine, profile, database, …).
pub type Meta = Vec<(&'static str, String)>;

pub fn text(meta: &Meta, rows: &[Row]) -> String {
    let mut out = String::new();
    let kw = meta.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in meta {
        let _ = writeln!(out, "{k:<kw$}  {v}");
    }
    out.push('\n');
    let body: Vec<[String; N]> = rows.iter().map(cells).collect();
    let mut widths = HEADERS.map(str::len);
    for c in &body {
        for (w, s) in widths.iter_mut().zip(c) {
            *w = (*w).max(s.len());
        }
    }
    let line = |cols: &[String]| {
        let mut l = String::new();
        for (i, (s, w)) in cols.iter().zip(widths).enumerate() {
            if i == 0 {
                let _ = write!(l, "{s:<w$}");
            } else {
                let _ = write!(l, "  {s:>w$}");
            }
        }
        l
    };
    let _ = writeln!(out, "{}", line(&HEADERS.map(String::from)));
    let _ = writeln!(
        out,
        "{}",
        "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1))
    );
    for c in &body {
        let _ = writeln!(out, "{}", line(c));
    }
    for l in unsupported_lines(rows) {
        let _ = writeln!(out, "{l}");
    }
    out
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The Markdown summary; the workload table starts with the database and the number of
/// stored resources, so tables of runs at different scales can be put side by side.
pub fn markdown(title: &str, meta: &Meta, scale: &Scale, rows: &[Row], notes: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### {title}\n");
    let _ = writeln!(out, "| setting | value |\n| --- | --- |");
    for (k, v) in meta {
        let _ = writeln!(out, "| {k} | {} |", md_escape(v));
    }
    out.push('\n');
    let _ = writeln!(out, "| database | stored | {} |", HEADERS.join(" | "));
    let _ = writeln!(
        out,
        "| --- | ---: | --- |{}",
        " ---: |".repeat(HEADERS.len() - 1)
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            scale.database,
            thousands(scale.stored),
            cells(r).join(" | ")
        );
    }
    let notes: Vec<String> = unsupported_lines(rows)
        .into_iter()
        .chain(notes.iter().cloned())
        .collect();
    if !notes.is_empty() {
        out.push('\n');
        for n in notes {
            let _ = writeln!(out, "- {}", md_escape(&n));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// JSON results and comparisons

/// Format marker of the JSON results file.
pub const RESULTS_FORMAT: &str = "passport-bench results v1";

/// The JSON results of a run: the scale, `extra` (load, RSS, database size, …), the meta
/// lines and one object per workload (latencies in ms).
pub fn results_json(meta: &Meta, scale: &Scale, extra: Value, rows: &[Row]) -> Value {
    let workloads: Vec<Value> = rows
        .iter()
        .map(|r| {
            if let Some(why) = &r.unsupported {
                return json!({ "name": r.name, "supported": false, "reason": why });
            }
            json!({
                "name": r.name,
                "supported": true,
                "requests": r.requests,
                "errors": r.errors,
                "conflicts": r.conflicts,
                "req_per_s": r.throughput,
                "p50_ms": r.p50_us / 1000.0,
                "p90_ms": r.p90_us / 1000.0,
                "p99_ms": r.p99_us / 1000.0,
                "max_ms": r.max_us as f64 / 1000.0,
                "vs_healthz": r.vs_healthz,
                "server_cores": r.server_cores,
                "bench_cores": r.bench_cores,
                "mean_entries": r.mean_entries,
            })
        })
        .collect();
    let meta: serde_json::Map<String, Value> = meta
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    json!({
        "format": RESULTS_FORMAT,
        "scale": { "database": scale.database, "stored_resources": scale.stored },
        "run": extra,
        "meta": meta,
        "workloads": workloads,
    })
}

/// Latency ratios above this fail the scale target (latency at 1M ≤ 1.5 × at 10k).
pub const SCALE_TARGET: f64 = 1.5;

struct Measured {
    name: String,
    p50: f64,
    p90: f64,
    p99: f64,
    rps: f64,
}

fn parse_results(v: &Value) -> Result<(Scale, Vec<Measured>), String> {
    if v["format"] != RESULTS_FORMAT {
        return Err(format!("not a {RESULTS_FORMAT:?} file"));
    }
    let scale = Scale {
        database: v["scale"]["database"]
            .as_str()
            .ok_or("scale.database missing")?
            .to_owned(),
        stored: v["scale"]["stored_resources"]
            .as_u64()
            .ok_or("scale.stored_resources missing")?,
    };
    let mut out = Vec::new();
    for w in v["workloads"].as_array().ok_or("workloads missing")? {
        if w["supported"] != true {
            continue;
        }
        let num = |k: &str| w[k].as_f64().ok_or(format!("{k} missing in {w}"));
        out.push(Measured {
            name: w["name"]
                .as_str()
                .ok_or("workload name missing")?
                .to_owned(),
            p50: num("p50_ms")?,
            p90: num("p90_ms")?,
            p99: num("p99_ms")?,
            rps: num("req_per_s")?,
        });
    }
    Ok((scale, out))
}

/// Compares two results files: latency at the larger scale over latency at the smaller one
/// (whichever order they come in), per workload both measured. Returns (text, Markdown,
/// whether every workload met [`SCALE_TARGET`] on p50 and p90).
pub fn compare(a: &Value, b: &Value) -> Result<(String, String, bool), String> {
    let (sa, wa) = parse_results(a).map_err(|e| format!("first file: {e}"))?;
    let (sb, wb) = parse_results(b).map_err(|e| format!("second file: {e}"))?;
    let ((small, ws), (large, wl)) = if sa.stored <= sb.stored {
        ((sa, wa), (sb, wb))
    } else {
        ((sb, wb), (sa, wa))
    };
    let ratio = |l: f64, s: f64| if s > 0.0 { l / s } else { f64::NAN };
    let heads = [
        "workload".to_owned(),
        format!("p50 ms {}", small.label()),
        format!("p50 ms {}", large.label()),
        "p50 ×".to_owned(),
        "p90 ×".to_owned(),
        "p99 ×".to_owned(),
        "req/s ×".to_owned(),
        format!("≤ {SCALE_TARGET}×"),
    ];
    let mut table = Vec::new();
    let mut all_ok = true;
    for s in &ws {
        let Some(l) = wl.iter().find(|l| l.name == s.name) else {
            continue;
        };
        let (r50, r90, r99) = (
            ratio(l.p50, s.p50),
            ratio(l.p90, s.p90),
            ratio(l.p99, s.p99),
        );
        let ok = r50 <= SCALE_TARGET && r90 <= SCALE_TARGET;
        all_ok &= ok;
        table.push([
            s.name.clone(),
            format!("{:.2}", s.p50),
            format!("{:.2}", l.p50),
            format!("{r50:.2}"),
            format!("{r90:.2}"),
            format!("{r99:.2}"),
            format!("{:.2}", ratio(l.rps, s.rps)),
            if ok { "yes" } else { "NO" }.to_owned(),
        ]);
    }
    if table.is_empty() {
        return Err("the two files have no supported workload in common".into());
    }
    let title = format!(
        "Latency at {} / latency at {} (p50 and p90 must stay ≤ {SCALE_TARGET}×; p99 for information)",
        large.label(),
        small.label()
    );
    let mut widths = heads.clone().map(|h| h.chars().count());
    for row in &table {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let pad = |s: &str, w: usize, left: bool| {
        let fill = " ".repeat(w.saturating_sub(s.chars().count()));
        if left {
            format!("{s}{fill}")
        } else {
            format!("{fill}{s}")
        }
    };
    let mut text = format!("{title}\n\n");
    let line = |cols: &[String; 8]| {
        cols.iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (c, w))| pad(c, w, i == 0))
            .collect::<Vec<_>>()
            .join("  ")
    };
    let _ = writeln!(text, "{}", line(&heads));
    let _ = writeln!(text, "{}", "-".repeat(widths.iter().sum::<usize>() + 2 * 7));
    for row in &table {
        let _ = writeln!(text, "{}", line(row));
    }
    let mut md = format!(
        "### {title}\n\n| {} |\n| --- |{}\n",
        heads.join(" | "),
        " ---: |".repeat(7)
    );
    for row in &table {
        let _ = writeln!(md, "| {} |", row.join(" | "));
    }
    Ok((text, md, all_ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(reqs: u64, secs: f64, lat: u64) -> Sample {
        let mut tally = Tally::default();
        for _ in 0..reqs {
            tally.hist.record(lat);
        }
        tally.requests = reqs;
        Sample {
            tally,
            elapsed: Duration::from_secs_f64(secs),
            server_cpu: Some(secs),
            bench_cpu: None,
        }
    }

    #[test]
    fn medians_and_ratio() {
        let results = vec![
            (
                Workload::Healthz,
                vec![
                    sample(1000, 1.0, 100),
                    sample(3000, 1.0, 300),
                    sample(2000, 1.0, 200),
                ],
            ),
            (
                Workload::Read,
                vec![
                    sample(500, 1.0, 1000),
                    sample(100, 1.0, 5000),
                    sample(1000, 1.0, 900),
                ],
            ),
        ];
        let rows = rows(&results);
        assert_eq!(rows[0].throughput, 2000.0);
        assert_eq!(rows[0].p50_us, 200.0);
        assert_eq!(rows[0].requests, 6000);
        assert_eq!(rows[1].throughput, 500.0);
        assert_eq!(rows[1].p99_us, 1000.0);
        assert_eq!(rows[1].max_us, 5000);
        assert_eq!(rows[1].vs_healthz, Some(0.25));
        assert_eq!(rows[0].vs_healthz, Some(1.0));
        assert_eq!(rows[0].server_cores, Some(1.0));
        assert_eq!(rows[0].bench_cores, None);
        let t = text(&vec![("db", "sqlite".into())], &rows);
        assert!(t.contains("25.0%"), "{t}");
        let scale = Scale {
            database: "SQLite".into(),
            stored: 10_000,
        };
        let md = markdown("x", &vec![], &scale, &rows, &[]);
        assert!(
            md.contains("| SQLite | 10,000 | read | 1,600 | 0 | 0 | 500 | 1.00 |"),
            "{md}"
        );
    }

    fn results(stored: u64, read_p50_us: u64, chain: bool) -> Value {
        let mut res = vec![
            (Workload::Healthz, vec![sample(1000, 1.0, 100)]),
            (Workload::Read, vec![sample(500, 1.0, read_p50_us)]),
            (Workload::SearchChain, vec![]),
        ];
        if chain {
            res[2].1.push(sample(100, 1.0, 2000));
        }
        let mut rows = rows(&res);
        if !chain {
            rows[2].unsupported = Some("HTTP 404".into());
        }
        let scale = Scale {
            database: "SQLite".into(),
            stored,
        };
        // Through text, as the files are.
        let v = results_json(&vec![("k", "v".into())], &scale, json!({}), &rows);
        serde_json::from_str(&v.to_string()).unwrap()
    }

    #[test]
    fn unsupported_rows_and_json() {
        let v = results(10_000, 1000, false);
        assert_eq!(v["scale"]["stored_resources"], 10_000);
        assert_eq!(v["workloads"][1]["p50_ms"], 1.0);
        assert_eq!(v["workloads"][2]["supported"], false);
        let mut rows = rows(&[(Workload::SearchNhs, vec![])]);
        rows[0].unsupported = Some("GET …: HTTP 404".into());
        let t = text(&vec![], &rows);
        assert!(
            t.contains("search-nhs: not supported by this server (GET …: HTTP 404)"),
            "{t}"
        );
    }

    #[test]
    fn comparison_of_two_scales() {
        let small = results(10_000, 1000, true);
        let big = results(1_000_000, 1400, true);
        // Order of the files does not matter: the larger scale is divided by the smaller.
        for (a, b) in [(&small, &big), (&big, &small)] {
            let (text, md, ok) = compare(a, b).unwrap();
            assert!(ok, "{text}");
            assert!(
                text.contains("SQLite, 1M / latency at SQLite, 10k"),
                "{text}"
            );
            assert!(text.contains("1.40"), "{text}");
            assert!(md.contains("| read | 1.00 | 1.40 | 1.40 |"), "{md}");
        }
        let slow = results(1_000_000, 1600, false);
        let (text, _, ok) = compare(&small, &slow).unwrap();
        assert!(!ok);
        assert!(text.contains("NO"), "{text}");
        // search-chain is skipped (not supported at 1M).
        assert!(!text.contains("search-chain"), "{text}");
        assert!(compare(&json!({}), &small).is_err());
    }

    #[test]
    fn formatting() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(ms(1234.0), "1.23");
        assert_eq!(ms(12345.0), "12.3");
        assert_eq!(ms(123456.0), "123");
        assert_eq!(mib(Some(2048)), "2.0 MiB");
        assert_eq!(short_count(950), "950");
        assert_eq!(short_count(10_000), "10k");
        assert_eq!(short_count(12_345), "12.3k");
        assert_eq!(short_count(1_000_000), "1M");
        assert_eq!(short_count(1_234_567), "1.2M");
    }
}
