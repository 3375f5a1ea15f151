//! CSV exports (C19): `exportSchedule` signs a short-lived URL that this server streams;
//! the files are RFC 4180 and spreadsheet-safe; a changed or expired URL is refused; a big
//! export is made page by page as it is read, never whole in memory.

use boxoffice::exports::{
    ExportKind, csv_stream,
    signing::{Grant, sign},
};
use futures_util::StreamExt as _;
use serde_json::json;

use crate::common::{Session, Show, TestApp, code, layout};

const EXPORT: &str =
    "mutation($s: ID!, $k: ExportKind!) { exportSchedule(scheduleId: $s, kind: $k) { url expiresAt } }";

async fn paid(app: &TestApp, fan: &Session, show: &Show, seats: &[usize]) -> String {
    app.ok(
        Some(&fan.access),
        "mutation($a: Int!, $k: String!) { chargePoints(amount: $a, idempotencyKey: $k) { balanceAfter } }",
        json!({ "a": 10_000, "k": uuid::Uuid::new_v4().to_string() }),
    )
    .await;
    let ids: Vec<&str> = seats.iter().map(|i| show.seats[*i].as_str()).collect();
    let r = app
        .ok(
            Some(&fan.access),
            "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }",
            json!({ "i": { "scheduleId": show.schedule_id, "seatIds": ids } }),
        )
        .await["reserveSeats"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.ok(
        Some(&fan.access),
        "mutation($r: ID!, $k: String!) { payReservation(reservationId: $r, idempotencyKey: $k) { id } }",
        json!({ "r": r, "k": uuid::Uuid::new_v4().to_string() }),
    )
    .await;
    r
}

async fn export_url(app: &TestApp, who: &Session, show: &Show, kind: &str) -> String {
    let d = app
        .ok(
            Some(&who.access),
            EXPORT,
            json!({ "s": show.schedule_id, "k": kind }),
        )
        .await;
    d["exportSchedule"]["url"].as_str().unwrap().to_owned()
}

async fn get(app: &TestApp, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let resp = app.http.get(app.url(path)).send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

#[tokio::test]
async fn sales_and_attendees_come_as_spreadsheet_safe_csv() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 4), 4).await;
    let fan = app.sign_up("fan.export@example.com").await;
    // A name a spreadsheet would run as a formula, with a comma and a quote in it.
    app.count(&format!(
        "WITH u AS (UPDATE users SET display_name = '=HYPERLINK(\"http://evil\",\"x\")' WHERE id = {} RETURNING 1)
         SELECT count(*) AS n FROM u",
        fan.id
    ))
    .await;
    let r = paid(&app, &fan, &show, &[0, 1]).await;
    // A complimentary ticket is in the sales sheet, marked so it can be counted apart.
    let comp = app
        .ok(
            Some(&show.host.access),
            "mutation($s: ID!, $ids: [ID!]!) { issueComplimentary(scheduleId: $s, seatIds: $ids, email: \"press@example.com\") { reservation { id } } }",
            json!({ "s": show.schedule_id, "ids": [show.seats[2]] }),
        )
        .await["issueComplimentary"]["reservation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let url = export_url(&app, &show.host, &show, "SALES").await;
    assert!(
        url.starts_with(&format!("/exports/{}/sales.csv?", show.schedule_id)),
        "{url}"
    );
    let (status, headers, body) = get(&app, &url).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        headers["content-disposition"],
        format!("attachment; filename=\"schedule-{}-sales.csv\"", show.schedule_id).as_str()
    );
    assert_eq!(headers["cache-control"], "no-store");
    let body = body.strip_prefix('\u{feff}').expect("a UTF-8 byte order mark");
    let lines: Vec<&str> = body.split_terminator("\r\n").collect();
    assert_eq!(
        lines[0],
        "reservation_id,status,buyer_name,buyer_email,seat_count,seats,grades,total_price,refunded,created_at,paid_at,cancelled_at,complimentary"
    );
    assert_eq!(lines.len(), 3, "{body}");
    assert!(lines[1].ends_with(",false"), "{}", lines[1]);
    assert!(
        lines[2].starts_with(&format!("{comp},CONFIRMED,"))
            && lines[2].contains(",0,0,")
            && lines[2].ends_with(",true"),
        "{}",
        lines[2]
    );
    let expected = format!(
        "{r},CONFIRMED,\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\",fan.export@example.com,2,Floor R0-1; Floor R0-2,VIP,300,0,"
    );
    assert!(lines[1].starts_with(&expected), "{}\nnot {expected}", lines[1]);

    let url = export_url(&app, &show.host, &show, "ATTENDEES").await;
    let (status, _, body) = get(&app, &url).await;
    assert_eq!(status, 200);
    let lines: Vec<&str> = body
        .trim_start_matches('\u{feff}')
        .split_terminator("\r\n")
        .collect();
    assert_eq!(lines.len(), 4, "{body}"); // the two seats paid, and the complimentary one
    assert!(lines[0].starts_with("ticket_id,section,row,number,grade,price,holder_name"));
    for (line, number) in lines[1..].iter().zip([1, 2]) {
        let cells: Vec<&str> = line.split(',').collect();
        assert!(cells[0].parse::<i64>().is_ok(), "a ticket id: {line}");
        assert_eq!(&cells[1..6], ["Floor", "R0", &number.to_string(), "VIP", "150"]);
        assert!(
            line.contains(&format!(",fan.export@example.com,{r},VALID,,")),
            "{line}"
        );
        assert!(line.contains("\"'=HYPERLINK("), "{line}");
    }

    // The export was audited, with who asked for what.
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM audit_log WHERE action = 'export_schedule' AND actor_id = {}
             AND target_id = {}",
            show.host.id, show.schedule_id
        ))
        .await,
        2
    );
}

