//! A local stand-in for Toss Payments' API, speaking its protocol: `POST
//! /v1/payments/confirm`, `GET /v1/payments/{paymentKey}`, `GET
//! /v1/payments/orders/{orderId}`, `POST /v1/payments/{paymentKey}/cancel`, HTTP Basic auth
//! with the secret key and an empty password, `Idempotency-Key` on POSTs, errors as
//! `{ code, message }`. It also plays the fan's browser (`authorize`: the payment window
//! was completed) and the provider's dashboard (`cancel_from_dashboard`), and sends
//! `PAYMENT_STATUS_CHANGED` webhooks like Toss does.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::{get, post},
};
use base64::Engine as _;
use serde_json::{Value, json};

pub const SECRET_KEY: &str = "test_sk_boxoffice_fake";

#[derive(Clone, Debug)]
pub struct FakePayment {
    pub order_id: String,
    pub amount: i64,
    pub status: &'static str,
}

#[derive(Default)]
struct Inner {
    payments: HashMap<String, FakePayment>,
    /// Answers already given, by Idempotency-Key.
    answered: HashMap<String, (StatusCode, Value)>,
    /// Sleep this long before answering a confirm (after applying it): a provider that
    /// confirmed but whose answer arrives after our timeout.
    confirm_delay: Option<Duration>,
    cancel_delay: Option<Duration>,
}

#[derive(Clone)]
pub struct FakeToss {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    /// Confirm calls received, and payments actually captured (DONE).
    pub confirms: Arc<AtomicU32>,
    pub captures: Arc<AtomicU32>,
    http: reqwest::Client,
}

static KEYS: AtomicU32 = AtomicU32::new(0);

type Answer = (StatusCode, Json<Value>);

fn failure(status: StatusCode, code: &str, message: &str) -> Answer {
    (status, Json(json!({ "code": code, "message": message })))
}

fn payment_json(key: &str, p: &FakePayment) -> Value {
    json!({
        "mId": "tvivarepublica", "version": "2022-11-16", "paymentKey": key, "orderId": p.order_id,
        "orderName": "boxoffice points", "currency": "KRW", "method": "카드", "status": p.status,
        "totalAmount": p.amount, "balanceAmount": if p.status == "CANCELED" { 0 } else { p.amount },
        "requestedAt": "2026-12-05T10:00:00+09:00", "approvedAt": null,
    })
}

fn authorized(headers: &HeaderMap) -> bool {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{SECRET_KEY}:"))
    );
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str())
}

