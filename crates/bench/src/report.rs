//! Summaries of a run: a plain-text table for the terminal and a Markdown one for
//! docs/PERFORMANCE.md.

use crate::stats::median;
use crate::workload::{Tally, Workload};
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

const N: usize = 12;
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
];

fn cores(c: Option<f64>) -> String {
    c.map(|c| format!("{c:.2}")).unwrap_or_else(|| "n/a".into())
}

fn cells(r: &Row) -> [String; N] {
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
    ]
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
    out
}

pub fn markdown(title: &str, meta: &Meta, rows: &[Row], notes: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### {title}\n");
    let _ = writeln!(out, "| setting | value |\n| --- | --- |");
    for (k, v) in meta {
        let _ = writeln!(out, "| {k} | {} |", v.replace('|', "\\|"));
    }
    out.push('\n');
    let _ = writeln!(out, "| {} |", HEADERS.join(" | "));
    let _ = writeln!(out, "| --- |{}", " ---: |".repeat(HEADERS.len() - 1));
    for r in rows {
        let _ = writeln!(out, "| {} |", cells(r).join(" | "));
    }
    if !notes.is_empty() {
        out.push('\n');
        for n in notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    out
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
        let md = markdown("x", &vec![], &rows, &[]);
        assert!(md.contains("| read | 1,600 | 0 | 0 | 500 | 1.00 |"), "{md}");
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
    }
}
