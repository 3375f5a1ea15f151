//! Test harness: every test gets its own PostgreSQL database (cloned from a migrated
//! template), its own Redis key prefix and its own server on an ephemeral port.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    },
};

use boxoffice::{app, config::Config, db, state::AppState};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

pub const PG: &str = "postgres://postgres@127.0.0.1:5432";
pub const REDIS: &str = "redis://127.0.0.1:6379";

/// A Redis Cluster to run the suite against instead of one node (`REDIS_CLUSTER=1
/// scripts/test` starts one and sets this): test servers get `REDIS_CLUSTER_URLS`, except
/// those a test points at a Redis of its own (`REDIS_URL` in its overrides: a proxy).
pub fn redis_cluster() -> Option<String> {
    std::env::var("REDIS_CLUSTER_URLS").ok().filter(|s| !s.is_empty())
}

/// A connection to the suite's Redis: the node, or the cluster.
pub async fn redis_conn() -> Option<boxoffice::kv::KvConn> {
    let kv = match redis_cluster() {
        Some(urls) => boxoffice::kv::Kv::connect_cluster(&boxoffice::kv::cluster_urls(&urls), "").await,
        None => boxoffice::kv::Kv::connect(REDIS, "").await,
    };
    kv.ok().map(|kv| kv.conn())
}
pub const JWT_SECRET: &str = "integration-test-secret-integration-test-secret";
pub const PASSWORD: &str = "correct horse 9";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Name of the migrated template database, made once per test process. Its name carries
/// a hash of migrations/, so a changed migration makes a new template.
fn template() -> &'static str {
    static TEMPLATE: OnceLock<String> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        // Its own thread and multi-thread runtime: the migration harness blocks in place,
        // and the caller may be any kind of runtime.
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(make_template())
        })
        .join()
        .unwrap()
    })
}

fn migrations_hash() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut files: Vec<_> = walk(&dir);
    files.sort();
    let mut hasher = Sha256::new();
    for f in files {
        hasher.update(f.to_string_lossy().as_bytes());
        hasher.update(std::fs::read(&f).unwrap());
    }
    hex::encode(&hasher.finalize()[..6])
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

async fn admin_conn() -> AsyncPgConnection {
    AsyncPgConnection::establish(&format!("{PG}/postgres"))
        .await
        .unwrap()
}

async fn make_template() -> String {
    let name = format!("bo_tpl_{}", migrations_hash());
    let mut conn = admin_conn().await;
    // Several test processes may start at once (nextest): one makes the template.
    diesel::sql_query("SELECT pg_advisory_lock(7157)")
        .execute(&mut conn)
        .await
        .unwrap();
    sweep(&mut conn, &name).await;
    if !database_exists(&mut conn, &name).await {
        let building = format!("{name}_building");
        exec(
            &mut conn,
            &format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"),
        )
        .await;
        exec(&mut conn, &format!("CREATE DATABASE {building}")).await;
        db::run_migrations(&format!("{PG}/{building}")).await.unwrap();
        // Renamed only once complete, so a crash never leaves a half-migrated template.
        exec(&mut conn, &format!("ALTER DATABASE {building} RENAME TO {name}")).await;
    }
    diesel::sql_query("SELECT pg_advisory_unlock(7157)")
        .execute(&mut conn)
        .await
        .unwrap();
    name
}

/// Templates of other migrations kept: other checkouts (branches, worktrees) share this
/// PostgreSQL and clone their own template at the same time.
const OTHER_TEMPLATES_KEPT: usize = 6;

/// Drops templates of older migrations (all but the newest few) and databases left by test
/// processes that died.
async fn sweep(conn: &mut AsyncPgConnection, keep: &str) {
    #[derive(diesel::QueryableByName)]
    struct Db {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    // Newest first: a database's oid grows with its creation.
    let dbs: Vec<Db> = diesel::sql_query(
        "SELECT datname FROM pg_database WHERE datname LIKE 'bo\\_tpl\\_%' OR datname LIKE 'bo\\_test\\_%'
         ORDER BY oid DESC",
    )
    .load(conn)
    .await
    .unwrap();
    let mut templates = 0;
    for Db { datname } in dbs {
        let stale = if let Some(rest) = datname.strip_prefix("bo_test_") {
            let pid = rest.split('_').next().unwrap_or_default();
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
        } else if datname == keep || datname.ends_with("_building") {
            false
        } else {
            templates += 1;
            templates > OTHER_TEMPLATES_KEPT
        };
        if stale {
            exec(conn, &format!("DROP DATABASE IF EXISTS {datname} WITH (FORCE)")).await;
        }
    }
}

async fn database_exists(conn: &mut AsyncPgConnection, name: &str) -> bool {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let row: N = diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
        .bind::<diesel::sql_types::Text, _>(name)
        .get_result(conn)
        .await
        .unwrap();
    row.n > 0
}

async fn exec(conn: &mut AsyncPgConnection, sql: &str) {
    diesel::sql_query(sql).execute(conn).await.unwrap();
}

/// A fresh database cloned from the template; dropped when the guard is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
    /// Whether dropping this handle drops the database (a second instance's handle does not).
    owned: bool,
}

