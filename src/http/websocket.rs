//! GraphQL over WebSocket: graphql-transport-ws, and the legacy graphql-ws
//! (subscriptions-transport-ws) protocol.
//!
//! The session loop is ours rather than async-graphql's, because the protocol's rules are
//! what keeps a socket's cost bounded and its close codes true:
//!
//! | event | graphql-transport-ws | legacy graphql-ws |
//! |---|---|---|
//! | no `connection_init` within `WS_INIT_TIMEOUT_SECONDS` | close 4408 | `connection_error`, close 4408 |
//! | refused token in `connection_init` | close 4403 | `connection_error`, close 4403 |
//! | the token's session was logged out or revoked | close 4403 | `connection_error`, close 4403 |
//! | the session cannot be checked (database unreachable) | close 1013 (try again later) | same |
//! | a second `connection_init` | close 4429 | `connection_error`, close 4429 |
//! | an operation before `connection_ack` | close 4401 | `connection_error`, close 4401 |
//! | a message that is not JSON of the protocol | close 4400 | `connection_error`, close 4400 |
//! | an id already in use | close 4409 | close 4409 |
//! | more than `WS_MAX_SUBSCRIPTIONS_PER_SOCKET` operations | `error` for that id (TOO_MANY_SUBSCRIPTIONS) | same |
//! | more than `WS_MAX_SOCKETS_PER_USER` sockets of one account on this instance | close 4429 | `connection_error`, close 4429 |
//! | the access token expires | close 4403 "access token expired" | same |
//! | logOut or refresh-token reuse revokes the account's sessions (any instance) | close 4403 "session revoked" | same |
//! | the server shuts down | close 1001 | close 1001 |
//! | the client closes (close frame) | the same code back | the same code back |
//! | `connection_terminate` | — | close 1000 |
//!
//! The close reason always says why. A client that wants to go on after 4403 reconnects
//! with a fresh token.

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, WebSocketProtocols};
use axum::{
    extract::{
        FromRequestParts, WebSocketUpgrade,
        ws::{CloseFrame, Message, WebSocket},
    },
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use futures_util::{
    FutureExt as _, Sink, SinkExt as _, StreamExt as _,
    stream::{AbortHandle, Abortable, BoxStream, SelectAll},
};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::{ClientAddr, Http, KEEPALIVE, client_ip, sockets_per_user::UserSlot};
use crate::{
    auth::{REVOKED_TOPIC, Viewer},
    live::groups::{EventProbe, FirstIsResync, GroupKey, Out},
};

/// The socket's protocol, from `Sec-WebSocket-Protocol` (the first one we speak).
fn protocol(parts: &axum::http::request::Parts) -> Option<WebSocketProtocols> {
    parts
        .headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').find_map(|p| p.trim().parse().ok()))
}

pub(super) async fn websocket(
    http: Arc<Http>,
    parts: &mut axum::http::request::Parts,
    addr: SocketAddr,
) -> Response {
    let Some(protocol) = protocol(parts) else {
        return (
            StatusCode::BAD_REQUEST,
            "send Sec-WebSocket-Protocol: graphql-transport-ws (or graphql-ws)",
        )
            .into_response();
    };
    if !super::cors::websocket_origin_allowed(&http.state.config.cors_allowed_origins, &parts.headers) {
        return (
            axum::http::StatusCode::FORBIDDEN,
            "this origin may not open a WebSocket here: see CORS_ALLOWED_ORIGINS",
        )
            .into_response();
    }
    let upgrade = match WebSocketUpgrade::from_request_parts(parts, &()).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    let Ok(permit) = http.sockets.clone().try_acquire_owned() else {
        metrics::counter!("websocket_refused_total").increment(1);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many open WebSockets; retry later",
        )
            .into_response();
    };
    let client = ClientAddr(Some(client_ip(&http.state, &parts.headers, addr)));
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        // tungstenite's defaults (128 KiB read and write buffers per socket) would cost
        // over a gigabyte for 5,000 subscribers; our messages are a few KiB at most. Each
        // read touches the whole read buffer, and clients send little: a bigger message
        // grows it for its own length.
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| async move {
            let _permit = permit;
            Session::new(http, protocol, client).run(socket).await;
        })
}

