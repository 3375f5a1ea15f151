//! Tickets and the door (C18, I11): a signed ticket per paid seat, revoked when its
//! reservation is cancelled or refunded; scanner credentials per performance; check-in that
//! admits a ticket once, online or from an offline scanner's upload.
//!
//! - `store`: the rows (tickets, keys, scanners, scans), in `boxoffice_store::tickets`.
//! - `door`: check-in, online and in batches, around the pure decision of
//!   `boxoffice_ticket_codes` (which also holds the code format and the key ring).
//! - `scanners`: creating and revoking scanner credentials, and reading a token.
//! - `graphql`, in the server (`src/`): the GraphQL types and resolvers.
//!
//! Not here: when tickets are issued and revoked; booking's payment and cancellation call
//! [`store::issue`] and [`store::revoke_reservations`] in their own transactions.

pub mod door;
pub mod scanners;
pub use boxoffice_store::tickets as store;

use std::sync::{
    Arc, RwLock,
    atomic::{AtomicBool, Ordering},
};
use std::time::{Duration, Instant};

use boxoffice_ticket_codes::{
    KeyId, KeyRing, SigningKeyConfig, TicketSigner, door::Show, keys::PublishedKey,
};
use chrono::{DateTime, Utc};

use crate::{
    config::TicketsConfig,
    db::Pool,
    error::{AppError, AppResult},
};

/// How often the key ring is read again from the database: a key another instance
/// registered (a rotation) verifies here within this long.
const RING_REFRESH: Duration = Duration::from_secs(60);

/// The signing key, the ring of keys that verify, and the door times. One per instance.
#[derive(Clone)]
pub struct Tickets {
    signer: TicketSigner,
    ring: Arc<RwLock<(KeyRing, Instant)>>,
    /// A reload of the ring is under way (at most one at a time).
    reloading: Arc<AtomicBool>,
    pool: Pool,
    doors_open_before: chrono::Duration,
    valid_after_start: chrono::Duration,
}

impl Tickets {
    /// Registers the configured signing key (or, in development without one, a new key,
    /// logged so it can be configured) and loads the ring.
    pub async fn start(pool: &Pool, config: &TicketsConfig) -> anyhow::Result<Self> {
        let mut conn = pool.get().await?;
        let key = match &config.signing_key {
            Some(key) => key.clone(),
            None => {
                let id = store::next_key_id(&mut conn).await?;
                let key = SigningKeyConfig::new(KeyId(u32::try_from(id)?), rand::random());
                tracing::warn!(
                    ticket.key_id = id,
                    "TICKET_SIGNING_KEY is not set: made a development key for this run. Tickets it signs \
                     verify after a restart only if you set TICKET_SIGNING_KEY={}",
                    key.to_config_text()
                );
                key
            }
        };
        let signer = key.signer();
        store::register_key(&mut conn, signer.key_id(), &signer.public_key()).await?;
        let tickets = Self {
            signer,
            ring: Arc::new(RwLock::new((KeyRing::new(), Instant::now()))),
            reloading: Arc::default(),
            pool: pool.clone(),
            doors_open_before: chrono::Duration::from_std(config.doors_open_before)?,
            valid_after_start: chrono::Duration::from_std(config.valid_after_start)?,
        };
        tickets.reload(&mut conn).await?;
        Ok(tickets)
    }

    async fn reload(&self, conn: &mut diesel_async::AsyncPgConnection) -> AppResult<()> {
        let mut ring = KeyRing::new();
        for k in store::keys(conn).await? {
            let public: [u8; 32] = k.public_key.as_slice().try_into().map_err(|_| {
                AppError::internal(anyhow::anyhow!("ticket key {} is not 32 bytes", k.key_id))
            })?;
            let key_id = KeyId(u32::try_from(k.key_id).map_err(AppError::internal)?);
            // The signing key verifies for as long as it signs; an older one until the last
            // show it signed for has ended (and one that signed nothing, not at all).
            let until = if key_id == self.signer.key_id() {
                None
            } else {
                Some(
                    k.last_show
                        .map_or(DateTime::<Utc>::MIN_UTC, |s| s + self.valid_after_start),
                )
            };
            ring.insert(key_id, &public, until).map_err(AppError::internal)?;
        }
        *self
            .ring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (ring, Instant::now());
        Ok(())
    }

    /// Reads the ring again in the background once it is older than [`RING_REFRESH`]: a
    /// key another instance registered (a rotation) verifies here soon after, and no scan
    /// waits for it.
    fn refresh_if_old(&self) {
        let old = self
            .ring
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .1
            .elapsed()
            > RING_REFRESH;
        if !old || self.reloading.swap(true, Ordering::AcqRel) {
            return;
        }
        let tickets = self.clone();
        tokio::spawn(async move {
            let result = async {
                let mut conn = tickets.pool.get().await?;
                tickets.reload(&mut conn).await
            }
            .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "could not reload the ticket keys");
            }
            tickets.reloading.store(false, Ordering::Release);
        });
    }

    pub fn signer(&self) -> &TicketSigner {
        &self.signer
    }

    /// Verifies a code's signature: no database.
    pub fn verify(
        &self,
        code: &str,
        at: DateTime<Utc>,
    ) -> Result<boxoffice_ticket_codes::TicketClaims, boxoffice_ticket_codes::CodeError> {
        self.refresh_if_old();
        self.ring
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
            .verify(code, at)
    }

    pub fn published_keys(&self, at: DateTime<Utc>) -> Vec<PublishedKey> {
        self.refresh_if_old();
        self.ring
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
            .published(at)
    }

    /// A performance's door times.
    pub fn show(&self, schedule_id: i64, starts_at: DateTime<Utc>) -> Show {
        Show::new(
            schedule_id,
            starts_at,
            self.doors_open_before,
            starts_at + self.valid_after_start,
        )
    }
}
