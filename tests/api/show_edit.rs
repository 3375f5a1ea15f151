//! Running a show, part one (issue 24): a host edits a performance (`updateSchedule`),
//! changes prices before the first sale (`updateGradePrices`) and replaces a layout that
//! only dead reservations touched. Every refusal names its rule.

use serde_json::{Value, json};

use crate::common::{GENERATE, Show, TestApp, code, layout};

const UPDATE: &str = "mutation($id: ID!, $i: ScheduleUpdateInput!) { updateSchedule(id: $id, input: $i) {
    id startsAt salesOpenAt salesCloseAt perUserLimit holdSeconds queueEnabled maxActive version } }";
const PRICES: &str =
    "mutation($s: ID!, $p: [GradePriceInput!]!) { updateGradePrices(scheduleId: $s, prices: $p) {
    id version availability { grade price } } }";
const RESERVE: &str = "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id status totalPrice seats { id price } } }";
const PAY: &str =
    "mutation($r: ID!, $k: String!) { payReservation(reservationId: $r, idempotencyKey: $k) { id status } }";
const CANCEL: &str = "mutation($r: ID!) { cancelReservation(reservationId: $r) { id status } }";
const CHARGE: &str =
    "mutation($a: Int!, $k: String!) { chargePoints(amount: $a, idempotencyKey: $k) { balanceAfter } }";

fn message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or_default()
}

fn field(body: &Value) -> &str {
    body["errors"][0]["extensions"]["field"]
        .as_str()
        .unwrap_or_default()
}

fn at(days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(days)).to_rfc3339()
}

async fn hold(app: &TestApp, token: &str, show: &Show, seats: &[usize]) -> Value {
    let ids: Vec<&str> = seats.iter().map(|i| show.seats[*i].as_str()).collect();
    app.gql(
        Some(token),
        RESERVE,
        json!({ "i": { "scheduleId": show.schedule_id, "seatIds": ids } }),
    )
    .await
}

