//! An append-only file switched off while the server runs is noticed (issue 26): on a
//! Redis of the test's own (switching the shared one's AOF would change every other
//! test's), started with `appendonly yes` on a free port and stopped when the test ends.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::common::{Session, Show, TestApp, code, layout};

/// A private `redis-server` in a directory of its own, killed and removed when dropped.
struct OwnRedis {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl OwnRedis {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("bo-aof-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--appendonly", "yes", "--save", ""])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/services installs it)");
        let me = Self { child, dir, port };
        for _ in 0..100 {
            if me.conn().await.is_ok() {
                return me;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the private redis-server did not start");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn conn(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await
    }

    async fn appendonly(&self, on: bool) {
        let () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("appendonly")
            .arg(if on { "yes" } else { "no" })
            .query_async(&mut self.conn().await.unwrap())
            .await
            .unwrap();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const ORDER: &str = "mutation($i: ReserveSeatsInput!) { placeOrder(input: $i) { jobId } }";

async fn place(app: &TestApp, who: &Session, show: &Show, key: &str) -> Value {
    app.gql(
        Some(&who.access),
        ORDER,
        json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[0]], "idempotencyKey": key } }),
    )
    .await
}

async fn ready(app: &TestApp) -> (u16, Value) {
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// In prod without REDIS_ACCEPT_VOLATILE: the AOF switched off makes placeOrder and
/// enterQueue answer UNAVAILABLE within the check interval (the instance stays ready and
/// says why on /readyz), and switched on again, they are accepted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_append_only_file_switched_off_while_running_stops_accepting_orders() {
    let redis = OwnRedis::start().await;
    let url = redis.url();
    let app = TestApp::spawn_with(&[
        ("BOXOFFICE_ENV", "prod"),
        ("REDIS_URL", &url),
        ("REDIS_ACCEPT_VOLATILE", "false"),
        ("REDIS_CHECK_INTERVAL_SECONDS", "1"),
        ("ORDER_WORKERS", "0"),
    ])
    .await;
    let show = app.show(layout(1, 10), 4).await;
    let queued = app.show(layout(1, 10), 4).await;
    app.set_schedule(&queued.schedule_id, "queue_enabled = true")
        .await;
    let fan = app.sign_up("fan@example.com").await;
    let body = place(&app, &fan, &show, "k-0").await;
    assert!(body["errors"].is_null(), "{body}");

    redis.appendonly(false).await;
    // Within the check interval, without anyone asking /readyz.
    let off = Instant::now();
    let mut refused = None;
    for i in 1..40 {
        let body = place(&app, &fan, &show, &format!("k-{i}")).await;
        if !body["errors"].is_null() {
            refused = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = refused.expect("orders were still accepted with the append-only file off");
    assert_eq!(code(&refused), "UNAVAILABLE", "{refused}");
    assert!(off.elapsed() < Duration::from_secs(3), "{:?}", off.elapsed());
    let entered = app
        .gql(
            Some(&fan.access),
            "mutation($s: ID!) { enterQueue(scheduleId: $s) { state } }",
            json!({ "s": queued.schedule_id }),
        )
        .await;
    assert_eq!(code(&entered), "UNAVAILABLE", "{entered}");
    let (status, details) = ready(&app).await;
    assert_eq!(status, 200, "{details}");
    assert_eq!(details["redisAof"], false, "{details}");
    assert_eq!(details["durableWritesAccepted"], false, "{details}");

    redis.appendonly(true).await;
    let (status, details) = ready(&app).await;
    assert_eq!(
        (status, &details["durableWritesAccepted"]),
        (200, &json!(true)),
        "{details}"
    );
    let body = place(&app, &fan, &show, "k-again").await;
    assert!(body["errors"].is_null(), "{body}");
}
