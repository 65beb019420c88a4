//! `passport-bench`: starts the real `passport` server, loads synthetic children's records
//! through the FHIR API, drives timed workloads over HTTP and reports throughput and
//! latency. See docs/BENCHMARK.md.
//!
//! Exit codes: 0 all good; 1 unexpected errors in the load or a workload; 2 misuse (bad
//! flags, server binary not found); 3 the server failed to start or died; 130 interrupted.

mod auth;
mod hostile;
mod http;
mod report;
mod server;
mod stats;
mod synth;
#[cfg(test)]
mod test_server;
mod workload;

use clap::{Parser, ValueEnum};
use report::{Meta, Sample, Scale};
use serde_json::json;
use server::{PgSchema, Server};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use synth::Synth;
use workload::{Ctx, Tally, Workload};

const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(Parser, Debug)]
#[command(
    name = "passport-bench",
    version,
    about = "Load benchmark for the Passport FHIR server: \
starts `passport serve`, loads synthetic children's records over HTTP, runs timed workloads \
(healthz, read, create, update, crud-mix, search-nhs, search-include, search-chain, everything, \
transaction, token, sign-in, sign-in-staff, and the searches as real callers: search-obs, \
hospital-*, school-*, family-*; the pages family-passport, family-emergency and clinician-review; the soak crud-mix-hostile) and prints \
throughput and latency tables. `--compare A.json B.json` compares two runs' results files instead.",
    long_about = "Load benchmark for the Passport FHIR server: \
starts `passport serve`, loads synthetic children's records over HTTP, runs timed workloads \
(healthz, read, create, update, crud-mix, search-nhs, search-include, search-chain, everything, \
transaction, token, sign-in, sign-in-staff, and the searches as real callers: search-obs, \
hospital-*, school-*, family-*) and prints throughput and latency tables. \
`--compare A.json B.json` compares two runs' results files instead.\n\n\
Authentication, as an operator's integration would do it: once the server is up, the bench \
registers an OAuth client with the real CLI (`passport admin create-client --database DB \
--name passport-bench --grant client_credentials --scope system/*.cruds --regional --cleared \
…` for every security label), gets an access token from POST /oauth/token (client_credentials, \
HTTP Basic) and sends `Authorization: Bearer …` on every /fhir request (the load included); a \
fresh token is fetched before each phase and whenever the one in use is 10 minutes old \
(tokens live 15). /healthz is sent without one. The sign-in workloads sign in with accounts \
made by `passport admin create-org` / `create-user --password-stdin` (random passwords, \
unique logins per run). The synthetic region has a hospital trust, a GP practice and --schools \
schools (`passport admin seed-region`, the shared region fixture), a CareTeam per child naming the hospital, the GP and one \
school, and section tags on every resource; the hospital-*/school-* workloads use system \
clients made with `create-client --organisation`, the family-* workloads a parent's user \
token from the authorization-code flow with PKCE (sign-in, approval page, code exchange); \
clinician-review a clinician of the hospital trust made by seed-region, signed in once with \
their password and a TOTP code the bench computes from the secret seed-region printed. See \
docs/BENCHMARK.md."
)]
struct Args {
    /// The `passport` server binary [default: `passport` next to this executable].
    #[arg(long, value_name = "PATH")]
    server_bin: Option<PathBuf>,
    /// Database URL handed to the server [default: a fresh temp SQLite file]. With --pg,
    /// the PostgreSQL URL to create the run's schema in.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Use PostgreSQL: create a fresh schema for the run (dropped afterwards) in --database,
    /// or $PASSPORT_BENCH_PG_URL, or postgres://postgres@127.0.0.1:5432/test.
    #[arg(long)]
    pg: bool,
    /// Synthetic children to load (each ~7–13 resources; complex children 30)
    /// [default: 10000; 1000 with --smoke].
    #[arg(long, value_name = "N", conflicts_with = "resources")]
    patients: Option<u64>,
    /// Load children until at least N resources are stored (instead of --patients), e.g.
    /// 10000 or 1000000 for the scale runs.
    #[arg(long, value_name = "N")]
    resources: Option<u64>,
    /// How to load: one POST per resource, or `transaction` Bundles of --bundle-size.
    #[arg(long, value_enum, default_value_t = LoadVia::Post, value_name = "HOW")]
    load_via: LoadVia,
    /// Most resources per transaction Bundle with --load-via transactions (whole children
    /// only; a child is never split).
    #[arg(long, default_value_t = 250, value_name = "N")]
    bundle_size: usize,
    /// Share of "complex" children (long growth history: 30 resources each), in percent.
    #[arg(long, default_value_t = synth::DEFAULT_COMPLEX_PERCENT, value_name = "PERCENT")]
    complex_percent: u64,
    /// Concurrent HTTP clients (one keep-alive connection each) during the workloads.
    #[arg(long, default_value_t = 16, value_name = "N")]
    concurrency: usize,
    /// Concurrent clients of the sign-in workloads (argon2id is memory-hard: ~19 MiB of
    /// server memory per sign-in in flight).
    #[arg(long, default_value_t = 4, value_name = "N")]
    sign_in_concurrency: usize,
    /// Concurrent clients while loading [default: --concurrency].
    #[arg(long, value_name = "N")]
    load_concurrency: Option<usize>,
    /// Seconds measured per workload [default: 20; 5 with --smoke].
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Seconds of unmeasured warm-up before each workload [default: 3; 1 with --smoke].
    #[arg(long, value_name = "SECS")]
    warmup: Option<f64>,
    /// Run every workload K times (interleaved rounds) and report medians.
    #[arg(long, default_value_t = 1, value_name = "K")]
    repeat: usize,
    /// Comma-separated workloads to run, in order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "healthz,read,create,update,crud-mix,search-nhs,search-include,search-chain,everything,transaction,token,sign-in,sign-in-staff,search-obs,hospital-obs,hospital-nhs,hospital-include,hospital-chain,hospital-everything,school-obs,school-nhs,school-include,school-chain,school-everything,family-obs,family-nhs,family-include,family-chain,family-everything,family-passport,family-emergency,clinician-review,crud-mix-hostile"
    )]
    workloads: Vec<String>,
    /// Schools in the synthetic region (each child's care team names one: child i is at
    /// school i mod N, so a school relates to 1/N of the children).
    #[arg(long, default_value_t = synth::DEFAULT_SCHOOLS, value_name = "N")]
    schools: u64,
    /// Seed of the synthetic data and of the random choices.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Also write the summary as Markdown (for docs/PERFORMANCE.md) to FILE.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Also write the results as JSON to FILE (for --compare).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Do not run anything: compare two --json results files (latency at the larger scale
    /// over latency at the smaller; target ≤ 1.5×). With --markdown, also as Markdown.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    compare: Option<Vec<PathBuf>>,
    /// Short CI run: 1,000 patients, 0.5 s warm-up + 2 s per workload (every workload, the
    /// authenticated load, `token`, the sign-ins and the searches as hospital, school and
    /// family included), 1 repeat (under two minutes); exits non-zero on any unexpected
    /// error.
    #[arg(long)]
    smoke: bool,
    /// Seconds to wait for the server's first 200 on /healthz.
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    startup_timeout: f64,
    /// Keep the temp directory (SQLite file, server log) afterwards.
    #[arg(long)]
    keep_temp: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LoadVia {
    /// `POST /fhir/{type}`, one resource per request.
    Post,
    /// `POST /fhir` transaction Bundles of --bundle-size resources.
    Transactions,
}

