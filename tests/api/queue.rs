//! The waiting queue (C7) against the real Redis.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Session, Show, TestApp, code, layout};

const ENTER: &str = "mutation($s: ID!) { enterQueue(scheduleId: $s) { state position ahead etaSeconds admitted admissionExpiresAt } }";
const STATUS: &str = "query($s: ID!) { queueStatus(scheduleId: $s) { state position ahead admitted } }";
const RESERVE: &str = "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }";
const ORDER: &str = "mutation($i: ReserveSeatsInput!) { placeOrder(input: $i) { jobId } }";

/// A queued show: `rate` admissions a second, at most `max_active` at once.
async fn queued_show(app: &TestApp, rate: i32, max_active: i32) -> Show {
    let show = app.show(layout(4, 25), 4).await;
    app.set_schedule(
        &show.schedule_id,
        &format!("queue_enabled = true, admit_per_second = {rate}, max_active = {max_active}"),
    )
    .await;
    show
}

/// Keeps this app's gate away from a schedule, as if another instance held the lease.
async fn hold_lease_elsewhere(app: &TestApp, schedule_id: &str) {
    let mut r = app.redis().await;
    let key = format!("t:{}:{{s:{schedule_id}}}:lease", app.db.name);
    let () = redis::cmd("SET")
        .arg(key)
        .arg("elsewhere")
        .arg("PX")
        .arg(600_000)
        .query_async(&mut r)
        .await
        .unwrap();
}

async fn admitted_count(app: &TestApp, schedule_id: &str) -> i64 {
    let mut r = app.redis().await;
    let key = format!("t:{}:{{s:{schedule_id}}}:active", app.db.name);
    redis::cmd("ZCARD").arg(key).query_async(&mut r).await.unwrap()
}

