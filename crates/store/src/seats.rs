//! Seat map and availability queries.

use diesel::{
    QueryableByName,
    sql_types::{Array, BigInt, Int4, Nullable, Text},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use boxoffice_core::best_available::{LayoutBuilder, SeatLayout};

crate::text_enum! {
    // Stored in `seats.status`.
    /// Where a seat stands: free, held by a reservation waiting for payment, sold, or
    /// blocked (kept back by the host: never sold, in no reservation).
    pub enum SeatStatus {
        Available => "available",
        Held => "held",
        Sold => "sold",
        Blocked => "blocked",
    }
}

#[derive(QueryableByName, Clone, Debug)]
pub struct SeatRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub schedule_id: i64,
    #[diesel(sql_type = Text)]
    pub section: String,
    #[diesel(sql_type = Text)]
    pub row_label: String,
    #[diesel(sql_type = Int4)]
    pub number: i32,
    #[diesel(sql_type = Text)]
    pub status: SeatStatus,
    #[diesel(sql_type = Text)]
    pub grade: String,
    #[diesel(sql_type = BigInt)]
    pub price: i64,
}

/// Every seat of the given schedules with grade and price, in layout order.
pub async fn seat_maps(
    conn: &mut AsyncPgConnection,
    schedule_ids: &[i64],
) -> diesel::QueryResult<Vec<SeatRow>> {
    diesel::sql_query(
        "SELECT s.id, s.schedule_id, s.section, s.row_label, s.number, s.status, g.name AS grade, g.price
         FROM seats s JOIN seat_grades g ON g.id = s.grade_id
         WHERE s.schedule_id = ANY($1)
         ORDER BY s.id",
    )
    .bind::<Array<BigInt>, _>(schedule_ids)
    .load(conn)
    .await
}

/// One page of a schedule's seats in layout order (ascending id): at most `limit` seats
/// after seat `after`, narrowed to a section, grade or status when given. Served by the
/// `(schedule_id, id)` index, so a page of a 50,000-seat map reads only its own seats.
pub async fn seat_page(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
    narrow: &Narrow<'_>,
    after: Option<i64>,
    limit: i64,
) -> diesel::QueryResult<Vec<SeatRow>> {
    diesel::sql_query(
        "SELECT s.id, s.schedule_id, s.section, s.row_label, s.number, s.status, g.name AS grade, g.price
         FROM seats s JOIN seat_grades g ON g.id = s.grade_id
         WHERE s.schedule_id = $1 AND s.id > $2
           AND ($3::text IS NULL OR s.section = $3)
           AND ($4::text IS NULL OR g.name = $4)
           AND ($5::text IS NULL OR s.status = $5)
         ORDER BY s.id
         LIMIT $6",
    )
    .bind::<BigInt, _>(schedule_id)
    .bind::<BigInt, _>(after.unwrap_or(0))
    .bind::<Nullable<Text>, _>(narrow.section)
    .bind::<Nullable<Text>, _>(narrow.grade)
    .bind::<Nullable<Text>, _>(narrow.status.map(SeatStatus::as_db))
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

/// What `Schedule.seats` is narrowed to.
#[derive(Default)]
pub struct Narrow<'a> {
    pub section: Option<&'a str>,
    pub grade: Option<&'a str>,
    pub status: Option<SeatStatus>,
}

/// A section of a schedule's layout and its seats, in layout order.
#[derive(QueryableByName, Clone, Debug)]
pub struct SectionRow {
    #[diesel(sql_type = Text)]
    pub section: String,
    #[diesel(sql_type = BigInt)]
    pub seats: i64,
}

pub async fn sections(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
) -> diesel::QueryResult<Vec<SectionRow>> {
    diesel::sql_query(
        "SELECT section, count(*) AS seats FROM seats WHERE schedule_id = $1
         GROUP BY section ORDER BY min(id)",
    )
    .bind::<BigInt, _>(schedule_id)
    .load(conn)
    .await
}

/// The given seats (of any schedule), for reservations. A seat detached from its schedule by
/// a layout replacement (kept for the dead reservations naming it) has schedule 0.
pub async fn seats_by_ids(conn: &mut AsyncPgConnection, ids: &[i64]) -> diesel::QueryResult<Vec<SeatRow>> {
    diesel::sql_query(
        "SELECT s.id, coalesce(s.schedule_id, 0) AS schedule_id, s.section, s.row_label, s.number, s.status, g.name AS grade, g.price
         FROM seats s JOIN seat_grades g ON g.id = s.grade_id
         WHERE s.id = ANY($1)
         ORDER BY s.id",
    )
    .bind::<Array<BigInt>, _>(ids)
    .load(conn)
    .await
}

