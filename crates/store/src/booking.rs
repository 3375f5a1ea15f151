//! Reservation rows and the queries the booking paths share (locking reads are in `locks`).

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{Array, BigInt, Text},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::schema::reservations;

crate::text_enum! {
    // Stored in `reservations.status`.
    /// Where a reservation stands.
    pub enum ReservationStatus {
        /// Seats held, waiting for payment until `expiresAt`.
        Held => "held",
        /// Paid.
        Confirmed => "confirmed",
        Cancelled => "cancelled",
        Expired => "expired",
    }
}

/// Serializable: a leading instance sends it back to the instance that forwarded the hold.
#[derive(
    Queryable, Selectable, QueryableByName, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize,
)]
#[diesel(table_name = reservations)]
pub struct ReservationRow {
    pub id: i64,
    pub schedule_id: i64,
    pub user_id: i64,
    pub status: ReservationStatus,
    pub seat_count: i32,
    pub total_price: i64,
    pub idempotency_key: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Given by the host at price 0 (`issueComplimentary`), not bought. Absent in rows
    /// forwarded by older instances, which made none.
    #[serde(default)]
    pub complimentary: bool,
    /// The host's note on a complimentary reservation.
    #[serde(default)]
    pub note: Option<String>,
}

/// The columns of [`ReservationRow`] as `<table>.<column>, …`, for raw statements that read
/// a reservation by name: a statement kept prepared ([`crate::db::Prepared`]) must not say
/// `r.*`. Kept equal to the struct by a test in `db::prepared`.
#[macro_export]
macro_rules! reservation_columns {
    ($t:literal) => {
        $crate::columns!($t: id, schedule_id, user_id, status, seat_count, total_price,
            idempotency_key, expires_at, paid_at, cancelled_at, created_at, complimentary, note)
    };
}

/// A seat of a reservation with the grade and price it was held at.
#[derive(QueryableByName, Clone, Debug)]
pub struct ReservedSeatRow {
    #[diesel(sql_type = BigInt)]
    pub reservation_id: i64,
    #[diesel(sql_type = BigInt)]
    pub seat_id: i64,
    #[diesel(sql_type = Text)]
    pub section: String,
    #[diesel(sql_type = Text)]
    pub row_label: String,
    #[diesel(sql_type = diesel::sql_types::Int4)]
    pub number: i32,
    #[diesel(sql_type = Text)]
    pub grade_name: String,
    #[diesel(sql_type = BigInt)]
    pub price: i64,
}

pub async fn reservation(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<ReservationRow>> {
    reservations::table
        .find(id)
        .select(ReservationRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// A user's reservations, newest first, after the cursor id.
pub async fn reservations_of_user(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<ReservationRow>> {
    let mut q = reservations::table
        .filter(reservations::user_id.eq(user_id))
        .select(ReservationRow::as_select())
        .order(reservations::id.desc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(after) = after {
        q = q.filter(reservations::id.lt(after));
    }
    q.load(conn).await
}

pub async fn reserved_seats(
    conn: &mut AsyncPgConnection,
    reservation_ids: &[i64],
) -> QueryResult<Vec<ReservedSeatRow>> {
    diesel::sql_query(
        "SELECT rs.reservation_id, rs.seat_id, s.section, s.row_label, s.number, rs.grade_name, rs.price
         FROM reservation_seats rs JOIN seats s ON s.id = rs.seat_id
         WHERE rs.reservation_id = ANY($1)
         ORDER BY rs.reservation_id, rs.seat_id",
    )
    .bind::<Array<BigInt>, _>(reservation_ids)
    .load(conn)
    .await
}

/// Seats of a schedule given away (live complimentary reservations): counted apart from
/// the seats sold.
pub async fn complimentary_seats(conn: &mut AsyncPgConnection, schedule_id: i64) -> QueryResult<i64> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let row: N = diesel::sql_query(
        "SELECT coalesce(sum(seat_count), 0)::bigint AS n FROM reservations
         WHERE schedule_id = $1 AND complimentary AND status = 'confirmed'",
    )
    .bind::<BigInt, _>(schedule_id)
    .get_result(conn)
    .await?;
    Ok(row.n)
}
