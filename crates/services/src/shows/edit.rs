//! Editing a performance: `updateSchedule` and `updateGradePrices`.
//!
//! Both run under the schedule row lock (`concerts::service::managed_schedule`), the lock
//! every hold batch takes, so a batch decides either before the change (old limit, old
//! prices) or after it, never halfway. Every refusal names its rule in its message
//! ("rule `...`: ..."), and input errors name their field too.

use async_graphql::InputObject;
use boxoffice_outbox::{append, webhooks::EventType};
use chrono::{DateTime, Utc};
use diesel::{
    QueryableByName,
    sql_types::{Array, BigInt, Bool, Int4, Text, Timestamptz},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::{
    auth::Actor,
    concerts::{
        ConcertStatus,
        service::{managed_schedule, range},
        store::ScheduleRow,
    },
    error::{AppError, AppResult},
};

/// Fields of a performance to change; absent fields stay as they are.
#[derive(InputObject, Default)]
pub struct ScheduleUpdateInput {
    pub starts_at: Option<DateTime<Utc>>,
    pub sales_open_at: Option<DateTime<Utc>>,
    pub sales_close_at: Option<DateTime<Utc>>,
    /// Seats one user may hold or own (1..=20). A lower limit does not touch reservations
    /// made before: it applies to the next holds.
    pub per_user_limit: Option<i32>,
    /// How long the next holds last, in seconds (30..=3600).
    pub hold_seconds: Option<i32>,
    pub queue_enabled: Option<bool>,
    pub admit_per_second: Option<i32>,
    pub max_active: Option<i32>,
    pub admission_seconds: Option<i32>,
}

/// A grade's new price.
#[derive(InputObject)]
pub struct GradePriceInput {
    /// The grade's name, as in the layout.
    pub grade: String,
    /// Price of one seat of this grade, in points.
    pub price: i64,
}

/// A committed edit: the schedule as it now stands, and whether its seat map's version
/// moved (to announce).
pub struct Edited {
    pub schedule: ScheduleRow,
    pub changed: bool,
}

fn past(field: &str) -> AppError {
    AppError::bad_input(
        field,
        "rule `nothing moves into the past`: must be later than now",
    )
}

/// The schedule as `input` would leave it, checked against every rule of a schedule's
/// times and limits; `now` is the database clock.
fn merged(old: &ScheduleRow, i: &ScheduleUpdateInput, now: DateTime<Utc>) -> AppResult<ScheduleRow> {
    let mut new = old.clone();
    if let Some(t) = i.starts_at
        && t != old.starts_at
    {
        if t <= now {
            return Err(past("input.startsAt"));
        }
        new.starts_at = t;
    }
    if let Some(t) = i.sales_open_at
        && t != old.sales_open_at
    {
        if t < now {
            return Err(past("input.salesOpenAt"));
        }
        new.sales_open_at = t;
    }
    if let Some(t) = i.sales_close_at
        && t != old.sales_close_at
    {
        if t <= now {
            return Err(past("input.salesCloseAt"));
        }
        new.sales_close_at = t;
    }
    if new.sales_open_at >= new.sales_close_at {
        return Err(AppError::bad_input(
            if i.sales_close_at.is_some() {
                "input.salesCloseAt"
            } else {
                "input.salesOpenAt"
            },
            "rule `the sales window opens before it closes`: salesOpenAt must be before salesCloseAt",
        ));
    }
    if new.sales_close_at > new.starts_at {
        return Err(AppError::bad_input(
            if i.starts_at.is_some() {
                "input.startsAt"
            } else {
                "input.salesCloseAt"
            },
            "rule `sales close before the show`: salesCloseAt must not be after startsAt",
        ));
    }
    let limit = |v: Option<i32>, old: i32, field, lo, hi| v.map_or(Ok(old), |v| range(v, field, lo, hi));
    new.per_user_limit = limit(i.per_user_limit, old.per_user_limit, "input.perUserLimit", 1, 20)?;
    new.hold_seconds = limit(i.hold_seconds, old.hold_seconds, "input.holdSeconds", 30, 3600)?;
    new.admit_per_second = limit(
        i.admit_per_second,
        old.admit_per_second,
        "input.admitPerSecond",
        1,
        10_000,
    )?;
    new.max_active = limit(i.max_active, old.max_active, "input.maxActive", 1, 100_000)?;
    new.admission_seconds = limit(
        i.admission_seconds,
        old.admission_seconds,
        "input.admissionSeconds",
        30,
        7200,
    )?;
    new.queue_enabled = i.queue_enabled.unwrap_or(old.queue_enabled);
    Ok(new)
}

/// What changed, as `{field: [old, new]}`, for the audit log; empty if nothing did.
fn differences(old: &ScheduleRow, new: &ScheduleRow) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    let mut put = |name: &str, a: serde_json::Value, b: serde_json::Value| {
        if a != b {
            out.insert(name.to_owned(), serde_json::json!([a, b]));
        }
    };
    use serde_json::json;
    put("startsAt", json!(old.starts_at), json!(new.starts_at));
    put("salesOpenAt", json!(old.sales_open_at), json!(new.sales_open_at));
    put(
        "salesCloseAt",
        json!(old.sales_close_at),
        json!(new.sales_close_at),
    );
    put(
        "perUserLimit",
        json!(old.per_user_limit),
        json!(new.per_user_limit),
    );
    put("holdSeconds", json!(old.hold_seconds), json!(new.hold_seconds));
    put("queueEnabled", json!(old.queue_enabled), json!(new.queue_enabled));
    put(
        "admitPerSecond",
        json!(old.admit_per_second),
        json!(new.admit_per_second),
    );
    put("maxActive", json!(old.max_active), json!(new.max_active));
    put(
        "admissionSeconds",
        json!(old.admission_seconds),
        json!(new.admission_seconds),
    );
    out
}

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Changes a performance's times, limits and queue settings (its host or an admin).
/// Moving a show that has sold tickets tells its holders: a `schedule.changed` event in the
/// outbox (webhooks, the event stream) and, after commit, a live event to everyone
/// watching it. Every change is audited, with the ticket holders a move concerned.
pub async fn update_schedule(
    conn: &mut AsyncPgConnection,
    writes: crate::in_doubt::Writes<'_>,
    actor: Actor,
    id: i64,
    input: &ScheduleUpdateInput,
) -> AppResult<Edited> {
    crate::in_doubt::write(conn, writes, async |conn| {
        let (old, concert) = managed_schedule(conn, actor, id).await?;
        let now = crate::booking::sale::db_now(conn).await?;
        if old.starts_at <= now {
            return Err(AppError::Conflict(
                "rule `a show that started is history`: this performance has started and can no longer be edited"
                    .into(),
            ));
        }
        let new = merged(&old, input, now)?;
        let changes = differences(&old, &new);
        if changes.is_empty() {
            return Ok(Edited {
                schedule: old,
                changed: false,
            });
        }
        let schedule: ScheduleRow = diesel::sql_query(
            "UPDATE schedules SET starts_at = $2, sales_open_at = $3, sales_close_at = $4,
                 per_user_limit = $5, hold_seconds = $6, queue_enabled = $7, admit_per_second = $8,
                 max_active = $9, admission_seconds = $10,
                 limit_lowered_at = CASE WHEN $5 < per_user_limit THEN now() ELSE limit_lowered_at END,
                 version = version + 1, updated_at = now()
             WHERE id = $1 RETURNING *",
        )
        .bind::<BigInt, _>(id)
        .bind::<Timestamptz, _>(new.starts_at)
        .bind::<Timestamptz, _>(new.sales_open_at)
        .bind::<Timestamptz, _>(new.sales_close_at)
        .bind::<Int4, _>(new.per_user_limit)
        .bind::<Int4, _>(new.hold_seconds)
        .bind::<Bool, _>(new.queue_enabled)
        .bind::<Int4, _>(new.admit_per_second)
        .bind::<Int4, _>(new.max_active)
        .bind::<Int4, _>(new.admission_seconds)
        .get_result(conn)
        .await?;
        let moved = old.starts_at != schedule.starts_at;
        let holders = if moved { ticket_holders(conn, id).await? } else { 0 };
        if concert.status == ConcertStatus::Published {
            append::schedules(conn, EventType::ScheduleChanged, &[id]).await?;
        }
        crate::admin::audit::record(
            conn,
            actor.id,
            if moved { "move_schedule" } else { "update_schedule" },
            "schedule",
            Some(id),
            serde_json::json!({ "changes": changes, "ticketHolders": holders }),
        )
        .await?;
        Ok(Edited {
            schedule,
            changed: true,
        })
    })
    .await
}

