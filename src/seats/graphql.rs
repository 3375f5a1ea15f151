//! GraphQL face of seats: `Seat`, `GradeAvailability`, `generateSeats`, and the loaders
//! that fetch seat maps and per-grade counts for many schedules in one query each.

use std::collections::HashMap;

use async_graphql::{Context, Enum, ID, Object, SimpleObject, dataloader::Loader};

use super::{
    layout::{self, SeatLayoutInput},
    store::{self, GradeCount, SeatRow},
};
use crate::{
    auth::{Role, RoleGuard, actor, state},
    concerts::graphql::Schedule,
    db::Pool,
    error::AppError,
    ids,
};

#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum SeatStatus {
    Available,
    Held,
    Sold,
}

impl SeatStatus {
    pub fn parse(s: &str) -> Self {
        match s {
            "held" => Self::Held,
            "sold" => Self::Sold,
            _ => Self::Available,
        }
    }
}

pub struct Seat(pub SeatRow);

#[Object]
impl Seat {
    async fn id(&self) -> ID {
        ids::to_id(self.0.id)
    }
    async fn section(&self) -> &str {
        &self.0.section
    }
    async fn row(&self) -> &str {
        &self.0.row_label
    }
    async fn number(&self) -> i32 {
        self.0.number
    }
    /// The grade's name (VIP, R, S, ...).
    async fn grade(&self) -> &str {
        &self.0.grade
    }
    /// Price in points, from the seat's grade.
    async fn price(&self) -> i64 {
        self.0.price
    }
    async fn status(&self) -> SeatStatus {
        SeatStatus::parse(&self.0.status)
    }
}

/// Seats of one grade of a schedule, by status.
#[derive(SimpleObject, Clone)]
pub struct GradeAvailability {
    pub grade: String,
    pub price: i64,
    pub color: String,
    pub total: i64,
    pub available: i64,
    pub held: i64,
    pub sold: i64,
}

impl From<GradeCount> for GradeAvailability {
    fn from(c: GradeCount) -> Self {
        Self {
            grade: c.name,
            price: c.price,
            color: c.color,
            total: c.total,
            available: c.available,
            held: c.held,
            sold: c.sold,
        }
    }
}

pub struct SeatMapLoader(pub Pool);

impl Loader<i64> for SeatMapLoader {
    type Value = Vec<SeatRow>;
    type Error = AppError;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let mut conn = self.0.get().await?;
        let rows = store::seat_maps(&mut conn, keys).await?;
        let mut out: HashMap<i64, Vec<SeatRow>> = keys.iter().map(|k| (*k, Vec::new())).collect();
        for row in rows {
            out.entry(row.schedule_id).or_default().push(row);
        }
        Ok(out)
    }
}

pub struct AvailabilityLoader(pub Pool);

impl Loader<i64> for AvailabilityLoader {
    type Value = Vec<GradeCount>;
    type Error = AppError;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let mut conn = self.0.get().await?;
        let rows = store::availability(&mut conn, keys).await?;
        let mut out: HashMap<i64, Vec<GradeCount>> = keys.iter().map(|k| (*k, Vec::new())).collect();
        for row in rows {
            out.entry(row.schedule_id).or_default().push(row);
        }
        Ok(out)
    }
}

#[derive(Default)]
pub struct SeatsMutation;

#[Object]
impl SeatsMutation {
    /// Creates the schedule's seats from a graded layout, replacing any previous layout.
    /// Refused with CONFLICT once a seat of the schedule has been reserved.
    #[graphql(guard = "RoleGuard(Role::Host)")]
    async fn generate_seats(
        &self,
        ctx: &Context<'_>,
        schedule_id: ID,
        layout: SeatLayoutInput,
    ) -> Result<Schedule, AppError> {
        let schedule_id = ids::parse(&schedule_id, "scheduleId")?;
        let plan = layout::plan(&layout)?;
        let actor = actor(ctx).await?;
        let state = state(ctx)?;
        let mut conn = state.db.get().await?;
        layout::generate(&mut conn, actor, schedule_id, &plan).await?;
        let row = crate::concerts::store::schedule(&mut conn, schedule_id)
            .await?
            .ok_or(AppError::NotFound("schedule"))?;
        Ok(Schedule(row))
    }
}
