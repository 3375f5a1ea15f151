//! Search (C4) and the seat map (C6).

use std::time::Instant;

use chrono::{DateTime, Duration, SecondsFormat, Timelike, Utc};
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::common::{ADD_SCHEDULE, CREATE_CONCERT, GENERATE, Session, TestApp, code, layout};

const SEARCH: &str = "query($f: ConcertFilter, $n: Int, $a: String) { concerts(filter: $f, first: $n, after: $a) { edges { cursor node { id title } } pageInfo { hasNextPage hasPreviousPage endCursor } } }";
const RESERVE: &str = "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id status } }";
const MAP: &str = "query($id: ID!) { schedule(id: $id) { capacity bookedCount remainingSeats version availability { grade price color total available held sold } seats { id section row number grade price status } } }";

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A published concert of `host` with one small schedule per start time; returns its id.
async fn publish(app: &TestApp, host: &Session, input: Value, starts: &[DateTime<Utc>]) -> String {
    let t = Some(host.access.as_str());
    let mut input = input;
    for (k, v) in [("artist", "Someone"), ("venue", "Hall"), ("category", "pop")] {
        if input.get(k).is_none() {
            input[k] = json!(v);
        }
    }
    let id = app.ok(t, CREATE_CONCERT, json!({ "i": input })).await["createConcert"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for start in starts {
        let schedule = json!({
            "startsAt": rfc(*start),
            "salesOpenAt": rfc(Utc::now() - Duration::minutes(1)),
            "salesCloseAt": rfc(*start - Duration::hours(1)),
            "perUserLimit": 4,
        });
        let sid = app.ok(t, ADD_SCHEDULE, json!({ "c": id, "i": schedule })).await["addSchedule"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        app.ok(t, GENERATE, json!({ "s": sid, "l": layout(1, 2) })).await;
    }
    app.ok(
        t,
        "mutation($c: ID!) { publishConcert(id: $c) { id } }",
        json!({ "c": id }),
    )
    .await;
    id
}

/// Every matching concert (one page of 100), as (id, title).
async fn find(app: &TestApp, filter: Value) -> Vec<(String, String)> {
    let data = app.ok(None, SEARCH, json!({ "f": filter, "n": 100 })).await;
    assert_eq!(data["concerts"]["pageInfo"]["hasNextPage"], false);
    nodes(&data)
}

fn nodes(data: &Value) -> Vec<(String, String)> {
    data["concerts"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["node"]["id"].as_str().unwrap().to_owned(),
                e["node"]["title"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn titles(app: &TestApp, filter: Value) -> Vec<String> {
    find(app, filter).await.into_iter().map(|(_, t)| t).collect()
}

fn bad_field(body: &Value) -> &str {
    assert_eq!(code(body), "BAD_USER_INPUT", "{body}");
    body["errors"][0]["extensions"]["field"].as_str().unwrap()
}

fn days(n: i64) -> DateTime<Utc> {
    Utc::now() + Duration::days(n)
}

#[tokio::test]
async fn text_search_finds_partial_words_any_script_and_descriptions() {
    let app = TestApp::spawn().await;
    let host = app.user_with_role("host@example.com", "host").await;
    let other = app.user_with_role("other@example.com", "host").await;
    publish(
        &app,
        &host,
        json!({ "title": "Taylor Swift | The Eras Tour", "artist": "Taylor Swift", "venue": "Stadium" }),
        &[days(3)],
    )
    .await;
    publish(
        &app,
        &host,
        json!({ "title": "아이유 콘서트", "artist": "IU", "venue": "잠실 올림픽 주경기장", "category": "K-Pop" }),
        &[days(4)],
    )
    .await;
    publish(
        &app,
        &other,
        json!({ "title": "Symphony No. 9", "artist": "Seoul Philharmonic", "category": "Classical",
                "description": "An evening of Beethoven, with friends from the 100% Club_Night." }),
        &[days(5)],
    )
    .await;
    publish(
        &app,
        &other,
        json!({ "title": "Rock Night", "artist": "Loud Band", "category": "rock" }),
        &[days(6)],
    )
    .await;

    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({ "text": "Tay" }), vec!["Taylor Swift | The Eras Tour"]),
        (json!({ "text": "tAYLOR" }), vec!["Taylor Swift | The Eras Tour"]),
        (
            json!({ "text": "Swift Taylor" }),
            vec!["Taylor Swift | The Eras Tour"],
        ),
        (
            json!({ "text": "  eras  " }),
            vec!["Taylor Swift | The Eras Tour"],
        ),
        (json!({ "text": "아이유" }), vec!["아이유 콘서트"]),
        (json!({ "text": "콘서" }), vec!["아이유 콘서트"]),
        (json!({ "text": "올림픽" }), vec!["아이유 콘서트"]),
        (json!({ "text": "beethoven" }), vec!["Symphony No. 9"]),
        (json!({ "text": "friends Beethoven" }), vec!["Symphony No. 9"]),
        (json!({ "text": "philharm" }), vec!["Symphony No. 9"]),
        // The venue is searched too.
        (json!({ "text": "stadium" }), vec!["Taylor Swift | The Eras Tour"]),
        (json!({ "text": "night" }), vec!["Symphony No. 9", "Rock Night"]),
        // LIKE wildcards are literal.
        (json!({ "text": "100%" }), vec!["Symphony No. 9"]),
        (json!({ "text": "%" }), vec!["Symphony No. 9"]),
        (json!({ "text": "b__thoven" }), vec![]),
        (json!({ "text": "Mozart" }), vec![]),
        // Query syntax is the web's: quotes, OR, minus; stray operators are harmless.
        (
            json!({ "text": "\"the eras\" -rock" }),
            vec!["Taylor Swift | The Eras Tour"],
        ),
        (json!({ "text": "mozart or beethoven" }), vec!["Symphony No. 9"]),
        (
            json!({ "text": "swift & ! :* (" }),
            vec!["Taylor Swift | The Eras Tour"],
        ),
        (json!({ "text": "it's" }), vec![]),
        (json!({ "category": "ROCK " }), vec!["Rock Night"]),
        (json!({ "category": "k-pop" }), vec!["아이유 콘서트"]),
        (
            json!({ "category": "classical", "text": "night" }),
            vec!["Symphony No. 9"],
        ),
        (json!({ "category": "jazz" }), vec![]),
        (
            json!({ "hostId": host.id.to_string() }),
            vec!["Taylor Swift | The Eras Tour", "아이유 콘서트"],
        ),
        (
            json!({ "hostId": other.id.to_string(), "text": "rock" }),
            vec!["Rock Night"],
        ),
        (json!({ "hostId": host.id.to_string(), "text": "rock" }), vec![]),
        // An empty text is no filter.
        (
            json!({ "text": "   " }),
            vec![
                "Taylor Swift | The Eras Tour",
                "아이유 콘서트",
                "Symphony No. 9",
                "Rock Night",
            ],
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(titles(&app, filter.clone()).await, expected, "{filter}");
    }

    let body = app.gql(None, SEARCH, json!({ "f": { "hostId": "abc" } })).await;
    assert_eq!(bad_field(&body), "filter.hostId");
    let body = app
        .gql(None, SEARCH, json!({ "f": { "text": "x".repeat(201) } }))
        .await;
    assert_eq!(bad_field(&body), "filter.text");
}

#[tokio::test]
async fn date_filters_look_at_performance_start_times() {
    let app = TestApp::spawn().await;
    let host = app.user_with_role("host@example.com", "host").await;
    let base = Utc::now() + Duration::days(1);
    let d = |n: i64| base + Duration::days(n);
    publish(&app, &host, json!({ "title": "A" }), &[d(10), d(40)]).await;
    publish(&app, &host, json!({ "title": "B" }), &[d(20)]).await;
    publish(&app, &host, json!({ "title": "C" }), &[d(30)]).await;

    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({}), vec!["A", "B", "C"]),
        // Ordered by the first performance within the range: A's is then day 40.
        (json!({ "startsFrom": rfc(d(15)) }), vec!["B", "C", "A"]),
        (json!({ "startsBefore": rfc(d(15)) }), vec!["A"]),
        (
            json!({ "startsFrom": rfc(d(15)), "startsBefore": rfc(d(35)) }),
            vec!["B", "C"],
        ),
        (
            json!({ "startsFrom": rfc(d(25)), "startsBefore": rfc(d(35)) }),
            vec!["C"],
        ),
        // startsFrom is inclusive, startsBefore exclusive.
        (
            json!({ "startsFrom": rfc(d(20)), "startsBefore": rfc(d(30)) }),
            vec!["B"],
        ),
        (json!({ "startsFrom": rfc(d(41)) }), vec![]),
        (json!({ "startsBefore": rfc(d(10)) }), vec![]),
    ];
    for (filter, expected) in cases {
        assert_eq!(titles(&app, filter.clone()).await, expected, "{filter}");
    }
    let body = app
        .gql(
            None,
            SEARCH,
            json!({ "f": { "startsFrom": rfc(d(20)), "startsBefore": rfc(d(20)) } }),
        )
        .await;
    assert_eq!(bad_field(&body), "filter.startsBefore");

    // A cancelled performance no longer counts.
    let a = find(&app, json!({ "startsBefore": rfc(d(15)) })).await;
    let first_of_a = app
        .ok(
            None,
            "query($id: ID!) { concert(id: $id) { schedules { id } } }",
            json!({ "id": a[0].0 }),
        )
        .await["concert"]["schedules"][0]["id"]
        .clone();
    app.ok(
        Some(&host.access),
        "mutation($id: ID!) { cancelSchedule(id: $id) { status } }",
        json!({ "id": first_of_a }),
    )
    .await;
    assert_eq!(
        titles(&app, json!({ "startsBefore": rfc(d(15)) })).await,
        Vec::<String>::new()
    );
    assert_eq!(titles(&app, json!({})).await, vec!["B", "C", "A"]);
}

#[tokio::test]
async fn only_available_skips_sold_out_performances() {
    let app = TestApp::spawn().await;
    // Four seats, two per user.
    let full = app.show(layout(1, 4), 2).await;
    let open = app.show(layout(1, 4), 2).await;
    let mut holds = Vec::new();
    for (i, pair) in full.seats.chunks(2).enumerate() {
        let fan = app.sign_up(&format!("fan{i}@example.com")).await;
        let r = app
            .ok(
                Some(&fan.access),
                RESERVE,
                json!({ "i": { "scheduleId": full.schedule_id, "seatIds": pair } }),
            )
            .await;
        holds.push((fan, r["reserveSeats"]["id"].as_str().unwrap().to_owned()));
    }
    // One seat of the other show is held: it still has seats.
    let fan = app.sign_up("solo@example.com").await;
    app.ok(
        Some(&fan.access),
        RESERVE,
        json!({ "i": { "scheduleId": open.schedule_id, "seatIds": [open.seats[0]] } }),
    )
    .await;
    let ids = |v: Vec<(String, String)>| v.into_iter().map(|(id, _)| id).collect::<Vec<_>>();

    assert_eq!(
        ids(find(&app, json!({})).await),
        vec![full.concert_id.clone(), open.concert_id.clone()]
    );
    assert_eq!(
        ids(find(&app, json!({ "onlyAvailable": true })).await),
        vec![open.concert_id.clone()]
    );
    assert_eq!(
        ids(find(&app, json!({ "onlyAvailable": true, "text": "night" })).await),
        vec![open.concert_id.clone()]
    );

    // A released hold puts the concert back.
    let (fan, hold) = &holds[0];
    app.ok(
        Some(&fan.access),
        "mutation($r: ID!) { cancelReservation(reservationId: $r) { status } }",
        json!({ "r": hold }),
    )
    .await;
    assert_eq!(
        ids(find(&app, json!({ "onlyAvailable": true })).await),
        vec![full.concert_id.clone(), open.concert_id.clone()]
    );
    app.assert_invariants().await;
}

#[tokio::test]
async fn relevance_and_start_date_orderings() {
    let app = TestApp::spawn().await;
    let host = app.user_with_role("host@example.com", "host").await;
    publish(&app, &host, json!({ "title": "Rock Opening" }), &[days(1)]).await;
    publish(
        &app,
        &host,
        json!({ "title": "Summer Gala", "description": "Strings, brass and a little jazz at the end." }),
        &[days(5)],
    )
    .await;
    publish(
        &app,
        &host,
        json!({ "title": "Jazz Nights", "artist": "Jazz Trio", "venue": "Jazz Club" }),
        &[days(30)],
    )
    .await;
    publish(&app, &host, json!({ "title": "Jazz Brunch" }), &[days(20)]).await;

    let by = |sort: &str| json!({ "text": "jazz", "sort": sort });
    assert_eq!(
        titles(&app, by("START_DATE")).await,
        vec!["Summer Gala", "Jazz Brunch", "Jazz Nights"]
    );
    assert_eq!(
        titles(&app, json!({ "text": "jazz" })).await,
        vec!["Summer Gala", "Jazz Brunch", "Jazz Nights"],
        "START_DATE is the default"
    );
    assert_eq!(
        titles(&app, by("RELEVANCE")).await,
        vec!["Jazz Nights", "Jazz Brunch", "Summer Gala"]
    );
    // Without text, relevance is the start date.
    let all = vec!["Rock Opening", "Summer Gala", "Jazz Brunch", "Jazz Nights"];
    assert_eq!(titles(&app, json!({ "sort": "RELEVANCE" })).await, all);
    assert_eq!(titles(&app, json!({ "sort": "START_DATE" })).await, all);
}

/// Follows `endCursor` with pages of `size`; checks the page info on the way. Stops after
/// 100 concerts (a cursor that does not move on would loop for ever).
async fn walk(app: &TestApp, filter: &Value, size: i32) -> Vec<String> {
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    while seen.len() < 100 {
        let data = app
            .ok(None, SEARCH, json!({ "f": filter, "n": size, "a": after }))
            .await;
        let page = &data["concerts"];
        let edges = page["edges"].as_array().unwrap();
        assert!(edges.len() <= size as usize);
        assert_eq!(page["pageInfo"]["hasPreviousPage"], after.is_some());
        seen.extend(nodes(&data).into_iter().map(|(id, _)| id));
        if !page["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            return seen;
        }
        assert_eq!(edges.len(), size as usize, "a full page before the last");
        assert_eq!(page["pageInfo"]["endCursor"], edges.last().unwrap()["cursor"]);
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    seen
}

#[tokio::test]
async fn pages_are_stable_and_complete() {
    let app = TestApp::spawn().await;
    let host = app.user_with_role("host@example.com", "host").await;
    // Shows start at one of four instants, so the sort key ties often; the texts vary in how
    // much they say "jazz", so relevance varies too.
    let base = (Utc::now() + Duration::days(7)).with_nanosecond(0).unwrap();
    let made = join_all((0..23).map(|i| {
        let host = &host;
        let app = &app;
        async move {
            let input = json!({
                "title": format!("Jazz session {i}"),
                "artist": format!("Quartet {}", "jazz ".repeat(i % 3)),
                "description": "jazz and blues ".repeat(i % 5),
            });
            publish(app, host, input, &[base + Duration::hours((i % 4) as i64)]).await
        }
    }))
    .await;

    for filter in [
        json!({}),
        json!({ "text": "jazz" }),
        json!({ "text": "jazz", "sort": "RELEVANCE" }),
        json!({ "text": "sess", "sort": "RELEVANCE" }),
    ] {
        let whole: Vec<String> = find(&app, filter.clone())
            .await
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let mut sorted = whole.clone();
        sorted.sort();
        let mut expected = made.clone();
        expected.sort();
        assert_eq!(sorted, expected, "{filter}: every concert once");
        for size in [1, 5, 7] {
            assert_eq!(
                walk(&app, &filter, size).await,
                whole,
                "{filter}, pages of {size}"
            );
        }
    }

    // The order by start date: ties broken by id.
    let whole: Vec<String> = find(&app, json!({}))
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let mut expected: Vec<(usize, i64)> = made
        .iter()
        .enumerate()
        .map(|(i, id)| (i % 4, id.parse().unwrap()))
        .collect();
    expected.sort();
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id.to_string()).collect();
    assert_eq!(whole, expected);

    for (vars, field) in [
        (json!({ "a": "garbage" }), "after"),
        (json!({ "a": "" }), "after"),
        (json!({ "n": 101 }), "first"),
        (json!({ "n": 0 }), "first"),
        (json!({ "n": -1 }), "first"),
    ] {
        let body = app.gql(None, SEARCH, vars.clone()).await;
        assert_eq!(bad_field(&body), field, "{vars}");
    }
    // A cursor of another list is not one of this list.
    let mine = app
        .ok(
            Some(&host.access),
            "{ myConcerts(first: 1) { pageInfo { endCursor } } }",
            json!({}),
        )
        .await;
    let foreign = mine["myConcerts"]["pageInfo"]["endCursor"].clone();
    let body = app.gql(None, SEARCH, json!({ "a": foreign })).await;
    assert_eq!(bad_field(&body), "after");
    // The default page is 20.
    let data = app.ok(None, SEARCH, json!({})).await;
    assert_eq!(data["concerts"]["edges"].as_array().unwrap().len(), 20);
    assert_eq!(data["concerts"]["pageInfo"]["hasNextPage"], true);
}

#[tokio::test]
async fn the_seat_map_of_20000_seats_in_one_request() {
    let app = TestApp::spawn().await;
    // 40 rows of 500; rows cycle through VIP, R, S, A.
    let show = app.show(layout(40, 500), 4).await;
    assert_eq!(show.seats.len(), 20_000);
    let grades = ["VIP", "R", "S", "A"];
    let prices = [150, 100, 70, 50];
    let colors = ["#FF0000", "#00FF00", "#0000FF", "#FFFF00"];

    let started = Instant::now();
    let map = app.ok(None, MAP, json!({ "id": show.schedule_id })).await["schedule"].clone();
    println!("seat map of 20,000 seats read in {:?}", started.elapsed());
    assert_eq!(map["capacity"], 20_000);
    assert_eq!(map["bookedCount"], 0);
    assert_eq!(map["remainingSeats"], 20_000);
    let v0 = map["version"].as_i64().unwrap();
    let expected_availability = |held: [i64; 4]| -> Value {
        (0..4)
            .map(|g| {
                json!({
                    "grade": grades[g], "price": prices[g], "color": colors[g],
                    "total": 5000, "available": 5000 - held[g], "held": held[g], "sold": 0,
                })
            })
            .collect()
    };
    assert_eq!(map["availability"], expected_availability([0; 4]));
    let seats = map["seats"].as_array().unwrap();
    assert_eq!(seats.len(), 20_000);
    for (i, seat) in seats.iter().enumerate() {
        let row = i / 500;
        assert_eq!(
            *seat,
            json!({
                "id": show.seats[i], "section": "Floor", "row": format!("R{row}"), "number": i % 500 + 1,
                "grade": grades[row % 4], "price": prices[row % 4], "status": "AVAILABLE",
            }),
            "seat {i} in layout order"
        );
    }

    // Hold a VIP seat (row R0) and an R seat (row R1).
    let fan = app.sign_up("fan@example.com").await;
    let held = [show.seats[0].clone(), show.seats[501].clone()];
    app.ok(
        Some(&fan.access),
        RESERVE,
        json!({ "i": { "scheduleId": show.schedule_id, "seatIds": held } }),
    )
    .await;

    let map = app.ok(None, MAP, json!({ "id": show.schedule_id })).await["schedule"].clone();
    assert!(
        map["version"].as_i64().unwrap() > v0,
        "the version grows with a hold"
    );
    assert_eq!(map["bookedCount"], 2);
    assert_eq!(map["remainingSeats"], 19_998);
    assert_eq!(map["availability"], expected_availability([1, 1, 0, 0]));
    let seats = map["seats"].as_array().unwrap();
    assert_eq!(seats.len(), 20_000);
    assert_eq!(seats[0]["status"], "HELD");
    assert_eq!(seats[501]["status"], "HELD");
    assert_eq!(seats.iter().filter(|s| s["status"] != "AVAILABLE").count(), 2);

    let filtered = app
        .ok(
            None,
            "query($id: ID!) { schedule(id: $id) {
                held: seats(status: HELD) { id status grade }
                vip: seats(grade: \"VIP\") { grade }
                freeVip: seats(section: \"Floor\", grade: \"VIP\", status: AVAILABLE) { id }
                nowhere: seats(section: \"Balcony\", status: SOLD) { id }
            } }",
            json!({ "id": show.schedule_id }),
        )
        .await["schedule"]
        .clone();
    assert_eq!(
        filtered["held"],
        json!([
            { "id": held[0], "status": "HELD", "grade": "VIP" },
            { "id": held[1], "status": "HELD", "grade": "R" },
        ])
    );
    let vip = filtered["vip"].as_array().unwrap();
    assert_eq!(vip.len(), 5000);
    assert!(vip.iter().all(|s| s["grade"] == "VIP"));
    assert_eq!(filtered["freeVip"].as_array().unwrap().len(), 4999);
    assert_eq!(filtered["nowhere"], json!([]));
    app.assert_invariants().await;
}

#[tokio::test]
async fn nested_lists_are_batched() {
    let app = TestApp::spawn().await;
    let hosts = join_all((0..4).map(|i| {
        let app = &app;
        async move { app.user_with_role(&format!("host{i}@example.com"), "host").await }
    }))
    .await;
    let base = Utc::now() + Duration::days(3);
    join_all((0..20).map(|i| {
        let app = &app;
        let host = &hosts[i % 4];
        async move {
            publish(
                app,
                host,
                json!({ "title": format!("Show {i:02}") }),
                &[base + Duration::hours(i as i64), base + Duration::days(30)],
            )
            .await
        }
    }))
    .await;

    let query = "{ concerts(first: 20) { edges { node { title host { id displayName } schedules { id capacity remainingSeats availability { grade total available held sold } } } } } }";
    // pg_stat_statements is not loaded on every server; the pool's checkout count is a
    // proxy that always works: every resolver or loader that queries takes a connection.
    let checkouts = || app.state.db.state().statistics.get_started;
    let before = checkouts();
    let started = Instant::now();
    let data = app.ok(None, query, json!({})).await;
    let took = started.elapsed();
    let used = checkouts() - before;
    println!("20 concerts with hosts, schedules and availability in {took:?}, {used} connection checkouts");
    // The search, then one batch each of hosts, schedules and availability (+1 for the hold
    // sweeper's tick); per-concert lookups would be 60 and more.
    assert!(
        used <= 8,
        "{used} connection checkouts for one nested page: an N+1 query is back"
    );
    let edges = data["concerts"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 20);
    for (i, edge) in edges.iter().enumerate() {
        let node = &edge["node"];
        assert_eq!(node["title"], format!("Show {i:02}"));
        assert_eq!(node["host"]["id"], hosts[i % 4].id.to_string());
        assert_eq!(node["host"]["displayName"], format!("host{}", i % 4));
        let schedules = node["schedules"].as_array().unwrap();
        assert_eq!(schedules.len(), 2);
        for s in schedules {
            assert_eq!(s["capacity"], 2);
            assert_eq!(
                s["availability"],
                json!([
                    { "grade": "VIP", "total": 2, "available": 2, "held": 0, "sold": 0 },
                    { "grade": "R", "total": 0, "available": 0, "held": 0, "sold": 0 },
                    { "grade": "S", "total": 0, "available": 0, "held": 0, "sold": 0 },
                    { "grade": "A", "total": 0, "available": 0, "held": 0, "sold": 0 },
                ])
            );
        }
    }
}
