//! GraphQL face of seats: `Seat`, `GradeAvailability`, and the loaders
//! that fetch seat maps and per-grade counts for many schedules in one query each.

use std::collections::HashMap;

use async_graphql::{
    Context, ID, Object, SimpleObject,
    dataloader::{DataLoader, Loader},
};

use super::store::{self, GradeCount, SeatRow};
use crate::{auth::context::state, db::Pool, error::AppError, ids};

pub use super::{SeatStatus, availability::GradeAvailability};

/// A seat of a schedule's map, from the map or from a live event.
pub struct Seat {
    id: i64,
    status: SeatStatus,
    /// The whole row when read from the map; a live event knows only id and status, and the
    /// rest (which never changes for a seat) is loaded if a client asks for it.
    row: Option<SeatRow>,
}

impl Seat {
    pub fn from_row(row: SeatRow) -> Self {
        Self {
            id: row.id,
            status: row.status,
            row: Some(row),
        }
    }

    /// A seat whose status changed, as a live event carries it.
    pub fn changed(id: i64, status: SeatStatus) -> Self {
        Self {
            id,
            status,
            row: None,
        }
    }

    async fn details(&self, ctx: &Context<'_>) -> async_graphql::Result<SeatRow> {
        if let Some(row) = &self.row {
            return Ok(row.clone());
        }
        ctx.data::<DataLoader<SeatLoader>>()?
            .load_one(self.id)
            .await?
            .ok_or_else(|| AppError::NotFound("seat").into())
    }
}

/// A seat of a schedule's map. Key field: `id` (a normalised cache stores it as
/// `Seat:<id>`). The seat map (`schedule { seats }`) and the live events
/// (`seatChanges { seats }`) return the same `Seat` objects, so a cache that keys them by
/// typename and id updates a map it holds from the events by itself.
#[Object]
impl Seat {
    async fn id(&self) -> ID {
        ids::to_id(self.id)
    }
    async fn section(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        Ok(self.details(ctx).await?.section)
    }
    async fn row(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        Ok(self.details(ctx).await?.row_label)
    }
    async fn number(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        Ok(self.details(ctx).await?.number)
    }
    /// The grade's name (VIP, R, S, ...).
    async fn grade(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        Ok(self.details(ctx).await?.grade)
    }
    /// Price in points, from the seat's grade.
    async fn price(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        Ok(self.details(ctx).await?.price)
    }
    async fn status(&self) -> SeatStatus {
        self.status
    }
}

/// A section of a schedule's layout: its name (what `seats(section:)` takes) and how many
/// seats it has, so a client of a big venue can plan its reads.
#[derive(SimpleObject, Clone)]
pub struct SeatSection {
    pub name: String,
    pub seats: i64,
}

/// The sections of a schedule, in layout order.
pub async fn sections(ctx: &Context<'_>, schedule_id: i64) -> Result<Vec<SeatSection>, AppError> {
    let mut conn = state(ctx)?.db.get().await?;
    Ok(store::sections(&mut conn, schedule_id)
        .await?
        .into_iter()
        .map(|s| SeatSection {
            name: s.section,
            seats: s.seats,
        })
        .collect())
}

/// One page of a schedule's seats (`Schedule.seats(first:, after:)`): at most `first`
/// (1 to `MAX_SEAT_PAGE`) after the seat `after`, in layout order, narrowed as asked.
pub async fn seat_page(
    ctx: &Context<'_>,
    schedule_id: i64,
    narrow: &store::Narrow<'_>,
    first: i32,
    after: Option<&ID>,
) -> Result<Vec<Seat>, AppError> {
    if !(1..=super::MAX_SEAT_PAGE).contains(&first) {
        return Err(AppError::bad_input(
            "first",
            format!("must be 1 to {}", super::MAX_SEAT_PAGE),
        ));
    }
    let after = after.map(|a| ids::parse(a, "after")).transpose()?;
    let mut conn = state(ctx)?.db.get().await?;
    let rows = store::seat_page(&mut conn, schedule_id, narrow, after, i64::from(first)).await?;
    Ok(rows.into_iter().map(Seat::from_row).collect())
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

/// Single seats by id: the fixed fields of seats that live events name.
pub struct SeatLoader(pub Pool);

impl Loader<i64> for SeatLoader {
    type Value = SeatRow;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let mut conn = self.0.get().await.map_err(AppError::from)?;
        let rows = store::seats_by_ids(&mut conn, keys)
            .await
            .map_err(AppError::from)?;
        Ok(rows.into_iter().map(|r| (r.id, r)).collect())
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
