//! Live subscriptions across instances (C11, C14), over real WebSocket connections.

use std::{collections::HashMap, time::Duration};

use serde_json::{Value, json};

use crate::{
    common::{Show, TcpProxy, TestApp, layout, test_config},
    websocket::{Ws, connect, init, recv, send},
};

const SEAT_CHANGES: &str = "subscription($s: ID!) { seatChanges(scheduleId: $s) { scheduleId version resync packed seats { id status } availability { grade total available held sold } } }";
const RESERVE: &str = "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }";

async fn subscribe(app: &TestApp, schedule_id: &str) -> Ws {
    let mut ws = connect(app, "graphql-transport-ws").await;
    assert_eq!(init(&mut ws, None).await["type"], "connection_ack");
    send(&mut ws, json!({ "id": "s", "type": "subscribe", "payload": { "query": SEAT_CHANGES, "variables": { "s": schedule_id } } })).await;
    ws
}

/// The next seatChanges payload.
async fn event(ws: &mut Ws) -> Value {
    let msg = recv(ws).await;
    assert_eq!(msg["type"], "next", "{msg}");
    msg["payload"]["data"]["seatChanges"].clone()
}

async fn hold(app: &TestApp, show: &Show, who: &str, seat: usize) {
    let fan = app.sign_up(who).await;
    app.ok(
        Some(&fan.access),
        RESERVE,
        json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[seat]] } }),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hold_on_one_instance_reaches_a_subscriber_on_another() {
    let a = TestApp::spawn().await;
    let b = a.second_instance(&[]).await;
    let show = a.show(layout(2, 5), 4).await;
    let mut ws = subscribe(&b, &show.schedule_id).await;
    let first = event(&mut ws).await;
    assert_eq!(first["seats"], json!([]), "the first event is the current state");
    let v0 = first["version"].as_i64().unwrap();
    let vip = first["availability"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["grade"] == "VIP")
        .unwrap()
        .clone();
    assert_eq!(vip["available"], 5);

    hold(&a, &show, "fan@example.com", 0).await;
    let next = event(&mut ws).await;
    assert_eq!(next["seats"], json!([{ "id": show.seats[0], "status": "HELD" }]));
    assert!(next["version"].as_i64().unwrap() > v0);
    assert_eq!(next["resync"], false);
    let vip = next["availability"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["grade"] == "VIP")
        .unwrap()
        .clone();
    assert_eq!(
        (vip["available"].as_i64(), vip["held"].as_i64()),
        (Some(4), Some(1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_rapid_changes_are_coalesced_and_exact() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(10, 100), 4).await;
    let mut ws = subscribe(&app, &show.schedule_id).await;
    let v0 = event(&mut ws).await["version"].as_i64().unwrap();
    let schedule: i64 = show.schedule_id.parse().unwrap();
    // 1,000 users each holding one seat, as fast as the server takes them.
    let users: Vec<i64> = app.bulk_users(1000).await.into_iter().map(|u| u.id).collect();
    let started = std::time::Instant::now();
    let tasks: Vec<_> = users
        .into_iter()
        .enumerate()
        .map(|(i, user_id)| {
            let state = app.state.clone();
            let seat: i64 = show.seats[i].parse().unwrap();
            tokio::spawn(async move {
                boxoffice::booking::hold_order(
                    &state,
                    schedule,
                    boxoffice::booking::HoldRequest::seats(user_id, vec![seat], None),
                )
                .await
                .unwrap()
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let final_version = app
        .count(&format!(
            "SELECT version AS n FROM schedules WHERE id = {schedule}"
        ))
        .await;
    let mut held = std::collections::HashSet::new();
    let mut events = 0;
    let mut version = v0;
    while version < final_version {
        let e = event(&mut ws).await;
        events += 1;
        let v = e["version"].as_i64().unwrap();
        assert!(v > version, "versions only grow");
        version = v;
        for s in e["seats"].as_array().unwrap() {
            assert_eq!(s["status"], "HELD");
            held.insert(s["id"].as_str().unwrap().to_owned());
        }
        let total_held: i64 = e["availability"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["held"].as_i64().unwrap())
            .sum();
        assert!(
            total_held as usize >= held.len(),
            "counts are never older than the seats in the event"
        );
    }
    let elapsed = started.elapsed();
    assert_eq!(held.len(), 1000, "every change arrived");
    // At most ~10 a second (one window of slack), far fewer than the 1,000 changes.
    let bound = (elapsed.as_secs_f64() * 10.0).ceil() as usize + 2;
    assert!(events <= bound, "{events} events in {elapsed:?}");
    println!("1,000 holds in {elapsed:?} arrived in {events} events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_redis_subscription_per_topic_per_instance() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 5), 4).await;
    // The instance's own standing topics (the locked accounts' announcements).
    let own = app.state.live.hub.topic_count();
    let mut sockets = Vec::new();
    for _ in 0..20 {
        let mut ws = subscribe(&app, &show.schedule_id).await;
        event(&mut ws).await;
        sockets.push(ws);
    }
    let channel = format!("t:{}:live:{{s:{}}}:seats", app.db.name, show.schedule_id);
    let mut redis = app.redis().await;
    // A cluster's hub uses sharded pub/sub (the cluster client sums the nodes' counts).
    let numsub_cmd = if app.state.kv().unwrap().is_cluster() {
        "SHARDNUMSUB"
    } else {
        "NUMSUB"
    };
    let numsub: HashMap<String, i64> = redis::cmd("PUBSUB")
        .arg(numsub_cmd)
        .arg(&channel)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(
        numsub[&channel], 1,
        "20 local subscribers, one Redis subscription"
    );
    assert_eq!(app.state.live.hub.topic_count(), own + 1);

    drop(sockets);
    let mut gone = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let numsub: HashMap<String, i64> = redis::cmd("PUBSUB")
            .arg(numsub_cmd)
            .arg(&channel)
            .query_async(&mut redis)
            .await
            .unwrap();
        if numsub[&channel] == 0 && app.state.live.hub.topic_count() == own {
            gone = true;
            break;
        }
    }
    assert!(gone, "the Redis subscription ends with the last local subscriber");
}

#[tokio::test]
async fn unknown_and_draft_schedules_cannot_be_watched() {
    let app = TestApp::spawn().await;
    let mut ws = connect(&app, "graphql-transport-ws").await;
    init(&mut ws, None).await;
    send(&mut ws, json!({ "id": "1", "type": "subscribe", "payload": { "query": SEAT_CHANGES, "variables": { "s": "999999" } } })).await;
    let msg = recv(&mut ws).await;
    let errors = if msg["type"] == "error" {
        msg["payload"].clone()
    } else {
        msg["payload"]["errors"].clone()
    };
    assert_eq!(errors[0]["extensions"]["code"], "NOT_FOUND", "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_outage_resyncs_subscribers_and_queries_keep_working() {
    let proxy = TcpProxy::start("127.0.0.1:6379").await;
    let redis_url = format!("redis://{}", proxy.addr);
    let db = crate::common::TestDb::new().await;
    let state = boxoffice::state::AppState::connect(test_config(&db, &[("REDIS_URL", &redis_url)]))
        .await
        .unwrap();
    let app = TestApp::serve(db, state).await;
    let show = app.show(layout(1, 10), 4).await;
    let mut ws = subscribe(&app, &show.schedule_id).await;
    event(&mut ws).await;
    hold(&app, &show, "before@example.com", 0).await;
    assert_eq!(event(&mut ws).await["seats"][0]["status"], "HELD");

    proxy.cut();
    // PostgreSQL-backed work goes on while Redis is away.
    hold(&app, &show, "during@example.com", 1).await;
    let map = app
        .ok(
            None,
            "query($s: ID!) { schedule(id: $s) { bookedCount } }",
            json!({ "s": show.schedule_id }),
        )
        .await;
    assert_eq!(map["schedule"]["bookedCount"], 2);
    proxy.restore();

    // The subscription survives and says that changes may have been missed.
    let resync = event(&mut ws).await;
    assert_eq!(resync["resync"], true, "{resync}");
    // And live updates flow again: an event shows a seat held since. (Any of them: the
    // first hold's may come after its wait, and the next wait would then meet it.)
    let mut delivered = false;
    let mut seen = Vec::new();
    for i in 2..8 {
        hold(&app, &show, &format!("after{i}@example.com"), i).await;
        let Ok(e) = tokio::time::timeout(Duration::from_secs(3), event(&mut ws)).await else {
            seen.push(format!("hold {i}: nothing within 3 s"));
            continue;
        };
        if e["seats"].as_array().is_some_and(|s| {
            s.iter()
                .any(|s| show.seats[2..=i].contains(&s["id"].as_str().unwrap_or_default().to_owned()))
        }) {
            delivered = true;
            break;
        }
        seen.push(format!("hold {i}: {e}"));
    }
    assert!(delivered, "updates resume after the outage: {seen:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn packed_events_and_the_compact_seat_map_agree_with_the_full_ones() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(3, 4), 4).await;
    let q = "query($s: ID!) { schedule(id: $s) { version seats { id status } seatMap { version rows { section row seats grade } grades { name price } idRuns statuses } } }";
    let before = app.ok(None, q, json!({ "s": show.schedule_id })).await["schedule"].clone();
    let map = &before["seatMap"];
    assert_eq!(map["statuses"], "AAAAAAAAAAAA");
    assert_eq!(map["rows"].as_array().unwrap().len(), 3);
    assert_eq!(
        map["rows"][1],
        json!({ "section": "Floor", "row": "R1", "seats": 4, "grade": 1 })
    );
    assert_eq!(map["grades"][1], json!({ "name": "R", "price": 100 }));
    // The runs expand to exactly the ids of the full map, in order.
    let runs: Vec<i64> = map["idRuns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let expanded: Vec<String> = runs
        .chunks(2)
        .flat_map(|r| (r[0]..r[0] + r[1]).map(|id| id.to_string()))
        .collect();
    assert_eq!(expanded, show.seats);

    let sub = "subscription($s: ID!) { seatChanges(scheduleId: $s) { version packed } }";
    let mut ws = connect(&app, "graphql-transport-ws").await;
    init(&mut ws, None).await;
    send(&mut ws, json!({ "id": "p", "type": "subscribe", "payload": { "query": sub, "variables": { "s": show.schedule_id } } })).await;
    assert_eq!(event(&mut ws).await["packed"], "");
    hold(&app, &show, "fan@example.com", 5).await;
    let e = event(&mut ws).await;
    assert_eq!(e["packed"], format!("{}H", show.seats[5]));

    let after = app.ok(None, q, json!({ "s": show.schedule_id })).await["schedule"].clone();
    assert!(after["seatMap"]["version"].as_i64().unwrap() > map["version"].as_i64().unwrap());
    assert_eq!(after["seatMap"]["statuses"], "AAAAAHAAAAAA");
    let full: String = after["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["status"].as_str().unwrap()[..1])
        .collect();
    assert_eq!(full, "AAAAAHAAAAAA");
    // Availability read from the built map (same version) matches the seats.
    let counts = app
        .ok(
            None,
            "query($s: ID!) { schedule(id: $s) { availability { grade total available held } } }",
            json!({ "s": show.schedule_id }),
        )
        .await;
    assert_eq!(
        counts["schedule"]["availability"][1],
        json!({ "grade": "R", "total": 4, "available": 3, "held": 1 })
    );
}

/// The fields of `SEAT_CHANGES` in another order than the schema's.
const REORDERED: &str = "subscription($s: ID!) { seatChanges(scheduleId: $s) { availability { sold grade } seats { status id } version scheduleId } }";

/// `seatChanges` of `schedule_id` on a new socket (signed in with `token`, or anonymous),
/// read up to its first event.
async fn watcher(app: &TestApp, token: Option<&str>, schedule_id: &str, id: &str) -> Ws {
    watch_with(app, token, SEAT_CHANGES, schedule_id, id).await
}

async fn watch_with(app: &TestApp, token: Option<&str>, query: &str, schedule_id: &str, id: &str) -> Ws {
    let mut ws = connect(app, "graphql-transport-ws").await;
    assert_eq!(init(&mut ws, token).await["type"], "connection_ack");
    send(&mut ws, json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": { "s": schedule_id } } })).await;
    let first = recv(&mut ws).await;
    assert_eq!(first["id"], id, "{first}");
    assert_eq!(
        first["payload"]["data"]["seatChanges"]["seats"],
        json!([]),
        "{first}"
    );
    ws
}

fn executed(app: &TestApp) -> u64 {
    app.state
        .subscriptions
        .seat_events_executed
        .load(std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identical_subscriptions_are_executed_once_per_event() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(2, 5), 4).await;
    // Different accounts, one question: one group.
    let mut sockets = Vec::new();
    for i in 0..6 {
        let fan = app.sign_up(&format!("watcher{i}@example.com")).await;
        sockets.push(
            watch_with(
                &app,
                Some(&fan.access),
                REORDERED,
                &show.schedule_id,
                &format!("op{i}"),
            )
            .await,
        );
    }
    assert_eq!(app.state.subscriptions.groups.len(), 1);
    let before = executed(&app);

    hold(&app, &show, "fan@example.com", 0).await;
    let mut payloads = Vec::new();
    for (i, ws) in sockets.iter_mut().enumerate() {
        let msg = recv(ws).await;
        // Each frame carries its own socket's operation id around the shared payload.
        assert_eq!(msg["type"], "next", "{msg}");
        assert_eq!(msg["id"], format!("op{i}"));
        let event = &msg["payload"]["data"]["seatChanges"];
        assert_eq!(event["seats"], json!([{ "status": "HELD", "id": show.seats[0] }]));
        payloads.push(msg["payload"].to_string());
    }
    assert!(payloads.windows(2).all(|w| w[0] == w[1]));
    // In request order, not the schema's: the field-order extension ran on the shared
    // execution (the JSON text is compared, so key order counts).
    assert!(
        payloads[0].starts_with(r#"{"data":{"seatChanges":{"availability":[{"sold":0,"grade":"#),
        "{}",
        payloads[0]
    );
    assert!(
        payloads[0].contains(r#""seats":[{"status":"HELD","id":"#),
        "{}",
        payloads[0]
    );
    assert_eq!(executed(&app) - before, 1, "one execution for six subscribers");
    assert_eq!(app.state.subscriptions.groups.executed(), 1);

    // The group ends with its last member.
    drop(sockets);
    for _ in 0..50 {
        if app.state.subscriptions.groups.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(app.state.subscriptions.groups.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn different_variables_or_audiences_make_separate_groups() {
    let app = TestApp::spawn().await;
    let a = app.show(layout(2, 5), 4).await;
    let b = app.show(layout(2, 5), 4).await;
    let fan = app.sign_up("watcher@example.com").await;
    let mut on_a = watcher(&app, Some(&fan.access), &a.schedule_id, "a").await;
    let mut on_b = watcher(&app, Some(&fan.access), &b.schedule_id, "b").await;
    let mut anonymous_on_a = watcher(&app, None, &a.schedule_id, "a").await;
    assert_eq!(app.state.subscriptions.groups.len(), 3);
    let before = executed(&app);

    hold(&app, &b, "fan@example.com", 0).await;
    let on_b_event = event(&mut on_b).await;
    assert_eq!(
        on_b_event["seats"],
        json!([{ "id": b.seats[0], "status": "HELD" }])
    );
    hold(&app, &a, "fan2@example.com", 1).await;
    for ws in [&mut on_a, &mut anonymous_on_a] {
        let on_a_event = event(ws).await;
        assert_eq!(
            on_a_event["seats"],
            json!([{ "id": a.seats[1], "status": "HELD" }]),
            "a's event, not b's"
        );
    }
    assert_eq!(executed(&app) - before, 3, "one execution per group and event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_specific_subscription_is_not_shared_across_users() {
    const QUEUE: &str = "subscription($s: ID!) { queueStatus(scheduleId: $s) { id state } }";
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 10), 4).await;
    app.set_schedule(
        &show.schedule_id,
        "queue_enabled = true, admit_per_second = 1, max_active = 1,
         sales_open_at = now() + interval '1 hour'",
    )
    .await;
    let vars = json!({ "s": show.schedule_id });
    let mut ids = Vec::new();
    for who in ["fan@example.com", "other@example.com"] {
        let user = app.sign_up(who).await;
        let entered = app
            .ok(
                Some(&user.access),
                "mutation($s: ID!) { enterQueue(scheduleId: $s) { id } }",
                vars.clone(),
            )
            .await["enterQueue"]["id"]
            .clone();
        let mut ws = connect(&app, "graphql-transport-ws").await;
        assert_eq!(init(&mut ws, Some(&user.access)).await["type"], "connection_ack");
        send(
            &mut ws,
            json!({ "id": "q", "type": "subscribe", "payload": { "query": QUEUE, "variables": vars } }),
        )
        .await;
        let msg = recv(&mut ws).await;
        assert_eq!(msg["type"], "next", "{msg}");
        assert_eq!(
            msg["payload"]["data"]["queueStatus"]["id"], entered,
            "each user sees their own place"
        );
        ids.push(entered);
    }
    assert_ne!(ids[0], ids[1]);
    assert!(
        app.state.subscriptions.groups.is_empty(),
        "a viewer's own stream runs per socket"
    );
}
