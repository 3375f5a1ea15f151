//! `boxoffice demo`: what it seeds is usable through the API, and a second run (or a run
//! after an interrupted one) adds nothing.

use serde_json::json;

use crate::common::TestApp;

const PASSWORD: &str = "demo password 42";

/// Rows of every table the demo writes, in one tuple.
async fn counts(app: &TestApp) -> Vec<i64> {
    let mut out = Vec::new();
    for table in [
        "users",
        "concerts",
        "schedules",
        "seat_grades",
        "seats",
        "point_ledger",
        "audit_log",
    ] {
        out.push(app.count(&format!("SELECT count(*) AS n FROM {table}")).await);
    }
    out
}

async fn seed(app: &TestApp) -> boxoffice::demo::Report {
    let mut conn = app.state.db.get().await.unwrap();
    boxoffice::demo::seed(
        &mut conn,
        app.state.writes(),
        &app.state.config.payments,
        Some(PASSWORD),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn demo_seeds_a_usable_box_office_once() {
    let app = TestApp::spawn().await;
    let first = seed(&app).await;
    assert!(
        first
            .accounts
            .iter()
            .all(|a| a.new_password.as_deref() == Some(PASSWORD))
    );
    assert!(first.points_given);
    let after_first = counts(&app).await;
    // 3 users, 2 concerts, 2 schedules, 8 grades, 22,004 seats, 1 ledger entry, and the
    // admin's two audited actions (the host's promotion, the fan's points).
    assert_eq!(after_first, vec![3, 2, 2, 8, 22_004, 1, 2]);

    let second = seed(&app).await;
    assert!(second.accounts.iter().all(|a| a.new_password.is_none()));
    assert!(!second.points_given);
    assert!(second.shows.iter().all(|s| !s.created));
    assert_eq!(counts(&app).await, after_first, "a second run added rows");
    let printed = second.render("http://localhost:8080");
    assert!(
        !printed.contains(PASSWORD),
        "a second run printed a password:\n{printed}"
    );
    assert!(first.render("http://localhost:8080").contains(PASSWORD));

    // The concerts are public and on sale, one with the queue; sizes as promised.
    let body = app
        .gql(
            None,
            "{ concerts(first: 10) { nodes { title status schedules { onSale queueEnabled capacity availability { grade total } } } } }",
            json!({}),
        )
        .await;
    let mut shows: Vec<(String, bool, bool, i64, usize)> = body["data"]["concerts"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|c| {
            let s = &c["schedules"][0];
            assert_eq!(c["status"], "PUBLISHED");
            (
                c["title"].as_str().unwrap().to_owned(),
                s["onSale"].as_bool().unwrap(),
                s["queueEnabled"].as_bool().unwrap(),
                s["capacity"].as_i64().unwrap(),
                s["availability"].as_array().unwrap().len(),
            )
        })
        .collect();
    shows.sort();
    assert_eq!(
        shows,
        vec![
            ("Northern Lights World Tour".into(), true, true, 20_000, 4),
            ("별빛 오케스트라 — 겨울밤의 클래식".into(), true, false, 2_004, 4),
        ]
    );

    // Each account logs in with its password and has its role; the fan has the points.
    for (email, role, points) in [
        (boxoffice::demo::ADMIN_EMAIL, "ADMIN", 0),
        (boxoffice::demo::HOST_EMAIL, "HOST", 0),
        (
            boxoffice::demo::FAN_EMAIL,
            "USER",
            boxoffice::demo::WELCOME_POINTS,
        ),
    ] {
        let login = app.log_in(email, PASSWORD).await;
        let token = login["data"]["logIn"]["accessToken"]
            .as_str()
            .unwrap_or_else(|| panic!("{email}: {login}"));
        let me = app.gql(Some(token), "{ me { role points } }", json!({})).await;
        assert_eq!(
            me["data"]["me"],
            json!({ "role": role, "points": points }),
            "{email}"
        );
    }
    app.assert_invariants().await;
}

#[tokio::test]
async fn an_interrupted_run_is_completed_without_duplicates() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let full = counts(&app).await;
    // As if the first run stopped after making the second concert's schedule: no seats,
    // still a draft. (The ledger is append-only, so the points cannot be taken back here.)
    let mut conn = app.state.db.get().await.unwrap();
    for sql in [
        "DELETE FROM seats WHERE schedule_id = (SELECT max(id) FROM schedules)",
        "DELETE FROM seat_grades WHERE schedule_id = (SELECT max(id) FROM schedules)",
        "UPDATE schedules SET capacity = 0 WHERE id = (SELECT max(id) FROM schedules)",
        "UPDATE concerts SET status = 'draft' WHERE id = (SELECT max(id) FROM concerts)",
    ] {
        diesel_async::RunQueryDsl::execute(diesel::sql_query(sql), &mut *conn)
            .await
            .unwrap();
    }
    drop(conn);
    let again = seed(&app).await;
    assert!(!again.points_given);
    assert_eq!(
        again.shows.iter().map(|s| s.created).collect::<Vec<_>>(),
        vec![false, true]
    );
    assert_eq!(counts(&app).await, full);
    app.assert_invariants().await;
}

#[tokio::test]
async fn an_account_someone_else_signed_up_is_not_promoted() {
    let app = TestApp::spawn().await;
    // A stranger took the host's address first (and chose its password).
    app.sign_up(boxoffice::demo::HOST_EMAIL).await;
    let mut conn = app.state.db.get().await.unwrap();
    let Err(e) = boxoffice::demo::seed(
        &mut conn,
        app.state.writes(),
        &app.state.config.payments,
        Some(PASSWORD),
    )
    .await
    else {
        panic!("the demo promoted a stranger's account");
    };
    drop(conn);
    assert!(e.to_string().contains("not promoting"), "{e}");
    let host = app
        .log_in(boxoffice::demo::HOST_EMAIL, crate::common::PASSWORD)
        .await;
    let token = host["data"]["logIn"]["accessToken"].as_str().unwrap();
    let me = app.gql(Some(token), "{ me { role } }", json!({})).await;
    assert_eq!(me["data"]["me"]["role"], "USER");
    assert_eq!(app.count("SELECT count(*) AS n FROM concerts").await, 0);
}
