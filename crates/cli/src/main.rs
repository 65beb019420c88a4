//! `passport`: the one binary. `serve` runs the service; `migrate` prepares a database.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use passport_server::Config;

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
    /// Load two fictitious demo children (idempotent).
    #[arg(long, env = "PASSPORT_DEMO")]
    demo: bool,
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

async fn migrate(args: DatabaseArgs) -> Result<(), Error> {
    let store = passport_store::Store::open(&args.url).await?;
    store.migrate().await?;
    store.close().await;
    tracing::info!("migrations applied");
    Ok(())
}

async fn serve(args: ServeArgs) -> Result<(), Error> {
    let mut config = Config::new(args.addr, args.database.url);
    if let Some(base) = args.base_url {
        config.base_url = base;
    }
    config.max_body_bytes = args.max_body_bytes;
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.addr))?;
    let state = passport_server::prepare(config).await?;
    if args.demo {
        let added = passport_server::demo::load(&state.store).await?;
        tracing::info!(added, "demo data loaded");
    }
    tracing::info!(addr = %listener.local_addr()?, "passport is serving");
    passport_server::serve(state, listener, shutdown_signal()).await?;
    tracing::info!("stopped cleanly");
    Ok(())
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
