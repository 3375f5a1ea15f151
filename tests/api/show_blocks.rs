//! Running a show, part two (issue 24): seats kept back (`blockSeats`, `unblockSeats`,
//! status BLOCKED) and complimentary tickets (`issueComplimentary`). Both go through the
//! schedule lock of the hold batches: a seat is never blocked and held at once.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::common::{Show, TestApp, code, layout};

const BLOCK: &str =
    "mutation($s: ID!, $ids: [ID!]!, $r: String!) { blockSeats(scheduleId: $s, seatIds: $ids, reason: $r) {
    id bookedCount remainingSeats version } }";
const UNBLOCK: &str =
    "mutation($s: ID!, $ids: [ID!]!) { unblockSeats(scheduleId: $s, seatIds: $ids) { id bookedCount } }";
const COMP: &str = "mutation($s: ID!, $ids: [ID!]!, $e: String!, $n: String) {
    issueComplimentary(scheduleId: $s, seatIds: $ids, email: $e, note: $n) { reservation {
      id status totalPrice complimentary note seatCount seats { id price } tickets { id status } } } }";
const RESERVE: &str = "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id status } }";
const MAP: &str = "query($id: ID!) { schedule(id: $id) { bookedCount remainingSeats complimentarySeats
    seats { id status } seatMap { statuses } availability { grade total available held sold blocked } } }";

fn ids(show: &Show, seats: &[usize]) -> Vec<String> {
    seats.iter().map(|i| show.seats[*i].clone()).collect()
}

fn message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or_default()
}

async fn hold(app: &TestApp, token: &str, show: &Show, seats: &[usize]) -> Value {
    app.gql(
        Some(token),
        RESERVE,
        json!({ "i": { "scheduleId": show.schedule_id, "seatIds": ids(show, seats) } }),
    )
    .await
}

