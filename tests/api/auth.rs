//! Accounts and tokens (C1) over real HTTP.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::common::{JWT_SECRET, PASSWORD, TestApp, code};

const ME: &str = "{ me { id email displayName role points } }";

#[tokio::test]
async fn sign_up_log_in_and_me() {
    let app = TestApp::spawn().await;
    let s = app.sign_up("Alice@Example.com").await;
    let me = app.gql(Some(&s.access), ME, json!({})).await;
    assert_eq!(
        me["data"]["me"],
        json!({ "id": s.id.to_string(), "email": "alice@example.com", "displayName": "Alice", "role": "USER", "points": 0 })
    );
    let login = app.log_in("ALICE@example.com", PASSWORD).await;
    let token = login["data"]["logIn"]["accessToken"].as_str().unwrap();
    let me = app.gql(Some(token), ME, json!({})).await;
    assert_eq!(me["data"]["me"]["id"], s.id.to_string());

    // Nothing secret is stored in the clear.
    let mut conn = app.state.db.get().await.unwrap();
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    let hash: String = boxoffice::schema::users::table
        .select(boxoffice::schema::users::password_hash)
        .first(&mut *conn)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"));
}

#[tokio::test]
async fn sign_up_rejects_bad_input_and_duplicates() {
    let app = TestApp::spawn().await;
    app.sign_up("bob@example.com").await;
    let m = "mutation($i: SignUpInput!) { signUp(input: $i) { accessToken } }";
    let cases = [
        (
            json!({ "email": "BOB@example.com", "password": PASSWORD, "displayName": "B" }),
            "CONFLICT",
            None,
        ),
        (
            json!({ "email": "carol@example.com", "password": "short1", "displayName": "C" }),
            "BAD_USER_INPUT",
            Some("input.password"),
        ),
        (
            json!({ "email": "carol@example.com", "password": "allletters", "displayName": "C" }),
            "BAD_USER_INPUT",
            Some("input.password"),
        ),
        (
            json!({ "email": "not-an-email", "password": PASSWORD, "displayName": "C" }),
            "BAD_USER_INPUT",
            Some("input.email"),
        ),
        (
            json!({ "email": "carol@example.com", "password": PASSWORD, "displayName": "  " }),
            "BAD_USER_INPUT",
            Some("input.displayName"),
        ),
    ];
    for (input, expected, field) in cases {
        let body = app.gql(None, m, json!({ "i": input })).await;
        assert_eq!(code(&body), expected, "{input} -> {body}");
        if let Some(field) = field {
            assert_eq!(body["errors"][0]["extensions"]["field"], field);
        }
        assert!(body["data"].is_null());
    }
    // Clients cannot choose their role.
    let body = app
        .gql(None, m, json!({ "i": { "email": "eve@example.com", "password": PASSWORD, "displayName": "E", "role": "ADMIN" } }))
        .await;
    assert!(body["errors"].is_array());
    // Nothing half-written: only bob exists.
    let mut conn = app.state.db.get().await.unwrap();
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    let n: i64 = boxoffice::schema::users::table
        .count()
        .get_result(&mut *conn)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn every_login_failure_says_invalid_credentials() {
    let app = TestApp::spawn().await;
    app.sign_up("dave@example.com").await;
    for (email, password) in [
        ("dave@example.com", "wrong password 1"),
        ("nobody@example.com", PASSWORD),
        ("", ""),
    ] {
        let body = app.log_in(email, password).await;
        assert_eq!(code(&body), "UNAUTHENTICATED");
        assert_eq!(body["errors"][0]["message"], "invalid credentials");
    }
}

fn claims(sub: i64, exp_offset: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({ "sub": sub.to_string(), "role": "admin", "iss": "boxoffice", "iat": now, "exp": now + exp_offset })
}

fn unsigned(header: Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string()),
        signature
    )
}

