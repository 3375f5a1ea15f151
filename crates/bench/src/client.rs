//! GraphQL over HTTP as a client sees it: one shared keep-alive connection pool, the
//! error code of `errors[0].extensions.code`, and the time each request took.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};

/// What a measured request came back with.
pub enum Answer {
    /// `data` of a response without errors.
    Data(Value),
    /// The error's code: an API code (`SEAT_UNAVAILABLE`, ...), or one of ours for what
    /// never became a GraphQL answer (`TIMEOUT`, `CONNECT`, `HTTP_503`, ...).
    Error(String),
}

#[derive(Clone)]
pub struct Gql {
    http: reqwest::Client,
}

impl Gql {
    /// `clients` concurrent users: the pool keeps at least that many connections per host
    /// open, so no request pays for a TCP handshake after warm-up.
    pub fn new(clients: usize) -> anyhow::Result<Self> {
        Self::from(clients, None)
    }

    /// The same, its connections made from `local` (e.g. one of 127.0.0.0/8): the server
    /// sees a client address of its own, as a separate device would be.
    pub fn from(clients: usize, local: Option<std::net::IpAddr>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .local_address(local)
            .pool_max_idle_per_host(clients.max(16) * 2)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("building the HTTP client")?;
        Ok(Self { http })
    }

    /// POSTs a request body (already JSON) to `<base>/graphql`; returns the answer and how
    /// long it took in ms, the body read in full.
    pub async fn post(&self, endpoint: &str, token: Option<&str>, body: Vec<u8>) -> (Answer, f64) {
        let started = Instant::now();
        let answer = match self.send(endpoint, token, body).await {
            Ok(bytes) => parse(&bytes),
            Err(code) => Answer::Error(code),
        };
        (answer, started.elapsed().as_secs_f64() * 1000.0)
    }

    /// Like `post` but hands back the raw body: for large answers (the seat map) that the
    /// caller only checks, so that the load generator does not spend its CPU parsing them.
    pub async fn post_raw(
        &self,
        endpoint: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> (Result<Vec<u8>, String>, f64) {
        let started = Instant::now();
        let res = self.send(endpoint, token, body).await;
        (res, started.elapsed().as_secs_f64() * 1000.0)
    }

    async fn send(&self, endpoint: &str, token: Option<&str>, body: Vec<u8>) -> Result<Vec<u8>, String> {
        let mut req = self
            .http
            .post(endpoint)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| transport_code(&e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| transport_code(&e))?;
        if status != reqwest::StatusCode::OK {
            // A GraphQL error answered with another status still carries its code.
            if let Answer::Error(code) = parse(&bytes) {
                return Err(code);
            }
            return Err(format!("HTTP_{}", status.as_u16()));
        }
        Ok(Vec::from(bytes))
    }

    /// A plain GET (the seat map's HTTP resource), with `If-None-Match` when given: the
    /// status, the ETag and the body, and how long it took in ms.
    pub async fn get(&self, url: &str, if_none_match: Option<&str>) -> (Result<Got, String>, f64) {
        let started = Instant::now();
        let mut req = self.http.get(url);
        if let Some(tag) = if_none_match {
            req = req.header("if-none-match", tag);
        }
        let res = async {
            let resp = req.send().await.map_err(|e| transport_code(&e))?;
            let status = resp.status().as_u16();
            let etag = resp
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = resp.bytes().await.map_err(|e| transport_code(&e))?;
            Ok(Got { status, etag, body })
        }
        .await;
        (res, started.elapsed().as_secs_f64() * 1000.0)
    }

    /// A set-up request that must succeed: returns `data`, or fails with the whole answer.
    pub async fn ok(
        &self,
        endpoint: &str,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<Value> {
        let body = serde_json::to_vec(&json!({ "query": query, "variables": variables }))?;
        let mut req = self
            .http
            .post(endpoint)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.with_context(|| format!("POST {endpoint}"))?;
        let status = resp.status();
        let value: Value = resp
            .json()
            .await
            .with_context(|| format!("reading the answer of POST {endpoint}"))?;
        if status != reqwest::StatusCode::OK || !value["errors"].is_null() {
            anyhow::bail!("set-up request failed ({status}): {value}");
        }
        Ok(value["data"].clone())
    }
}

/// What a plain GET came back with.
pub struct Got {
    pub status: u16,
    pub etag: Option<String>,
    pub body: bytes::Bytes,
}

/// The answer of a GraphQL response body.
pub fn parse(bytes: &[u8]) -> Answer {
    let Ok(mut value) = serde_json::from_slice::<Value>(bytes) else {
        return Answer::Error("BAD_JSON".into());
    };
    if let Some(first) = value["errors"].get(0) {
        let code = first["extensions"]["code"].as_str().unwrap_or("NO_CODE");
        return Answer::Error(code.to_owned());
    }
    Answer::Data(value["data"].take())
}

fn transport_code(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "TIMEOUT".into()
    } else if e.is_connect() {
        "CONNECT".into()
    } else if e.is_body() || e.is_decode() {
        "BODY".into()
    } else {
        "TRANSPORT".into()
    }
}

/// A request body: `{"query": ..., "variables": ...}` serialized once.
pub fn body(query: &str, variables: Value) -> Vec<u8> {
    // Serializing a `Value` cannot fail (its keys are strings).
    serde_json::to_vec(&json!({ "query": query, "variables": variables })).unwrap_or_default()
}
