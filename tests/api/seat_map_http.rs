//! The seat map as a cacheable HTTP resource (issue 28): `GET /schedules/{id}/seat-map`
//! with a strong ETag per schedule version, 304s from memory, immutable versions, the
//! GraphQL API's visibility; and `seatChanges(sinceVersion:)` taking a reader of that map
//! on from its version without a gap or a repeat.

use std::{collections::HashMap, time::Duration};

use serde_json::{Value, json};

use crate::{
    common::{
        ADD_SCHEDULE, CREATE_CONCERT, GENERATE, Show, TcpProxy, TestApp, layout, schedule_input, test_config,
    },
    websocket::{Ws, connect, init, recv, send},
};

const MAP_FIELDS: &str =
    "version grades { name price color } rows { section row seats grade } idRuns statuses";
const SINCE: &str = "subscription($s: ID!, $v: Int) { seatChanges(scheduleId: $s, sinceVersion: $v) { version resync packed } }";

async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app.http.get(app.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers().get(name).map_or("", |v| v.to_str().unwrap())
}

fn path(schedule_id: &str) -> String {
    format!("/schedules/{schedule_id}/seat-map")
}

async fn schedule_version(app: &TestApp, schedule_id: &str) -> i64 {
    app.count(&format!(
        "SELECT version AS n FROM schedules WHERE id = {schedule_id}"
    ))
    .await
}

/// Seat id -> status letter, from a map as the HTTP resource (or GraphQL) spells it.
fn statuses(map: &Value) -> HashMap<i64, char> {
    let runs = map["idRuns"].as_array().unwrap();
    let ids = runs.chunks(2).flat_map(|r| {
        let (first, count) = (r[0].as_i64().unwrap(), r[1].as_i64().unwrap());
        first..first + count
    });
    ids.zip(map["statuses"].as_str().unwrap().chars()).collect()
}

async fn hold(app: &TestApp, show: &Show, user_id: i64, seat: usize) {
    let schedule: i64 = show.schedule_id.parse().unwrap();
    let seat: i64 = show.seats[seat].parse().unwrap();
    boxoffice::booking::hold_order(
        &app.state,
        schedule,
        boxoffice::booking::HoldRequest::seats(user_id, vec![seat], None),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn the_latest_map_is_the_graphql_map_with_a_strong_etag_and_a_304() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(2, 5), 4).await;
    let resp = get(&app, &path(&show.schedule_id), &[]).await;
    assert_eq!(resp.status(), 200);
    let version = schedule_version(&app, &show.schedule_id).await;
    let etag = format!("\"seatmap-{}-{version}\"", show.schedule_id);
    assert_eq!(header(&resp, "etag"), etag);
    assert_eq!(header(&resp, "cache-control"), "public, max-age=1, s-maxage=1");
    assert_eq!(
        header(&resp, "content-location"),
        format!("/schedules/{}/seat-map?version={version}", show.schedule_id)
    );
    assert!(header(&resp, "content-type").starts_with("application/json"));
    let mut body: Value = resp.json().await.unwrap();
    assert_eq!(body["scheduleId"], show.schedule_id.as_str());
    assert_eq!(body["version"], version);
    assert_eq!(body["statuses"], "AAAAAAAAAA");
    // The same map as GraphQL's compact one, field for field.
    let gql = app
        .ok(
            None,
            &format!("query($s: ID!) {{ schedule(id: $s) {{ seatMap {{ {MAP_FIELDS} }} }} }}"),
            json!({ "s": show.schedule_id }),
        )
        .await;
    body.as_object_mut().unwrap().remove("scheduleId");
    assert_eq!(body, gql["schedule"]["seatMap"]);

    // The tag the reader holds is current: 304, no body, the same validators.
    let again = get(&app, &path(&show.schedule_id), &[("if-none-match", &etag)]).await;
    assert_eq!(again.status(), 304);
    assert_eq!(header(&again, "etag"), etag);
    assert_eq!(header(&again, "cache-control"), "public, max-age=1, s-maxage=1");
    assert!(again.bytes().await.unwrap().is_empty());
    // A weak spelling of it, or in a list, too.
    let weak = format!("\"other\", W/{etag}");
    assert_eq!(
        get(&app, &path(&show.schedule_id), &[("if-none-match", &weak)])
            .await
            .status(),
        304
    );

    // A hold moves the version: the old tag gets the new map.
    let fan = app.sign_up("fan@example.com").await;
    hold(&app, &show, fan.id, 0).await;
    // The settings cache the 304 path trusts lives a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let moved = get(&app, &path(&show.schedule_id), &[("if-none-match", &etag)]).await;
    assert_eq!(moved.status(), 200);
    let now = schedule_version(&app, &show.schedule_id).await;
    assert!(now > version);
    assert_eq!(
        header(&moved, "etag"),
        format!("\"seatmap-{}-{now}\"", show.schedule_id)
    );
    let body: Value = moved.json().await.unwrap();
    assert_eq!(body["version"], now);
    assert_eq!(body["statuses"], "HAAAAAAAAA");
}