#[tokio::test]
async fn changed_expired_and_unsigned_links_are_refused() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 2), 2).await;
    let other = app.show(layout(1, 2), 2).await;
    let fan = app.sign_up("fan.export2@example.com").await;
    let url = export_url(&app, &show.host, &show, "SALES").await;
    assert_eq!(get(&app, &url).await.0, 200);

    let (path, query) = url.split_once('?').unwrap();
    let sig = query.split("sig=").nth(1).unwrap();
    let flipped = format!(
        "{}{}",
        &sig[..sig.len() - 1],
        if sig.ends_with('0') { '1' } else { '0' }
    );
    for tampered in [
        url.replace(&format!("sig={sig}"), &format!("sig={flipped}")),
        url.replace("sales.csv", "attendees.csv"),
        url.replace(
            &format!("/exports/{}/", show.schedule_id),
            &format!("/exports/{}/", other.schedule_id),
        ),
        url.replace(&format!("u={}", show.host.id), &format!("u={}", other.host.id)),
        url.replace("exp=", "exp=9"),
        path.to_owned(),
        format!("{path}?u={}&exp=9999999999&sig=", show.host.id),
    ] {
        let (status, _, body) = get(&app, &tampered).await;
        assert_eq!(status, 403, "{tampered}: {body}");
    }
    assert_eq!(
        get(&app, &format!("/exports/{}/everything.csv", show.schedule_id))
            .await
            .0,
        404
    );
    assert_eq!(get(&app, "/exports/x/sales.csv").await.0, 404);

    // Rightly signed but past its time: gone.
    let expired = Grant {
        schedule_id: show.schedule_id.parse().unwrap(),
        kind: ExportKind::Sales,
        expires: chrono::Utc::now().timestamp() - 1,
        user_id: show.host.id,
    };
    let sig = sign(&app.state.config.exports.url_secret, &expired);
    let (status, _, body) = get(
        &app,
        &format!("{path}?u={}&exp={}&sig={sig}", show.host.id, expired.expires),
    )
    .await;
    assert_eq!(status, 410, "{body}");

    // A link outlives nothing of its account: a host demoted since gets nothing.
    app.set_role(show.host.id, "user").await;
    assert_eq!(get(&app, &url).await.0, 403);
    app.set_role(show.host.id, "host").await;
    assert_eq!(get(&app, &url).await.0, 200);

    // Who may ask: not another host (NOT_FOUND), not a fan (FORBIDDEN).
    let s = json!({ "s": show.schedule_id, "k": "SALES" });
    let body = app.gql(Some(&other.host.access), EXPORT, s.clone()).await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    let body = app.gql(Some(&fan.access), EXPORT, s).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let body = app
        .gql(
            Some(&show.host.access),
            EXPORT,
            json!({ "s": "nope", "k": "SALES" }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    let body = app
        .gql(
            Some(&show.host.access),
            EXPORT,
            json!({ "s": show.schedule_id, "k": "ALL" }),
        )
        .await;
    assert!(body["errors"].is_array(), "{body}");
}

fn lines_of(chunk: &[u8]) -> usize {
    chunk.iter().filter(|b| **b == b'\n').count()
}

#[tokio::test]
async fn fifty_thousand_rows_stream_page_by_page() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 2), 2).await;
    let fan = app.sign_up("fan.big@example.com").await;
    const ROWS: i64 = 50_000;
    let made = app
        .count(&format!(
            "WITH r AS (INSERT INTO reservations (schedule_id, user_id, status, seat_count, total_price, expires_at, paid_at)
                        SELECT {}, {}, 'confirmed', 1, 100, now(), now() FROM generate_series(1, {ROWS}) RETURNING 1)
             SELECT count(*) AS n FROM r",
            show.schedule_id, fan.id
        ))
        .await;
    assert_eq!(made, ROWS);
    let schedule_id: i64 = show.schedule_id.parse().unwrap();

    // The stream fetches a page only when asked for one: after the first chunk, a row
    // committed at the end still makes it into the file, which a server that had read
    // everything first could not do. Each chunk is one page at most.
    let mut stream = Box::pin(csv_stream(app.state.db.clone(), schedule_id, ExportKind::Sales));
    let first = stream.next().await.unwrap().unwrap();
    let page = usize::try_from(boxoffice::exports::stream::PAGE).unwrap();
    assert_eq!(lines_of(&first), 1 + page, "the header and one page");
    let late = app
        .count(&format!(
            "WITH r AS (INSERT INTO reservations (schedule_id, user_id, status, seat_count, total_price, expires_at, paid_at)
                        VALUES ({schedule_id}, {}, 'confirmed', 1, 7, now(), now()) RETURNING id)
             SELECT id AS n FROM r",
            fan.id
        ))
        .await;
    let (mut lines, mut chunks, mut biggest, mut last) = (lines_of(&first), 1, 0, Vec::new());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        assert!(lines_of(&chunk) <= page);
        biggest = biggest.max(chunk.len());
        lines += lines_of(&chunk);
        chunks += 1;
        last = chunk.to_vec();
    }
    assert_eq!(lines, 1 + usize::try_from(ROWS).unwrap() + 1);
    assert!(chunks > 100, "{chunks} chunks");
    assert!(biggest < 200 * 1024, "a chunk of {biggest} bytes");
    let last = String::from_utf8(last).unwrap();
    let last_line = last.split_terminator("\r\n").last().unwrap();
    assert!(
        last_line.starts_with(&format!("{late},CONFIRMED,fan.big,fan.big@example.com,1,,,7,0,")),
        "{last_line}"
    );

    // Over HTTP: chunked, no length announced, every row there.
    let url = export_url(&app, &show.host, &show, "SALES").await;
    let mut resp = app.http.get(app.url(&url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("content-length").is_none());
    assert_eq!(resp.headers()["transfer-encoding"], "chunked");
    let mut n = 0;
    while let Some(chunk) = resp.chunk().await.unwrap() {
        n += lines_of(&chunk);
    }
    assert_eq!(n, 1 + usize::try_from(ROWS).unwrap() + 1);
}

#[tokio::test]
async fn an_export_without_sales_is_its_header() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 2), 2).await;
    let admin = app.user_with_role("admin.export@example.com", "admin").await;
    let url = export_url(&app, &admin, &show, "ATTENDEES").await;
    let (status, _, body) = get(&app, &url).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        "\u{feff}ticket_id,section,row,number,grade,price,holder_name,holder_email,reservation_id,ticket_status,checked_in_at,gate\r\n"
    );
}