impl TestDb {
    pub async fn new() -> Self {
        let template = template();
        let name = format!(
            "bo_test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = admin_conn().await;
        exec(&mut conn, &format!("CREATE DATABASE {name} TEMPLATE {template}")).await;
        Self {
            url: format!("{PG}/{name}"),
            name,
            owned: true,
        }
    }

    /// A database name that does not exist yet (for start-up tests), dropped afterwards.
    pub fn unborn() -> Self {
        let name = format!(
            "bo_test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        Self {
            url: format!("{PG}/{name}"),
            name,
            owned: true,
        }
    }

    /// Another handle on the same database that does not drop it.
    pub fn shared(&self) -> Self {
        Self {
            name: self.name.clone(),
            url: self.url.clone(),
            owned: false,
        }
    }
}

/// `boxoffice serve` as its own process on `db` (without Redis), once it answers
/// `/healthz`; killed when the handle is dropped. For what a test server inside this test
/// binary cannot show: what the process does from its first instruction.
pub struct ServerProcess {
    pub child: tokio::process::Child,
    pub port: u16,
}

impl ServerProcess {
    pub async fn spawn(db: &TestDb) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_boxoffice"))
            .arg("serve")
            .env("DATABASE_URL", &db.url)
            .env("JWT_SECRET", JWT_SECRET)
            .env("PORT", port.to_string())
            .env_remove("REDIS_URL")
            .env("RUST_LOG", "off")
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let server = Self { child, port };
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if http
                .get(server.url("/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                return server;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the server process did not start");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        let name = self.name.clone();
        // Drop runs inside the test's runtime; do the async work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut conn = admin_conn().await;
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
                if let Some(mut r) = redis_conn().await {
                    let keys: Vec<String> = redis::cmd("KEYS")
                        .arg(format!("t:{name}:*"))
                        .query_async(&mut r)
                        .await
                        .unwrap_or_default();
                    if !keys.is_empty() {
                        let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut r).await;
                    }
                }
            });
        })
        .join();
    }
}

pub fn test_config(db: &TestDb, overrides: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), db.url.clone()),
        ("DATABASE_POOL_SIZE".into(), "8".into()),
        ("REDIS_URL".into(), REDIS.into()),
        ("REDIS_PREFIX".into(), format!("t:{}:", db.name)),
        ("JWT_SECRET".into(), JWT_SECRET.into()),
        // The shared test Redis keeps no append-only file; prod-mode tests accept that.
        ("REDIS_ACCEPT_VOLATILE".into(), "true".into()),
        // Every test client comes from 127.0.0.1: the per-address limits would otherwise
        // throttle the suite itself. The abuse tests set them low.
        ("ANONYMOUS_RATE_PER_SECOND".into(), "100000".into()),
        ("ANONYMOUS_RATE_BURST".into(), "100000".into()),
        ("SIGNUP_MAX_PER_IP".into(), "100000".into()),
        // One known key, so prod-mode tests start; `("TICKET_SIGNING_KEY", "")` makes a
        // development key instead.
        (
            "TICKET_SIGNING_KEY".into(),
            "1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8".into(),
        ),
    ]);
    if let Some(urls) = redis_cluster()
        && !overrides.iter().any(|(k, _)| *k == "REDIS_URL")
    {
        vars.remove("REDIS_URL");
        vars.insert("REDIS_CLUSTER_URLS".into(), urls);
    }
    for (k, v) in overrides {
        vars.insert((*k).into(), (*v).into());
    }
    Config::from_lookup(|k| vars.get(k).cloned()).unwrap()
}

