//! Concerts, schedules and layouts (C3, C5) over the API.

use std::time::Instant;

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::common::{ADD_SCHEDULE, CREATE_CONCERT, GENERATE, TestApp, code, layout, schedule_input};

const CONCERT: &str = "query($id: ID!) { concert(id: $id) { id title artist description venue category posterUrl status cancelReason createdAt updatedAt host { id displayName } schedules { id status capacity } } }";
const SCHEDULE: &str = "query($id: ID!) { schedule(id: $id) { id status capacity bookedCount remainingSeats version concert { id } } }";
const UPDATE: &str = "mutation($id: ID!, $i: ConcertUpdateInput!) { updateConcert(id: $id, input: $i) { id title artist description venue category posterUrl status createdAt updatedAt } }";
const PUBLISH: &str = "mutation($id: ID!) { publishConcert(id: $id) { id status } }";
const CANCEL: &str = "mutation($id: ID!, $r: String!) { cancelConcert(id: $id, reason: $r) { id status cancelReason schedules { id status } } }";
const CANCEL_SCHEDULE: &str = "mutation($id: ID!) { cancelSchedule(id: $id) { id status } }";
const MY_CONCERTS: &str = "{ myConcerts(first: 50) { edges { node { id status } } } }";
const SEARCH_IDS: &str =
    "query($f: ConcertFilter) { concerts(filter: $f, first: 100) { edges { node { id } } } }";
const RESERVE: &str = "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id status } }";
const SEATS: &str = "query($id: ID!) { schedule(id: $id) { seats { id status } } }";

fn concert_input(title: &str) -> Value {
    json!({
        "title": title,
        "artist": "The Artist",
        "description": "An evening to remember",
        "venue": "Olympic Hall",
        "category": "Pop",
        "posterUrl": "https://cdn.example.com/poster.jpg",
    })
}

/// A draft concert of the host; returns its id.
async fn create(app: &TestApp, token: &str, title: &str) -> String {
    let data = app
        .ok(Some(token), CREATE_CONCERT, json!({ "i": concert_input(title) }))
        .await;
    data["createConcert"]["id"].as_str().unwrap().to_owned()
}

/// A schedule of the concert on sale now; returns its id.
async fn add_schedule(app: &TestApp, token: &str, concert: &str) -> String {
    let data = app
        .ok(
            Some(token),
            ADD_SCHEDULE,
            json!({ "c": concert, "i": schedule_input(4) }),
        )
        .await;
    data["addSchedule"]["id"].as_str().unwrap().to_owned()
}

/// The `extensions.field` of the first error, after checking it is BAD_USER_INPUT.
fn bad_field(body: &Value) -> &str {
    assert_eq!(code(body), "BAD_USER_INPUT", "{body}");
    body["errors"][0]["extensions"]["field"]
        .as_str()
        .unwrap_or_else(|| panic!("no field in {body}"))
}

async fn seat_count(app: &TestApp, schedule: &str) -> i64 {
    app.count(&format!(
        "SELECT count(*) AS n FROM seats WHERE schedule_id = {schedule}"
    ))
    .await
}

/// Three grades over two sections; the row grades are matched case-insensitively.
fn graded_layout() -> Value {
    json!({
        "grades": [
            { "name": "VIP", "price": 150000, "color": "#ff00aa" },
            { "name": "R", "price": 100000, "color": "#00FF00" },
            { "name": " S ", "price": 60000, "color": "#0000ff" },
        ],
        "sections": [
            { "name": "Floor", "rows": [
                { "label": "A", "seats": 10, "grade": "VIP" },
                { "label": "B", "seats": 12, "grade": "vip" },
                { "label": "C", "seats": 20, "grade": "R" },
            ] },
            { "name": "Balcony", "rows": [
                { "label": "A", "seats": 15, "grade": "S" },
                { "label": "B", "seats": 15, "grade": "R" },
            ] },
        ],
    })
}