#[tokio::test]
async fn a_host_edits_a_performance_within_its_rules() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(2, 5), 4).await;
    let t = Some(show.host.access.as_str());
    let id = &show.schedule_id;

    let edited = app
        .ok(
            t,
            UPDATE,
            json!({ "id": id, "i": { "startsAt": at(5), "salesCloseAt": at(4), "holdSeconds": 120,
                                      "queueEnabled": true, "maxActive": 50 } }),
        )
        .await["updateSchedule"]
        .clone();
    assert_eq!(edited["holdSeconds"], 120);
    assert_eq!(edited["queueEnabled"], true);
    assert_eq!(edited["maxActive"], 50);
    assert_eq!(edited["perUserLimit"], 4, "absent fields stay");

    // Nothing moves into the past.
    let body = app
        .gql(t, UPDATE, json!({ "id": id, "i": { "startsAt": at(-1) } }))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(field(&body), "input.startsAt");
    assert!(message(&body).contains("nothing moves into the past"), "{body}");
    let body = app
        .gql(t, UPDATE, json!({ "id": id, "i": { "salesCloseAt": at(-1) } }))
        .await;
    assert!(message(&body).contains("nothing moves into the past"), "{body}");
    // The sales window closes before the show, whichever end moves.
    let body = app
        .gql(t, UPDATE, json!({ "id": id, "i": { "salesCloseAt": at(6) } }))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    assert_eq!(field(&body), "input.salesCloseAt");
    assert!(message(&body).contains("sales close before the show"), "{body}");
    let body = app
        .gql(t, UPDATE, json!({ "id": id, "i": { "startsAt": at(3) } }))
        .await;
    assert_eq!(field(&body), "input.startsAt");
    assert!(message(&body).contains("sales close before the show"), "{body}");
    let body = app
        .gql(t, UPDATE, json!({ "id": id, "i": { "perUserLimit": 0 } }))
        .await;
    assert_eq!(field(&body), "input.perUserLimit", "{body}");
    // Nothing of a refused edit was written.
    let s = app
        .ok(
            None,
            "query($id: ID!) { schedule(id: $id) { startsAt holdSeconds perUserLimit } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(s["schedule"]["holdSeconds"], 120);
    assert_eq!(s["schedule"]["startsAt"], edited["startsAt"]);

    // Roles: another host does not see the schedule, a fan may not edit, an admin may.
    let other = app.user_with_role("other-host@example.com", "host").await;
    let body = app
        .gql(
            Some(&other.access),
            UPDATE,
            json!({ "id": id, "i": { "holdSeconds": 60 } }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    let fan = app.sign_up("fan@example.com").await;
    let body = app
        .gql(
            Some(&fan.access),
            UPDATE,
            json!({ "id": id, "i": { "holdSeconds": 60 } }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let admin = app.user_with_role("admin@example.com", "admin").await;
    let edited = app
        .ok(
            Some(&admin.access),
            UPDATE,
            json!({ "id": id, "i": { "holdSeconds": 60 } }),
        )
        .await;
    assert_eq!(edited["updateSchedule"]["holdSeconds"], 60);
    let body = app
        .gql(t, UPDATE, json!({ "id": "999999", "i": { "holdSeconds": 60 } }))
        .await;
    assert_eq!(code(&body), "NOT_FOUND");

    // A cancelled performance is final.
    app.ok(
        t,
        "mutation($id: ID!) { cancelSchedule(id: $id) { id } }",
        json!({ "id": id }),
    )
    .await;
    let body = app
        .gql(t, UPDATE, json!({ "id": id, "i": { "holdSeconds": 90 } }))
        .await;
    assert_eq!(code(&body), "CONFLICT");
    assert!(message(&body).contains("cancelled shows are final"), "{body}");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM audit_log WHERE target_type = 'schedule' AND target_id = {id}
             AND action IN ('update_schedule', 'move_schedule')"
        ))
        .await,
        2,
        "the host's edit (a move) and the admin's"
    );
}

#[tokio::test]
async fn a_lower_limit_leaves_existing_reservations_alone() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(2, 5), 4).await;
    let t = Some(show.host.access.as_str());
    let fan = app.sign_up("fan@example.com").await;
    let held = hold(&app, &fan.access, &show, &[0, 1, 2]).await;
    assert_eq!(held["data"]["reserveSeats"]["status"], "HELD", "{held}");

    app.ok(
        t,
        UPDATE,
        json!({ "id": show.schedule_id, "i": { "perUserLimit": 2 } }),
    )
    .await;
    let r = app
        .ok(
            Some(&fan.access),
            "query($id: ID!) { reservation(id: $id) { status seatCount } }",
            json!({ "id": held["data"]["reserveSeats"]["id"] }),
        )
        .await;
    assert_eq!(r["reservation"], json!({ "status": "HELD", "seatCount": 3 }));
    // The next hold meets the new limit, counting what the fan already holds.
    let body = hold(&app, &fan.access, &show, &[5]).await;
    assert_eq!(code(&body), "LIMIT_EXCEEDED", "{body}");
    let other = app.sign_up("other@example.com").await;
    let body = hold(&app, &other.access, &show, &[5, 6, 7]).await;
    assert_eq!(code(&body), "LIMIT_EXCEEDED", "{body}");
    let body = hold(&app, &other.access, &show, &[5, 6]).await;
    assert_eq!(body["data"]["reserveSeats"]["status"], "HELD", "{body}");
    // The fan over the new limit is no broken invariant: the reservation came first.
    app.assert_invariants().await;
}

