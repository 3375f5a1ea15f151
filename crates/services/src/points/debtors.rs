//! Who owes points, remembered for a second per instance: an account in debt takes no new
//! holds, and asking the database on every hold would add a round trip (and a pooled
//! connection) to the flash sale's hot path for a rule that almost never applies. The set
//! comes from one indexed query per instance per second (`users_in_debt`); a debt created
//! on this instance is known here at once, on the others within a second.

use std::{
    collections::HashSet,
    sync::{
        RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::{
    db::Pool,
    error::{AppError, AppResult, ErrorCode},
    schema::users,
};

const FRESH: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Debtors {
    known: RwLock<Known>,
    refreshing: AtomicBool,
}

#[derive(Default)]
struct Known {
    at: Option<Instant>,
    ids: HashSet<i64>,
}

impl Debtors {
    /// INSUFFICIENT_POINTS when the account owes points.
    pub async fn ensure_not_in_debt(&self, pool: &Pool, user_id: i64) -> AppResult<()> {
        let (at, listed) = {
            let k = self
                .known
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (k.at, k.ids.contains(&user_id))
        };
        let stale = at.is_none_or(|t| t.elapsed() >= FRESH);
        // One caller refreshes; the others go on with the set a second old (unless there
        // is none yet).
        let listed = if stale && (at.is_none() || !self.refreshing.swap(true, Ordering::AcqRel)) {
            let fresh = self.refresh(pool).await;
            self.refreshing.store(false, Ordering::Release);
            fresh?.contains(&user_id)
        } else {
            listed
        };
        if !listed {
            return Ok(());
        }
        let mut conn = pool.get().await?;
        let debt = super::store::debt(&mut conn, user_id).await?;
        if debt > 0 {
            return Err(AppError::rule(
                ErrorCode::InsufficientPoints,
                format!(
                    "this account owes {debt} points after a cancelled payment: top up to settle it before holding seats"
                ),
            ));
        }
        Ok(())
    }

    /// A debt just created on this instance.
    pub fn mark(&self, user_id: i64) {
        self.known
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .ids
            .insert(user_id);
    }

    async fn refresh(&self, pool: &Pool) -> AppResult<HashSet<i64>> {
        let mut conn = pool.get().await?;
        let ids: Vec<i64> = users::table
            .filter(users::points_debt.gt(0))
            .select(users::id)
            .load(&mut conn)
            .await?;
        let ids: HashSet<i64> = ids.into_iter().collect();
        let mut k = self
            .known
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        k.at = Some(Instant::now());
        k.ids = ids.clone();
        Ok(ids)
    }
}
