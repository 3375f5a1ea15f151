//! Points (C10): sandbox charges, idempotency, adjustments, the ledger, debts.

use serde_json::json;

use crate::common::{TestApp, code};

const CHARGE: &str = "mutation($a: Int!, $k: String!) { chargePoints(amount: $a, idempotencyKey: $k) { id kind amount balanceAfter } }";
const ADJUST: &str = "mutation($u: ID!, $a: Int!, $r: String!) { adjustPoints(userId: $u, amount: $a, reason: $r) { kind amount balanceAfter reason } }";

#[tokio::test]
async fn charges_are_bounded() {
    let app = TestApp::spawn().await;
    let fan = app.sign_up("fan@example.com").await;
    for amount in [0, -5, 10_000_001] {
        let body = app
            .gql(Some(&fan.access), CHARGE, json!({ "a": amount, "k": "k" }))
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{amount}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "amount");
    }
    let body = app
        .gql(Some(&fan.access), CHARGE, json!({ "a": 10, "k": "" }))
        .await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "idempotencyKey");
    assert_eq!(
        code(&app.gql(None, CHARGE, json!({ "a": 10, "k": "k" })).await),
        "UNAUTHENTICATED"
    );
    let ok = app
        .ok(Some(&fan.access), CHARGE, json!({ "a": 500, "k": "k" }))
        .await;
    assert_eq!(ok["chargePoints"]["balanceAfter"], 500);
    // A sandbox top-up, said as such in the ledger.
    assert_eq!(ok["chargePoints"]["kind"], "TOP_UP");
    // Same key, other amount: a mistake, not a replay.
    assert_eq!(
        code(
            &app.gql(Some(&fan.access), CHARGE, json!({ "a": 600, "k": "k" }))
                .await
        ),
        "CONFLICT"
    );
    app.assert_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_double_click_charges_once_and_different_charges_all_apply() {
    let app = TestApp::spawn().await;
    let fan = app.sign_up("fan@example.com").await;
    let same: Vec<_> = (0..20)
        .map(|_| app.gql(Some(&fan.access), CHARGE, json!({ "a": 100, "k": "once" })))
        .collect();
    let bodies = futures_util::future::join_all(same).await;
    let ids: std::collections::HashSet<String> = bodies
        .iter()
        .map(|b| {
            b["data"]["chargePoints"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{b}"))
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "every click answers the one charge");
    let distinct: Vec<_> = (0..30)
        .map(|i| {
            app.gql(
                Some(&fan.access),
                CHARGE,
                json!({ "a": 10, "k": format!("k{i}") }),
            )
        })
        .collect();
    for b in futures_util::future::join_all(distinct).await {
        assert!(b["errors"].is_null(), "{b}");
    }
    let me = app.ok(Some(&fan.access), "{ me { points } }", json!({})).await;
    assert_eq!(me["me"]["points"], 100 + 30 * 10);
    assert_eq!(app.count("SELECT count(*) AS n FROM point_ledger").await, 31);
    app.assert_invariants().await;
}

#[tokio::test]
async fn admins_adjust_balances_with_a_reason() {
    let app = TestApp::spawn().await;
    let admin = app.user_with_role("root@example.com", "admin").await;
    let fan = app.sign_up("fan@example.com").await;
    let u = fan.id.to_string();
    let up = app
        .ok(
            Some(&admin.access),
            ADJUST,
            json!({ "u": u, "a": 300, "r": "goodwill" }),
        )
        .await;
    assert_eq!(up["adjustPoints"]["balanceAfter"], 300);
    let down = app
        .ok(
            Some(&admin.access),
            ADJUST,
            json!({ "u": u, "a": -100, "r": "correction" }),
        )
        .await;
    assert_eq!(down["adjustPoints"]["balanceAfter"], 200);
    assert_eq!(
        code(
            &app.gql(
                Some(&admin.access),
                ADJUST,
                json!({ "u": u, "a": -201, "r": "too much" })
            )
            .await
        ),
        "INSUFFICIENT_POINTS"
    );
    assert_eq!(
        code(
            &app.gql(Some(&admin.access), ADJUST, json!({ "u": u, "a": 0, "r": "x" }))
                .await
        ),
        "BAD_USER_INPUT"
    );
    assert_eq!(
        code(
            &app.gql(Some(&admin.access), ADJUST, json!({ "u": u, "a": 5, "r": " " }))
                .await
        ),
        "BAD_USER_INPUT"
    );
    assert_eq!(
        code(
            &app.gql(
                Some(&admin.access),
                ADJUST,
                json!({ "u": "99999", "a": 5, "r": "x" })
            )
            .await
        ),
        "NOT_FOUND"
    );
    assert_eq!(
        code(
            &app.gql(Some(&fan.access), ADJUST, json!({ "u": u, "a": 5, "r": "me" }))
                .await
        ),
        "FORBIDDEN"
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM audit_log WHERE action = 'adjust_points'")
            .await,
        2
    );
    app.assert_invariants().await;
}

#[tokio::test]
async fn the_ledger_is_append_only_and_balances_never_go_negative() {
    let app = TestApp::spawn().await;
    let fan = app.sign_up("fan@example.com").await;
    app.ok(Some(&fan.access), CHARGE, json!({ "a": 50, "k": "k" }))
        .await;
    let mut conn = app.state.db.get().await.unwrap();
    use diesel_async::RunQueryDsl;
    assert!(
        diesel::sql_query("UPDATE point_ledger SET amount = 5000")
            .execute(&mut *conn)
            .await
            .is_err()
    );
    assert!(
        diesel::sql_query("DELETE FROM point_ledger")
            .execute(&mut *conn)
            .await
            .is_err()
    );
    assert!(
        diesel::sql_query("UPDATE users SET points = -1")
            .execute(&mut *conn)
            .await
            .is_err()
    );
    drop(conn);
    app.assert_invariants().await;
}

#[tokio::test]
async fn point_history_pages_newest_first() {
    let app = TestApp::spawn().await;
    let fan = app.sign_up("fan@example.com").await;
    for i in 1..=7 {
        app.ok(Some(&fan.access), CHARGE, json!({ "a": i, "k": format!("k{i}") }))
            .await;
    }
    let q = "query($a: String) { pointHistory(first: 3, after: $a) { edges { node { amount } } pageInfo { hasNextPage endCursor } } }";
    let mut amounts = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = app.ok(Some(&fan.access), q, json!({ "a": after })).await;
        for e in page["pointHistory"]["edges"].as_array().unwrap() {
            amounts.push(e["node"]["amount"].as_i64().unwrap());
        }
        if !page["pointHistory"]["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = page["pointHistory"]["pageInfo"]["endCursor"]
            .as_str()
            .map(str::to_owned);
    }
    assert_eq!(amounts, vec![7, 6, 5, 4, 3, 2, 1]);
}
