//! `--webhook`: a webhook receiver on 127.0.0.1 inside the bench, subscribed (as an admin,
//! to every concert) before the sale starts. It answers 204 at once and counts what
//! arrives: deliveries, distinct events (a retry shares its `webhook-id`), and the lag from
//! an event's `time` to its arrival. The sale's figures with it are what issue 25's bound
//! compares with the same run without it: the outbox and its relay must not slow a sale.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use axum::{Router, body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post};
use serde_json::{Value, json};

use crate::{
    client::Gql,
    report::{self, Report},
};

const CREATE: &str = "mutation($i: CreateWebhookInput!) { createWebhook(input: $i) { webhook { id } } }";

#[derive(Default)]
struct Seen {
    deliveries: u64,
    ids: HashSet<String>,
    lag_ms: Vec<f64>,
}

pub struct Receiver {
    seen: Arc<Mutex<Seen>>,
    pub url: String,
}

impl Receiver {
    /// Listens on an ephemeral loopback port.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the webhook receiver")?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(seen.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { seen, url })
    }

    /// Subscribes the receiver to `events` of every concert, with an admin's token.
    pub async fn subscribe(
        &self,
        gql: &Gql,
        endpoint: &str,
        admin_token: &str,
        events: &[&str],
    ) -> anyhow::Result<()> {
        gql.ok(
            endpoint,
            Some(admin_token),
            CREATE,
            json!({ "i": { "url": self.url, "events": events } }),
        )
        .await
        .context("createWebhook (is the server started with WEBHOOK_ALLOW_PRIVATE=true?)")?;
        Ok(())
    }

    /// Waits until `expected` distinct events arrived or `limit` passed, then reports them.
    pub async fn settle(&self, report: &mut Report, expected: u64, limit: Duration) {
        let started = Instant::now();
        while self.distinct() < expected && started.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        report::sort(&mut seen.lag_ms);
        report.set("webhook_events_expected", expected);
        report.set("webhook_events", seen.ids.len());
        report.set("webhook_deliveries", seen.deliveries);
        report.set("webhook_lag_p50_ms", report::percentile(&seen.lag_ms, 50.0));
        report.set("webhook_lag_p99_ms", report::percentile(&seen.lag_ms, 99.0));
        report.set("webhook_drained_s", started.elapsed().as_secs_f64());
        if (seen.ids.len() as u64) < expected {
            report.violations.push(format!(
                "{} of {expected} events reached the webhook within {} s",
                seen.ids.len(),
                limit.as_secs()
            ));
        }
    }

    fn distinct(&self) -> u64 {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).ids.len() as u64
    }
}

async fn receive(State(seen): State<Arc<Mutex<Seen>>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let lag = event["time"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| {
            (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                .num_microseconds()
                .unwrap_or(0) as f64
                / 1000.0
        });
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
    seen.deliveries += 1;
    if seen.ids.insert(id)
        && let Some(lag) = lag
    {
        seen.lag_ms.push(lag);
    }
    StatusCode::NO_CONTENT
}