impl FakeToss {
    pub async fn start() -> Self {
        let fake = Self {
            url: String::new(),
            inner: Arc::default(),
            confirms: Arc::default(),
            captures: Arc::default(),
            http: reqwest::Client::new(),
        };
        let app = Router::new()
            .route("/v1/payments/confirm", post(confirm))
            .route("/v1/payments/orders/{order_id}", get(by_order))
            .route("/v1/payments/{key}", get(by_key))
            .route("/v1/payments/{key}/cancel", post(cancel))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, ..fake }
    }

    /// The app's configuration for this provider.
    pub fn config(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PAYMENT_PROVIDER", "toss".into()),
            ("PAYMENT_TOSS_SECRET_KEY", SECRET_KEY.into()),
            ("PAYMENT_TOSS_CLIENT_KEY", "test_ck_boxoffice_fake".into()),
            ("PAYMENT_TOSS_API_URL", self.url.clone()),
        ]
    }

    /// The fan completed the payment window for `order_id`, authorising `amount`: the
    /// payment exists (IN_PROGRESS) and its key goes back to the browser.
    pub fn authorize(&self, order_id: &str, amount: i64) -> String {
        let key = format!("tpk_fake_{}", KEYS.fetch_add(1, Ordering::Relaxed));
        self.inner.lock().unwrap().payments.insert(
            key.clone(),
            FakePayment {
                order_id: order_id.to_owned(),
                amount,
                status: "IN_PROGRESS",
            },
        );
        key
    }

    pub fn payment(&self, key: &str) -> Option<FakePayment> {
        self.inner.lock().unwrap().payments.get(key).cloned()
    }

    pub fn set_confirm_delay(&self, d: Option<Duration>) {
        self.inner.lock().unwrap().confirm_delay = d;
    }

    pub fn set_cancel_delay(&self, d: Option<Duration>) {
        self.inner.lock().unwrap().cancel_delay = d;
    }

    /// Cancelled from the provider's dashboard (or a chargeback).
    pub fn cancel_from_dashboard(&self, key: &str) {
        if let Some(p) = self.inner.lock().unwrap().payments.get_mut(key) {
            p.status = "CANCELED";
        }
    }

    /// Sends a `PAYMENT_STATUS_CHANGED` webhook to `app_url`, as Toss would (unsigned),
    /// claiming `status`; returns the HTTP status the app answered.
    pub async fn webhook(&self, app_url: &str, key: &str, order_id: &str, status: &str) -> u16 {
        let body = json!({
            "eventType": "PAYMENT_STATUS_CHANGED",
            "createdAt": "2026-12-05T10:00:01.000000",
            "data": { "paymentKey": key, "orderId": order_id, "status": status, "totalAmount": 1 },
        });
        self.http
            .post(format!("{app_url}/payments/toss/webhook"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

async fn confirm(State(fake): State<FakeToss>, headers: HeaderMap, Json(body): Json<Value>) -> Answer {
    if !authorized(&headers) {
        return failure(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED_KEY",
            "인증되지 않은 시크릿 키 혹은 클라이언트 키 입니다.",
        );
    }
    fake.confirms.fetch_add(1, Ordering::Relaxed);
    let idem = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (answer, delay) = {
        let mut inner = fake.inner.lock().unwrap();
        let delay = inner.confirm_delay;
        if let Some((s, v)) = idem.as_ref().and_then(|k| inner.answered.get(k)) {
            ((*s, Json(v.clone())), delay)
        } else {
            let key = body["paymentKey"].as_str().unwrap_or_default().to_owned();
            let answer = match inner.payments.get_mut(&key) {
                None => failure(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND_PAYMENT_SESSION",
                    "결제 시간이 만료되어 결제 진행 데이터가 존재하지 않습니다.",
                ),
                Some(p) if Some(p.order_id.as_str()) != body["orderId"].as_str() => {
                    failure(StatusCode::BAD_REQUEST, "INVALID_REQUEST", "잘못된 요청입니다.")
                }
                Some(p) if Some(p.amount) != body["amount"].as_i64() => failure(
                    StatusCode::BAD_REQUEST,
                    "UNAUTHORIZED_PAYMENT_AMOUNT",
                    "결제 금액이 일치하지 않습니다.",
                ),
                Some(p) if p.status != "IN_PROGRESS" => failure(
                    StatusCode::BAD_REQUEST,
                    "ALREADY_PROCESSED_PAYMENT",
                    "이미 처리된 결제 입니다.",
                ),
                Some(p) => {
                    p.status = "DONE";
                    fake.captures.fetch_add(1, Ordering::Relaxed);
                    (StatusCode::OK, Json(payment_json(&key, p)))
                }
            };
            if let Some(k) = idem {
                inner.answered.insert(k, (answer.0, answer.1.0.clone()));
            }
            (answer, delay)
        }
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    answer
}

async fn by_key(State(fake): State<FakeToss>, headers: HeaderMap, Path(key): Path<String>) -> Answer {
    if !authorized(&headers) {
        return failure(StatusCode::UNAUTHORIZED, "UNAUTHORIZED_KEY", "unauthorized");
    }
    match fake.inner.lock().unwrap().payments.get(&key) {
        Some(p) => (StatusCode::OK, Json(payment_json(&key, p))),
        None => failure(
            StatusCode::NOT_FOUND,
            "NOT_FOUND_PAYMENT",
            "존재하지 않는 결제 정보 입니다.",
        ),
    }
}

async fn by_order(State(fake): State<FakeToss>, headers: HeaderMap, Path(order_id): Path<String>) -> Answer {
    if !authorized(&headers) {
        return failure(StatusCode::UNAUTHORIZED, "UNAUTHORIZED_KEY", "unauthorized");
    }
    let inner = fake.inner.lock().unwrap();
    match inner.payments.iter().find(|(_, p)| p.order_id == order_id) {
        Some((k, p)) => (StatusCode::OK, Json(payment_json(k, p))),
        None => failure(
            StatusCode::NOT_FOUND,
            "NOT_FOUND_PAYMENT",
            "존재하지 않는 결제 정보 입니다.",
        ),
    }
}

async fn cancel(
    State(fake): State<FakeToss>,
    headers: HeaderMap,
    Path(key): Path<String>,
    Json(body): Json<Value>,
) -> Answer {
    if !authorized(&headers) {
        return failure(StatusCode::UNAUTHORIZED, "UNAUTHORIZED_KEY", "unauthorized");
    }
    if body["cancelReason"].as_str().is_none_or(str::is_empty) {
        return failure(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "cancelReason is required",
        );
    }
    let idem = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (answer, delay) = {
        let mut inner = fake.inner.lock().unwrap();
        let delay = inner.cancel_delay;
        if let Some((s, v)) = idem.as_ref().and_then(|k| inner.answered.get(k)) {
            ((*s, Json(v.clone())), delay)
        } else {
            let answer = match inner.payments.get_mut(&key) {
                None => failure(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND_PAYMENT",
                    "존재하지 않는 결제 정보 입니다.",
                ),
                Some(p) if p.status == "CANCELED" => failure(
                    StatusCode::BAD_REQUEST,
                    "ALREADY_CANCELED_PAYMENT",
                    "이미 취소된 결제 입니다.",
                ),
                Some(p) if p.status != "DONE" => failure(
                    StatusCode::FORBIDDEN,
                    "NOT_CANCELABLE_PAYMENT",
                    "취소 할 수 없는 결제 입니다.",
                ),
                Some(p) => {
                    p.status = "CANCELED";
                    (StatusCode::OK, Json(payment_json(&key, p)))
                }
            };
            if let Some(k) = idem {
                inner.answered.insert(k, (answer.0, answer.1.0.clone()));
            }
            (answer, delay)
        }
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    answer
}