#[tokio::test]
async fn a_host_creates_lays_out_and_publishes_a_concert() {
    let app = TestApp::spawn().await;
    let host = app.user_with_role("host@example.com", "host").await;
    let t = Some(host.access.as_str());

    let created = app
        .ok(
            t,
            "mutation($i: ConcertInput!) { createConcert(input: $i) { id title artist description venue category posterUrl status cancelReason host { id displayName } schedules { id } } }",
            json!({ "i": concert_input("  Spring Tour  ") }),
        )
        .await["createConcert"]
        .clone();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created,
        json!({
            "id": id, "title": "Spring Tour", "artist": "The Artist", "description": "An evening to remember",
            "venue": "Olympic Hall", "category": "pop", "posterUrl": "https://cdn.example.com/poster.jpg",
            "status": "DRAFT", "cancelReason": null,
            "host": { "id": host.id.to_string(), "displayName": "host" }, "schedules": [],
        })
    );

    let starts = (Utc::now() + Duration::days(30)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let schedule = app
        .ok(
            t,
            "mutation($c: ID!, $i: ScheduleInput!) { addSchedule(concertId: $c, input: $i) { id startsAt status onSale perUserLimit holdSeconds queueEnabled capacity bookedCount remainingSeats version availability { grade } seats { id } concert { id } } }",
            json!({ "c": id, "i": {
                "startsAt": starts,
                "salesOpenAt": (Utc::now() - Duration::minutes(5)).to_rfc3339(),
                "salesCloseAt": (Utc::now() + Duration::days(29)).to_rfc3339(),
                "perUserLimit": 4,
            } }),
        )
        .await["addSchedule"]
        .clone();
    let sid = schedule["id"].as_str().unwrap().to_owned();
    assert_eq!(schedule["status"], "SCHEDULED");
    // Inside its sales window, but a draft's schedule is not on sale (the rule reserveSeats
    // applies): it goes on sale when the concert is published.
    assert_eq!(schedule["onSale"], false);
    assert_eq!(schedule["perUserLimit"], 4);
    assert_eq!(schedule["holdSeconds"], 300, "the default hold");
    assert_eq!(schedule["queueEnabled"], false);
    assert_eq!(schedule["capacity"], 0);
    assert_eq!(schedule["availability"], json!([]));
    assert_eq!(schedule["seats"], json!([]));
    assert_eq!(schedule["concert"]["id"], id.as_str());
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(schedule["startsAt"].as_str().unwrap()).unwrap(),
        chrono::DateTime::parse_from_rfc3339(&starts).unwrap()
    );
    let version_before = schedule["version"].as_i64().unwrap();

    let generated = app
        .ok(t, GENERATE, json!({ "s": sid, "l": graded_layout() }))
        .await;
    assert_eq!(generated["generateSeats"], json!({ "id": sid, "capacity": 72 }));
    assert_eq!(seat_count(&app, &sid).await, 72);

    let map = app
        .ok(
            t,
            "query($id: ID!) { schedule(id: $id) { capacity bookedCount remainingSeats version availability { grade price color total available held sold } seats { section row number grade price status } } }",
            json!({ "id": sid }),
        )
        .await["schedule"]
        .clone();
    assert_eq!(map["capacity"], 72);
    assert_eq!(map["bookedCount"], 0);
    assert_eq!(map["remainingSeats"], 72);
    assert!(
        map["version"].as_i64().unwrap() > version_before,
        "a new layout is a seat change"
    );
    assert_eq!(
        map["availability"],
        json!([
            { "grade": "VIP", "price": 150000, "color": "#FF00AA", "total": 22, "available": 22, "held": 0, "sold": 0 },
            { "grade": "R", "price": 100000, "color": "#00FF00", "total": 35, "available": 35, "held": 0, "sold": 0 },
            { "grade": "S", "price": 60000, "color": "#0000FF", "total": 15, "available": 15, "held": 0, "sold": 0 },
        ]),
        "grades in layout order, colours normalised"
    );
    let seats = map["seats"].as_array().unwrap();
    assert_eq!(seats.len(), 72);
    assert_eq!(
        seats[0],
        json!({ "section": "Floor", "row": "A", "number": 1, "grade": "VIP", "price": 150000, "status": "AVAILABLE" })
    );
    assert_eq!(
        seats[10],
        json!({ "section": "Floor", "row": "B", "number": 1, "grade": "VIP", "price": 150000, "status": "AVAILABLE" })
    );
    assert_eq!(
        seats[22],
        json!({ "section": "Floor", "row": "C", "number": 1, "grade": "R", "price": 100000, "status": "AVAILABLE" })
    );
    assert_eq!(
        seats[42],
        json!({ "section": "Balcony", "row": "A", "number": 1, "grade": "S", "price": 60000, "status": "AVAILABLE" })
    );
    assert_eq!(
        seats[71],
        json!({ "section": "Balcony", "row": "B", "number": 15, "grade": "R", "price": 100000, "status": "AVAILABLE" })
    );

    // Not public yet.
    assert_eq!(
        code(&app.gql(None, CONCERT, json!({ "id": id })).await),
        "NOT_FOUND"
    );

    let published = app.ok(t, PUBLISH, json!({ "id": id })).await;
    assert_eq!(
        published["publishConcert"],
        json!({ "id": id, "status": "PUBLISHED" })
    );
    // Publishing again changes nothing.
    let again = app.ok(t, PUBLISH, json!({ "id": id })).await;
    assert_eq!(again["publishConcert"]["status"], "PUBLISHED");

    let public = app.ok(None, CONCERT, json!({ "id": id })).await;
    assert_eq!(public["concert"]["status"], "PUBLISHED");
    let on_sale = app
        .ok(
            None,
            "query($id: ID!) { schedule(id: $id) { onSale } }",
            json!({ "id": sid }),
        )
        .await;
    assert_eq!(on_sale["schedule"]["onSale"], true);
    assert_eq!(
        public["concert"]["schedules"],
        json!([{ "id": sid, "status": "SCHEDULED", "capacity": 72 }])
    );
    let found = app
        .ok(None, SEARCH_IDS, json!({ "f": { "text": "Spring" } }))
        .await;
    assert_eq!(found["concerts"]["edges"], json!([{ "node": { "id": id } }]));
}

