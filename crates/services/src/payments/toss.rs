//! Toss Payments (https://docs.tosspayments.com), the provider Korean box offices use.
//!
//! The browser opens Toss's payment window with our client key and the top-up's `orderId`
//! and amount; Toss sends it back with `paymentKey`, `orderId` and `amount`, which the web
//! app hands to `confirmTopUp`. The server then confirms with `POST /v1/payments/confirm`
//! (secret key as HTTP Basic user, empty password), and reads payments back with
//! `GET /v1/payments/{paymentKey}` or `/v1/payments/orders/{orderId}`; a refund is
//! `POST /v1/payments/{paymentKey}/cancel`. Errors come as `{ "code", "message" }` with a
//! 4xx status (a definite no) or 5xx (unknown: treated like a timeout). POSTs carry an
//! `Idempotency-Key`, so a retried confirm or cancel takes effect once at Toss too.

use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::provider::{PaymentProvider, PaymentStatus, ProviderError, ProviderKind, ProviderPayment};

/// Toss's payment window script, which the web app's wallet page loads (its
/// Content-Security-Policy allows this origin: `crate::web::WALLET_CONTENT_SECURITY_POLICY`).
pub const CHECKOUT_SCRIPT: &str = "https://js.tosspayments.com/v2/standard";

pub struct Toss {
    http: reqwest::Client,
    api_url: String,
    secret_key: SecretString,
    client_key: String,
}

/// The fields of Toss's `Payment` object that settle a top-up.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payment {
    payment_key: String,
    order_id: String,
    status: String,
    total_amount: i64,
}

#[derive(Deserialize, Default)]
struct Failure {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

impl Toss {
    pub fn new(
        api_url: &str,
        secret_key: SecretString,
        client_key: String,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()?;
        Ok(Self {
            http,
            api_url: api_url.trim_end_matches('/').to_owned(),
            secret_key,
            client_key,
        })
    }

    fn url(&self, segments: &[&str]) -> Result<reqwest::Url, ProviderError> {
        let mut url = reqwest::Url::parse(&self.api_url).map_err(|e| ProviderError::Unreachable(e.into()))?;
        url.path_segments_mut()
            .map_err(|()| ProviderError::Unreachable(anyhow::anyhow!("the API URL cannot take a path")))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<ProviderPayment, ProviderError> {
        let resp = req
            .basic_auth(self.secret_key.expose_secret(), None::<&str>)
            .send()
            .await
            .map_err(|e| ProviderError::Unreachable(e.into()))?;
        let status = resp.status();
        if status.is_success() {
            let p: Payment = resp
                .json()
                .await
                .map_err(|e| ProviderError::Unreachable(e.into()))?;
            let parsed = PaymentStatus::parse(&p.status).ok_or_else(|| {
                ProviderError::Unreachable(anyhow::anyhow!("unknown payment status {:?}", p.status))
            })?;
            return Ok(ProviderPayment {
                payment_key: p.payment_key,
                order_id: p.order_id,
                status: parsed,
                total_amount: p.total_amount,
            });
        }
        let failure: Failure = resp.json().await.unwrap_or_default();
        if status.is_server_error() {
            return Err(ProviderError::Unreachable(anyhow::anyhow!(
                "HTTP {status}: {}: {}",
                failure.code,
                failure.message
            )));
        }
        if status == reqwest::StatusCode::NOT_FOUND || failure.code == "NOT_FOUND_PAYMENT" {
            return Err(ProviderError::NotFound);
        }
        Err(ProviderError::Refused {
            code: failure.code,
            message: failure.message,
        })
    }
}

#[async_trait]
impl PaymentProvider for Toss {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Toss
    }

    fn client_key(&self) -> Option<&str> {
        Some(&self.client_key)
    }

    async fn confirm(
        &self,
        payment_key: &str,
        order_id: &str,
        amount: i64,
    ) -> Result<ProviderPayment, ProviderError> {
        let url = self.url(&["v1", "payments", "confirm"])?;
        let body = serde_json::json!({ "paymentKey": payment_key, "orderId": order_id, "amount": amount });
        // One key per order: a confirm retried from any instance is the same request.
        self.send(
            self.http
                .post(url)
                .header("Idempotency-Key", format!("confirm-{order_id}"))
                .json(&body),
        )
        .await
    }

    async fn payment(&self, payment_key: &str) -> Result<ProviderPayment, ProviderError> {
        let url = self.url(&["v1", "payments", payment_key])?;
        self.send(self.http.get(url)).await
    }

    async fn payment_of_order(&self, order_id: &str) -> Result<ProviderPayment, ProviderError> {
        let url = self.url(&["v1", "payments", "orders", order_id])?;
        self.send(self.http.get(url)).await
    }

    async fn cancel(
        &self,
        payment_key: &str,
        reason: &str,
        idempotency_key: &str,
    ) -> Result<ProviderPayment, ProviderError> {
        let url = self.url(&["v1", "payments", payment_key, "cancel"])?;
        let body = serde_json::json!({ "cancelReason": reason });
        self.send(
            self.http
                .post(url)
                .header("Idempotency-Key", idempotency_key)
                .json(&body),
        )
        .await
    }
}
