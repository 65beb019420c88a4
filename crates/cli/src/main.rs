//! `passport`: the one binary. `serve` runs the service; `migrate` prepares a database.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use domain::types::Limits;
use passport_server::Config;
use passport_server::listen::ConnectionLimits;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "passport",
    version,
    about = "Passport: a children's and young people's digital health passport (FHIR R4)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve(ServeArgs),
    /// Apply database migrations, then exit.
    Migrate(DatabaseArgs),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The directory: organisations and sign-in accounts.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the audit log: every hash, link and seq, and every signed checkpoint. Exits 0
    /// if intact; otherwise 1, naming the first bad seq.
    Verify(VerifyArgs),
}

#[derive(Args)]
struct VerifyArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    files: AuditFiles,
}

/// Where the audit checkpoints and the signing key are (outside the database).
#[derive(Args)]
struct AuditFiles {
    /// Signed audit checkpoints (JSON lines). Default: audit-checkpoints.jsonl next to a
    /// SQLite database, ./passport-data/ for PostgreSQL.
    #[arg(
        long,
        visible_alias = "checkpoint-file",
        env = "PASSPORT_AUDIT_CHECKPOINT_FILE"
    )]
    audit_checkpoint_file: Option<PathBuf>,
    /// The audit signing key (created on first start, mode 0600). Default:
    /// audit-signing.key beside the checkpoint file.
    #[arg(long, visible_alias = "key-file", env = "PASSPORT_AUDIT_KEY_FILE")]
    audit_key_file: Option<PathBuf>,
}

impl AuditFiles {
    /// (checkpoint file, key file) for `database_url`.
    fn resolve(&self, database_url: &str) -> (PathBuf, PathBuf) {
        let defaults = Config::new(SocketAddr::from(([127, 0, 0, 1], 0)), database_url);
        let (checkpoints, key) = if database_url.starts_with("sqlite:") {
            (defaults.audit_checkpoint_file, defaults.audit_key_file)
        } else {
            (
                PathBuf::from("./passport-data/audit-checkpoints.jsonl"),
                PathBuf::from("./passport-data/audit-signing.key"),
            )
        };
        let checkpoints = self.audit_checkpoint_file.clone().unwrap_or(checkpoints);
        let key = self.audit_key_file.clone().unwrap_or_else(|| {
            match (&self.audit_checkpoint_file, checkpoints.parent()) {
                (Some(_), Some(dir)) => dir.join("audit-signing.key"),
                _ => key,
            }
        });
        (checkpoints, key)
    }
}

#[derive(Args)]
struct DatabaseArgs {
    /// Database: sqlite://PATH (created if missing) or postgres://USER@HOST:PORT/DB.
    #[arg(
        long = "database",
        env = "PASSPORT_DATABASE_URL",
        default_value = "sqlite://./passport-data/passport.db"
    )]
    url: String,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "PASSPORT_ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    #[command(flatten)]
    database: DatabaseArgs,
    /// The public URL of this service (used in Location headers and links; never taken
    /// from the request). Defaults to http://ADDR.
    #[arg(long, env = "PASSPORT_BASE_URL")]
    base_url: Option<String>,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "PASSPORT_MAX_BODY_BYTES", default_value_t = Config::DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Load the synthetic demo region (docs/DEMO.md) once and print its sign-ins.
    #[arg(long, env = "PASSPORT_DEMO")]
    demo: bool,
    #[command(flatten)]
    audit: AuditFiles,
    /// A JSON file listing external OpenID Connect sign-in providers (NHS login, CIS2,
    /// others); see crates/server/src/web/oidc.rs.
    #[arg(long, env = "PASSPORT_OIDC_PROVIDERS")]
    oidc_providers: Option<std::path::PathBuf>,
    /// Outgoing email (verification links): smtps://[USER:PASS@]HOST[:PORT] (TLS) or
    /// smtp://HOST[:PORT]?tls=required (STARTTLS); plain smtp:// only to localhost. Without
    /// it nothing is sent (with --demo, links are printed on stdout).
    #[arg(long, env = "PASSPORT_SMTP_URL", hide_env_values = true)]
    smtp_url: Option<String>,
    /// The From address of every email, like "Passport <no-reply@passport.example.nhs.uk>".
    #[arg(long, env = "PASSPORT_MAIL_FROM")]
    mail_from: Option<String>,
    /// Self-registrations accepted per email address per hour.
    #[arg(long, env = "PASSPORT_REGISTER_LIMIT_PER_ADDRESS", default_value_t = Config::DEFAULT_REGISTER_LIMIT_PER_ADDRESS)]
    register_limit_per_address: u32,
    /// Self-registrations accepted per client IP address (IPv6: per /64) per hour.
    #[arg(long, env = "PASSPORT_REGISTER_LIMIT_PER_IP", default_value_t = Config::DEFAULT_REGISTER_LIMIT_PER_IP)]
    register_limit_per_ip: u32,
    #[command(flatten)]
    limits: LimitArgs,
}

