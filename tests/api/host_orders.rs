//! A show's orders for its host (C19): `scheduleOrders` with buyers, filters and pages;
//! `refundReservation` (full refund to the wallet, seats back, tickets revoked, audited,
//! outbox events, idempotent); `salesTimeline`; and who may do each.

use serde_json::{Value, json};

use crate::common::{Session, Show, TestApp, code, layout};

const RESERVE: &str = "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }";
const PAY: &str =
    "mutation($r: ID!, $k: String!) { payReservation(reservationId: $r, idempotencyKey: $k) { id status } }";
const CHARGE: &str =
    "mutation($a: Int!, $k: String!) { chargePoints(amount: $a, idempotencyKey: $k) { balanceAfter } }";
const ORDERS: &str = "query($s: ID!, $first: Int, $after: String, $f: ScheduleOrderFilter) {
  scheduleOrders(scheduleId: $s, first: $first, after: $after, filter: $f) {
    edges { cursor node { id status seatCount totalPrice refunded createdAt paidAt cancelledAt expiresAt
      buyer { id displayName email } reservation { id seats { id grade price } tickets { status } } } }
    pageInfo { hasNextPage endCursor } } }";
const REFUND: &str = "mutation($id: ID!, $why: String!) { refundReservation(id: $id, reason: $why) { id status cancelledAt tickets { status } } }";
const BALANCE: &str = "{ me { points } }";

async fn hold(app: &TestApp, fan: &Session, show: &Show, seats: &[usize]) -> String {
    let ids: Vec<&str> = seats.iter().map(|i| show.seats[*i].as_str()).collect();
    let d = app
        .ok(
            Some(&fan.access),
            RESERVE,
            json!({ "i": { "scheduleId": show.schedule_id, "seatIds": ids } }),
        )
        .await;
    d["reserveSeats"]["id"].as_str().unwrap().to_owned()
}

/// A fan with 10,000 points who paid for `seats`; the reservation id.
async fn paid(app: &TestApp, fan: &Session, show: &Show, seats: &[usize]) -> String {
    app.ok(
        Some(&fan.access),
        CHARGE,
        json!({ "a": 10_000, "k": uuid::Uuid::new_v4().to_string() }),
    )
    .await;
    let r = hold(app, fan, show, seats).await;
    app.ok(
        Some(&fan.access),
        PAY,
        json!({ "r": r, "k": uuid::Uuid::new_v4().to_string() }),
    )
    .await;
    r
}

async fn points(app: &TestApp, who: &Session) -> i64 {
    app.ok(Some(&who.access), BALANCE, json!({})).await["me"]["points"]
        .as_i64()
        .unwrap()
}

