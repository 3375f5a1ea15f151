//! Configuration, read once from the environment at start.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `BOXOFFICE_ENV` | `dev` | `dev` or `prod`; `prod` refuses the default JWT secret |
//! | `HOST` | `127.0.0.1` | address to listen on |
//! | `PORT` | `8080` | port to listen on |
//! | `DATABASE_URL` | `postgres://postgres@127.0.0.1:5432/boxoffice` | PostgreSQL; the database is created if missing. Several hosts (`postgres://u@h1:5432,h2:5432/db?target_session_attrs=read-write&connect_timeout=2`) follow a failover: new connections go to whichever takes writes |
//! | `DATABASE_POOL_SIZE` | `16` | connections in the pool |
//! | `DATABASE_LOCK_TIMEOUT_MS` | `3000` | longest wait for a row lock (`lock_timeout`); the request then answers UNAVAILABLE |
//! | `DATABASE_STATEMENT_TIMEOUT_MS` | `30000` | longest statement (`statement_timeout`) |
//! | `DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS` | `5000` | a session idle inside a transaction this long is ended by PostgreSQL, releasing its locks (a frozen instance) |
//! | `DATABASE_TCP_KEEPALIVE_SECONDS` | `10` | TCP keepalive idle time on database connections (a partitioned peer is noticed) |
//! | `REDIS_URL` | unset | Redis, e.g. `redis://127.0.0.1:6379`. Unset: one instance only, live updates through an in-process broker, login limits in memory, no waiting queue and no `placeOrder` |
//! | `REDIS_CLUSTER_URLS` | unset | a Redis Cluster instead of one node: some of its nodes, comma-separated (`redis://h1:6379,redis://h2:6379`); the client learns the rest. Not together with `REDIS_URL` |
//! | `REDIS_WAIT_REPLICAS` | `1` on a cluster, `0` on one node | replicas an accepted order (`placeOrder`) and a queue place (`enterQueue`) must reach (Redis `WAIT`) before they are answered; not reached in time: `UNAVAILABLE`, and the order is withdrawn |
//! | `REDIS_WAIT_TIMEOUT_MS` | `500` | how long such a write waits for its replicas |
//! | `REDIS_CLOCK_SKEW_MS` | `250` | how far Redis's clock may run behind an instance's: a `placeOrder` or `enterQueue` whose reply Redis did not give in time is answered `UNAVAILABLE` only this long after its deadline, which Redis enforces by its own clock |
//! | `REDIS_CHECK_INTERVAL_SECONDS` | `10` | how often the server checks that Redis still keeps an append-only file (also at start and on every `/readyz`) |
//! | `REDIS_ACCEPT_VOLATILE` | `false` | in prod, start even though Redis keeps no append-only file (accepted orders and queue admissions are lost if Redis restarts); without it, an append-only file switched off while the server runs makes `placeOrder` and `enterQueue` answer `UNAVAILABLE` until it is back |
//! | `REDIS_PREFIX` | `bo:` | prefix of every Redis key (lets several deployments or tests share one Redis) |
//! | `JWT_SECRET` | a fixed dev secret | HMAC secret for access tokens, at least 32 bytes |
//! | `ACCESS_TOKEN_TTL_SECONDS` | `900` | access token lifetime |
//! | `REFRESH_TOKEN_TTL_SECONDS` | `2592000` | refresh token lifetime (30 days) |
//! | `CLAIM_TOKEN_TTL_SECONDS` | `604800` | how long the claim link of an invited account (a complimentary ticket's guest) stays usable (7 days) |
//! | `LOGIN_MAX_FAILURES` | `5` | login attempts per (account, client address) per window before RATE_LIMITED; each further lock of the pair lasts twice as long (up to a day) |
//! | `LOGIN_MAX_FAILURES_PER_IP` | `300` | failed logins per client address (IPv6 by /64) per window: a backstop against spraying many accounts, sized for an address shared by thousands (carrier-grade NAT); the per-account limit above is the primary one |
//! | `LOGIN_WINDOW_SECONDS` | `900` | the rate-limit window |
//! | `TRUST_FORWARDED_FOR` | `false` | take the client address from `X-Forwarded-For` (only behind a trusted proxy) |
//! | `FORWARDED_FOR_HOPS` | `1` | with `TRUST_FORWARDED_FOR`: how many proxies of yours append to `X-Forwarded-For` (a load balancer: 1; a CDN in front of it: 2); the client address is that many entries from the right |
//! | `GRAPHQL_PLAYGROUND` | `true` in dev, `false` in prod | serve GraphiQL at `/playground` (browser GETs of `/graphql` are sent there) |
//! | `GRAPHQL_INTROSPECTION` | `true` in dev, `false` in prod | allow introspection queries |
//! | `CORS_ALLOWED_ORIGINS` | empty | browser origins (`https://app.example.com`, comma-separated, or `*`) that may call the API from another origin; empty: none |
//! | `BOOKING_ANSWER_TIMEOUT_MS` | `15000` | a hold request whose batch has not started after this long is withdrawn and answered UNAVAILABLE (one already in a running batch gets that batch's real outcome) |
//! | `BOOKING_REPLY_TIMEOUT_MS` | `5000` | the longest a write's transaction (a hold batch, a payment, a cancellation, a refund, a top-up, a scan at the door, an edit) waits for PostgreSQL's replies before this instance gives up on the connection (a partition holding the bytes, which the server's own timeouts never see): given up before its COMMIT, the write answers UNAVAILABLE and nothing is written; at its COMMIT, the outcome is looked up first. Longer than `DATABASE_LOCK_TIMEOUT_MS` |
//! | `BULK_WRITE_REPLY_TIMEOUT_MS` | `60000` | the same for a host's or an admin's write over a whole show (cancelling a schedule or a concert, generating a layout, repricing a grade), which may take longer than one booking. Longer than `DATABASE_LOCK_TIMEOUT_MS` |
//! | `BOOKING_FORWARD_MIN_PER_SECOND` | `50` | with Redis, a schedule this busy on an instance (hold requests per second) is booked by one leading instance, the others forwarding their requests to it; below it each instance batches its own |
//! | `HOLD_SWEEP_INTERVAL_MS` | `1000` | how often expired holds are released |
//! | `QUEUE_ABANDON_SECONDS` | `30` | a waiting user silent this long (no poll, no subscription) drops out |
//! | `ORDER_WORKERS` | `2` | order stream consumers per instance (0: this instance takes no orders) |
//! | `ORDER_CLAIM_IDLE_MS` | `30000` | an order unacknowledged this long is taken over by another worker |
//! | `ORDER_RESULT_TTL_SECONDS` | `86400` | how long order outcomes stay readable |
//! | `LOG_FORMAT` | `text` | `text` or `json` |
//! | *the edge (bounded cost per request and connection, see `EdgeConfig`)* | | |
//! | `GRAPHQL_MAX_DOCUMENT_BYTES` | `16384` | longest query document |
//! | `GRAPHQL_MAX_SELECTIONS` | `2000` | selections of a document with its fragments expanded |
//! | `GRAPHQL_MAX_ROOT_FIELDS` | `10` | root fields per operation (aliases count) |
//! | `GRAPHQL_MAX_COST` | `50000` | estimated cost of an operation (`limits::cost`) |
//! | `GRAPHQL_MAX_SEATS_READ` | `100000` | seats one request may read through seat maps |
//! | `GRAPHQL_QUERY_TIMEOUT_MS` | `10000` | execution deadline of a query |
//! | `GRAPHQL_MAX_RESPONSE_BYTES` | `16777216` | largest response `data` |
//! | `GRAPHQL_HEAVY_COST` | `2000` | a query costing more is heavy |
//! | `GRAPHQL_HEAVY_CONCURRENCY` | `1` | heavy queries running at once per instance (the others wait, within their deadline) |
//! | `GRAPHQL_HEAVY_SHARE_PERCENT` | `25` | share of one worker's time each of those permits may spend on costly queries (1-100): after each, the permit rests in proportion to what it took beyond 50 ms |
//! | `HTTP_HEADER_TIMEOUT_SECONDS` | `10` | time to send a request's headers; also the idle keep-alive timeout |
//! | `HTTP_BODY_TIMEOUT_SECONDS` | `10` | time to send a request's body |
//! | `HTTP_MAX_CONNECTIONS` | `10000` | open HTTP connections (WebSockets not counted) |
//! | `ANONYMOUS_RATE_PER_SECOND` | `100` | GraphQL requests per second without a valid token, per client address (IPv6 by /64): a backstop sized for a shared address |
//! | `ANONYMOUS_RATE_BURST` | `300` | the burst allowed above that rate |
//! | `WS_INIT_TIMEOUT_SECONDS` | `10` | time to send `connection_init` (then close 4408) |
//! | `WS_MAX_SUBSCRIPTIONS_PER_SOCKET` | `20` | operations running on one socket |
//! | `WS_MAX_SOCKETS_PER_USER` | `10` | sockets of one account on one instance |
//! | `WS_MAX_SOCKETS` | `18000` | open WebSockets per instance |
//! | `SIGNUP_MAX_PER_IP` | `120` | sign-ups per client address (IPv6 by /64) per window: a backstop sized for an address shared by thousands of fans (carrier-grade NAT, a campus) |
//! | `SIGNUP_WINDOW_SECONDS` | `60` | the sign-up window |
//! | `BOOKING_RATE_PER_SECOND` | `5` | reserveSeats / placeOrder / reserveBestAvailable per account per second (per instance) |
//! | `BOOKING_RATE_BURST` | `20` | the burst allowed above that rate |
//! | `METRICS_TOKEN` | unset | when set, `/metrics` needs `Authorization: Bearer <token>`; in prod without it `/metrics` is off |
//! | `ALLOW_DEV_SECRET_ON_NETWORK` | `false` | let a server using the development JWT secret listen beyond loopback (never in prod) |
//! | `RUST_LOG` | `info` | tracing filter |
//! | *money (see `PaymentsConfig`)* | | |
//! | `PAYMENT_PROVIDER` | `sandbox` in dev, `none` in prod | where top-ups are paid: `toss` (Toss Payments), `sandbox` (confirms at once, capped, labelled sandbox) or `none` (top-ups refused) |
//! | `PAYMENTS_SANDBOX_IN_PROD` | `false` | let a prod server start with `PAYMENT_PROVIDER=sandbox` (free points for anyone, within the daily cap) |
//! | `PAYMENT_TOSS_SECRET_KEY` | unset | Toss Payments secret key (`test_sk_…` or `live_sk_…`); required with `toss` |
//! | `PAYMENT_TOSS_CLIENT_KEY` | unset | Toss Payments client key (`test_ck_…`/`live_ck_…`) the web app's payment window is opened with; required with `toss` |
//! | `PAYMENT_TOSS_API_URL` | `https://api.tosspayments.com` | Toss Payments API base URL |
//! | `PAYMENT_TIMEOUT_MS` | `10000` | longest wait for the provider; after it a top-up stays PENDING and is settled later |
//! | `PAYMENT_RECONCILE_INTERVAL_SECONDS` | `60` | how often PENDING top-ups and unfinished refunds are looked up at the provider |
//! | `PAYMENT_PENDING_EXPIRY_SECONDS` | `3600` | a PENDING top-up the provider still knows nothing of after this long is FAILED |
//! | `POINTS_SANDBOX_DAILY_LIMIT` | `1000000` | sandbox top-ups per account per 24 hours, in points |
//! | `POINTS_MAX_TOP_UP` | `10000000` | largest single top-up or admin grant |
//! | *tickets and the door (see `TicketsConfig`)* | | |
//! | `EXPORT_URL_SECRET` | derived from `JWT_SECRET` | HMAC key of export download links (at least 32 bytes; shared by every instance) |
//! | `EXPORT_URL_TTL_SECONDS` | `300` | how long an export link works (10 to 86400) |
//! | `EXPORT_CONCURRENCY` | `4` | CSV downloads streaming at once per instance (1 to 64) |
//! | `TICKET_SIGNING_KEY` | unset: prod refuses to start; dev makes a key and logs it | the Ed25519 key that signs ticket codes, `<key id>:<32-byte seed in base64url>`; a new key needs a new key id (docs/tickets.md) |
//! | `TICKET_DOORS_OPEN_MINUTES` | `120` | how long before a performance starts its tickets are admitted (NOT_YET before) |
//! | `TICKET_VALID_MINUTES` | `240` | how long after a performance starts its tickets are admitted (ENDED after); an old signing key verifies until then |
//! | `POINTS_MAX_BALANCE` | `1000000000` | most an account may hold, counting its paid tickets (they come back as points on a refund); at most 2000000000, so a balance always fits a GraphQL `Int` |
//! | *events out (see `EventsConfig`)* | | |
//! | `WEBHOOK_ALLOW_PRIVATE` | `false` | `true` lets webhooks call private, loopback, link-local and other non-public addresses (receivers on your own network; the test suite). Otherwise a URL whose host resolves to one is refused when created and again at every connection ([Events and webhooks](api.md#events-and-webhooks)) |
//! | `WEBHOOK_TIMEOUT_MS` | `15000` | longest webhook delivery attempt (connect, send, read at most 4 KiB of the answer); 1 to 60000 |
//! | `WEBHOOK_RETRY_FIRST_MS` | `5000` | wait before a failed delivery's first retry; each next wait is four times longer (with jitter), up to four hours, the last attempt a day after the event, then the webhook is disabled |
//! | `OUTBOX_RETENTION_HOURS` | `168` | relayed events, their deliveries and attempts are kept this long, then pruned (at least 25: deliveries are retried for a day) |
//! | `RELAY_LEASE_MS` | `10000` | the relay's lease in PostgreSQL: one instance relays at a time, and another takes over this long after it dies (at least three times `RELAY_POLL_MS`) |
//! | `RELAY_POLL_MS` | `250` | the relay's wait when it found nothing to do (events reach webhooks and the stream within about this long) |
//! | `RELAY_CONCURRENCY` | `16` | webhook deliveries in flight at once (one slow receiver takes one of them) |
//! | `EVENTS_SOURCE` | `/boxoffice` | the CloudEvents `source` of every event (a URI reference naming this deployment) |
//! | `EVENTS_STREAM_MAX_LEN` | `100000` | entries the Redis stream `events` keeps, about (`XADD MAXLEN ~`) |

