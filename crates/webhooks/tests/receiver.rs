//! The delivery client against a real receiver on 127.0.0.1: the receiver checks each
//! signature with the secret the way a host's code would, and the client's bounds (policy,
//! redirects, timeout, answer size) hold over a real socket.
#![expect(clippy::unwrap_used, reason = "a test fails loudly")]

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
    routing::post,
};
use boxoffice_webhooks::{
    CloudEvent, DeliveryClient, DeliveryConfig, EventType, Outcome, Secret, Signed, UrlPolicy,
    signature::{self, DEFAULT_TOLERANCE_SECONDS},
};

/// (webhook-id, signature valid, body) of one POST.
type Seen = (String, bool, Vec<u8>);

#[derive(Clone)]
struct Receiver {
    secret: Secret,
    /// Every POST to /ok.
    seen: Arc<Mutex<Vec<Seen>>>,
    hits: Arc<Mutex<u32>>,
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn ok(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let now = chrono::Utc::now().timestamp();
    let id = header(&headers, "webhook-id");
    let valid = signature::verify(
        &r.secret,
        &id,
        &header(&headers, "webhook-timestamp"),
        &header(&headers, "webhook-signature"),
        &body,
        now,
        DEFAULT_TOLERANCE_SECONDS,
    )
    .is_ok();
    r.seen.lock().unwrap().push((id, valid, body.to_vec()));
    if valid {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::UNAUTHORIZED
    }
}

async fn count(State(r): State<Receiver>) -> StatusCode {
    *r.hits.lock().unwrap() += 1;
    StatusCode::OK
}

async fn start(secret: Secret) -> (SocketAddr, Receiver) {
    let receiver = Receiver {
        secret,
        seen: Arc::default(),
        hits: Arc::default(),
    };
    let app = Router::new()
        .route("/ok", post(ok))
        .route("/elsewhere", post(count))
        .route(
            "/redirect",
            post(|| async { (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, "/elsewhere")]) }),
        )
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                StatusCode::OK
            }),
        )
        .route(
            "/endless",
            post(|| async {
                // An answer that never ends: only a bounded read finishes.
                let chunks = futures_util::stream::repeat_with(|| {
                    Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 16384]))
                });
                (StatusCode::OK, Body::from_stream(chunks)).into_response()
            }),
        )
        .route("/gone", post(|| async { StatusCode::GONE }))
        .route("/broken", post(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, receiver)
}

fn client(allow_private: bool) -> DeliveryClient {
    DeliveryClient::new(DeliveryConfig {
        policy: UrlPolicy { allow_private },
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_millis(1500),
        max_response_bytes: 4096,
    })
    .unwrap()
}

fn event() -> (CloudEvent, Vec<u8>) {
    let event = CloudEvent::new(
        "0193a1b2-0000-7000-8000-000000000042",
        "/boxoffice",
        EventType::ReservationConfirmed,
        chrono::Utc::now(),
        "reservations/42",
        serde_json::json!({ "reservationId": "42", "status": "CONFIRMED" }),
    );
    let body = event.to_body();
    (event, body)
}

fn sign(secrets: &[Secret], event: &CloudEvent, body: &[u8]) -> Signed {
    Signed::new(secrets, &event.id, chrono::Utc::now().timestamp(), body).unwrap()
}

#[tokio::test]
async fn the_receiver_verifies_the_signature_with_its_secret() {
    let secret = Secret::generate();
    let (addr, receiver) = start(secret.clone()).await;
    let (event, body) = event();
    let attempt = client(true)
        .deliver(
            &format!("http://{addr}/ok"),
            &sign(&[secret], &event, &body),
            body.clone(),
        )
        .await;
    assert_eq!(attempt.outcome, Outcome::Delivered);
    assert_eq!(attempt.status, Some(204));
    let seen = receiver.seen.lock().unwrap().clone();
    assert_eq!(seen, vec![(event.id.clone(), true, body.clone())]);
    let parsed: CloudEvent = serde_json::from_slice(&seen[0].2).unwrap();
    assert_eq!(parsed.event_type, EventType::ReservationConfirmed);
}

#[tokio::test]
async fn a_message_signed_with_another_secret_is_refused_by_the_receiver() {
    let (addr, receiver) = start(Secret::generate()).await;
    let (event, body) = event();
    let wrong = sign(&[Secret::generate()], &event, &body);
    let attempt = client(true)
        .deliver(&format!("http://{addr}/ok"), &wrong, body)
        .await;
    assert_eq!(attempt.outcome, Outcome::Failed("HTTP 401".into()));
    assert!(!receiver.seen.lock().unwrap()[0].1);
}