/// A running server on its own database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub state: AppState,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    // Dropped last: the database outlives the server using it.
    pub db: TestDb,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    pub async fn spawn_with(overrides: &[(&str, &str)]) -> Self {
        let db = TestDb::new().await;
        let config = test_config(&db, overrides);
        let state = AppState::connect(config).await.unwrap();
        Self::serve(db, state).await
    }

    /// A server on a fresh database that it reaches through `proxy` (a test's TCP proxy to
    /// PostgreSQL on 127.0.0.1:5432), to watch or break what goes between them.
    pub async fn spawn_behind(proxy: SocketAddr) -> Self {
        let db = TestDb::new().await;
        let url = db.url.replace(PG, &format!("postgres://postgres@{proxy}"));
        let state = AppState::connect(test_config(&db, &[("DATABASE_URL", &url)]))
            .await
            .unwrap();
        Self::serve(db, state).await
    }

    pub async fn serve(db: TestDb, state: AppState) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(app::serve(listener, state.clone(), async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            state,
            http: reqwest::Client::new(),
            stop: Some(stop),
            db,
        }
    }

    /// A second server on the same database and Redis prefix: another instance of the
    /// same deployment.
    pub async fn second_instance(&self, overrides: &[(&str, &str)]) -> TestApp {
        let db = self.db.shared();
        let state = AppState::connect(test_config(&db, overrides)).await.unwrap();
        Self::serve(db, state).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops accepting connections and closes WebSockets.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// POSTs a GraphQL request, optionally with a bearer token; returns the JSON body.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut req = self
            .http
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let retry_after = resp.headers().contains_key("retry-after");
        let body: Value = resp.json().await.unwrap();
        // GraphQL over application/json answers 200, except a rate limit: 429 with
        // Retry-After, whichever limit refused (issue 21, finding 14).
        if status == 429 {
            assert!(retry_after && code(&body) == "RATE_LIMITED", "429: {body}");
        } else {
            assert_eq!(status, 200, "GraphQL over application/json answers 200: {body}");
        }
        body
    }

    /// Signs up a new account and returns its session.
    pub async fn sign_up(&self, email: &str) -> Session {
        let body = self
            .gql(
                None,
                "mutation($i: SignUpInput!) { signUp(input: $i) { accessToken refreshToken user { id } } }",
                json!({ "i": { "email": email, "password": PASSWORD, "displayName": email.split('@').next() } }),
            )
            .await;
        Session::from_payload(&body["data"]["signUp"]).unwrap_or_else(|| panic!("sign up failed: {body}"))
    }

    pub async fn log_in(&self, email: &str, password: &str) -> Value {
        self.gql(
            None,
            "mutation($e: String!, $p: String!) { logIn(email: $e, password: $p) { accessToken refreshToken user { id } } }",
            json!({ "e": email, "p": password }),
        )
        .await
    }

    /// Sets a role directly in the database (test set-up, not the API under test).
    pub async fn set_role(&self, user_id: i64, role: &str) {
        let mut conn = self.state.db.get().await.unwrap();
        diesel::sql_query("UPDATE users SET role = $1 WHERE id = $2")
            .bind::<diesel::sql_types::Text, _>(role)
            .bind::<diesel::sql_types::BigInt, _>(user_id)
            .execute(&mut *conn)
            .await
            .unwrap();
    }

    /// A signed-up account with the given role (the token was minted before the change,
    /// which the guards must not care about).
    pub async fn user_with_role(&self, email: &str, role: &str) -> Session {
        let s = self.sign_up(email).await;
        self.set_role(s.id, role).await;
        s
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Clone, Debug)]
pub struct Session {
    pub id: i64,
    pub access: String,
    pub refresh: String,
}

impl Session {
    pub fn from_payload(p: &Value) -> Option<Self> {
        Some(Self {
            id: p["user"]["id"].as_str()?.parse().ok()?,
            access: p["accessToken"].as_str()?.to_owned(),
            refresh: p["refreshToken"].as_str()?.to_owned(),
        })
    }
}

/// Whether `needle` occurs in `haystack` (a proxy looking for a statement in the bytes).
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The `extensions.code` of the first error.
pub fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