/// Accounts holding a paid ticket of the schedule.
async fn ticket_holders(conn: &mut AsyncPgConnection, schedule_id: i64) -> AppResult<i64> {
    let row: N = diesel::sql_query(
        "SELECT count(DISTINCT user_id) AS n FROM reservations WHERE schedule_id = $1 AND status = 'confirmed'",
    )
    .bind::<BigInt, _>(schedule_id)
    .get_result(conn)
    .await?;
    Ok(row.n)
}

#[derive(QueryableByName)]
struct GradeTaken {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    price: i64,
    #[diesel(sql_type = BigInt)]
    taken: i64,
}

/// Checks a price list: 1 to 20 grades, each once, prices within the layout's bounds.
fn check_prices(prices: &[GradePriceInput]) -> AppResult<()> {
    if prices.is_empty() || prices.len() > 20 {
        return Err(AppError::bad_input("prices", "must list 1 to 20 grades"));
    }
    for (i, p) in prices.iter().enumerate() {
        let max = crate::seats::layout::MAX_PRICE;
        if !(0..=max).contains(&p.price) {
            return Err(AppError::bad_input(
                format!("prices[{i}].price"),
                format!("must be between 0 and {max}"),
            ));
        }
        if prices[..i].iter().any(|q| q.grade.trim() == p.grade.trim()) {
            return Err(AppError::bad_input(
                format!("prices[{i}].grade"),
                "lists a grade twice",
            ));
        }
    }
    Ok(())
}