#[tokio::test]
async fn only_the_owning_host_or_an_admin_manages_a_concert() {
    let app = TestApp::spawn().await;
    let owner = app.user_with_role("owner@example.com", "host").await;
    let rival = app.user_with_role("rival@example.com", "host").await;
    let user = app.sign_up("fan@example.com").await;
    let admin = app.user_with_role("root@example.com", "admin").await;
    let id = create(&app, &owner.access, "Owned").await;
    let sid = add_schedule(&app, &owner.access, &id).await;

    let attempts: Vec<(&str, Value)> = vec![
        (UPDATE, json!({ "id": id, "i": { "title": "Stolen" } })),
        (PUBLISH, json!({ "id": id })),
        (CANCEL, json!({ "id": id, "r": "mine now" })),
        (ADD_SCHEDULE, json!({ "c": id, "i": schedule_input(4) })),
        (GENERATE, json!({ "s": sid, "l": layout(2, 5) })),
        (CANCEL_SCHEDULE, json!({ "id": sid })),
    ];
    for (query, vars) in &attempts {
        let body = app.gql(Some(&rival.access), query, vars.clone()).await;
        // The concert is a draft: to another host it does not exist.
        assert_eq!(code(&body), "NOT_FOUND", "another host: {query} -> {body}");
        let body = app.gql(Some(&user.access), query, vars.clone()).await;
        assert_eq!(code(&body), "FORBIDDEN", "a user: {query} -> {body}");
        let body = app.gql(None, query, vars.clone()).await;
        assert_eq!(code(&body), "UNAUTHENTICATED", "anonymous: {query} -> {body}");
    }
    let input = json!({ "i": concert_input("Mine") });
    assert_eq!(
        code(&app.gql(Some(&user.access), CREATE_CONCERT, input.clone()).await),
        "FORBIDDEN"
    );
    assert_eq!(
        code(&app.gql(None, CREATE_CONCERT, input).await),
        "UNAUTHENTICATED"
    );
    assert_eq!(
        code(&app.gql(Some(&user.access), MY_CONCERTS, json!({})).await),
        "FORBIDDEN"
    );

    // Nothing happened.
    assert_eq!(app.count("SELECT count(*) AS n FROM concerts").await, 1);
    assert_eq!(app.count("SELECT count(*) AS n FROM schedules").await, 1);
    assert_eq!(seat_count(&app, &sid).await, 0);
    let concert = app.ok(Some(&owner.access), CONCERT, json!({ "id": id })).await;
    assert_eq!(concert["concert"]["title"], "Owned");
    assert_eq!(concert["concert"]["status"], "DRAFT");
    assert_eq!(concert["concert"]["schedules"][0]["status"], "SCHEDULED");

    // An admin may do all of it on anyone's concert.
    let a = Some(admin.access.as_str());
    let updated = app
        .ok(a, UPDATE, json!({ "id": id, "i": { "title": "Moderated" } }))
        .await;
    assert_eq!(updated["updateConcert"]["title"], "Moderated");
    let second = app
        .ok(a, ADD_SCHEDULE, json!({ "c": id, "i": schedule_input(2) }))
        .await["addSchedule"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let generated = app.ok(a, GENERATE, json!({ "s": sid, "l": layout(2, 5) })).await;
    assert_eq!(generated["generateSeats"]["capacity"], 10);
    assert_eq!(
        app.ok(a, PUBLISH, json!({ "id": id })).await["publishConcert"]["status"],
        "PUBLISHED"
    );
    assert_eq!(
        app.ok(a, CANCEL_SCHEDULE, json!({ "id": second })).await["cancelSchedule"]["status"],
        "CANCELLED"
    );
    let cancelled = app.ok(a, CANCEL, json!({ "id": id, "r": "policy" })).await;
    assert_eq!(cancelled["cancelConcert"]["status"], "CANCELLED");
    // The concert still belongs to its host.
    let concert = app.ok(None, CONCERT, json!({ "id": id })).await;
    assert_eq!(concert["concert"]["host"]["id"], owner.id.to_string());
}

#[tokio::test]
async fn drafts_are_visible_only_to_their_host_and_admins() {
    let app = TestApp::spawn().await;
    let host = app.user_with_role("host@example.com", "host").await;
    let other = app.user_with_role("other@example.com", "host").await;
    let user = app.sign_up("fan@example.com").await;
    let admin = app.user_with_role("root@example.com", "admin").await;
    let draft = create(&app, &host.access, "Secret Gig").await;
    let sid = add_schedule(&app, &host.access, &draft).await;
    app.ok(
        Some(&host.access),
        GENERATE,
        json!({ "s": sid, "l": layout(1, 4) }),
    )
    .await;
    // A published concert of the same host, for contrast.
    let public = create(&app, &host.access, "Open Gig").await;
    let public_sid = add_schedule(&app, &host.access, &public).await;
    app.ok(
        Some(&host.access),
        GENERATE,
        json!({ "s": public_sid, "l": layout(1, 4) }),
    )
    .await;
    app.ok(Some(&host.access), PUBLISH, json!({ "id": public })).await;

    for token in [None, Some(user.access.as_str()), Some(other.access.as_str())] {
        let body = app.gql(token, CONCERT, json!({ "id": draft })).await;
        assert_eq!(code(&body), "NOT_FOUND", "{token:?}: {body}");
        assert!(body["data"].is_null());
        let body = app.gql(token, SCHEDULE, json!({ "id": sid })).await;
        assert_eq!(code(&body), "NOT_FOUND", "{token:?}: {body}");
        // The search knows nothing of it, even by its exact title.
        for filter in [
            json!({ "text": "Secret" }),
            json!({ "hostId": host.id.to_string() }),
            json!({}),
        ] {
            let found = app.ok(token, SEARCH_IDS, json!({ "f": filter })).await;
            let ids: Vec<&str> = found["concerts"]["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"]["id"].as_str().unwrap())
                .collect();
            assert!(!ids.contains(&draft.as_str()), "{filter}: {found}");
        }
    }
    // A missing concert answers the same as a hidden one.
    assert_eq!(
        code(&app.gql(None, CONCERT, json!({ "id": "999999" })).await),
        "NOT_FOUND"
    );
    assert_eq!(
        code(&app.gql(None, SCHEDULE, json!({ "id": "999999" })).await),
        "NOT_FOUND"
    );
    assert_eq!(
        code(&app.gql(None, CONCERT, json!({ "id": "x1" })).await),
        "BAD_USER_INPUT"
    );

    for token in [&host.access, &admin.access] {
        let c = app.ok(Some(token), CONCERT, json!({ "id": draft })).await;
        assert_eq!(c["concert"]["status"], "DRAFT");
        assert_eq!(c["concert"]["schedules"][0]["capacity"], 4);
        let s = app.ok(Some(token), SCHEDULE, json!({ "id": sid })).await;
        assert_eq!(s["schedule"]["capacity"], 4);
    }
    // The host's own list has both, newest first; the other host's has neither.
    let mine = app.ok(Some(&host.access), MY_CONCERTS, json!({})).await;
    assert_eq!(
        mine["myConcerts"]["edges"],
        json!([{ "node": { "id": public, "status": "PUBLISHED" } }, { "node": { "id": draft, "status": "DRAFT" } }])
    );
    let theirs = app.ok(Some(&other.access), MY_CONCERTS, json!({})).await;
    assert_eq!(theirs["myConcerts"]["edges"], json!([]));
    // Even admins' search lists published concerts only.
    let found = app.ok(Some(&admin.access), SEARCH_IDS, json!({ "f": {} })).await;
    assert_eq!(found["concerts"]["edges"], json!([{ "node": { "id": public } }]));

    // Holding a seat of a draft is impossible too.
    let seat = app
        .count(&format!(
            "SELECT min(id) AS n FROM seats WHERE schedule_id = {sid}"
        ))
        .await;
    let body = app
        .gql(
            Some(&user.access),
            RESERVE,
            json!({ "i": { "scheduleId": sid, "seatIds": [seat.to_string()] } }),
        )
        .await;
    assert!(body["data"].is_null(), "{body}");

    // Once published, everyone sees it.
    app.ok(Some(&host.access), PUBLISH, json!({ "id": draft })).await;
    let c = app.ok(None, CONCERT, json!({ "id": draft })).await;
    assert_eq!(c["concert"]["status"], "PUBLISHED");
    let found = app
        .ok(None, SEARCH_IDS, json!({ "f": { "text": "Secret" } }))
        .await;
    assert_eq!(found["concerts"]["edges"], json!([{ "node": { "id": draft } }]));
}

