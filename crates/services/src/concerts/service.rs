//! Rules for concerts and schedules: validation, ownership, status transitions.

use async_graphql::InputObject;
use boxoffice_outbox::{append, webhooks::EventType};
use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;

use super::{
    ConcertStatus,
    store::{self, ConcertChanges, ConcertRow, NewSchedule, ScheduleRow},
};
use crate::{
    auth::{Actor, Role},
    error::{AppError, AppResult},
};

#[derive(InputObject)]
pub struct ConcertInput {
    pub title: String,
    pub artist: String,
    #[graphql(default)]
    pub description: String,
    pub venue: String,
    /// A free-form category such as `pop`, `rock`, `classical` (stored lower-case).
    pub category: String,
    /// An http(s) URL of the poster image.
    pub poster_url: Option<String>,
}

/// Fields to change; absent fields stay as they are.
#[derive(InputObject, Default)]
pub struct ConcertUpdateInput {
    pub title: Option<String>,
    pub artist: Option<String>,
    pub description: Option<String>,
    pub venue: Option<String>,
    pub category: Option<String>,
    pub poster_url: Option<String>,
}

#[derive(InputObject)]
pub struct ScheduleInput {
    pub starts_at: DateTime<Utc>,
    pub sales_open_at: DateTime<Utc>,
    pub sales_close_at: DateTime<Utc>,
    /// Seats one user may hold or own for this schedule (1..=20).
    pub per_user_limit: i32,
    /// How long a hold lasts before it expires, in seconds (30..=3600, default 300).
    #[graphql(default = 300)]
    pub hold_seconds: i32,
    /// Put buyers through the waiting queue when sales open.
    #[graphql(default)]
    pub queue_enabled: bool,
    /// Queue admissions per second (1..=10000).
    #[graphql(default = 50)]
    pub admit_per_second: i32,
    /// Admitted shoppers at most at once (1..=100000).
    #[graphql(default = 1000)]
    pub max_active: i32,
    /// How long an admission stays valid, in seconds (30..=7200).
    #[graphql(default = 600)]
    pub admission_seconds: i32,
}

