//! Integration tests over real HTTP and WebSocket, against real PostgreSQL and Redis.
//! One binary (one link step); one database per test, so they run in parallel.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "a test fails loudly")]

mod abuse;
mod abuse_sockets;
mod accounts_gone;
mod audit;
mod auth;
mod best_available;
mod big_venue;
mod booking;
mod clients;
mod commit_lost;
mod common;
mod concerts;
mod demo;
mod docs;
mod faults;
mod http;
mod introspection;
mod isolation;
mod keys;
mod leader;
mod live;
mod orders;
mod payments;
mod points;
mod pool;
mod queue;
mod readme;
mod roles;
mod schema;
mod search;
mod seat_map_http;
mod single;
mod startup;
mod storage;
mod tickets;
mod toss_fake;
mod unreached;
mod visibility;
mod waitlist;
mod web;
mod webhooks;
mod websocket;
