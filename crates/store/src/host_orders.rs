//! What a host reads of a schedule's orders: the order list with its buyers (`scheduleOrders`),
//! the rows of the CSV exports, and sales over time. Reads only; refunds go through booking.

use chrono::{DateTime, Utc};
use diesel::{
    QueryableByName,
    sql_types::{Array, BigInt, Int4, Nullable, Text, Timestamptz},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::booking::{ReservationRow, ReservationStatus};

/// A reservation with its buyer, as a host sees it: the reservation row itself (read by
/// column name from `r.*`, so it cannot drift from booking's), and what the host adds.
#[derive(QueryableByName, Clone, Debug)]
pub struct OrderRow {
    #[diesel(embed)]
    pub reservation: ReservationRow,
    #[diesel(sql_type = Text)]
    pub buyer_name: String,
    #[diesel(sql_type = Text)]
    pub buyer_email: String,
    /// Points given back for this reservation (refund ledger entries).
    #[diesel(sql_type = BigInt)]
    pub refunded: i64,
}

/// What the order list is narrowed to.
#[derive(Default, Debug, Clone)]
pub struct OrderFilter {
    /// Only these statuses (none: all).
    pub statuses: Vec<ReservationStatus>,
    /// Part of the buyer's email or display name (case-insensitive).
    pub text: Option<String>,
    /// Exactly this reservation (the text was a reservation id).
    pub reservation_id: Option<i64>,
}

/// `%term%` for ILIKE, with the pattern characters of `term` taken literally.
pub fn like_pattern(term: &str) -> String {
    format!(
        "%{}%",
        term.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
    )
}

const ORDER_COLUMNS: &str = "r.*, u.display_name AS buyer_name, u.email AS buyer_email,
        coalesce((SELECT sum(l.amount) FROM point_ledger l
                  WHERE l.reservation_id = r.id AND l.kind = 'refund'), 0)::bigint AS refunded";

/// A schedule's orders, newest first, after the cursor id, narrowed by `filter`: at most
/// `limit + 1` rows (the extra one says there is a next page).
pub async fn orders(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
    filter: &OrderFilter,
    after: Option<i64>,
    limit: i64,
) -> diesel::QueryResult<Vec<OrderRow>> {
    let statuses: Vec<String> = filter.statuses.iter().map(|s| s.as_db().to_owned()).collect();
    // One statement whatever the filter: the optional parts are NULL-guarded, so the plan
    // walks `reservations_schedule` from the cursor down.
    diesel::sql_query(format!(
        "SELECT {ORDER_COLUMNS}
         FROM reservations r JOIN users u ON u.id = r.user_id
         WHERE r.schedule_id = $1
           AND ($2::bigint IS NULL OR r.id < $2)
           AND (cardinality($3::text[]) = 0 OR r.status = ANY($3))
           AND ($4::text IS NULL OR (u.email || ' ' || u.display_name) ILIKE $4
                OR r.id = $5)
         ORDER BY r.id DESC
         LIMIT $6"
    ))
    .bind::<BigInt, _>(schedule_id)
    .bind::<Nullable<BigInt>, _>(after)
    .bind::<Array<Text>, _>(&statuses)
    .bind::<Nullable<Text>, _>(filter.text.as_deref().map(like_pattern))
    .bind::<Nullable<BigInt>, _>(filter.reservation_id)
    .bind::<BigInt, _>(limit + 1)
    .load(conn)
    .await
}

/// A schedule with its concert and that concert's host (who may read its orders).
#[derive(QueryableByName, Debug)]
pub struct ScheduleOwner {
    #[diesel(sql_type = BigInt)]
    pub schedule_id: i64,
    #[diesel(sql_type = BigInt)]
    pub concert_id: i64,
    #[diesel(sql_type = BigInt)]
    pub host_id: i64,
    #[diesel(sql_type = Text)]
    pub title: String,
    #[diesel(sql_type = Timestamptz)]
    pub starts_at: DateTime<Utc>,
}

pub async fn schedule_owner(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
) -> diesel::QueryResult<Option<ScheduleOwner>> {
    use diesel::OptionalExtension as _;
    diesel::sql_query(
        "SELECT sc.id AS schedule_id, c.id AS concert_id, c.host_id, c.title, sc.starts_at
         FROM schedules sc JOIN concerts c ON c.id = sc.concert_id WHERE sc.id = $1",
    )
    .bind::<BigInt, _>(schedule_id)
    .get_result(conn)
    .await
    .optional()
}

/// One line of the sales export: a reservation that was paid (standing or refunded since).
#[derive(QueryableByName, Debug)]
pub struct SaleLine {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub status: ReservationStatus,
    #[diesel(sql_type = Text)]
    pub buyer_name: String,
    #[diesel(sql_type = Text)]
    pub buyer_email: String,
    #[diesel(sql_type = Int4)]
    pub seat_count: i32,
    /// "Floor R1-3; Floor R1-4" (section, row, number).
    #[diesel(sql_type = Text)]
    pub seats: String,
    #[diesel(sql_type = Text)]
    pub grades: String,
    #[diesel(sql_type = BigInt)]
    pub total_price: i64,
    #[diesel(sql_type = BigInt)]
    pub refunded: i64,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub paid_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Given by the host at price 0 (`issueComplimentary`), not sold: marked so a sales
    /// sheet can count it apart, as `concertSales` does.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub complimentary: bool,
}

/// Paid reservations of a schedule by ascending id after `after`, at most `limit`.
pub async fn sale_lines(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
    after: i64,
    limit: i64,
) -> diesel::QueryResult<Vec<SaleLine>> {
    diesel::sql_query(
        "SELECT r.id, r.status, u.display_name AS buyer_name, u.email AS buyer_email, r.seat_count,
                coalesce((SELECT string_agg(s.section || ' ' || s.row_label || '-' || s.number, '; '
                                            ORDER BY s.section, s.row_label, s.number)
                          FROM reservation_seats rs JOIN seats s ON s.id = rs.seat_id
                          WHERE rs.reservation_id = r.id), '') AS seats,
                coalesce((SELECT string_agg(DISTINCT rs.grade_name, '; ')
                          FROM reservation_seats rs WHERE rs.reservation_id = r.id), '') AS grades,
                r.total_price,
                coalesce((SELECT sum(l.amount) FROM point_ledger l
                          WHERE l.reservation_id = r.id AND l.kind = 'refund'), 0)::bigint AS refunded,
                r.created_at, r.paid_at, r.cancelled_at, r.complimentary
         FROM reservations r JOIN users u ON u.id = r.user_id
         WHERE r.schedule_id = $1 AND r.id > $2 AND r.paid_at IS NOT NULL
         ORDER BY r.id
         LIMIT $3",
    )
    .bind::<BigInt, _>(schedule_id)
    .bind::<BigInt, _>(after)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

/// One line of the attendee export: a sold seat of a standing reservation and its ticket.
#[derive(QueryableByName, Debug)]
pub struct AttendeeLine {
    #[diesel(sql_type = BigInt)]
    pub seat_id: i64,
    #[diesel(sql_type = Text)]
    pub section: String,
    #[diesel(sql_type = Text)]
    pub row_label: String,
    #[diesel(sql_type = Int4)]
    pub number: i32,
    #[diesel(sql_type = Text)]
    pub grade: String,
    #[diesel(sql_type = BigInt)]
    pub price: i64,
    #[diesel(sql_type = BigInt)]
    pub reservation_id: i64,
    #[diesel(sql_type = Text)]
    pub holder_name: String,
    #[diesel(sql_type = Text)]
    pub holder_email: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub ticket_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    pub ticket_status: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub checked_in_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    pub gate: Option<String>,
}

/// Seats of confirmed reservations of a schedule by ascending seat id after `after`.
pub async fn attendee_lines(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
    after: i64,
    limit: i64,
) -> diesel::QueryResult<Vec<AttendeeLine>> {
    diesel::sql_query(
        "SELECT s.id AS seat_id, s.section, s.row_label, s.number, rs.grade_name AS grade, rs.price,
                r.id AS reservation_id, u.display_name AS holder_name, u.email AS holder_email,
                t.id AS ticket_id, t.status AS ticket_status, t.checked_in_at, t.gate
         FROM seats s
         JOIN reservations r ON r.id = s.reservation_id AND r.status = 'confirmed'
         JOIN reservation_seats rs ON rs.reservation_id = r.id AND rs.seat_id = s.id
         JOIN users u ON u.id = r.user_id
         LEFT JOIN tickets t ON t.seat_id = s.id AND t.reservation_id = r.id AND t.status <> 'revoked'
         WHERE s.schedule_id = $1 AND s.id > $2
         ORDER BY s.id
         LIMIT $3",
    )
    .bind::<BigInt, _>(schedule_id)
    .bind::<BigInt, _>(after)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

/// Seats sold and points taken in one time bucket, for one schedule and grade.
#[derive(QueryableByName, Debug, Clone)]
pub struct SalesBucket {
    #[diesel(sql_type = BigInt)]
    pub schedule_id: i64,
    #[diesel(sql_type = Text)]
    pub grade: String,
    #[diesel(sql_type = Timestamptz)]
    pub bucket: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    pub seats: i64,
    #[diesel(sql_type = BigInt)]
    pub revenue: i64,
}

/// The first payment of a concert's paid reservations that stand, if any (a seat given
/// away before the sale opened does not start the chart).
pub async fn first_sale(
    conn: &mut AsyncPgConnection,
    concert_id: i64,
) -> diesel::QueryResult<Option<DateTime<Utc>>> {
    #[derive(QueryableByName)]
    struct First {
        #[diesel(sql_type = Nullable<Timestamptz>)]
        at: Option<DateTime<Utc>>,
    }
    let row: First = diesel::sql_query(
        "SELECT min(r.paid_at) AS at FROM reservations r JOIN schedules sc ON sc.id = r.schedule_id
         WHERE sc.concert_id = $1 AND r.status = 'confirmed' AND NOT r.complimentary",
    )
    .bind::<BigInt, _>(concert_id)
    .get_result(conn)
    .await?;
    Ok(row.at)
}

/// Seats sold (by paid reservations that stand; complimentary seats are not sales) per
/// schedule, grade and bucket of `bucket_seconds` from `origin`, for a concert.
pub async fn sales_buckets(
    conn: &mut AsyncPgConnection,
    concert_id: i64,
    origin: DateTime<Utc>,
    bucket_seconds: i64,
) -> diesel::QueryResult<Vec<SalesBucket>> {
    diesel::sql_query(
        "SELECT r.schedule_id, rs.grade_name AS grade,
                date_bin(make_interval(secs => $3), r.paid_at, $2) AS bucket,
                count(*) AS seats, coalesce(sum(rs.price), 0)::bigint AS revenue
         FROM reservations r
         JOIN schedules sc ON sc.id = r.schedule_id
         JOIN reservation_seats rs ON rs.reservation_id = r.id
         WHERE sc.concert_id = $1 AND r.status = 'confirmed' AND r.paid_at IS NOT NULL
           AND NOT r.complimentary
         GROUP BY 1, 2, 3
         ORDER BY 1, 2, 3",
    )
    .bind::<BigInt, _>(concert_id)
    .bind::<Timestamptz, _>(origin)
    .bind::<diesel::sql_types::Double, _>(bucket_seconds as f64)
    .load(conn)
    .await
}