fn text(value: &str, field: &str, max: usize, required: bool) -> AppResult<String> {
    let v = value.trim();
    let n = v.chars().count();
    if required && n == 0 {
        return Err(AppError::bad_input(field, "must not be empty"));
    }
    if n > max {
        return Err(AppError::bad_input(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if v.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(AppError::bad_input(field, "must not contain control characters"));
    }
    Ok(v.to_owned())
}

fn poster(value: &str, field: &str) -> AppResult<Option<String>> {
    crate::text::poster_url(value, field)
}

fn category(value: &str, field: &str) -> AppResult<String> {
    Ok(text(value, field, 50, true)?.to_lowercase())
}

fn changes_for_create(i: &ConcertInput) -> AppResult<ConcertChanges> {
    Ok(ConcertChanges {
        title: Some(text(&i.title, "input.title", 200, true)?),
        artist: Some(text(&i.artist, "input.artist", 200, true)?),
        description: Some(text(&i.description, "input.description", 5000, false)?),
        venue: Some(text(&i.venue, "input.venue", 200, true)?),
        category: Some(category(&i.category, "input.category")?),
        poster_url: Some(
            i.poster_url
                .as_deref()
                .map(|p| poster(p, "input.posterUrl"))
                .transpose()?
                .flatten(),
        ),
    })
}

fn changes_for_update(i: &ConcertUpdateInput) -> AppResult<ConcertChanges> {
    Ok(ConcertChanges {
        title: i
            .title
            .as_deref()
            .map(|v| text(v, "input.title", 200, true))
            .transpose()?,
        artist: i
            .artist
            .as_deref()
            .map(|v| text(v, "input.artist", 200, true))
            .transpose()?,
        description: i
            .description
            .as_deref()
            .map(|v| text(v, "input.description", 5000, false))
            .transpose()?,
        venue: i
            .venue
            .as_deref()
            .map(|v| text(v, "input.venue", 200, true))
            .transpose()?,
        category: i
            .category
            .as_deref()
            .map(|v| category(v, "input.category"))
            .transpose()?,
        poster_url: i
            .poster_url
            .as_deref()
            .map(|v| poster(v, "input.posterUrl"))
            .transpose()?,
    })
}

pub async fn create_concert(
    conn: &mut AsyncPgConnection,
    writes: crate::in_doubt::Writes<'_>,
    actor: Actor,
    input: &ConcertInput,
) -> AppResult<ConcertRow> {
    actor.ensure_role(Role::Host)?;
    let changes = changes_for_create(input)?;
    crate::in_doubt::write(conn, writes, async |conn| {
        Ok(store::insert_concert(conn, actor.id, &changes).await?)
    })
    .await
}

/// Loads a concert for a change by `actor`: it must exist, be theirs (or they an admin),
/// and not be cancelled. Locks the row until the transaction ends.
async fn managed_concert(conn: &mut AsyncPgConnection, actor: Actor, id: i64) -> AppResult<ConcertRow> {
    let concert = crate::locks::concert(conn, id)
        .await?
        .ok_or(AppError::NotFound("concert"))?;
    actor.ensure_manages_concert(concert.host_id, &concert.status)?;
    if concert.status == ConcertStatus::Cancelled {
        return Err(AppError::Conflict("the concert is cancelled".into()));
    }
    Ok(concert)
}

pub async fn update_concert(
    conn: &mut AsyncPgConnection,
    writes: crate::in_doubt::Writes<'_>,
    actor: Actor,
    id: i64,
    input: &ConcertUpdateInput,
) -> AppResult<ConcertRow> {
    let changes = changes_for_update(input)?;
    crate::in_doubt::write(conn, writes, async |conn| {
        let concert = managed_concert(conn, actor, id).await?;
        let nothing = changes.title.is_none()
            && changes.artist.is_none()
            && changes.description.is_none()
            && changes.venue.is_none()
            && changes.category.is_none()
            && changes.poster_url.is_none();
        if nothing {
            return Ok(concert);
        }
        let updated = store::update_concert(conn, id, &changes).await?;
        if updated.status == ConcertStatus::Published {
            append::schedules_of_concert(conn, EventType::ScheduleChanged, id).await?;
        }
        Ok(updated)
    })
    .await
}

/// Makes a draft visible to everyone. Needs at least one schedule with seats.
pub async fn publish_concert(
    conn: &mut AsyncPgConnection,
    writes: crate::in_doubt::Writes<'_>,
    actor: Actor,
    id: i64,
) -> AppResult<ConcertRow> {
    crate::in_doubt::write(conn, writes, async |conn| {
        let concert = managed_concert(conn, actor, id).await?;
        if concert.status == ConcertStatus::Published {
            return Ok(concert);
        }
        if store::count_sellable_schedules(conn, id).await? == 0 {
            return Err(AppError::Conflict(
                "add a schedule and its seat layout before publishing".into(),
            ));
        }
        let published = store::set_concert_status(conn, id, ConcertStatus::Published, None).await?;
        append::schedules_of_concert(conn, EventType::SchedulePublished, id).await?;
        Ok(published)
    })
    .await
}

/// The reason given for cancelling a concert, checked.
pub fn cancel_reason(reason: &str) -> AppResult<String> {
    text(reason, "reason", 500, true)
}

/// The concert side of cancelling a concert, before its schedules are cancelled (by
/// `booking::cancel_concert`, in the same transaction): locks the concert, checks that
/// `actor` may cancel it, and returns its schedules in ascending id.
pub async fn check_cancel_concert(
    conn: &mut AsyncPgConnection,
    actor: Actor,
    id: i64,
) -> AppResult<Vec<i64>> {
    let concert = managed_concert(conn, actor, id).await?;
    if concert.status == ConcertStatus::Draft {
        // Cancelled concerts are public (fans see why their show is off); a draft that
        // never went on sale would become visible by being cancelled.
        return Err(AppError::Conflict(
            "a draft was never on sale: edit it instead of cancelling it".into(),
        ));
    }
    Ok(store::schedule_ids_of_concert(conn, id).await?)
}

/// The concert side of cancelling a concert, after its schedules: the status, and the audit
/// entry (cancelling refunds money, so it is recorded with who did it).
pub async fn mark_concert_cancelled(
    conn: &mut AsyncPgConnection,
    actor: Actor,
    id: i64,
    reason: &str,
    schedules_cancelled: usize,
) -> AppResult<ConcertRow> {
    let concert = store::set_concert_status(conn, id, ConcertStatus::Cancelled, Some(reason)).await?;
    crate::admin::audit::record(
        conn,
        actor.id,
        "cancel_concert",
        "concert",
        Some(id),
        serde_json::json!({ "reason": reason, "schedules": schedules_cancelled }),
    )
    .await?;
    Ok(concert)
}

/// The concert side of cancelling one schedule (by `booking::cancel_schedule`, in the same
/// transaction): locks its concert and checks that `actor` may change it.
pub async fn check_cancel_schedule(
    conn: &mut AsyncPgConnection,
    actor: Actor,
    schedule_id: i64,
) -> AppResult<ScheduleRow> {
    let schedule = store::schedule(conn, schedule_id)
        .await?
        .ok_or(AppError::NotFound("schedule"))?;
    managed_concert(conn, actor, schedule.concert_id).await?;
    Ok(schedule)
}

/// A schedule its host (or an admin) runs: `updateSchedule`, prices, blocks, comps. Locks
/// the schedule row (lock order step 2: the booking-count lock every hold batch takes, so
/// what the caller then does to seats is serialized with every batch of the schedule) and
/// reads its concert. To anyone who does not manage the concert, another host included,
/// the schedule does not exist (NOT_FOUND): a host learns nothing of another's shows. A
/// cancelled show can no longer be changed (CONFLICT naming the rule).
pub async fn managed_schedule(
    conn: &mut AsyncPgConnection,
    actor: Actor,
    schedule_id: i64,
) -> AppResult<(ScheduleRow, ConcertRow)> {
    let schedule = crate::locks::schedule(conn, schedule_id)
        .await?
        .ok_or(AppError::NotFound("schedule"))?;
    let concert = store::concert(conn, schedule.concert_id)
        .await?
        .ok_or(AppError::NotFound("schedule"))?;
    if actor.ensure_manages(concert.host_id).is_err() {
        return Err(AppError::NotFound("schedule"));
    }
    if concert.status == ConcertStatus::Cancelled || schedule.status == super::ScheduleStatus::Cancelled {
        return Err(AppError::Conflict(
            "rule `cancelled shows are final`: this performance is cancelled and can no longer be changed"
                .into(),
        ));
    }
    Ok((schedule, concert))
}

pub(crate) fn range(v: i32, field: &str, lo: i32, hi: i32) -> AppResult<i32> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(AppError::bad_input(
            field,
            format!("must be between {lo} and {hi}"),
        ))
    }
}

