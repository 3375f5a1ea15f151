//! Login and sign-up limits: in Redis (shared by every instance), or in memory when the
//! server runs without Redis.
//!
//! Login attempts are counted per (account, client address) and per client address, IPv6
//! addresses by their /64 (`auth::group`). The counters go up *before* the password is
//! checked, atomically, so forty concurrent guesses cannot all slip past a limit of five:
//! the sixth and later are refused without running argon2. A success gives the attempt
//! back (the pair's counter is cleared, the address's decremented).
//!
//! Per (account, address) rather than per account: an attacker elsewhere can exhaust only
//! their own pair, never lock the owner out. Each time a pair reaches the limit its lock
//! lasts twice as long as the previous one (up to a day), so a patient guesser gets five
//! tries per window, then per two windows, and so on. The per-address limit bounds
//! spraying many accounts from one network.
//!
//! Sign-ups are counted per client address in a fixed window. Account keys use a hash of
//! the email, so Redis never holds addresses of people in clear.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};

use super::local_limits::LocalLimits;
use crate::{
    error::{AppError, AppResult},
    state::Services,
};

/// The longest lock a pair can reach by doubling.
const MAX_LOCK: Duration = Duration::from_secs(24 * 3600);

fn account_hash(email: &str) -> String {
    let digest = Sha256::digest(email.as_bytes());
    hex::encode(&digest[..12])
}

fn address(ip: Option<IpAddr>) -> String {
    ip.map_or_else(|| "unknown".to_owned(), |ip| super::group(ip).to_string())
}

/// An attempt that passed the limits: what to give back if the password was right.
pub struct Attempt {
    pair: String,
    strikes: String,
    ip: String,
}

/// Counts a login attempt; RATE_LIMITED if the address or the (account, address) pair has
/// failed too often. Call before checking the password.
pub async fn begin_login(state: &Services, email: &str, ip: Option<IpAddr>) -> AppResult<Attempt> {
    let cfg = &state.config;
    let addr = address(ip);
    let acct = account_hash(email);
    let attempt = Attempt {
        // One hash tag, the address: the script and the pipeline below use the three keys
        // together, so on a Redis Cluster they share a slot.
        pair: format!("rl:login:{{a:{addr}}}:pair:{acct}"),
        strikes: format!("rl:login:{{a:{addr}}}:strikes:{acct}"),
        ip: format!("rl:login:{{a:{addr}}}:ip"),
    };
    let window = cfg.login_window.as_secs().max(1);
    // (refused, seconds to wait)
    let (refused, wait): (bool, u64) = match &state.redis {
        Some(kv) => {
            // One script: the address first (a refused attempt does not touch the pair),
            // then the pair; the step that crosses the pair's limit doubles its lock.
            let script = redis::Script::new(
                r"
                local window = tonumber(ARGV[1])
                local ip = redis.call('INCR', KEYS[3])
                if ip == 1 then redis.call('EXPIRE', KEYS[3], window) end
                if ip > tonumber(ARGV[3]) then
                  redis.call('DECR', KEYS[3])
                  return {1, redis.call('TTL', KEYS[3])}
                end
                local n = redis.call('INCR', KEYS[1])
                if n == 1 then redis.call('EXPIRE', KEYS[1], window) end
                local max = tonumber(ARGV[2])
                if n == max + 1 then
                  local strikes = redis.call('INCR', KEYS[2])
                  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
                  local lock = math.floor(math.min(window * 2 ^ (strikes - 1), tonumber(ARGV[4])))
                  redis.call('EXPIRE', KEYS[1], lock)
                end
                if n > max then
                  redis.call('DECR', KEYS[3])
                  return {1, redis.call('TTL', KEYS[1])}
                end
                return {0, 0}
                ",
            );
            let (refused, wait): (i64, i64) = script
                .key(kv.key(&attempt.pair))
                .key(kv.key(&attempt.strikes))
                .key(kv.key(&attempt.ip))
                .arg(window)
                .arg(cfg.login_max_failures)
                .arg(cfg.login_max_failures_per_ip)
                .arg(MAX_LOCK.as_secs())
                .invoke_async(&mut kv.conn())
                .await?;
            (refused == 1, wait.max(1).unsigned_abs())
        }
        None => {
            let limits = &state.local_limits;
            let mut map = limits.lock();
            let w = Duration::from_secs(window);
            let (ip_n, ip_wait) = LocalLimits::incr(&mut map, &attempt.ip, w);
            if ip_n > u64::from(cfg.login_max_failures_per_ip) {
                if let Some(e) = map.get_mut(&attempt.ip) {
                    e.0 -= 1;
                }
                (true, ip_wait)
            } else {
                let (n, wait) = LocalLimits::incr(&mut map, &attempt.pair, w);
                let max = u64::from(cfg.login_max_failures);
                if n == max + 1 {
                    let (strikes, _) = LocalLimits::incr(&mut map, &attempt.strikes, MAX_LOCK);
                    let lock = (w * 2u32.saturating_pow(u32::try_from(strikes - 1).unwrap_or(u32::MAX)))
                        .min(MAX_LOCK);
                    if let Some(e) = map.get_mut(&attempt.pair) {
                        e.1 = Instant::now() + lock;
                    }
                }
                if n > max {
                    if let Some(e) = map.get_mut(&attempt.ip) {
                        e.0 -= 1;
                    }
                    let wait = map.get(&attempt.pair).map_or(wait, |e| {
                        e.1.saturating_duration_since(Instant::now()).as_secs().max(1)
                    });
                    (true, wait)
                } else {
                    (false, 0)
                }
            }
        }
    };
    if refused {
        return Err(AppError::RateLimited { retry_after_s: wait });
    }
    Ok(attempt)
}