fn nodes(d: &Value) -> Vec<Value> {
    d["scheduleOrders"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

#[tokio::test]
async fn the_host_lists_orders_with_buyers_filters_and_pages() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(2, 5), 10).await;
    let ann = app.sign_up("ann.orders@example.com").await;
    let bob = app.sign_up("bob.orders@example.com").await;
    let paid_ann = paid(&app, &ann, &show, &[0, 1]).await;
    let held_bob = hold(&app, &bob, &show, &[2]).await;
    let held_ann = hold(&app, &ann, &show, &[5]).await;
    let host = Some(show.host.access.as_str());

    let all = app.ok(host, ORDERS, json!({ "s": show.schedule_id })).await;
    let all = nodes(&all);
    assert_eq!(
        all.iter().map(|n| n["id"].as_str().unwrap()).collect::<Vec<_>>(),
        [held_ann.as_str(), held_bob.as_str(), paid_ann.as_str()],
        "newest first"
    );
    let first = &all[2];
    assert_eq!(first["status"], "CONFIRMED");
    assert_eq!(first["buyer"]["email"], "ann.orders@example.com");
    assert_eq!(first["buyer"]["displayName"], "ann.orders");
    assert_eq!(first["seatCount"], 2);
    assert_eq!(first["totalPrice"], 300, "two VIP seats at 150");
    assert_eq!(first["refunded"], 0);
    assert!(first["paidAt"].is_string());
    assert_eq!(first["reservation"]["seats"].as_array().unwrap().len(), 2);
    assert_eq!(first["reservation"]["tickets"].as_array().unwrap().len(), 2);

    // Filters: status, buyer text (case-insensitive, part of the email or name), id.
    let held = app
        .ok(
            host,
            ORDERS,
            json!({ "s": show.schedule_id, "f": { "status": ["HELD"] } }),
        )
        .await;
    assert_eq!(nodes(&held).len(), 2);
    let bobs = app
        .ok(
            host,
            ORDERS,
            json!({ "s": show.schedule_id, "f": { "text": "BOB.ord" } }),
        )
        .await;
    assert_eq!(nodes(&bobs).len(), 1);
    assert_eq!(nodes(&bobs)[0]["id"], held_bob.as_str());
    let anns_held = app
        .ok(
            host,
            ORDERS,
            json!({ "s": show.schedule_id, "f": { "text": "ann", "status": "HELD" } }),
        )
        .await;
    assert_eq!(nodes(&anns_held)[0]["id"], held_ann.as_str());
    assert_eq!(nodes(&anns_held).len(), 1);
    let by_id = app
        .ok(
            host,
            ORDERS,
            json!({ "s": show.schedule_id, "f": { "text": format!("#{paid_ann}") } }),
        )
        .await;
    assert_eq!(nodes(&by_id).len(), 1);
    assert_eq!(nodes(&by_id)[0]["id"], paid_ann.as_str());
    // LIKE's own characters are taken literally.
    let none = app
        .ok(
            host,
            ORDERS,
            json!({ "s": show.schedule_id, "f": { "text": "%" } }),
        )
        .await;
    assert!(nodes(&none).is_empty());

    // Pages of 2: the cursor goes on where the first page ended.
    let p1 = app
        .ok(host, ORDERS, json!({ "s": show.schedule_id, "first": 2 }))
        .await;
    assert_eq!(nodes(&p1).len(), 2);
    assert_eq!(p1["scheduleOrders"]["pageInfo"]["hasNextPage"], true);
    let cursor = p1["scheduleOrders"]["pageInfo"]["endCursor"].clone();
    let p2 = app
        .ok(
            host,
            ORDERS,
            json!({ "s": show.schedule_id, "first": 2, "after": cursor }),
        )
        .await;
    assert_eq!(nodes(&p2).len(), 1);
    assert_eq!(nodes(&p2)[0]["id"], paid_ann.as_str());
    assert_eq!(p2["scheduleOrders"]["pageInfo"]["hasNextPage"], false);

    // An admin sees them too.
    let admin = app.user_with_role("admin.orders@example.com", "admin").await;
    let seen = app
        .ok(Some(&admin.access), ORDERS, json!({ "s": show.schedule_id }))
        .await;
    assert_eq!(nodes(&seen).len(), 3);
}

#[tokio::test]
async fn orders_are_refused_to_others_and_bad_input_is_named() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 4), 4).await;
    let other = app.show(layout(1, 4), 4).await;
    let fan = app.sign_up("fan.orders@example.com").await;
    hold(&app, &fan, &show, &[0]).await;
    let s = json!({ "s": show.schedule_id });

    // Another host: as if the schedule did not exist. A fan: the role is not enough.
    let body = app.gql(Some(&other.host.access), ORDERS, s.clone()).await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    let body = app.gql(Some(&fan.access), ORDERS, s.clone()).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let body = app.gql(None, ORDERS, s.clone()).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    let body = app
        .gql(Some(&show.host.access), ORDERS, json!({ "s": "999999" }))
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");

    let host = Some(show.host.access.as_str());
    for (vars, field) in [
        (json!({ "s": "x" }), "scheduleId"),
        (json!({ "s": show.schedule_id, "first": 101 }), "first"),
        (json!({ "s": show.schedule_id, "after": "garbage" }), "after"),
        (
            json!({ "s": show.schedule_id, "f": { "text": "y".repeat(101) } }),
            "filter.text",
        ),
    ] {
        let body = app.gql(host, ORDERS, vars).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
    }
    let body = app
        .gql(
            host,
            ORDERS,
            json!({ "s": show.schedule_id, "f": { "status": ["SOLD"] } }),
        )
        .await;
    assert!(body["errors"].is_array(), "an unknown status is refused: {body}");
}