/// Changes the prices of grades none of whose seats is held or sold (a held seat keeps the
/// price it was held at in its reservation anyway; the rule keeps one grade at one price for
/// everyone who bought it). Blocked and free seats do not freeze a price.
pub async fn update_grade_prices(
    conn: &mut AsyncPgConnection,
    writes: crate::in_doubt::Writes<'_>,
    actor: Actor,
    schedule_id: i64,
    prices: &[GradePriceInput],
) -> AppResult<Edited> {
    check_prices(prices)?;
    crate::in_doubt::write(conn, writes, async |conn| {
        let (old, concert) = managed_schedule(conn, actor, schedule_id).await?;
        let grades: Vec<GradeTaken> = diesel::sql_query(
            "SELECT g.id, g.name, g.price,
                    count(s.id) FILTER (WHERE s.status IN ('held', 'sold')) AS taken
             FROM seat_grades g LEFT JOIN seats s ON s.grade_id = g.id
             WHERE g.schedule_id = $1 GROUP BY g.id",
        )
        .bind::<BigInt, _>(schedule_id)
        .load(conn)
        .await?;
        let mut ids = Vec::new();
        let mut values = Vec::new();
        let mut changes = serde_json::Map::new();
        for (i, p) in prices.iter().enumerate() {
            let Some(g) = grades.iter().find(|g| g.name == p.grade.trim()) else {
                return Err(AppError::bad_input(
                    format!("prices[{i}].grade"),
                    format!("this performance has no grade {:?}", p.grade),
                ));
            };
            if g.price == p.price {
                continue;
            }
            if g.taken > 0 {
                return Err(AppError::Conflict(format!(
                    "rule `prices change before the first sale`: {} seat(s) of grade {} are held or sold, so its price stays {}",
                    g.taken, g.name, g.price
                )));
            }
            ids.push(g.id);
            values.push(p.price);
            changes.insert(g.name.clone(), serde_json::json!([g.price, p.price]));
        }
        if ids.is_empty() {
            return Ok(Edited {
                schedule: old,
                changed: false,
            });
        }
        diesel::sql_query(
            "UPDATE seat_grades g SET price = x.price FROM unnest($1::bigint[], $2::bigint[]) AS x(id, price)
             WHERE g.id = x.id",
        )
        .bind::<Array<BigInt>, _>(&ids)
        .bind::<Array<BigInt>, _>(&values)
        .execute(conn)
        .await?;
        // The version moves: seat maps and best-available layouts cached per version carry
        // the prices.
        let schedule: ScheduleRow = diesel::sql_query(
            "UPDATE schedules SET version = version + 1, updated_at = now() WHERE id = $1 RETURNING *",
        )
        .bind::<BigInt, _>(schedule_id)
        .get_result(conn)
        .await?;
        if concert.status == ConcertStatus::Published {
            append::schedules(conn, EventType::ScheduleChanged, &[schedule_id]).await?;
        }
        crate::admin::audit::record(
            conn,
            actor.id,
            "update_grade_prices",
            "schedule",
            Some(schedule_id),
            serde_json::json!({ "prices": changes }),
        )
        .await?;
        Ok(Edited {
            schedule,
            changed: true,
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn row(now: DateTime<Utc>) -> ScheduleRow {
        ScheduleRow {
            id: 1,
            concert_id: 1,
            starts_at: now + Duration::days(10),
            sales_open_at: now + Duration::days(1),
            sales_close_at: now + Duration::days(9),
            per_user_limit: 4,
            hold_seconds: 300,
            queue_enabled: false,
            admit_per_second: 50,
            max_active: 1000,
            admission_seconds: 600,
            status: crate::concerts::ScheduleStatus::Scheduled,
            capacity: 10,
            booked_count: 0,
            version: 1,
            created_at: now,
        }
    }

    fn field(r: AppResult<ScheduleRow>) -> String {
        match r {
            Err(AppError::BadInput { field, .. }) => field,
            other => panic!("expected a bad input, got {other:?}"),
        }
    }

    #[test]
    fn each_rule_names_its_field() {
        let now = Utc::now();
        let old = row(now);
        let i = |f: fn(&mut ScheduleUpdateInput)| {
            let mut i = ScheduleUpdateInput::default();
            f(&mut i);
            i
        };
        let past = |i: &mut ScheduleUpdateInput| i.starts_at = Some(Utc::now() - Duration::hours(1));
        assert_eq!(field(merged(&old, &i(past), now)), "input.startsAt");
        let after_show =
            |i: &mut ScheduleUpdateInput| i.sales_close_at = Some(Utc::now() + Duration::days(11));
        assert_eq!(field(merged(&old, &i(after_show), now)), "input.salesCloseAt");
        let before_close = |i: &mut ScheduleUpdateInput| i.starts_at = Some(Utc::now() + Duration::days(5));
        assert_eq!(field(merged(&old, &i(before_close), now)), "input.startsAt");
        let inverted = |i: &mut ScheduleUpdateInput| i.sales_open_at = Some(Utc::now() + Duration::days(9));
        assert_eq!(field(merged(&old, &i(inverted), now)), "input.salesOpenAt");
        let limit = |i: &mut ScheduleUpdateInput| i.per_user_limit = Some(21);
        assert_eq!(field(merged(&old, &i(limit), now)), "input.perUserLimit");
        // Unchanged past times are no move: a sale that opened yesterday may be edited.
        let mut open = row(now);
        open.sales_open_at = now - Duration::days(1);
        let same = ScheduleUpdateInput {
            sales_open_at: Some(open.sales_open_at),
            hold_seconds: Some(60),
            ..Default::default()
        };
        assert_eq!(merged(&open, &same, now).unwrap().hold_seconds, 60);
        assert!(differences(&old, &merged(&old, &ScheduleUpdateInput::default(), now).unwrap()).is_empty());
    }

    #[test]
    fn price_lists_are_checked() {
        let p = |grade: &str, price| GradePriceInput {
            grade: grade.into(),
            price,
        };
        assert!(check_prices(&[p("R", 10)]).is_ok());
        assert!(check_prices(&[]).is_err());
        assert!(check_prices(&[p("R", -1)]).is_err());
        assert!(check_prices(&[p("R", 1), p("R", 2)]).is_err());
    }
}