/// Writes `first` and the messages `ready` has at once, up to [`WRITE_BUFFER`] bytes (a
/// message more at most), with one flush: how many it wrote. At 15,000 sockets a system
/// call per frame was most of the server's CPU (issue 28); a socket that fell behind a busy
/// sale catches up in fewer of them.
async fn write_batch<S: Sink<Message> + Unpin>(
    out: &mut S,
    first: Message,
    mut ready: impl FnMut() -> Option<Message>,
) -> Result<u32, S::Error> {
    let mut bytes = msg_len(&first);
    out.feed(first).await?;
    let mut frames = 1;
    while bytes < WRITE_BUFFER {
        let Some(msg) = ready() else { break };
        bytes += msg_len(&msg);
        out.feed(msg).await?;
        frames += 1;
    }
    out.flush().await?;
    Ok(frames)
}

/// A message's length as it goes out, near enough (its frame header aside).
fn msg_len(msg: &Message) -> usize {
    match msg {
        Message::Text(t) => t.len(),
        Message::Binary(b) => b.len(),
        _ => 0,
    }
}

/// Why a session ends: the close frame it sends.
struct Close(u16, String);

impl Close {
    fn new(code: u16, reason: impl Into<String>) -> Self {
        Self(code, reason.into())
    }
}

/// A client message of either protocol.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    ConnectionInit {
        #[serde(default)]
        payload: Option<Json>,
    },
    #[serde(alias = "start")]
    Subscribe {
        id: String,
        payload: Box<async_graphql::Request>,
    },
    #[serde(alias = "stop")]
    Complete {
        id: String,
    },
    ConnectionTerminate,
    Ping {
        #[serde(default)]
        payload: Option<Json>,
    },
    Pong {
        #[serde(default)]
        #[expect(dead_code, reason = "a pong's payload means nothing to us")]
        payload: Option<Json>,
    },
}

/// A socket's read buffer: clients send small messages (a subscription, a ping).
const READ_BUFFER: usize = 2 * 1024;

/// Bytes a socket gathers before writing them. Events waiting for a socket are written
/// together up to this much (a frame more at most): a write buffer keeps the size it once
/// reached, so a larger batch would cost its size on every one of 15,000 sockets.
const WRITE_BUFFER: usize = 4 * 1024;

/// One item of the merged operation streams: the id, the generation of that id, and the
/// next response (`None`: the operation is over).
type Item = (String, u64, Option<Out>);

struct Session {
    http: Arc<Http>,
    protocol: WebSocketProtocols,
    client: ClientAddr,
    /// Set by an accepted `connection_init`.
    viewer: Option<Viewer>,
    /// Operations running, by id: their generation and the handle that stops them.
    running: HashMap<String, (u64, AbortHandle)>,
    generation: u64,
    /// `live_delivery_seconds` and `websocket_frames_per_write`, looked up once: recorded
    /// at every write of a sale's events, a lookup each time was about 1.5 % of the
    /// server's CPU.
    delivery: metrics::Histogram,
    frames_per_write: metrics::Histogram,
}

impl Session {
    fn new(http: Arc<Http>, protocol: WebSocketProtocols, client: ClientAddr) -> Self {
        Self {
            http,
            protocol,
            client,
            viewer: None,
            running: HashMap::new(),
            generation: 0,
            delivery: metrics::histogram!("live_delivery_seconds"),
            frames_per_write: metrics::histogram!("websocket_frames_per_write"),
        }
    }

    fn legacy(&self) -> bool {
        self.protocol == WebSocketProtocols::SubscriptionsTransportWS
    }

