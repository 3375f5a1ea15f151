//! Seat layouts: validation, and generation in one statement.
//!
//! A layout names grades (VIP, R, S, A... with a price and a colour) and sections of rows,
//! each row a label, a seat count and a grade. Generation sends one array per column of the
//! *rows* (a few hundred values) and lets PostgreSQL expand them into seats with
//! `generate_series`: a 50,000-seat stadium is one INSERT, not 50,000.

use std::collections::HashSet;

use async_graphql::InputObject;
use diesel::sql_types::{Array, BigInt, Int4, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::{
    auth::Actor,
    concerts::store as concerts_store,
    error::{AppError, AppResult},
};

pub const MAX_SEATS: i64 = 100_000;
const MAX_GRADES: usize = 20;
const MAX_SECTIONS: usize = 200;
const MAX_ROWS_PER_SECTION: usize = 500;
const MAX_SEATS_PER_ROW: i32 = 1_000;
pub const MAX_PRICE: i64 = 100_000_000;

#[derive(InputObject, Clone)]
pub struct SeatLayoutInput {
    pub grades: Vec<SeatGradeInput>,
    pub sections: Vec<SeatSectionInput>,
}

#[derive(InputObject, Clone)]
pub struct SeatGradeInput {
    /// Unique within the layout, e.g. VIP, R, S, A.
    pub name: String,
    /// Price of one seat of this grade, in points.
    pub price: i64,
    /// Display colour, `#RRGGBB`.
    pub color: String,
}

#[derive(InputObject, Clone)]
pub struct SeatSectionInput {
    /// Unique within the layout, e.g. "Floor A".
    pub name: String,
    pub rows: Vec<SeatRowInput>,
}

#[derive(InputObject, Clone)]
pub struct SeatRowInput {
    /// Unique within its section, e.g. "A" or "12".
    pub label: String,
    /// Number of seats in the row, numbered from 1.
    pub seats: i32,
    /// Name of one of the layout's grades.
    pub grade: String,
}

/// A checked layout, flattened to one entry per row.
#[derive(Debug, PartialEq)]
pub struct Plan {
    pub grades: Vec<(String, i64, String)>,
    /// (grade index, section, row label, seat count)
    pub rows: Vec<(usize, String, String, i32)>,
    pub total: i64,
}

fn label(value: &str, field: &str, max: usize) -> AppResult<String> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(AppError::bad_input(
            field,
            format!("must be 1 to {max} printable characters"),
        ));
    }
    Ok(v.to_owned())
}

/// Checks a layout; errors name the offending field, e.g. `layout.sections[2].rows[0].grade`.
pub fn plan(layout: &SeatLayoutInput) -> AppResult<Plan> {
    if layout.grades.is_empty() || layout.grades.len() > MAX_GRADES {
        return Err(AppError::bad_input(
            "layout.grades",
            format!("must list 1 to {MAX_GRADES} grades"),
        ));
    }
    let mut grades = Vec::with_capacity(layout.grades.len());
    let mut names = HashSet::new();
    for (i, g) in layout.grades.iter().enumerate() {
        let name = label(&g.name, &format!("layout.grades[{i}].name"), 20)?;
        if !names.insert(name.to_lowercase()) {
            return Err(AppError::bad_input(
                format!("layout.grades[{i}].name"),
                format!("duplicate grade {name:?}"),
            ));
        }
        if !(0..=MAX_PRICE).contains(&g.price) {
            return Err(AppError::bad_input(
                format!("layout.grades[{i}].price"),
                format!("must be between 0 and {MAX_PRICE}"),
            ));
        }
        let color = g.color.trim();
        let valid_color =
            color.len() == 7 && color.starts_with('#') && color[1..].chars().all(|c| c.is_ascii_hexdigit());
        if !valid_color {
            return Err(AppError::bad_input(
                format!("layout.grades[{i}].color"),
                "must be #RRGGBB",
            ));
        }
        grades.push((name, g.price, color.to_ascii_uppercase()));
    }
    if layout.sections.is_empty() || layout.sections.len() > MAX_SECTIONS {
        return Err(AppError::bad_input(
            "layout.sections",
            format!("must list 1 to {MAX_SECTIONS} sections"),
        ));
    }
    let mut rows = Vec::new();
    let mut sections = HashSet::new();
    let mut total: i64 = 0;
    for (si, s) in layout.sections.iter().enumerate() {
        let section = label(&s.name, &format!("layout.sections[{si}].name"), 50)?;
        if !sections.insert(section.to_lowercase()) {
            return Err(AppError::bad_input(
                format!("layout.sections[{si}].name"),
                format!("duplicate section {section:?}"),
            ));
        }
        if s.rows.is_empty() || s.rows.len() > MAX_ROWS_PER_SECTION {
            return Err(AppError::bad_input(
                format!("layout.sections[{si}].rows"),
                format!("must list 1 to {MAX_ROWS_PER_SECTION} rows"),
            ));
        }
        let mut labels = HashSet::new();
        for (ri, r) in s.rows.iter().enumerate() {
            let at = format!("layout.sections[{si}].rows[{ri}]");
            let row = label(&r.label, &format!("{at}.label"), 20)?;
            if !labels.insert(row.to_lowercase()) {
                return Err(AppError::bad_input(
                    format!("{at}.label"),
                    format!("duplicate row {row:?}"),
                ));
            }
            if !(1..=MAX_SEATS_PER_ROW).contains(&r.seats) {
                return Err(AppError::bad_input(
                    format!("{at}.seats"),
                    format!("must be between 1 and {MAX_SEATS_PER_ROW}"),
                ));
            }
            let grade = r.grade.trim().to_lowercase();
            let Some(gi) = grades.iter().position(|(n, _, _)| n.to_lowercase() == grade) else {
                return Err(AppError::bad_input(
                    format!("{at}.grade"),
                    format!("unknown grade {:?}", r.grade),
                ));
            };
            total += i64::from(r.seats);
            if total > MAX_SEATS {
                return Err(AppError::bad_input(
                    "layout",
                    format!("a schedule has at most {MAX_SEATS} seats"),
                ));
            }
            rows.push((gi, section.clone(), row, r.seats));
        }
    }
    Ok(Plan { grades, rows, total })
}

