//! Joining and leaving a line, and serving it when seats come back.

use diesel_async::AsyncPgConnection;

use super::{
    Offer,
    store::{self, EntryRow},
};
use crate::{
    auth::Actor,
    booking::{self, HoldRequest, MAX_SEATS_PER_REQUEST, SeatChange, Want, sale},
    concerts::service::visible_to,
    error::{AppError, AppResult, ErrorCode},
    locks::{self, LockedSchedule},
    state::Services,
};

/// Waiting entries looked at per release, earliest first: bounds the work a cancel or an
/// expiry does for a long line (the rest wait for the next seats to come back).
const SERVE_AT_MOST: i64 = 100;

/// What serving a line did: the seats it held (one change, after the release's) and the
/// offers to announce once the transaction commits.
#[derive(Default)]
pub struct Served {
    pub change: Option<SeatChange>,
    pub offers: Vec<Offer>,
}

/// Checks a join request: 1 to 10 seats, a non-empty grade name if any.
fn check(count: i32, grade: Option<&str>) -> AppResult<(i32, Option<String>)> {
    if !(1..=MAX_SEATS_PER_REQUEST as i32).contains(&count) {
        return Err(AppError::bad_input(
            "count",
            format!("must be 1 to {MAX_SEATS_PER_REQUEST}"),
        ));
    }
    match grade.map(str::trim) {
        Some("") => Err(AppError::bad_input("grade", "must not be empty")),
        g => Ok((count, g.map(str::to_owned))),
    }
}

/// Puts the user in the schedule's line. Refused for a schedule they may not see
/// (NOT_FOUND, as for one that does not exist), without an admission when the schedule
/// sells through the waiting queue (QUEUE_REQUIRED: the line is one more way to a seat, and
/// every way to a seat passes the queue), when sales are not open (CONFLICT), when what
/// they ask for is available right now (CONFLICT: reserve it instead), when they are in the
/// line already (CONFLICT), for a grade the schedule lacks (BAD_USER_INPUT), and when the
/// seats would take them over the per-user limit (LIMIT_EXCEEDED).
pub async fn join(
    state: &Services,
    actor: Actor,
    schedule_id: i64,
    count: i32,
    grade: Option<&str>,
) -> AppResult<EntryRow> {
    let (count, grade) = check(count, grade)?;
    let user_id = actor.id;
    crate::queue::ensure_may_book(state, schedule_id, actor).await?;
    let mut conn = state.db.get().await?;
    crate::in_doubt::write(&mut conn, state.writes(), async |conn| {
        // The schedule lock (step 2): nothing frees or takes its seats, nor serves its line,
        // until this entry is in, so it cannot miss seats that come back meanwhile.
        let locked = visible_schedule(conn, schedule_id, actor).await?;
        if let Some(why) = sale::rules(&locked.schedule, locked.concert_status, locked.db_now).refusal() {
            return Err(AppError::Conflict(why.to_owned()));
        }
        let grades = store::free_per_grade(conn, schedule_id).await?;
        let free = match &grade {
            Some(name) => {
                grades
                    .iter()
                    .find(|g| &g.name == name)
                    .ok_or_else(|| {
                        AppError::bad_input("grade", format!("this performance has no grade `{name}`"))
                    })?
                    .free
            }
            // Without a grade a hold takes seats of any one grade.
            None => grades.iter().map(|g| g.free).max().unwrap_or(0),
        };
        if free >= i64::from(count) {
            return Err(AppError::Conflict(
                "these seats are available now: reserve them instead".into(),
            ));
        }
        let mine = store::seats_of_user(conn, schedule_id, user_id).await?;
        let limit = i64::from(locked.schedule.per_user_limit);
        if mine + i64::from(count) > limit {
            return Err(AppError::rule(
                ErrorCode::LimitExceeded,
                format!("at most {limit} seats per person for this performance; you hold {mine}"),
            ));
        }
        if store::waiting(conn, schedule_id, user_id).await?.is_some() {
            return Err(AppError::Conflict(
                "you are already on this performance's waiting list".into(),
            ));
        }
        Ok(store::insert(conn, schedule_id, user_id, count, grade.as_deref()).await?)
    })
    .await
}

/// Takes the user out of the schedule's line: the entry left (now LEFT), or `None` if they
/// were not in it. NOT_FOUND for a schedule they may not see.
pub async fn leave(state: &Services, actor: Actor, schedule_id: i64) -> AppResult<Option<EntryRow>> {
    let mut conn = state.db.get().await?;
    crate::in_doubt::write(&mut conn, state.writes(), async |conn| {
        // Step 2, as joining and serving: leaving never races an offer being made.
        visible_schedule(conn, schedule_id, actor).await?;
        Ok(store::leave(conn, schedule_id, actor.id).await?)
    })
    .await
}

/// Locks the schedule (step 2) if `actor` may see it; NOT_FOUND otherwise, exactly as for
/// an id that does not exist (`concerts::service::visible_to`).
async fn visible_schedule(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
    actor: Actor,
) -> AppResult<LockedSchedule> {
    locks::schedule_for_batch(conn, schedule_id)
        .await?
        .filter(|l| visible_to(l.concert_status, l.concert_host_id, Some(actor)))
        .ok_or(AppError::NotFound("schedule"))
}

/// Serves the schedule's line from its free seats: called inside the transaction that
/// freed seats of `schedule_id`, under its schedule lock, after the seats were freed. The
/// earliest waiting entries that fit get a best-available hold each, decided by the booking
/// batch's own decision, so exactly its rules (per-user limit, sale rules, grades) apply.
pub async fn serve(conn: &mut AsyncPgConnection, schedule_id: i64) -> AppResult<Served> {
    let line = locks::waitlist(conn, schedule_id, SERVE_AT_MOST).await?;
    if line.is_empty() {
        return Ok(Served::default());
    }
    let requests: Vec<HoldRequest> = line
        .iter()
        .map(|e| HoldRequest {
            user_id: e.user_id,
            want: Want::BestAvailable {
                count: e.seat_count.unsigned_abs(),
                grade: e.grade.clone(),
            },
            idempotency_key: None,
            origin: booking::Origin::Waitlist,
        })
        .collect();
    let (results, change) = booking::hold_in_transaction(conn, schedule_id, &requests).await?;
    let offers: Vec<Offer> = line
        .iter()
        .zip(results)
        .filter_map(|(e, r)| {
            // An entry that does not fit (too few seats of its grade, or its fan holds
            // too many now) keeps its place.
            r.ok().map(|r| Offer {
                entry_id: e.id,
                user_id: e.user_id,
                schedule_id,
                reservation_id: r.id,
            })
        })
        .collect();
    store::mark_offered(conn, &offers).await?;
    if !offers.is_empty() {
        metrics::counter!("waitlist_offers_total").increment(offers.len() as u64);
    }
    Ok(Served { change, offers })
}