/// Resolved settings.
struct Config {
    server_bin: PathBuf,
    profile: &'static str,
    patients: u64,
    /// The synthetic data generator (seed, today, complex share).
    synth: Synth,
    concurrency: usize,
    load_concurrency: usize,
    sign_in_concurrency: usize,
    duration: Duration,
    warmup: Duration,
    repeat: usize,
    workloads: Vec<Workload>,
    seed: u64,
    startup_timeout: Duration,
}

enum Failure {
    Usage(String),
    Server(String),
    Other(String),
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(files) = &args.compare {
        return compare_files(&files[0], &files[1], args.markdown.as_deref());
    }
    let cfg = match resolve(&args) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("passport-bench: {msg}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("passport-bench: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async_main(args, cfg))
}

fn resolve(args: &Args) -> Result<Config, String> {
    let server_bin = match &args.server_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot locate own executable: {e}"))?
            .with_file_name("passport"),
    };
    if !server_bin.is_file() {
        return Err(format!(
            "server binary not found at {} — build it first (`cargo build -p passport`, or with \
             --release for a release run) or pass --server-bin PATH",
            server_bin.display()
        ));
    }
    let server_bin = server_bin.canonicalize().unwrap_or(server_bin);
    let profile = detect_profile(&server_bin);
    let (d_patients, d_duration, d_warmup) = if args.smoke {
        (1_000, 2.0, 0.5)
    } else {
        (10_000, 20.0, 3.0)
    };
    if args.complex_percent > 100 {
        return Err("--complex-percent must be 0–100".into());
    }
    if args.bundle_size == 0 {
        return Err("--bundle-size must be at least 1".into());
    }
    if args.schools == 0 {
        return Err("--schools must be at least 1".into());
    }
    let synth = Synth::new(args.seed, synth::today_days())
        .with_complex_percent(args.complex_percent)
        .with_schools(args.schools);
    let patients = match args.resources {
        Some(n) => synth.children_for_resources(n),
        None => args.patients.unwrap_or(d_patients),
    };
    if patients > synth::DISTINCT_NHS_NUMBERS / 2 {
        return Err(format!(
            "{patients} children: NHS numbers are distinct only for the first {} (and the \
             workloads create more)",
            synth::DISTINCT_NHS_NUMBERS
        ));
    }
    let duration = args.duration.unwrap_or(d_duration);
    let warmup = args.warmup.unwrap_or(d_warmup);
    if args.concurrency == 0 || args.load_concurrency == Some(0) || args.sign_in_concurrency == 0 {
        return Err(
            "--concurrency, --load-concurrency and --sign-in-concurrency must be at least 1".into(),
        );
    }
    if args.repeat == 0 {
        return Err("--repeat must be at least 1".into());
    }
    let positive = |x: f64| x.is_finite() && x > 0.0;
    let non_negative = |x: f64| x.is_finite() && x >= 0.0;
    if !positive(duration) || !non_negative(warmup) {
        return Err("--duration must be > 0 and --warmup ≥ 0 seconds".into());
    }
    if !positive(args.startup_timeout) {
        return Err("--startup-timeout must be > 0 seconds".into());
    }
    let mut workloads = Vec::new();
    for w in &args.workloads {
        let w = w.trim();
        let parsed = Workload::parse(w).ok_or_else(|| {
            let names: Vec<_> = Workload::ALL.iter().map(|w| w.name()).collect();
            format!("unknown workload {w:?} (choose from {})", names.join(", "))
        })?;
        if !workloads.contains(&parsed) {
            workloads.push(parsed);
        }
    }
    if workloads.is_empty() {
        return Err("no workloads given".into());
    }
    let needs_data = workloads.iter().any(|w| w.needs_data());
    if needs_data && patients == 0 {
        let without: Vec<_> = Workload::ALL
            .iter()
            .filter(|w| !w.needs_data())
            .map(|w| w.name())
            .collect();
        return Err(format!(
            "--patients 0 only works with --workloads among {}",
            without.join(",")
        ));
    }
    if let Some(db) = &args.database
        && args.pg
        && !db.starts_with("postgres")
    {
        return Err(format!(
            "--pg needs a postgres:// URL in --database, got {db:?}"
        ));
    }
    Ok(Config {
        server_bin,
        profile,
        patients,
        synth,
        concurrency: args.concurrency,
        load_concurrency: args.load_concurrency.unwrap_or(args.concurrency),
        sign_in_concurrency: args.sign_in_concurrency,
        duration: Duration::from_secs_f64(duration),
        warmup: Duration::from_secs_f64(warmup),
        repeat: args.repeat,
        workloads,
        seed: args.seed,
        startup_timeout: Duration::from_secs_f64(args.startup_timeout),
    })
}

fn detect_profile(bin: &Path) -> &'static str {
    let names: Vec<_> = bin
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if names.iter().any(|c| c == "release") {
        "release"
    } else if names.iter().any(|c| c == "debug") {
        "debug"
    } else {
        "unknown-profile"
    }
}

