//! Invited accounts are claimed (issue 24): `issueComplimentary` to a new e-mail hands the
//! host a one-time, expiring link; `claimAccount` sets the password with it and signs in.
//! Attacked here: reuse, a replaced token, an expired one, a tampered one, a token for an
//! account someone can already log into (there is none), guessing (rate limited), and the
//! database keeping only a hash.

use serde_json::{Value, json};

use crate::common::{PASSWORD, Show, TestApp, code, layout};

const COMP: &str = "mutation($s: ID!, $ids: [ID!]!, $e: String!) {
    issueComplimentary(scheduleId: $s, seatIds: $ids, email: $e) {
      reservation { id seatCount } claim { token url expiresAt } } }";
const CLAIM: &str = "mutation($t: String!, $p: String!, $n: String) {
    claimAccount(token: $t, password: $p, displayName: $n) {
      accessToken refreshToken user { id email displayName role } } }";
const NEW_PASSWORD: &str = "blue harbor 42";

async fn comp(app: &TestApp, show: &Show, seat: usize, email: &str) -> Value {
    app.ok(
        Some(&show.host.access),
        COMP,
        json!({ "s": show.schedule_id, "ids": [show.seats[seat]], "e": email }),
    )
    .await["issueComplimentary"]
        .clone()
}

async fn claim(app: &TestApp, token: &str, password: &str, name: Option<&str>) -> Value {
    app.gql(None, CLAIM, json!({ "t": token, "p": password, "n": name }))
        .await
}

fn message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn an_invited_guest_claims_the_account_once_and_it_becomes_ordinary() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(2, 5), 4).await;
    let issued = comp(&app, &show, 0, "Guest@Example.com").await;
    assert_eq!(issued["reservation"]["seatCount"], 1);
    let token = issued["claim"]["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("ct_"), "{issued}");
    assert_eq!(issued["claim"]["url"], format!("/claim?token={token}"));
    let expires: chrono::DateTime<chrono::Utc> =
        issued["claim"]["expiresAt"].as_str().unwrap().parse().unwrap();
    let week = chrono::Utc::now() + chrono::Duration::days(7);
    assert!(
        (expires - week).num_seconds().abs() < 60,
        "CLAIM_TOKEN_TTL_SECONDS' default: {expires}"
    );

    // Only a hash of the verifier is stored, nowhere the token itself.
    let verifier = token.rsplit('_').next().unwrap();
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM account_claims WHERE verifier_hash = sha256('{verifier}'::bytea)"
        ))
        .await,
        1
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM account_claims c WHERE c::text LIKE '%{verifier}%'"
        ))
        .await,
        0
    );

    // Before the claim: no login, no sign-up over it.
    assert_eq!(
        code(&app.log_in("guest@example.com", NEW_PASSWORD).await),
        "UNAUTHENTICATED"
    );
    let body = app
        .gql(
            None,
            "mutation($i: SignUpInput!) { signUp(input: $i) { accessToken } }",
            json!({ "i": { "email": "guest@example.com", "password": PASSWORD, "displayName": "Mallory" } }),
        )
        .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");

    // The holder's own mistakes do not spend the token.
    let body = claim(&app, &token, "short", None).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "password");
    let body = claim(&app, &token, "guestguest1", None).await;
    assert_eq!(
        code(&body),
        "BAD_USER_INPUT",
        "a password with the e-mail in it: {body}"
    );

    let body = claim(&app, &token, NEW_PASSWORD, Some("  Gina Guest ")).await;
    let payload = &body["data"]["claimAccount"];
    assert_eq!(payload["user"]["email"], "guest@example.com", "{body}");
    assert_eq!(payload["user"]["displayName"], "Gina Guest");
    assert_eq!(payload["user"]["role"], "USER");
    let access = payload["accessToken"].as_str().unwrap();
    let mine = app
        .ok(
            Some(access),
            "{ myReservations(first: 5) { nodes { complimentary tickets { status } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        mine["myReservations"]["nodes"],
        json!([{ "complimentary": true, "tickets": [{ "status": "VALID" }] }])
    );
    // The refresh token of that session works like any other.
    let refreshed = app
        .gql(
            None,
            "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }",
            json!({ "t": payload["refreshToken"] }),
        )
        .await;
    assert!(
        refreshed["data"]["refreshToken"]["accessToken"].is_string(),
        "{refreshed}"
    );

    // Used: once only, even with a new password.
    let body = claim(&app, &token, "another pass 7", None).await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    assert!(message(&body).contains("already used"), "{body}");
    assert!(app.log_in("guest@example.com", "another pass 7").await["errors"].is_array());

    // An ordinary account now: its password logs in, and a new comp gives no link (the
    // host cannot take the account over).
    let body = app.log_in("guest@example.com", NEW_PASSWORD).await;
    assert!(body["data"]["logIn"]["accessToken"].is_string(), "{body}");
    let again = comp(&app, &show, 1, "guest@example.com").await;
    assert_eq!(again["claim"], Value::Null, "{again}");

    // Audited, by the guest themselves.
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM audit_log WHERE action = 'claim_account' AND actor_id = {id}
             AND target_id = {id} AND details = '{{\"display_name_changed\": true}}'",
            id = payload["user"]["id"].as_str().unwrap()
        ))
        .await,
        1
    );
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM audit_log WHERE action = 'issue_complimentary'
             AND (details->>'claim_issued')::boolean"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_new_comp_replaces_the_link_and_existing_accounts_get_none() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(2, 5), 4).await;
    let first = comp(&app, &show, 0, "guest@example.com").await["claim"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = comp(&app, &show, 1, "guest@example.com").await["claim"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(first, second);
    let body = claim(&app, &first, NEW_PASSWORD, None).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "the replaced link: {body}");
    assert_eq!(message(&body), "invalid claim token");

    // A fan who signed up, and the host themselves: accounts with a password get no link.
    let fan = app.sign_up("fan@example.com").await;
    assert_eq!(
        comp(&app, &show, 2, "fan@example.com").await["claim"],
        Value::Null
    );
    let host = app
        .ok(Some(&show.host.access), "{ me { email } }", json!({}))
        .await["me"]["email"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(comp(&app, &show, 3, &host).await["claim"], Value::Null);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM account_claims WHERE user_id = {}",
            fan.id
        ))
        .await,
        0
    );

    // The newest link still works, with no display name (the e-mail's local part stays).
    let body = claim(&app, &second, NEW_PASSWORD, None).await;
    assert_eq!(
        body["data"]["claimAccount"]["user"]["displayName"], "guest",
        "{body}"
    );
}