#[tokio::test]
async fn moving_a_show_with_tickets_sold_tells_the_holders_and_is_audited() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(2, 5), 4).await;
    let t = Some(show.host.access.as_str());
    let fan = app.sign_up("fan@example.com").await;
    app.ok(Some(&fan.access), CHARGE, json!({ "a": 1000, "k": "c1" }))
        .await;
    let held = hold(&app, &fan.access, &show, &[0]).await;
    let rid = held["data"]["reserveSeats"]["id"].clone();
    app.ok(Some(&fan.access), PAY, json!({ "r": rid, "k": "p1" }))
        .await;

    // A fan watching the performance (as the checkout and ticket pages do).
    let mut ws = crate::websocket::connect(&app, "graphql-transport-ws").await;
    crate::websocket::init(&mut ws, Some(&fan.access)).await;
    crate::websocket::send(
        &mut ws,
        json!({ "id": "w", "type": "subscribe", "payload": {
            "query": "subscription($s: ID!) { seatChanges(scheduleId: $s) { version seats { id } schedule { startsAt } } }",
            "variables": { "s": show.schedule_id } } }),
    )
    .await;
    let first = crate::websocket::recv(&mut ws).await;
    assert_eq!(first["type"], "next", "{first}");

    let to = at(7);
    let moved = app
        .ok(
            t,
            UPDATE,
            json!({ "id": show.schedule_id, "i": { "startsAt": to } }),
        )
        .await["updateSchedule"]
        .clone();
    let event = tokio::time::timeout(std::time::Duration::from_secs(5), crate::websocket::recv(&mut ws))
        .await
        .expect("the move reaches the watching fan");
    let event = &event["payload"]["data"]["seatChanges"];
    assert_eq!(event["version"], moved["version"], "{event}");
    assert_eq!(event["seats"], json!([]));
    assert_eq!(event["schedule"]["startsAt"], moved["startsAt"]);

    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM outbox WHERE event_type = 'schedule.changed'
             AND subject = 'schedules/{}'",
            show.schedule_id
        ))
        .await,
        1,
        "one schedule.changed event for the webhooks and the event stream"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM audit_log WHERE action = 'move_schedule' AND target_id = {}
             AND actor_id = {} AND (details->>'ticketHolders')::int = 1 AND details->'changes' ? 'startsAt'",
            show.schedule_id, show.host.id
        ))
        .await,
        1
    );
    app.assert_invariants().await;
}

