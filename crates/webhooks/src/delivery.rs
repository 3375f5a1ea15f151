//! One delivery attempt: a signed POST of an event's bytes to a webhook URL.
//!
//! Bounded in every way a receiver could stretch it: a connect timeout and a total timeout,
//! at most `max_response_bytes` of the answer read, no redirect followed (a 3xx is a failed
//! attempt, as the Standard Webhooks specification recommends: the host fixes its URL), no
//! proxy taken from the environment, and every connection made only to addresses the URL
//! policy checked (see `policy`). A failure is an outcome, never an error: the relay records
//! it and schedules the next attempt.

use std::time::{Duration, Instant};

use reqwest::{Client, redirect};
use url::Url;

use crate::{UrlPolicy, UrlRefusal, signature::Signed};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeliveryConfig {
    pub policy: UrlPolicy,
    pub connect_timeout: Duration,
    /// The whole attempt: connect, send, and read the bounded answer.
    pub timeout: Duration,
    pub max_response_bytes: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            policy: UrlPolicy::default(),
            connect_timeout: Duration::from_secs(5),
            // The specification recommends 15 to 30 s for a receiver to answer.
            timeout: Duration::from_secs(15),
            max_response_bytes: 4096,
        }
    }
}

/// How an attempt ended, as the relay acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer.
    Delivered,
    /// 410 Gone: the receiver asks to be sent nothing more; the endpoint is disabled.
    Gone,
    /// Anything else; retried on the schedule. The text says why, for the delivery log.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub outcome: Outcome,
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    pub latency: Duration,
}

impl Attempt {
    pub fn latency_ms(&self) -> i64 {
        i64::try_from(self.latency.as_millis()).unwrap_or(i64::MAX)
    }
}

/// One HTTP client for every delivery of an instance (its connection pool is reused); its
/// own, so webhooks never take a connection another part of the server needs.
#[derive(Debug, Clone)]
pub struct DeliveryClient {
    http: Client,
    config: DeliveryConfig,
}

impl DeliveryClient {
    pub fn new(config: DeliveryConfig) -> Result<DeliveryClient, reqwest::Error> {
        let http = Client::builder()
            .redirect(redirect::Policy::none())
            .no_proxy()
            .dns_resolver(config.policy.resolver())
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .user_agent(concat!("boxoffice-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(DeliveryClient { http, config })
    }

    pub fn policy(&self) -> UrlPolicy {
        self.config.policy
    }

    /// Sends `body` (the event's bytes, exactly as signed) to `url`.
    pub async fn deliver(&self, url: &str, signed: &Signed, body: Vec<u8>) -> Attempt {
        let started = Instant::now();
        let url = match self.config.policy.parse(url) {
            Ok(url) => url,
            Err(refusal) => return failed(refusal.to_string(), None, started),
        };
        let mut request = self
            .http
            .post(Url::clone(&url))
            .header("content-type", "application/json");
        for (name, value) in signed.headers() {
            request = request.header(name, value);
        }
        let mut response = match request.body(body).send().await {
            Ok(response) => response,
            Err(e) => return failed(describe(&e), None, started),
        };
        let status = response.status().as_u16();
        // Read a bounded part of the answer so the connection can be reused when it is short;
        // a longer answer is cut off (the connection is then dropped, not drained).
        let mut read = 0usize;
        while read < self.config.max_response_bytes {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                Ok(None) => break,
                Err(e) => return failed(describe(&e), Some(status), started),
            }
        }
        let latency = started.elapsed();
        let outcome = match status {
            200..=299 => Outcome::Delivered,
            410 => Outcome::Gone,
            300..=399 => Outcome::Failed(format!("redirect {status} not followed: update the webhook URL")),
            _ => Outcome::Failed(format!("HTTP {status}")),
        };
        Attempt {
            outcome,
            status: Some(status),
            latency,
        }
    }
}

fn failed(reason: String, status: Option<u16>, started: Instant) -> Attempt {
    Attempt {
        outcome: Outcome::Failed(reason),
        status,
        latency: started.elapsed(),
    }
}

/// A short reason for the delivery log: the policy's refusal when that is what stopped the
/// connection, else the kind of network failure (never the whole error chain, which can
/// hold resolver internals).
fn describe(e: &reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(refusal) = err.downcast_ref::<UrlRefusal>() {
            return refusal.to_string();
        }
        source = err.source();
    }
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else if e.is_body() || e.is_decode() {
        "the answer broke off".to_owned()
    } else {
        "the request failed".to_owned()
    }
}
