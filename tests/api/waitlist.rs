//! Waiting lists (issue 16): offers when seats come back, in line order, across instances,
//! never visible as available; the refusals; invariants after a storm.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    best_available::best,
    common::{Session, Show, TestApp, code, layout},
    websocket::{connect, init, recv, send},
};

const JOIN: &str = "mutation($s: ID!, $n: Int!, $g: String) { joinWaitlist(scheduleId: $s, count: $n, grade: $g) { id status count grade position } }";
const LEAVE: &str = "mutation($s: ID!) { leaveWaitlist(scheduleId: $s) { id status position } }";
const MINE: &str = "{ myWaitlist { id status position count reservation { id status seatCount } } myReservations { edges { node { id status seatCount together } } } }";
const CANCEL: &str = "mutation($r: ID!) { cancelReservation(reservationId: $r) { id status } }";
const LENGTH: &str = "query($s: ID!) { schedule(id: $s) { waitlistLength } }";
const OFFERS: &str = "subscription { waitlistOffers { entryId scheduleId entry { id status reservation { id } } reservation { id status seatCount } } }";
const SEAT_CHANGES: &str =
    "subscription($s: ID!) { seatChanges(scheduleId: $s) { version seats { id status } } }";

async fn join(app: &TestApp, who: &Session, show: &Show, count: i64, grade: Option<&str>) -> Value {
    app.gql(
        Some(&who.access),
        JOIN,
        json!({ "s": show.schedule_id, "n": count, "g": grade }),
    )
    .await
}

async fn mine(app: &TestApp, who: &Session) -> Value {
    app.ok(Some(&who.access), MINE, json!({})).await
}

/// Makes a reservation overdue and runs the sweeper once.
async fn expire(app: &TestApp, reservation_id: &str) {
    app.count(&format!(
        "WITH u AS (UPDATE reservations SET expires_at = now() - interval '1 second' WHERE id = {reservation_id} RETURNING 1) SELECT count(*) AS n FROM u"
    ))
    .await;
    boxoffice::booking::expire_due_holds(&app.state).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn freed_seats_go_to_the_line_in_order_and_never_show_as_available() {
    let app = TestApp::spawn().await;
    let other = app.second_instance(&[]).await;
    let show = app.show(layout(1, 2), 2).await;
    let holder = app.sign_up("holder@example.com").await;
    let first = app.sign_up("first@example.com").await;
    let second = app.sign_up("second@example.com").await;
    let third = app.sign_up("third@example.com").await;

    let sold = best(&app, &holder, &show.schedule_id, 2, None, None).await;
    let sold_id = sold["data"]["reserveBestAvailable"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let e1 = join(&app, &first, &show, 2, Some("VIP")).await;
    assert_eq!(e1["data"]["joinWaitlist"]["status"], "WAITING", "{e1}");
    assert_eq!(e1["data"]["joinWaitlist"]["position"], 1);
    let e2 = join(&app, &second, &show, 2, None).await;
    assert_eq!(e2["data"]["joinWaitlist"]["position"], 2, "{e2}");
    let e3 = join(&app, &third, &show, 1, None).await;
    assert_eq!(e3["data"]["joinWaitlist"]["position"], 3, "{e3}");

    // Hosts see the line's length; fans do not.
    let seen = app
        .ok(Some(&show.host.access), LENGTH, json!({ "s": show.schedule_id }))
        .await;
    assert_eq!(seen["schedule"]["waitlistLength"], 3);
    let hidden = app
        .ok(Some(&first.access), LENGTH, json!({ "s": show.schedule_id }))
        .await;
    assert_eq!(hidden["schedule"]["waitlistLength"], Value::Null);

    // The first fan listens for offers on the other instance; the map is watched too.
    let mut offers = connect(&other, "graphql-transport-ws").await;
    assert_eq!(
        init(&mut offers, Some(&first.access)).await["type"],
        "connection_ack"
    );
    send(
        &mut offers,
        json!({ "id": "o", "type": "subscribe", "payload": { "query": OFFERS } }),
    )
    .await;
    let mut map = connect(&app, "graphql-transport-ws").await;
    assert_eq!(init(&mut map, None).await["type"], "connection_ack");
    send(&mut map, json!({ "id": "m", "type": "subscribe", "payload": { "query": SEAT_CHANGES, "variables": { "s": show.schedule_id } } })).await;
    let current = recv(&mut map).await;
    assert_eq!(current["type"], "next", "{current}");
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The holder cancels: both seats go to the first entry in the same transaction.
    app.ok(Some(&holder.access), CANCEL, json!({ "r": sold_id }))
        .await;
    let offer = recv(&mut offers).await;
    assert_eq!(offer["type"], "next", "{offer}");
    let offer = &offer["payload"]["data"]["waitlistOffers"];
    assert_eq!(offer["scheduleId"], show.schedule_id.as_str());
    assert_eq!(offer["reservation"]["status"], "HELD");
    assert_eq!(offer["reservation"]["seatCount"], 2);
    let offered_id = offer["reservation"]["id"].as_str().unwrap().to_owned();
    // The entry itself, OFFERED with its hold: what a cache of `myWaitlist` needs.
    assert_eq!(offer["entry"]["id"], offer["entryId"]);
    assert_eq!(offer["entry"]["status"], "OFFERED");
    assert_eq!(offer["entry"]["reservation"]["id"], offered_id.as_str());

    // Subscribers never saw the seats available: the change they got shows them held.
    let change = recv(&mut map).await;
    let seats = change["payload"]["data"]["seatChanges"]["seats"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(seats.len(), 2, "{change}");
    assert!(seats.iter().all(|s| s["status"] == "HELD"), "{change}");

    let m = mine(&app, &first).await;
    assert_eq!(m["myWaitlist"][0]["status"], "OFFERED");
    assert_eq!(m["myWaitlist"][0]["position"], Value::Null);
    assert_eq!(m["myWaitlist"][0]["reservation"]["id"], offered_id.as_str());
    assert_eq!(m["myReservations"]["edges"][0]["node"]["id"], offered_id.as_str());
    assert_eq!(m["myReservations"]["edges"][0]["node"]["together"], true);
    let m = mine(&app, &second).await;
    assert_eq!(m["myWaitlist"][0]["position"], 1, "{m}");

    // The offer is not paid: it expires and goes to the next entry that fits.
    expire(&app, &offered_id).await;
    let m = mine(&app, &second).await;
    assert_eq!(m["myWaitlist"][0]["status"], "OFFERED", "{m}");
    assert_eq!(m["myReservations"]["edges"][0]["node"]["seatCount"], 2);
    assert_eq!(m["myReservations"]["edges"][0]["node"]["status"], "HELD");
    let m = mine(&app, &third).await;
    assert_eq!(m["myWaitlist"][0]["status"], "WAITING");
    assert_eq!(m["myWaitlist"][0]["position"], 1);
    let seen = app
        .ok(Some(&show.host.access), LENGTH, json!({ "s": show.schedule_id }))
        .await;
    assert_eq!(seen["schedule"]["waitlistLength"], 1);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM seats WHERE schedule_id = {} AND status = 'available'",
            show.schedule_id
        ))
        .await,
        0
    );
    app.assert_invariants().await;
}