async fn async_main(args: Args, cfg: Config) -> ExitCode {
    let dir = std::env::temp_dir().join(format!(
        "passport-bench-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    ));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("passport-bench: cannot create {}: {e}", dir.display());
        return ExitCode::from(1);
    }

    let mut pg = None;
    let (database, database_label) = if args.pg {
        let base = args
            .database
            .clone()
            .or_else(|| std::env::var("PASSPORT_BENCH_PG_URL").ok())
            .unwrap_or_else(|| DEFAULT_PG_URL.to_owned());
        match PgSchema::create(&base).await {
            Ok(s) => {
                let label = format!("PostgreSQL, fresh schema {} ({})", s.name, redact(&base));
                let url = s.server_url.clone();
                pg = Some(s);
                (url, label)
            }
            Err(e) => {
                eprintln!("passport-bench: {e}");
                let _ = std::fs::remove_dir_all(&dir);
                return ExitCode::from(2);
            }
        }
    } else if let Some(db) = &args.database {
        let kind = if db.starts_with("postgres") {
            "PostgreSQL"
        } else if db.starts_with("sqlite") {
            "SQLite"
        } else {
            "given"
        };
        (db.clone(), format!("{kind} ({})", redact(db)))
    } else {
        (
            format!("sqlite://{}", dir.join("bench.db").display()),
            "SQLite, fresh temp file".to_owned(),
        )
    };

    let mut sigterm =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async {
        match sigterm.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    // Dropping the bench future (on a signal) drops the Server handle, which stops it.
    let outcome = tokio::select! {
        r = bench(&args, &cfg, &database, &database_label, &dir, pg.as_ref()) => Some(r),
        _ = tokio::signal::ctrl_c() => None,
        _ = term => None,
    };

    if let Some(s) = &pg
        && let Err(e) = s.drop_schema().await
    {
        eprintln!("passport-bench: could not drop schema {}: {e}", s.name);
    }
    let keep = args.keep_temp || !matches!(outcome, Some(Ok(true)));
    if keep {
        eprintln!(
            "passport-bench: temp files (server log) kept in {}",
            dir.display()
        );
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    match outcome {
        None => {
            eprintln!("passport-bench: interrupted; server stopped");
            ExitCode::from(130)
        }
        Some(Ok(true)) => ExitCode::SUCCESS,
        Some(Ok(false)) => {
            eprintln!("passport-bench: FAILED: unexpected errors (see above)");
            ExitCode::from(1)
        }
        Some(Err(Failure::Usage(m))) => {
            eprintln!("passport-bench: {m}");
            ExitCode::from(2)
        }
        Some(Err(Failure::Server(m))) => {
            eprintln!("passport-bench: FAILED: {m}");
            ExitCode::from(3)
        }
        Some(Err(Failure::Other(m))) => {
            eprintln!("passport-bench: FAILED: {m}");
            ExitCode::from(1)
        }
    }
}

/// A URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let cred = &url[s + 3..at];
            match cred.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &cred[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The whole run with the server up; Ok(true) when nothing unexpected happened.
async fn bench(
    args: &Args,
    cfg: &Config,
    database: &str,
    database_label: &str,
    dir: &Path,
    pg: Option<&PgSchema>,
) -> Result<bool, Failure> {
    let mut server = Server::spawn(&cfg.server_bin, database, dir.join("server.log"))
        .map_err(|e| Failure::Server(e.to_string()))?;
    let startup = server
        .wait_healthy(cfg.startup_timeout)
        .await
        .map_err(|e| Failure::Server(e.to_string()))?;
    eprintln!(
        "passport-bench: server pid {} on {} ready after {:.0} ms ({})",
        server.pid,
        server.addr,
        startup.as_secs_f64() * 1000.0,
        cfg.profile
    );

    // Authentication, as an operator would set it up (see auth.rs).
    let setup = std::time::Instant::now();
    let creds = auth::register_client(&cfg.server_bin, database)
        .await
        .map_err(|e| {
            Failure::Other(format!(
                "could not register the bench's OAuth client with the CLI: {e}"
            ))
        })?;
    let auth = auth::Auth::obtain(server.addr, &creds).await.map_err(|e| {
        Failure::Other(format!(
            "could not get an access token for client {}: {e}\n{}",
            creds.client_id,
            server.log_tail(10)
        ))
    })?;
    eprintln!(
        "passport-bench: OAuth client {} registered with `passport admin create-client` (regional, scope {}), access token from POST /oauth/token ({:.0} ms)",
        creds.client_id,
        auth::SCOPE,
        setup.elapsed().as_secs_f64() * 1000.0
    );
    let (want_family, want_staff) = (
        cfg.workloads.contains(&Workload::SignIn),
        cfg.workloads.contains(&Workload::SignInStaff),
    );
    let accounts = if want_family || want_staff {
        let setup = std::time::Instant::now();
        let tag = format!(
            "{}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        );
        let accounts =
            auth::create_accounts(&cfg.server_bin, database, &tag, want_family, want_staff)
                .await
                .map_err(|e| {
                    Failure::Other(format!(
                        "could not create the sign-in accounts with the CLI: {e}"
                    ))
                })?;
        for a in [&accounts.family, &accounts.staff].into_iter().flatten() {
            auth::verify_sign_in(server.addr, a).await.map_err(|e| {
                Failure::Other(format!("the sign-in of {} does not work: {e}", a.email))
            })?;
        }
        let names: Vec<&str> = [&accounts.family, &accounts.staff]
            .into_iter()
            .flatten()
            .map(|a| a.email.as_str())
            .collect();
        eprintln!(
            "passport-bench: sign-in accounts {} created with `passport admin create-user` and checked ({:.0} ms)",
            names.join(", "),
            setup.elapsed().as_secs_f64() * 1000.0
        );
        accounts
    } else {
        auth::Accounts::default()
    };
    let fresh_token = |phase: String| {
        let auth = auth.clone();
        async move {
            auth.refresh().await.map_err(|e| {
                Failure::Other(format!("could not get a fresh access token {phase}: {e}"))
            })
        }
    };

    // The synthetic region: its organisations, named by every child's CareTeam.
    let setup = std::time::Instant::now();
    let (region, clinician) = create_region(&cfg.server_bin, database, cfg.synth.schools())
        .await
        .map_err(|e| Failure::Other(format!("could not create the region's organisations: {e}")))?;
    eprintln!(
        "passport-bench: region: hospital trust {}, GP practice {}, {} schools made with `passport admin seed-region` ({:.0} ms)",
        region.hospital,
        region.gp,
        region.schools.len(),
        setup.elapsed().as_secs_f64() * 1000.0
    );
    let synth = cfg.synth.clone().with_region(region.clone());
    let via = match args.load_via {
        LoadVia::Post => "POSTs".to_owned(),
        LoadVia::Transactions => format!("transaction Bundles of ≤ {} resources", args.bundle_size),
    };
    eprintln!(
        "passport-bench: loading {} synthetic children ({} % complex) as {via} on {} clients…",
        cfg.patients, args.complex_percent, cfg.load_concurrency
    );
    fresh_token("before the load".into()).await?;
    let (data, load_tally, load_time) = match args.load_via {
        LoadVia::Post => workload::load(&auth, &synth, cfg.patients, cfg.load_concurrency).await,
        LoadVia::Transactions => {
            let plan = synth.plan_bundles(cfg.patients, args.bundle_size);
            workload::load_transactions(&auth, &synth, plan, cfg.load_concurrency).await
        }
    };
    server
        .check_alive()
        .map_err(|e| Failure::Server(e.to_string()))?;
    let rss_after_load = server.rss_kib();
    let db_after_load = db_bytes(database, pg).await;
    let loaded = data.resources.len() as u64;
    let load_rate = loaded as f64 / load_time.as_secs_f64().max(1e-9);
    eprintln!(
        "passport-bench: loaded {} resources ({} children) in {:.1} s = {:.0}/s, {} errors; server RSS {}, database {}",
        loaded,
        data.patients.len(),
        load_time.as_secs_f64(),
        load_rate,
        load_tally.errors,
        report::mib(rss_after_load),
        bytes_label(db_after_load)
    );
    for s in &load_tally.error_samples {
        eprintln!("  load error: {s}");
    }
    if cfg.patients > 0 && data.patients.is_empty() {
        return Err(Failure::Other(
            "no child could be loaded; the API rejects the synthetic data or does not work".into(),
        ));
    }

    // The real callers of the search-visibility workloads (only those the run needs).
    let setup = std::time::Instant::now();
    let mut callers = set_up_callers(
        &cfg.server_bin,
        database,
        server.addr,
        &auth,
        &region,
        &synth,
        &data,
        &cfg.workloads,
    )
    .await
    .map_err(|e| Failure::Other(format!("{e}\n{}", server.log_tail(10))))?;
    if cfg.workloads.contains(&Workload::ClinicianReview) {
        // One full sign-in (password and TOTP), shared by every worker: a code works once.
        let mut c = http::Client::new(server.addr);
        let cookie = auth::staff_session(
            &mut c,
            &clinician.email,
            &clinician.password,
            &clinician.totp_base32,
        )
        .await
        .map_err(|e| Failure::Other(format!("the clinician could not sign in: {e}")))?;
        callers.clinician_cookie = Some(cookie);
    }
    let caller_line = describe_callers(&callers, &synth, data.patients.len());
    if !caller_line.is_empty() {
        eprintln!(
            "passport-bench: callers set up ({:.0} ms): {caller_line}",
            setup.elapsed().as_secs_f64() * 1000.0
        );
    }
    let ctx = Arc::new(Ctx {
        addr: server.addr,
        auth: auth.clone(),
        accounts,
        synth: synth.clone(),
        next_index: AtomicU64::new(cfg.patients),
        data,
        callers,
    });
    let fresh_caller = |w: Workload| {
        let ctx = ctx.clone();
        async move {
            let who = w.who();
            for (name, a) in ctx.callers.all() {
                if name.starts_with(who.name()) {
                    a.refresh().await.map_err(|e| {
                        Failure::Other(format!(
                            "could not get a fresh {name} token before {}: {e}",
                            w.name()
                        ))
                    })?;
                }
            }
            Ok::<(), Failure>(())
        }
    };
    let mut results: Vec<(Workload, Vec<Sample>)> =
        cfg.workloads.iter().map(|w| (*w, Vec::new())).collect();
    let mut created = loaded;
    let mut unexpected = load_tally.errors;
    // Optional features (search, $everything, transactions): one probing request each; a
    // 404/405 marks the workload "not supported by this server" and skips it.
    let mut unsupported: Vec<(Workload, String)> = Vec::new();
    fresh_token("before the probes".into()).await?;
    for w in cfg.workloads.iter().filter(|w| w.optional()) {
        fresh_caller(*w).await?;
        let (verdict, t) = workload::probe(&ctx, *w, cfg.seed ^ 0x5EED).await;
        match verdict {
            workload::Probe::Unsupported(why) => {
                eprintln!(
                    "passport-bench: {}: not supported by this server ({why})",
                    w.name()
                );
                unsupported.push((*w, why));
            }
            workload::Probe::Go => {
                created += t.created;
                unexpected += t.errors;
                report_errors(&format!("{} probe", w.name()), &t);
            }
        }
    }
    for round in 0..cfg.repeat {
        for (w, samples) in results.iter_mut() {
            if unsupported.iter().any(|(u, _)| u == w) {
                continue;
            }
            let seed = cfg.seed ^ ((round as u64) << 48);
            let concurrency = if w.is_sign_in() {
                cfg.sign_in_concurrency
            } else {
                cfg.concurrency
            };
            if !cfg.warmup.is_zero() {
                fresh_token(format!("before {}", w.name())).await?;
                fresh_caller(*w).await?;
                let (t, _) =
                    workload::run(ctx.clone(), *w, concurrency, cfg.warmup, seed ^ 0xA5A5).await;
                created += t.created;
                unexpected += t.errors;
                report_errors(&format!("{} warm-up", w.name()), &t);
            }
            fresh_token(format!("before {}", w.name())).await?;
            fresh_caller(*w).await?;
            let (server_cpu0, bench_cpu0) = (
                server::cpu_seconds(server.pid),
                server::cpu_seconds(std::process::id()),
            );
            let (t, elapsed) =
                workload::run(ctx.clone(), *w, concurrency, cfg.duration, seed).await;
            let server_cpu = server::cpu_seconds(server.pid)
                .zip(server_cpu0)
                .map(|(b, a)| b - a);
            let bench_cpu = server::cpu_seconds(std::process::id())
                .zip(bench_cpu0)
                .map(|(b, a)| b - a);
            server
                .check_alive()
                .map_err(|e| Failure::Server(e.to_string()))?;
            created += t.created;
            unexpected += t.errors;
            report_errors(w.name(), &t);
            let s = Sample {
                tally: t,
                elapsed,
                server_cpu,
                bench_cpu,
            };
            eprintln!(
                "passport-bench: [{}/{}] {:<14} {:>8} req  {:>7.0} req/s  p50 {} ms  p99 {} ms  {} errors  {} conflicts{}",
                round + 1,
                cfg.repeat,
                w.name(),
                s.tally.requests,
                s.throughput(),
                report::ms(s.tally.hist.percentile(50.0) as f64),
                report::ms(s.tally.hist.percentile(99.0) as f64),
                s.tally.errors,
                s.tally.conflicts,
                s.tally
                    .mean_entries()
                    .map(|e| format!("  {e:.1} entries/response"))
                    .unwrap_or_default()
            );
            samples.push(s);
        }
    }
    let rss_end = server.rss_kib();
    let stored_server = match auth.refresh().await {
        Ok(()) => workload::server_count(&auth).await,
        Err(e) => {
            eprintln!(
                "passport-bench: could not get a fresh access token for the final count: {e}"
            );
            unexpected += 1;
            None
        }
    };
    let stop_started = std::time::Instant::now();
    let exit = server.stop();
    let shutdown = stop_started.elapsed();
    // After the stop, so that SQLite has checkpointed what it will.
    let db_end = db_bytes(database, pg).await;

    let mut rows = report::rows(&results);
    for r in &mut rows {
        if let Some((_, why)) = unsupported.iter().find(|(w, _)| w.name() == r.name) {
            r.unsupported = Some(why.clone());
        }
    }
    let scale = Scale {
        database: if args.pg || database.starts_with("postgres") {
            "PostgreSQL"
        } else if database.starts_with("sqlite") {
            "SQLite"
        } else {
            "other"
        }
        .to_owned(),
        // The scale a run is compared at: what the load stored (the workloads add more).
        stored: loaded,
    };
    let load_hist = &load_tally.hist;
    let mut meta: Meta = vec![
        (
            "scale",
            format!(
                "{} resources stored by the load, on {}",
                report::thousands(scale.stored),
                scale.database
            ),
        ),
        ("date", utc_now()),
        ("machine", machine()),
        (
            "server",
            format!("{} ({} build)", cfg.server_bin.display(), cfg.profile),
        ),
        ("database", database_label.to_owned()),
        (
            "patients",
            format!(
                "{} children, {} resources loaded",
                report::thousands(ctx.data.patients.len() as u64),
                report::thousands(loaded)
            ),
        ),
        (
            "settings",
            format!(
                "concurrency {} (load {}, sign-in {}), {} s per workload after {} s warm-up, {} repeat(s){}, seed {}",
                cfg.concurrency,
                cfg.load_concurrency,
                cfg.sign_in_concurrency,
                cfg.duration.as_secs_f64(),
                cfg.warmup.as_secs_f64(),
                cfg.repeat,
                if cfg.repeat > 1 { " (medians)" } else { "" },
                cfg.seed
            ),
        ),
        (
            "auth",
            format!(
                "OAuth client_credentials (client {}, regional, scope {}, Basic auth); {} access tokens fetched outside the measurements{}",
                auth.client_id,
                auth::SCOPE,
                auth.tokens_fetched(),
                match (&ctx.accounts.family, &ctx.accounts.staff) {
                    (None, None) => String::new(),
                    _ => "; sign-in accounts made with passport admin create-user".to_owned(),
                }
            ),
        ),
        (
            "region",
            format!(
                "a hospital trust, a GP practice and {} schools (passport admin seed-region); each child's CareTeam names the hospital, the GP and school (child index mod {}); section tags on every resource",
                synth.schools(),
                synth.schools()
            ),
        ),
        (
            "start-up",
            format!(
                "{:.0} ms from spawn to first 200 on /healthz",
                startup.as_secs_f64() * 1000.0
            ),
        ),
        (
            "load",
            format!(
                "{} {via} in {:.1} s = {:.0} resources/s ({:.0} children/s); p50 {} ms, p99 {} ms per request; {} errors",
                report::thousands(load_tally.requests),
                load_time.as_secs_f64(),
                load_rate,
                ctx.data.patients.len() as f64 / load_time.as_secs_f64().max(1e-9),
                report::ms(load_hist.percentile(50.0) as f64),
                report::ms(load_hist.percentile(99.0) as f64),
                load_tally.errors
            ),
        ),
        (
            "server RSS",
            format!(
                "{} after load, {} at end",
                report::mib(rss_after_load),
                report::mib(rss_end)
            ),
        ),
        (
            "database size",
            format!(
                "{} after load, {} after shutdown{}",
                bytes_label(db_after_load),
                bytes_label(db_end),
                if scale.database == "SQLite" {
                    " (file + WAL + shm)"
                } else {
                    " (tables, indexes and TOAST of the run's schema)"
                }
            ),
        ),
        (
            "stored resources",
            match stored_server {
                Some(n) => format!(
                    "{} (server count) / {} (client count)",
                    report::thousands(n),
                    report::thousands(created)
                ),
                None => format!(
                    "{} (client count; server count via _summary=count unavailable)",
                    report::thousands(created)
                ),
            },
        ),
    ];
    meta.push((
        "shutdown",
        match exit {
            Some(s) if s.success() => format!(
                "{:.0} ms from SIGTERM to exit 0",
                shutdown.as_secs_f64() * 1000.0
            ),
            Some(s) => format!(
                "{:.0} ms from SIGTERM to {s} (not a clean exit 0)",
                shutdown.as_secs_f64() * 1000.0
            ),
            None => "exit status unknown".to_owned(),
        },
    ));
    if !caller_line.is_empty() {
        meta.push(("callers", caller_line.clone()));
    }
    let title = format!("passport-bench{}", if args.smoke { " --smoke" } else { "" });
    println!("\n{}", report::text(&meta, &rows));
    if let Some(path) = &args.markdown {
        let notes: Vec<String> = cfg.workloads.iter().map(|w| format!("`{}`: {}", w.name(), w.describe())).chain([
            "\"entries\": mean entries per returned searchset Bundle. \"stored\": resources stored by the load (the scale the run is compared at; the workloads add more).".to_owned(),
            "Every /fhir request carries an OAuth bearer token: the regional client's (client_credentials, passport admin create-client --regional) except in the hospital-*, school-* and family-* workloads, which use a system client of the hospital trust or of a school (create-client --organisation, client_credentials) or a parent's user token (authorization code + PKCE); a fresh token before each workload, not timed. /healthz none.".to_owned(),
            "Every HTTP request is timed and counted on its own (update = GET + PUT; delete-then-recreate = DELETE + PUT). \"vs healthz\" is the workload's req/s over GET /healthz's in the same run. Latencies: nearest-rank percentiles of a log-linear histogram (< 0.8 % error). \"server CPU\" / \"bench CPU\": average cores busy in the server / the load generator during the measured window (same machine).".to_owned(),
        ]).collect();
        let md = report::markdown(&title, &meta, &scale, &rows, &notes);
        std::fs::write(path, md)
            .map_err(|e| Failure::Usage(format!("cannot write {}: {e}", path.display())))?;
        eprintln!("passport-bench: Markdown written to {}", path.display());
    }
    if let Some(path) = &args.json {
        let run = json!({
            "profile": cfg.profile,
            "children": ctx.data.patients.len(),
            "complex_percent": args.complex_percent,
            "load": {
                "via": match args.load_via { LoadVia::Post => "post", LoadVia::Transactions => "transactions" },
                "bundle_size": (args.load_via == LoadVia::Transactions).then_some(args.bundle_size),
                "resources": loaded,
                "requests": load_tally.requests,
                "seconds": load_time.as_secs_f64(),
                "resources_per_s": load_rate,
                "errors": load_tally.errors,
            },
            "startup_ms": startup.as_secs_f64() * 1000.0,
            "rss_after_load_kib": rss_after_load,
            "rss_end_kib": rss_end,
            "db_bytes_after_load": db_after_load,
            "db_bytes_end": db_end,
            "concurrency": cfg.concurrency,
            "sign_in_concurrency": cfg.sign_in_concurrency,
            "duration_s": cfg.duration.as_secs_f64(),
            "repeat": cfg.repeat,
            "seed": cfg.seed,
        });
        let v = report::results_json(&meta, &scale, run, &rows);
        let text = serde_json::to_string_pretty(&v).expect("serialisable");
        std::fs::write(path, text + "\n")
            .map_err(|e| Failure::Usage(format!("cannot write {}: {e}", path.display())))?;
        eprintln!("passport-bench: JSON results written to {}", path.display());
    }
    if stored_server.is_some_and(|n| n != created) {
        eprintln!(
            "passport-bench: note: server counts {} stored resources, client expected {created}",
            stored_server.unwrap_or(0)
        );
    }
    Ok(unexpected == 0)
}

/// The region's organisations, made with the real CLI's `seed-region` (the shared region
/// fixture): a hospital trust, a GP practice and `schools` schools.
/// A clinician of the bench's hospital trust (every child's care team), for the review
/// page: their sign-in and TOTP secret, as `passport admin seed-region` made them.
#[derive(Debug, Clone)]
struct Clinician {
    email: String,
    password: String,
    totp_base32: String,
}

async fn create_region(
    bin: &Path,
    database: &str,
    schools: u64,
) -> Result<(synth::Region, Clinician), String> {
    let tag = std::process::id();
    let org = |key: String, name: String, sector: &str| serde_json::json!({ "key": key, "name": name, "sector": sector });
    let mut orgs = vec![
        org(
            "hospital".into(),
            format!("Bench Hospital NHS Trust {tag}"),
            "hospital-trust",
        ),
        org("gp".into(), format!("Bench Surgery {tag}"), "gp-practice"),
    ];
    for k in 0..schools {
        orgs.push(org(
            format!("school-{k}"),
            format!("Bench School {k} ({tag})"),
            "education",
        ));
    }
    let email = format!("bench-clinician-{tag}@bench.example");
    let spec = serde_json::json!({ "region": "Bench", "organisations": orgs,
        "staff": [{ "org": "hospital", "role": "clinician", "email": email, "name": "Bench Clinician" }] });
    let (made, password) = auth::seed_region(bin, database, &spec).await?;
    let clinician = Clinician {
        totp_base32: made["staff"][&email]["totp_secret"]
            .as_str()
            .ok_or_else(|| format!("`passport admin seed-region` made no clinician: {made}"))?
            .to_owned(),
        email,
        password,
    };
    let id = |key: &str| {
        made["organisations"][key]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("`passport admin seed-region` made no {key}: {made}"))
    };
    let region = synth::Region {
        hospital: id("hospital")?,
        gp: id("gp")?,
        schools: (0..schools)
            .map(|k| id(&format!("school-{k}")))
            .collect::<Result<_, _>>()?,
    };
    Ok((region, clinician))
}

/// Family members: how many, and family `f` is linked to `f + 1` children.
const FAMILIES: usize = 3;
const LOGIN_SYSTEM: &str = "https://passport.nhs.uk/fhir/Id/login";

/// Sets up the callers `workloads` need: system clients acting for the hospital trust and
/// for school 0 (`create-client --organisation`, `client_credentials`), and [`FAMILIES`]
/// parents (`create-user --role family`, their Person linked to 1, 2 and 3 children's
/// RelatedPersons through the FHIR API, a user token by the authorization-code flow).
#[allow(clippy::too_many_arguments)]
async fn set_up_callers(
    bin: &Path,
    database: &str,
    addr: std::net::SocketAddr,
    regional: &auth::Auth,
    region: &synth::Region,
    synth: &Synth,
    data: &workload::Dataset,
    workloads: &[Workload],
) -> Result<workload::Callers, String> {
    use workload::Who;
    // Searches need their caller's token; the passport page needs the parents too.
    let needs = |who: Who| {
        workloads.iter().any(|w| {
            w.who() == who
                && (w.shape().is_some()
                    || matches!(w, Workload::FamilyPassport | Workload::FamilyEmergency))
        })
    };
    let mut callers = workload::Callers::default();
    let tag = std::process::id();
    if needs(Who::Hospital) {
        let name = format!("passport-bench-hospital-{tag}");
        let creds = auth::register_org_client(bin, database, &name, &region.hospital)
            .await
            .map_err(|e| format!("could not register the hospital's client: {e}"))?;
        callers.hospital = Some(
            auth::Auth::obtain_scope(addr, &creds, auth::ORG_SCOPE)
                .await
                .map_err(|e| format!("no token for the hospital's client: {e}"))?,
        );
    }
    if needs(Who::School) {
        let name = format!("passport-bench-school-{tag}");
        let creds = auth::register_org_client(bin, database, &name, &region.schools[0])
            .await
            .map_err(|e| format!("could not register the school's client: {e}"))?;
        callers.school = Some(
            auth::Auth::obtain_scope(addr, &creds, auth::ORG_SCOPE)
                .await
                .map_err(|e| format!("no token for the school's client: {e}"))?,
        );
        for (k, &index) in data.patient_index.iter().enumerate() {
            if synth.school_of(index) == 0 {
                callers.school_children.push(k);
            }
        }
        callers.school_complex = data
            .complex
            .iter()
            .copied()
            .filter(|&k| synth.school_of(data.patient_index[k]) == 0)
            .collect();
        if callers.school_children.is_empty() {
            return Err("school 0 has no loaded child (load more children)".into());
        }
    }
    if needs(Who::Family) {
        let app = auth::register_app(bin, database)
            .await
            .map_err(|e| format!("could not register the bench's SMART app: {e}"))?;
        // Children under 15 (their parents decide: no hand-over yet) with a RelatedPerson.
        let eligible: Vec<usize> = (0..data.patients.len())
            .filter(|&k| {
                data.related[k].is_some() && synth.age_days(data.patient_index[k]) < 15 * 365
            })
            .collect();
        let wanted: usize = (1..=FAMILIES).sum();
        if eligible.len() < wanted {
            return Err(format!(
                "only {} children could be linked to a family (need {wanted})",
                eligible.len()
            ));
        }
        let mut c = http::Client::new(addr);
        let mut next = 0;
        for f in 0..FAMILIES {
            // Spread over the loaded children.
            let children: Vec<usize> = (0..=f)
                .map(|j| eligible[(next + j * eligible.len() / wanted) % eligible.len()])
                .collect();
            next += 1 + f;
            let email = format!("passport-bench-parent{f}-{tag}@bench.example.org");
            let account = auth::create_family(bin, database, &email, &format!("Bench Parent {f}"))
                .await
                .map_err(|e| format!("could not create family member {email}: {e}"))?;
            let rps: Vec<&str> = children
                .iter()
                .filter_map(|&k| data.related[k].as_deref())
                .collect();
            link_person(&mut c, regional, &email, &rps)
                .await
                .map_err(|e| format!("could not link {email} to their children: {e}"))?;
            let flow = auth::UserFlow {
                account,
                client_id: app.clone(),
                aud: format!("http://{addr}/fhir"),
            };
            let auth = auth::Auth::obtain_user(addr, flow)
                .await
                .map_err(|e| format!("no user token for {email}: {e}"))?;
            callers.families.push(workload::Family { auth, children });
        }
    }
    Ok(callers)
}

/// Links the Person of login `email` to the RelatedPersons `rps` (`Person.link[].target`),
/// as the regional client through the FHIR API: search, then PUT with `If-Match`.
async fn link_person(
    c: &mut http::Client,
    regional: &auth::Auth,
    email: &str,
    rps: &[&str],
) -> Result<(), String> {
    let bearer = regional.bearer().await?;
    let mut q = String::new();
    http::percent_encode_into(&mut q, &format!("{LOGIN_SYSTEM}|{email}"));
    let path = format!("/fhir/Person?identifier={q}");
    let r = c
        .send(
            hyper::Method::GET,
            &path,
            &[("accept", http::FHIR_JSON), ("authorization", &bearer)],
            None,
        )
        .await
        .map_err(|e| format!("GET {path}: {e}"))?;
    let b: serde_json::Value = serde_json::from_slice(&r.body)
        .map_err(|e| format!("GET {path}: HTTP {} {e}", r.status))?;
    let mut person = match b["entry"].as_array().map(Vec::as_slice) {
        Some([only]) => only["resource"].clone(),
        _ => {
            return Err(format!(
                "GET {path}: HTTP {}, not exactly one Person",
                r.status
            ));
        }
    };
    let id = person["id"].as_str().unwrap_or_default().to_owned();
    let version = person["meta"]["versionId"]
        .as_str()
        .unwrap_or("1")
        .to_owned();
    person["link"] = rps
        .iter()
        .map(|rp| json!({ "target": { "reference": format!("RelatedPerson/{rp}") } }))
        .collect();
    let path = format!("/fhir/Person/{id}");
    let if_match = format!("W/\"{version}\"");
    let r = c
        .send(
            hyper::Method::PUT,
            &path,
            &[
                ("content-type", http::FHIR_JSON),
                ("accept", http::FHIR_JSON),
                ("if-match", &if_match),
                ("prefer", "return=minimal"),
                ("authorization", &bearer),
            ],
            Some(bytes::Bytes::from(person.to_string())),
        )
        .await
        .map_err(|e| format!("PUT {path}: {e}"))?;
    if !(200..300).contains(&r.status) {
        return Err(format!(
            "PUT {path}: HTTP {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
                .chars()
                .take(300)
                .collect::<String>()
        ));
    }
    Ok(())
}

/// One line on the callers set up, for the report.
fn describe_callers(c: &workload::Callers, synth: &Synth, children: usize) -> String {
    let mut parts = Vec::new();
    if let Some(a) = &c.hospital {
        parts.push(format!(
            "hospital: system client {} (create-client --organisation <hospital trust>, client_credentials, scope {}), in the care team of all {} children",
            a.client_id,
            auth::ORG_SCOPE,
            report::thousands(children as u64)
        ));
    }
    if let Some(a) = &c.school {
        parts.push(format!(
            "school: system client {} (create-client --organisation <school 0 of {}>, client_credentials, scope {}), in the care team of {} children",
            a.client_id,
            synth.schools(),
            auth::ORG_SCOPE,
            report::thousands(c.school_children.len() as u64)
        ));
    }
    if !c.families.is_empty() {
        let sizes: Vec<String> = c
            .families
            .iter()
            .map(|f| f.children.len().to_string())
            .collect();
        parts.push(format!(
            "family: {} parents (create-user --role family; Person.link to their children's RelatedPersons, parental responsibility) with {} children, user tokens (scope {}) by authorization code + PKCE through the sign-in form and the approval page, SMART app {}",
            c.families.len(),
            sizes.join(", "),
            auth::USER_SCOPE,
            c.families[0].auth.client_id
        ));
    }
    parts.join("; ")
}

/// `--compare A B`: prints the latency ratios of two results files (exit 0 when every
/// workload meets the target, 1 when one does not, 2 when a file cannot be read).
fn compare_files(a: &Path, b: &Path, markdown: Option<&Path>) -> ExitCode {
    let read = |p: &Path| -> Result<serde_json::Value, String> {
        let text =
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", p.display()))
    };
    let out = read(a)
        .and_then(|a| Ok((a, read(b)?)))
        .and_then(|(a, b)| report::compare(&a, &b));
    let (text, md, ok) = match out {
        Ok(x) => x,
        Err(e) => {
            eprintln!("passport-bench: --compare: {e}");
            return ExitCode::from(2);
        }
    };
    println!("{text}");
    if let Some(path) = markdown {
        if let Err(e) = std::fs::write(path, md) {
            eprintln!("passport-bench: cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
        eprintln!("passport-bench: Markdown written to {}", path.display());
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        eprintln!("passport-bench: some workload is slower than the target at the larger scale");
        ExitCode::from(1)
    }
}

/// The database's size on disk: the SQLite file with its `-wal` and `-shm`, or the
/// PostgreSQL schema's relations (only for a --pg schema of this run).
async fn db_bytes(database: &str, pg: Option<&PgSchema>) -> Option<u64> {
    if let Some(pg) = pg {
        return pg.size_bytes().await.ok();
    }
    let path = sqlite_path(database)?;
    let mut total = None;
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(m) = std::fs::metadata(format!("{path}{suffix}")) {
            *total.get_or_insert(0) += m.len();
        }
    }
    total
}

/// The file path of a `sqlite://PATH[?…]` (or `sqlite:PATH`) URL.
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then_some(path)
}

fn bytes_label(b: Option<u64>) -> String {
    match b {
        Some(b) if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        Some(b) => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        None => "n/a".into(),
    }
}

fn report_errors(what: &str, t: &Tally) {
    for s in &t.error_samples {
        eprintln!("  {what} error: {s}");
    }
}

fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (d, rem) = ((secs / 86_400) as i64, secs % 86_400);
    format!(
        "{} {:02}:{:02} UTC",
        synth::date_string(d),
        rem / 3600,
        rem % 3600 / 60
    )
}

fn machine() -> String {
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|k| format!(", {:.1} GiB RAM", k as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "rustc unknown".into());
    format!("nproc {nproc} × {cpu}{mem}; {rustc}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_from_path() {
        assert_eq!(
            detect_profile(Path::new("/w/target/release/passport")),
            "release"
        );
        assert_eq!(
            detect_profile(Path::new("/w/target/debug/passport")),
            "debug"
        );
        assert!(detect_profile(Path::new("/usr/bin/passport")).starts_with("unknown"));
    }

    #[test]
    fn redaction() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(
            redact("postgres://postgres@h/db"),
            "postgres://postgres@h/db"
        );
        assert_eq!(redact("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }

    #[test]
    fn sqlite_paths_and_sizes() {
        assert_eq!(sqlite_path("sqlite:///tmp/x.db"), Some("/tmp/x.db"));
        assert_eq!(
            sqlite_path("sqlite:///tmp/x.db?mode=rwc"),
            Some("/tmp/x.db")
        );
        assert_eq!(sqlite_path("sqlite:rel.db"), Some("rel.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://h/db"), None);
        assert_eq!(bytes_label(Some(3 << 20)), "3.0 MiB");
        assert_eq!(bytes_label(Some(3 << 30)), "3.00 GiB");
        assert_eq!(bytes_label(None), "n/a");
    }

    #[test]
    fn scale_flags() {
        let a = Args::try_parse_from([
            "b",
            "--resources",
            "1000000",
            "--load-via",
            "transactions",
            "--bundle-size",
            "500",
            "--json",
            "/tmp/r.json",
        ])
        .unwrap();
        assert_eq!(a.resources, Some(1_000_000));
        assert_eq!(a.load_via, LoadVia::Transactions);
        assert_eq!(a.bundle_size, 500);
        assert!(Args::try_parse_from(["b", "--resources", "5", "--patients", "5"]).is_err());
        assert!(Args::try_parse_from(["b", "--load-via", "carrier-pigeon"]).is_err());
        let c = Args::try_parse_from(["b", "--compare", "a.json", "b.json"]).unwrap();
        assert_eq!(c.compare.unwrap().len(), 2);
        assert!(Args::try_parse_from(["b", "--compare", "a.json"]).is_err());
        let d = Args::try_parse_from(["b"]).unwrap();
        assert_eq!(d.load_via, LoadVia::Post);
        let names: Vec<_> = Workload::ALL.iter().map(|w| w.name()).collect();
        assert_eq!(
            d.workloads, names,
            "every workload runs by default, in order"
        );
    }

    #[test]
    fn flags() {
        assert!(Args::try_parse_from(["b", "--concurrency", "x"]).is_err());
        let a = Args::try_parse_from(["b", "--smoke", "--workloads", "read,healthz"]).unwrap();
        assert_eq!(a.workloads, vec!["read", "healthz"]);
        assert!(a.smoke);
    }
}