#[tokio::test]
async fn publishing_needs_a_schedule_with_seats() {
    let app = TestApp::spawn().await;
    let host = app.user_with_role("host@example.com", "host").await;
    let t = Some(host.access.as_str());
    let id = create(&app, &host.access, "Early").await;
    assert_eq!(code(&app.gql(t, PUBLISH, json!({ "id": id })).await), "CONFLICT");
    let sid = add_schedule(&app, &host.access, &id).await;
    assert_eq!(
        code(&app.gql(t, PUBLISH, json!({ "id": id })).await),
        "CONFLICT",
        "a schedule without seats is not enough"
    );
    // A cancelled schedule with seats is not enough either.
    let gone = add_schedule(&app, &host.access, &id).await;
    app.ok(t, GENERATE, json!({ "s": gone, "l": layout(1, 3) })).await;
    app.ok(t, CANCEL_SCHEDULE, json!({ "id": gone })).await;
    assert_eq!(code(&app.gql(t, PUBLISH, json!({ "id": id })).await), "CONFLICT");
    let c = app.ok(t, CONCERT, json!({ "id": id })).await;
    assert_eq!(c["concert"]["status"], "DRAFT");

    app.ok(t, GENERATE, json!({ "s": sid, "l": layout(1, 3) })).await;
    assert_eq!(
        app.ok(t, PUBLISH, json!({ "id": id })).await["publishConcert"]["status"],
        "PUBLISHED"
    );
    assert_eq!(
        code(&app.gql(t, PUBLISH, json!({ "id": "0" })).await),
        "BAD_USER_INPUT"
    );
    assert_eq!(
        code(&app.gql(t, PUBLISH, json!({ "id": "424242" })).await),
        "NOT_FOUND"
    );
}

#[tokio::test]
async fn cancelling_a_concert_cancels_its_schedules_and_holds() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(2, 5), 4).await;
    let t = Some(show.host.access.as_str());
    let second = add_schedule(&app, &show.host.access, &show.concert_id).await;
    let fan = app.sign_up("fan@example.com").await;
    let hold = app
        .ok(
            Some(&fan.access),
            RESERVE,
            json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[0], show.seats[1]] } }),
        )
        .await;
    assert_eq!(hold["reserveSeats"]["status"], "HELD");
    let hold_id = hold["reserveSeats"]["id"].as_str().unwrap().to_owned();

    // A reason is required.
    let body = app
        .gql(t, CANCEL, json!({ "id": show.concert_id, "r": "   " }))
        .await;
    assert_eq!(bad_field(&body), "reason");

    let cancelled = app
        .ok(
            t,
            CANCEL,
            json!({ "id": show.concert_id, "r": "  The artist is ill  " }),
        )
        .await["cancelConcert"]
        .clone();
    assert_eq!(
        cancelled,
        json!({
            "id": show.concert_id, "status": "CANCELLED", "cancelReason": "The artist is ill",
            "schedules": [
                { "id": show.schedule_id, "status": "CANCELLED" },
                { "id": second, "status": "CANCELLED" },
            ],
        })
    );
    let r = app
        .ok(
            Some(&fan.access),
            "query($id: ID!) { reservation(id: $id) { status } }",
            json!({ "id": hold_id }),
        )
        .await;
    assert_eq!(r["reservation"]["status"], "CANCELLED", "holds are released");
    let s = app
        .ok(
            None,
            "query($id: ID!) { schedule(id: $id) { status onSale bookedCount seats(status: HELD) { id } } }",
            json!({ "id": show.schedule_id }),
        )
        .await;
    assert_eq!(
        s["schedule"],
        json!({ "status": "CANCELLED", "onSale": false, "bookedCount": 0, "seats": [] })
    );
    app.assert_invariants().await;

    // Still readable by anyone, but no longer listed.
    let c = app.ok(None, CONCERT, json!({ "id": show.concert_id })).await;
    assert_eq!(c["concert"]["status"], "CANCELLED");
    assert_eq!(c["concert"]["cancelReason"], "The artist is ill");
    let found = app.ok(None, SEARCH_IDS, json!({ "f": {} })).await;
    assert_eq!(found["concerts"]["edges"], json!([]));

    // Nothing more can be done to it.
    let refused: Vec<(&str, Value)> = vec![
        (
            UPDATE,
            json!({ "id": show.concert_id, "i": { "title": "Back on" } }),
        ),
        (PUBLISH, json!({ "id": show.concert_id })),
        (CANCEL, json!({ "id": show.concert_id, "r": "again" })),
        (
            ADD_SCHEDULE,
            json!({ "c": show.concert_id, "i": schedule_input(4) }),
        ),
        (GENERATE, json!({ "s": second, "l": layout(1, 2) })),
    ];
    for (query, vars) in refused {
        let body = app.gql(t, query, vars).await;
        assert_eq!(code(&body), "CONFLICT", "{query} -> {body}");
    }
    let body = app
        .gql(
            Some(&fan.access),
            RESERVE,
            json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[2]] } }),
        )
        .await;
    assert!(body["data"].is_null(), "{body}");
    let c = app.ok(None, CONCERT, json!({ "id": show.concert_id })).await;
    assert_eq!(c["concert"]["title"], "Night Show");
    assert_eq!(c["concert"]["status"], "CANCELLED");
    assert_eq!(seat_count(&app, &second).await, 0);
}