#[tokio::test]
async fn prices_change_until_a_seat_of_the_grade_is_held_or_sold() {
    let app = TestApp::spawn().await;
    // Rows alternate VIP, R: seats 0-4 are VIP, 5-9 R.
    let show = app.show(layout(2, 5), 4).await;
    let t = Some(show.host.access.as_str());
    let id = &show.schedule_id;
    let v0 = app
        .ok(
            None,
            "query($id: ID!) { schedule(id: $id) { version } }",
            json!({ "id": id }),
        )
        .await["schedule"]["version"]
        .as_i64()
        .unwrap();
    let s = app
        .ok(
            t,
            PRICES,
            json!({ "s": id, "p": [{ "grade": "VIP", "price": 180 }] }),
        )
        .await["updateGradePrices"]
        .clone();
    assert_eq!(s["availability"][0], json!({ "grade": "VIP", "price": 180 }));
    assert!(
        s["version"].as_i64().unwrap() > v0,
        "cached maps and layouts see the new price"
    );

    let fan = app.sign_up("fan@example.com").await;
    let held = hold(&app, &fan.access, &show, &[0]).await;
    assert_eq!(held["data"]["reserveSeats"]["totalPrice"], 180, "{held}");
    let body = app
        .gql(
            t,
            PRICES,
            json!({ "s": id, "p": [{ "grade": "R", "price": 90 }, { "grade": "VIP", "price": 200 }] }),
        )
        .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    assert!(
        message(&body).contains("prices change before the first sale"),
        "{body}"
    );
    assert!(message(&body).contains("VIP"), "{body}");
    // Nothing of the refused list was written, R included.
    let a = app
        .ok(
            None,
            "query($id: ID!) { schedule(id: $id) { availability { grade price } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        a["schedule"]["availability"][1],
        json!({ "grade": "R", "price": 100 })
    );
    // Another grade is free to change, and the held seat keeps the price it was held at.
    app.ok(
        t,
        PRICES,
        json!({ "s": id, "p": [{ "grade": "R", "price": 90 }] }),
    )
    .await;
    let body = app
        .gql(t, PRICES, json!({ "s": id, "p": [{ "grade": "Z", "price": 1 }] }))
        .await;
    assert_eq!(field(&body), "prices[0].grade", "{body}");
    let body = app
        .gql(
            t,
            PRICES,
            json!({ "s": id, "p": [{ "grade": "R", "price": -1 }] }),
        )
        .await;
    assert_eq!(field(&body), "prices[0].price", "{body}");
    // Once the hold is gone the grade's price may move again.
    app.ok(
        Some(&fan.access),
        CANCEL,
        json!({ "r": held["data"]["reserveSeats"]["id"] }),
    )
    .await;
    app.ok(
        t,
        PRICES,
        json!({ "s": id, "p": [{ "grade": "VIP", "price": 200 }] }),
    )
    .await;
    let r = app
        .ok(
            Some(&fan.access),
            "query($id: ID!) { reservation(id: $id) { totalPrice seats { price } } }",
            json!({ "id": held["data"]["reserveSeats"]["id"] }),
        )
        .await;
    assert_eq!(r["reservation"]["totalPrice"], 180, "the snapshot stays");

    let other = app.user_with_role("other-host@example.com", "host").await;
    let body = app
        .gql(
            Some(&other.access),
            PRICES,
            json!({ "s": id, "p": [{ "grade": "R", "price": 1 }] }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND");
    let body = app
        .gql(
            Some(&fan.access),
            PRICES,
            json!({ "s": id, "p": [{ "grade": "R", "price": 1 }] }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN");
    app.assert_invariants().await;
}

#[tokio::test]
async fn only_live_holds_and_sales_freeze_a_layout() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(2, 5), 4).await;
    let t = Some(show.host.access.as_str());
    let fan = app.sign_up("fan@example.com").await;
    let held = hold(&app, &fan.access, &show, &[0, 1]).await;
    let rid = held["data"]["reserveSeats"]["id"].clone();

    let body = app
        .gql(t, GENERATE, json!({ "s": show.schedule_id, "l": layout(1, 3) }))
        .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    assert!(
        message(&body).contains("a layout with live holds or sales stays"),
        "{body}"
    );
    assert!(message(&body).contains("2 seat(s)"), "{body}");

    // Cancelled: the layout is free again, and the dead reservation keeps its seats.
    app.ok(Some(&fan.access), CANCEL, json!({ "r": rid })).await;
    let replaced = app
        .ok(t, GENERATE, json!({ "s": show.schedule_id, "l": layout(1, 3) }))
        .await;
    assert_eq!(replaced["generateSeats"]["capacity"], 3);
    let r = app
        .ok(
            Some(&fan.access),
            "query($id: ID!) { reservation(id: $id) { status seatCount seats { id row number } } }",
            json!({ "id": rid }),
        )
        .await;
    assert_eq!(r["reservation"]["status"], "CANCELLED");
    assert_eq!(r["reservation"]["seats"].as_array().unwrap().len(), 2);
    let s = app
        .ok(
            None,
            "query($id: ID!) { schedule(id: $id) { capacity bookedCount seats { id } availability { grade total } } }",
            json!({ "id": show.schedule_id }),
        )
        .await;
    assert_eq!(s["schedule"]["capacity"], 3);
    assert_eq!(s["schedule"]["bookedCount"], 0);
    assert_eq!(s["schedule"]["seats"].as_array().unwrap().len(), 3);
    // A seat of the old layout is no seat of this performance.
    let body = hold(&app, &fan.access, &show, &[0]).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    app.assert_invariants().await;
}