/// What one request may cost (docs/SECURITY.md, "Limits"; the README's configuration
/// table lists them).
#[derive(Args)]
struct LimitArgs {
    /// The longest one database statement may run, in seconds, before it is cancelled
    /// (the request gets 503 with Retry-After).
    #[arg(long, env = "PASSPORT_STATEMENT_TIMEOUT", default_value_t = Limits::DEFAULT_STATEMENT_TIMEOUT.as_secs_f64(), value_parser = seconds)]
    statement_timeout: f64,
    /// PostgreSQL connections in the pool.
    #[arg(long, env = "PASSPORT_DB_POOL_SIZE", default_value_t = Limits::DEFAULT_POOL_SIZE)]
    db_pool_size: usize,
    /// Of those, how many the FHIR API may never take (kept for the pages and /readyz).
    #[arg(long, env = "PASSPORT_DB_POOL_RESERVED", default_value_t = Limits::DEFAULT_POOL_RESERVED)]
    db_pool_reserved: usize,
    /// The longest a request waits for a database connection, in seconds (then 503 with
    /// Retry-After).
    #[arg(long, env = "PASSPORT_DB_POOL_WAIT", default_value_t = Limits::DEFAULT_POOL_WAIT.as_secs_f64(), value_parser = seconds)]
    db_pool_wait: f64,
    /// Search parameters (each _sort key and _include counted too) in one search.
    #[arg(long, env = "PASSPORT_MAX_SEARCH_CRITERIA", default_value_t = Config::DEFAULT_MAX_SEARCH_CRITERIA)]
    max_search_criteria: usize,
    /// Values (comma-separated alternatives) of one search parameter.
    #[arg(long, env = "PASSPORT_MAX_SEARCH_VALUES", default_value_t = Config::DEFAULT_MAX_SEARCH_VALUES)]
    max_search_values: usize,
    /// The largest one resource may be, in bytes of JSON (larger: 413).
    #[arg(long, env = "PASSPORT_MAX_RESOURCE_BYTES", default_value_t = Config::DEFAULT_MAX_RESOURCE_BYTES)]
    max_resource_bytes: usize,
    /// The most bytes of resources one page of a search, history or $everything holds;
    /// past it the page ends early and its next link goes on from there.
    #[arg(long, env = "PASSPORT_MAX_BUNDLE_BYTES", default_value_t = Config::DEFAULT_MAX_BUNDLE_BYTES)]
    max_bundle_bytes: usize,
    /// The longest a request's headers may take to arrive, in seconds (also the grace
    /// before a body's rate is checked); slower, the connection is closed.
    #[arg(long, env = "PASSPORT_HEADER_TIMEOUT", default_value_t = ConnectionLimits::DEFAULT_HEADER_TIMEOUT.as_secs_f64(), value_parser = seconds)]
    header_timeout: f64,
    /// A connection with no request in progress is closed after this many seconds without
    /// traffic.
    #[arg(long, env = "PASSPORT_IDLE_TIMEOUT", default_value_t = ConnectionLimits::DEFAULT_IDLE_TIMEOUT.as_secs_f64(), value_parser = seconds)]
    idle_timeout: f64,
    /// The slowest a request body may arrive, on average, in bytes a second.
    #[arg(long, env = "PASSPORT_MIN_BODY_RATE", default_value_t = ConnectionLimits::DEFAULT_MIN_BODY_RATE)]
    min_body_rate: u64,
    /// Connections open at once (default: three quarters of the open-file limit, at most
    /// 10000); at the cap the oldest idle one is closed, or the new one gets 503.
    #[arg(long, env = "PASSPORT_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
}

impl LimitArgs {
    fn apply(&self, config: &mut Config) {
        config.db = Limits {
            statement_timeout: Duration::from_secs_f64(self.statement_timeout),
            pool_size: self.db_pool_size,
            pool_reserved: self.db_pool_reserved,
            pool_wait: Duration::from_secs_f64(self.db_pool_wait),
        };
        config.max_search_criteria = self.max_search_criteria;
        config.max_search_values = self.max_search_values;
        config.max_resource_bytes = self.max_resource_bytes;
        config.max_bundle_bytes = self.max_bundle_bytes;
        config.connections = ConnectionLimits {
            header_timeout: Duration::from_secs_f64(self.header_timeout),
            idle_timeout: Duration::from_secs_f64(self.idle_timeout),
            min_body_rate: self.min_body_rate.max(1),
            max_connections: self
                .max_connections
                .unwrap_or_else(ConnectionLimits::default_max_connections)
                .max(1),
        };
    }
}