#[tokio::test]
async fn a_refund_gives_everything_back_once_and_is_audited() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 6), 6).await;
    let fan = app.sign_up("fan.refund@example.com").await;
    let r = paid(&app, &fan, &show, &[0, 1]).await;
    assert_eq!(points(&app, &fan).await, 10_000 - 300);
    let host = Some(show.host.access.as_str());
    let vars = json!({ "id": r, "why": "  the buyer asked by phone " });

    let refunded = app.ok(host, REFUND, vars.clone()).await;
    let refunded = &refunded["refundReservation"];
    assert_eq!(refunded["status"], "CANCELLED");
    assert!(
        refunded["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "REVOKED")
    );
    assert_eq!(points(&app, &fan).await, 10_000, "the full price came back");

    // Again (a double click, a retry): the same answer, nothing more given back.
    let again = app.ok(host, REFUND, vars).await;
    assert_eq!(again["refundReservation"]["cancelledAt"], refunded["cancelledAt"]);
    assert_eq!(points(&app, &fan).await, 10_000);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM point_ledger WHERE reservation_id = {r} AND kind = 'refund' AND amount = 300"
        ))
        .await,
        1
    );
    // The seats are for sale again, and the order list says what happened.
    let map = app
        .ok(
            None,
            "query($s: ID!) { schedule(id: $s) { seats { id status } } }",
            json!({ "s": show.schedule_id }),
        )
        .await;
    assert_eq!(map["schedule"]["seats"][0]["status"], "AVAILABLE");
    assert_eq!(map["schedule"]["seats"][1]["status"], "AVAILABLE");
    let list = app.ok(host, ORDERS, json!({ "s": show.schedule_id })).await;
    assert_eq!(nodes(&list)[0]["refunded"], 300);
    assert_eq!(nodes(&list)[0]["status"], "CANCELLED");

    // Audited once, with the reason; the outbox has both events, once.
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM audit_log WHERE action = 'refund_reservation' AND target_type = 'reservation'
             AND target_id = {r} AND actor_id = {} AND details->>'reason' = 'the buyer asked by phone'
             AND (details->>'amount')::bigint = 300",
            show.host.id
        ))
        .await,
        1
    );
    for event in ["reservation.refunded", "reservation.cancelled"] {
        assert_eq!(
            app.count(&format!(
                "SELECT count(*) AS n FROM outbox WHERE event_type = '{event}' AND subject = 'reservations/{r}'"
            ))
            .await,
            1,
            "{event}"
        );
    }
    app.assert_invariants().await;
}

#[tokio::test]
async fn refunds_are_refused_to_others_and_for_unpaid_orders() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 6), 6).await;
    let other = app.show(layout(1, 4), 4).await;
    let fan = app.sign_up("fan.refund2@example.com").await;
    let r = paid(&app, &fan, &show, &[0]).await;
    let held = hold(&app, &fan, &show, &[1]).await;
    let vars = json!({ "id": r, "why": "x" });

    let body = app.gql(Some(&other.host.access), REFUND, vars.clone()).await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    let body = app.gql(Some(&fan.access), REFUND, vars.clone()).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let host = Some(show.host.access.as_str());
    let body = app.gql(host, REFUND, json!({ "id": r, "why": "   " })).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "reason");
    let body = app.gql(host, REFUND, json!({ "id": "0", "why": "x" })).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    let body = app.gql(host, REFUND, json!({ "id": held, "why": "x" })).await;
    assert_eq!(code(&body), "CONFLICT", "a hold has nothing to refund: {body}");
    // Nothing was written by any of those.
    assert_eq!(points(&app, &fan).await, 10_000 - 150);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM audit_log WHERE action = 'refund_reservation'")
            .await,
        0
    );

    // An admin may refund any show's order, also after the show started (a fan may not
    // cancel then).
    app.set_schedule(
        &show.schedule_id,
        "starts_at = now() - interval '1 minute', sales_open_at = now() - interval '2 days', sales_close_at = now() - interval '1 hour'",
    )
    .await;
    let body = app
        .gql(
            Some(&fan.access),
            "mutation($r: ID!) { cancelReservation(reservationId: $r) { id } }",
            json!({ "r": r }),
        )
        .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    let admin = app.user_with_role("admin.refund@example.com", "admin").await;
    let done = app.ok(Some(&admin.access), REFUND, vars).await;
    assert_eq!(done["refundReservation"]["status"], "CANCELLED");
    assert_eq!(points(&app, &fan).await, 10_000);
    app.assert_invariants().await;
}