#[tokio::test]
async fn the_line_refuses_what_it_cannot_serve() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(2, 2), 2).await;
    let fan = app.sign_up("fan@example.com").await;
    let holder = app.sign_up("holder@example.com").await;

    // Seats are available: book them instead.
    assert_eq!(code(&join(&app, &fan, &show, 1, None).await), "CONFLICT");
    // Sell out the VIP row (R0); R is still free.
    best(&app, &holder, &show.schedule_id, 2, Some("VIP"), None).await;
    assert_eq!(code(&join(&app, &fan, &show, 1, Some("R")).await), "CONFLICT");
    assert_eq!(
        code(&join(&app, &fan, &show, 0, Some("VIP")).await),
        "BAD_USER_INPUT"
    );
    assert_eq!(
        code(&join(&app, &fan, &show, 11, Some("VIP")).await),
        "BAD_USER_INPUT"
    );
    assert_eq!(
        code(&join(&app, &fan, &show, 1, Some("Balcony")).await),
        "BAD_USER_INPUT"
    );
    assert_eq!(code(&join(&app, &fan, &show, 3, None).await), "LIMIT_EXCEEDED");
    let other = Show {
        schedule_id: "999999".into(),
        host: holder.clone(),
        concert_id: String::new(),
        seats: Vec::new(),
    };
    assert_eq!(code(&join(&app, &fan, &other, 1, None).await), "NOT_FOUND");

    // Leaving when not on the list says so.
    let left = app
        .ok(Some(&fan.access), LEAVE, json!({ "s": show.schedule_id }))
        .await;
    assert_eq!(left["leaveWaitlist"], Value::Null);

    let joined = join(&app, &fan, &show, 2, Some("VIP")).await;
    assert_eq!(joined["data"]["joinWaitlist"]["status"], "WAITING", "{joined}");
    let entry_id = joined["data"]["joinWaitlist"]["id"].clone();
    assert_eq!(
        code(&join(&app, &fan, &show, 1, Some("VIP")).await),
        "CONFLICT",
        "joining twice"
    );
    let left = app
        .ok(Some(&fan.access), LEAVE, json!({ "s": show.schedule_id }))
        .await;
    // The entry left, as a cache holds it: same id, now LEFT.
    assert_eq!(
        left["leaveWaitlist"],
        json!({ "id": entry_id, "status": "LEFT", "position": null })
    );
    assert_eq!(mine(&app, &fan).await["myWaitlist"], json!([]));
    // Back in line after leaving.
    assert!(join(&app, &fan, &show, 1, Some("VIP")).await["errors"].is_null());
    let anon = app
        .gql(None, JOIN, json!({ "s": show.schedule_id, "n": 1 }))
        .await;
    assert_eq!(code(&anon), "UNAUTHENTICATED");

    // Not on sale: the schedule cancelled. Nobody is served from a cancelled schedule.
    app.ok(
        Some(&show.host.access),
        "mutation($s: ID!) { cancelSchedule(id: $s) { id } }",
        json!({ "s": show.schedule_id }),
    )
    .await;
    let late = app.sign_up("late@example.com").await;
    assert_eq!(code(&join(&app, &late, &show, 1, Some("VIP")).await), "CONFLICT");
    assert_eq!(mine(&app, &fan).await["myWaitlist"][0]["status"], "WAITING");
    app.assert_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invariants_hold_after_a_storm_of_picks_holds_cancels_expiries_and_offers() {
    let app = TestApp::spawn().await;
    // 24 seats in six rows of four (grades VIP, R, S, A, VIP, R), ten seats per fan at most.
    let show = app.show(layout(6, 4), 10).await;
    let fans = app.bulk_users(40).await;
    let s = show.schedule_id.clone();

    // Round 1: everyone grabs seats at once, picking or naming them; the late join the line.
    let grabs = futures_util::future::join_all(fans.iter().enumerate().map(|(i, fan)| {
        let (app, show, s) = (&app, &show, s.clone());
        async move {
            let body = if i % 3 == 0 {
                let seat = &show.seats[i % show.seats.len()];
                app.gql(
                    Some(&fan.access),
                    "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }",
                    json!({ "i": { "scheduleId": s, "seatIds": [seat] } }),
                )
                .await["data"]["reserveSeats"]["id"]
                    .clone()
            } else {
                let grade = ["VIP", "R", "S", "A"][i % 4];
                let grade = (i % 2 == 0).then_some(grade);
                best(app, fan, &s, (i % 3 + 1) as i64, grade, None).await["data"]["reserveBestAvailable"]
                        ["id"]
                        .clone()
            };
            if body.is_null() {
                let _ = join(app, fan, show, (i % 2 + 1) as i64, None).await;
            }
            body.as_str().map(str::to_owned)
        }
    }))
    .await;
    let held: Vec<(usize, String)> = grabs
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| r.map(|r| (i, r)))
        .collect();
    assert!(!held.is_empty());
    let waiting = app
        .count("SELECT count(*) AS n FROM waitlist_entries WHERE status = 'waiting'")
        .await;
    assert!(waiting > 0, "some fans found the show sold out");

    // Round 2, all at once: a third cancelled, a third expired, more picks and joins.
    let cancel = held.iter().filter(|(i, _)| i % 3 == 0);
    let overdue: Vec<&String> = held.iter().filter(|(i, _)| i % 3 == 1).map(|(_, r)| r).collect();
    for r in &overdue {
        app.count(&format!(
            "WITH u AS (UPDATE reservations SET expires_at = now() - interval '1 second' WHERE id = {r} RETURNING 1) SELECT count(*) AS n FROM u"
        ))
        .await;
    }
    let cancels = futures_util::future::join_all(
        cancel.map(|(i, r)| app.gql(Some(&fans[*i].access), CANCEL, json!({ "r": r }))),
    );
    let sweeps =
        futures_util::future::join_all((0..3).map(|_| boxoffice::booking::expire_due_holds(&app.state)));
    let picks = futures_util::future::join_all(fans.iter().enumerate().rev().take(10).map(|(_, fan)| {
        let (app, show, s) = (&app, &show, s.clone());
        async move {
            if best(app, fan, &s, 1, None, None).await["errors"].is_array() {
                let _ = join(app, fan, show, 1, None).await;
            }
        }
    }));
    let (cancels, sweeps, _) = tokio::join!(cancels, sweeps, picks);
    for c in cancels {
        assert!(c["errors"].is_null(), "{c}");
    }
    for s in sweeps {
        s.unwrap();
    }
    boxoffice::booking::expire_due_holds(&app.state).await.unwrap();

    app.assert_invariants().await;
    // Offers are the fans' own holds, made from seats of this schedule.
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM waitlist_entries w JOIN reservations r ON r.id = w.reservation_id
             WHERE r.user_id <> w.user_id OR r.schedule_id <> w.schedule_id"
        )
        .await,
        0
    );
    let offered = app
        .count("SELECT count(*) AS n FROM waitlist_entries WHERE status = 'offered'")
        .await;
    assert!(offered > 0, "freed seats went to the line");
    // Nobody waits for seats that are free: every release served the line first (no one
    // here is near the limit of ten, so every entry that fits got its hold).
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM waitlist_entries w WHERE w.schedule_id = {s} AND w.status = 'waiting'
             AND w.seat_count <= (SELECT max(c) FROM (SELECT count(*) AS c FROM seats
                  WHERE schedule_id = {s} AND status = 'available' GROUP BY grade_id) x)"
        ))
        .await,
        0,
        "a waiting entry fits the free seats"
    );
}

