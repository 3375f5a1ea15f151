//! Tickets and the door (C18, I11): a signed ticket per paid seat, revoked on cancel;
//! scanners scoped to one performance; check-in that admits once across gates, replays
//! nonces, refuses with the reason; offline uploads where the first scan wins.

use boxoffice_ticket_codes::{KeyId, KeyRing};
use serde_json::{Value, json};

use crate::{
    common::{Session, Show, TcpProxy, TestApp, code, layout, test_config},
    websocket::{connect, init, recv, send},
};

const RESERVE: &str = "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }";
const PAY: &str =
    "mutation($r: ID!, $k: String!) { payReservation(reservationId: $r, idempotencyKey: $k) { id status } }";
const CANCEL: &str = "mutation($r: ID!) { cancelReservation(reservationId: $r) { id status } }";
const CHARGE: &str =
    "mutation($a: Int!, $k: String!) { chargePoints(amount: $a, idempotencyKey: $k) { balanceAfter } }";
const TICKETS: &str = "query($r: ID!) { reservation(id: $r) { status tickets { id status code qrSvg holderName checkedInAt gate seat { id section row number } } } }";
const KEYS: &str = "{ ticketKeys { keyId publicKey verifiesUntil } }";
const CREATE_SCANNER: &str = "mutation($s: ID!, $n: String!) { createScanner(scheduleId: $s, name: $n) { token scanner { id name } } }";
const CHECK_IN: &str = "mutation($i: CheckInInput!) { checkIn(input: $i) { status nonce firstCheckInAt firstGate conflict admittedCount ticket { id status gate holderName seat { id } } } }";
const BATCH: &str = "mutation($s: [OfflineScanInput!]!) { checkInBatch(scans: $s) { admittedCount results { status nonce firstGate firstCheckInAt conflict ticket { id } } conflicts { nonce firstGate } } }";
const REVOKED: &str = "query($s: ID!, $since: DateTime) { revokedTickets(scheduleId: $s, since: $since) { ticketId revokedAt } }";

/// A fan who paid for `seats` of `show`; the reservation id.
async fn paid(app: &TestApp, fan: &Session, show: &Show, seats: &[usize]) -> String {
    let key = uuid::Uuid::new_v4().to_string();
    app.ok(Some(&fan.access), CHARGE, json!({ "a": 10_000, "k": key }))
        .await;
    let ids: Vec<&str> = seats.iter().map(|&i| show.seats[i].as_str()).collect();
    let held = app
        .ok(
            Some(&fan.access),
            RESERVE,
            json!({ "i": { "scheduleId": show.schedule_id, "seatIds": ids } }),
        )
        .await;
    let id = held["reserveSeats"]["id"].as_str().unwrap().to_owned();
    let key = uuid::Uuid::new_v4().to_string();
    app.ok(Some(&fan.access), PAY, json!({ "r": id, "k": key })).await;
    id
}

async fn tickets_of(app: &TestApp, fan: &Session, reservation: &str) -> Vec<Value> {
    app.ok(Some(&fan.access), TICKETS, json!({ "r": reservation }))
        .await["reservation"]["tickets"]
        .as_array()
        .unwrap()
        .clone()
}

