//! Events out (C20, I12) through the API: webhooks made with `createWebhook`, a receiver on
//! 127.0.0.1 that checks every signature with the secret it was given, events in order per
//! reservation, retries until the receiver is back, the SSRF rules, and who may subscribe to
//! what. The relay's own mechanics (a relay killed mid-delivery, the lease, pruning) are
//! tested against real PostgreSQL in `crates/outbox/tests/relay.rs`.

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
use boxoffice_outbox::webhooks::{
    CloudEvent, Secret,
    signature::{self, DEFAULT_TOLERANCE_SECONDS},
};
use serde_json::{Value, json};

use crate::common::{Session, TestApp, code, layout};

const CREATE: &str = "mutation($i: CreateWebhookInput!) { createWebhook(input: $i) { id secret webhook { id url events concertId } } }";
const RESERVE: &str = "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }";
const PAY: &str =
    "mutation($r: ID!, $k: String!) { payReservation(reservationId: $r, idempotencyKey: $k) { id } }";
const CANCEL: &str = "mutation($r: ID!) { cancelReservation(reservationId: $r) { id } }";
const CHARGE: &str =
    "mutation($a: Int!, $k: String!) { chargePoints(amount: $a, idempotencyKey: $k) { balanceAfter } }";
const DELIVERIES: &str = "query($w: ID!) { webhookDeliveries(webhookId: $w) { edges { node {
    eventId eventType subject status attempts { statusCode latencyMs outcome } } } } }";

/// What the server needs to deliver to 127.0.0.1 quickly in a test.
const FAST: &[(&str, &str)] = &[
    ("WEBHOOK_ALLOW_PRIVATE", "true"),
    ("RELAY_POLL_MS", "50"),
    ("WEBHOOK_RETRY_FIRST_MS", "200"),
];

#[derive(Clone)]
struct Receiver {
    secret: Arc<Mutex<Option<Secret>>>,
    /// Statuses to answer, in order; 204 once empty.
    script: Arc<Mutex<VecDeque<u16>>>,
    /// (webhook-id, signature valid, event).
    seen: Arc<Mutex<Vec<(String, bool, CloudEvent)>>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let secret = r.secret.lock().unwrap().clone().unwrap();
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
    let status = r.script.lock().unwrap().pop_front().unwrap_or(204);
    StatusCode::from_u16(status).unwrap()
}

