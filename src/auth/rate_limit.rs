//! Login failure limits, per account and per client address: in Redis (shared by every
//! instance), or in memory when the server runs without Redis.
//!
//! Fixed windows: the first failure starts a counter that expires after the window. A
//! success clears the account's counter (not the address's: one good password must not
//! reset an address that is spraying many accounts). Account keys use a hash of the email,
//! so Redis never holds addresses of people.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use redis::AsyncCommands as _;
use sha2::{Digest, Sha256};

use crate::{
    error::{AppError, AppResult},
    state::AppState,
};

fn account_key(email: &str) -> String {
    let digest = Sha256::digest(email.as_bytes());
    format!("rl:login:acct:{}", hex::encode(&digest[..12]))
}

fn ip_key(ip: IpAddr) -> String {
    format!("rl:login:ip:{ip}")
}

/// Counters of a single instance: key -> (failures, window end).
#[derive(Default)]
pub struct LocalLimits(Mutex<HashMap<String, (u32, Instant)>>);

impl LocalLimits {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, Instant)>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Failures in the current window and the seconds left of it.
    fn get(&self, key: &str) -> (u32, i64) {
        let now = Instant::now();
        let mut map = self.lock();
        map.retain(|_, (_, until)| *until > now);
        map.get(key).map_or((0, 0), |(n, until)| {
            (*n, until.duration_since(now).as_secs() as i64)
        })
    }

    fn fail(&self, key: String, window: Duration) {
        let now = Instant::now();
        self.lock().entry(key).or_insert((0, now + window)).0 += 1;
    }

    fn clear(&self, key: &str) {
        self.lock().remove(key);
    }
}

/// Refuses the attempt if the account or the address has failed too often in the window.
pub async fn check(state: &AppState, email: &str, ip: Option<IpAddr>) -> AppResult<()> {
    let account = account_key(email);
    let address = ip.map(ip_key);
    let ((acct, acct_ttl), (by_ip, ip_ttl)) = match &state.redis {
        Some(kv) => {
            let mut pipe = redis::pipe();
            pipe.get(kv.key(&account)).ttl(kv.key(&account));
            match &address {
                Some(a) => pipe.get(kv.key(a)).ttl(kv.key(a)),
                None => pipe.cmd("ECHO").arg(0).cmd("ECHO").arg(0),
            };
            let (a, at, i, it): (Option<u32>, i64, Option<u32>, i64) =
                pipe.query_async(&mut kv.conn()).await?;
            ((a.unwrap_or(0), at), (i.unwrap_or(0), it))
        }
        None => (
            state.local_limits.get(&account),
            address.as_deref().map_or((0, 0), |a| state.local_limits.get(a)),
        ),
    };
    let cfg = &state.config;
    if acct >= cfg.login_max_failures {
        return Err(AppError::RateLimited {
            retry_after_s: acct_ttl.max(1).unsigned_abs(),
        });
    }
    if address.is_some() && by_ip >= cfg.login_max_failures_per_ip {
        return Err(AppError::RateLimited {
            retry_after_s: ip_ttl.max(1).unsigned_abs(),
        });
    }
    Ok(())
}

pub async fn record_failure(state: &AppState, email: &str, ip: Option<IpAddr>) -> AppResult<()> {
    let window = state.config.login_window;
    let mut keys = vec![account_key(email)];
    keys.extend(ip.map(ip_key));
    match &state.redis {
        Some(kv) => {
            let mut pipe = redis::pipe();
            for key in &keys {
                // NX: the window starts at the first failure and is not extended by later ones.
                pipe.incr(kv.key(key), 1)
                    .ignore()
                    .cmd("EXPIRE")
                    .arg(kv.key(key))
                    .arg(window.as_secs().max(1))
                    .arg("NX")
                    .ignore();
            }
            let () = pipe.query_async(&mut kv.conn()).await?;
        }
        None => {
            for key in keys {
                state.local_limits.fail(key, window);
            }
        }
    }
    Ok(())
}

pub async fn record_success(state: &AppState, email: &str) -> AppResult<()> {
    let key = account_key(email);
    match &state.redis {
        Some(kv) => {
            let () = kv.conn().del(kv.key(&key)).await?;
        }
        None => state.local_limits.clear(&key),
    }
    Ok(())
}
