//! Login failure limits, per account and per client address, in Redis.
//!
//! Fixed windows: the first failure starts a counter that expires after the window. A
//! success clears the account's counter (not the address's: one good password must not
//! reset an address that is spraying many accounts). Account keys use a hash of the email,
//! so Redis never holds addresses of people.

use std::net::IpAddr;

use redis::AsyncCommands as _;
use sha2::{Digest, Sha256};

use crate::{
    error::{AppError, AppResult},
    state::AppState,
};

fn account_key(state: &AppState, email: &str) -> String {
    let digest = Sha256::digest(email.as_bytes());
    state
        .kv
        .key(&format!("rl:login:acct:{}", hex::encode(&digest[..12])))
}

fn ip_key(state: &AppState, ip: IpAddr) -> String {
    state.kv.key(&format!("rl:login:ip:{ip}"))
}

/// Refuses the attempt if the account or the address has failed too often in the window.
pub async fn check(state: &AppState, email: &str, ip: Option<IpAddr>) -> AppResult<()> {
    let mut conn = state.kv.conn();
    let account_key = account_key(state, email);
    let mut pipe = redis::pipe();
    pipe.get(&account_key).ttl(&account_key);
    let ip_key = ip.map(|ip| ip_key(state, ip));
    if let Some(key) = &ip_key {
        pipe.get(key).ttl(key);
    } else {
        pipe.cmd("ECHO").arg(0).cmd("ECHO").arg(0);
    }
    let (acct, acct_ttl, by_ip, ip_ttl): (Option<u32>, i64, Option<u32>, i64) =
        pipe.query_async(&mut conn).await?;
    let cfg = &state.config;
    if acct.unwrap_or(0) >= cfg.login_max_failures {
        return Err(AppError::RateLimited {
            retry_after_s: acct_ttl.max(1).unsigned_abs(),
        });
    }
    if ip_key.is_some() && by_ip.unwrap_or(0) >= cfg.login_max_failures_per_ip {
        return Err(AppError::RateLimited {
            retry_after_s: ip_ttl.max(1).unsigned_abs(),
        });
    }
    Ok(())
}

pub async fn record_failure(state: &AppState, email: &str, ip: Option<IpAddr>) -> AppResult<()> {
    let window = state.config.login_window.as_secs().max(1);
    let mut keys = vec![account_key(state, email)];
    keys.extend(ip.map(|ip| ip_key(state, ip)));
    let mut pipe = redis::pipe();
    for key in &keys {
        // NX: the window starts at the first failure and is not extended by later ones.
        pipe.incr(key, 1)
            .ignore()
            .cmd("EXPIRE")
            .arg(key)
            .arg(window)
            .arg("NX")
            .ignore();
    }
    let () = pipe.query_async(&mut state.kv.conn()).await?;
    Ok(())
}

pub async fn record_success(state: &AppState, email: &str) -> AppResult<()> {
    let () = state.kv.conn().del(account_key(state, email)).await?;
    Ok(())
}