async fn receiver(script: &[u16]) -> (SocketAddr, Receiver) {
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

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..300 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn subscribe(app: &TestApp, host: &Session, concert: &str, addr: SocketAddr, rx: &Receiver) -> String {
    let made = app
        .ok(
            Some(&host.access),
            CREATE,
            json!({ "i": { "url": format!("http://{addr}/hook"), "events": [
                "reservation.held", "reservation.confirmed", "reservation.cancelled",
                "reservation.expired", "reservation.refunded"], "concertId": concert } }),
        )
        .await;
    let secret = made["createWebhook"]["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));
    *rx.secret.lock().unwrap() = Some(Secret::parse(secret).unwrap());
    made["createWebhook"]["id"].as_str().unwrap().to_owned()
}

async fn fan_with_points(app: &TestApp, email: &str) -> Session {
    let fan = app.sign_up(email).await;
    app.ok(Some(&fan.access), CHARGE, json!({ "a": 1000, "k": "charge-1" }))
        .await;
    fan
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reservations_events_reach_the_hosts_webhook_signed_and_in_order() {
    let app = TestApp::spawn_with(FAST).await;
    let show = app.show(layout(1, 4), 4).await;
    let (addr, rx) = receiver(&[]).await;
    let webhook = subscribe(&app, &show.host, &show.concert_id, addr, &rx).await;
    let fan = fan_with_points(&app, "fan@example.com").await;
    let t = Some(fan.access.as_str());
    let r = app
        .ok(
            t,
            RESERVE,
            json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[0], show.seats[1]] } }),
        )
        .await["reserveSeats"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.ok(t, PAY, json!({ "r": r, "k": "pay-1" })).await;
    app.ok(t, CANCEL, json!({ "r": r })).await;
    let other = app
        .ok(
            t,
            RESERVE,
            json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[2]] } }),
        )
        .await["reserveSeats"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.ok(t, CANCEL, json!({ "r": other })).await;
    wait_for("six events", || rx.seen.lock().unwrap().len() == 6).await;
    let seen = rx.seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|(_, valid, _)| *valid),
        "a signature did not verify with the secret"
    );
    let types_of = |id: &str| -> Vec<String> {
        seen.iter()
            .filter(|(_, _, e)| e.subject == format!("reservations/{id}"))
            .map(|(_, _, e)| e.event_type.as_str().to_owned())
            .collect()
    };
    assert_eq!(
        types_of(&r),
        [
            "reservation.held",
            "reservation.confirmed",
            "reservation.cancelled",
            "reservation.refunded"
        ]
    );
    assert_eq!(types_of(&other), ["reservation.held", "reservation.cancelled"]);
    let held = &seen
        .iter()
        .find(|(_, _, e)| e.subject == format!("reservations/{r}"))
        .unwrap()
        .2;
    assert_eq!(held.data["seatIds"], json!([show.seats[0], show.seats[1]]));
    assert_eq!(held.data["concertId"], show.concert_id);
    assert_eq!(held.data["status"], "HELD");
    // The delivery log: each delivered once, with its status code and latency. The relay
    // records an outcome after the receiver has answered, so the log may lag the receiver
    // by a moment on a loaded machine.
    let mut log = Value::Null;
    for _ in 0..100 {
        log = app
            .ok(Some(&show.host.access), DELIVERIES, json!({ "w": webhook }))
            .await;
        let edges = log["webhookDeliveries"]["edges"].as_array().unwrap();
        if edges.len() >= 6 && edges.iter().all(|e| e["node"]["status"] == "DELIVERED") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let edges = log["webhookDeliveries"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 6);
    for e in edges {
        assert_eq!(e["node"]["status"], "DELIVERED");
        assert_eq!(e["node"]["attempts"][0]["statusCode"], 204);
        assert!(e["node"]["attempts"][0]["latencyMs"].as_i64().unwrap() >= 0);
    }
    // The same events are on the deployment's Redis stream.
    let mut redis = app.redis().await;
    let stream: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(format!("{}events", app.state.config.redis_prefix))
        .arg("-")
        .arg("+")
        .query_async(&mut redis)
        .await
        .unwrap();
    let types: Vec<String> = stream
        .ids
        .iter()
        .map(|e| e.get::<String>("type").unwrap())
        .collect();
    assert_eq!(
        types.iter().filter(|t| t.starts_with("reservation.")).count(),
        6,
        "{types:?}"
    );
    assert!(types.iter().any(|t| t == "schedule.published"), "{types:?}");
    app.assert_invariants().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_receiver_is_retried_until_it_is_back_and_redelivery_repeats_the_id() {
    let app = TestApp::spawn_with(FAST).await;
    let show = app.show(layout(1, 4), 4).await;
    let (addr, rx) = receiver(&[503, 500]).await;
    let webhook = subscribe(&app, &show.host, &show.concert_id, addr, &rx).await;
    let fan = fan_with_points(&app, "fan@example.com").await;
    let t = Some(fan.access.as_str());
    let r = app
        .ok(
            t,
            RESERVE,
            json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[0]] } }),
        )
        .await["reserveSeats"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.ok(t, PAY, json!({ "r": r, "k": "pay-1" })).await;
    wait_for("both events", || {
        rx.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.2.event_type.as_str() == "reservation.confirmed")
            .count()
            == 1
    })
    .await;
    let seen = rx.seen.lock().unwrap().clone();
    let ids: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert!(
        ids[0] == ids[1] && ids[1] == ids[2],
        "retries share the webhook-id: {ids:?}"
    );
    assert_eq!(
        seen[3].2.event_type.as_str(),
        "reservation.confirmed",
        "the confirmation waited for the hold"
    );
    let log = app
        .ok(Some(&show.host.access), DELIVERIES, json!({ "w": webhook }))
        .await;
    let held = log["webhookDeliveries"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"]["eventType"] == "reservation.held")
        .unwrap()["node"]
        .clone();
    let codes: Vec<&Value> = held["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["statusCode"])
        .collect();
    assert_eq!(codes, [&json!(503), &json!(500), &json!(204)]);
    // Asked again, the same event comes again with the same id.
    let event = held["eventId"].as_str().unwrap();
    let again = app
        .ok(
            Some(&show.host.access),
            "mutation($e: ID!) { redeliverEvent(eventId: $e) { status } }",
            json!({ "e": event }),
        )
        .await;
    assert_eq!(again["redeliverEvent"][0]["status"], "PENDING");
    wait_for("the redelivery", || rx.seen.lock().unwrap().len() == 5).await;
    assert_eq!(rx.seen.lock().unwrap()[4].0, event);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_secret_and_the_old_one_both_sign_for_a_while() {
    let app = TestApp::spawn_with(FAST).await;
    let show = app.show(layout(1, 4), 4).await;
    let (addr, rx) = receiver(&[]).await;
    let webhook = subscribe(&app, &show.host, &show.concert_id, addr, &rx).await;
    let rotated = app
        .ok(
            Some(&show.host.access),
            "mutation($w: ID!) { rotateWebhookSecret(id: $w) { secret } }",
            json!({ "w": webhook }),
        )
        .await;
    let new = Secret::parse(rotated["rotateWebhookSecret"]["secret"].as_str().unwrap()).unwrap();
    let old = rx.secret.lock().unwrap().clone().unwrap();
    assert_ne!(new, old);
    let fan = app.sign_up("fan@example.com").await;
    app.ok(
        Some(&fan.access),
        RESERVE,
        json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[0]] } }),
    )
    .await;
    wait_for("the event", || rx.seen.lock().unwrap().len() == 1).await;
    assert!(rx.seen.lock().unwrap()[0].1, "the old secret still verifies");
    *rx.secret.lock().unwrap() = Some(new);
    app.ok(
        Some(&fan.access),
        RESERVE,
        json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[1]] } }),
    )
    .await;
    wait_for("the second event", || rx.seen.lock().unwrap().len() == 2).await;
    assert!(rx.seen.lock().unwrap()[1].1, "the new secret verifies");
}