async fn scanner(app: &TestApp, show: &Show) -> String {
    app.ok(
        Some(&show.host.access),
        CREATE_SCANNER,
        json!({ "s": show.schedule_id, "n": "North door" }),
    )
    .await["createScanner"]["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Puts the show's doors open: it starts in an hour.
async fn doors_open(app: &TestApp, show: &Show) {
    app.set_schedule(
        &show.schedule_id,
        "starts_at = now() + interval '1 hour', sales_close_at = now() + interval '30 minutes'",
    )
    .await;
}

async fn check_in(app: &TestApp, token: &str, show: &Show, code: &str, gate: &str, nonce: &str) -> Value {
    let body = app
        .gql(
            Some(token),
            CHECK_IN,
            json!({ "i": { "code": code, "scheduleId": show.schedule_id, "gate": gate, "nonce": nonce } }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["checkIn"].clone()
}

fn altered(code: &str, at: usize) -> String {
    let mut chars: Vec<char> = code.chars().collect();
    chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

#[tokio::test]
async fn paying_issues_a_signed_ticket_per_seat_and_cancelling_revokes_them() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 4), 4).await;
    let fan = app.sign_up("fan@example.com").await;
    let reservation = paid(&app, &fan, &show, &[0, 1]).await;
    let tickets = tickets_of(&app, &fan, &reservation).await;
    assert_eq!(tickets.len(), 2);
    let mut seats: Vec<&str> = tickets
        .iter()
        .map(|t| t["seat"]["id"].as_str().unwrap())
        .collect();
    seats.sort_unstable();
    let mut expected = vec![show.seats[0].as_str(), show.seats[1].as_str()];
    expected.sort_unstable();
    assert_eq!(seats, expected);

    // The codes verify offline with the published keys, and say what they are for.
    let keys = app.ok(None, KEYS, json!({})).await["ticketKeys"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(keys.len(), 1);
    let mut ring = KeyRing::new();
    let key_id = KeyId(u32::try_from(keys[0]["keyId"].as_i64().unwrap()).unwrap());
    ring.insert_text(key_id, keys[0]["publicKey"].as_str().unwrap(), None)
        .unwrap();
    for t in &tickets {
        assert_eq!(t["status"], "VALID");
        assert_eq!(t["holderName"], "fan");
        assert!(t["qrSvg"].as_str().unwrap().starts_with("<svg"));
        let code = t["code"].as_str().unwrap();
        assert!(code.len() <= 140, "a compact code: {code}");
        let claims = ring.verify(code, chrono::Utc::now()).unwrap();
        assert_eq!(claims.ticket_id.to_string(), t["id"].as_str().unwrap());
        assert_eq!(claims.schedule_id.to_string(), show.schedule_id);
        assert_eq!(claims.seat_id.to_string(), t["seat"]["id"].as_str().unwrap());
        assert!(ring.verify(&altered(code, 20), chrono::Utc::now()).is_err());
    }
    // Paying again (a retry) issues nothing more.
    app.ok(Some(&fan.access), PAY, json!({ "r": reservation, "k": "again" }))
        .await;
    assert_eq!(tickets_of(&app, &fan, &reservation).await.len(), 2);

    let token = scanner(&app, &show).await;
    let before = app
        .ok(Some(&token), REVOKED, json!({ "s": show.schedule_id }))
        .await;
    assert_eq!(before["revokedTickets"], json!([]));
    app.ok(Some(&fan.access), CANCEL, json!({ "r": reservation }))
        .await;
    let after = tickets_of(&app, &fan, &reservation).await;
    assert!(after.iter().all(|t| t["status"] == "REVOKED"), "{after:?}");
    let revoked = app
        .ok(Some(&token), REVOKED, json!({ "s": show.schedule_id }))
        .await["revokedTickets"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(revoked.len(), 2);
    let since = revoked[1]["revokedAt"].as_str().unwrap();
    let later = app
        .ok(
            Some(&token),
            REVOKED,
            json!({ "s": show.schedule_id, "since": since }),
        )
        .await;
    assert!(!later["revokedTickets"].as_array().unwrap().is_empty());

    // Revoked tickets are refused at the door.
    doors_open(&app, &show).await;
    let r = check_in(
        &app,
        &token,
        &show,
        after[0]["code"].as_str().unwrap(),
        "North",
        "n-revoked",
    )
    .await;
    assert_eq!(r["status"], "REVOKED");
    app.assert_invariants().await;
}

#[tokio::test]
async fn check_in_admits_once_and_says_why_it_refuses() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 4), 4).await;
    let other = app.show(layout(1, 4), 4).await;
    let fan = app.sign_up("fan@example.com").await;
    let reservation = paid(&app, &fan, &show, &[0]).await;
    let elsewhere = paid(&app, &fan, &other, &[0]).await;
    let code = tickets_of(&app, &fan, &reservation).await[0]["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let foreign = tickets_of(&app, &fan, &elsewhere).await[0]["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = scanner(&app, &show).await;

    // Two days before the show: the doors are not open.
    assert_eq!(
        check_in(&app, &token, &show, &code, "North", "n0").await["status"],
        "NOT_YET"
    );
    doors_open(&app, &show).await;

    let first = check_in(&app, &token, &show, &code, "North", "n1").await;
    assert_eq!(first["status"], "ADMITTED");
    assert_eq!(first["firstGate"], "North");
    assert_eq!(first["ticket"]["status"], "USED");
    assert_eq!(first["admittedCount"], 1);
    // The same scan sent again: the same answer, counted once.
    let again = check_in(&app, &token, &show, &code, "North", "n1").await;
    assert_eq!(again["status"], "ADMITTED");
    assert_eq!(again["firstCheckInAt"], first["firstCheckInAt"]);
    // Another scan of it: refused, with where and when.
    let second = check_in(&app, &token, &show, &code, "South", "n2").await;
    assert_eq!(second["status"], "ALREADY_USED");
    assert_eq!(second["firstGate"], "North");
    assert_eq!(second["firstCheckInAt"], first["firstCheckInAt"]);
    // A spent nonce on another code is not the same scan.
    assert_eq!(
        check_in(&app, &token, &show, &foreign, "North", "n1").await["status"],
        "INVALID"
    );

    assert_eq!(
        check_in(&app, &token, &show, &foreign, "North", "n3").await["status"],
        "WRONG_SCHEDULE"
    );
    for at in [0, 5, 60, code.len() - 1] {
        let r = check_in(
            &app,
            &token,
            &show,
            &altered(&code, at),
            "North",
            &format!("forged{at}"),
        )
        .await;
        assert_eq!(r["status"], "INVALID", "altered at {at}");
        assert!(r["ticket"].is_null());
    }
    assert_eq!(
        check_in(&app, &token, &show, "not a code", "North", "junk").await["status"],
        "INVALID"
    );

    app.set_schedule(&show.schedule_id, "starts_at = now() - interval '5 hours', sales_open_at = now() - interval '7 hours', sales_close_at = now() - interval '6 hours'")
        .await;
    assert_eq!(
        check_in(&app, &token, &show, &code, "North", "n4").await["status"],
        "ENDED"
    );

    let ticket_id = first["ticket"]["id"].as_str().unwrap();
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM check_ins WHERE ticket_id = {ticket_id} AND status = 'ADMITTED'"
        ))
        .await,
        1
    );
    app.assert_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_scans_of_one_ticket_admit_it_once() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    let show = std::sync::Arc::new(app.show(layout(1, 4), 4).await);
    let fan = app.sign_up("fan@example.com").await;
    let reservation = paid(&app, &fan, &show, &[0]).await;
    let code = tickets_of(&app, &fan, &reservation).await[0]["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = scanner(&app, &show).await;
    doors_open(&app, &show).await;
    let scans = (0..20).map(|i| {
        let (app, show, code, token) = (app.clone(), show.clone(), code.clone(), token.clone());
        tokio::spawn(async move {
            check_in(
                &app,
                &token,
                &show,
                &code,
                &format!("Gate {}", i % 8),
                &format!("c{i}"),
            )
            .await
        })
    });
    let answers: Vec<Value> = futures_util::future::join_all(scans)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let admitted: Vec<&Value> = answers.iter().filter(|a| a["status"] == "ADMITTED").collect();
    assert_eq!(admitted.len(), 1, "{answers:?}");
    let winner = admitted[0];
    for a in &answers {
        if a["status"] != "ADMITTED" {
            assert_eq!(a["status"], "ALREADY_USED");
            assert_eq!(a["firstGate"], winner["firstGate"]);
            assert_eq!(a["firstCheckInAt"], winner["firstCheckInAt"]);
        }
    }
    assert_eq!(
        app.count("SELECT count(*) AS n FROM check_ins WHERE status = 'ADMITTED'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM tickets WHERE status = 'used'")
            .await,
        1
    );
    // One `ticket.checked_in` event, from the winner's transaction only (issue 25).
    let events = "SELECT count(*) AS n FROM outbox o JOIN tickets t ON o.subject = 'tickets/' || t.id
                  WHERE o.event_type = 'ticket.checked_in' AND t.status = 'used'
                    AND o.data->>'gate' = t.gate AND o.data->>'offline' = 'false'";
    assert_eq!(app.count(events).await, 1);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM outbox WHERE event_type = 'ticket.checked_in'")
            .await,
        1
    );
    app.assert_invariants().await;
    // The invariant sees an admission whose event is missing.
    app.count("WITH d AS (DELETE FROM outbox WHERE event_type = 'ticket.checked_in' RETURNING 1) SELECT count(*) AS n FROM d")
        .await;
    assert!(
        app.violations_of(boxoffice::invariants::EVENTS)
            .await
            .contains(&"I12: a used ticket has no ticket.checked_in event")
    );
}