pub fn validate_schedule(concert_id: i64, i: &ScheduleInput, now: DateTime<Utc>) -> AppResult<NewSchedule> {
    if i.starts_at <= now {
        return Err(AppError::bad_input("input.startsAt", "must be in the future"));
    }
    if i.sales_open_at >= i.sales_close_at {
        return Err(AppError::bad_input(
            "input.salesCloseAt",
            "must be after salesOpenAt",
        ));
    }
    if i.sales_close_at > i.starts_at {
        return Err(AppError::bad_input(
            "input.salesCloseAt",
            "must not be after startsAt",
        ));
    }
    if i.sales_close_at <= now {
        return Err(AppError::bad_input("input.salesCloseAt", "must be in the future"));
    }
    Ok(NewSchedule {
        concert_id,
        starts_at: i.starts_at,
        sales_open_at: i.sales_open_at,
        sales_close_at: i.sales_close_at,
        per_user_limit: range(i.per_user_limit, "input.perUserLimit", 1, 20)?,
        hold_seconds: range(i.hold_seconds, "input.holdSeconds", 30, 3600)?,
        queue_enabled: i.queue_enabled,
        admit_per_second: range(i.admit_per_second, "input.admitPerSecond", 1, 10_000)?,
        max_active: range(i.max_active, "input.maxActive", 1, 100_000)?,
        admission_seconds: range(i.admission_seconds, "input.admissionSeconds", 30, 7200)?,
    })
}