/// A TCP proxy to a real service that a test can cut (close every connection and refuse
/// new ones), partition (keep every connection open and accept new ones, but swallow their
/// bytes and never answer: a network partition or a frozen peer, which fails no call by
/// itself) and restore: a dependency outage without stopping the shared service.
pub struct TcpProxy {
    pub addr: SocketAddr,
    mode: std::sync::Arc<tokio::sync::watch::Sender<ProxyMode>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProxyMode {
    Up,
    Cut,
    Partitioned,
}

impl TcpProxy {
    pub async fn start(target: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, _) = tokio::sync::watch::channel(ProxyMode::Up);
        let mode = std::sync::Arc::new(mode);
        let target = target.to_owned();
        let mode2 = mode.clone();
        tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                let now = *mode2.borrow();
                match now {
                    ProxyMode::Cut => drop(inbound),
                    ProxyMode::Partitioned => {
                        tokio::spawn(swallow(inbound, mode2.subscribe()));
                    }
                    ProxyMode::Up => {
                        tokio::spawn(forward(inbound, target.clone(), mode2.subscribe()));
                    }
                }
            }
        });
        Self { addr, mode }
    }

    pub fn cut(&self) {
        self.mode.send_replace(ProxyMode::Cut);
    }

    /// Connections stay open and new ones are accepted, but nothing gets through either way.
    pub fn partition(&self) {
        self.mode.send_replace(ProxyMode::Partitioned);
    }

    /// New connections are forwarded again; those cut or partitioned stay closed (a healed
    /// partition whose peers gave up on their connections).
    pub fn restore(&self) {
        self.mode.send_replace(ProxyMode::Up);
    }
}

async fn forward(
    mut inbound: tokio::net::TcpStream,
    target: String,
    mut mode: tokio::sync::watch::Receiver<ProxyMode>,
) {
    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
        return;
    };
    let changed = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => None,
        m = mode.wait_for(|m| *m != ProxyMode::Up) => m.ok().map(|m| *m),
    };
    drop(outbound);
    if changed == Some(ProxyMode::Partitioned) {
        swallow(inbound, mode).await;
    }
}

