//! One visibility rule on every path (issue 21, finding 5): the schedule of another host's
//! draft answers exactly as a schedule id that does not exist, whatever the operation
//! (booking, orders, waiting list, queue, live updates), with the queue on or off. Its host
//! sees it, and that it is not on sale.

use serde_json::{Value, json};

use crate::{
    common::{ADD_SCHEDULE, CREATE_CONCERT, GENERATE, Session, TestApp, code, layout, schedule_input},
    websocket::{connect, init, recv, send},
};

/// Every operation a fan can aim at a schedule id, with its variables for schedule `s`
/// and a seat `seat` of it.
fn operations(s: &str, seat: &str) -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "reserveSeats",
            "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }",
            json!({ "i": { "scheduleId": s, "seatIds": [seat] } }),
        ),
        (
            "reserveSeats with a key",
            "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }",
            json!({ "i": { "scheduleId": s, "seatIds": [seat], "idempotencyKey": "probe" } }),
        ),
        (
            "reserveBestAvailable",
            "mutation($i: BestAvailableInput!) { reserveBestAvailable(input: $i) { id } }",
            json!({ "i": { "scheduleId": s, "count": 1 } }),
        ),
        (
            "placeOrder",
            "mutation($i: ReserveSeatsInput!) { placeOrder(input: $i) { jobId } }",
            json!({ "i": { "scheduleId": s, "seatIds": [seat] } }),
        ),
        (
            "joinWaitlist",
            "mutation($s: ID!) { joinWaitlist(scheduleId: $s, count: 1) { id } }",
            json!({ "s": s }),
        ),
        (
            "leaveWaitlist",
            "mutation($s: ID!) { leaveWaitlist(scheduleId: $s) { id } }",
            json!({ "s": s }),
        ),
        (
            "enterQueue",
            "mutation($s: ID!) { enterQueue(scheduleId: $s) { state } }",
            json!({ "s": s }),
        ),
        (
            "queueStatus",
            "query($s: ID!) { queueStatus(scheduleId: $s) { state } }",
            json!({ "s": s }),
        ),
        (
            "schedule",
            "query($s: ID!) { schedule(id: $s) { id } }",
            json!({ "s": s }),
        ),
    ]
}

/// The first error's code and message, or the data when there is none.
fn answer(body: &Value) -> Value {
    match body["errors"].get(0) {
        Some(e) => json!({ "code": e["extensions"]["code"], "message": e["message"] }),
        None => json!({ "data": body["data"] }),
    }
}

async fn seat_changes(app: &TestApp, who: Option<&Session>, s: &str) -> Value {
    let mut ws = connect(app, "graphql-transport-ws").await;
    init(&mut ws, who.map(|w| w.access.as_str())).await;
    send(
        &mut ws,
        json!({ "id": "1", "type": "subscribe", "payload": {
        "query": "subscription($s: ID!) { seatChanges(scheduleId: $s) { version } }",
        "variables": { "s": s } } }),
    )
    .await;
    let msg = recv(&mut ws).await;
    let errors = if msg["type"] == "error" {
        msg["payload"].clone()
    } else {
        msg["payload"]["errors"].clone()
    };
    match errors.get(0) {
        Some(e) => json!({ "code": e["extensions"]["code"], "message": e["message"] }),
        None => json!({ "type": msg["type"] }),
    }
}

#[tokio::test]
async fn another_hosts_draft_answers_as_a_missing_schedule_everywhere() {
    let app = TestApp::spawn().await;
    let host = app.user_with_role("host@example.com", "host").await;
    let other_host = app.user_with_role("other@example.com", "host").await;
    let fan = app.sign_up("fan@example.com").await;
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
    // In its sales window: only being a draft keeps it off sale.
    let s = app
        .ok(t, ADD_SCHEDULE, json!({ "c": concert, "i": schedule_input(4) }))
        .await["addSchedule"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.ok(t, GENERATE, json!({ "s": s, "l": layout(1, 2) })).await;
    let seat = app
        .count(&format!("SELECT min(id) AS n FROM seats WHERE schedule_id = {s}"))
        .await
        .to_string();
    let missing = "999999";

    for queue in [false, true] {
        app.set_schedule(&s, &format!("queue_enabled = {queue}")).await;
        // The queue's cache of schedule settings lives a second.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        for who in [&fan, &other_host] {
            for ((name, query, draft_vars), (_, _, missing_vars)) in
                operations(&s, &seat).into_iter().zip(operations(missing, &seat))
            {
                let draft = answer(&app.gql(Some(&who.access), query, draft_vars).await);
                let absent = answer(&app.gql(Some(&who.access), query, missing_vars).await);
                assert_eq!(
                    draft, absent,
                    "{name} (queue {queue}) tells a draft from a missing id"
                );
                assert_eq!(draft["code"], "NOT_FOUND", "{name} (queue {queue})");
            }
            assert_eq!(
                seat_changes(&app, Some(who), &s).await,
                seat_changes(&app, Some(who), missing).await,
                "seatChanges (queue {queue})"
            );
        }
        assert_eq!(
            seat_changes(&app, None, &s).await,
            seat_changes(&app, None, missing).await
        );
    }

    // Its host sees it, and that it is not on sale.
    let body = app
        .gql(
            t,
            "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }",
            json!({ "i": { "scheduleId": s, "seatIds": [seat] } }),
        )
        .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    assert_eq!(
        seat_changes(&app, Some(&host), &s).await,
        json!({ "type": "next" })
    );
    // Nothing was written for the probes.
    assert_eq!(app.count("SELECT count(*) AS n FROM reservations").await, 0);
    assert_eq!(app.count("SELECT count(*) AS n FROM waitlist_entries").await, 0);
}