#[tokio::test]
async fn a_version_is_immutable_while_kept_and_then_gone() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 4), 4).await;
    let v1 = schedule_version(&app, &show.schedule_id).await;
    let by_version = |v: i64| format!("{}?version={v}", path(&show.schedule_id));
    let resp = get(&app, &by_version(v1), &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    let tag = header(&resp, "etag").to_owned();
    assert_eq!(resp.json::<Value>().await.unwrap()["version"], v1);
    // Revalidating a version: 304.
    assert_eq!(
        get(&app, &by_version(v1), &[("if-none-match", &tag)])
            .await
            .status(),
        304
    );
    // A version not reached yet: 404, not cached.
    let ahead = get(&app, &by_version(v1 + 100), &[]).await;
    assert_eq!(ahead.status(), 404);
    assert_eq!(header(&ahead, "cache-control"), "no-store");

    let fan = app.sign_up("fan@example.com").await;
    hold(&app, &show, fan.id, 1).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let latest = get(&app, &path(&show.schedule_id), &[]).await;
    assert_eq!(latest.status(), 200);
    let v2 = latest.json::<Value>().await.unwrap()["version"].as_i64().unwrap();
    assert!(v2 > v1);
    // The old version is no longer kept: 410, pointing at the latest.
    let gone = get(&app, &by_version(v1), &[]).await;
    assert_eq!(gone.status(), 410);
    assert_eq!(header(&gone, "cache-control"), "no-store");
    let body: Value = gone.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "NOT_FOUND");
    assert_eq!(body["errors"][0]["extensions"]["latest"], v2);
    let kept = get(&app, &by_version(v2), &[]).await;
    assert_eq!(kept.status(), 200);
    assert_eq!(kept.json::<Value>().await.unwrap()["statuses"], "AHAA");
    // Not a version at all; not an id at all.
    assert_eq!(
        get(&app, &format!("{}?version=x", path(&show.schedule_id)), &[])
            .await
            .status(),
        400
    );
    assert_eq!(get(&app, "/schedules/abc/seat-map", &[]).await.status(), 400);
}

#[tokio::test]
async fn a_304_reads_nothing_from_the_database() {
    // The server reaches PostgreSQL through a proxy this test can partition.
    let db = crate::common::TestDb::new().await;
    let proxy = TcpProxy::start("127.0.0.1:5432").await;
    let proxied = db.url.replace("127.0.0.1:5432", &proxy.addr.to_string());
    let config = test_config(&db, &[("DATABASE_URL", &proxied)]);
    let state = boxoffice::state::AppState::connect(config).await.unwrap();
    let app = TestApp::serve(db, state).await;
    let show = app.show(layout(1, 3), 4).await;
    // The schedule's settings cache lives a second: let the read below start it afresh.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let first = get(&app, &path(&show.schedule_id), &[]).await;
    assert_eq!(first.status(), 200);
    let etag = header(&first, "etag").to_owned();
    proxy.partition();
    // Within the settings cache's second: answered from memory, or not at all.
    let revalidated = tokio::time::timeout(
        Duration::from_millis(500),
        get(&app, &path(&show.schedule_id), &[("if-none-match", &etag)]),
    )
    .await
    .expect("a 304 does not wait for the database");
    assert_eq!(revalidated.status(), 304);
    proxy.restore();
}