#[tokio::test]
async fn seats_added_to_a_schedule_serve_its_line_first() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 2), 4).await;
    let host = Some(show.host.access.as_str());
    // A second performance of the published concert, on sale before it has seats.
    let added = app
        .ok(
            host,
            crate::common::ADD_SCHEDULE,
            json!({ "c": show.concert_id, "i": crate::common::schedule_input(4) }),
        )
        .await;
    let schedule_id = added["addSchedule"]["id"].as_str().unwrap().to_owned();
    let later = Show {
        schedule_id: schedule_id.clone(),
        host: show.host.clone(),
        concert_id: show.concert_id.clone(),
        seats: Vec::new(),
    };
    let fan = app.sign_up("fan@example.com").await;
    let joined = join(&app, &fan, &later, 3, None).await;
    assert_eq!(joined["data"]["joinWaitlist"]["status"], "WAITING", "{joined}");

    app.ok(
        host,
        crate::common::GENERATE,
        json!({ "s": schedule_id, "l": layout(2, 5) }),
    )
    .await;
    let m = mine(&app, &fan).await;
    assert_eq!(m["myWaitlist"][0]["status"], "OFFERED", "{m}");
    let r = &m["myWaitlist"][0]["reservation"];
    assert_eq!(
        (r["status"].as_str(), r["seatCount"].as_i64()),
        (Some("HELD"), Some(3))
    );
    assert_eq!(
        app.count(&format!(
            "SELECT booked_count::bigint AS n FROM schedules WHERE id = {schedule_id}"
        ))
        .await,
        3
    );
    app.assert_invariants().await;
}

