//! GraphQL face of a show's orders: `scheduleOrders`, `refundReservation`, `salesTimeline`.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject, connection::Connection};
use chrono::{DateTime, Utc};

use super::store::OrderRow;
use crate::{
    auth::{
        Role,
        context::{RoleGuard, actor, state},
    },
    booking::{ReservationStatus, graphql::Reservation},
    error::AppError,
    ids, pagination,
    points::Long,
};

/// Who bought an order, as the show's host sees them.
#[derive(SimpleObject)]
pub struct OrderBuyer {
    pub id: ID,
    pub display_name: String,
    pub email: String,
}

/// A reservation of a performance with its buyer: one line of the host's order list.
pub struct ScheduleOrder(OrderRow);

#[Object]
impl ScheduleOrder {
    /// The reservation's id.
    async fn id(&self) -> ID {
        ids::to_id(self.0.reservation.id)
    }
    /// The reservation itself (seats with their grade and price, tickets).
    async fn reservation(&self) -> Reservation {
        Reservation(self.0.reservation.clone())
    }
    async fn buyer(&self) -> OrderBuyer {
        OrderBuyer {
            id: ids::to_id(self.0.reservation.user_id),
            display_name: self.0.buyer_name.clone(),
            email: self.0.buyer_email.clone(),
        }
    }
    async fn status(&self) -> ReservationStatus {
        self.0.reservation.status
    }
    async fn seat_count(&self) -> i32 {
        self.0.reservation.seat_count
    }
    /// Points the seats were held at.
    async fn total_price(&self) -> i64 {
        self.0.reservation.total_price
    }
    /// Points given back to the buyer for this order (0 unless refunded).
    async fn refunded(&self) -> i64 {
        self.0.refunded
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.reservation.created_at
    }
    /// When an unpaid hold lapses.
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.reservation.expires_at
    }
    async fn paid_at(&self) -> Option<DateTime<Utc>> {
        self.0.reservation.paid_at
    }
    async fn cancelled_at(&self) -> Option<DateTime<Utc>> {
        self.0.reservation.cancelled_at
    }
}

/// Narrows a performance's orders; every field optional, all given ones must hold.
#[derive(InputObject, Default)]
pub struct ScheduleOrderFilter {
    /// Only orders in these statuses.
    pub status: Option<Vec<ReservationStatus>>,
    /// Part of the buyer's email or display name (case-insensitive), or a reservation id
    /// (`42` or `#42`). At most 100 characters.
    pub text: Option<String>,
}

/// Seats sold and points taken in one time bucket (from `at`, `bucketSeconds` long), and
/// the totals up to the bucket's end.
#[derive(SimpleObject)]
pub struct SalesPoint {
    pub at: DateTime<Utc>,
    pub seats: i64,
    pub revenue: Long,
    pub total_seats: i64,
    pub total_revenue: Long,
}

/// One grade's sales of one performance.
#[derive(SimpleObject)]
pub struct GradeSales {
    pub grade: String,
    pub points: Vec<SalesPoint>,
}

/// One performance's sales over time, by grade.
#[derive(SimpleObject)]
pub struct ScheduleTimeline {
    pub schedule_id: ID,
    /// When the performance starts: what tells one line of the chart from another.
    pub starts_at: DateTime<Utc>,
    pub grades: Vec<GradeSales>,
}

/// A concert's sales over time, from its first sale (of a reservation that stands) to now,
/// in buckets of `bucketSeconds` (at most 200 per series).
#[derive(SimpleObject)]
pub struct SalesTimeline {
    pub concert_id: ID,
    /// The first sale; null before any.
    pub from: Option<DateTime<Utc>>,
    pub bucket_seconds: i64,
    pub schedules: Vec<ScheduleTimeline>,
}

#[derive(Default)]
pub struct HostOrdersQuery;

