//! A 50,000-seat venue read as `Seat` objects (issue 21, finding 11): one request may not
//! read it whole (QUERY_TOO_COSTLY), nor its 40,000-seat floor; its sections and pages of
//! `seats(section:, first:, after:)` read every seat once, each request within the budget,
//! with live statuses.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::common::{ADD_SCHEDULE, CREATE_CONCERT, GENERATE, TestApp, code, schedule_input};

/// A floor of 200 rows of 200 seats and a balcony of 50 rows of 200: 50,000 seats.
fn stadium() -> Value {
    let rows = |prefix: &str, n: usize, grade: &str| -> Vec<Value> {
        (0..n)
            .map(|r| json!({ "label": format!("{prefix}{r}"), "seats": 200, "grade": grade }))
            .collect()
    };
    json!({
        "grades": [
            { "name": "R", "price": 100, "color": "#00FF00" },
            { "name": "S", "price": 70, "color": "#0000FF" },
        ],
        "sections": [
            { "name": "Floor", "rows": rows("F", 200, "R") },
            { "name": "Balcony", "rows": rows("B", 50, "S") },
        ],
    })
}

const PAGE: &str = "query($s: ID!, $section: String, $first: Int, $after: ID) { schedule(id: $s) { id seats(section: $section, first: $first, after: $after) { id section status } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fifty_thousand_seat_venue_is_read_in_pages_of_seats() {
    let app = TestApp::spawn().await;
    let s = stadium_show(&app).await;
    let s = s.as_str();

    // Whole, or its floor alone: more than one request may read as seat objects.
    let whole = app
        .gql(
            None,
            "query($s: ID!) { schedule(id: $s) { seats { id status } } }",
            json!({ "s": s }),
        )
        .await;
    assert_eq!(code(&whole), "QUERY_TOO_COSTLY", "{}", whole["errors"]);
    let floor = app
        .gql(
            None,
            "query($s: ID!) { schedule(id: $s) { seats(section: \"Floor\") { id status } } }",
            json!({ "s": s }),
        )
        .await;
    assert_eq!(code(&floor), "QUERY_TOO_COSTLY");

    // A fan holds a seat on the floor; pages show it.
    let fan = app.sign_up("fan@example.com").await;
    let held = app
        .ok(
            Some(&fan.access),
            "mutation($i: BestAvailableInput!) { reserveBestAvailable(input: $i) { seats { id } } }",
            json!({ "i": { "scheduleId": s, "count": 1, "grade": "R" } }),
        )
        .await["reserveBestAvailable"]["seats"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The plan: sections with their sizes.
    let plan = app
        .ok(
            None,
            "query($s: ID!) { schedule(id: $s) { sections { name seats } } }",
            json!({ "s": s }),
        )
        .await;
    assert_eq!(
        plan["schedule"]["sections"],
        json!([{ "name": "Floor", "seats": 40_000 }, { "name": "Balcony", "seats": 10_000 }])
    );

    // Every seat once, section by section, 10,000 a request.
    let mut seen: HashSet<String> = HashSet::new();
    let mut requests = 0;
    let mut held_status = None;
    for section in ["Floor", "Balcony"] {
        let mut after: Option<String> = None;
        loop {
            let body = app
                .gql(
                    None,
                    PAGE,
                    json!({ "s": s, "section": section, "first": 10_000, "after": after }),
                )
                .await;
            assert!(body["errors"].is_null(), "{}", body["errors"]);
            requests += 1;
            let page = body["data"]["schedule"]["seats"].as_array().unwrap().clone();
            for seat in &page {
                assert_eq!(seat["section"], section);
                let id = seat["id"].as_str().unwrap().to_owned();
                if id == held {
                    held_status = Some(seat["status"].clone());
                }
                assert!(seen.insert(id), "a seat on two pages");
            }
            if page.len() < 10_000 {
                break;
            }
            after = page.last().map(|p| p["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(seen.len(), 50_000);
    assert_eq!(
        requests,
        5 + 2,
        "the last full page of each section is followed by an empty one"
    );
    assert_eq!(held_status, Some(json!("HELD")));

    // The same seats as the compact map's ids.
    let map = app
        .ok(
            None,
            "query($s: ID!) { schedule(id: $s) { seatMap { idRuns } } }",
            json!({ "s": s }),
        )
        .await;
    let runs: Vec<i64> = map["schedule"]["seatMap"]["idRuns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|x| x.parse().ok()))
                .unwrap()
        })
        .collect();
    let from_map: HashSet<String> = runs
        .chunks(2)
        .flat_map(|r| (r[0]..r[0] + r[1]).map(|id| id.to_string()))
        .collect();
    assert_eq!(from_map, seen);

    // Narrowed by status across sections, and bad pages.
    let body = app
        .ok(
            None,
            PAGE.replace("section: $section", "status: HELD")
                .replace("$section: String, ", "")
                .as_str(),
            json!({ "s": s, "first": 100 }),
        )
        .await;
    assert_eq!(
        body["schedule"]["seats"],
        json!([{ "id": held, "section": "Floor", "status": "HELD" }])
    );
    for first in [0, -1, 10_001] {
        let body = app.gql(None, PAGE, json!({ "s": s, "first": first })).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "first {first}: {body}");
    }
    let body = app
        .gql(None, PAGE, json!({ "s": s, "first": 10, "after": "x" }))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
}

/// A published show on sale with the stadium layout; its schedule id. (`TestApp::show`
/// reads the whole seat list, which this venue refuses.)
async fn stadium_show(app: &TestApp) -> String {
    let host = app.user_with_role("stadium@example.com", "host").await;
    let t = Some(host.access.as_str());
    let c = app
        .ok(
            t,
            CREATE_CONCERT,
            json!({ "i": { "title": "Stadium", "artist": "Big", "venue": "Stadium", "category": "pop" } }),
        )
        .await["createConcert"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let s = app
        .ok(t, ADD_SCHEDULE, json!({ "c": c, "i": schedule_input(4) }))
        .await["addSchedule"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.ok(t, GENERATE, json!({ "s": s, "l": stadium() })).await;
    app.ok(
        t,
        "mutation($c: ID!) { publishConcert(id: $c) { id } }",
        json!({ "c": c }),
    )
    .await;
    s
}