#[tokio::test]
async fn sales_over_time_say_which_performance_and_grade() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(2, 4), 8).await;
    let fan = app.sign_up("fan.timeline@example.com").await;
    paid(&app, &fan, &show, &[0, 1]).await; // VIP
    paid(&app, &fan, &show, &[4]).await; // R
    // A sale from yesterday: the chart starts there, not when the page opened.
    app.count(
        "WITH u AS (UPDATE reservations SET paid_at = now() - interval '1 day'
                    WHERE id = (SELECT min(id) FROM reservations) RETURNING 1) SELECT count(*) AS n FROM u",
    )
    .await;
    const TIMELINE: &str = "query($c: ID!, $b: Int) { salesTimeline(concertId: $c, bucketSeconds: $b) {
        from bucketSeconds schedules { scheduleId startsAt grades { grade points { at seats revenue totalSeats totalRevenue } } } } }";
    let d = app
        .ok(Some(&show.host.access), TIMELINE, json!({ "c": show.concert_id }))
        .await;
    let t = &d["salesTimeline"];
    assert_eq!(t["bucketSeconds"], 900, "a day in at most 200 buckets: {t}");
    let from = chrono::DateTime::parse_from_rfc3339(t["from"].as_str().unwrap()).unwrap();
    assert!(chrono::Utc::now().signed_duration_since(from) > chrono::Duration::hours(23));
    let s = &t["schedules"][0];
    assert_eq!(s["scheduleId"], show.schedule_id.as_str());
    assert!(s["startsAt"].is_string());
    let grades: Vec<&str> = s["grades"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["grade"].as_str().unwrap())
        .collect();
    assert_eq!(grades, ["R", "VIP"]);
    let r = &s["grades"][0]["points"];
    assert_eq!(r.as_array().unwrap().len(), 1);
    assert_eq!(r[0]["seats"], 1);
    assert_eq!(r[0]["revenue"], 100);
    let vip = s["grades"][1]["points"].as_array().unwrap();
    assert_eq!(vip.len(), 1, "both VIP seats were one reservation, a day ago");
    assert_eq!(vip[0]["totalSeats"], 2);
    assert_eq!(vip[0]["totalRevenue"], 300);

    let other = app.show(layout(1, 1), 1).await;
    let body = app
        .gql(
            Some(&other.host.access),
            TIMELINE,
            json!({ "c": show.concert_id }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    let body = app
        .gql(Some(&fan.access), TIMELINE, json!({ "c": show.concert_id }))
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let body = app
        .gql(
            Some(&show.host.access),
            TIMELINE,
            json!({ "c": show.concert_id, "b": 10 }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
}

#[tokio::test]
async fn complimentary_seats_are_counted_apart_from_seats_sold() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(2, 4), 8).await;
    let host = Some(show.host.access.as_str());
    // Given away before any sale: not a sale, and the chart does not start there.
    app.ok(
        host,
        "mutation($s: ID!, $ids: [ID!]!) { issueComplimentary(scheduleId: $s, seatIds: $ids, email: \"press@example.com\") { reservation { id } } }",
        json!({ "s": show.schedule_id, "ids": [show.seats[4], show.seats[5]] }), // R
    )
    .await;
    const SALES: &str = "query($c: ID!) { concertSales(concertId: $c) { seatsSold complimentary revenue
        schedules { seatsSold complimentary seatsHeld revenue } } }";
    const TIMELINE: &str = "query($c: ID!) { salesTimeline(concertId: $c) { from
        schedules { grades { grade points { totalSeats totalRevenue } } } } }";
    let s = app.ok(host, SALES, json!({ "c": show.concert_id })).await["concertSales"].clone();
    assert_eq!(
        s,
        json!({ "seatsSold": 0, "complimentary": 2, "revenue": 0,
                "schedules": [{ "seatsSold": 0, "complimentary": 2, "seatsHeld": 0, "revenue": 0 }] })
    );
    let t = app.ok(host, TIMELINE, json!({ "c": show.concert_id })).await["salesTimeline"].clone();
    assert_eq!(t["from"], Value::Null, "nothing sold yet: {t}");

    // One paid seat and one held: sold means paid for, on both reports.
    let fan = app.sign_up("fan.comp@example.com").await;
    paid(&app, &fan, &show, &[0]).await; // VIP
    hold(&app, &fan, &show, &[1]).await;
    let s = app.ok(host, SALES, json!({ "c": show.concert_id })).await["concertSales"].clone();
    assert_eq!(
        s,
        json!({ "seatsSold": 1, "complimentary": 2, "revenue": 150,
                "schedules": [{ "seatsSold": 1, "complimentary": 2, "seatsHeld": 1, "revenue": 150 }] })
    );
    let t = app.ok(host, TIMELINE, json!({ "c": show.concert_id })).await["salesTimeline"].clone();
    let grades = t["schedules"][0]["grades"].as_array().unwrap();
    let seats: i64 = grades
        .iter()
        .map(|g| {
            g["points"].as_array().unwrap().last().unwrap()["totalSeats"]
                .as_i64()
                .unwrap()
        })
        .sum();
    assert_eq!(
        seats,
        s["seatsSold"].as_i64().unwrap(),
        "the chart and the table agree: {t}"
    );
    assert_eq!(grades.len(), 1, "the given seats' grade (R) has no sales: {t}");
    assert_eq!(grades[0]["grade"], "VIP");
}
