//! `bench`: the load generator of BENCH.md.
//!
//! It starts from a running server's URL and a database URL, makes its own data (users in
//! bulk with SQL, shows through the API), drives the server over real HTTP and WebSocket
//! connections, prints a table and one JSON line per scenario, checks the invariants in the
//! database afterwards and exits with 1 if any is violated (2 if the run itself failed).
//! Every scenario ends by itself, in count and in time. Only local servers are accepted.
//!
//! ```text
//! bench flash-sale --url http://127.0.0.1:18090 --database-url postgres://postgres@127.0.0.1:5432/boxoffice_bench
//! bench abuse --url http://127.0.0.1:18090 --seats 5000 --seconds 20 --database-url ...
//! bench two-instances --url http://127.0.0.1:18090 --url http://127.0.0.1:18091 --database-url ...
//! bench multi-sale --schedules 20 --url http://127.0.0.1:18090 --database-url ...
//! bench soak --minutes 20 --rate 400 --url http://127.0.0.1:18090 --database-url ...
//! ```

mod abuse;
mod client;
mod cpu;
mod faults;
mod receiver;
mod report;
mod sale;
mod scenarios;
mod scrape;
mod server;
mod setup;
mod workers;
mod ws;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};

/// The server's development secret: the default of both the server and the bench.
const DEV_JWT_SECRET: &str = "boxoffice-development-secret-do-not-use-in-production";

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Scenario {
    /// 20,000 seats, 64 clients holding 1-4 random seats per attempt until sold out.
    FlashSale,
    /// Every client wants the same 10 seats (then the next 10), for --seconds (10).
    HotSeats,
    /// Clients reading a whole seat map, for --seconds (10).
    SeatMap,
    /// The seat map over plain HTTP: revalidations (304) for --seconds, then full reads
    /// for --seconds (10 each).
    SeatMapHttp,
    /// --schedules (20) schedules of --seats (2,000) on sale at once, the clients spread
    /// over them.
    MultiSale,
    /// --minutes (20) of mixed traffic at --rate operations/s, with figures every
    /// --window-seconds (60) and pass/fail against issue 28's bounds.
    Soak,
    /// --subscribers WebSocket subscribers of a schedule while a flash sale runs on it.
    FanOut,
    /// --users (50,000) enter the waiting queue; position reads and the admission rate.
    Queue,
    /// A flash sale with the clients split over two --url instances.
    TwoInstances,
    /// A quiet flash sale, then the same while attackers send the costliest accepted
    /// queries and hold stalled connections and silent sockets (--seconds each, 20).
    Abuse,
    /// --seats (20,000) tickets bought, then scanned at --gates (8) with repeats and
    /// forgeries: every ticket admitted once, p99 of a scan, the signature check alone.
    CheckIn,
    /// A sale on two --url instances while one is frozen, the database connections are
    /// killed, PostgreSQL restarts and Redis stops; private services only (scripts/faults).
    Faults,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Self::FlashSale => "flash-sale",
            Self::HotSeats => "hot-seats",
            Self::SeatMap => "seat-map",
            Self::SeatMapHttp => "seat-map-http",
            Self::MultiSale => "multi-sale",
            Self::Soak => "soak",
            Self::FanOut => "fan-out",
            Self::Queue => "queue",
            Self::TwoInstances => "two-instances",
            Self::Abuse => "abuse",
            Self::CheckIn => "check-in",
            Self::Faults => "faults",
        }
    }
}