    async fn run(mut self, socket: WebSocket) {
        let (mut out, mut input) = socket.split();
        let mut operations: SelectAll<BoxStream<'static, Item>> = SelectAll::new();
        let mut shutdown = self.http.shutdown.clone();
        let init_deadline = tokio::time::sleep(self.http.state.config.edge.ws_init_timeout);
        tokio::pin!(init_deadline);
        // Armed once the socket is authenticated: the token's expiry.
        let expiry = tokio::time::sleep(Duration::from_secs(365 * 24 * 3600));
        tokio::pin!(expiry);
        let mut revoked: Option<crate::live::hub::Subscription> = None;
        let mut _slot: Option<UserSlot> = None;
        let mut idle = tokio::time::interval(KEEPALIVE);
        idle.reset();

        // The client sent a close frame: tungstenite has queued the answer (its code echoed,
        // RFC 6455 5.5.1), which goes out when the socket is flushed.
        let mut closed_by_client = false;
        let mut check_session = false;
        // When the first change of each shared event being written reached this instance.
        let mut delivering: Vec<std::time::Instant> = Vec::new();
        let close = loop {
            if std::mem::take(&mut check_session)
                && let Some(Viewer::User(user)) = &self.viewer
            {
                // A logged-out session's token is still within its lifetime: the broadcast
                // that closed its sockets cannot reach one opened later, so ask the store.
                match crate::auth::context::session_revoked(&self.http.state, user).await {
                    Ok(false) => {}
                    Ok(true) => break Some(Close::new(4403, "Forbidden: session revoked (logged out)")),
                    Err(e) => {
                        tracing::warn!(error = %e, user.id = user.id, "checking a socket's session");
                        break Some(Close::new(1013, "cannot check the session now; retry later"));
                    }
                }
                if out
                    .send(text_message(json!({ "type": "connection_ack" })))
                    .await
                    .is_err()
                {
                    break None;
                }
            }
            let outgoing: Option<Message> = tokio::select! {
                msg = input.next() => match msg {
                    None | Some(Err(_)) => break None,
                    Some(Ok(Message::Close(_))) => {
                        closed_by_client = true;
                        break None;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Binary(_))) => break Some(Close::new(4400, "binary messages are not part of the protocol")),
                    Some(Ok(Message::Text(text))) => {
                        let msg = match serde_json::from_str::<ClientMessage>(text.as_str()) {
                            Ok(m) => m,
                            Err(e) => break Some(Close::new(4400, format!("invalid message: {e}"))),
                        };
                        match msg {
                            ClientMessage::ConnectionInit { payload } => {
                                if self.viewer.is_some() {
                                    break Some(Close::new(4429, "Too many initialisation requests"));
                                }
                                let header = payload.as_ref().and_then(|p| {
                                    p.get("Authorization").or_else(|| p.get("authorization"))
                                }).and_then(Json::as_str);
                                let viewer = self.http.state.locked.screen(Viewer::from_bearer(&self.http.state.jwt, header));
                                match &viewer {
                                    Viewer::InvalidToken => {
                                        break Some(Close::new(4403, "Forbidden: invalid or expired access token"));
                                    }
                                    Viewer::User(user) => {
                                        let max = self.http.state.config.edge.ws_max_sockets_per_user;
                                        match self.http.sockets_per_user.take(user.id, max) {
                                            Some(slot) => _slot = Some(slot),
                                            None => break Some(Close::new(4429, format!("this account already has {max} open sockets on this server"))),
                                        }
                                        let left = user.expires_at - chrono::Utc::now().timestamp();
                                        expiry.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(left.max(0).unsigned_abs()));
                                        revoked = Some(self.http.state.live.hub.subscribe(REVOKED_TOPIC));
                                    }
                                    Viewer::Anonymous | Viewer::Scanner(_) => {}
                                }
                                let signed_in = matches!(viewer, Viewer::User(_));
                                self.viewer = Some(viewer);
                                if signed_in {
                                    // Acknowledged once the session is checked, at the top
                                    // of the loop (no await may hold this select's futures).
                                    check_session = true;
                                    None
                                } else {
                                    Some(text_message(json!({ "type": "connection_ack" })))
                                }
                            }
                            ClientMessage::Subscribe { id, payload } => {
                                let Some(viewer) = self.viewer.clone() else {
                                    break Some(Close::new(4401, "Unauthorized: send connection_init first"));
                                };
                                if self.running.contains_key(&id) {
                                    break Some(Close::new(4409, format!("Subscriber for {id} already exists")));
                                }
                                let max = self.http.state.config.edge.ws_max_subscriptions;
                                if self.running.len() >= max {
                                    Some(self.error(&id, crate::error::ErrorCode::TooManySubscriptions.as_str(), &format!("at most {max} operations may run on one socket")))
                                } else {
                                    operations.push(self.start(id, *payload, viewer));
                                    None
                                }
                            }
                            ClientMessage::Complete { id } => {
                                match self.running.remove(&id) {
                                    Some((_, handle)) => {
                                        handle.abort();
                                        // The legacy protocol confirms a stop; the new one does not.
                                        self.legacy().then(|| text_message(json!({ "type": "complete", "id": id })))
                                    }
                                    None => None,
                                }
                            }
                            // The legacy client's goodbye: a normal close, not a dropped line.
                            ClientMessage::ConnectionTerminate => break Some(Close::new(1000, "connection_terminate")),
                            ClientMessage::Ping { payload } => {
                                let mut pong = json!({ "type": "pong" });
                                if let Some(p) = payload {
                                    pong["payload"] = p;
                                }
                                Some(text_message(pong))
                            }
                            ClientMessage::Pong { .. } => None,
                        }
                    }
                },
                Some(item) = operations.next(), if !operations.is_empty() => {
                    match self.on_operation(item, &mut delivering) {
                        Some(msg) => Some(msg),
                        None => continue,
                    }
                }
                () = &mut init_deadline, if self.viewer.is_none() => {
                    break Some(Close::new(4408, "Connection initialisation timeout"));
                }
                () = &mut expiry, if matches!(self.viewer, Some(Viewer::User(_))) => {
                    break Some(Close::new(4403, "access token expired"));
                }
                event = async { match revoked.as_mut() { Some(r) => r.recv().await, None => std::future::pending().await } } => {
                    let me = match &self.viewer { Some(Viewer::User(u)) => u.id, _ => continue };
                    match event {
                        Some(crate::live::hub::Event::Message(m)) if m.parse::<i64>().ok() == Some(me) => {
                            break Some(Close::new(4403, "session revoked (logged out)"));
                        }
                        Some(_) => continue,
                        // The hub is gone (the server is stopping): stop listening to it.
                        None => {
                            revoked = None;
                            continue;
                        }
                    }
                }
                _ = shutdown.wait_for(|stop| *stop) => {
                    break Some(Close::new(1001, "server shutting down"));
                }
                _ = idle.tick() => Some(Message::Ping(Default::default())),
            };
            if let Some(msg) = outgoing {
                // What else is ready for this socket goes out in the same write.
                let ready = || loop {
                    let Some(Some(item)) = operations.next().now_or_never() else {
                        return None;
                    };
                    if let Some(msg) = self.on_operation(item, &mut delivering) {
                        return Some(msg);
                    }
                };
                let Ok(frames) = write_batch(&mut out, msg, ready).await else {
                    break None;
                };
                self.frames_per_write.record(f64::from(frames));
                // Shared events are written: the server's share of their delivery, from
                // their first change reaching this instance (coalescing window included).
                for at in delivering.drain(..) {
                    self.delivery.record(at.elapsed().as_secs_f64());
                }
                idle.reset();
            }
        };
        for (_, (_, handle)) in self.running.drain() {
            handle.abort();
        }
        if let Some(Close(code, reason)) = close {
            if self.legacy() && (4400..4500).contains(&code) {
                // Legacy clients read the reason from connection_error, not the close frame.
                let _ = out
                    .send(text_message(
                        json!({ "type": "connection_error", "payload": { "message": reason } }),
                    ))
                    .await;
            }
            metrics::counter!("websocket_closed_total", "code" => code.to_string()).increment(1);
            let frame = CloseFrame {
                code,
                reason: fit_close_reason(&reason).into(),
            };
            let _ = out.send(Message::Close(Some(frame))).await;
        } else if closed_by_client {
            // Labelled "client", not by the client's code: labels come from a closed set.
            metrics::counter!("websocket_closed_total", "code" => "client").increment(1);
            let _ = out.close().await;
        }
    }

    /// Starts an operation; its responses come back through the merged stream. A
    /// subscription that may be shared joins its group (`live::groups`); any other runs
    /// on this socket alone.
    fn start(
        &mut self,
        id: String,
        request: async_graphql::Request,
        viewer: Viewer,
    ) -> BoxStream<'static, Item> {
        self.generation += 1;
        let generation = self.generation;
        let (handle, registration) = AbortHandle::new_pair();
        self.running.insert(id.clone(), (generation, handle));
        let outs: BoxStream<'static, Out> = match GroupKey::of(&request, &viewer) {
            Some(key) => {
                let execute = {
                    let (schema, state, client) =
                        (self.http.schema.clone(), self.http.state.clone(), self.client);
                    let key = key.clone();
                    move |resync: bool| {
                        let probe = Arc::new(EventProbe::default());
                        let mut request = key
                            .request()
                            .data(viewer.clone())
                            .data(client)
                            .data(probe.clone());
                        if resync {
                            request = request.data(FirstIsResync);
                        }
                        let request = crate::graphql::with_loaders(request, &state);
                        (schema.execute_stream(request), probe)
                    }
                };
                let start = {
                    let execute = execute.clone();
                    move || execute(false)
                };
                self.http
                    .state
                    .subscriptions
                    .groups
                    .join(key, start, execute)
                    .boxed()
            }
            None => {
                let request =
                    crate::graphql::with_loaders(request.data(viewer).data(self.client), &self.http.state);
                self.http
                    .schema
                    .execute_stream(request)
                    .map(|r| Out::Own(Box::new(r)))
                    .boxed()
            }
        };
        let responses = Abortable::new(outs, registration);
        let done_id = id.clone();
        responses
            .map(move |r| (id.clone(), generation, Some(r)))
            .chain(futures_util::stream::once(
                async move { (done_id, generation, None) },
            ))
            .boxed()
    }

    /// A `next` (legacy: `data`) frame. A shared payload is the group's one serialization,
    /// wrapped here with this socket's id.
    /// What an operation's next item sends: its next response, or `complete` once it is
    /// over; nothing for an operation stopped by the client (or an id reused) since. A shared
    /// event's arrival goes to `delivering`, to be measured once it is written.
    fn on_operation(
        &mut self,
        (id, generation, response): Item,
        delivering: &mut Vec<std::time::Instant>,
    ) -> Option<Message> {
        let current = self.running.get(&id).is_some_and(|(g, _)| *g == generation);
        if !current {
            return None;
        }
        match response {
            Some(response) => {
                if let Out::Shared(e) = &response {
                    delivering.extend(e.arrived);
                }
                Some(self.next(&id, response))
            }
            None => {
                self.running.remove(&id);
                Some(text_message(json!({ "type": "complete", "id": id })))
            }
        }
    }

    fn next(&self, id: &str, out: Out) -> Message {
        let kind = if self.legacy() { "data" } else { "next" };
        match out {
            Out::Own(response) => text_message(json!({ "type": kind, "id": id, "payload": *response })),
            Out::Shared(event) => {
                let payload = &event.payload;
                let id = Json::from(id).to_string();
                let mut frame = String::with_capacity(payload.len() + id.len() + 32);
                frame.push_str(r#"{"type":""#);
                frame.push_str(kind);
                frame.push_str(r#"","id":"#);
                frame.push_str(&id);
                frame.push_str(r#","payload":"#);
                frame.push_str(payload);
                frame.push('}');
                Message::Text(frame.into())
            }
        }
    }

    fn error(&self, id: &str, code: &str, message: &str) -> Message {
        let errors = json!([{ "message": message, "extensions": { "code": code } }]);
        let payload = if self.legacy() {
            json!({ "errors": errors })
        } else {
            errors
        };
        text_message(json!({ "type": "error", "id": id, "payload": payload }))
    }
}

/// A close frame's reason holds at most 123 bytes (RFC 6455); a longer one would fail to
/// send and the client would see no reason at all.
fn fit_close_reason(reason: &str) -> &str {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

fn text_message(value: Json) -> Message {
    Message::Text(value.to_string().into())
}

#[cfg(test)]
mod tests {
    use std::{
        pin::Pin,
        task::{Context, Poll},
    };

    use super::*;

    /// A socket's sink that records what it was asked: `feed <len>` and `flush`.
    #[derive(Default)]
    struct Recorder(Vec<String>);

    impl Sink<Message> for Recorder {
        type Error = std::convert::Infallible;

        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn start_send(mut self: Pin<&mut Self>, msg: Message) -> Result<(), Self::Error> {
            self.0.push(format!("feed {}", msg_len(&msg)));
            Ok(())
        }

        fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            self.0.push("flush".into());
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    fn text(len: usize) -> Message {
        Message::Text("x".repeat(len).into())
    }

    #[tokio::test]
    async fn the_messages_ready_for_a_socket_go_out_with_one_flush() {
        let mut out = Recorder::default();
        let mut waiting = vec![text(300), text(200)];
        let frames = write_batch(&mut out, text(100), || waiting.pop()).await;
        assert_eq!(frames, Ok(3));
        assert_eq!(out.0, ["feed 100", "feed 200", "feed 300", "flush"]);
    }

    #[tokio::test]
    async fn a_lone_message_is_written_and_flushed_at_once() {
        let mut out = Recorder::default();
        assert_eq!(write_batch(&mut out, text(10), || None).await, Ok(1));
        assert_eq!(out.0, ["feed 10", "flush"]);
    }

    /// A socket whose peer is gone: every feed fails.
    struct Gone;

    impl Sink<Message> for Gone {
        type Error = &'static str;

        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn start_send(self: Pin<&mut Self>, _: Message) -> Result<(), Self::Error> {
            Err("connection reset")
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            unreachable!("nothing to flush on a socket whose first write failed")
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_lost_connection_ends_the_batch_with_its_error_and_takes_nothing_more() {
        let mut waiting = vec![text(10), text(10)];
        let ended = write_batch(&mut Gone, text(10), || waiting.pop()).await;
        assert_eq!(ended, Err("connection reset"));
        // The session ends on this error: what was waiting stays unread.
        assert_eq!(waiting.len(), 2);
    }

    #[tokio::test]
    async fn a_batch_stops_at_the_write_buffer_and_leaves_the_rest_waiting() {
        let mut out = Recorder::default();
        let mut waiting: Vec<Message> = (0..10).map(|_| text(1500)).collect();
        let frames = write_batch(&mut out, text(1500), || waiting.pop()).await;
        // 1,500 x 3 = 4,500 bytes reach the 4 KiB buffer: that write ends there.
        assert_eq!(frames, Ok(3));
        assert_eq!(out.0.iter().filter(|c| *c == "flush").count(), 1);
        assert_eq!(waiting.len(), 8);
    }
}