#[tokio::test]
async fn updates_change_only_the_given_fields() {
    let app = TestApp::spawn().await;
    let host = app.user_with_role("host@example.com", "host").await;
    let t = Some(host.access.as_str());
    let id = create(&app, &host.access, "Original").await;
    let before = app.ok(t, CONCERT, json!({ "id": id })).await["concert"].clone();

    let after = app
        .ok(t, UPDATE, json!({ "id": id, "i": { "title": "  Renamed " } }))
        .await["updateConcert"]
        .clone();
    for field in [
        "artist",
        "description",
        "venue",
        "category",
        "posterUrl",
        "status",
        "createdAt",
    ] {
        assert_eq!(after[field], before[field], "{field} unchanged");
    }
    assert_eq!(after["title"], "Renamed");
    assert!(
        chrono::DateTime::parse_from_rfc3339(after["updatedAt"].as_str().unwrap()).unwrap()
            >= chrono::DateTime::parse_from_rfc3339(before["updatedAt"].as_str().unwrap()).unwrap()
    );

    let after = app
        .ok(
            t,
            UPDATE,
            json!({ "id": id, "i": { "category": " JAZZ ", "description": "", "venue": "Blue Note" } }),
        )
        .await["updateConcert"]
        .clone();
    assert_eq!(after["title"], "Renamed");
    assert_eq!(after["artist"], "The Artist");
    assert_eq!(after["category"], "jazz", "stored lower-case");
    assert_eq!(after["description"], "", "the description may be emptied");
    assert_eq!(after["venue"], "Blue Note");
    assert_eq!(after["posterUrl"], "https://cdn.example.com/poster.jpg");

    // An empty update is a no-op, and an empty poster URL removes the poster.
    let same = app.ok(t, UPDATE, json!({ "id": id, "i": {} })).await["updateConcert"].clone();
    assert_eq!(same, after);
    let after = app
        .ok(t, UPDATE, json!({ "id": id, "i": { "posterUrl": "" } }))
        .await["updateConcert"]
        .clone();
    assert_eq!(after["posterUrl"], Value::Null);

    let long = "x".repeat(51);
    let cases = [
        (json!({ "title": "   " }), "input.title"),
        (json!({ "title": "t".repeat(201) }), "input.title"),
        (json!({ "artist": "" }), "input.artist"),
        (json!({ "artist": "bad\u{0007}bell" }), "input.artist"),
        (json!({ "venue": " " }), "input.venue"),
        (json!({ "description": "d".repeat(5001) }), "input.description"),
        (json!({ "posterUrl": "javascript:alert(1)" }), "input.posterUrl"),
        (
            json!({ "posterUrl": "ftp://cdn.example.com/p.jpg" }),
            "input.posterUrl",
        ),
        (json!({ "posterUrl": "not a url" }), "input.posterUrl"),
        (json!({ "category": long }), "input.category"),
        (json!({ "category": "" }), "input.category"),
        // One bad field refuses the whole update.
        (
            json!({ "title": "Fine", "posterUrl": "javascript:alert(1)" }),
            "input.posterUrl",
        ),
    ];
    for (input, field) in cases {
        let body = app.gql(t, UPDATE, json!({ "id": id, "i": input })).await;
        assert_eq!(bad_field(&body), field, "{input}");
    }
    let unchanged = app.ok(t, CONCERT, json!({ "id": id })).await["concert"].clone();
    assert_eq!(unchanged["title"], "Renamed");
    assert_eq!(unchanged["posterUrl"], Value::Null);

    // Creation checks the same rules.
    let mut input = concert_input("Fine");
    input["posterUrl"] = json!("javascript:alert(1)");
    let body = app.gql(t, CREATE_CONCERT, json!({ "i": input })).await;
    assert_eq!(bad_field(&body), "input.posterUrl");
    let mut input = concert_input("  ");
    input["category"] = json!("rock");
    let body = app.gql(t, CREATE_CONCERT, json!({ "i": input })).await;
    assert_eq!(bad_field(&body), "input.title");
    let mut input = concert_input("Fine");
    input["category"] = json!("c".repeat(51));
    let body = app.gql(t, CREATE_CONCERT, json!({ "i": input })).await;
    assert_eq!(bad_field(&body), "input.category");
    assert_eq!(app.count("SELECT count(*) AS n FROM concerts").await, 1);
}

