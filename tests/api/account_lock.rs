//! Locking an account (C19): a locked account cannot log in or refresh, its access tokens
//! are refused at once on every instance and its sockets close; locking and unlocking are
//! admins' and audited.

use serde_json::json;

use crate::{
    common::{PASSWORD, Session, TestApp, code},
    websocket::{connect, init, recv},
};

const LOCK: &str = "mutation($u: ID!, $r: String!) { lockAccount(userId: $u, reason: $r) { id lockedAt } }";
const UNLOCK: &str = "mutation($u: ID!) { unlockAccount(userId: $u) { id lockedAt } }";
const ME: &str = "{ me { id } }";
const REFRESH: &str = "mutation($r: String!) { refreshToken(refreshToken: $r) { accessToken refreshToken } }";

#[tokio::test]
async fn a_locked_account_is_shut_out_everywhere_until_unlocked() {
    let app = TestApp::spawn().await;
    let other_instance = app.second_instance(&[]).await;
    let admin = app.user_with_role("admin.lock@example.com", "admin").await;
    let fan = app.sign_up("fan.lock@example.com").await;
    let a = Some(admin.access.as_str());
    let f = Some(fan.access.as_str());
    assert_eq!(app.ok(f, ME, json!({})).await["me"]["id"], fan.id.to_string());
    assert_eq!(
        other_instance.ok(f, ME, json!({})).await["me"]["id"],
        fan.id.to_string()
    );
    // An open socket of the fan, on the other instance.
    let mut ws = connect(&other_instance, "graphql-transport-ws").await;
    assert_eq!(init(&mut ws, f).await["type"], "connection_ack");

    let locked = app
        .ok(
            a,
            LOCK,
            json!({ "u": fan.id.to_string(), "r": " chargeback fraud " }),
        )
        .await;
    assert!(locked["lockAccount"]["lockedAt"].is_string());

    // This instance refuses the token at once; the other within the announcement.
    assert_eq!(code(&app.gql(f, ME, json!({})).await), "UNAUTHENTICATED");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let body = other_instance.gql(f, ME, json!({})).await;
        if body["errors"].is_array() {
            assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the other instance still serves the locked account"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(recv(&mut ws).await["close"], 4403, "its socket closed");
    let mut ws = connect(&other_instance, "graphql-transport-ws").await;
    assert_eq!(init(&mut ws, f).await["close"], 4403, "and cannot open another");
    // Mutations too (a hold takes the batch's own account check; the edge refuses first).
    let body = app
        .gql(
            f,
            "mutation($a: Int!, $k: String!) { chargePoints(amount: $a, idempotencyKey: $k) { balanceAfter } }",
            json!({ "a": 10, "k": "k1" }),
        )
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");

    // No refresh, no login (the right password hears why; a wrong one hears nothing new).
    let body = app.gql(None, REFRESH, json!({ "r": fan.refresh })).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    let body = app.log_in("fan.lock@example.com", PASSWORD).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("locked"));
    let body = app.log_in("fan.lock@example.com", "wrong password 123").await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    assert_eq!(body["errors"][0]["message"], "invalid credentials");

    // Locking again changes nothing; the audit log has one entry, with the reason.
    let again = app
        .ok(a, LOCK, json!({ "u": fan.id.to_string(), "r": "again" }))
        .await;
    assert_eq!(
        again["lockAccount"]["lockedAt"],
        locked["lockAccount"]["lockedAt"]
    );
    let log = app
        .ok(
            a,
            "query($f: AuditLogFilter) { auditLog(filter: $f) { edges { node { action actor { id } targetType targetId targetName details createdAt } } } }",
            json!({ "f": { "action": "lock_account" } }),
        )
        .await;
    let entries = log["auditLog"]["edges"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    let e = &entries[0]["node"];
    assert_eq!(e["actor"]["id"], admin.id.to_string());
    assert_eq!(e["targetType"], "user");
    assert_eq!(e["targetId"], fan.id.to_string());
    assert_eq!(e["targetName"], "fan.lock <fan.lock@example.com>");
    assert_eq!(e["details"]["reason"], "chargeback fraud");
    assert_eq!(e["details"]["sessions_revoked"], 1);
    // Admins see the lock on the account.
    let users = app
        .ok(
            a,
            "query($s: String) { users(search: $s) { edges { node { id lockedAt } } } }",
            json!({ "s": "fan.lock" }),
        )
        .await;
    assert!(users["users"]["edges"][0]["node"]["lockedAt"].is_string());

    // Unlocked: a fresh login works on every instance; the old session stays over.
    let unlocked = app.ok(a, UNLOCK, json!({ "u": fan.id.to_string() })).await;
    assert!(unlocked["unlockAccount"]["lockedAt"].is_null());
    let body = app.gql(None, REFRESH, json!({ "r": fan.refresh })).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    let back = app.log_in("fan.lock@example.com", PASSWORD).await;
    let back = Session::from_payload(&back["data"]["logIn"]).expect("logs in again");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while other_instance.gql(Some(&back.access), ME, json!({})).await["errors"].is_array() {
        assert!(
            std::time::Instant::now() < deadline,
            "the other instance never let the account back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        app.count("SELECT count(*) AS n FROM audit_log WHERE action = 'unlock_account'")
            .await,
        1
    );
}

#[tokio::test]
async fn only_admins_lock_and_not_themselves() {
    let app = TestApp::spawn().await;
    let admin = app.user_with_role("admin.lock2@example.com", "admin").await;
    let host = app.user_with_role("host.lock2@example.com", "host").await;
    let fan = app.sign_up("fan.lock2@example.com").await;
    let vars = json!({ "u": fan.id.to_string(), "r": "spam" });
    assert_eq!(
        code(&app.gql(Some(&fan.access), LOCK, vars.clone()).await),
        "FORBIDDEN"
    );
    assert_eq!(
        code(&app.gql(Some(&host.access), LOCK, vars.clone()).await),
        "FORBIDDEN"
    );
    assert_eq!(code(&app.gql(None, LOCK, vars).await), "UNAUTHENTICATED");
    assert_eq!(
        code(
            &app.gql(Some(&host.access), UNLOCK, json!({ "u": fan.id.to_string() }))
                .await
        ),
        "FORBIDDEN"
    );
    let a = Some(admin.access.as_str());
    let body = app
        .gql(a, LOCK, json!({ "u": admin.id.to_string(), "r": "oops" }))
        .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    let body = app.gql(a, LOCK, json!({ "u": "999999", "r": "who" })).await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    let body = app
        .gql(a, LOCK, json!({ "u": fan.id.to_string(), "r": "  " }))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "reason");
    let body = app.gql(a, LOCK, json!({ "u": "abc", "r": "x" })).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    // Nothing was locked or audited by any of that; the fan goes on.
    assert_eq!(
        app.count("SELECT count(*) AS n FROM users WHERE locked_at IS NOT NULL")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM audit_log WHERE action LIKE '%lock%'")
            .await,
        0
    );
    assert!(app.gql(Some(&fan.access), ME, json!({})).await["errors"].is_null());
    // Unlocking an account that is not locked changes nothing.
    let same = app.ok(a, UNLOCK, json!({ "u": fan.id.to_string() })).await;
    assert!(same["unlockAccount"]["lockedAt"].is_null());
    assert_eq!(
        app.count("SELECT count(*) AS n FROM audit_log WHERE action LIKE '%lock%'")
            .await,
        0
    );
}

#[tokio::test]
async fn an_instance_started_after_a_lock_reads_it_from_the_database() {
    let app = TestApp::spawn().await;
    let admin = app.user_with_role("admin.lock3@example.com", "admin").await;
    let fan = app.sign_up("fan.lock3@example.com").await;
    app.ok(
        Some(&admin.access),
        LOCK,
        json!({ "u": fan.id.to_string(), "r": "missed" }),
    )
    .await;
    // An instance started after the lock reads it from the database, not from the hub.
    let late = app.second_instance(&[]).await;
    assert_eq!(
        code(&late.gql(Some(&fan.access), ME, json!({})).await),
        "UNAUTHENTICATED"
    );
}

#[tokio::test]
async fn tokens_issued_before_a_lock_stay_refused_after_the_unlock_on_every_instance() {
    let app = TestApp::spawn().await;
    let other_instance = app.second_instance(&[]).await;
    let admin = app.user_with_role("admin.lock4@example.com", "admin").await;
    let fan = app.sign_up("fan.lock4@example.com").await;
    // A second session, logged in on the other instance, and a token minted without one.
    let second = other_instance.log_in("fan.lock4@example.com", PASSWORD).await;
    let second = Session::from_payload(&second["data"]["logIn"]).unwrap();
    let (bare, _) = app.state.jwt.issue(fan.id, boxoffice::auth::Role::User).unwrap();
    let old = [fan.access.as_str(), second.access.as_str(), bare.as_str()];
    for t in old {
        assert!(app.gql(Some(t), ME, json!({})).await["errors"].is_null());
    }

    let a = Some(admin.access.as_str());
    app.ok(a, LOCK, json!({ "u": fan.id.to_string(), "r": "stolen phone" }))
        .await;
    // Unlocked at once, from the other instance.
    other_instance
        .ok(a, UNLOCK, json!({ "u": fan.id.to_string() }))
        .await;
    let back = app.log_in("fan.lock4@example.com", PASSWORD).await;
    let back = Session::from_payload(&back["data"]["logIn"]).expect("logs in again");
    // Once both instances let the new session in, they have read the unlock...
    for instance in [&app, &other_instance] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while instance.gql(Some(&back.access), ME, json!({})).await["errors"].is_array() {
            assert!(std::time::Instant::now() < deadline, "the new session is refused");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    // ... and every token from before the lock is still refused, over HTTP and sockets.
    let late = app.second_instance(&[]).await;
    for instance in [&app, &other_instance, &late] {
        for t in old {
            let body = instance.gql(Some(t), ME, json!({})).await;
            assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
        }
        let mut ws = connect(instance, "graphql-transport-ws").await;
        assert_eq!(init(&mut ws, Some(&fan.access)).await["close"], 4403);
    }
    assert!(late.gql(Some(&back.access), ME, json!({})).await["errors"].is_null());
    // So are the sessions' refresh tokens.
    for r in [&fan.refresh, &second.refresh] {
        let body = other_instance.gql(None, REFRESH, json!({ "r": r })).await;
        assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    }
    // The new session refreshes as usual.
    let body = other_instance
        .gql(None, REFRESH, json!({ "r": back.refresh }))
        .await;
    assert!(body["data"]["refreshToken"]["accessToken"].is_string(), "{body}");
}

/// Two admins lock the same account at the same moment, then unlock it so, five times:
/// each lock and each unlock is made and audited once, not once per request.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_locks_and_unlocks_are_audited_once() {
    let app = TestApp::spawn().await;
    let a = app.user_with_role("admin.race1@example.com", "admin").await;
    let b = app.user_with_role("admin.race2@example.com", "admin").await;
    let fan = app.sign_up("fan.race@example.com").await;
    let user = fan.id.to_string();
    for _ in 0..5 {
        let vars = json!({ "u": user, "r": "spam" });
        let (x, y) = tokio::join!(
            app.ok(Some(&a.access), LOCK, vars.clone()),
            app.ok(Some(&b.access), LOCK, vars.clone())
        );
        assert!(x["lockAccount"]["lockedAt"].is_string());
        assert!(y["lockAccount"]["lockedAt"].is_string());
        let vars = json!({ "u": user });
        let (x, y) = tokio::join!(
            app.ok(Some(&a.access), UNLOCK, vars.clone()),
            app.ok(Some(&b.access), UNLOCK, vars.clone())
        );
        assert!(x["unlockAccount"]["lockedAt"].is_null());
        assert!(y["unlockAccount"]["lockedAt"].is_null());
    }
    for action in ["lock_account", "unlock_account"] {
        assert_eq!(
            app.count(&format!(
                "SELECT count(*) AS n FROM audit_log WHERE action = '{action}'"
            ))
            .await,
            5,
            "{action}"
        );
    }
}
