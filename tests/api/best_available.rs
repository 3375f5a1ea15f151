//! Best-available seats through the API (issue 16): adjacency and no orphan on a real
//! layout, concurrent pickers, idempotency, placeOrder, and the refusals.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use crate::common::{Session, Show, TestApp, code, layout};

pub const BEST: &str = "mutation($i: BestAvailableInput!) { reserveBestAvailable(input: $i) { id status seatCount totalPrice together seats { id section row number grade price } } }";
const RESERVE: &str = "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id together } }";

pub async fn best(
    app: &TestApp,
    who: &Session,
    schedule_id: &str,
    count: i64,
    grade: Option<&str>,
    key: Option<&str>,
) -> Value {
    app.gql(
        Some(&who.access),
        BEST,
        json!({ "i": { "scheduleId": schedule_id, "count": count, "grade": grade, "idempotencyKey": key } }),
    )
    .await
}

/// The reservation a successful pick answered (fails the test on errors).
async fn picked(app: &TestApp, who: &Session, show: &Show, count: i64, grade: Option<&str>) -> Value {
    let body = best(app, who, &show.schedule_id, count, grade, None).await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["reserveBestAvailable"].clone()
}

/// (row label, seat number) of a reservation's seats, ascending.
fn places(r: &Value) -> Vec<(String, i64)> {
    let mut p: Vec<(String, i64)> = r["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["row"].as_str().unwrap().to_owned(),
                s["number"].as_i64().unwrap(),
            )
        })
        .collect();
    p.sort();
    p
}

fn row(label: &str, numbers: &[i64]) -> Vec<(String, i64)> {
    numbers.iter().map(|n| (label.to_owned(), *n)).collect()
}

#[tokio::test]
async fn picks_are_adjacent_in_the_best_row_and_leave_nobody_alone() {
    let app = TestApp::spawn().await;
    // Rows R0..R7 of ten seats, grades VIP, R, S, A, VIP, R, S, A (VIP 150 points).
    let show = app.show(layout(8, 10), 4).await;
    let a = app.sign_up("a@example.com").await;
    let b = app.sign_up("b@example.com").await;
    let c = app.sign_up("c@example.com").await;
    let d = app.sign_up("d@example.com").await;

    // Two seats, any grade: the dearest grade's front row, its centre.
    let r = picked(&app, &a, &show, 2, None).await;
    assert_eq!(places(&r), row("R0", &[5, 6]));
    assert_eq!(r["together"], true);
    assert_eq!(r["totalPrice"], 300);

    // Someone takes the two seats at each end of R0 by hand: free are 3-4 and 7-8.
    let ends: Vec<&str> = [0, 1, 8, 9].iter().map(|i| show.seats[*i].as_str()).collect();
    let held = app
        .ok(
            Some(&b.access),
            RESERVE,
            json!({ "i": { "scheduleId": show.schedule_id, "seatIds": ends } }),
        )
        .await;
    assert_eq!(
        held["reserveSeats"]["together"], false,
        "two pairs apart are not together"
    );

    // One VIP seat: 3, 4, 7 and 8 would each leave its neighbour alone, so the only clean
    // choice is a whole row further back (R4, the other VIP row), not R0.
    let r = picked(&app, &c, &show, 1, Some("VIP")).await;
    assert_eq!(places(&r).len(), 1);
    assert_eq!(r["seats"][0]["grade"], "VIP");
    assert_eq!(
        r["seats"][0]["row"], "R4",
        "a lone seat in R0 would strand another: {r}"
    );

    // Two VIP seats: R0's 3-4 is an exact fit, nearer the front than anything in R4.
    let r = picked(&app, &c, &show, 2, Some("VIP")).await;
    assert_eq!(places(&r), row("R0", &[3, 4]));

    // Grade R, four seats: the front R row, centred, together.
    let r = picked(&app, &d, &show, 4, Some("R")).await;
    assert_eq!(places(&r), row("R1", &[4, 5, 6, 7]));
    assert_eq!(r["together"], true);
    assert!(
        r["seats"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["grade"] == "R" && s["price"] == 100)
    );

    // The seat map agrees: every picked seat is held.
    let map = app
        .ok(
            None,
            "query($s: ID!) { schedule(id: $s) { seats { id status } } }",
            json!({ "s": show.schedule_id }),
        )
        .await;
    let held: HashSet<String> = map["schedule"]["seats"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "HELD")
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(held.len(), 2 + 4 + 1 + 2 + 4);
    app.assert_invariants().await;
}

