//! The `boxoffice` command: `serve` (default), `migrate`, `export-schema`, `create-admin`,
//! `demo`.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use boxoffice::{app, auth::service::AdminOutcome, config::Config, db, graphql, telemetry};

/// mimalloc instead of glibc's malloc: a GraphQL answer is thousands of small allocations
/// (one boxed future per field and extension), and under load glibc's arenas showed up as
/// a quarter of the server's CPU, much of it waiting on arena locks (README, Performance).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(version, about = "A concert box office served as a GraphQL API")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Create the database if missing and apply pending migrations, then exit.
    Migrate,
    /// Print the GraphQL schema (SDL), or write it to a file.
    ExportSchema {
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Create an admin account. An existing account is refused unless --reset-password is
    /// given, which sets this password, makes it admin and revokes its sessions.
    CreateAdmin {
        #[arg(long)]
        email: String,
        #[arg(long, env = "ADMIN_PASSWORD", hide_env_values = true)]
        password: String,
        /// Take over an existing account: new password, admin role, sessions revoked.
        #[arg(long)]
        reset_password: bool,
    },
    /// Seed a demo (an admin, a host, a fan with points, two concerts on sale now), print
    /// the new accounts' passwords once, then serve. Running it again adds nothing.
    Demo {
        /// Give new demo accounts this password instead of random ones.
        #[arg(long, env = "DEMO_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Seed and exit instead of serving.
        #[arg(long)]
        no_serve: bool,
    },
}

/// No transparent huge pages for this process. mimalloc asks the kernel for 2 MB pages
/// (`madvise`); each one stays resident as a whole while any block in it is in use, so a
/// server under steady traffic crept by 10-20 MB over a 20-minute soak and moved by tens
/// of MB within a minute, where with 4 KB pages it stayed flat and about 25 MB lower
/// (docs/performance.md, "The soak on a fresh server"). The same as mimalloc's own
/// MIMALLOC_ALLOW_THP=0, for every operator; no measured cost on the sale or the fan-out.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("transparent huge pages stay on: {e}");
    }
}

fn main() -> ExitCode {
    no_huge_pages();
    let cli = Cli::parse();
    if let Some(Command::ExportSchema { out }) = &cli.command {
        let sdl = graphql::sdl();
        return match out {
            Some(path) => match std::fs::write(path, sdl) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("writing {}: {e}", path.display());
                    ExitCode::FAILURE
                }
            },
            None => {
                print!("{sdl}");
                ExitCode::SUCCESS
            }
        };
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    telemetry::init_tracing(config.log_json);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command.unwrap_or(Command::Serve), config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "boxoffice stopped");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(config).await,
        Command::Demo { password, no_serve } => {
            // Accounts whose passwords went to a terminal, one of them an admin: not in prod.
            if config.environment == boxoffice::config::Environment::Prod {
                eprintln!("demo: refused with BOXOFFICE_ENV=prod (it makes an admin account)");
                anyhow::bail!("demo refused in prod");
            }
            db::ensure_database(config.database_url()).await?;
            db::run_migrations(config.database_url()).await?;
            let settings = db::PoolSettings {
                size: 1,
                ..config.pool_settings()
            };
            let pool = db::connect_pool(config.database_url(), settings).await?;
            let report = {
                let mut conn = pool.get().await?;
                match boxoffice::demo::seed(
                    &mut conn,
                    boxoffice::in_doubt::Writes::by_hand(&pool),
                    &config.payments,
                    password.as_deref(),
                )
                .await
                {
                    Ok(report) => report,
                    Err(e) => {
                        eprintln!("demo: {e}");
                        return Err(anyhow::anyhow!("{e}"));
                    }
                }
            };
            drop(pool);
            let host = if config.host.is_unspecified() {
                "localhost".to_owned()
            } else {
                config.host.to_string()
            };
            println!("{}", report.render(&format!("http://{host}:{}", config.port)));
            if no_serve { Ok(()) } else { serve(config).await }
        }
        Command::Migrate => {
            db::ensure_database(config.database_url()).await?;
            let n = db::run_migrations(config.database_url()).await?;
            tracing::info!(migrations.applied = n, "migrations up to date");
            Ok(())
        }
        Command::CreateAdmin {
            email,
            password,
            reset_password,
        } => {
            db::ensure_database(config.database_url()).await?;
            db::run_migrations(config.database_url()).await?;
            let settings = db::PoolSettings {
                size: 1,
                ..config.pool_settings()
            };
            let pool = db::connect_pool(config.database_url(), settings).await?;
            let mut conn = pool.get().await?;
            let (user, outcome) =
                match boxoffice::auth::service::create_admin(&mut conn, &email, password, reset_password)
                    .await
                {
                    Ok(done) => done,
                    Err(e) => {
                        // Said to the operator whatever the log level.
                        eprintln!("create-admin: {e}");
                        return Err(anyhow::anyhow!("{e}"));
                    }
                };
            match outcome {
                AdminOutcome::Created => {
                    println!("created admin account {} (id {})", user.email, user.id);
                }
                AdminOutcome::PasswordReset { sessions_revoked } => println!(
                    "existing account {} (id {}) is now admin with the new password; {sessions_revoked} session(s) revoked",
                    user.email, user.id
                ),
            }
            Ok(())
        }
        Command::ExportSchema { .. } => unreachable!("handled before the runtime starts"),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let addr = SocketAddr::new(config.host, config.port);
    let started = std::time::Instant::now();
    let state = app::prepare(config).await?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(
        http.addr = %listener.local_addr()?,
        startup_ms = started.elapsed().as_millis() as u64,
        "boxoffice listening; playground at /playground"
    );
    app::serve(listener, state, app::shutdown_signal()).await?;
    Ok(())
}