async fn enter(app: &TestApp, who: &Session, show: &Show) -> Value {
    app.ok(Some(&who.access), ENTER, json!({ "s": show.schedule_id }))
        .await["enterQueue"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_entries_get_a_thousand_places() {
    let app = TestApp::spawn().await;
    let show = queued_show(&app, 10, 10).await;
    hold_lease_elsewhere(&app, &show.schedule_id).await;
    let users = app.bulk_users(1000).await;
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(200));
    let tasks: Vec<_> = users
        .iter()
        .map(|u| {
            let http = app.http.clone();
            let url = app.url("/graphql");
            let token = u.access.clone();
            let s = show.schedule_id.clone();
            let limit = limit.clone();
            tokio::spawn(async move {
                let _permit = limit.acquire().await.unwrap();
                let body: Value = http
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({ "query": ENTER, "variables": { "s": s } }))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                body["data"]["enterQueue"]["position"]
                    .as_i64()
                    .unwrap_or_else(|| panic!("{body}"))
            })
        })
        .collect();
    let mut positions = Vec::new();
    for t in tasks {
        positions.push(t.await.unwrap());
    }
    positions.sort_unstable();
    assert_eq!(positions, (1..=1000).collect::<Vec<_>>());

    // Entering again keeps the place.
    let again = enter(&app, &users[0], &show).await;
    let status = app
        .ok(Some(&users[0].access), STATUS, json!({ "s": show.schedule_id }))
        .await;
    assert_eq!(again["position"], status["queueStatus"]["position"]);
    assert_eq!(again["state"], "WAITING");
    assert_eq!(
        again["ahead"].as_i64().unwrap() + 1,
        again["position"].as_i64().unwrap()
    );
    assert!(again["etaSeconds"].as_i64().unwrap() >= 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_gate_admits_at_the_configured_rate_and_two_gates_admit_as_one() {
    let a = TestApp::spawn().await;
    let b = a.second_instance(&[]).await;
    let show = queued_show(&a, 20, 100_000).await;
    let users = a.bulk_users(400).await;
    for u in &users {
        enter(&a, u, &show).await;
    }
    let start = admitted_count(&a, &show.schedule_id).await;
    let t0 = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let admitted = admitted_count(&a, &show.schedule_id).await - start;
    let per_s = admitted as f64 / t0.elapsed().as_secs_f64();
    // Two instances run gates; the lease and the shared bucket make them admit as one.
    assert!(
        // Generous bounds: a loaded CI machine delays ticks; the exact rate is the benchmark's.
        (10.0..=28.0).contains(&per_s),
        "admitted {per_s:.1}/s at a configured 20/s"
    );
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_instance_takes_over_the_gate_when_its_holder_dies() {
    let mut a = TestApp::spawn().await;
    let b = a.second_instance(&[]).await;
    let show = queued_show(&a, 50, 100_000).await;
    let users = a.bulk_users(300).await;
    for u in &users {
        enter(&b, u, &show).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = admitted_count(&b, &show.schedule_id).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = admitted_count(&b, &show.schedule_id).await;
    assert!(
        after > before,
        "admissions go on after the first gate stopped: {before} -> {after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn booking_a_queued_show_needs_an_admission() {
    let app = TestApp::spawn().await;
    let show = queued_show(&app, 100, 1000).await;
    let fan = app.sign_up("fan@example.com").await;
    let input = json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[0]] } });
    assert_eq!(
        code(&app.gql(Some(&fan.access), RESERVE, input.clone()).await),
        "QUEUE_REQUIRED"
    );
    assert_eq!(
        code(&app.gql(Some(&fan.access), ORDER, input.clone()).await),
        "QUEUE_REQUIRED"
    );

    let ticket = enter(&app, &fan, &show).await;
    assert!(["WAITING", "ADMITTED"].contains(&ticket["state"].as_str().unwrap()));
    let mut admitted = false;
    for _ in 0..30 {
        let s = app
            .ok(Some(&fan.access), STATUS, json!({ "s": show.schedule_id }))
            .await;
        if s["queueStatus"]["admitted"] == true {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(admitted);
    assert!(app.gql(Some(&fan.access), RESERVE, input.clone()).await["errors"].is_null());

    // An admission that lapsed is no admission.
    let mut r = app.redis().await;
    let key = format!("t:{}:{{s:{}}}:active", app.db.name, show.schedule_id);
    let () = redis::cmd("ZADD")
        .arg(&key)
        .arg("XX")
        .arg(1)
        .arg(fan.id)
        .query_async(&mut r)
        .await
        .unwrap();
    let later = json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[1]] } });
    assert_eq!(
        code(&app.gql(Some(&fan.access), RESERVE, later).await),
        "QUEUE_REQUIRED"
    );

    // Schedules without a queue refuse entering it.
    let plain = app.show(layout(1, 2), 2).await;
    let body = app
        .gql(Some(&fan.access), ENTER, json!({ "s": plain.schedule_id }))
        .await;
    assert_eq!(code(&body), "CONFLICT");
    assert_eq!(
        code(&app.gql(None, ENTER, json!({ "s": show.schedule_id })).await),
        "UNAUTHENTICATED"
    );
    assert_eq!(
        code(&app.gql(Some(&fan.access), ENTER, json!({ "s": "999999" })).await),
        "NOT_FOUND"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn early_arrivals_are_shuffled_in_at_opening() {
    let app = TestApp::spawn().await;
    let show = queued_show(&app, 1, 1).await;
    app.set_schedule(&show.schedule_id, "sales_open_at = now() + interval '2 seconds'")
        .await;
    let users = app.bulk_users(40).await;
    for u in &users {
        let t = enter(&app, u, &show).await;
        assert_eq!(t["state"], "EARLY", "{t}");
        assert!(t["position"].is_null());
    }
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let mut order = Vec::new();
    for u in &users {
        let s = app
            .ok(Some(&u.access), STATUS, json!({ "s": show.schedule_id }))
            .await["queueStatus"]
            .clone();
        match s["state"].as_str().unwrap() {
            "WAITING" => order.push((s["position"].as_i64().unwrap(), u.id)),
            "ADMITTED" => order.push((0, u.id)),
            other => panic!("still {other} after opening"),
        }
    }
    order.sort_unstable();
    let by_place: Vec<i64> = order.iter().map(|(_, id)| *id).collect();
    let by_arrival: Vec<i64> = users.iter().map(|u| u.id).collect();
    assert_eq!(by_place.len(), 40, "nobody lost");
    assert_ne!(
        by_place, by_arrival,
        "early arrivals are placed in random order, not arrival order"
    );
    // Who arrives after opening queues behind all of them.
    let late = app.bulk_users(1).await;
    assert_eq!(
        enter(&app, &late[0], &show).await["ahead"].as_i64().unwrap() as usize,
        order.iter().filter(|p| p.0 > 0).count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn silent_waiters_drop_out() {
    let app = TestApp::spawn_with(&[("QUEUE_ABANDON_SECONDS", "1")]).await;
    let show = queued_show(&app, 1, 1).await;
    let users = app.bulk_users(5).await;
    for u in &users {
        enter(&app, u, &show).await;
    }
    // The last one keeps polling; the others go quiet.
    for _ in 0..20 {
        app.ok(Some(&users[4].access), STATUS, json!({ "s": show.schedule_id }))
            .await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let quiet = app
        .ok(Some(&users[2].access), STATUS, json!({ "s": show.schedule_id }))
        .await;
    assert_eq!(quiet["queueStatus"]["state"], "NOT_IN_QUEUE", "{quiet}");
    let alive = app
        .ok(Some(&users[4].access), STATUS, json!({ "s": show.schedule_id }))
        .await;
    assert!(
        ["WAITING", "ADMITTED"].contains(&alive["queueStatus"]["state"].as_str().unwrap()),
        "{alive}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_status_streams_until_admission() {
    use crate::websocket::{connect, init, recv, send};
    let app = TestApp::spawn().await;
    let show = queued_show(&app, 2, 1000).await;
    let users = app.bulk_users(6).await;
    for u in &users {
        enter(&app, u, &show).await;
    }
    let last = users.last().unwrap();
    let mut ws = connect(&app, "graphql-transport-ws").await;
    assert_eq!(init(&mut ws, Some(&last.access)).await["type"], "connection_ack");
    let sub = "subscription($s: ID!) { queueStatus(scheduleId: $s) { state position admitted } }";
    send(&mut ws, json!({ "id": "q", "type": "subscribe", "payload": { "query": sub, "variables": { "s": show.schedule_id } } })).await;
    let mut seen = Vec::new();
    loop {
        let msg = recv(&mut ws).await;
        assert_eq!(msg["type"], "next", "{msg}");
        let t = msg["payload"]["data"]["queueStatus"].clone();
        seen.push(t["state"].as_str().unwrap().to_owned());
        if t["admitted"] == true {
            break;
        }
    }
    assert_eq!(seen.last().unwrap(), "ADMITTED");

    // Anonymous sockets cannot follow a place in a queue.
    let mut anon = connect(&app, "graphql-transport-ws").await;
    init(&mut anon, None).await;
    send(&mut anon, json!({ "id": "q", "type": "subscribe", "payload": { "query": sub, "variables": { "s": show.schedule_id } } })).await;
    let msg = recv(&mut anon).await;
    let errors = if msg["type"] == "error" {
        msg["payload"].clone()
    } else {
        msg["payload"]["errors"].clone()
    };
    assert_eq!(errors[0]["extensions"]["code"], "UNAUTHENTICATED", "{msg}");
}
