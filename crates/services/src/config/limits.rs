//! The limits of one GraphQL request, as configured (`GRAPHQL_*`); the server's `limits`
//! module enforces them.

use std::time::Duration;

/// The limits of one request. Defaults are sized so that every query of the README, the
/// web app and the benchmark passes with room to spare.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Bytes of the query document.
    pub max_document_bytes: usize,
    /// Selections (fields, spreads, inline fragments) with every fragment inlined.
    pub max_selections: u64,
    /// Root fields of one operation, aliases included.
    pub max_root_fields: u64,
    /// Estimated cost (see `cost.rs`).
    pub max_cost: u64,
    /// Seats one request may read through seat maps (a map costs its capacity).
    pub max_seats_read: u64,
    /// Wall time of a query's execution.
    pub query_timeout: Duration,
    /// Bytes of the serialized `data` of a response.
    pub max_response_bytes: usize,
    /// A query estimated above this cost is heavy: it runs only with one of the
    /// `heavy_concurrency` permits of the instance, so costly queries, however many, take
    /// at most that many runtime workers away from everyone else.
    pub heavy_cost: u64,
    pub heavy_concurrency: usize,
    /// The share of one runtime worker's time, in percent, that one permit's heavy queries
    /// may take: after a heavy query's answer is written, its permit rests for what the
    /// query took beyond its first 50 ms, times `100 / share - 1`, before the next heavy
    /// query may start. One permit always busy would take a whole core of a two-core machine
    /// away from a sale.
    pub heavy_share_percent: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_document_bytes: 16 * 1024,
            max_selections: 2_000,
            max_root_fields: 10,
            // A page of 20 concerts with their schedules' per-grade counts costs about
            // 21,000; five levels of nested lists cost millions.
            max_cost: 50_000,
            // The largest layout allowed (seats::layout::MAX_SEATS): one full map, or several
            // small ones.
            max_seats_read: 100_000,
            query_timeout: Duration::from_secs(10),
            max_response_bytes: 16 * 1024 * 1024,
            // The compact seat map with its availability (about 1,000) stays light.
            heavy_cost: 2_000,
            heavy_concurrency: 1,
            heavy_share_percent: 25,
        }
    }
}