#[derive(Parser)]
#[command(name = "bench", about = "Load generator for boxoffice (see BENCH.md)")]
struct Args {
    scenario: Scenario,
    /// Server base URL, e.g. http://127.0.0.1:18090 (twice for two-instances). Local only.
    #[arg(long = "url", required = true)]
    urls: Vec<String>,
    /// The server's PostgreSQL database (for bulk users and the invariant checks). Local only.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Seats of the schedule (1..=100000; multi-sale: of each schedule). Default 20,000
    /// (multi-sale: 2,000).
    #[arg(long)]
    seats: Option<usize>,
    /// The server's JWT secret, to mint access tokens.
    #[arg(long, env = "JWT_SECRET", default_value = DEV_JWT_SECRET, hide_env_values = true, hide_default_value = true)]
    jwt_secret: String,
    /// Time limit (flash-sale, fan-out, two-instances: 60 s; hot-seats, seat-map: 10 s;
    /// queue: the position-read and admission-sampling window, 10 s; check-in: 120 s).
    #[arg(long)]
    seconds: Option<u64>,
    /// Users to make (booking scenarios: as many as seats; queue: 50,000).
    #[arg(long)]
    users: Option<usize>,
    /// perUserLimit of the schedule; each attempt asks for 1 to this many seats (1..=10).
    #[arg(long, default_value_t = 4)]
    per_user_limit: u32,
    /// flash-sale, two-instances: clients ask `reserveBestAvailable` for 1 to 4 seats
    /// (at most --per-user-limit) instead of naming random seats.
    #[arg(long)]
    best_available: bool,
    /// fan-out: WebSocket subscribers (5,000); soak: subscribers kept open (500).
    #[arg(long)]
    subscribers: Option<usize>,
    /// multi-sale: schedules on sale at once.
    #[arg(long, default_value_t = 20)]
    schedules: usize,
    /// soak: how long, in minutes (--seconds, if given, wins: for short trial runs).
    #[arg(long, default_value_t = 20)]
    minutes: u64,
    /// soak: operations per second, every kind together (about half of what flash-sale's
    /// attempts/s says the server takes).
    #[arg(long, default_value_t = 300)]
    rate: u32,
    /// soak: the figures' window, in seconds.
    #[arg(long, default_value_t = 60)]
    window_seconds: u64,
    /// fan-out: subscribers whose events are parsed to measure delivery lag.
    #[arg(long, default_value_t = 100)]
    sampled_subscribers: usize,
    /// fan-out: the server's process id, for its memory (found from the port if omitted).
    #[arg(long)]
    server_pid: Option<u32>,
    /// queue: the server's Redis, to sample the admitted count. Local only.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// queue: the server's REDIS_PREFIX.
    #[arg(long, env = "REDIS_PREFIX", default_value = "bo:")]
    redis_prefix: String,
    /// queue: admitPerSecond of the queued schedule.
    #[arg(long, default_value_t = 200)]
    admit_per_second: u32,
    /// flash-sale: a webhook receiver in the bench subscribed to `reservation.held` during
    /// the sale (the server needs WEBHOOK_ALLOW_PRIVATE=true); reports deliveries and lag.
    #[arg(long)]
    webhook: bool,
    /// check-in: gates, each with its own scanner credentials.
    #[arg(long, default_value_t = 8)]
    gates: usize,
    /// check-in: scans per second over all gates (0: as fast as the lanes go). A stadium
    /// entrance takes 11; the p99 target is for a realistic rate, not for saturation.
    #[arg(long, default_value_t = 0)]
    scan_rate: u32,
}

fn main() -> ExitCode {
    // fan-out's subscribers run in child processes of the bench itself.
    if std::env::args().nth(1).as_deref() == Some(workers::COMMAND) {
        return workers::main();
    }
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: starting the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the scenario; true when every invariant held.
async fn run(args: Args) -> anyhow::Result<bool> {
    let endpoints = check_args(&args)?;
    let subscribers = args.subscribers.unwrap_or(match args.scenario {
        Scenario::Soak => 500,
        _ => 5_000,
    });
    let seats = args.seats.unwrap_or(match args.scenario {
        Scenario::MultiSale => scenarios::multi_sale::DEFAULT_SEATS,
        _ => 20_000,
    });
    let gql = client::Gql::new(args.clients.max(subscribers.min(256)))?;
    for e in &endpoints {
        let health = e.replace("/graphql", "/healthz");
        reqwest::get(&health)
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("the server does not answer at {health}"))?;
    }
    let mut ctx = scenarios::Ctx {
        endpoints,
        clients: args.clients,
        seats,
        seconds: args.seconds,
        users: args.users,
        per_user_limit: args.per_user_limit,
        best_available: args.best_available,
        subscribers,
        schedules: args.schedules,
        minutes: args.minutes,
        rate: args.rate,
        window_seconds: args.window_seconds,
        sampled_subscribers: args.sampled_subscribers,
        server_pid: args.server_pid,
        redis_url: args.redis_url.clone(),
        redis_prefix: args.redis_prefix.clone(),
        admit_per_second: args.admit_per_second,
        gates: args.gates,
        scan_rate: args.scan_rate,
        webhook: args.webhook,
        gql,
        db: setup::connect(&args.database_url).await?,
        minter: setup::Minter::new(&args.jwt_secret),
        tag: setup::run_tag(),
    };
    let report = match args.scenario {
        Scenario::FlashSale => scenarios::flash_sale(&mut ctx, "flash-sale").await?,
        Scenario::TwoInstances => scenarios::flash_sale(&mut ctx, "two-instances").await?,
        Scenario::HotSeats => scenarios::hot_seats(&mut ctx).await?,
        Scenario::SeatMap => scenarios::seat_map(&mut ctx).await?,
        Scenario::SeatMapHttp => scenarios::seat_map_http(&mut ctx).await?,
        Scenario::MultiSale => scenarios::multi_sale(&mut ctx).await?,
        Scenario::Soak => scenarios::soak(&mut ctx).await?,
        Scenario::FanOut => scenarios::fan_out(&mut ctx).await?,
        Scenario::Queue => scenarios::queue(&mut ctx).await?,
        Scenario::CheckIn => scenarios::check_in(&mut ctx).await?,
        Scenario::Abuse => abuse::abuse(&mut ctx).await?,
        Scenario::Faults => faults::faults(&mut ctx).await?,
    };
    print!("{}", report.table());
    println!("{}", report.to_json());
    Ok(report.violations.is_empty())
}