#[tokio::test]
async fn bad_tokens_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let s = app.sign_up("frank@example.com").await;
    let key = EncodingKey::from_secret(JWT_SECRET.as_bytes());
    let expired = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(s.id, -120), &key).unwrap();
    let hs512 = jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims(s.id, 600), &key).unwrap();
    let wrong_secret = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(s.id, 600),
        &EncodingKey::from_secret(b"another-secret-another-secret-another-secret"),
    )
    .unwrap();
    // Tampered: same signature, payload promoted to admin.
    let mut parts: Vec<String> = s.access.split('.').map(str::to_owned).collect();
    parts[1] = B64.encode(claims(s.id, 600).to_string());
    let tampered = parts.join(".");
    let none = unsigned(json!({ "alg": "none", "typ": "JWT" }), &claims(s.id, 600), "");
    let rs256 = unsigned(
        json!({ "alg": "RS256", "typ": "JWT" }),
        &claims(s.id, 600),
        &B64.encode([7u8; 256]),
    );
    for (name, token) in [
        ("expired", expired),
        ("hs512", hs512),
        ("wrong secret", wrong_secret),
        ("tampered", tampered),
        ("none", none),
        ("rs256", rs256),
        ("garbage", "garbage".to_owned()),
    ] {
        let body = app.gql(Some(&token), ME, json!({})).await;
        assert_eq!(code(&body), "UNAUTHENTICATED", "{name}: {body}");
    }
    let body = app.gql(None, ME, json!({})).await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
    // A malformed Authorization header (not Bearer) is no identity either.
    let resp: Value = app
        .http
        .post(app.url("/graphql"))
        .header("authorization", format!("Basic {}", s.access))
        .json(&json!({ "query": ME }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(code(&resp), "UNAUTHENTICATED");
}

const REFRESH: &str =
    "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken user { id } } }";

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = TestApp::spawn().await;
    let s = app.sign_up("grace@example.com").await;
    let first = app.gql(None, REFRESH, json!({ "t": s.refresh })).await;
    let r1 = first["data"]["refreshToken"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(r1, s.refresh);
    let access = first["data"]["refreshToken"]["accessToken"].as_str().unwrap();
    assert_eq!(
        app.gql(Some(access), ME, json!({})).await["data"]["me"]["id"],
        s.id.to_string()
    );
    let second = app.gql(None, REFRESH, json!({ "t": r1 })).await;
    let r2 = second["data"]["refreshToken"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();

    // The original token was used: presenting it again is theft, and revokes r2 too.
    let reuse = app.gql(None, REFRESH, json!({ "t": s.refresh })).await;
    assert_eq!(code(&reuse), "UNAUTHENTICATED");
    let after = app.gql(None, REFRESH, json!({ "t": r2 })).await;
    assert_eq!(code(&after), "UNAUTHENTICATED", "the whole family is revoked");

    // Another login is another family, untouched.
    let login = app.log_in("grace@example.com", PASSWORD).await;
    let other = login["data"]["logIn"]["refreshToken"].as_str().unwrap();
    let ok = app.gql(None, REFRESH, json!({ "t": other })).await;
    assert!(ok["errors"].is_null(), "{ok}");

    for junk in ["", "rt_0000", "not a token"] {
        assert_eq!(
            code(&app.gql(None, REFRESH, json!({ "t": junk })).await),
            "UNAUTHENTICATED"
        );
    }
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_succeed_once() {
    let app = TestApp::spawn().await;
    let s = app.sign_up("heidi@example.com").await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let http = app.http.clone();
            let url = app.url("/graphql");
            let t = s.refresh.clone();
            tokio::spawn(async move {
                let body: Value = http
                    .post(url)
                    .json(&json!({ "query": REFRESH, "variables": { "t": t } }))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                body["errors"].is_null()
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
}

#[tokio::test]
async fn log_out_ends_the_session() {
    let app = TestApp::spawn().await;
    let s = app.sign_up("ivan@example.com").await;
    let m = "mutation($t: String!) { logOut(refreshToken: $t) }";
    assert_eq!(
        app.gql(None, m, json!({ "t": s.refresh })).await["data"]["logOut"],
        true
    );
    assert_eq!(
        code(&app.gql(None, REFRESH, json!({ "t": s.refresh })).await),
        "UNAUTHENTICATED"
    );
    // Idempotent.
    assert_eq!(
        app.gql(None, m, json!({ "t": s.refresh })).await["data"]["logOut"],
        true
    );
}

#[tokio::test]
async fn repeated_login_failures_are_rate_limited_per_account() {
    let app = TestApp::spawn_with(&[("LOGIN_MAX_FAILURES", "3")]).await;
    app.sign_up("judy@example.com").await;
    for _ in 0..3 {
        assert_eq!(
            code(&app.log_in("judy@example.com", "wrong password 1").await),
            "UNAUTHENTICATED"
        );
    }
    let limited = app.log_in("judy@example.com", PASSWORD).await;
    assert_eq!(
        code(&limited),
        "RATE_LIMITED",
        "even the right password waits: {limited}"
    );
    assert!(limited["errors"][0]["extensions"]["retryAfter"].as_u64().unwrap() > 0);
    // Other accounts are not affected.
    app.sign_up("ken@example.com").await;
    assert!(app.log_in("ken@example.com", PASSWORD).await["errors"].is_null());
}

#[tokio::test]
async fn login_failures_are_rate_limited_per_client_address() {
    let app = TestApp::spawn_with(&[("LOGIN_MAX_FAILURES", "100"), ("LOGIN_MAX_FAILURES_PER_IP", "4")]).await;
    app.sign_up("leo@example.com").await;
    for i in 0..4 {
        let body = app
            .log_in(&format!("guess{i}@example.com"), "wrong password 1")
            .await;
        assert_eq!(code(&body), "UNAUTHENTICATED");
    }
    assert_eq!(
        code(&app.log_in("leo@example.com", PASSWORD).await),
        "RATE_LIMITED"
    );
}

#[tokio::test]
async fn a_success_resets_the_account_counter() {
    let app = TestApp::spawn_with(&[("LOGIN_MAX_FAILURES", "3")]).await;
    app.sign_up("mia@example.com").await;
    for _ in 0..2 {
        app.log_in("mia@example.com", "wrong password 1").await;
    }
    assert!(app.log_in("mia@example.com", PASSWORD).await["errors"].is_null());
    for _ in 0..2 {
        assert_eq!(
            code(&app.log_in("mia@example.com", "wrong password 1").await),
            "UNAUTHENTICATED"
        );
    }
}