#[tokio::test]
async fn urls_that_reach_inside_the_deployment_are_refused() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 2), 2).await;
    let t = Some(show.host.access.as_str());
    for url in [
        "http://127.0.0.1:6379/",
        "http://localhost:8080/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.8/hook",
        "http://[::1]/hook",
        "http://[fd00::1]/hook",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://2130706433/hook",
        "ftp://hooks.example.com/",
        "file:///etc/passwd",
        "https://user:pw@hooks.example.com/",
        "not a url",
    ] {
        let body = app
            .gql(
                t,
                CREATE,
                json!({ "i": { "url": url, "events": ["reservation.held"], "concertId": show.concert_id } }),
            )
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{url}: {body}");
    }
    assert_eq!(app.count("SELECT count(*) AS n FROM webhooks").await, 0);
}

#[tokio::test]
async fn a_host_subscribes_only_to_its_own_concerts() {
    let app = TestApp::spawn_with(&[("WEBHOOK_ALLOW_PRIVATE", "true")]).await;
    let mine = app.show(layout(1, 2), 2).await;
    let theirs = app.show(layout(1, 2), 2).await;
    let (addr, rx) = receiver(&[]).await;
    let input = |concert: Option<&str>, events: Value| json!({ "i": { "url": format!("http://{addr}/hook"), "events": events, "concertId": concert } });
    let t = Some(mine.host.access.as_str());
    let held = json!(["reservation.held"]);
    assert_eq!(
        code(
            &app.gql(t, CREATE, input(Some(&theirs.concert_id), held.clone()))
                .await
        ),
        "FORBIDDEN"
    );
    assert_eq!(
        code(&app.gql(t, CREATE, input(None, held.clone())).await),
        "FORBIDDEN",
        "every concert is for admins"
    );
    assert_eq!(
        code(&app.gql(t, CREATE, input(Some("999999"), held.clone())).await),
        "NOT_FOUND"
    );
    assert_eq!(
        code(
            &app.gql(t, CREATE, input(Some(&mine.concert_id), json!(["seat.sold"])))
                .await
        ),
        "BAD_USER_INPUT"
    );
    assert_eq!(
        code(&app.gql(t, CREATE, input(Some(&mine.concert_id), json!([]))).await),
        "BAD_USER_INPUT"
    );
    let fan = app.sign_up("fan@example.com").await;
    assert_eq!(
        code(
            &app.gql(
                Some(&fan.access),
                CREATE,
                input(Some(&mine.concert_id), held.clone())
            )
            .await
        ),
        "FORBIDDEN"
    );
    let webhook = subscribe(&app, &mine.host, &mine.concert_id, addr, &rx).await;
    // Another host sees nothing of it and can change nothing of it.
    let other = Some(theirs.host.access.as_str());
    let listed = app.ok(other, "{ webhooks { id } }", json!({})).await;
    assert_eq!(listed["webhooks"], json!([]));
    for op in [
        "mutation($w: ID!) { deleteWebhook(id: $w) { id } }",
        "mutation($w: ID!) { rotateWebhookSecret(id: $w) { secret } }",
        "query($w: ID!) { webhookDeliveries(webhookId: $w) { edges { node { id } } } }",
    ] {
        assert_eq!(
            code(&app.gql(other, op, json!({ "w": webhook })).await),
            "NOT_FOUND",
            "{op}"
        );
    }
    // An admin sees every webhook and may subscribe to everything.
    let admin = app.user_with_role("admin@example.com", "admin").await;
    let all = app
        .ok(Some(&admin.access), "{ webhooks { id } }", json!({}))
        .await;
    assert_eq!(all["webhooks"].as_array().unwrap().len(), 1);
    app.ok(Some(&admin.access), CREATE, input(None, held)).await;
    // The owner deletes it; the log goes with it.
    app.ok(
        t,
        "mutation($w: ID!) { deleteWebhook(id: $w) { id } }",
        json!({ "w": webhook }),
    )
    .await;
    assert_eq!(
        app.ok(t, "{ webhooks { id } }", json!({})).await["webhooks"],
        json!([])
    );
}

