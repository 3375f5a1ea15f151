//! The outbox against real PostgreSQL (a database of its own per test, all migrations
//! applied) and a real receiver on 127.0.0.1: events commit with their change or not at
//! all, the relay delivers in order per subject with valid signatures, retries until the
//! receiver is back, hands over when its instance dies, and never sends a host's event to
//! someone else's webhook.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "a test fails loudly")]

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use boxoffice_outbox::{
    append,
    relay::{self, EventStream, Relay, RelayConfig},
    subscriptions::{self, NewWebhook, Owner},
    webhooks::{
        CloudEvent, DeliveryClient, DeliveryConfig, EventType, RetrySchedule, Secret, UrlPolicy,
        signature::{self, DEFAULT_TOLERANCE_SECONDS},
    },
};
use diesel::{QueryableByName, sql_types::BigInt};
use diesel_async::{
    AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, RunQueryDsl,
    pooled_connection::{AsyncDieselConnectionManager, bb8},
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use futures_util::future::BoxFuture;
use tokio::sync::watch;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");
const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

struct Db {
    name: String,
    pool: relay::Pool,
}

impl Db {
    async fn new() -> Db {
        let name = format!("bo_outbox_{}", uuid::Uuid::new_v4().simple());
        let mut admin = AsyncPgConnection::establish(&format!("{SERVER}/postgres"))
            .await
            .unwrap();
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let url = format!("{SERVER}/{name}");
        let conn = AsyncPgConnection::establish(&url).await.unwrap();
        let mut harness = AsyncMigrationHarness::new(conn);
        harness.run_pending_migrations(MIGRATIONS).unwrap();
        let pool = bb8::Pool::builder()
            .max_size(4)
            .build(AsyncDieselConnectionManager::<AsyncPgConnection>::new(url))
            .await
            .unwrap();
        Db { name, pool }
    }

    async fn conn(&self) -> bb8::PooledConnection<'_, AsyncPgConnection> {
        self.pool.get().await.unwrap()
    }

    async fn drop_database(self) {
        drop(self.pool);
        let mut admin = AsyncPgConnection::establish(&format!("{SERVER}/postgres"))
            .await
            .unwrap();
        diesel::sql_query(format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

async fn id(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<Id>(conn).await.unwrap().id
}

/// A host with a concert, a schedule of two seats, a fan, and an admin.
struct World {
    host: i64,
    other_host: i64,
    admin: i64,
    concert: i64,
    other_concert: i64,
    schedule: i64,
    fan: i64,
}

async fn world(conn: &mut AsyncPgConnection) -> World {
    let user = |email: &str, role: &str| {
        format!(
            "INSERT INTO users (email, password_hash, display_name, role) VALUES ('{email}', 'x', '{email}', '{role}') RETURNING id"
        )
    };
    let host = id(conn, &user("host@example.com", "host")).await;
    let other_host = id(conn, &user("other@example.com", "host")).await;
    let admin = id(conn, &user("admin@example.com", "admin")).await;
    let fan = id(conn, &user("fan@example.com", "user")).await;
    let concert_sql = |host: i64| {
        format!(
            "INSERT INTO concerts (host_id, title, artist, venue, category, status)
             VALUES ({host}, 'T', 'A', 'V', 'rock', 'published') RETURNING id"
        )
    };
    let concert = id(conn, &concert_sql(host)).await;
    let other_concert = id(conn, &concert_sql(other_host)).await;
    let schedule = id(
        conn,
        &format!(
            "INSERT INTO schedules (concert_id, starts_at, sales_open_at, sales_close_at, per_user_limit, capacity)
             VALUES ({concert}, now() + interval '30 days', now() - interval '1 day', now() + interval '29 days', 4, 2)
             RETURNING id"
        ),
    )
    .await;
    World {
        host,
        other_host,
        admin,
        concert,
        other_concert,
        schedule,
        fan,
    }
}

/// A held reservation of one seat, made in the caller's transaction with its event.
async fn hold(conn: &mut AsyncPgConnection, w: &World) -> i64 {
    let r = id(
        conn,
        &format!(
            "INSERT INTO reservations (schedule_id, user_id, status, seat_count, total_price, expires_at)
             VALUES ({}, {}, 'held', 1, 100, now() + interval '5 minutes') RETURNING id",
            w.schedule, w.fan
        ),
    )
    .await;
    append::reservations(conn, EventType::ReservationHeld, &[r])
        .await
        .unwrap();
    r
}

async fn set_status(conn: &mut AsyncPgConnection, r: i64, status: &str, event: EventType) {
    diesel::sql_query(format!(
        "UPDATE reservations SET status = '{status}', updated_at = now() WHERE id = {r}"
    ))
    .execute(conn)
    .await
    .unwrap();
    append::reservations(conn, event, &[r]).await.unwrap();
}

/// A receiver that checks every signature with its secret and answers from a script
/// (then 204 once the script is empty).
#[derive(Clone)]
struct Receiver {
    secret: Arc<Mutex<Option<Secret>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    /// (webhook-id, signature valid, event) of every request.
    seen: Arc<Mutex<Vec<(String, bool, CloudEvent)>>>,
}

#[derive(Clone, Copy)]
enum Reply {
    Status(u16),
    Hang,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let secret = r.secret.lock().unwrap().clone().expect("a secret");
    let valid = signature::verify(
        &secret,
        &h("webhook-id"),
        &h("webhook-timestamp"),
        &h("webhook-signature"),
        &body,
        chrono::Utc::now().timestamp(),
        DEFAULT_TOLERANCE_SECONDS,
    )
    .is_ok();
    let event: CloudEvent = serde_json::from_slice(&body).unwrap();
    r.seen.lock().unwrap().push((h("webhook-id"), valid, event));
    let reply = r.script.lock().unwrap().pop_front();
    match reply {
        Some(Reply::Hang) => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            StatusCode::NO_CONTENT
        }
        Some(Reply::Status(code)) => StatusCode::from_u16(code).unwrap(),
        None => StatusCode::NO_CONTENT,
    }
}

async fn receiver(script: &[Reply]) -> (SocketAddr, Receiver) {
    let r = Receiver {
        secret: Arc::default(),
        script: Arc::new(Mutex::new(script.iter().copied().collect())),
        seen: Arc::default(),
    };
    let app = Router::new().route("/hook", post(receive)).with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, r)
}

/// A stream that keeps what it was given.
#[derive(Default)]
struct Recorded(Mutex<Vec<CloudEvent>>);

impl EventStream for Recorded {
    fn publish<'a>(&'a self, events: &'a [CloudEvent]) -> BoxFuture<'a, anyhow::Result<()>> {
        self.0.lock().unwrap().extend(events.iter().cloned());
        Box::pin(async { Ok(()) })
    }
}

fn config(instance: &str) -> RelayConfig {
    let mut c = RelayConfig::new(instance.to_owned(), "/boxoffice-test".to_owned());
    c.poll = Duration::from_millis(50);
    c.lease = Duration::from_secs(2);
    c.claim = Duration::from_secs(3);
    c.schedule = RetrySchedule {
        first: Duration::from_millis(200),
        factor: 2,
        cap: Duration::from_secs(1),
        give_up_after: Duration::from_secs(24 * 3600),
        jitter: 0.1,
    };
    c
}

fn client() -> DeliveryClient {
    DeliveryClient::new(DeliveryConfig {
        policy: UrlPolicy { allow_private: true },
        connect_timeout: Duration::from_secs(1),
        timeout: Duration::from_secs(2),
        max_response_bytes: 1024,
    })
    .unwrap()
}

async fn subscribe(
    conn: &mut AsyncPgConnection,
    owner: i64,
    concert: Option<i64>,
    addr: SocketAddr,
) -> (i64, Secret) {
    let (row, secret) = subscriptions::create(
        conn,
        &NewWebhook {
            owner_id: owner,
            concert_id: concert,
            url: &format!("http://{addr}/hook"),
            event_types: &EventType::ALL,
        },
    )
    .await
    .unwrap()
    .unwrap();
    (row.id, secret)
}

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The reservation checks of I12 in the invariant suite
/// (`boxoffice_store::invariants::EVENTS`; its third is about check-ins): changes without
/// their event, and events (rows or carried) without their reservation.
async fn missing(conn: &mut AsyncPgConnection) -> (i64, i64) {
    let [changes, events, _check_ins, carried] = boxoffice_store::invariants::EVENTS else {
        panic!("four I12 checks")
    };
    let a: N = diesel::sql_query(changes.sql)
        .get_result(&mut *conn)
        .await
        .unwrap();
    let b: N = diesel::sql_query(events.sql)
        .get_result(&mut *conn)
        .await
        .unwrap();
    let c: N = diesel::sql_query(carried.sql).get_result(conn).await.unwrap();
    (a.n, b.n + c.n)
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_exists_only_if_its_change_committed() {
    let db = Db::new().await;
    let mut conn = db.conn().await;
    let w = world(&mut conn).await;
    let rolled_back = conn
        .transaction::<(), diesel::result::Error, _>(async |conn| {
            hold(conn, &w).await;
            Err(diesel::result::Error::RollbackTransaction)
        })
        .await;
    assert!(rolled_back.is_err());
    assert_eq!(id(&mut conn, "SELECT count(*) AS id FROM outbox").await, 0);
    let r = conn
        .transaction::<i64, diesel::result::Error, _>(async |conn| Ok(hold(conn, &w).await))
        .await
        .unwrap();
    assert_eq!(id(&mut conn, "SELECT count(*) AS id FROM outbox").await, 1);
    assert_eq!(missing(&mut conn).await, (0, 0));
    // A change written without its event is what the invariant check exists to see.
    diesel::sql_query(format!(
        "UPDATE reservations SET status = 'confirmed', updated_at = now() WHERE id = {r}"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(missing(&mut conn).await, (1, 0));
    diesel::sql_query("INSERT INTO outbox (event_type, subject, data) VALUES ('reservation.held', 'reservations/999999', '{}')")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(missing(&mut conn).await, (1, 1));
    drop(conn);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reservations_events_arrive_in_order_signed_and_on_the_stream() {
    let db = Db::new().await;
    let mut conn = db.conn().await;
    let w = world(&mut conn).await;
    let (addr, rx) = receiver(&[]).await;
    let (_, secret) = subscribe(&mut conn, w.host, Some(w.concert), addr).await;
    *rx.secret.lock().unwrap() = Some(secret);
    let r1 = hold(&mut conn, &w).await;
    let r2 = hold(&mut conn, &w).await;
    set_status(&mut conn, r1, "confirmed", EventType::ReservationConfirmed).await;
    set_status(&mut conn, r2, "expired", EventType::ReservationExpired).await;
    set_status(&mut conn, r1, "cancelled", EventType::ReservationCancelled).await;
    append::reservations(&mut conn, EventType::ReservationRefunded, &[r1])
        .await
        .unwrap();
    let stream = Arc::new(Recorded::default());
    let (stop, stopped) = watch::channel(false);
    let task = Relay::new(db.pool.clone(), Some(stream.clone()), client(), config("a")).spawn(stopped);
    wait_for("six deliveries", || rx.seen.lock().unwrap().len() == 6).await;
    stop.send(true).unwrap();
    task.await.unwrap();
    let seen = rx.seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|(_, valid, _)| *valid),
        "a signature did not verify"
    );
    let of = |r: i64| -> Vec<&str> {
        seen.iter()
            .filter(|(_, _, e)| e.subject == format!("reservations/{r}"))
            .map(|(_, _, e)| e.event_type.as_str())
            .collect()
    };
    assert_eq!(
        of(r1),
        [
            "reservation.held",
            "reservation.confirmed",
            "reservation.cancelled",
            "reservation.refunded"
        ]
    );
    assert_eq!(of(r2), ["reservation.held", "reservation.expired"]);
    let (webhook_id, _, first) = seen
        .iter()
        .find(|(_, _, e)| e.subject == format!("reservations/{r1}"))
        .unwrap();
    assert_eq!(&first.id, webhook_id, "webhook-id is the event id");
    assert_eq!(first.data["reservationId"], r1.to_string());
    assert_eq!(first.data["concertId"], w.concert.to_string());
    assert_eq!(first.data["status"], "HELD");
    assert_eq!(first.source, "/boxoffice-test");
    let streamed: Vec<String> = stream.0.lock().unwrap().iter().map(|e| e.id.clone()).collect();
    assert_eq!(streamed.len(), 6, "every event on the stream");
    drop(conn);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_until_the_receiver_is_back_with_the_same_id() {
    let db = Db::new().await;
    let mut conn = db.conn().await;
    let w = world(&mut conn).await;
    let (addr, rx) = receiver(&[Reply::Status(503), Reply::Status(500), Reply::Status(502)]).await;
    let (webhook, secret) = subscribe(&mut conn, w.host, Some(w.concert), addr).await;
    *rx.secret.lock().unwrap() = Some(secret);
    let r = hold(&mut conn, &w).await;
    set_status(&mut conn, r, "confirmed", EventType::ReservationConfirmed).await;
    let (stop, stopped) = watch::channel(false);
    let task = Relay::new(db.pool.clone(), None, client(), config("a")).spawn(stopped);
    wait_for("the retries and the second event", || {
        rx.seen.lock().unwrap().len() == 5
    })
    .await;
    stop.send(true).unwrap();
    task.await.unwrap();
    let seen = rx.seen.lock().unwrap().clone();
    let ids: Vec<&str> = seen.iter().map(|(id, _, _)| id.as_str()).collect();
    assert!(
        ids[..4].iter().all(|id| *id == ids[0]),
        "retries share their webhook-id: {ids:?}"
    );
    assert_ne!(ids[4], ids[0]);
    // Nothing of the second event was sent before the first was delivered.
    assert_eq!(seen[4].2.event_type, EventType::ReservationConfirmed);
    let log = subscriptions::deliveries(&mut conn, webhook, None, 10)
        .await
        .unwrap();
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|d| d.status == "delivered"));
    let held = log.iter().find(|d| d.event_type == "reservation.held").unwrap();
    assert_eq!(held.attempts, 4);
    let attempts = subscriptions::attempts(&mut conn, &[held.id]).await.unwrap();
    let codes: Vec<Option<i32>> = attempts.iter().map(|a| a.status_code).collect();
    assert_eq!(codes, [Some(503), Some(500), Some(502), Some(204)]);
    assert_eq!(attempts[3].outcome, "delivered");
    drop(conn);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn another_relay_takes_over_from_one_that_died_mid_delivery() {
    let db = Db::new().await;
    let mut conn = db.conn().await;
    let w = world(&mut conn).await;
    let (addr, rx) = receiver(&[Reply::Hang]).await;
    let (webhook, secret) = subscribe(&mut conn, w.host, Some(w.concert), addr).await;
    *rx.secret.lock().unwrap() = Some(secret);
    hold(&mut conn, &w).await;
    let (_stop_a, stopped_a) = watch::channel(false);
    let a = Relay::new(db.pool.clone(), None, client(), config("a")).spawn(stopped_a);
    wait_for("the first attempt", || rx.seen.lock().unwrap().len() == 1).await;
    // The second relay is up, but the lease is the first one's.
    let (stop_b, stopped_b) = watch::channel(false);
    let b = Relay::new(db.pool.clone(), None, client(), config("b")).spawn(stopped_b);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.seen.lock().unwrap().len(), 1, "two relays sent at once");
    // The first relay dies in the middle of its delivery: no record, no lease given back.
    a.abort();
    wait_for("the takeover's delivery", || rx.seen.lock().unwrap().len() == 2).await;
    stop_b.send(true).unwrap();
    b.await.unwrap();
    let seen = rx.seen.lock().unwrap().clone();
    assert_eq!(seen[0].0, seen[1].0, "the same event, the same webhook-id");
    let log = subscriptions::deliveries(&mut conn, webhook, None, 10)
        .await
        .unwrap();
    assert_eq!((log[0].status.as_str(), log[0].attempts), ("delivered", 2));
    drop(conn);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn events_reach_only_the_concerts_host_and_admins() {
    let db = Db::new().await;
    let mut conn = db.conn().await;
    let w = world(&mut conn).await;
    let (addr, rx) = receiver(&[]).await;
    // Subscriptions as the API would refuse them, written directly: the relay checks again.
    let (_, secret) = subscribe(&mut conn, w.other_host, Some(w.concert), addr).await;
    subscribe(&mut conn, w.other_host, None, addr).await;
    subscribe(&mut conn, w.host, Some(w.other_concert), addr).await;
    *rx.secret.lock().unwrap() = Some(secret);
    hold(&mut conn, &w).await;
    append::schedules(&mut conn, EventType::ScheduleChanged, &[w.schedule])
        .await
        .unwrap();
    let delivered = relay::fan_out(&mut conn, None, "/b", 100).await.unwrap();
    assert_eq!(delivered, 2);
    assert_eq!(
        id(&mut conn, "SELECT count(*) AS id FROM webhook_deliveries").await,
        0
    );
    // The admin's webhook for everything gets both; a host's for its concert too.
    let (admin_addr, _) = receiver(&[]).await;
    subscribe(&mut conn, w.admin, None, admin_addr).await;
    subscribe(&mut conn, w.host, Some(w.concert), admin_addr).await;
    hold(&mut conn, &w).await;
    relay::fan_out(&mut conn, None, "/b", 100).await.unwrap();
    assert_eq!(
        id(&mut conn, "SELECT count(*) AS id FROM webhook_deliveries").await,
        2
    );
    assert!(rx.seen.lock().unwrap().is_empty());
    drop(conn);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_failing_past_the_deadline_is_disabled_and_redelivery_enables_it() {
    let db = Db::new().await;
    let mut conn = db.conn().await;
    let w = world(&mut conn).await;
    // Failing until the deadline has passed, whatever the jitter.
    let (addr, rx) = receiver(&[Reply::Status(500); 20]).await;
    let (webhook, secret) = subscribe(&mut conn, w.host, Some(w.concert), addr).await;
    *rx.secret.lock().unwrap() = Some(secret);
    hold(&mut conn, &w).await;
    let mut c = config("a");
    c.schedule.give_up_after = Duration::from_millis(300);
    let (stop, stopped) = watch::channel(false);
    let task = Relay::new(db.pool.clone(), None, client(), c.clone()).spawn(stopped);
    let disabled = || async {
        subscriptions::get(&mut *db.conn().await, Owner::User(w.host), webhook)
            .await
            .unwrap()
            .unwrap()
            .disabled_at
            .is_some()
    };
    for _ in 0..100 {
        if disabled().await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(disabled().await, "the webhook was not disabled");
    let row = subscriptions::get(&mut conn, Owner::Anyone, webhook)
        .await
        .unwrap()
        .unwrap();
    assert!(row.disabled_reason.unwrap().contains("HTTP 500"));
    // Its owner is told, once, and nobody else.
    let told = |user: i64| {
        format!(
            "SELECT count(*) AS id FROM notices WHERE user_id = {user} AND kind = 'webhook.disabled' \
             AND subject = 'webhooks/{webhook}' AND message LIKE '%HTTP 500%'"
        )
    };
    assert_eq!(id(&mut conn, &told(w.host)).await, 1);
    assert_eq!(id(&mut conn, "SELECT count(*) AS id FROM notices").await, 1);
    relay::disable_webhook(&mut conn, webhook, "again").await.unwrap();
    assert_eq!(id(&mut conn, "SELECT count(*) AS id FROM notices").await, 1);
    let event: uuid::Uuid = rx.seen.lock().unwrap()[0].2.id.parse().unwrap();
    // Another host cannot redeliver it; the owner can, and the receiver (now answering) gets it.
    rx.script.lock().unwrap().clear();
    let tried = rx.seen.lock().unwrap().len();
    assert!(
        subscriptions::redeliver(&mut conn, Owner::User(w.other_host), event)
            .await
            .unwrap()
            .is_empty()
    );
    let again = subscriptions::redeliver(&mut conn, Owner::User(w.host), event)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    wait_for("the redelivery", || rx.seen.lock().unwrap().len() > tried).await;
    stop.send(true).unwrap();
    task.await.unwrap();
    assert!(!disabled().await);
    drop(conn);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn relayed_events_are_pruned_after_the_retention_with_their_log() {
    let db = Db::new().await;
    let mut conn = db.conn().await;
    let w = world(&mut conn).await;
    let (addr, _rx) = receiver(&[]).await;
    subscribe(&mut conn, w.host, Some(w.concert), addr).await;
    hold(&mut conn, &w).await;
    hold(&mut conn, &w).await;
    relay::fan_out(&mut conn, None, "/b", 1).await.unwrap();
    // One relayed with a pending delivery, one not relayed: nothing may go.
    assert_eq!(relay::prune(&mut conn, Duration::ZERO).await.unwrap(), 0);
    diesel::sql_query("UPDATE webhook_deliveries SET status = 'delivered'")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        relay::prune(&mut conn, Duration::from_secs(3600)).await.unwrap(),
        0,
        "within the retention"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(relay::prune(&mut conn, Duration::from_secs(1)).await.unwrap(), 1);
    assert_eq!(id(&mut conn, "SELECT count(*) AS id FROM outbox").await, 1);
    assert_eq!(
        id(&mut conn, "SELECT count(*) AS id FROM webhook_deliveries").await,
        0
    );
    drop(conn);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lease_is_one_holders_until_it_runs_out() {
    use boxoffice_outbox::lease;
    let db = Db::new().await;
    let mut conn = db.conn().await;
    let ttl = Duration::from_millis(400);
    assert!(lease::acquire(&mut conn, "t", "a", ttl).await.unwrap());
    assert!(!lease::acquire(&mut conn, "t", "b", ttl).await.unwrap());
    assert!(
        lease::acquire(&mut conn, "t", "a", ttl).await.unwrap(),
        "the holder renews"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        lease::acquire(&mut conn, "t", "b", ttl).await.unwrap(),
        "taken over once run out"
    );
    assert!(!lease::acquire(&mut conn, "t", "a", ttl).await.unwrap());
    lease::release(&mut conn, "t", "b").await.unwrap();
    assert!(
        lease::acquire(&mut conn, "t", "a", ttl).await.unwrap(),
        "given back"
    );
    drop(conn);
    db.drop_database().await;
}

/// A hold batch's events as its write statement leaves them: one carrier row (subject
/// `batch`) naming `reservations`, written like `reserve::WRITE`'s `evented` part.
async fn carrier(conn: &mut AsyncPgConnection, reservations: &[i64]) -> i64 {
    let ids: Vec<String> = reservations.iter().map(i64::to_string).collect();
    id(
        conn,
        &format!(
            "INSERT INTO outbox (event_type, subject, concert_id, data)
             SELECT 'reservation.held', '{}', s.concert_id,
                    jsonb_build_object('{}', jsonb_agg(r.id ORDER BY r.id))
             FROM reservations r JOIN schedules s ON s.id = r.schedule_id
             WHERE r.id IN ({}) GROUP BY s.concert_id RETURNING id",
            append::BATCH_SUBJECT,
            append::CARRIED_IDS,
            ids.join(", ")
        ),
    )
    .await
}

async fn unheld_reservation(conn: &mut AsyncPgConnection, w: &World) -> i64 {
    id(
        conn,
        &format!(
            "INSERT INTO reservations (schedule_id, user_id, status, seat_count, total_price, expires_at)
             VALUES ({}, {}, 'held', 1, 100, now() + interval '5 minutes') RETURNING id",
            w.schedule, w.fan
        ),
    )
    .await
}

async fn carrier_uuid(conn: &mut AsyncPgConnection, carrier: i64) -> uuid::Uuid {
    #[derive(QueryableByName)]
    struct E {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        event_id: uuid::Uuid,
    }
    diesel::sql_query(format!("SELECT event_id FROM outbox WHERE id = {carrier}"))
        .get_result::<E>(conn)
        .await
        .unwrap()
        .event_id
}

/// A carrier naming a reservation that is not there (reservations are never deleted: only
/// damaged data does it) stops the fan-out loudly rather than losing or inventing an event:
/// the round fails saying which carrier and reservation, nothing of it is published or
/// marked relayed, and it goes out once the data is mended.
#[tokio::test(flavor = "multi_thread")]
async fn a_carrier_naming_a_missing_reservation_relays_nothing_and_says_which() {
    let db = Db::new().await;
    let mut conn = db.conn().await;
    let w = world(&mut conn).await;
    let r = unheld_reservation(&mut conn, &w).await;
    let c = carrier(&mut conn, &[r]).await;
    let gone = r + 1_000;
    let names = |ids: &str| {
        format!(
            "UPDATE outbox SET data = jsonb_build_object('{}', jsonb_build_array({ids})) WHERE id = {c} RETURNING id",
            append::CARRIED_IDS
        )
    };
    id(&mut conn, &names(&format!("{r}, {gone}"))).await;
    let stream = Recorded::default();
    let err = relay::fan_out(&mut conn, Some(&stream), "/b", 100)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "carrier {c} names reservation {gone}, which does not exist"
        )),
        "{err}"
    );
    assert!(stream.0.lock().unwrap().is_empty(), "nothing published");
    let unrelayed = "SELECT count(*) AS id FROM outbox WHERE relayed_at IS NULL";
    assert_eq!(id(&mut conn, unrelayed).await, 1, "the carrier waits");

    id(&mut conn, &names(&r.to_string())).await;
    assert_eq!(
        relay::fan_out(&mut conn, Some(&stream), "/b", 100).await.unwrap(),
        1
    );
    assert_eq!(stream.0.lock().unwrap()[0].subject, format!("reservations/{r}"));
    assert_eq!(id(&mut conn, unrelayed).await, 0);
    drop(conn);
    db.drop_database().await;
}

/// Nobody subscribed: the relay publishes a carrier's events straight from it, in its place
/// (before a later event of the same reservation), each with its own id, the same however
/// often the carrier is relayed; no row is written per event. I12 counts a carried event.
#[tokio::test(flavor = "multi_thread")]
async fn a_carrier_is_published_item_by_item_in_its_place() {
    let db = Db::new().await;
    let mut conn = db.conn().await;
    let w = world(&mut conn).await;
    let r1 = unheld_reservation(&mut conn, &w).await;
    let r2 = unheld_reservation(&mut conn, &w).await;
    assert_eq!(missing(&mut conn).await, (2, 0), "no events yet");
    let c = carrier(&mut conn, &[r1, r2]).await;
    let cid = carrier_uuid(&mut conn, c).await;
    assert_eq!(missing(&mut conn).await, (0, 0), "an event in a carrier counts");
    set_status(&mut conn, r1, "confirmed", EventType::ReservationConfirmed).await;
    let stream = Recorded::default();
    assert_eq!(
        relay::fan_out(&mut conn, Some(&stream), "/b", 100).await.unwrap(),
        3
    );
    let streamed: Vec<(String, String, String)> = stream
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|e| (e.subject.clone(), e.event_type.as_str().to_owned(), e.id.clone()))
        .collect();
    assert_eq!(streamed.len(), 3);
    assert_eq!(
        streamed[0],
        (
            format!("reservations/{r1}"),
            "reservation.held".to_owned(),
            append::carried_event_id(cid, 0).to_string()
        )
    );
    assert_eq!(
        streamed[1],
        (
            format!("reservations/{r2}"),
            "reservation.held".to_owned(),
            append::carried_event_id(cid, 1).to_string()
        )
    );
    assert_eq!(
        (streamed[2].0.as_str(), streamed[2].1.as_str()),
        (format!("reservations/{r1}").as_str(), "reservation.confirmed")
    );
    let held = stream.0.lock().unwrap()[1].clone();
    assert_eq!(held.data["reservationId"], r2.to_string());
    assert_eq!(held.data["status"], "HELD");
    assert_eq!(held.data["seatCount"], 1);
    assert_eq!(held.data["totalPrice"], 100);
    // Made when relayed, after r1 was confirmed: its held event still says HELD.
    let first = stream.0.lock().unwrap()[0].clone();
    assert_eq!(first.data["reservationId"], r1.to_string());
    assert_eq!(first.data["status"], "HELD");
    assert_eq!(first.data["userId"], w.fan.to_string());
    // The object every other reservation event carries (`append::RESERVATION_DATA`, made
    // in SQL) but for its status, to the text: keys, their order, the time, the seats.
    let confirmed = stream.0.lock().unwrap()[2].clone();
    let mut as_held = confirmed.data.clone();
    as_held["status"] = "HELD".into();
    assert_eq!(first.data.to_string(), as_held.to_string());
    assert_ne!(streamed[0].2, streamed[1].2);
    assert_ne!(streamed[0].2, cid.to_string());
    assert_eq!(
        id(&mut conn, "SELECT count(*) AS id FROM outbox").await,
        2,
        "the carrier and the confirmation, nothing split"
    );
    assert_eq!(
        id(
            &mut conn,
            "SELECT count(*) AS id FROM outbox WHERE relayed_at IS NULL"
        )
        .await,
        0
    );
    assert_eq!(missing(&mut conn).await, (0, 0));
    // Relayed again (a relay that died before its commit): the same ids.
    diesel::sql_query("UPDATE outbox SET relayed_at = NULL")
        .execute(&mut *conn)
        .await
        .unwrap();
    let again = Recorded::default();
    relay::fan_out(&mut conn, Some(&again), "/b", 100).await.unwrap();
    let ids: Vec<String> = again.0.lock().unwrap().iter().map(|e| e.id.clone()).collect();
    let first: Vec<String> = streamed.iter().map(|s| s.2.clone()).collect();
    assert_eq!(ids, first);
    drop(conn);
    db.drop_database().await;
}

/// A webhook wants them: the carrier's events become rows of their own (already relayed,
/// the same ids as on the stream), after the later confirmation's row, and the receiver
/// still gets each reservation's events in order: the deliveries are ordered as created.
#[tokio::test(flavor = "multi_thread")]
async fn a_carrier_wanted_by_a_webhook_is_delivered_in_order() {
    let db = Db::new().await;
    let mut conn = db.conn().await;
    let w = world(&mut conn).await;
    let (addr, rx) = receiver(&[]).await;
    let (_, secret) = subscribe(&mut conn, w.host, Some(w.concert), addr).await;
    *rx.secret.lock().unwrap() = Some(secret);
    let r1 = unheld_reservation(&mut conn, &w).await;
    let r2 = unheld_reservation(&mut conn, &w).await;
    let c = carrier(&mut conn, &[r1, r2]).await;
    let cid = carrier_uuid(&mut conn, c).await;
    set_status(&mut conn, r1, "confirmed", EventType::ReservationConfirmed).await;
    let stream = Recorded::default();
    assert_eq!(
        relay::fan_out(&mut conn, Some(&stream), "/b", 100).await.unwrap(),
        3
    );
    assert_eq!(
        id(
            &mut conn,
            &format!(
                "SELECT count(*) AS id FROM outbox WHERE id > {c} AND subject <> 'batch'
                 AND relayed_at IS NOT NULL AND event_type = 'reservation.held'
                 AND event_id IN ('{}', '{}')",
                append::carried_event_id(cid, 0),
                append::carried_event_id(cid, 1)
            )
        )
        .await,
        2,
        "the carried events as rows of their own, relayed"
    );
    assert_eq!(missing(&mut conn).await, (0, 0));
    let (stop, stopped) = watch::channel(false);
    let task = Relay::new(db.pool.clone(), None, client(), config("a")).spawn(stopped);
    wait_for("three deliveries", || rx.seen.lock().unwrap().len() == 3).await;
    stop.send(true).unwrap();
    task.await.unwrap();
    let seen: Vec<(String, String, String)> = rx
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, _, e)| e.subject == format!("reservations/{r1}"))
        .map(|(webhook_id, valid, e)| {
            assert!(*valid, "a signature did not verify");
            assert_eq!(*webhook_id, e.id);
            (e.subject.clone(), e.event_type.as_str().to_owned(), e.id.clone())
        })
        .collect();
    assert_eq!(
        seen.iter().map(|s| s.1.as_str()).collect::<Vec<_>>(),
        ["reservation.held", "reservation.confirmed"]
    );
    assert_eq!(seen[0].2, append::carried_event_id(cid, 0).to_string());
    drop(conn);
    db.drop_database().await;
}
