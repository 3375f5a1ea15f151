//! The audit log for admins: names instead of bare ids, and filters by actor, action,
//! target and time.

use serde_json::{Value, json};

use crate::common::{TestApp, code, layout};

const AUDIT: &str = "query($f: AuditLogFilter) { auditLog(first: 50, filter: $f) { nodes {
    action actorId actor { id displayName email } targetType targetId targetName } } }";

async fn audit(app: &TestApp, token: &str, filter: Value) -> Vec<Value> {
    let body = app.gql(Some(token), AUDIT, json!({ "f": filter })).await;
    body["data"]["auditLog"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .clone()
}

fn actions(entries: &[Value]) -> Vec<&str> {
    entries.iter().map(|e| e["action"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn the_audit_log_names_actors_and_targets_and_filters() {
    let app = TestApp::spawn().await;
    let boss = app.user_with_role("boss@example.com", "admin").await;
    let ann = app.sign_up("ann@example.com").await;
    let bob = app.sign_up("bob@example.com").await;
    let t = Some(boss.access.as_str());
    app.ok(
        t,
        "mutation($u: ID!) { setUserRole(userId: $u, role: HOST) { id } }",
        json!({ "u": ann.id.to_string() }),
    )
    .await;
    for (who, amount) in [(bob.id, 500), (ann.id, 10)] {
        app.ok(
            t,
            "mutation($u: ID!, $a: Int!) { adjustPoints(userId: $u, amount: $a, reason: \"welcome\") { balanceAfter } }",
            json!({ "u": who.to_string(), "a": amount }),
        )
        .await;
    }
    // A host's cancellation is audited too, with the concert as its target.
    let show = app.show(layout(1, 4), 2).await;
    app.ok(
        Some(&show.host.access),
        "mutation($c: ID!) { cancelConcert(id: $c, reason: \"storm\") { id } }",
        json!({ "c": show.concert_id }),
    )
    .await;

    let all = audit(&app, &boss.access, json!(null)).await;
    assert_eq!(
        actions(&all),
        vec![
            "cancel_concert",
            "adjust_points",
            "adjust_points",
            "set_user_role"
        ]
    );
    assert_eq!(all[0]["targetName"], "Night Show");
    assert_eq!(all[0]["actor"]["id"], show.host.id.to_string());
    assert!(
        all[0]["actor"]["displayName"]
            .as_str()
            .unwrap()
            .starts_with("host")
    );
    assert_eq!(
        all[1]["actor"],
        json!({ "id": boss.id.to_string(), "displayName": "boss", "email": "boss@example.com" })
    );
    assert_eq!(all[1]["targetName"], "ann <ann@example.com>");
    assert_eq!(all[2]["targetName"], "bob <bob@example.com>");

    let only = |f: Value| {
        let app = &app;
        let token = boss.access.clone();
        async move {
            actions(&audit(app, &token, f).await)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        only(json!({ "action": "adjust_points" })).await,
        ["adjust_points", "adjust_points"]
    );
    assert_eq!(
        only(json!({ "targetType": "user", "targetId": bob.id.to_string() })).await,
        ["adjust_points"]
    );
    assert_eq!(only(json!({ "actor": "BOSS@" })).await.len(), 3);
    assert_eq!(
        only(json!({ "actorId": show.host.id.to_string() })).await,
        ["cancel_concert"]
    );
    assert!(
        only(json!({ "actor": "nobody%" })).await.is_empty(),
        "% is not a wildcard"
    );
    let now = chrono::Utc::now();
    assert!(
        only(json!({ "since": (now + chrono::Duration::minutes(1)).to_rfc3339() }))
            .await
            .is_empty()
    );
    assert!(
        only(json!({ "until": (now - chrono::Duration::hours(1)).to_rfc3339() }))
            .await
            .is_empty()
    );
    assert_eq!(
        only(json!({ "since": (now - chrono::Duration::hours(1)).to_rfc3339(), "until": (now + chrono::Duration::minutes(1)).to_rfc3339(), "action": "set_user_role" })).await,
        ["set_user_role"]
    );

    // Bad filters are refused with the field they name; the log is for admins only.
    let body = app
        .gql(
            t,
            AUDIT,
            json!({ "f": { "since": now.to_rfc3339(), "until": now.to_rfc3339() } }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    assert_eq!(body["errors"][0]["extensions"]["field"], "filter.until");
    let body = app.gql(t, AUDIT, json!({ "f": { "targetId": "x" } })).await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    let body = app
        .gql(
            Some(&ann.access),
            AUDIT,
            json!({ "f": { "action": "adjust_points" } }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN");
}