use std::{net::IpAddr, time::Duration};

use secrecy::{ExposeSecret, SecretString};

pub use boxoffice_store::db::DatabaseTimeouts;

mod edge;
mod events;
mod exports;
mod limits;
mod money;
mod tickets;
use boxoffice_store::db::PoolSettings;
pub use edge::{AllowedOrigins, EdgeConfig};
pub use events::EventsConfig;
pub use exports::ExportsConfig;
pub use limits::Limits;
pub use money::{MAX_BALANCE_CEILING, PaymentProviderConfig, PaymentsConfig};
pub use tickets::TicketsConfig;

/// The development secret. Using it in production is refused at start.
const DEV_JWT_SECRET: &str = "boxoffice-development-secret-do-not-use-in-production";

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Environment {
    Dev,
    Prod,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub environment: Environment,
    pub host: IpAddr,
    pub port: u16,
    pub database_url: SecretString,
    pub database_pool_size: u32,
    pub database_timeouts: DatabaseTimeouts,
    pub redis_url: Option<SecretString>,
    pub redis_cluster_urls: Option<SecretString>,
    pub redis_prefix: String,
    /// Replicas a replicated write waits for; `None`: 1 on a cluster, 0 on one node.
    pub redis_wait_replicas: Option<u32>,
    pub redis_wait_timeout: Duration,
    pub redis_accept_volatile: bool,
    pub redis_clock_skew: Duration,
    pub redis_check_interval: Duration,
    pub jwt_secret: SecretString,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// How long an invited account's claim link works (`auth::claim`).
    pub claim_token_ttl: Duration,
    pub login_max_failures: u32,
    pub login_max_failures_per_ip: u32,
    pub login_window: Duration,
    pub trust_forwarded_for: bool,
    /// Proxies of ours that append to `X-Forwarded-For` (`FORWARDED_FOR_HOPS`, at least 1).
    pub forwarded_for_hops: usize,
    pub playground: bool,
    pub introspection: bool,
    pub booking_answer_timeout: Duration,
    pub booking_reply_timeout: Duration,
    pub bulk_write_reply_timeout: Duration,
    pub booking_forward_min_per_second: u64,
    pub cors_allowed_origins: AllowedOrigins,
    pub hold_sweep_interval: Duration,
    pub queue_abandon: Duration,
    pub order_workers: u32,
    pub order_claim_idle: Duration,
    pub order_result_ttl: Duration,
    pub log_json: bool,
    /// What one request or connection may cost.
    pub edge: EdgeConfig,
    /// How money enters: the payment provider and the bounds on amounts.
    pub payments: PaymentsConfig,
    /// Ticket signing and the door times.
    pub tickets: TicketsConfig,
    /// Events out: the relay, webhook deliveries and the outbox's retention.
    pub events: EventsConfig,
    /// CSV exports: the key of their signed URLs and how long one lives.
    pub exports: ExportsConfig,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

impl Config {
    /// Whether Redis must keep an append-only file (the durability contract): in prod,
    /// unless volatile orders are accepted explicitly. Checked at start and while running.
    pub fn redis_aof_required(&self) -> bool {
        self.environment == Environment::Prod && !self.redis_accept_volatile
    }

    /// How the database pool is sized and its sessions bounded.
    pub fn pool_settings(&self) -> PoolSettings<'_> {
        PoolSettings {
            size: self.database_pool_size,
            timeouts: &self.database_timeouts,
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`, so tests can configure without touching the
    /// process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |var: &'static str| lookup(var).filter(|v| !v.trim().is_empty());
        let environment = match get("BOXOFFICE_ENV").as_deref() {
            None | Some("dev") | Some("development") => Environment::Dev,
            Some("prod") | Some("production") => Environment::Prod,
            Some(other) => {
                return Err(err(
                    "BOXOFFICE_ENV",
                    format!("expected dev or prod, got {other:?}"),
                ));
            }
        };
        let jwt_secret = get("JWT_SECRET").unwrap_or_else(|| DEV_JWT_SECRET.to_owned());
        if environment == Environment::Prod && jwt_secret == DEV_JWT_SECRET {
            return Err(err(
                "JWT_SECRET",
                "must be set to a secret of your own in production",
            ));
        }
        if jwt_secret.len() < 32 {
            return Err(err("JWT_SECRET", "must be at least 32 bytes long"));
        }
        let exports = ExportsConfig::from_lookup(&get, &jwt_secret)?;
        let config = Self {
            environment,
            host: parse(&get, "HOST", "127.0.0.1".parse().ok())?,
            port: parse(&get, "PORT", Some(8080))?,
            database_url: get("DATABASE_URL")
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/boxoffice".to_owned())
                .into(),
            database_pool_size: parse(&get, "DATABASE_POOL_SIZE", Some(16))?,
            database_timeouts: DatabaseTimeouts {
                lock: Duration::from_millis(parse(&get, "DATABASE_LOCK_TIMEOUT_MS", Some(3000))?),
                statement: Duration::from_millis(parse(&get, "DATABASE_STATEMENT_TIMEOUT_MS", Some(30_000))?),
                idle_in_transaction: Duration::from_millis(parse(
                    &get,
                    "DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS",
                    Some(5000),
                )?),
                keepalive_idle: Duration::from_secs(parse(&get, "DATABASE_TCP_KEEPALIVE_SECONDS", Some(10))?),
            },
            redis_url: get("REDIS_URL").map(SecretString::from),
            redis_cluster_urls: match (get("REDIS_URL"), get("REDIS_CLUSTER_URLS")) {
                (Some(_), Some(_)) => {
                    return Err(err(
                        "REDIS_CLUSTER_URLS",
                        "set either REDIS_URL (one node) or REDIS_CLUSTER_URLS, not both",
                    ));
                }
                (_, urls) => urls.map(SecretString::from),
            },
            redis_prefix: get("REDIS_PREFIX").unwrap_or_else(|| "bo:".to_owned()),
            redis_wait_replicas: match get("REDIS_WAIT_REPLICAS") {
                Some(_) => Some(parse(&get, "REDIS_WAIT_REPLICAS", None)?),
                None => None,
            },
            redis_wait_timeout: Duration::from_millis(parse(&get, "REDIS_WAIT_TIMEOUT_MS", Some(500))?),
            redis_accept_volatile: parse(&get, "REDIS_ACCEPT_VOLATILE", Some(false))?,
            redis_clock_skew: Duration::from_millis(parse(&get, "REDIS_CLOCK_SKEW_MS", Some(250))?),
            redis_check_interval: Duration::from_secs(
                parse::<u64>(&get, "REDIS_CHECK_INTERVAL_SECONDS", Some(10))?.max(1),
            ),
            jwt_secret: jwt_secret.into(),
            access_token_ttl: Duration::from_secs(parse(&get, "ACCESS_TOKEN_TTL_SECONDS", Some(900))?),
            refresh_token_ttl: Duration::from_secs(parse(
                &get,
                "REFRESH_TOKEN_TTL_SECONDS",
                Some(30 * 24 * 3600),
            )?),
            claim_token_ttl: Duration::from_secs(parse(
                &get,
                "CLAIM_TOKEN_TTL_SECONDS",
                Some(7 * 24 * 3600),
            )?),
            login_max_failures: parse(&get, "LOGIN_MAX_FAILURES", Some(5))?,
            login_max_failures_per_ip: parse(&get, "LOGIN_MAX_FAILURES_PER_IP", Some(300))?,
            login_window: Duration::from_secs(parse(&get, "LOGIN_WINDOW_SECONDS", Some(900))?),
            trust_forwarded_for: parse(&get, "TRUST_FORWARDED_FOR", Some(false))?,
            forwarded_for_hops: parse(&get, "FORWARDED_FOR_HOPS", Some(1))?,
            playground: parse(&get, "GRAPHQL_PLAYGROUND", Some(environment == Environment::Dev))?,
            introspection: parse(
                &get,
                "GRAPHQL_INTROSPECTION",
                Some(environment == Environment::Dev),
            )?,
            cors_allowed_origins: AllowedOrigins::parse(get("CORS_ALLOWED_ORIGINS").as_deref())
                .map_err(|m| err("CORS_ALLOWED_ORIGINS", m))?,
            booking_answer_timeout: Duration::from_millis(parse(
                &get,
                "BOOKING_ANSWER_TIMEOUT_MS",
                Some(15_000),
            )?),
            booking_reply_timeout: Duration::from_millis(parse(
                &get,
                "BOOKING_REPLY_TIMEOUT_MS",
                Some(5000),
            )?),
            bulk_write_reply_timeout: Duration::from_millis(parse(
                &get,
                "BULK_WRITE_REPLY_TIMEOUT_MS",
                Some(60_000),
            )?),
            booking_forward_min_per_second: parse(&get, "BOOKING_FORWARD_MIN_PER_SECOND", Some(50))?,
            hold_sweep_interval: Duration::from_millis(parse(&get, "HOLD_SWEEP_INTERVAL_MS", Some(1000))?),
            queue_abandon: Duration::from_secs(parse(&get, "QUEUE_ABANDON_SECONDS", Some(30))?),
            order_workers: parse(&get, "ORDER_WORKERS", Some(2))?,
            order_claim_idle: Duration::from_millis(parse(&get, "ORDER_CLAIM_IDLE_MS", Some(30_000))?),
            order_result_ttl: Duration::from_secs(parse(&get, "ORDER_RESULT_TTL_SECONDS", Some(86_400))?),
            edge: EdgeConfig::from_lookup(&get)?,
            payments: PaymentsConfig::from_lookup(&get, environment)?,
            tickets: TicketsConfig::from_lookup(&get, environment)?,
            events: EventsConfig::from_lookup(&get)?,
            exports,
            log_json: match get("LOG_FORMAT").as_deref() {
                None | Some("text") => false,
                Some("json") => true,
                Some(other) => {
                    return Err(err("LOG_FORMAT", format!("expected text or json, got {other:?}")));
                }
            },
        };
        let t = config.database_timeouts;
        for (var, value) in [
            ("DATABASE_LOCK_TIMEOUT_MS", t.lock),
            ("DATABASE_STATEMENT_TIMEOUT_MS", t.statement),
            ("DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS", t.idle_in_transaction),
            ("DATABASE_TCP_KEEPALIVE_SECONDS", t.keepalive_idle),
        ] {
            // Zero would mean "no limit" to PostgreSQL: exactly what these exist to prevent.
            if value.is_zero() {
                return Err(err(var, "must be positive"));
            }
        }
        // The development secret is public: a server signing with it must not be reachable
        // from other machines, or anyone could mint an admin token.
        if config.jwt_secret.expose_secret() == DEV_JWT_SECRET
            && !config.host.is_loopback()
            && !parse(&get, "ALLOW_DEV_SECRET_ON_NETWORK", Some(false))?
        {
            return Err(err(
                "JWT_SECRET",
                format!(
                    "the development secret is public; set JWT_SECRET before listening on {} (beyond loopback)",
                    config.host
                ),
            ));
        }
        if config.forwarded_for_hops == 0 {
            return Err(err("FORWARDED_FOR_HOPS", "must be at least 1"));
        }
        if config.database_pool_size == 0 {
            return Err(err("DATABASE_POOL_SIZE", "must be at least 1"));
        }
        if config.queue_abandon.is_zero() {
            return Err(err("QUEUE_ABANDON_SECONDS", "must be positive"));
        }
        if config.order_claim_idle.as_millis() < 100 {
            return Err(err("ORDER_CLAIM_IDLE_MS", "must be at least 100"));
        }
        if config.order_result_ttl.is_zero() {
            return Err(err("ORDER_RESULT_TTL_SECONDS", "must be positive"));
        }
        if config.booking_answer_timeout.is_zero() {
            return Err(err("BOOKING_ANSWER_TIMEOUT_MS", "must be positive"));
        }
        // A lock wait must end as the lock timeout it is, not as a lost reply.
        if config.booking_reply_timeout <= t.lock {
            return Err(err(
                "BOOKING_REPLY_TIMEOUT_MS",
                "must be longer than DATABASE_LOCK_TIMEOUT_MS",
            ));
        }
        if config.bulk_write_reply_timeout <= t.lock {
            return Err(err(
                "BULK_WRITE_REPLY_TIMEOUT_MS",
                "must be longer than DATABASE_LOCK_TIMEOUT_MS",
            ));
        }
        if config.hold_sweep_interval.is_zero() {
            return Err(err("HOLD_SWEEP_INTERVAL_MS", "must be positive"));
        }
        if config.claim_token_ttl.is_zero() {
            return Err(err("CLAIM_TOKEN_TTL_SECONDS", "must be positive"));
        }
        if config.access_token_ttl.is_zero() || config.refresh_token_ttl.is_zero() {
            return Err(err(
                "ACCESS_TOKEN_TTL_SECONDS",
                "token lifetimes must be positive",
            ));
        }
        Ok(config)
    }

    pub fn database_url(&self) -> &str {
        self.database_url.expose_secret()
    }

    pub fn redis_url(&self) -> Option<&str> {
        self.redis_url.as_ref().map(ExposeSecret::expose_secret)
    }

    /// The nodes of `REDIS_CLUSTER_URLS`, if Redis is a cluster.
    pub fn redis_cluster_urls(&self) -> Option<Vec<String>> {
        self.redis_cluster_urls
            .as_ref()
            .map(|s| crate::kv::cluster_urls(s.expose_secret()))
    }
}

fn err(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        message: message.into(),
    }
}

fn parse<T: std::str::FromStr>(
    get: &impl Fn(&'static str) -> Option<String>,
    var: &'static str,
    default: Option<T>,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match get(var) {
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|e| err(var, format!("cannot parse {raw:?}: {e}"))),
        None => default.ok_or_else(|| err(var, "is required")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        // Prod needs a ticket key; the tests of other variables should not care.
        map.entry("TICKET_SIGNING_KEY".into())
            .or_insert_with(|| "1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8".into());
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn tickets_need_a_signing_key_in_prod_only() {
        let prod = [
            ("BOXOFFICE_ENV", "prod"),
            ("JWT_SECRET", "a-production-secret-that-is-long-enough-123"),
            ("TICKET_SIGNING_KEY", ""),
        ];
        assert_eq!(config(&prod).unwrap_err().var, "TICKET_SIGNING_KEY");
        assert!(
            config(&[("TICKET_SIGNING_KEY", "")])
                .unwrap()
                .tickets
                .signing_key
                .is_none()
        );
        let c = config(&[(
            "TICKET_SIGNING_KEY",
            "7:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
        )])
        .unwrap();
        assert_eq!(c.tickets.signing_key.as_ref().map(|k| k.key_id.0), Some(7));
        assert!(!format!("{c:?}").contains("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"));
        assert_eq!(c.tickets.doors_open_before, Duration::from_secs(7200));
        assert_eq!(
            config(&[("TICKET_SIGNING_KEY", "seven:x")]).unwrap_err().var,
            "TICKET_SIGNING_KEY"
        );
        assert_eq!(
            config(&[("TICKET_DOORS_OPEN_MINUTES", "0")]).unwrap_err().var,
            "TICKET_DOORS_OPEN_MINUTES"
        );
        assert_eq!(
            config(&[("TICKET_VALID_MINUTES", "x")]).unwrap_err().var,
            "TICKET_VALID_MINUTES"
        );
    }

    #[test]
    fn defaults_are_local() {
        let c = config(&[]).unwrap();
        assert_eq!(c.port, 8080);
        assert_eq!(c.environment, Environment::Dev);
        assert!(c.database_url().contains("127.0.0.1"));
    }

    #[test]
    fn production_refuses_the_default_secret() {
        let e = config(&[("BOXOFFICE_ENV", "prod")]).unwrap_err();
        assert_eq!(e.var, "JWT_SECRET");
        let ok = config(&[
            ("BOXOFFICE_ENV", "prod"),
            ("JWT_SECRET", "a-production-secret-that-is-long-enough-123"),
        ]);
        assert!(ok.is_ok());
    }

    #[test]
    fn the_development_secret_stays_on_loopback() {
        assert_eq!(config(&[("HOST", "0.0.0.0")]).unwrap_err().var, "JWT_SECRET");
        assert!(
            config(&[
                ("HOST", "0.0.0.0"),
                ("JWT_SECRET", "a-secret-of-our-own-that-is-long-enough")
            ])
            .is_ok()
        );
        assert!(config(&[("HOST", "::1")]).is_ok());
    }

    #[test]
    fn production_turns_the_playground_and_introspection_off() {
        let c = config(&[
            ("BOXOFFICE_ENV", "prod"),
            ("JWT_SECRET", "a-production-secret-that-is-long-enough-123"),
        ])
        .unwrap();
        assert!(!c.playground && !c.introspection);
        assert!(config(&[]).unwrap().playground);
    }

    #[test]
    fn a_reply_timeout_must_outlast_the_lock_timeout() {
        assert_eq!(config(&[]).unwrap().booking_reply_timeout, Duration::from_secs(5));
        // A lock wait would otherwise end as a lost reply, its connection thrown away.
        for reply in ["3000", "1000", "0"] {
            assert_eq!(
                config(&[("BOOKING_REPLY_TIMEOUT_MS", reply)]).unwrap_err().var,
                "BOOKING_REPLY_TIMEOUT_MS"
            );
        }
        let c = config(&[
            ("DATABASE_LOCK_TIMEOUT_MS", "800"),
            ("BOOKING_REPLY_TIMEOUT_MS", "1000"),
        ])
        .unwrap();
        assert_eq!(c.booking_reply_timeout, Duration::from_secs(1));
        assert_eq!(
            config(&[]).unwrap().bulk_write_reply_timeout,
            Duration::from_secs(60)
        );
        assert_eq!(
            config(&[("BULK_WRITE_REPLY_TIMEOUT_MS", "3000")])
                .unwrap_err()
                .var,
            "BULK_WRITE_REPLY_TIMEOUT_MS"
        );
    }

    #[test]
    fn errors_name_the_variable() {
        assert_eq!(config(&[("PORT", "eighty")]).unwrap_err().var, "PORT");
        assert_eq!(config(&[("JWT_SECRET", "short")]).unwrap_err().var, "JWT_SECRET");
        assert_eq!(config(&[("LOG_FORMAT", "xml")]).unwrap_err().var, "LOG_FORMAT");
    }

    #[test]
    fn cors_origins_are_exact_origins() {
        assert_eq!(config(&[]).unwrap().cors_allowed_origins, AllowedOrigins::None);
        let c = config(&[(
            "CORS_ALLOWED_ORIGINS",
            "http://localhost:5173, https://app.example.com/",
        )])
        .unwrap();
        assert!(c.cors_allowed_origins.allows("http://localhost:5173"));
        assert!(c.cors_allowed_origins.allows("https://app.example.com"));
        assert!(!c.cors_allowed_origins.allows("https://evil.example.com"));
        assert!(!c.cors_allowed_origins.allows("http://localhost:5174"));
        assert_eq!(
            config(&[("CORS_ALLOWED_ORIGINS", "*")])
                .unwrap()
                .cors_allowed_origins,
            AllowedOrigins::Any
        );
        for bad in [
            "localhost:5173",
            "https://app.example.com/path",
            "ftp://x.example.com",
        ] {
            assert_eq!(
                config(&[("CORS_ALLOWED_ORIGINS", bad)]).unwrap_err().var,
                "CORS_ALLOWED_ORIGINS",
                "{bad}"
            );
        }
    }

    #[test]
    fn prod_refuses_the_sandbox_unless_told() {
        let prod = [
            ("BOXOFFICE_ENV", "prod"),
            ("JWT_SECRET", "a-production-secret-that-is-long-enough-123"),
        ];
        let c = config(&prod).unwrap();
        assert!(matches!(c.payments.provider, PaymentProviderConfig::None));
        assert!(matches!(
            config(&[]).unwrap().payments.provider,
            PaymentProviderConfig::Sandbox
        ));
        let sandbox = [prod[0], prod[1], ("PAYMENT_PROVIDER", "sandbox")];
        assert_eq!(config(&sandbox).unwrap_err().var, "PAYMENT_PROVIDER");
        let told = [
            sandbox[0],
            sandbox[1],
            sandbox[2],
            ("PAYMENTS_SANDBOX_IN_PROD", "true"),
        ];
        assert!(matches!(
            config(&told).unwrap().payments.provider,
            PaymentProviderConfig::Sandbox
        ));
        assert_eq!(
            config(&[("PAYMENT_PROVIDER", "toss")]).unwrap_err().var,
            "PAYMENT_TOSS_SECRET_KEY"
        );
        assert_eq!(
            config(&[("POINTS_MAX_BALANCE", "3000000000")]).unwrap_err().var,
            "POINTS_MAX_BALANCE"
        );
        let toss = config(&[
            ("PAYMENT_PROVIDER", "toss"),
            ("PAYMENT_TOSS_SECRET_KEY", "test_sk_very_secret"),
            ("PAYMENT_TOSS_CLIENT_KEY", "test_ck_x"),
        ])
        .unwrap();
        assert!(!format!("{toss:?}").contains("test_sk_very_secret"));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let c = config(&[("JWT_SECRET", "a-very-secret-value-that-is-long-enough")]).unwrap();
        assert!(!format!("{c:?}").contains("a-very-secret-value"));
    }
}