/// A number of seconds: positive, finite, at most a day.
fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!(
            "expected a number of seconds between 0 and 86400, not {s:?}"
        )),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PASSPORT_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Migrate(args) => migrate(args).await,
            Command::Audit(AuditCommand::Verify(args)) => audit_verify(args).await,
            Command::Admin(cmd) => admin::run(cmd).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("passport: {e}");
            ExitCode::FAILURE
        }
    }
}

type Error = Box<dyn std::error::Error + Send + Sync>;

mod admin;
mod admin_oauth;

async fn migrate(args: DatabaseArgs) -> Result<(), Error> {
    domain::Domain::migrate(&args.url).await?;
    tracing::info!("migrations applied");
    Ok(())
}

/// `passport audit verify`: prints a summary and succeeds, or fails naming the first bad seq.
async fn audit_verify(args: VerifyArgs) -> Result<(), Error> {
    use domain::types::audit;
    let (checkpoint_file, key_file) = args.files.resolve(&args.database.url);
    let checkpoints = audit::read_checkpoints(&checkpoint_file)?;
    let key = if key_file.exists() {
        Some(audit::AuditKey::load(&key_file)?)
    } else {
        if !checkpoints.is_empty() {
            eprintln!(
                "passport: warning: no key file at {}; checkpoints are checked against the key they name",
                key_file.display()
            );
        }
        None
    };
    if checkpoints.is_empty() {
        eprintln!(
            "passport: warning: no checkpoints in {}; a recomputed chain or a cut tail cannot be detected",
            checkpoint_file.display()
        );
    }
    let result = domain::Domain::verify_audit(&args.database.url, &checkpoints, key.as_ref()).await;
    match result {
        Ok(v) => {
            println!(
                "audit log intact: {} records{}; {} checkpoints verified{}",
                v.records,
                v.head
                    .map(|h| format!(", head seq {} hash {}", h.seq, audit::hex(&h.hash)))
                    .unwrap_or_default(),
                v.checkpoints,
                v.checkpointed_seq
                    .map(|s| format!(" (latest covers seq {s})"))
                    .unwrap_or_default()
            );
            Ok(())
        }
        Err(Ok(tampered)) => Err(tampered.to_string().into()),
        Err(Err(e)) => Err(format!("cannot read the audit log: {e}").into()),
    }
}

async fn serve(args: ServeArgs) -> Result<(), Error> {
    let (checkpoint_file, key_file) = args.audit.resolve(&args.database.url);
    let mut config = Config::new(args.addr, args.database.url);
    config.audit_checkpoint_file = checkpoint_file;
    config.audit_key_file = key_file;
    if let Some(base) = args.base_url {
        config.base_url = base;
    }
    config.max_body_bytes = args.max_body_bytes;
    if let Some(path) = &args.oidc_providers {
        config.oidc_providers = passport_server::web::oidc::load_providers(path)?;
    }
    config.demo = args.demo;
    config.smtp_url = args.smtp_url;
    config.mail_from = args.mail_from;
    config.register_limit_per_address = args.register_limit_per_address;
    config.register_limit_per_ip = args.register_limit_per_ip;
    args.limits.apply(&mut config);
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.addr))?;
    let state = passport_server::prepare(config).await?;
    if args.demo {
        match passport_server::demo::load(&state.domain).await? {
            // Synthetic sign-ins (docs/DEMO.md), printed on stdout, never in the log.
            passport_server::demo::Loaded::Made { sign_ins, notes } => {
                tracing::info!("demo region loaded; its sign-ins are printed on stdout");
                print_demo(&sign_ins, &notes);
            }
            passport_server::demo::Loaded::AlreadyThere => {
                tracing::info!("demo region already loaded");
                print_demo(&passport_server::demo::sign_ins(), &[]);
            }
        }
    }
    tracing::info!(addr = %listener.local_addr()?, "passport is serving");
    passport_server::serve(state, listener, shutdown_signal()).await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// The demo sign-ins (docs/DEMO.md's table), on stdout.
fn print_demo(sign_ins: &[passport_server::demo::SignIn], notes: &[String]) {
    println!("PASSPORT DEMO (synthetic data; these sign-ins work only with --demo; docs/DEMO.md):");
    for s in sign_ins {
        let at = if s.organisation.is_empty() {
            s.sector.clone()
        } else {
            format!("{}, {}", s.organisation, s.sector)
        };
        print!("  {} ({at}): {} / {}", s.role, s.username, s.password);
        match &s.totp {
            Some(t) => println!(" / TOTP secret {t}"),
            None => println!(),
        }
    }
    for n in notes {
        println!("  {n}");
    }
}

/// Resolves on SIGTERM or ctrl-c.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