/// The password was right: the attempt is given back.
pub async fn login_succeeded(state: &Services, attempt: Attempt) -> AppResult<()> {
    match &state.redis {
        Some(kv) => {
            let mut pipe = redis::pipe();
            pipe.del(kv.key(&attempt.pair))
                .ignore()
                .del(kv.key(&attempt.strikes))
                .ignore()
                .decr(kv.key(&attempt.ip), 1)
                .ignore();
            let () = pipe.query_async(&mut kv.conn()).await?;
        }
        None => {
            let mut map = state.local_limits.lock();
            map.remove(&attempt.pair);
            map.remove(&attempt.strikes);
            if let Some(e) = map.get_mut(&attempt.ip) {
                e.0 = e.0.saturating_sub(1);
            }
        }
    }
    Ok(())
}

/// Counts a sign-up from `ip`; RATE_LIMITED past SIGNUP_MAX_PER_IP in the window.
pub async fn sign_up_allowed(state: &Services, ip: Option<IpAddr>) -> AppResult<()> {
    let cfg = &state.config;
    let key = format!("rl:signup:ip:{}", address(ip));
    let window = cfg.edge.signup_window.as_secs().max(1);
    let (n, wait): (u64, u64) = match &state.redis {
        Some(kv) => {
            let mut pipe = redis::pipe();
            pipe.incr(kv.key(&key), 1)
                .cmd("EXPIRE")
                .arg(kv.key(&key))
                .arg(window)
                .arg("NX")
                .ignore()
                .ttl(kv.key(&key));
            match pipe.query_async::<(u64, i64)>(&mut kv.conn()).await {
                Ok((n, ttl)) => (n, ttl.max(1).unsigned_abs()),
                Err(e) => {
                    // Sign-ups do not otherwise need Redis: a Redis outage must not stop
                    // them, so this limit fails open (argon2 and the database still bound
                    // what one request costs).
                    tracing::warn!(error = %e, "sign-up limit unavailable: allowing");
                    return Ok(());
                }
            }
        }
        None => {
            let mut map = state.local_limits.lock();
            LocalLimits::incr(&mut map, &key, Duration::from_secs(window))
        }
    };
    if n > u64::from(cfg.edge.signup_max_per_ip) {
        return Err(AppError::RateLimited { retry_after_s: wait });
    }
    Ok(())
}