#[tokio::test]
async fn schedule_input_is_validated() {
    let app = TestApp::spawn().await;
    let host = app.user_with_role("host@example.com", "host").await;
    let t = Some(host.access.as_str());
    let id = create(&app, &host.access, "Validated").await;
    let now = Utc::now();
    let at = |d: Duration| (now + d).to_rfc3339();
    let base = || {
        json!({
            "startsAt": at(Duration::days(10)),
            "salesOpenAt": at(Duration::days(1)),
            "salesCloseAt": at(Duration::days(9)),
            "perUserLimit": 4,
        })
    };
    let with = |k: &str, v: Value| {
        let mut i = base();
        i[k] = v;
        i
    };
    let mut past = base();
    past["startsAt"] = json!(at(-Duration::hours(1)));
    past["salesOpenAt"] = json!(at(-Duration::hours(3)));
    past["salesCloseAt"] = json!(at(-Duration::hours(2)));
    let mut closed = base();
    closed["salesOpenAt"] = json!(at(-Duration::days(3)));
    closed["salesCloseAt"] = json!(at(-Duration::days(1)));
    let cases = [
        (past, "input.startsAt"),
        (
            with("startsAt", json!(at(-Duration::minutes(1)))),
            "input.startsAt",
        ),
        (
            with("salesCloseAt", json!(at(Duration::days(11)))),
            "input.salesCloseAt",
        ),
        (
            with("salesOpenAt", json!(at(Duration::days(9)))),
            "input.salesCloseAt",
        ),
        (
            with("salesOpenAt", json!(at(Duration::days(9) + Duration::hours(1)))),
            "input.salesCloseAt",
        ),
        (closed, "input.salesCloseAt"),
        (with("perUserLimit", json!(0)), "input.perUserLimit"),
        (with("perUserLimit", json!(21)), "input.perUserLimit"),
        (with("perUserLimit", json!(-3)), "input.perUserLimit"),
        (with("holdSeconds", json!(10)), "input.holdSeconds"),
        (with("holdSeconds", json!(3601)), "input.holdSeconds"),
        (with("admitPerSecond", json!(0)), "input.admitPerSecond"),
        (with("admitPerSecond", json!(10_001)), "input.admitPerSecond"),
        (with("maxActive", json!(0)), "input.maxActive"),
        (with("maxActive", json!(100_001)), "input.maxActive"),
        (with("admissionSeconds", json!(29)), "input.admissionSeconds"),
        (with("admissionSeconds", json!(7201)), "input.admissionSeconds"),
    ];
    for (input, field) in cases {
        let body = app.gql(t, ADD_SCHEDULE, json!({ "c": id, "i": input })).await;
        assert_eq!(bad_field(&body), field, "{input}");
    }
    assert_eq!(app.count("SELECT count(*) AS n FROM schedules").await, 0);

    // The bounds themselves are fine.
    let mut edge = base();
    edge["perUserLimit"] = json!(20);
    edge["holdSeconds"] = json!(30);
    edge["salesCloseAt"] = edge["startsAt"].clone();
    edge["queueEnabled"] = json!(true);
    edge["admitPerSecond"] = json!(10_000);
    edge["maxActive"] = json!(1);
    edge["admissionSeconds"] = json!(7200);
    let s = app
        .ok(
            t,
            "mutation($c: ID!, $i: ScheduleInput!) { addSchedule(concertId: $c, input: $i) { perUserLimit holdSeconds queueEnabled admitPerSecond maxActive admissionSeconds onSale } }",
            json!({ "c": id, "i": edge }),
        )
        .await;
    assert_eq!(
        s["addSchedule"],
        json!({ "perUserLimit": 20, "holdSeconds": 30, "queueEnabled": true, "admitPerSecond": 10000,
                "maxActive": 1, "admissionSeconds": 7200, "onSale": false })
    );
    let mut edge = base();
    edge["perUserLimit"] = json!(1);
    edge["holdSeconds"] = json!(3600);
    app.ok(t, ADD_SCHEDULE, json!({ "c": id, "i": edge })).await;
    assert_eq!(app.count("SELECT count(*) AS n FROM schedules").await, 2);

    let body = app.gql(t, ADD_SCHEDULE, json!({ "c": "abc", "i": base() })).await;
    assert_eq!(bad_field(&body), "concertId");
    let body = app
        .gql(t, ADD_SCHEDULE, json!({ "c": "987654", "i": base() }))
        .await;
    assert_eq!(code(&body), "NOT_FOUND");
}

/// A valid layout to spoil in one place at a time.
fn base_layout() -> Value {
    json!({
        "grades": [
            { "name": "VIP", "price": 100, "color": "#FF0000" },
            { "name": "R", "price": 50, "color": "#00FF00" },
        ],
        "sections": [{ "name": "Floor", "rows": [
            { "label": "A", "seats": 5, "grade": "VIP" },
            { "label": "B", "seats": 5, "grade": "R" },
            { "label": "C", "seats": 5, "grade": "R" },
        ] }],
    })
}

