//! GraphQL subscriptions over WebSocket (graphql-transport-ws and the legacy graphql-ws).

use std::net::SocketAddr;

use async_graphql::{Data, http::ALL_WEBSOCKET_PROTOCOLS};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::{
    extract::{
        FromRequestParts, WebSocketUpgrade,
        ws::{CloseFrame, Message, close_code},
    },
    response::{IntoResponse, Response},
};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::sync::mpsc;

use super::{ClientAddr, Http, KEEPALIVE, client_ip};
use crate::auth::Viewer;

/// WebSocket subscriptions, graphql-transport-ws and graphql-ws. The client authenticates
/// in `connection_init` with `{"Authorization": "Bearer ..."}`; a bad token closes the
/// connection (4403), no token makes an anonymous connection.
pub(super) async fn websocket(
    http: Http,
    parts: &mut axum::http::request::Parts,
    addr: SocketAddr,
) -> Response {
    let protocol = match GraphQLProtocol::from_request_parts(parts, &()).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
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
    let client = ClientAddr(Some(client_ip(&http.state, &parts.headers, addr)));
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        // tungstenite's defaults (128 KiB read and write buffers per socket) would cost
        // over a gigabyte for 5,000 subscribers; our messages are a few KiB at most.
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024)
        .max_message_size(256 * 1024)
        .on_upgrade(move |socket| async move {
            let jwt = http.state.jwt.clone();
            let mut shutdown = http.shutdown.clone();
            let mut data = Data::default();
            data.insert(client);
            crate::graphql::loaders(&mut data, &http.state);
            // The socket's writing half is ours, behind a channel, so that the connection
            // can end with a proper close frame when the server shuts down.
            let (mut socket_out, socket_in) = socket.split();
            let (out_tx, mut out_rx) = mpsc::channel::<Message>(64);
            let out = futures_util::sink::unfold(out_tx, |tx, msg: Message| async move {
                tx.send(msg).await.map_err(axum::Error::new)?;
                Ok::<_, axum::Error>(tx)
            });
            // At shutdown the input ends, which ends the GraphQL session.
            let input = socket_in.take_until(async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            });
            let connection = GraphQLWebSocket::new_with_pair(out, input, http.schema.clone(), protocol)
                .with_data(data)
                .on_connection_init(move |payload| async move {
                    let header = payload
                        .get("Authorization")
                        .or_else(|| payload.get("authorization"))
                        .and_then(|v| v.as_str());
                    let viewer = Viewer::from_bearer(&jwt, header);
                    if matches!(viewer, Viewer::InvalidToken) {
                        return Err(async_graphql::Error::new("invalid or expired access token"));
                    }
                    let mut data = Data::default();
                    data.insert(viewer);
                    Ok(data)
                })
                .serve();
            let forward = async move {
                // Keep-alive: a WebSocket ping when nothing was sent for a while, so that
                // proxies and load balancers do not drop a quiet subscription (browsers
                // answer pings by themselves).
                let mut idle = tokio::time::interval(KEEPALIVE);
                idle.reset();
                loop {
                    let msg = tokio::select! {
                        msg = out_rx.recv() => match msg {
                            Some(msg) => msg,
                            None => break,
                        },
                        _ = idle.tick() => Message::Ping(Default::default()),
                    };
                    if socket_out.send(msg).await.is_err() {
                        return;
                    }
                    idle.reset();
                }
                // The session is over (the client left, or the server is stopping).
                let goodbye = CloseFrame {
                    code: close_code::AWAY,
                    reason: "server shutting down".into(),
                };
                let _ = socket_out.send(Message::Close(Some(goodbye))).await;
            };
            tokio::join!(connection, forward);
        })
}