const NOTICES: &str =
    "query { unreadNoticeCount notices(first: 10) { edges { node { id kind subject message readAt } } } }";
const MARK_READ: &str = "mutation($u: ID!) { markNoticesRead(upTo: $u) }";

/// Issue 25: "then the endpoint is disabled and the host told". A receiver that answers 410
/// Gone is given up on at once; its owner finds a `webhook.disabled` notice saying why and
/// what brings it back, nobody else does, and marking it read is the owner's alone.
#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_webhooks_host_is_told_and_nobody_else() {
    let app = TestApp::spawn_with(FAST).await;
    let show = app.show(layout(1, 2), 2).await;
    let other = app.show(layout(1, 2), 2).await;
    let (addr, rx) = receiver(&[410]).await;
    let webhook = subscribe(&app, &show.host, &show.concert_id, addr, &rx).await;
    let host = Some(show.host.access.as_str());
    let none = app.ok(host, NOTICES, json!({})).await;
    assert_eq!(none["unreadNoticeCount"], 0);
    let fan = fan_with_points(&app, "fan@example.com").await;
    app.ok(
        Some(&fan.access),
        RESERVE,
        json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[0]] } }),
    )
    .await;
    wait_for("the 410", || !rx.seen.lock().unwrap().is_empty()).await;
    let mut told = Value::Null;
    // The two fields resolve concurrently on two connections: the count can see the notice
    // that the list, read a moment earlier, did not. Wait for both.
    for _ in 0..100 {
        told = app.ok(host, NOTICES, json!({})).await;
        if told["unreadNoticeCount"] == 1 && told["notices"]["edges"][0].is_object() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(told["unreadNoticeCount"], 1, "the host was not told: {told}");
    let notice = &told["notices"]["edges"][0]["node"];
    assert_eq!(notice["kind"], "webhook.disabled");
    assert_eq!(notice["subject"], format!("webhooks/{webhook}"));
    let message = notice["message"].as_str().unwrap();
    assert!(message.contains(&format!("http://{addr}/hook")), "{message}");
    assert!(message.contains("410"), "the reason is missing: {message}");
    assert!(notice["readAt"].is_null());
    // Nobody else is told, and nobody else can mark it read.
    for other in [&other.host, &fan] {
        let theirs = app.ok(Some(&other.access), NOTICES, json!({})).await;
        assert_eq!(theirs["unreadNoticeCount"], 0);
        assert_eq!(theirs["notices"]["edges"], json!([]));
        let marked = app
            .ok(Some(&other.access), MARK_READ, json!({ "u": notice["id"] }))
            .await;
        assert_eq!(marked["markNoticesRead"], 0);
    }
    assert_eq!(code(&app.gql(None, NOTICES, json!({})).await), "UNAUTHENTICATED");
    assert_eq!(
        code(&app.gql(host, MARK_READ, json!({ "u": "not-an-id" })).await),
        "BAD_USER_INPUT"
    );
    // The owner marks it read once; again changes nothing, and it stays in the list.
    let marked = app.ok(host, MARK_READ, json!({ "u": notice["id"] })).await;
    assert_eq!(marked["markNoticesRead"], 1);
    let again = app.ok(host, MARK_READ, json!({ "u": notice["id"] })).await;
    assert_eq!(again["markNoticesRead"], 0);
    let read = app.ok(host, NOTICES, json!({})).await;
    assert_eq!(read["unreadNoticeCount"], 0);
    assert!(read["notices"]["edges"][0]["node"]["readAt"].is_string());
}