#[tokio::test]
async fn a_scanner_token_checks_in_for_its_performance_and_does_nothing_else() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 4), 4).await;
    let other = app.show(layout(1, 4), 4).await;
    let fan = app.sign_up("fan@example.com").await;
    let reservation = paid(&app, &fan, &show, &[0]).await;
    let genuine = tickets_of(&app, &fan, &reservation).await[0]["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = scanner(&app, &show).await;
    assert!(token.starts_with("bos_scan_"));

    assert_eq!(
        code(&app.gql(Some(&token), "{ me { id } }", json!({})).await),
        "FORBIDDEN"
    );
    assert_eq!(
        code(
            &app.gql(
                Some(&token),
                CREATE_SCANNER,
                json!({ "s": show.schedule_id, "n": "x" })
            )
            .await
        ),
        "FORBIDDEN"
    );
    let elsewhere = app
        .gql(
            Some(&token),
            CHECK_IN,
            json!({ "i": { "code": genuine, "scheduleId": other.schedule_id, "gate": "N", "nonce": "x" } }),
        )
        .await;
    assert_eq!(code(&elsewhere), "FORBIDDEN");
    assert_eq!(
        code(
            &app.gql(Some(&token), REVOKED, json!({ "s": other.schedule_id }))
                .await
        ),
        "FORBIDDEN"
    );
    // A fan's or anonymous caller cannot check in; another host cannot make a scanner.
    let as_fan = app
        .gql(
            Some(&fan.access),
            CHECK_IN,
            json!({ "i": { "code": "AAAA", "scheduleId": show.schedule_id, "gate": "N", "nonce": "x" } }),
        )
        .await;
    assert_eq!(code(&as_fan), "FORBIDDEN");
    assert_eq!(
        code(
            &app.gql(
                Some(&other.host.access),
                CREATE_SCANNER,
                json!({ "s": show.schedule_id, "n": "x" })
            )
            .await
        ),
        "FORBIDDEN"
    );
    assert_eq!(
        code(
            &app.gql(
                Some(&show.host.access),
                CREATE_SCANNER,
                json!({ "s": show.schedule_id, "n": " " })
            )
            .await
        ),
        "BAD_USER_INPUT"
    );
    let bad_gate = app
        .gql(
            Some(&token),
            CHECK_IN,
            json!({ "i": { "code": "AAAA", "scheduleId": show.schedule_id, "gate": "", "nonce": "x" } }),
        )
        .await;
    assert_eq!(code(&bad_gate), "BAD_USER_INPUT");

    // The scanner reads its performance; revoking it ends the token at once.
    let me = app
        .ok(
            Some(&token),
            "{ scanner { id name schedule { id } admittedCount doorsOpenAt endsAt } }",
            json!({}),
        )
        .await;
    assert_eq!(me["scanner"]["schedule"]["id"], show.schedule_id.as_str());
    let id = me["scanner"]["id"].as_str().unwrap();
    let revoked = app
        .ok(
            Some(&show.host.access),
            "mutation($i: ID!) { revokeScanner(id: $i) { revokedAt } }",
            json!({ "i": id }),
        )
        .await;
    assert!(revoked["revokeScanner"]["revokedAt"].is_string());
    assert_eq!(
        code(&app.gql(Some(&token), "{ scanner { id } }", json!({})).await),
        "UNAUTHENTICATED"
    );
    let listed = app
        .ok(
            Some(&show.host.access),
            "query($s: ID!) { scanners(scheduleId: $s) { id revokedAt } }",
            json!({ "s": show.schedule_id }),
        )
        .await;
    assert_eq!(listed["scanners"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_offline_upload_admits_the_first_scan_in_time_and_lists_conflicts() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 4), 4).await;
    let fan = app.sign_up("fan@example.com").await;
    let reservation = paid(&app, &fan, &show, &[0, 1, 2]).await;
    let tickets = tickets_of(&app, &fan, &reservation).await;
    let codes: Vec<&str> = tickets.iter().map(|t| t["code"].as_str().unwrap()).collect();
    let token = scanner(&app, &show).await;
    doors_open(&app, &show).await;
    // Ticket 2 was let in online before the upload.
    assert_eq!(
        check_in(&app, &token, &show, codes[2], "Online", "on-1").await["status"],
        "ADMITTED"
    );

    let now = chrono::Utc::now();
    let at = |minutes: i64| (now - chrono::Duration::minutes(minutes)).to_rfc3339();
    let scan = |code: &str, gate: &str, at: String, nonce: &str| json!({ "code": code, "scheduleId": show.schedule_id, "gate": gate, "scannedAt": at, "nonce": nonce });
    let scans = json!([
        scan(codes[0], "East", at(5), "b1"),
        scan(codes[0], "West", at(10), "b2"),
        scan(codes[1], "East", at(3), "b3"),
        scan(codes[2], "East", at(20), "b4"),
        scan(&altered(codes[1], 30), "East", at(2), "b5"),
    ]);
    let first = app.ok(Some(&token), BATCH, json!({ "s": scans })).await["checkInBatch"].clone();
    let statuses: Vec<&str> = first["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["ALREADY_USED", "ADMITTED", "ADMITTED", "ALREADY_USED", "INVALID"]
    );
    assert_eq!(first["results"][0]["firstGate"], "West");
    assert_eq!(first["results"][3]["firstGate"], "Online");
    let conflicts: Vec<&str> = first["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["nonce"].as_str().unwrap())
        .collect();
    assert_eq!(conflicts, ["b1", "b4"]);
    assert_eq!(first["admittedCount"], 3);

    // The same upload again: the same answers, nothing counted twice.
    let again = app.ok(Some(&token), BATCH, json!({ "s": scans })).await["checkInBatch"].clone();
    let statuses: Vec<&str> = again["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["ALREADY_USED", "ADMITTED", "ADMITTED", "ALREADY_USED", "INVALID"]
    );
    assert_eq!(again["admittedCount"], 3);
    // One event per admission, the offline ones marked so; the re-upload added none.
    assert_eq!(
        app.count("SELECT count(*) AS n FROM outbox WHERE event_type = 'ticket.checked_in' AND data->>'offline' = 'true'")
            .await,
        2
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM outbox WHERE event_type = 'ticket.checked_in'")
            .await,
        3
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM check_ins WHERE status = 'ADMITTED'")
            .await,
        3
    );

    let too_many: Vec<Value> = (0..501)
        .map(|i| scan(codes[0], "East", at(1), &format!("m{i}")))
        .collect();
    assert_eq!(
        code(&app.gql(Some(&token), BATCH, json!({ "s": too_many })).await),
        "BAD_USER_INPUT"
    );
    app.assert_invariants().await;
}

#[tokio::test]
async fn the_hosts_dashboard_sees_admissions_by_gate_live() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 4), 4).await;
    let fan = app.sign_up("fan@example.com").await;
    let reservation = paid(&app, &fan, &show, &[0, 1]).await;
    let tickets = tickets_of(&app, &fan, &reservation).await;
    let token = scanner(&app, &show).await;
    doors_open(&app, &show).await;

    let mut ws = connect(&app, "graphql-transport-ws").await;
    assert_eq!(
        init(&mut ws, Some(&show.host.access)).await["type"],
        "connection_ack"
    );
    send(&mut ws, json!({ "id": "c", "type": "subscribe", "payload": {
        "query": "subscription($s: ID!) { checkIns(scheduleId: $s) { admitted byGate { gate admitted } lastGate lastStatus } }",
        "variables": { "s": show.schedule_id } } }))
    .await;
    let first = recv(&mut ws).await;
    assert_eq!(first["payload"]["data"]["checkIns"]["admitted"], 0, "{first}");
    check_in(
        &app,
        &token,
        &show,
        tickets[0]["code"].as_str().unwrap(),
        "North",
        "l1",
    )
    .await;
    let next = recv(&mut ws).await;
    let counts = &next["payload"]["data"]["checkIns"];
    assert_eq!(counts["admitted"], 1, "{next}");
    assert_eq!(counts["byGate"], json!([{ "gate": "North", "admitted": 1 }]));
    assert_eq!(counts["lastStatus"], "ADMITTED");

    // A fan may not watch the door.
    let mut other = connect(&app, "graphql-transport-ws").await;
    assert_eq!(
        init(&mut other, Some(&fan.access)).await["type"],
        "connection_ack"
    );
    send(
        &mut other,
        json!({ "id": "c", "type": "subscribe", "payload": {
        "query": "subscription($s: ID!) { checkIns(scheduleId: $s) { admitted } }",
        "variables": { "s": show.schedule_id } } }),
    )
    .await;
    let refused = recv(&mut other).await;
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_code_is_invalid_without_the_database() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 4), 4).await;
    let fan = app.sign_up("fan@example.com").await;
    let reservation = paid(&app, &fan, &show, &[0]).await;
    let genuine = tickets_of(&app, &fan, &reservation).await[0]["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = scanner(&app, &show).await;
    doors_open(&app, &show).await;
    // A second instance that reaches PostgreSQL through a proxy we can cut.
    let proxy = TcpProxy::start("127.0.0.1:5432").await;
    let db = app.db.shared();
    let url = format!("postgres://postgres@{}/{}", proxy.addr, db.name);
    let state = boxoffice::state::AppState::connect(test_config(&db, &[("DATABASE_URL", &url)]))
        .await
        .unwrap();
    let door = TestApp::serve(db, state).await;
    proxy.cut();
    let bare = "mutation($i: CheckInInput!) { checkIn(input: $i) { status ticket { id } } }";
    let forged = door
        .gql(
            Some(&token),
            bare,
            json!({ "i": { "code": altered(&genuine, 33), "scheduleId": show.schedule_id, "gate": "North", "nonce": "f1" } }),
        )
        .await;
    assert_eq!(forged["data"]["checkIn"]["status"], "INVALID", "{forged}");
    // A genuine one needs the database: refused as unavailable, not guessed.
    let body = door
        .gql(
            Some(&token),
            bare,
            json!({ "i": { "code": genuine, "scheduleId": show.schedule_id, "gate": "North", "nonce": "g1" } }),
        )
        .await;
    assert_eq!(code(&body), "UNAVAILABLE", "{body}");
    proxy.restore();
}
