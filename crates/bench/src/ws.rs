//! WebSocket subscribers of `seatChanges` (graphql-transport-ws), for the fan-out scenario.
//!
//! Every subscriber reads every message (the server has to send them all), but only a
//! sample parses the events and notes when each seat arrived: parsing every event on
//! thousands of sockets would make the load generator, not the server, the bottleneck on a
//! two-core machine. The sample is spread evenly over the connection order.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::{
    Message, client::IntoClientRequest as _, http::HeaderValue, protocol::WebSocketConfig,
};

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const SUBSCRIPTION: &str = "subscription($s: ID!) { seatChanges(scheduleId: $s) { version resync packed } }";

const PING_EVERY: Duration = Duration::from_secs(10);

/// What one subscriber saw.
#[derive(Default)]
pub struct Seen {
    /// (seat id, when the event naming it arrived); sampled subscribers only.
    pub arrivals: Vec<(i64, Instant)>,
    pub events: u64,
    pub resyncs: u64,
    pub sampled: bool,
    /// Why the connection ended early, if it did.
    pub failure: Option<String>,
}

/// Counts shared by all subscribers while they run.
#[derive(Default)]
pub struct Counters {
    pub events: AtomicU64,
    pub bytes: AtomicU64,
}

/// Opens a socket, subscribes, and waits for the first event (the current state).
pub async fn subscribe(ws_url: &str, token: &str, schedule_id: i64) -> anyhow::Result<Socket> {
    let mut req = ws_url.into_client_request().context("the WebSocket URL")?;
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    // Small buffers (tungstenite's default is 128 KiB each per socket): 15,000 sockets stay
    // cheap, and larger messages still arrive whole; the client writes little.
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0);
    let connect = tokio_tungstenite::connect_async_with_config(req, Some(config), true);
    let (mut ws, _) = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .context("connecting timed out")?
        .context("connecting")?;
    send(
        &mut ws,
        json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } }),
    )
    .await?;
    expect(&mut ws, "connection_ack").await?;
    send(
        &mut ws,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": SUBSCRIPTION, "variables": { "s": schedule_id.to_string() } } }),
    )
    .await?;
    expect(&mut ws, "next").await?;
    Ok(ws)
}

async fn send(ws: &mut Socket, v: Value) -> anyhow::Result<()> {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .context("sending on the WebSocket")
}

/// Waits up to 10 s for a message of type `kind`, answering pings on the way.
async fn expect(ws: &mut Socket, kind: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .with_context(|| format!("no {kind} within 10 s"))?;
        match msg {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).context("a message that is not JSON")?;
                match v["type"].as_str() {
                    Some(k) if k == kind => return Ok(()),
                    Some("ping") => send(ws, json!({ "type": "pong" })).await?,
                    Some("pong") | Some("ka") => {}
                    _ => anyhow::bail!("expected {kind}, got {v}"),
                }
            }
            Some(Ok(Message::Close(f))) => anyhow::bail!("closed while waiting for {kind}: {f:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e).context("reading the WebSocket"),
            None => anyhow::bail!("closed while waiting for {kind}"),
        }
    }
}

/// Reads events until `stop` turns true.
pub async fn listen(
    mut ws: Socket,
    sampled: bool,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) -> Seen {
    let mut seen = Seen {
        sampled,
        ..Seen::default()
    };
    // The server closes a socket on which the client has said nothing for 30 s (3008
    // timeout), however many events it is sending: ping now and then, as clients must.
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    loop {
        // Decide in the select, act after it: nothing is awaited while its futures live.
        let msg = tokio::select! {
            m = ws.next() => Some(m),
            _ = ping.tick() => None,
            _ = stop.wait_for(|s| *s) => break,
        };
        let Some(msg) = msg else {
            if send(&mut ws, json!({ "type": "ping" })).await.is_err() {
                seen.failure = Some("could not send a ping".into());
                break;
            }
            continue;
        };
        let text = match msg {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(f))) => {
                seen.failure = Some(match f {
                    Some(f) => format!("closed by the server ({} {})", u16::from(f.code), f.reason),
                    None => "closed by the server".into(),
                });
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                seen.failure = Some(format!("read error: {e}"));
                break;
            }
            None => {
                seen.failure = Some("closed".into());
                break;
            }
        };
        let at = Instant::now();
        counters.bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
        // Small messages are protocol chatter (ping, complete, error): look at them. A big
        // one is an event.
        let parse = sampled || text.len() < 256;
        if !parse {
            seen.events += 1;
            counters.events.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            seen.failure = Some("a message that is not JSON".into());
            break;
        };
        match v["type"].as_str() {
            Some("next") => {
                seen.events += 1;
                counters.events.fetch_add(1, Ordering::Relaxed);
                let event = &v["payload"]["data"]["seatChanges"];
                if event["resync"].as_bool() == Some(true) {
                    seen.resyncs += 1;
                }
                // `packed`: `<seat id><A|H|S>` joined by commas.
                if sampled && let Some(packed) = event["packed"].as_str() {
                    for s in packed.split(',').filter(|s| s.len() > 1) {
                        if let Ok(id) = s[..s.len() - 1].parse() {
                            seen.arrivals.push((id, at));
                        }
                    }
                }
            }
            // The server's keep-alive: unanswered, it closes the connection.
            Some("ping") if send(&mut ws, json!({ "type": "pong" })).await.is_err() => {
                seen.failure = Some("could not answer a ping".into());
                break;
            }
            Some("error") | Some("complete") => {
                seen.failure = Some(format!("subscription ended: {v}"));
                break;
            }
            _ => {}
        }
    }
    let _ = ws.close(None).await;
    seen
}