pub async fn add_schedule(
    conn: &mut AsyncPgConnection,
    writes: crate::in_doubt::Writes<'_>,
    actor: Actor,
    concert_id: i64,
    input: &ScheduleInput,
) -> AppResult<ScheduleRow> {
    let new = validate_schedule(concert_id, input, Utc::now())?;
    crate::in_doubt::write(conn, writes, async |conn| {
        let concert = managed_concert(conn, actor, concert_id).await?;
        let schedule = store::insert_schedule(conn, &new).await?;
        if concert.status == ConcertStatus::Published {
            append::schedules(conn, EventType::SchedulePublished, &[schedule.id]).await?;
        }
        Ok(schedule)
    })
    .await
}

/// Whether `viewer` may see this concert: published and cancelled ones are public, drafts
/// only to their host and admins.
pub fn visible(concert: &ConcertRow, actor: Option<Actor>) -> bool {
    visible_to(concert.status, concert.host_id, actor)
}

/// The one visibility rule, for every path that reaches a concert or one of its schedules
/// (queries, booking, orders, waiting lists, the queue, live updates): published and
/// cancelled concerts are public, drafts exist only for their host and admins. To anyone
/// else a hidden schedule answers exactly as an id that does not exist (NOT_FOUND).
pub fn visible_to(status: ConcertStatus, host_id: i64, actor: Option<Actor>) -> bool {
    status != ConcertStatus::Draft
        || actor.is_some_and(|a| a.role == Role::Admin || (a.role == Role::Host && a.id == host_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn input(now: DateTime<Utc>) -> ScheduleInput {
        ScheduleInput {
            starts_at: now + Duration::days(10),
            sales_open_at: now + Duration::days(1),
            sales_close_at: now + Duration::days(9),
            per_user_limit: 4,
            hold_seconds: 300,
            queue_enabled: false,
            admit_per_second: 50,
            max_active: 1000,
            admission_seconds: 600,
        }
    }

    #[test]
    fn schedule_rules_name_the_field() {
        let now = Utc::now();
        assert!(validate_schedule(1, &input(now), now).is_ok());
        type Tweak<'a> = Box<dyn Fn(&mut ScheduleInput) + 'a>;
        let cases: Vec<(Tweak, &str)> = vec![
            (
                Box::new(|i| i.starts_at = now - Duration::hours(1)),
                "input.startsAt",
            ),
            (
                Box::new(|i| i.sales_open_at = i.sales_close_at),
                "input.salesCloseAt",
            ),
            (
                Box::new(|i| i.sales_close_at = i.starts_at + Duration::hours(1)),
                "input.salesCloseAt",
            ),
            (Box::new(|i| i.per_user_limit = 0), "input.perUserLimit"),
            (Box::new(|i| i.per_user_limit = 21), "input.perUserLimit"),
            (Box::new(|i| i.hold_seconds = 10), "input.holdSeconds"),
            (Box::new(|i| i.admit_per_second = 0), "input.admitPerSecond"),
            (Box::new(|i| i.max_active = 0), "input.maxActive"),
            (Box::new(|i| i.admission_seconds = 5), "input.admissionSeconds"),
        ];
        for (tweak, field) in cases {
            let mut i = input(now);
            tweak(&mut i);
            match validate_schedule(1, &i, now) {
                Err(AppError::BadInput { field: f, .. }) => assert_eq!(f, field),
                _ => panic!("expected {field} to be refused"),
            }
        }
    }

    #[test]
    fn poster_urls() {
        assert!(poster("https://cdn.example.com/p.jpg", "f").unwrap().is_some());
        assert!(poster("", "f").unwrap().is_none());
        assert!(poster("javascript:alert(1)", "f").is_err());
        assert!(poster("ftp://x.io/p", "f").is_err());
    }
}