/// Reads and drops whatever the client sends, answers nothing, until the partition ends
/// (then closes the connection).
async fn swallow(mut inbound: tokio::net::TcpStream, mut mode: tokio::sync::watch::Receiver<ProxyMode>) {
    use tokio::io::AsyncReadExt as _;
    let mut sink = [0u8; 4096];
    loop {
        tokio::select! {
            n = inbound.read(&mut sink) => match n {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            _ = mode.wait_for(|m| *m != ProxyMode::Partitioned) => return,
        }
    }
}

/// A layout of `rows` rows of `per_row` seats in one section, grades cycling VIP/R/S/A.
pub fn layout(rows: usize, per_row: i32) -> Value {
    let grades = ["VIP", "R", "S", "A"];
    json!({
        "grades": [
            { "name": "VIP", "price": 150, "color": "#FF0000" },
            { "name": "R", "price": 100, "color": "#00FF00" },
            { "name": "S", "price": 70, "color": "#0000FF" },
            { "name": "A", "price": 50, "color": "#FFFF00" },
        ],
        "sections": [{
            "name": "Floor",
            "rows": (0..rows).map(|r| json!({ "label": format!("R{r}"), "seats": per_row, "grade": grades[r % 4] })).collect::<Vec<_>>(),
        }],
    })
}

pub struct Show {
    pub host: Session,
    pub concert_id: String,
    pub schedule_id: String,
    /// Seat ids in layout order.
    pub seats: Vec<String>,
}

pub const CREATE_CONCERT: &str = "mutation($i: ConcertInput!) { createConcert(input: $i) { id status } }";
pub const ADD_SCHEDULE: &str =
    "mutation($c: ID!, $i: ScheduleInput!) { addSchedule(concertId: $c, input: $i) { id } }";
pub const GENERATE: &str =
    "mutation($s: ID!, $l: SeatLayoutInput!) { generateSeats(scheduleId: $s, layout: $l) { id capacity } }";

/// Schedule input with sales open now, the show in two days.
pub fn schedule_input(per_user_limit: i32) -> Value {
    let now = chrono::Utc::now();
    json!({
        "startsAt": (now + chrono::Duration::days(2)).to_rfc3339(),
        "salesOpenAt": (now - chrono::Duration::minutes(1)).to_rfc3339(),
        "salesCloseAt": (now + chrono::Duration::days(1)).to_rfc3339(),
        "perUserLimit": per_user_limit,
    })
}

impl TestApp {
    /// Fails the test with the body if it has errors; returns `data`.
    pub async fn ok(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let body = self.gql(token, query, variables).await;
        assert!(body["errors"].is_null(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// A published concert by a new host with one schedule on sale and the given layout.
    pub async fn show(&self, layout: Value, per_user_limit: i32) -> Show {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let host = self.user_with_role(&format!("host{n}@example.com"), "host").await;
        let t = Some(host.access.as_str());
        let concert = self
            .ok(
                t,
                CREATE_CONCERT,
                json!({ "i": { "title": "Night Show", "artist": "The Band", "venue": "Arena", "category": "pop" } }),
            )
            .await;
        let concert_id = concert["createConcert"]["id"].as_str().unwrap().to_owned();
        let schedule = self
            .ok(
                t,
                ADD_SCHEDULE,
                json!({ "c": concert_id, "i": schedule_input(per_user_limit) }),
            )
            .await;
        let schedule_id = schedule["addSchedule"]["id"].as_str().unwrap().to_owned();
        self.ok(t, GENERATE, json!({ "s": schedule_id, "l": layout }))
            .await;
        self.ok(
            t,
            "mutation($c: ID!) { publishConcert(id: $c) { id } }",
            json!({ "c": concert_id }),
        )
        .await;
        let seats = self
            .ok(
                None,
                "query($s: ID!) { schedule(id: $s) { seats { id } } }",
                json!({ "s": schedule_id }),
            )
            .await;
        let seats = seats["schedule"]["seats"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect();
        Show {
            host,
            concert_id,
            schedule_id,
            seats,
        }
    }

    /// `n` users made in one INSERT, with access tokens minted by the server's keys (no
    /// argon2 per user: set-up for load, not the sign-up under test).
    pub async fn bulk_users(&self, n: usize) -> Vec<Session> {
        #[derive(diesel::QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            id: i64,
        }
        let mut conn = self.state.db.get().await.unwrap();
        let tag = COUNTER.fetch_add(1, Ordering::Relaxed);
        let rows: Vec<Id> = diesel::sql_query(format!(
            "INSERT INTO users (email, password_hash, display_name)
             SELECT 'bulk{tag}-' || g || '@example.com', 'x', 'fan ' || g FROM generate_series(1, {n}) g
             RETURNING id"
        ))
        .load(&mut *conn)
        .await
        .unwrap();
        rows.into_iter()
            .map(|r| Session {
                id: r.id,
                access: self.state.jwt.issue(r.id, boxoffice::auth::Role::User).unwrap().0,
                refresh: String::new(),
            })
            .collect()
    }

    /// A connection to the test's Redis (the server's own: one node or the cluster).
    pub async fn redis(&self) -> boxoffice::kv::KvConn {
        self.state.kv().unwrap().conn()
    }

    /// Sets columns of a schedule directly (`set`: what follows SET), for set-ups the API
    /// does not offer (a sale that is over, a queue on a published show).
    pub async fn set_schedule(&self, schedule_id: &str, set: &str) {
        let updated = self
            .count(&format!(
                "WITH u AS (UPDATE schedules SET {set} WHERE id = {schedule_id} RETURNING 1) SELECT count(*) AS n FROM u"
            ))
            .await;
        assert_eq!(updated, 1, "no schedule {schedule_id}");
    }

    /// Runs a read-only SQL query returning one bigint (`n`), for invariant checks.
    pub async fn count(&self, sql: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.state.db.get().await.unwrap();
        let row: N = diesel::sql_query(sql).get_result(&mut *conn).await.unwrap();
        row.n
    }

    /// Closes every other session of this test's database, as a primary shutting down does
    /// (57P01): how many it closed.
    pub async fn close_other_sessions(&self) -> i64 {
        self.count(
            "SELECT count(*) AS n FROM pg_stat_activity, pg_terminate_backend(pid) \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .await
    }

    /// Sessions of this test's database waiting for a lock: how a test knows a batch it
    /// started is now blocked on a row it holds.
    pub async fn lock_waiters(&self) -> i64 {
        self.count(
            "SELECT count(*) AS n FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .await
    }

    /// Asserts I1-I7 over the whole database.
    pub async fn assert_invariants(&self) {
        let checks: Vec<_> = boxoffice::invariants::all().copied().collect();
        let v = self.violations_of(&checks).await;
        assert!(v.is_empty(), "invariants violated: {v:?}");
    }

    /// Which of I1-I4 do not hold over the whole database.
    pub async fn invariant_violations(&self) -> Vec<&'static str> {
        self.violations_of(boxoffice::invariants::CORE).await
    }

    /// Which of `checks` (`boxoffice::invariants`, shared with the bench) do not hold.
    pub async fn violations_of(&self, checks: &[boxoffice::invariants::Check]) -> Vec<&'static str> {
        let mut conn = self.state.db.get().await.unwrap();
        boxoffice::invariants::violations(&mut conn, checks)
            .await
            .unwrap()
            .into_iter()
            .map(|v| v.check.name)
            .collect()
    }
}