/// Issue 21, finding 2: a performance that sells through the waiting queue takes into its
/// waiting list only fans the queue admitted, so no one reaches a seat around the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queued_performance_lines_up_only_admitted_fans() {
    const ENTER: &str = "mutation($s: ID!) { enterQueue(scheduleId: $s) { state } }";
    const STATUS: &str = "query($s: ID!) { queueStatus(scheduleId: $s) { admitted } }";
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 2), 2).await;
    let holder = app.sign_up("holder@example.com").await;
    let outsider = app.sign_up("outsider@example.com").await;
    let queued = app.sign_up("queued@example.com").await;
    let sold = best(&app, &holder, &show.schedule_id, 2, None, None).await;
    let sold_id = sold["data"]["reserveBestAvailable"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.set_schedule(
        &show.schedule_id,
        "queue_enabled = true, admit_per_second = 100, max_active = 100",
    )
    .await;
    // The queue cache of the settings lives a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // Never queued: refused as reserving is, and nothing is written.
    let body = join(&app, &outsider, &show, 1, None).await;
    assert_eq!(code(&body), "QUEUE_REQUIRED", "{body}");
    let body = best(&app, &outsider, &show.schedule_id, 1, None, None).await;
    assert_eq!(code(&body), "QUEUE_REQUIRED", "{body}");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM waitlist_entries WHERE user_id = {}",
            outsider.id
        ))
        .await,
        0
    );

    // Admitted by the queue: in line.
    app.ok(Some(&queued.access), ENTER, json!({ "s": show.schedule_id }))
        .await;
    let mut admitted = false;
    for _ in 0..50 {
        let s = app
            .ok(Some(&queued.access), STATUS, json!({ "s": show.schedule_id }))
            .await;
        if s["queueStatus"]["admitted"] == true {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(admitted);
    let body = join(&app, &queued, &show, 2, None).await;
    assert_eq!(body["data"]["joinWaitlist"]["status"], "WAITING", "{body}");

    // The seats come back: they go to the admitted fan, and only the line's fans get offers.
    app.ok(Some(&holder.access), CANCEL, json!({ "r": sold_id }))
        .await;
    let m = mine(&app, &queued).await;
    assert_eq!(m["myWaitlist"][0]["status"], "OFFERED", "{m}");
    let m = mine(&app, &outsider).await;
    assert_eq!(m["myWaitlist"], json!([]), "{m}");
    assert_eq!(m["myReservations"]["edges"], json!([]), "{m}");
    app.assert_invariants().await;
}