#[Object]
impl HostOrdersQuery {
    /// A performance's orders (reservations with their buyers), newest first, for its
    /// concert's host or an admin. Another host: NOT_FOUND. Errors: BAD_USER_INPUT (page
    /// size, cursor, filter text over 100 characters).
    #[graphql(
        guard = "RoleGuard(Role::Host)",
        complexity = "pagination::cost(first, child_complexity)"
    )]
    async fn schedule_orders(
        &self,
        ctx: &Context<'_>,
        schedule_id: ID,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<ScheduleOrderFilter>,
    ) -> Result<Connection<String, ScheduleOrder>, AppError> {
        let schedule_id = ids::parse(&schedule_id, "scheduleId")?;
        let limit = pagination::page_size(first)?;
        let after = pagination::decode::<i64>(after.as_deref())?;
        let filter = filter.unwrap_or_default();
        let filter = super::order_filter(filter.status, filter.text.as_deref())?;
        let actor = actor(ctx).await?;
        let rows = super::orders(state(ctx)?, actor, schedule_id, &filter, after, limit).await?;
        pagination::page(
            rows,
            limit,
            after.is_some(),
            |r| pagination::encode(r.reservation.id),
            |r| Ok(ScheduleOrder(r)),
        )
    }

    /// Seats sold and points taken over time by performance and grade, from the first
    /// sale: the host's sales chart. For the concert's host or an admin (another host:
    /// NOT_FOUND). `bucketSeconds` (60 to 604800) is a wish; a longer bucket is used when
    /// the sale is too long for 200 of them.
    #[graphql(guard = "RoleGuard(Role::Host)")]
    async fn sales_timeline(
        &self,
        ctx: &Context<'_>,
        concert_id: ID,
        bucket_seconds: Option<i32>,
    ) -> Result<SalesTimeline, AppError> {
        let concert_id = ids::parse(&concert_id, "concertId")?;
        let actor = actor(ctx).await?;
        let t =
            super::timeline::timeline(state(ctx)?, actor, concert_id, bucket_seconds.map(i64::from)).await?;
        Ok(SalesTimeline {
            concert_id: ids::to_id(concert_id),
            from: t.from,
            bucket_seconds: t.bucket_seconds,
            schedules: t
                .schedules
                .into_iter()
                .map(|s| ScheduleTimeline {
                    schedule_id: ids::to_id(s.schedule_id),
                    starts_at: s.starts_at,
                    grades: s
                        .grades
                        .into_iter()
                        .map(|(grade, buckets)| {
                            let (mut seats, mut revenue) = (0, 0);
                            GradeSales {
                                grade,
                                points: buckets
                                    .into_iter()
                                    .map(|b| {
                                        seats += b.seats;
                                        revenue += b.revenue;
                                        SalesPoint {
                                            at: b.bucket,
                                            seats: b.seats,
                                            revenue: Long(b.revenue),
                                            total_seats: seats,
                                            total_revenue: Long(revenue),
                                        }
                                    })
                                    .collect(),
                            }
                        })
                        .collect(),
                })
                .collect(),
        })
    }
}

#[derive(Default)]
pub struct HostOrdersMutation;

#[Object]
impl HostOrdersMutation {
    /// Refunds a paid reservation in full, for its concert's host or an admin: the points
    /// go back to the buyer's wallet (a `refund` entry), the seats are released and the
    /// tickets revoked, audited with `reason` (1 to 500 characters). Allowed after the show
    /// started too. Repeating it answers the refunded reservation and refunds nothing more.
    /// Errors: NOT_FOUND (another host's, or no such reservation), CONFLICT (never paid),
    /// BAD_USER_INPUT (reason).
    #[graphql(guard = "RoleGuard(Role::Host)")]
    async fn refund_reservation(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: String,
    ) -> Result<Reservation, AppError> {
        let id = ids::parse(&id, "id")?;
        let actor = actor(ctx).await?;
        Ok(Reservation(super::refund(state(ctx)?, actor, id, &reason).await?))
    }
}