#[tokio::test]
async fn bad_layouts_are_refused_whole() {
    let app = TestApp::spawn().await;
    let host = app.user_with_role("host@example.com", "host").await;
    let t = Some(host.access.as_str());
    let id = create(&app, &host.access, "Layouts").await;
    let sid = add_schedule(&app, &host.access, &id).await;
    app.ok(t, GENERATE, json!({ "s": sid, "l": base_layout() })).await;
    assert_eq!(seat_count(&app, &sid).await, 15);
    let seats_before = app.ok(t, SEATS, json!({ "id": sid })).await;

    type Spoil = fn(&mut Value);
    let cases: Vec<(Spoil, &str)> = vec![
        (|l| l["grades"][1]["name"] = json!("vip"), "layout.grades[1].name"),
        (|l| l["grades"][0]["name"] = json!("  "), "layout.grades[0].name"),
        (
            |l| l["grades"][0]["name"] = json!("x".repeat(21)),
            "layout.grades[0].name",
        ),
        (|l| l["grades"][0]["price"] = json!(-1), "layout.grades[0].price"),
        (
            |l| l["grades"][0]["price"] = json!(100_000_001),
            "layout.grades[0].price",
        ),
        (
            |l| l["grades"][0]["color"] = json!("red"),
            "layout.grades[0].color",
        ),
        (
            |l| l["grades"][0]["color"] = json!("#12345G"),
            "layout.grades[0].color",
        ),
        (
            |l| l["grades"][1]["color"] = json!("#FFF"),
            "layout.grades[1].color",
        ),
        (|l| l["grades"] = json!([]), "layout.grades"),
        (|l| l["sections"] = json!([]), "layout.sections"),
        (
            |l| l["sections"][0]["rows"][2]["label"] = json!("a"),
            "layout.sections[0].rows[2].label",
        ),
        (
            |l| l["sections"][0]["rows"][1]["label"] = json!(""),
            "layout.sections[0].rows[1].label",
        ),
        (
            |l| l["sections"][0]["rows"][0]["grade"] = json!("Z"),
            "layout.sections[0].rows[0].grade",
        ),
        (
            |l| l["sections"][0]["rows"][0]["seats"] = json!(0),
            "layout.sections[0].rows[0].seats",
        ),
        (
            |l| l["sections"][0]["rows"][0]["seats"] = json!(-5),
            "layout.sections[0].rows[0].seats",
        ),
        (
            |l| l["sections"][0]["rows"][2]["seats"] = json!(1001),
            "layout.sections[0].rows[2].seats",
        ),
        (
            |l| l["sections"][0]["rows"] = json!([]),
            "layout.sections[0].rows",
        ),
        (
            |l| {
                let floor = l["sections"][0].clone();
                l["sections"].as_array_mut().unwrap().push(floor);
            },
            "layout.sections[1].name",
        ),
        (
            // 101 rows of 1,000: more than 100,000 seats.
            |l| {
                l["sections"][0]["rows"] = (0..101)
                    .map(|r| json!({ "label": format!("R{r}"), "seats": 1000, "grade": "R" }))
                    .collect();
            },
            "layout",
        ),
        (
            // 100,000 in the first section, one more in the second.
            |l| {
                l["sections"][0]["rows"] = (0..100)
                    .map(|r| json!({ "label": format!("R{r}"), "seats": 1000, "grade": "R" }))
                    .collect();
                l["sections"].as_array_mut().unwrap().push(
                    json!({ "name": "Balcony", "rows": [{ "label": "A", "seats": 1, "grade": "VIP" }] }),
                );
            },
            "layout",
        ),
    ];
    for (spoil, field) in cases {
        let mut l = base_layout();
        spoil(&mut l);
        let body = app.gql(t, GENERATE, json!({ "s": sid, "l": l })).await;
        assert_eq!(bad_field(&body), field, "{body}");
        assert!(body["data"].is_null());
    }
    // Nothing was half-written: the old layout is intact.
    assert_eq!(seat_count(&app, &sid).await, 15);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM seat_grades WHERE schedule_id = {sid}"
        ))
        .await,
        2
    );
    assert_eq!(app.ok(t, SEATS, json!({ "id": sid })).await, seats_before);
    assert_eq!(
        app.ok(t, SCHEDULE, json!({ "id": sid })).await["schedule"]["capacity"],
        15
    );

    // Exactly 100,000 is allowed (and replaces the old layout).
    let mut l = base_layout();
    l["sections"][0]["rows"] = (0..100)
        .map(
            |r| json!({ "label": format!("R{r}"), "seats": 1000, "grade": if r < 10 { "VIP" } else { "R" } }),
        )
        .collect();
    let body = app.ok(t, GENERATE, json!({ "s": sid, "l": l })).await;
    assert_eq!(body["generateSeats"]["capacity"], 100_000);
    assert_eq!(seat_count(&app, &sid).await, 100_000);

    let body = app
        .gql(t, GENERATE, json!({ "s": "nope", "l": base_layout() }))
        .await;
    assert_eq!(bad_field(&body), "scheduleId");
    let body = app
        .gql(t, GENERATE, json!({ "s": "31337", "l": base_layout() }))
        .await;
    assert_eq!(code(&body), "NOT_FOUND");
}

