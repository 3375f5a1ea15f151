//! What every service call can reach: configuration, the PostgreSQL pool, Redis, token keys,
//! the live hub and the booking batcher. Built by the server's composition root
//! (`boxoffice::state::Services::connect`), which adds what only the API needs.

use std::sync::Arc;

use crate::{
    auth::tokens::JwtKeys,
    booking::{batcher::Batcher, sale::DbClock},
    config::Config,
    db::Pool,
    kv::Kv,
    live,
};

/// Cloned into every request and background task: each field is an `Arc` or a handle that
/// is cheap to clone and shared by the whole instance.
#[derive(Clone)]
pub struct Services {
    /// Read once at start; limits, timeouts and feature switches come from here.
    pub config: Arc<Config>,
    /// PostgreSQL, the truth for seats, reservations and points.
    pub db: Pool,
    /// Queue, order jobs, rate limits and cross-instance events. `None` when REDIS_URL is
    /// unset (single instance, in-process broker).
    pub redis: Option<Kv>,
    /// Login limits when there is no Redis: without it the counters cannot be shared, so
    /// they live in this instance only.
    pub local_limits: Arc<crate::auth::local_limits::LocalLimits>,
    /// Signing and verifying access tokens; built once because the key setup is not free.
    pub jwt: Arc<JwtKeys>,
    /// Subscriptions: the pub/sub hub and the coalesced seat feeds, shared so one Redis
    /// subscription per topic serves every socket of this instance.
    pub live: live::Live,
    /// Group commit for seat holds: requests for the same schedule wait for one locked
    /// transaction, so it must be one per instance.
    pub batcher: Arc<Batcher>,
    /// Which schedules this instance leads, follows or batches alone: routes each hold to
    /// this instance's batcher or to the leading instance's (`booking::leader`).
    pub leadership: Arc<crate::booking::leader::Leadership>,
    /// The hold path's handles (the two above, Redis, the forwarding threshold).
    pub holds: crate::booking::leader::Holds,
    /// The database clock, for the sale rules asked outside a booking transaction.
    pub db_clock: Arc<DbClock>,
    /// Schedules' queue settings remembered for a moment, read on every booking and queue
    /// call.
    pub queue_flags: Arc<crate::queue::flags::QueueFlags>,
    /// Built seat maps by schedule and version, so thousands of readers of a 20,000-seat map
    /// do not rebuild it each time.
    pub seat_maps: Arc<crate::seats::map::SeatMaps>,
    /// The payment provider (built once: it holds an HTTP client) and the bounds on amounts.
    pub payments: crate::payments::Payments,
    /// The ticket signing key, the ring of keys that verify codes, and the door times.
    pub tickets: crate::tickets::Tickets,
    /// Which URLs webhooks may call (`WEBHOOK_ALLOW_PRIVATE`): checked when one is created;
    /// the relay's client checks again at every connection.
    pub webhook_policy: boxoffice_outbox::webhooks::UrlPolicy,
    /// Locked accounts, screened out of every request (`auth::lock`): kept in memory so
    /// that refusing a locked account's tokens costs no query per request.
    pub locked: Arc<crate::auth::locked::LockedAccounts>,
    /// Accounts' current roles, read for all of this instance's requests in batches (every
    /// guarded mutation asks: a token outlives a deleted or demoted account).
    pub roles: Arc<crate::auth::roles::CurrentRoles>,
}

impl Services {
    /// How a write settles an unanswered COMMIT and how long it waits for PostgreSQL
    /// (`in_doubt::write`, `BOOKING_REPLY_TIMEOUT_MS`).
    pub fn writes(&self) -> crate::in_doubt::Writes<'_> {
        crate::in_doubt::Writes {
            db: &self.db,
            settle: true,
            reply: Some(self.config.booking_reply_timeout),
        }
    }

    /// The same for a write over a whole show (`BULK_WRITE_REPLY_TIMEOUT_MS`).
    pub fn bulk_writes(&self) -> crate::in_doubt::Writes<'_> {
        crate::in_doubt::Writes {
            db: &self.db,
            settle: true,
            reply: Some(self.config.bulk_write_reply_timeout),
        }
    }

    /// Redis, or UNAVAILABLE for the features that cannot run without it.
    pub fn kv(&self) -> crate::error::AppResult<&Kv> {
        self.redis.as_ref().ok_or_else(|| {
            crate::error::AppError::rule(
                crate::error::ErrorCode::Unavailable,
                "this server runs without Redis (REDIS_URL unset): the waiting queue and orders are off",
            )
        })
    }
}