#[tokio::test]
async fn a_draft_map_is_its_hosts_alone_and_never_shared() {
    let app = TestApp::spawn().await;
    let host = app.user_with_role("host@example.com", "host").await;
    let other = app.user_with_role("other@example.com", "host").await;
    let t = Some(host.access.as_str());
    let concert = app
        .ok(
            t,
            CREATE_CONCERT,
            json!({ "i": { "title": "Secret", "artist": "A", "venue": "V", "category": "pop" } }),
        )
        .await["createConcert"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let s = app
        .ok(t, ADD_SCHEDULE, json!({ "c": concert, "i": schedule_input(4) }))
        .await["addSchedule"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.ok(t, GENERATE, json!({ "s": s, "l": layout(1, 2) })).await;
    let missing = get(&app, &path("999999"), &[]).await;
    assert_eq!(missing.status(), 404);
    assert_eq!(header(&missing, "cache-control"), "no-store");
    let missing: Value = missing.json().await.unwrap();
    let other_bearer = format!("Bearer {}", other.access);
    for auth in [None, Some(other_bearer.as_str())] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let draft = get(&app, &path(&s), &headers).await;
        assert_eq!(draft.status(), 404, "{auth:?}");
        assert_eq!(
            draft.json::<Value>().await.unwrap(),
            missing,
            "a draft answers as a missing id"
        );
    }
    let bearer = format!("Bearer {}", host.access);
    let own = get(&app, &path(&s), &[("authorization", &bearer)]).await;
    assert_eq!(own.status(), 200);
    assert_eq!(header(&own, "cache-control"), "private, no-cache");

    // Published, then cancelled: public, as in GraphQL.
    app.ok(
        t,
        "mutation($c: ID!) { publishConcert(id: $c) { id } }",
        json!({ "c": concert }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let public = get(&app, &path(&s), &[]).await;
    assert_eq!(public.status(), 200);
    assert_eq!(header(&public, "cache-control"), "public, max-age=1, s-maxage=1");
    app.ok(
        t,
        "mutation($c: ID!) { cancelConcert(id: $c, reason: \"storm\") { id } }",
        json!({ "c": concert }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let cancelled = get(&app, &path(&s), &[]).await;
    assert_eq!(cancelled.status(), 200);
    let gql = app
        .gql(
            None,
            "query($s: ID!) { schedule(id: $s) { id } }",
            json!({ "s": s }),
        )
        .await;
    assert_eq!(gql["data"]["schedule"]["id"], s.as_str(), "GraphQL shows it too");
}

#[tokio::test]
async fn other_origins_may_read_the_map_and_its_tag() {
    let app = TestApp::spawn_with(&[("CORS_ALLOWED_ORIGINS", "http://localhost:5173")]).await;
    let show = app.show(layout(1, 2), 4).await;
    let resp = get(
        &app,
        &path(&show.schedule_id),
        &[("origin", "http://localhost:5173")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "access-control-allow-origin"),
        "http://localhost:5173"
    );
    let exposed = header(&resp, "access-control-expose-headers").to_ascii_lowercase();
    assert!(exposed.contains("etag"), "{exposed}");
    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, app.url(&path(&show.schedule_id)))
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "if-none-match")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    let allowed = header(&preflight, "access-control-allow-headers").to_ascii_lowercase();
    assert!(allowed.contains("if-none-match"), "{allowed}");
    let elsewhere = get(
        &app,
        &path(&show.schedule_id),
        &[("origin", "https://evil.example.com")],
    )
    .await;
    assert!(elsewhere.headers().get("access-control-allow-origin").is_none());
}

async fn subscribe_since(app: &TestApp, schedule_id: &str, since: Option<i64>) -> Ws {
    let mut ws = connect(app, "graphql-transport-ws").await;
    assert_eq!(init(&mut ws, None).await["type"], "connection_ack");
    send(
        &mut ws,
        json!({ "id": "m", "type": "subscribe", "payload": { "query": SINCE, "variables": { "s": schedule_id, "v": since } } }),
    )
    .await;
    ws
}

async fn event(ws: &mut Ws) -> Value {
    let msg = recv(ws).await;
    assert_eq!(msg["type"], "next", "{msg}");
    msg["payload"]["data"]["seatChanges"].clone()
}

/// Applies a `packed` list (`<id><A|H|S>,...`) to a map.
fn apply(map: &mut HashMap<i64, char>, packed: &str) -> usize {
    let mut n = 0;
    for item in packed.split(',').filter(|s| !s.is_empty()) {
        let (id, status) = item.split_at(item.len() - 1);
        map.insert(id.parse().unwrap(), status.chars().next().unwrap());
        n += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_starting_from_a_snapshot_miss_nothing_and_see_nothing_twice() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(4, 50), 4).await;
    // Someone watches already: the instance's feed keeps what changed since.
    let mut watcher = subscribe_since(&app, &show.schedule_id, None).await;
    event(&mut watcher).await;
    let users: Vec<i64> = app.bulk_users(200).await.into_iter().map(|u| u.id).collect();
    // A stream of single-seat holds, while readers take snapshots and subscribe.
    let holds = {
        let (app_state, show_seats, schedule) =
            (app.state.clone(), show.seats.clone(), show.schedule_id.clone());
        tokio::spawn(async move {
            let schedule: i64 = schedule.parse().unwrap();
            for (i, user) in users.into_iter().enumerate() {
                let seat: i64 = show_seats[i].parse().unwrap();
                boxoffice::booking::hold_order(
                    &app_state,
                    schedule,
                    boxoffice::booking::HoldRequest::seats(user, vec![seat], None),
                )
                .await
                .unwrap();
                if i % 20 == 0 {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
            }
        })
    };
    let mut readers = Vec::new();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(120)).await;
        let snapshot: Value = get(&app, &path(&show.schedule_id), &[])
            .await
            .json()
            .await
            .unwrap();
        let version = snapshot["version"].as_i64().unwrap();
        let ws = subscribe_since(&app, &show.schedule_id, Some(version)).await;
        readers.push((statuses(&snapshot), version, ws));
    }
    holds.await.unwrap();
    let final_version = schedule_version(&app, &show.schedule_id).await;
    for (mut map, since, mut ws) in readers {
        let first = event(&mut ws).await;
        assert_eq!(
            first["resync"], false,
            "the feed's history covers a fresh snapshot"
        );
        let mut version = first["version"].as_i64().unwrap();
        assert!(version >= since);
        apply(&mut map, first["packed"].as_str().unwrap());
        while version < final_version {
            let e = event(&mut ws).await;
            assert_eq!(e["resync"], false);
            let v = e["version"].as_i64().unwrap();
            assert!(v > version, "no event twice: {v} after {version}");
            version = v;
            apply(&mut map, e["packed"].as_str().unwrap());
        }
        let held = map.values().filter(|s| **s == 'H').count();
        assert_eq!(held, 200, "snapshot + deltas = every hold, none missed");
        // GraphQL reads the schedule's version now (the HTTP latest may trust a second-old one).
        let latest = app
            .ok(
                None,
                &format!("query($s: ID!) {{ schedule(id: $s) {{ seatMap {{ {MAP_FIELDS} }} }} }}"),
                json!({ "s": show.schedule_id }),
            )
            .await;
        assert_eq!(map, statuses(&latest["schedule"]["seatMap"]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_version_the_server_cannot_account_for_says_resync() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 6), 4).await;
    let v0 = schedule_version(&app, &show.schedule_id).await;
    // Nobody watches: no history on this instance.
    let fan = app.sign_up("fan@example.com").await;
    hold(&app, &show, fan.id, 0).await;
    let now = schedule_version(&app, &show.schedule_id).await;
    let mut old = subscribe_since(&app, &show.schedule_id, Some(v0)).await;
    let first = event(&mut old).await;
    assert_eq!(first["resync"], true, "{first}");
    assert_eq!(first["version"], now);
    // From the current version there is nothing to catch up on.
    let mut current = subscribe_since(&app, &show.schedule_id, Some(now)).await;
    let first = event(&mut current).await;
    assert_eq!(
        (first["resync"].as_bool(), first["version"].as_i64()),
        (Some(false), Some(now))
    );
    assert_eq!(first["packed"], "");
    // Both go on with the next change.
    let other = app.sign_up("other@example.com").await;
    hold(&app, &show, other.id, 1).await;
    for ws in [&mut old, &mut current] {
        let e = event(ws).await;
        assert_eq!(e["packed"], format!("{}H", show.seats[1]));
    }
    // A version below zero is bad input.
    let mut bad = subscribe_since(&app, &show.schedule_id, Some(-1)).await;
    let msg = recv(&mut bad).await;
    let errors = if msg["type"] == "error" {
        msg["payload"].clone()
    } else {
        msg["payload"]["errors"].clone()
    };
    assert_eq!(errors[0]["extensions"]["code"], "BAD_USER_INPUT", "{msg}");
}