#[tokio::test]
async fn a_layout_is_replaced_until_a_seat_is_held() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(2, 5), 4).await;
    let t = Some(show.host.access.as_str());
    assert_eq!(show.seats.len(), 10);
    let v0 = app.ok(None, SCHEDULE, json!({ "id": show.schedule_id })).await["schedule"]["version"]
        .as_i64()
        .unwrap();

    // Published but untouched: the layout may still change.
    let replaced = app
        .ok(t, GENERATE, json!({ "s": show.schedule_id, "l": layout(3, 4) }))
        .await;
    assert_eq!(replaced["generateSeats"]["capacity"], 12);
    assert_eq!(seat_count(&app, &show.schedule_id).await, 12);
    let old = show.seats.join(",");
    assert_eq!(
        app.count(&format!("SELECT count(*) AS n FROM seats WHERE id IN ({old})"))
            .await,
        0,
        "the old seats are gone"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM seat_grades WHERE schedule_id = {}",
            show.schedule_id
        ))
        .await,
        4,
        "and so are the old grades"
    );
    let s = app
        .ok(
            None,
            "query($id: ID!) { schedule(id: $id) { capacity remainingSeats version availability { grade total } seats { id row number } } }",
            json!({ "id": show.schedule_id }),
        )
        .await["schedule"]
        .clone();
    assert_eq!(s["capacity"], 12);
    assert_eq!(s["remainingSeats"], 12);
    assert!(s["version"].as_i64().unwrap() > v0);
    assert_eq!(
        s["availability"],
        json!([{ "grade": "VIP", "total": 4 }, { "grade": "R", "total": 4 }, { "grade": "S", "total": 4 }, { "grade": "A", "total": 0 }])
    );
    let seats: Vec<String> = s["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seats.len(), 12);
    assert_eq!(
        s["seats"][11],
        json!({ "id": seats[11], "row": "R2", "number": 4 })
    );

    // An old seat id no longer exists.
    let fan = app.sign_up("fan@example.com").await;
    let body = app
        .gql(
            Some(&fan.access),
            RESERVE,
            json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[0]] } }),
        )
        .await;
    assert!(body["data"].is_null(), "{body}");

    // Once a seat is held the layout is fixed.
    let hold = app
        .ok(
            Some(&fan.access),
            RESERVE,
            json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [seats[0]] } }),
        )
        .await;
    assert_eq!(hold["reserveSeats"]["status"], "HELD");
    let body = app
        .gql(t, GENERATE, json!({ "s": show.schedule_id, "l": layout(1, 2) }))
        .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    assert_eq!(seat_count(&app, &show.schedule_id).await, 12);
    let held = app
        .ok(
            None,
            "query($id: ID!) { schedule(id: $id) { capacity bookedCount seats(status: HELD) { id } } }",
            json!({ "id": show.schedule_id }),
        )
        .await;
    assert_eq!(
        held["schedule"],
        json!({ "capacity": 12, "bookedCount": 1, "seats": [{ "id": seats[0] }] })
    );

    // Released, the hold no longer freezes the layout (issue 24: only live holds and sales
    // do); the seats it named stay in it, detached from the performance.
    let hold_id = hold["reserveSeats"]["id"].as_str().unwrap();
    app.ok(
        Some(&fan.access),
        "mutation($r: ID!) { cancelReservation(reservationId: $r) { status } }",
        json!({ "r": hold_id }),
    )
    .await;
    let replaced = app
        .ok(t, GENERATE, json!({ "s": show.schedule_id, "l": layout(1, 2) }))
        .await;
    assert_eq!(replaced["generateSeats"]["capacity"], 2);
    assert_eq!(seat_count(&app, &show.schedule_id).await, 2);
    app.assert_invariants().await;
}

#[tokio::test]
async fn a_stadium_of_50000_seats_is_generated_in_one_go() {
    let app = TestApp::spawn().await;
    let host = app.user_with_role("host@example.com", "host").await;
    let t = Some(host.access.as_str());
    let id = create(&app, &host.access, "Stadium").await;
    let sid = add_schedule(&app, &host.access, &id).await;
    let grades = ["VIP", "R", "S", "A"];
    // 50 sections x 20 rows x 50 seats; section i is of grade i % 4.
    let stadium = json!({
        "grades": [
            { "name": "VIP", "price": 200, "color": "#FF0000" },
            { "name": "R", "price": 150, "color": "#00FF00" },
            { "name": "S", "price": 100, "color": "#0000FF" },
            { "name": "A", "price": 50, "color": "#FFFF00" },
        ],
        "sections": (0..50).map(|s| json!({
            "name": format!("Block {s}"),
            "rows": (0..20).map(|r| json!({ "label": format!("{r}"), "seats": 50, "grade": grades[s % 4] })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });

    let started = Instant::now();
    let body = app.ok(t, GENERATE, json!({ "s": sid, "l": stadium })).await;
    let took = started.elapsed();
    println!("generateSeats of 50,000 seats took {took:?}");
    assert!(took < std::time::Duration::from_secs(30), "{took:?}");
    assert_eq!(body["generateSeats"]["capacity"], 50_000);
    assert_eq!(seat_count(&app, &sid).await, 50_000);
    assert_eq!(
        app.count(&format!(
            "SELECT count(DISTINCT (section, row_label, number)) AS n FROM seats WHERE schedule_id = {sid}"
        ))
        .await,
        50_000
    );

    let s = app
        .ok(
            t,
            "query($id: ID!) { schedule(id: $id) { capacity remainingSeats availability { grade total available held sold } } }",
            json!({ "id": sid }),
        )
        .await["schedule"]
        .clone();
    assert_eq!(s["capacity"], 50_000);
    assert_eq!(s["remainingSeats"], 50_000);
    let availability = s["availability"].as_array().unwrap();
    let total: i64 = availability.iter().map(|g| g["total"].as_i64().unwrap()).sum();
    let available: i64 = availability
        .iter()
        .map(|g| g["available"].as_i64().unwrap())
        .sum();
    assert_eq!((total, available), (50_000, 50_000));
    // Sections 0, 4, 8... are VIP: 13 sections of 1,000; R 13, S 12, A 12.
    let per_grade: Vec<(&str, i64)> = availability
        .iter()
        .map(|g| (g["grade"].as_str().unwrap(), g["total"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        per_grade,
        vec![("VIP", 13_000), ("R", 13_000), ("S", 12_000), ("A", 12_000)]
    );
    let last = app
        .count(&format!(
            "SELECT number::bigint AS n FROM seats WHERE schedule_id = {sid} ORDER BY id DESC LIMIT 1"
        ))
        .await;
    assert_eq!(last, 50, "seats are numbered in layout order");
}

#[tokio::test]
async fn a_draft_cannot_be_cancelled_into_public_view() {
    let app = TestApp::spawn().await;
    let host = app.user_with_role("host@example.com", "host").await;
    let id = create(&app, &host.access, "Secret Draft").await;
    let body = app
        .gql(
            Some(&host.access),
            CANCEL,
            json!({ "id": id, "r": "changed my mind" }),
        )
        .await;
    assert_eq!(code(&body), "CONFLICT");
    assert_eq!(
        code(&app.gql(None, CONCERT, json!({ "id": id })).await),
        "NOT_FOUND"
    );
}