#[tokio::test]
async fn with_no_block_left_the_closest_seats_are_not_together() {
    let app = TestApp::spawn().await;
    // Rows of three: R1 and R5 are grade R, so no four R seats sit side by side.
    let show = app.show(layout(8, 3), 4).await;
    let fan = app.sign_up("fan@example.com").await;
    let r = picked(&app, &fan, &show, 4, Some("R")).await;
    assert_eq!(r["together"], false, "{r}");
    assert_eq!(r["seatCount"], 4);
    let rows: HashSet<String> = places(&r).into_iter().map(|p| p.0).collect();
    assert_eq!(rows, HashSet::from(["R1".to_owned(), "R5".to_owned()]));
    assert!(r["seats"].as_array().unwrap().iter().all(|s| s["grade"] == "R"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_concurrent_pickers_never_share_a_seat() {
    let app = TestApp::spawn().await;
    // 60 seats for 30 pickers asking 1 to 4 seats each (75 in all): some must be refused.
    let show = app.show(layout(6, 10), 4).await;
    let fans = app.bulk_users(30).await;
    let answers = futures_util::future::join_all(fans.iter().enumerate().map(|(i, fan)| {
        let app = &app;
        let schedule_id = show.schedule_id.clone();
        async move { best(app, fan, &schedule_id, (i % 4 + 1) as i64, None, None).await }
    }))
    .await;
    let mut owner: HashMap<String, usize> = HashMap::new();
    let mut seats_held = 0;
    for (i, body) in answers.iter().enumerate() {
        if body["errors"].is_null() {
            let r = &body["data"]["reserveBestAvailable"];
            let seats = r["seats"].as_array().unwrap();
            assert_eq!(seats.len(), i % 4 + 1);
            let grades: HashSet<&str> = seats.iter().map(|s| s["grade"].as_str().unwrap()).collect();
            assert_eq!(grades.len(), 1, "one grade per pick: {r}");
            for s in seats {
                let id = s["id"].as_str().unwrap().to_owned();
                assert!(owner.insert(id.clone(), i).is_none(), "seat {id} given twice");
                seats_held += 1;
            }
        } else {
            assert!(
                ["SEAT_UNAVAILABLE", "SOLD_OUT"].contains(&code(body)),
                "refused for a bad reason: {body}"
            );
        }
    }
    // A pick fails only when no grade has enough seats left: at most 3 of each of the four
    // grades can be left over.
    assert!(
        seats_held >= 48,
        "the pickers filled the house: {seats_held} of 60"
    );
    let booked = app
        .count(&format!(
            "SELECT booked_count::bigint AS n FROM schedules WHERE id = {}",
            show.schedule_id
        ))
        .await;
    assert_eq!(booked, seats_held);
    app.assert_invariants().await;
}

#[tokio::test]
async fn a_key_answers_the_same_pick_and_refuses_another_ask() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(4, 10), 4).await;
    let fan = app.sign_up("fan@example.com").await;
    let first = best(&app, &fan, &show.schedule_id, 2, Some("R"), Some("k-1")).await;
    let again = best(&app, &fan, &show.schedule_id, 2, Some("R"), Some("k-1")).await;
    assert_eq!(
        first["data"]["reserveBestAvailable"]["id"], again["data"]["reserveBestAvailable"]["id"],
        "{first} {again}"
    );
    assert_eq!(
        first["data"]["reserveBestAvailable"]["seats"],
        again["data"]["reserveBestAvailable"]["seats"]
    );
    let other = best(&app, &fan, &show.schedule_id, 3, Some("R"), Some("k-1")).await;
    assert_eq!(code(&other), "CONFLICT", "{other}");
    let other_grade = best(&app, &fan, &show.schedule_id, 2, Some("VIP"), Some("k-1")).await;
    assert_eq!(code(&other_grade), "CONFLICT", "{other_grade}");
    assert_eq!(app.count("SELECT count(*) AS n FROM reservations").await, 1);
}

#[tokio::test]
async fn refusals_name_their_reason() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(4, 5), 2).await;
    let fan = app.sign_up("fan@example.com").await;
    let s = show.schedule_id.as_str();
    assert_eq!(code(&best(&app, &fan, s, 0, None, None).await), "BAD_USER_INPUT");
    assert_eq!(code(&best(&app, &fan, s, 11, None, None).await), "BAD_USER_INPUT");
    assert_eq!(code(&best(&app, &fan, s, 3, None, None).await), "LIMIT_EXCEEDED");
    let unknown = best(&app, &fan, s, 1, Some("Balcony"), None).await;
    assert_eq!(code(&unknown), "BAD_USER_INPUT", "{unknown}");
    assert_eq!(
        code(&best(&app, &fan, s, 1, Some(""), None).await),
        "BAD_USER_INPUT"
    );
    assert_eq!(
        code(&best(&app, &fan, "999999", 1, None, None).await),
        "NOT_FOUND"
    );
    // Grade A is one row of five: six cannot come from it (and the limit is 2 anyway).
    let big = app.show(layout(4, 5), 10).await;
    assert_eq!(
        code(&best(&app, &fan, &big.schedule_id, 6, Some("A"), None).await),
        "SEAT_UNAVAILABLE"
    );
    // Anonymous callers are refused before anything.
    let anon = app
        .gql(None, BEST, json!({ "i": { "scheduleId": s, "count": 1 } }))
        .await;
    assert_eq!(code(&anon), "UNAUTHENTICATED");
    assert_eq!(app.count("SELECT count(*) AS n FROM reservations").await, 0);

    // Not on sale: the schedule cancelled.
    app.ok(
        Some(&show.host.access),
        "mutation($s: ID!) { cancelSchedule(id: $s) { id } }",
        json!({ "s": s }),
    )
    .await;
    assert_eq!(code(&best(&app, &fan, s, 1, None, None).await), "CONFLICT");

    // Sold out: every seat of a small show held.
    let tiny = app.show(layout(1, 2), 2).await;
    let other = app.sign_up("other@example.com").await;
    picked(&app, &other, &tiny, 2, None).await;
    assert_eq!(
        code(&best(&app, &fan, &tiny.schedule_id, 1, None, None).await),
        "SOLD_OUT"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn place_order_accepts_a_best_available_request() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(4, 10), 4).await;
    let fan = app.sign_up("fan@example.com").await;
    let body = app
        .ok(
            Some(&fan.access),
            "mutation($b: BestAvailableInput!) { placeOrder(bestAvailable: $b) { jobId } }",
            json!({ "b": { "scheduleId": show.schedule_id, "count": 3, "grade": "S" } }),
        )
        .await;
    let job = body["placeOrder"]["jobId"].as_str().unwrap().to_owned();
    let mut done = Value::Null;
    for _ in 0..150 {
        let o = app
            .ok(
                Some(&fan.access),
                "query($j: String!) { order(jobId: $j) { status errorCode reservation { seatCount together seats { grade row } } } }",
                json!({ "j": job }),
            )
            .await["order"]
            .clone();
        if o["status"] == "DONE" || o["status"] == "FAILED" {
            done = o;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(done["status"], "DONE", "{done}");
    assert_eq!(done["reservation"]["seatCount"], 3);
    assert_eq!(done["reservation"]["together"], true);
    assert!(
        done["reservation"]["seats"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["grade"] == "S" && s["row"] == "R2")
    );
    // Both or neither is bad input, refused at once.
    let both = app
        .gql(
            Some(&fan.access),
            "mutation($b: BestAvailableInput!, $i: ReserveSeatsInput!) { placeOrder(bestAvailable: $b, input: $i) { jobId } }",
            json!({ "b": { "scheduleId": show.schedule_id, "count": 1 }, "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[0]] } }),
        )
        .await;
    assert_eq!(code(&both), "BAD_USER_INPUT");
    let neither = app
        .gql(Some(&fan.access), "mutation { placeOrder { jobId } }", json!({}))
        .await;
    assert_eq!(code(&neither), "BAD_USER_INPUT");
}

/// A batch with a best-available request reuses the layout the previous batch left while
/// no other change of a seat happened, and reads it again after one: here a cancellation
/// frees the best seats, and the next pick gets exactly those.
#[tokio::test]
async fn picks_reuse_the_layout_until_a_seat_changes_elsewhere() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(2, 10), 8).await;
    let fans = app.bulk_users(3).await;
    let first = picked(&app, &fans[0], &show, 2, None).await;
    let second = picked(&app, &fans[1], &show, 2, None).await;
    assert_eq!(
        app.state.batcher.layout_reads(),
        (1, 1),
        "the second pick reuses the layout"
    );
    let (a, b) = (places(&first), places(&second));
    assert!(a.iter().all(|p| !b.contains(p)), "{a:?} and {b:?} share a seat");

    let cancel = app
        .gql(
            Some(&fans[0].access),
            "mutation($r: ID!) { cancelReservation(reservationId: $r) { status } }",
            json!({ "r": first["id"] }),
        )
        .await;
    assert_eq!(
        cancel["data"]["cancelReservation"]["status"], "CANCELLED",
        "{cancel}"
    );
    let third = picked(&app, &fans[2], &show, 2, None).await;
    assert_eq!(
        app.state.batcher.layout_reads(),
        (2, 1),
        "a cancellation makes the next pick read again"
    );
    assert_eq!(places(&third), a, "the freed best seats go to the next picker");
    app.assert_invariants().await;
}