#[tokio::test]
async fn expired_tampered_and_guessed_tokens_are_refused() {
    let app = TestApp::spawn_with(&[("LOGIN_MAX_FAILURES", "3")]).await;
    let show = app.show(layout(2, 5), 4).await;
    let token = comp(&app, &show, 0, "late@example.com").await["claim"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = comp(&app, &show, 1, "guessed@example.com").await["claim"]["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Expired: said so, and nothing set.
    app.count("WITH x AS (UPDATE account_claims SET expires_at = now() - interval '1 second' RETURNING 1) SELECT count(*) AS n FROM x")
        .await;
    let body = claim(&app, &token, NEW_PASSWORD, None).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    assert!(message(&body).contains("expired"), "{body}");
    // ... and a new comp renews it.
    let renewed = comp(&app, &show, 2, "late@example.com").await["claim"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = claim(&app, &renewed, NEW_PASSWORD, None).await;
    assert!(body["data"]["claimAccount"]["accessToken"].is_string(), "{body}");

    // Malformed and tampered tokens: the same answer as an unknown one.
    let mut flipped = other.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    for bad in ["ct_", "rt_abc", "ct_00_00"] {
        let body = claim(&app, bad, NEW_PASSWORD, None).await;
        assert_eq!(message(&body), "invalid claim token", "{bad}: {body}");
    }
    // Guessing one token's verifier: three tries (LOGIN_MAX_FAILURES), then RATE_LIMITED,
    // the right token included, as a login would be.
    for _ in 0..3 {
        let body = claim(&app, &flipped, NEW_PASSWORD, None).await;
        assert_eq!(message(&body), "invalid claim token", "{body}");
    }
    let body = claim(&app, &flipped, NEW_PASSWORD, None).await;
    assert_eq!(code(&body), "RATE_LIMITED", "{body}");
    let body = claim(&app, &other, NEW_PASSWORD, None).await;
    assert_eq!(code(&body), "RATE_LIMITED", "{body}");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM account_claims WHERE claimed_at IS NOT NULL")
            .await,
        1,
        "only the renewed link was spent"
    );
}

#[tokio::test]
async fn two_claims_with_one_token_spend_it_once() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(2, 5), 4).await;
    let token = comp(&app, &show, 0, "race@example.com").await["claim"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let tries = (0..5).map(|i| {
        let (app, token) = (&app, token.clone());
        async move { claim(app, &token, &format!("harbor pass {i}"), None).await }
    });
    let answers = futures_util::future::join_all(tries).await;
    let won: Vec<_> = answers
        .iter()
        .filter(|b| b["data"]["claimAccount"].is_object())
        .collect();
    assert_eq!(won.len(), 1, "{answers:?}");
    assert!(
        answers
            .iter()
            .filter(|b| b["errors"].is_array())
            .all(|b| code(b) == "CONFLICT"),
        "{answers:?}"
    );
}

#[tokio::test]
async fn a_locked_invited_account_cannot_be_claimed() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(2, 5), 4).await;
    let issued = comp(&app, &show, 0, "locked@example.com").await;
    let token = issued["claim"]["token"].as_str().unwrap().to_owned();
    app.count("WITH x AS (UPDATE users SET locked_at = now(), locked_reason = 'fraud' WHERE email = 'locked@example.com' RETURNING 1) SELECT count(*) AS n FROM x")
        .await;
    let body = claim(&app, &token, NEW_PASSWORD, None).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM account_claims WHERE claimed_at IS NULL")
            .await,
        1,
        "the link is not spent"
    );
}
