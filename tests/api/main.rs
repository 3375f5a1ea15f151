//! Integration tests over real HTTP and WebSocket, against real PostgreSQL and Redis.
//! One binary (one link step); one database per test, so they run in parallel.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "a test fails loudly")]

mod auth;
mod common;
mod http;
mod roles;
mod schema;
mod startup;
mod websocket;
