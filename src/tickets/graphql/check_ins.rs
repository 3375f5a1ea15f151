//! A performance's admissions, live: the `checkIns` subscription, and the announcement each
//! check-in makes to it through the hub.

use std::collections::BTreeMap;

use async_graphql::{Context, ID, SimpleObject, Subscription};
use boxoffice_ticket_codes::CheckInStatus as DoorStatus;
use futures_util::Stream;

use super::{CheckInStatus, may_watch};
use crate::{
    auth::context::state,
    db::Pool,
    error::AppResult,
    ids,
    live::Event,
    tickets::{
        door::Answer,
        store::{self, GateCount},
    },
};

/// Admissions of a performance so far, by gate.
#[derive(SimpleObject, Clone)]
pub struct CheckInCounts {
    schedule_id: ID,
    admitted: i64,
    by_gate: Vec<GateAdmissions>,
    /// A scan's gate and answer that caused this event; null for the first event and
    /// after a resync (counts re-read).
    last_gate: Option<String>,
    last_status: Option<CheckInStatus>,
}

#[derive(SimpleObject, Clone)]
pub struct GateAdmissions {
    gate: String,
    admitted: i64,
}

/// The hub topic of a performance's scans (its hash tag keeps it on the schedule's slot).
fn topic(schedule_id: i64) -> String {
    format!("{{s:{schedule_id}}}:checkins")
}

/// Tells `checkIns` watchers on every instance about scans just answered; best effort.
pub(super) fn announce(
    ctx: &Context<'_>,
    schedule_id: i64,
    answers: &[&Answer],
    gate_of: impl Fn(&Answer) -> String,
) {
    let Ok(st) = state(ctx) else { return };
    for a in answers {
        let payload = serde_json::json!({ "gate": gate_of(a), "status": a.status.as_str() }).to_string();
        st.live.hub.publish(&topic(schedule_id), payload);
    }
}

#[derive(Default)]
pub struct TicketsSubscription;

fn counts_of(
    schedule_id: i64,
    by_gate: &BTreeMap<String, i64>,
    last: Option<(String, CheckInStatus)>,
) -> CheckInCounts {
    CheckInCounts {
        schedule_id: ids::to_id(schedule_id),
        admitted: by_gate.values().sum(),
        by_gate: by_gate
            .iter()
            .map(|(gate, &admitted)| GateAdmissions {
                gate: gate.clone(),
                admitted,
            })
            .collect(),
        last_gate: last.as_ref().map(|(g, _)| g.clone()),
        last_status: last.map(|(_, s)| s),
    }
}

async fn read_counts(pool: &Pool, schedule_id: i64) -> AppResult<BTreeMap<String, i64>> {
    let mut conn = pool.get().await?;
    Ok(store::admitted_by_gate(&mut conn, schedule_id)
        .await?
        .into_iter()
        .map(|GateCount { gate, admitted }| (gate, admitted))
        .collect())
}

#[Subscription]
impl TicketsSubscription {
    /// Admissions of a performance by gate, live: the counts now, then after every scan
    /// (best effort: after a lost connection the counts are read again). For the host's
    /// dashboard and the performance's scanners.
    async fn check_ins(
        &self,
        ctx: &Context<'_>,
        schedule_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = CheckInCounts> + use<>> {
        let schedule_id = ids::parse(&schedule_id, "scheduleId")?;
        may_watch(ctx, schedule_id).await?;
        let st = state(ctx)?.clone();
        let sub = st.live.hub.subscribe(&topic(schedule_id));
        // Read once Redis confirmed the subscription: an admission in between is then in
        // the counts or in the feed.
        sub.ready().wait().await;
        let counts = read_counts(&st.db, schedule_id).await?;
        let first = counts_of(schedule_id, &counts, None);
        let pool = st.db.clone();
        let rest = futures_util::stream::unfold(
            (sub, counts, pool),
            move |(mut sub, mut counts, pool)| async move {
                loop {
                    match sub.recv().await? {
                        Event::Message(m) => {
                            let Ok(v) = serde_json::from_str::<serde_json::Value>(&m) else {
                                continue;
                            };
                            let gate = v["gate"].as_str().unwrap_or_default().to_owned();
                            let Some(status) = v["status"].as_str().and_then(DoorStatus::parse) else {
                                continue;
                            };
                            if status == DoorStatus::Admitted {
                                *counts.entry(gate.clone()).or_default() += 1;
                            }
                            let out = counts_of(schedule_id, &counts, Some((gate, status.into())));
                            return Some((out, (sub, counts, pool)));
                        }
                        Event::Resync => {
                            if let Ok(fresh) = read_counts(&pool, schedule_id).await {
                                counts = fresh;
                            }
                            let out = counts_of(schedule_id, &counts, None);
                            return Some((out, (sub, counts, pool)));
                        }
                    }
                }
            },
        );
        Ok(futures_util::StreamExt::chain(
            futures_util::stream::once(async move { first }),
            rest,
        ))
    }
}