#[derive(diesel::QueryableByName)]
struct GradeId {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    name: String,
}

/// Replaces the schedule's layout. Refused (CONFLICT, naming the rule) while any seat is held
/// or sold; blocked seats and past, dead reservations do not freeze it.
/// Runs under the schedule's booking-count lock, so no hold can slip in meanwhile. New seats
/// serve the schedule's waiting list first, in the same transaction (fans may join the line
/// of a schedule on sale before it has seats): the caller announces what that did.
pub async fn generate(
    conn: &mut AsyncPgConnection,
    writes: crate::in_doubt::Writes<'_>,
    actor: Actor,
    schedule_id: i64,
    plan: &Plan,
) -> AppResult<crate::waitlist::service::Served> {
    crate::in_doubt::write(conn, writes, async |conn| {
        let schedule = crate::locks::schedule(conn, schedule_id)
            .await?
            .ok_or(AppError::NotFound("schedule"))?;
        let concert = concerts_store::concert(conn, schedule.concert_id)
            .await?
            .ok_or(AppError::NotFound("concert"))?;
        actor.ensure_manages_concert(concert.host_id, &concert.status)?;
        if concert.status == crate::concerts::ConcertStatus::Cancelled
            || schedule.status == crate::concerts::ScheduleStatus::Cancelled
        {
            return Err(AppError::Conflict("the schedule is cancelled".into()));
        }
        let live = super::store::live_seats(conn, schedule_id).await?;
        if live > 0 {
            return Err(AppError::Conflict(format!(
                "rule `a layout with live holds or sales stays`: {live} seat(s) of this performance are held or sold; \
                 the layout can be replaced only while none is (cancelled and expired reservations do not count)"
            )));
        }
        // Seats that dead (cancelled, expired) reservations and their tickets still name keep
        // their rows for that history, detached from the schedule with their grades; every
        // other seat of the old layout, blocked ones included, goes.
        diesel::sql_query(
            "UPDATE seats SET schedule_id = NULL, status = 'available', block_reason = NULL
             WHERE schedule_id = $1 AND EXISTS (SELECT 1 FROM reservation_seats rs WHERE rs.seat_id = seats.id)",
        )
        .bind::<BigInt, _>(schedule_id)
        .execute(conn)
        .await?;
        diesel::sql_query("DELETE FROM seats WHERE schedule_id = $1")
            .bind::<BigInt, _>(schedule_id)
            .execute(conn)
            .await?;
        diesel::sql_query(
            "UPDATE seat_grades SET schedule_id = NULL
             WHERE schedule_id = $1 AND EXISTS (SELECT 1 FROM seats s WHERE s.grade_id = seat_grades.id)",
        )
        .bind::<BigInt, _>(schedule_id)
        .execute(conn)
        .await?;
        diesel::sql_query("DELETE FROM seat_grades WHERE schedule_id = $1")
            .bind::<BigInt, _>(schedule_id)
            .execute(conn)
            .await?;
        let ids: Vec<GradeId> = diesel::sql_query(
            "INSERT INTO seat_grades (schedule_id, name, price, color, position)
             SELECT $1, g.name, g.price, g.color, g.pos
             FROM unnest($2::text[], $3::bigint[], $4::text[]) WITH ORDINALITY AS g(name, price, color, pos)
             ORDER BY g.pos
             RETURNING id, name",
        )
        .bind::<BigInt, _>(schedule_id)
        .bind::<Array<Text>, _>(plan.grades.iter().map(|g| g.0.clone()).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(plan.grades.iter().map(|g| g.1).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(plan.grades.iter().map(|g| g.2.clone()).collect::<Vec<_>>())
        .load(conn)
        .await?;
        let id_of = |name: &str| ids.iter().find(|g| g.name == name).map(|g| g.id);
        let grade_ids = plan
            .rows
            .iter()
            .map(|r| id_of(&plan.grades[r.0].0))
            .collect::<Option<Vec<i64>>>()
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("a grade went missing while inserting")))?;
        diesel::sql_query(
            "INSERT INTO seats (schedule_id, grade_id, section, row_label, number)
             SELECT $1, r.grade_id, r.section, r.row_label, n
             FROM unnest($2::bigint[], $3::text[], $4::text[], $5::int[]) WITH ORDINALITY
                  AS r(grade_id, section, row_label, seats, ord)
             CROSS JOIN LATERAL generate_series(1, r.seats) AS n
             ORDER BY r.ord, n",
        )
        .bind::<BigInt, _>(schedule_id)
        .bind::<Array<BigInt>, _>(grade_ids)
        .bind::<Array<Text>, _>(plan.rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(plan.rows.iter().map(|r| r.2.clone()).collect::<Vec<_>>())
        .bind::<Array<Int4>, _>(plan.rows.iter().map(|r| r.3).collect::<Vec<_>>())
        .execute(conn)
        .await?;
        diesel::sql_query(
            "UPDATE schedules SET capacity = $2, booked_count = 0, version = version + 1, updated_at = now()
             WHERE id = $1",
        )
        .bind::<BigInt, _>(schedule_id)
        .bind::<Int4, _>(i32::try_from(plan.total).map_err(AppError::internal)?)
        .execute(conn)
        .await?;
        if concert.status == crate::concerts::ConcertStatus::Published {
            boxoffice_outbox::append::schedules(
                conn,
                boxoffice_outbox::webhooks::EventType::ScheduleChanged,
                &[schedule_id],
            )
            .await?;
        }
        crate::waitlist::service::serve(conn, schedule_id).await
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> SeatLayoutInput {
        SeatLayoutInput {
            grades: vec![
                SeatGradeInput {
                    name: "VIP".into(),
                    price: 150_000,
                    color: "#ff0000".into(),
                },
                SeatGradeInput {
                    name: "R".into(),
                    price: 100_000,
                    color: "#00FF00".into(),
                },
            ],
            sections: vec![SeatSectionInput {
                name: "Floor".into(),
                rows: vec![
                    SeatRowInput {
                        label: "A".into(),
                        seats: 10,
                        grade: "VIP".into(),
                    },
                    SeatRowInput {
                        label: "B".into(),
                        seats: 20,
                        grade: "r".into(),
                    },
                ],
            }],
        }
    }

    fn field_of(l: &SeatLayoutInput) -> String {
        match plan(l) {
            Err(AppError::BadInput { field, .. }) => field,
            other => panic!("expected a bad input, got {other:?}"),
        }
    }

    #[test]
    fn a_good_layout_is_planned() {
        let p = plan(&layout()).unwrap();
        assert_eq!(p.total, 30);
        assert_eq!(p.grades[0], ("VIP".into(), 150_000, "#FF0000".into()));
        assert_eq!(p.rows[1], (1, "Floor".into(), "B".into(), 20));
    }

    #[test]
    fn every_rule_names_its_field() {
        let mut l = layout();
        l.grades[1].name = "vip".into();
        assert_eq!(field_of(&l), "layout.grades[1].name");
        let mut l = layout();
        l.grades[0].price = -1;
        assert_eq!(field_of(&l), "layout.grades[0].price");
        let mut l = layout();
        l.grades[0].color = "red".into();
        assert_eq!(field_of(&l), "layout.grades[0].color");
        let mut l = layout();
        l.sections[0].rows[1].label = "a".into();
        assert_eq!(field_of(&l), "layout.sections[0].rows[1].label");
        let mut l = layout();
        l.sections[0].rows[0].grade = "Z".into();
        assert_eq!(field_of(&l), "layout.sections[0].rows[0].grade");
        let mut l = layout();
        l.sections[0].rows[0].seats = 0;
        assert_eq!(field_of(&l), "layout.sections[0].rows[0].seats");
        let mut l = layout();
        l.sections.push(l.sections[0].clone());
        assert_eq!(field_of(&l), "layout.sections[1].name");
        let mut l = layout();
        l.grades.clear();
        assert_eq!(field_of(&l), "layout.grades");
        let mut l = layout();
        l.sections[0].rows.clear();
        assert_eq!(field_of(&l), "layout.sections[0].rows");
        let mut l = layout();
        l.sections[0].name = " ".into();
        assert_eq!(field_of(&l), "layout.sections[0].name");
    }

    #[test]
    fn a_schedule_holds_at_most_100000_seats() {
        let mut l = layout();
        l.sections = (0..101)
            .map(|s| SeatSectionInput {
                name: format!("S{s}"),
                rows: (0..1)
                    .map(|r| SeatRowInput {
                        label: format!("{r}"),
                        seats: 1000,
                        grade: "R".into(),
                    })
                    .collect(),
            })
            .collect();
        assert_eq!(field_of(&l), "layout");
    }
}