/// Validates the options; returns the GraphQL endpoints.
fn check_args(args: &Args) -> anyhow::Result<Vec<String>> {
    let want = match args.scenario {
        // On the HA topology (scripts/ha failover), as many instances as it runs.
        Scenario::Faults if std::env::var_os("FAULTS_HA_COMMANDS").is_some() => args.urls.len().max(2),
        Scenario::TwoInstances | Scenario::Faults => 2,
        _ => 1,
    };
    if args.urls.len() != want {
        anyhow::bail!(
            "{} takes --url {} time(s), got {}",
            args.scenario.name(),
            want,
            args.urls.len()
        );
    }
    if args.clients == 0 || args.clients > 10_000 {
        anyhow::bail!("--clients must be 1 to 10000");
    }
    if args.seats.is_some_and(|s| s == 0 || s > 100_000) {
        anyhow::bail!("--seats must be 1 to 100000");
    }
    if args.schedules == 0 || args.schedules > 1_000 {
        anyhow::bail!("--schedules must be 1 to 1000");
    }
    if args.minutes == 0 || args.minutes > 24 * 60 || args.rate == 0 || args.window_seconds == 0 {
        anyhow::bail!("--minutes must be 1 to 1440, --rate and --window-seconds at least 1");
    }
    if !(1..=10).contains(&args.per_user_limit) {
        anyhow::bail!("--per-user-limit must be 1 to 10");
    }
    if args.seconds == Some(0) || args.seconds.is_some_and(|s| s > 3600) {
        anyhow::bail!("--seconds must be 1 to 3600");
    }
    if args.subscribers.is_some_and(|s| s > 20_000) || args.users.is_some_and(|u| u == 0 || u > 1_000_000) {
        anyhow::bail!("--subscribers at most 20000, --users 1 to 1000000");
    }
    local(&args.database_url, "--database-url", &["postgres", "postgresql"])?;
    local(&args.redis_url, "--redis-url", &["redis"])?;
    let mut endpoints = Vec::new();
    for u in &args.urls {
        let url = local(u, "--url", &["http"])?;
        let base = url.as_str().trim_end_matches('/').trim_end_matches("/graphql");
        endpoints.push(format!("{base}/graphql"));
    }
    Ok(endpoints)
}

/// Parses `raw` and refuses anything but 127.0.0.1 or localhost: the bench floods what
/// it points at, so it may only point at this machine.
fn local(raw: &str, option: &str, schemes: &[&str]) -> anyhow::Result<url::Url> {
    let url = url::Url::parse(raw).with_context(|| format!("{option} is not a URL"))?;
    if !schemes.contains(&url.scheme()) {
        anyhow::bail!("{option} must be a {} URL", schemes.join(" or "));
    }
    match url.host_str() {
        Some("127.0.0.1" | "localhost") => Ok(url),
        other => anyhow::bail!(
            "{option}: only 127.0.0.1 or localhost is allowed, not {}",
            other.unwrap_or("(no host)")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_urls() {
        assert!(local("http://127.0.0.1:18090", "--url", &["http"]).is_ok());
        assert!(local("http://localhost:18090/graphql", "--url", &["http"]).is_ok());
        assert!(local("http://10.0.0.1:18090", "--url", &["http"]).is_err());
        assert!(local("http://example.com", "--url", &["http"]).is_err());
        assert!(local("http://127.0.0.1.example.com", "--url", &["http"]).is_err());
        assert!(local("https://127.0.0.1", "--url", &["http"]).is_err());
        assert!(
            local(
                "postgres://postgres@127.0.0.1:5432/x",
                "--database-url",
                &["postgres"]
            )
            .is_ok()
        );
        assert!(local("postgres://db.internal/x", "--database-url", &["postgres"]).is_err());
    }
}