#[derive(QueryableByName)]
struct LayoutSeat {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    section: String,
    #[diesel(sql_type = Text)]
    row_label: String,
    #[diesel(sql_type = Int4)]
    number: i32,
    #[diesel(sql_type = Int4)]
    grade: i32,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    free: bool,
}

#[derive(QueryableByName)]
struct Grade {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    price: i64,
}

/// A schedule's whole layout with what is free now, for best-available picking, and its
/// grade names by the layout's grade index (grades in declaration order). Seat ids are
/// generated in layout order, so `ORDER BY id` is layout order. The caller holds the
/// schedule lock if the answer must stay true.
pub async fn layout_for_picking(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
) -> diesel::QueryResult<(SeatLayout, Vec<String>)> {
    let grades: Vec<Grade> =
        diesel::sql_query("SELECT name, price FROM seat_grades WHERE schedule_id = $1 ORDER BY position, id")
            .bind::<BigInt, _>(schedule_id)
            .load(conn)
            .await?;
    // The grade index is the grade's rank among the schedule's grades.
    let seats: Vec<LayoutSeat> = diesel::sql_query(
        "SELECT s.id, s.section, s.row_label, s.number, (g.rank - 1)::int AS grade,
                s.status = 'available' AS free
         FROM seats s
         JOIN (SELECT id, row_number() OVER (ORDER BY position, id) AS rank
               FROM seat_grades WHERE schedule_id = $1) g ON g.id = s.grade_id
         WHERE s.schedule_id = $1
         ORDER BY s.id",
    )
    .bind::<BigInt, _>(schedule_id)
    .load(conn)
    .await?;
    let mut builder = LayoutBuilder::with_capacity(grades.iter().map(|g| g.price).collect(), seats.len());
    for s in &seats {
        let grade = usize::try_from(s.grade).unwrap_or(usize::MAX);
        builder.seat(&s.section, &s.row_label, s.number, s.id, grade, s.free);
    }
    Ok((builder.finish(), grades.into_iter().map(|g| g.name).collect()))
}

#[derive(QueryableByName, Clone, Debug)]
pub struct GradeCount {
    #[diesel(sql_type = BigInt)]
    pub schedule_id: i64,
    #[diesel(sql_type = BigInt)]
    pub grade_id: i64,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = BigInt)]
    pub price: i64,
    #[diesel(sql_type = Text)]
    pub color: String,
    #[diesel(sql_type = BigInt)]
    pub total: i64,
    #[diesel(sql_type = BigInt)]
    pub available: i64,
    #[diesel(sql_type = BigInt)]
    pub held: i64,
    #[diesel(sql_type = BigInt)]
    pub sold: i64,
    #[diesel(sql_type = BigInt)]
    pub blocked: i64,
}

/// Per grade: seats in total, available, held, sold and blocked, for several schedules at
/// once.
pub async fn availability(
    conn: &mut AsyncPgConnection,
    schedule_ids: &[i64],
) -> diesel::QueryResult<Vec<GradeCount>> {
    diesel::sql_query(
        "SELECT g.schedule_id, g.id AS grade_id, g.name, g.price, g.color,
                count(s.id) AS total,
                count(s.id) FILTER (WHERE s.status = 'available') AS available,
                count(s.id) FILTER (WHERE s.status = 'held') AS held,
                count(s.id) FILTER (WHERE s.status = 'sold') AS sold,
                count(s.id) FILTER (WHERE s.status = 'blocked') AS blocked
         FROM seat_grades g LEFT JOIN seats s ON s.grade_id = g.id
         WHERE g.schedule_id = ANY($1)
         GROUP BY g.schedule_id, g.id
         ORDER BY g.schedule_id, g.position",
    )
    .bind::<Array<BigInt>, _>(schedule_ids)
    .load(conn)
    .await
}

/// Seats of a schedule held or sold now (live reservations'): what freezes its layout.
pub async fn live_seats(conn: &mut AsyncPgConnection, schedule_id: i64) -> diesel::QueryResult<i64> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let row: N = diesel::sql_query(
        "SELECT count(*) AS n FROM seats WHERE schedule_id = $1 AND status IN ('held', 'sold')",
    )
    .bind::<BigInt, _>(schedule_id)
    .get_result(conn)
    .await?;
    Ok(row.n)
}
