//! Roles and guards (C2): who may do what, and role changes taking effect at once.

use serde_json::json;

use crate::common::{TestApp, code};

const USERS: &str = "query($s: String, $f: Int, $a: String) { users(search: $s, first: $f, after: $a) { edges { cursor node { id email } } pageInfo { hasNextPage endCursor } } }";
const SET_ROLE: &str = "mutation($u: ID!, $r: Role!) { setUserRole(userId: $u, role: $r) { id role } }";

#[tokio::test]
async fn users_and_hosts_cannot_run_admin_operations() {
    let app = TestApp::spawn().await;
    let user = app.sign_up("user@example.com").await;
    let host = app.user_with_role("host@example.com", "host").await;
    for token in [&user.access, &host.access] {
        assert_eq!(code(&app.gql(Some(token), USERS, json!({})).await), "FORBIDDEN");
        let body = app
            .gql(
                Some(token),
                SET_ROLE,
                json!({ "u": user.id.to_string(), "r": "ADMIN" }),
            )
            .await;
        assert_eq!(code(&body), "FORBIDDEN");
    }
    assert_eq!(code(&app.gql(None, USERS, json!({})).await), "UNAUTHENTICATED");
    // Nobody was promoted.
    let me = app.gql(Some(&user.access), "{ me { role } }", json!({})).await;
    assert_eq!(me["data"]["me"]["role"], "USER");
}

#[tokio::test]
async fn role_changes_take_effect_on_the_next_request() {
    let app = TestApp::spawn().await;
    let admin = app.user_with_role("root@example.com", "admin").await;
    let user = app.sign_up("pat@example.com").await;

    // The user's token still says USER; the promotion counts anyway.
    assert_eq!(
        code(&app.gql(Some(&user.access), USERS, json!({})).await),
        "FORBIDDEN"
    );
    let body = app
        .gql(
            Some(&admin.access),
            SET_ROLE,
            json!({ "u": user.id.to_string(), "r": "ADMIN" }),
        )
        .await;
    assert_eq!(body["data"]["setUserRole"]["role"], "ADMIN", "{body}");
    assert!(app.gql(Some(&user.access), USERS, json!({})).await["errors"].is_null());

    // And a demotion takes the power away although the token says ADMIN.
    let body = app
        .gql(
            Some(&user.access),
            SET_ROLE,
            json!({ "u": admin.id.to_string(), "r": "USER" }),
        )
        .await;
    assert_eq!(body["data"]["setUserRole"]["role"], "USER");
    assert_eq!(
        code(&app.gql(Some(&admin.access), USERS, json!({})).await),
        "FORBIDDEN"
    );

    // Refreshing keeps the current role (roles survive a token refresh).
    let login = app.log_in("pat@example.com", crate::common::PASSWORD).await;
    let refresh = login["data"]["logIn"]["refreshToken"].as_str().unwrap();
    let r = app
        .gql(
            None,
            "mutation($t: String!) { refreshToken(refreshToken: $t) { user { role } } }",
            json!({ "t": refresh }),
        )
        .await;
    assert_eq!(r["data"]["refreshToken"]["user"]["role"], "ADMIN");
}

#[tokio::test]
async fn role_changes_are_audited_and_validated() {
    let app = TestApp::spawn().await;
    let admin = app.user_with_role("root@example.com", "admin").await;
    let user = app.sign_up("quinn@example.com").await;
    app.gql(
        Some(&admin.access),
        SET_ROLE,
        json!({ "u": user.id.to_string(), "r": "HOST" }),
    )
    .await;

    let mut conn = app.state.db.get().await.unwrap();
    use boxoffice::schema::audit_log::dsl::*;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    let rows: Vec<(Option<i64>, String, Option<i64>, serde_json::Value)> = audit_log
        .select((actor_id, action, target_id, details))
        .load(&mut *conn)
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![(
            Some(admin.id),
            "set_user_role".to_owned(),
            Some(user.id),
            json!({ "from": "user", "to": "host" })
        )]
    );

    for (u, expected) in [
        ("999999", "NOT_FOUND"),
        ("abc", "BAD_USER_INPUT"),
        ("-1", "BAD_USER_INPUT"),
    ] {
        let body = app
            .gql(Some(&admin.access), SET_ROLE, json!({ "u": u, "r": "HOST" }))
            .await;
        assert_eq!(code(&body), expected, "{u}");
    }
    let own = app
        .gql(
            Some(&admin.access),
            SET_ROLE,
            json!({ "u": admin.id.to_string(), "r": "USER" }),
        )
        .await;
    assert_eq!(code(&own), "CONFLICT");
}

#[tokio::test]
async fn admins_search_and_page_through_users() {
    let app = TestApp::spawn().await;
    let admin = app.user_with_role("root@example.com", "admin").await;
    for i in 0..7 {
        app.sign_up(&format!("fan{i}@example.com")).await;
    }
    app.sign_up("other@example.org").await;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let body = app
            .gql(
                Some(&admin.access),
                USERS,
                json!({ "s": "FAN", "f": 3, "a": after }),
            )
            .await;
        let conn = &body["data"]["users"];
        for e in conn["edges"].as_array().unwrap() {
            seen.push(e["node"]["email"].as_str().unwrap().to_owned());
        }
        if !conn["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = conn["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    let expected: Vec<String> = (0..7).map(|i| format!("fan{i}@example.com")).collect();
    assert_eq!(seen, expected, "complete, ordered, no duplicates");

    assert_eq!(
        code(&app.gql(Some(&admin.access), USERS, json!({ "f": 101 })).await),
        "BAD_USER_INPUT"
    );
    assert_eq!(
        code(&app.gql(Some(&admin.access), USERS, json!({ "a": "bogus" })).await),
        "BAD_USER_INPUT"
    );
    // LIKE wildcards are searched literally.
    let body = app.gql(Some(&admin.access), USERS, json!({ "s": "%" })).await;
    assert_eq!(body["data"]["users"]["edges"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn private_fields_are_private() {
    let app = TestApp::spawn().await;
    let admin = app.user_with_role("root@example.com", "admin").await;
    app.sign_up("rita@example.com").await;
    let body = app
        .gql(
            Some(&admin.access),
            "{ users(search: \"rita\") { edges { node { email points } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["users"]["edges"][0]["node"]["email"],
        "rita@example.com"
    );
}

#[tokio::test]
async fn create_admin_command_creates_and_never_promotes_silently() {
    let app = TestApp::spawn().await;
    let existing = app.sign_up("sam@example.com").await;
    let run = |email: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_boxoffice"))
            .args(["create-admin", "--email", email, "--password", "admin password 1"])
            .env("DATABASE_URL", &app.db.url)
            .env("JWT_SECRET", crate::common::JWT_SECRET)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let first = run("boss@example.com");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("created"));
    // Run again: the account exists, so it is refused (see abuse::finding_7 for the reset).
    let again = run("boss@example.com");
    assert!(!again.status.success());
    let login = app.log_in("boss@example.com", "admin password 1").await;
    let token = login["data"]["logIn"]["accessToken"].as_str().unwrap();
    assert!(app.gql(Some(token), USERS, json!({})).await["errors"].is_null());
    // An existing account is not promoted: whoever signed it up chose its password.
    assert!(!run("sam@example.com").status.success());
    assert!(!app.gql(Some(&existing.access), USERS, json!({})).await["errors"].is_null());
    let weak = std::process::Command::new(env!("CARGO_BIN_EXE_boxoffice"))
        .args(["create-admin", "--email", "new@example.com", "--password", "weak"])
        .env("DATABASE_URL", &app.db.url)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(!weak.status.success());
}