#[tokio::test]
async fn blocked_seats_are_never_sold_and_show_on_every_map() {
    let app = TestApp::spawn().await;
    // Rows alternate VIP, R: seats 0-4 are VIP, 5-9 R.
    let show = app.show(layout(2, 5), 4).await;
    let t = Some(show.host.access.as_str());
    let s = app
        .ok(
            t,
            BLOCK,
            json!({ "s": show.schedule_id, "ids": ids(&show, &[0, 1, 5]), "r": "camera platform" }),
        )
        .await["blockSeats"]
        .clone();
    assert_eq!(s["bookedCount"], 3);
    assert_eq!(s["remainingSeats"], 7);
    // Blocking again is harmless.
    let again = app
        .ok(
            t,
            BLOCK,
            json!({ "s": show.schedule_id, "ids": ids(&show, &[0]), "r": "again" }),
        )
        .await;
    assert_eq!(again["blockSeats"]["bookedCount"], 3);

    let map = app.ok(None, MAP, json!({ "id": show.schedule_id })).await["schedule"].clone();
    assert_eq!(map["seats"][0]["status"], "BLOCKED");
    assert_eq!(map["seats"][2]["status"], "AVAILABLE");
    assert_eq!(map["seatMap"]["statuses"], "BBAAABAAAA");
    assert_eq!(
        map["availability"][0],
        json!({ "grade": "VIP", "total": 5, "available": 3, "held": 0, "sold": 0, "blocked": 2 })
    );
    assert_eq!(
        map["complimentarySeats"],
        Value::Null,
        "sales figures are the host's"
    );
    let blocked = app
        .ok(
            None,
            "query($id: ID!) { schedule(id: $id) { seats(status: BLOCKED) { id } } }",
            json!({ "id": show.schedule_id }),
        )
        .await;
    assert_eq!(blocked["schedule"]["seats"].as_array().unwrap().len(), 3);

    // A fan cannot hold a blocked seat, nor get one picked as best available.
    let fan = app.sign_up("fan@example.com").await;
    let body = hold(&app, &fan.access, &show, &[0]).await;
    assert_eq!(code(&body), "SEAT_UNAVAILABLE", "{body}");
    let best = app
        .ok(
            Some(&fan.access),
            "mutation($i: BestAvailableInput!) { reserveBestAvailable(input: $i) { seats { id } } }",
            json!({ "i": { "scheduleId": show.schedule_id, "count": 3, "grade": "VIP" } }),
        )
        .await;
    let picked: HashSet<&str> = best["reserveBestAvailable"]["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        picked,
        ids(&show, &[2, 3, 4]).iter().map(String::as_str).collect()
    );
    // A held seat cannot be blocked, and a block is all or nothing.
    let body = app
        .gql(
            t,
            BLOCK,
            json!({ "s": show.schedule_id, "ids": ids(&show, &[6, 2]), "r": "x" }),
        )
        .await;
    assert_eq!(code(&body), "SEAT_UNAVAILABLE", "{body}");
    assert!(
        message(&body).contains("only free seats can be kept back"),
        "{body}"
    );
    let map = app.ok(None, MAP, json!({ "id": show.schedule_id })).await;
    assert_eq!(map["schedule"]["seats"][6]["status"], "AVAILABLE");
    // Bad input names the field.
    let body = app
        .gql(
            t,
            BLOCK,
            json!({ "s": show.schedule_id, "ids": ids(&show, &[6]), "r": " " }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    let other = app.show(layout(1, 2), 4).await;
    let body = app
        .gql(
            t,
            BLOCK,
            json!({ "s": show.schedule_id, "ids": ids(&other, &[0]), "r": "x" }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");

    // Roles: another host does not see the schedule; a fan may not block.
    let body = app
        .gql(
            Some(&other.host.access),
            BLOCK,
            json!({ "s": show.schedule_id, "ids": ids(&show, &[6]), "r": "x" }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    let body = app
        .gql(
            Some(&other.host.access),
            UNBLOCK,
            json!({ "s": show.schedule_id, "ids": ids(&show, &[0]) }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    let body = app
        .gql(
            Some(&fan.access),
            BLOCK,
            json!({ "s": show.schedule_id, "ids": ids(&show, &[6]), "r": "x" }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");

    // Unblocked, a seat is on sale again; a held seat is not "unblocked".
    let s = app
        .ok(
            t,
            UNBLOCK,
            json!({ "s": show.schedule_id, "ids": ids(&show, &[0]) }),
        )
        .await;
    assert_eq!(s["unblockSeats"]["bookedCount"], 5, "2 blocked + 3 held");
    let body = app
        .gql(
            t,
            UNBLOCK,
            json!({ "s": show.schedule_id, "ids": ids(&show, &[2]) }),
        )
        .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    let body = hold(&app, &fan.access, &show, &[0]).await;
    assert_eq!(body["data"]["reserveSeats"]["status"], "HELD", "{body}");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM audit_log WHERE target_id = {} AND action IN ('block_seats', 'unblock_seats')",
            show.schedule_id
        ))
        .await,
        2,
        "the block and the unblock (the repeat block changed nothing)"
    );
    app.assert_invariants().await;
}

#[tokio::test]
async fn complimentary_tickets_go_to_guests_at_price_zero() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(2, 5), 2).await;
    let t = Some(show.host.access.as_str());
    app.ok(
        t,
        BLOCK,
        json!({ "s": show.schedule_id, "ids": ids(&show, &[0, 1]), "r": "guests" }),
    )
    .await;

    // A blocked and a free seat to a new e-mail: an invited account.
    let r = app
        .ok(
            t,
            COMP,
            json!({ "s": show.schedule_id, "ids": ids(&show, &[0, 2]), "e": "Guest@Example.com", "n": "press" }),
        )
        .await["issueComplimentary"]["reservation"]
        .clone();
    assert_eq!(r["status"], "CONFIRMED");
    assert_eq!(r["totalPrice"], 0);
    assert_eq!(r["complimentary"], true);
    assert_eq!(r["note"], "press");
    assert_eq!(
        r["seats"],
        json!([{ "id": show.seats[0], "price": 0 }, { "id": show.seats[2], "price": 0 }])
    );
    assert_eq!(r["tickets"].as_array().unwrap().len(), 2);
    assert!(
        r["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "VALID")
    );
    let body = app.log_in("guest@example.com", crate::common::PASSWORD).await;
    assert_eq!(
        code(&body),
        "UNAUTHENTICATED",
        "an invited account has no password yet: {body}"
    );

    let map = app.ok(t, MAP, json!({ "id": show.schedule_id })).await["schedule"].clone();
    assert_eq!(map["seats"][0]["status"], "SOLD");
    assert_eq!(map["seats"][1]["status"], "BLOCKED");
    assert_eq!(map["seats"][2]["status"], "SOLD");
    assert_eq!(map["bookedCount"], 3);
    assert_eq!(map["complimentarySeats"], 2);

    // To an existing fan, beyond the per-user limit (a gift is not a purchase), and the
    // fan's own purchases still count only what they bought.
    let fan = app.sign_up("fan@example.com").await;
    let r = app
        .ok(
            t,
            COMP,
            json!({ "s": show.schedule_id, "ids": ids(&show, &[3, 4, 5]), "e": "fan@example.com" }),
        )
        .await;
    assert_eq!(r["issueComplimentary"]["reservation"]["seatCount"], 3);
    let mine = app
        .ok(
            Some(&fan.access),
            "{ myReservations(first: 10) { edges { node { complimentary totalPrice } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        mine["myReservations"]["edges"][0]["node"],
        json!({ "complimentary": true, "totalPrice": 0 })
    );
    let body = hold(&app, &fan.access, &show, &[6, 7]).await;
    assert_eq!(body["data"]["reserveSeats"]["status"], "HELD", "{body}");

    // A held or sold seat cannot be given; nothing is half-written.
    let users = app.count("SELECT count(*) AS n FROM users").await;
    let body = app
        .gql(
            t,
            COMP,
            json!({ "s": show.schedule_id, "ids": ids(&show, &[8, 6]), "e": "new@example.com" }),
        )
        .await;
    assert_eq!(code(&body), "SEAT_UNAVAILABLE", "{body}");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM users").await,
        users,
        "no account made"
    );
    let body = app
        .gql(
            t,
            COMP,
            json!({ "s": show.schedule_id, "ids": ids(&show, &[8]), "e": "not-an-email" }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");

    // Roles.
    let other = app.user_with_role("other-host@example.com", "host").await;
    let body = app
        .gql(
            Some(&other.access),
            COMP,
            json!({ "s": show.schedule_id, "ids": ids(&show, &[8]), "e": "x@example.com" }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    let body = app
        .gql(
            Some(&fan.access),
            COMP,
            json!({ "s": show.schedule_id, "ids": ids(&show, &[8]), "e": "x@example.com" }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");

    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM audit_log WHERE action = 'issue_complimentary' AND actor_id = {}",
            show.host.id
        ))
        .await,
        2
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM outbox WHERE event_type = 'reservation.confirmed'")
            .await,
        2
    );
    app.assert_invariants().await;
}

/// Fans hold and the host blocks the same seats at once: for every seat exactly one of
/// them wins, never both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_holds_and_blocks_never_both_win() {
    let app = TestApp::spawn().await;
    // Ten seats nobody asks for: the losers hear SEAT_UNAVAILABLE, never SOLD_OUT.
    let show = app.show(layout(5, 10), 4).await;
    let fans = app.bulk_users(40).await;
    // Interleaved: each seat's hold and block are sent together.
    let tasks = fans.iter().enumerate().flat_map(|(i, fan)| {
        let app = &app;
        let seat = show.seats[i].clone();
        let schedule = show.schedule_id.clone();
        let holder = fan.access.clone();
        let host = show.host.access.clone();
        let (seat2, schedule2) = (seat.clone(), schedule.clone());
        let hold: futures_util::future::BoxFuture<'_, _> = Box::pin(async move {
            let body = app
                .gql(
                    Some(&holder),
                    RESERVE,
                    json!({ "i": { "scheduleId": schedule, "seatIds": [seat] } }),
                )
                .await;
            (i, "hold", body["data"]["reserveSeats"]["status"] == "HELD", body)
        });
        let block: futures_util::future::BoxFuture<'_, _> = Box::pin(async move {
            let body = app
                .gql(
                    Some(&host),
                    BLOCK,
                    json!({ "s": schedule2, "ids": [seat2], "r": "race" }),
                )
                .await;
            (i, "block", body["errors"].is_null(), body)
        });
        if i % 2 == 0 { [hold, block] } else { [block, hold] }
    });
    let answers = futures_util::future::join_all(tasks).await;
    let mut won = vec![Vec::new(); fans.len()];
    for (i, what, ok, body) in answers {
        if ok {
            won[i].push(what);
        } else {
            assert_eq!(code(&body), "SEAT_UNAVAILABLE", "{what}: {body}");
        }
    }
    for (i, w) in won.iter().enumerate() {
        assert_eq!(w.len(), 1, "seat {i}: {w:?}");
    }
    let map = app.ok(None, MAP, json!({ "id": show.schedule_id })).await;
    let seats = map["schedule"]["seats"].as_array().unwrap();
    for (i, w) in won.iter().enumerate() {
        let expected = if w[0] == "hold" { "HELD" } else { "BLOCKED" };
        assert_eq!(seats[i]["status"], expected, "seat {i}");
    }
    assert_eq!(map["schedule"]["bookedCount"], 40);
    app.assert_invariants().await;
}