#[tokio::test]
async fn during_a_rotation_either_secret_verifies() {
    let old = Secret::generate();
    let new = Secret::generate();
    let (addr, receiver) = start(old.clone()).await;
    let (event, body) = event();
    let attempt = client(true)
        .deliver(
            &format!("http://{addr}/ok"),
            &sign(&[new, old], &event, &body),
            body,
        )
        .await;
    assert_eq!(attempt.outcome, Outcome::Delivered);
    assert!(receiver.seen.lock().unwrap()[0].1);
}

#[tokio::test]
async fn private_addresses_are_refused_before_any_connection() {
    let secret = Secret::generate();
    let (addr, receiver) = start(secret.clone()).await;
    let (event, body) = event();
    let signed = sign(&[secret], &event, &body);
    let strict = client(false);
    let literal = strict
        .deliver(&format!("http://{addr}/ok"), &signed, body.clone())
        .await;
    assert!(
        matches!(&literal.outcome, Outcome::Failed(why) if why.contains("127.0.0.1") && why.contains("private")),
        "{literal:?}"
    );
    // A name goes through the policy's resolver: the address it would connect to is the
    // one refused, so a DNS answer that changes after a check cannot slip through.
    let named = strict
        .deliver(&format!("http://localhost:{}/ok", addr.port()), &signed, body)
        .await;
    assert!(
        matches!(&named.outcome, Outcome::Failed(why) if why.contains("private")),
        "{named:?}"
    );
    assert_eq!(named.status, None);
    assert!(
        receiver.seen.lock().unwrap().is_empty(),
        "the receiver was reached"
    );
}

#[tokio::test]
async fn a_redirect_is_a_failure_and_is_not_followed() {
    let secret = Secret::generate();
    let (addr, receiver) = start(secret.clone()).await;
    let (event, body) = event();
    let attempt = client(true)
        .deliver(
            &format!("http://{addr}/redirect"),
            &sign(&[secret], &event, &body),
            body,
        )
        .await;
    assert_eq!(attempt.status, Some(307));
    assert!(matches!(attempt.outcome, Outcome::Failed(ref why) if why.contains("redirect 307")));
    assert_eq!(*receiver.hits.lock().unwrap(), 0, "the redirect was followed");
}

#[tokio::test]
async fn a_hanging_receiver_costs_one_timeout() {
    let secret = Secret::generate();
    let (addr, _receiver) = start(secret.clone()).await;
    let (event, body) = event();
    let attempt = client(true)
        .deliver(
            &format!("http://{addr}/slow"),
            &sign(&[secret], &event, &body),
            body,
        )
        .await;
    assert_eq!(attempt.outcome, Outcome::Failed("timed out".into()));
    assert!(attempt.latency < Duration::from_secs(3), "{:?}", attempt.latency);
}

#[tokio::test]
async fn an_endless_answer_is_read_only_up_to_the_bound() {
    let secret = Secret::generate();
    let (addr, _receiver) = start(secret.clone()).await;
    let (event, body) = event();
    let attempt = client(true)
        .deliver(
            &format!("http://{addr}/endless"),
            &sign(&[secret], &event, &body),
            body,
        )
        .await;
    assert_eq!(attempt.outcome, Outcome::Delivered);
    assert!(attempt.latency < Duration::from_secs(1), "{:?}", attempt.latency);
}

#[tokio::test]
async fn gone_and_server_errors_are_told_apart() {
    let secret = Secret::generate();
    let (addr, _receiver) = start(secret.clone()).await;
    let (event, body) = event();
    let signed = sign(&[secret], &event, &body);
    let c = client(true);
    assert_eq!(
        c.deliver(&format!("http://{addr}/gone"), &signed, body.clone())
            .await
            .outcome,
        Outcome::Gone
    );
    let broken = c
        .deliver(&format!("http://{addr}/broken"), &signed, body.clone())
        .await;
    assert_eq!(
        (broken.outcome, broken.status),
        (Outcome::Failed("HTTP 500".into()), Some(500))
    );
    // Nobody listening: a failure with no status, retried later.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let refused = c
        .deliver(&format!("http://127.0.0.1:{port}/ok"), &signed, body)
        .await;
    assert_eq!(
        (refused.outcome, refused.status),
        (Outcome::Failed("could not connect".into()), None)
    );
}
