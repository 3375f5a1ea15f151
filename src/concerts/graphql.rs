//! GraphQL face of concerts and schedules: `Concert`, `Schedule`, `Host`, the queries
//! `concerts`, `concert`, `schedule`, `myConcerts`, and the host mutations.

use std::collections::HashMap;

use async_graphql::{
    Context, ID, InputObject, Object, SimpleObject,
    connection::Connection,
    dataloader::{DataLoader, Loader},
};
use chrono::{DateTime, Utc};

use super::{
    search::{self, ConcertSort, Cursor, Filter},
    service::{self, ConcertInput, ConcertUpdateInput, ScheduleInput},
    store::{self, ConcertRow, ScheduleRow},
};
use crate::{
    auth::{
        Actor, Role, Viewer,
        context::{RoleGuard, actor, state, viewer},
    },
    db::Pool,
    error::{AppError, AppResult},
    ids, pagination,
    seats::{
        graphql::{AvailabilityLoader, GradeAvailability, Seat, SeatMapLoader, SeatSection, SeatStatus},
        store::GradeCount,
    },
};

pub use super::{ConcertStatus, ScheduleStatus};

/// The public face of a host: no email, no balance.
#[derive(SimpleObject, Clone)]
pub struct Host {
    pub id: ID,
    pub display_name: String,
}

pub struct Concert(pub ConcertRow);

#[Object]
impl Concert {
    async fn id(&self) -> ID {
        ids::to_id(self.0.id)
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn artist(&self) -> &str {
        &self.0.artist
    }
    async fn description(&self) -> &str {
        &self.0.description
    }
    async fn venue(&self) -> &str {
        &self.0.venue
    }
    async fn category(&self) -> &str {
        &self.0.category
    }
    async fn poster_url(&self) -> Option<&str> {
        self.0.poster_url.as_deref()
    }
    async fn status(&self) -> ConcertStatus {
        self.0.status
    }
    async fn cancel_reason(&self) -> Option<&str> {
        self.0.cancel_reason.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    async fn host(&self, ctx: &Context<'_>) -> Result<Host, AppError> {
        ctx.data::<DataLoader<HostLoader>>()?
            .load_one(self.0.host_id)
            .await?
            .ok_or_else(|| AppError::NotFound("host"))
    }
    /// Performances, earliest first (cancelled ones included, with their status).
    async fn schedules(&self, ctx: &Context<'_>) -> Result<Vec<Schedule>, AppError> {
        let rows = ctx
            .data::<DataLoader<SchedulesOfConcertLoader>>()?
            .load_one(self.0.id)
            .await?
            .unwrap_or_default();
        Ok(rows.into_iter().map(Schedule::new).collect())
    }
}

/// A schedule, and its per-grade counts when they were read with it (a live event's), so
/// `availability` is the same snapshot as the row.
pub struct Schedule(pub ScheduleRow, Option<Vec<GradeCount>>);

impl Schedule {
    pub fn new(row: ScheduleRow) -> Self {
        Self(row, None)
    }

    /// The schedule with the per-grade counts read in the same snapshot.
    pub fn with_counts(row: ScheduleRow, counts: Vec<GradeCount>) -> Self {
        Self(row, Some(counts))
    }

    /// A schedule by id through the request's loader: what every type that refers to a
    /// schedule (a reservation, a waiting-list entry) resolves its `schedule` field with.
    pub async fn load(ctx: &Context<'_>, id: i64) -> Result<Self, AppError> {
        ctx.data::<DataLoader<ScheduleLoader>>()?
            .load_one(id)
            .await?
            .map(Schedule::new)
            .ok_or(AppError::NotFound("schedule"))
    }
}

#[Object]
impl Schedule {
    async fn id(&self) -> ID {
        ids::to_id(self.0.id)
    }
    async fn concert(&self, ctx: &Context<'_>) -> Result<Concert, AppError> {
        ctx.data::<DataLoader<ConcertLoader>>()?
            .load_one(self.0.concert_id)
            .await?
            .map(Concert)
            .ok_or_else(|| AppError::NotFound("concert"))
    }
    async fn starts_at(&self) -> DateTime<Utc> {
        self.0.starts_at
    }
    async fn sales_open_at(&self) -> DateTime<Utc> {
        self.0.sales_open_at
    }
    async fn sales_close_at(&self) -> DateTime<Utc> {
        self.0.sales_close_at
    }
    /// True while seats can be reserved: the concert published, the schedule not
    /// cancelled, and the database clock within the sales window (the rule `reserveSeats`
    /// applies).
    async fn on_sale(&self, ctx: &Context<'_>) -> Result<bool, AppError> {
        let concert = ctx
            .data::<DataLoader<ConcertLoader>>()?
            .load_one(self.0.concert_id)
            .await?
            .ok_or(AppError::NotFound("concert"))?;
        let state = state(ctx)?;
        let now = state.db_clock.now(&state.db).await?;
        Ok(crate::booking::sale::rules(&self.0, concert.status, now).is_open())
    }
    async fn per_user_limit(&self) -> i32 {
        self.0.per_user_limit
    }
    async fn hold_seconds(&self) -> i32 {
        self.0.hold_seconds
    }
    async fn queue_enabled(&self) -> bool {
        self.0.queue_enabled
    }
    async fn admit_per_second(&self) -> i32 {
        self.0.admit_per_second
    }
    async fn max_active(&self) -> i32 {
        self.0.max_active
    }
    async fn admission_seconds(&self) -> i32 {
        self.0.admission_seconds
    }
    async fn status(&self) -> ScheduleStatus {
        self.0.status
    }
    /// Seats in the layout.
    async fn capacity(&self) -> i32 {
        self.0.capacity
    }
    /// Seats held, sold or blocked (not available).
    async fn booked_count(&self) -> i32 {
        self.0.booked_count
    }
    async fn remaining_seats(&self) -> i32 {
        self.0.capacity - self.0.booked_count
    }
    /// Fans on this performance's waiting list: for its host and admins only (null for
    /// everyone else).
    async fn waitlist_length(&self, ctx: &Context<'_>) -> Result<Option<i64>, AppError> {
        let Some(actor) = optional_actor(ctx).await? else {
            return Ok(None);
        };
        let concert = ctx
            .data::<DataLoader<ConcertLoader>>()?
            .load_one(self.0.concert_id)
            .await?
            .ok_or(AppError::NotFound("concert"))?;
        if actor.ensure_manages(concert.host_id).is_err() {
            return Ok(None);
        }
        let mut conn = state(ctx)?.db.get().await?;
        Ok(Some(crate::waitlist::store::length(&mut conn, self.0.id).await?))
    }
    /// Seats given away as complimentary tickets (`issueComplimentary`), counted apart from
    /// sales: for its host and admins only (null for everyone else).
    async fn complimentary_seats(&self, ctx: &Context<'_>) -> Result<Option<i64>, AppError> {
        let Some(actor) = optional_actor(ctx).await? else {
            return Ok(None);
        };
        let concert = ctx
            .data::<DataLoader<ConcertLoader>>()?
            .load_one(self.0.concert_id)
            .await?
            .ok_or(AppError::NotFound("concert"))?;
        if actor.ensure_manages(concert.host_id).is_err() {
            return Ok(None);
        }
        let mut conn = state(ctx)?.db.get().await?;
        Ok(Some(
            crate::booking::store::complimentary_seats(&mut conn, self.0.id).await?,
        ))
    }
    /// Grows with every seat change of this schedule. `seatChanges` events carry it: a
    /// client that sees a version jump by more than one missed an update and re-reads.
    async fn version(&self) -> i64 {
        self.0.version
    }
    /// Seats per grade, by status.
    async fn availability(&self, ctx: &Context<'_>) -> Result<Vec<GradeAvailability>, AppError> {
        if let Some(counts) = &self.1 {
            return Ok(counts.iter().cloned().map(GradeAvailability::from).collect());
        }
        // A seat map of this version already built has the counts: no query.
        if let Some(counts) = state(ctx)?.seat_maps.availability(self.0.id, self.0.version) {
            return Ok(counts);
        }
        let counts = ctx
            .data::<DataLoader<AvailabilityLoader>>()?
            .load_one(self.0.id)
            .await?
            .unwrap_or_default();
        Ok(counts.into_iter().map(GradeAvailability::from).collect())
    }
    /// The whole seat map in compact form: what a client of a big venue should read
    /// (a 20,000-seat map is about 25 KB). Shared by all readers of the same version.
    //
    // Returns async-graphql's error, not AppError: a seat-budget refusal is a limit code
    // (QUERY_TOO_COSTLY), which AppError does not carry.
    async fn seat_map(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<std::sync::Arc<crate::seats::map::SeatMap>> {
        crate::limits::charge_seats(ctx, self.0.capacity, 1)?;
        let state = state(ctx)?;
        Ok(state.seat_maps.get(&state.db, self.0.id, self.0.version).await?)
    }

    /// The sections of the layout with their seat counts, in layout order: what a client of
    /// a big venue reads first, to page through `seats(section:, first:, after:)`.
    async fn sections(&self, ctx: &Context<'_>) -> Result<Vec<SeatSection>, AppError> {
        crate::seats::graphql::sections(ctx, self.0.id).await
    }

    /// The seat map as `Seat` objects (a normalised cache keys them by id, and `seatChanges`
    /// updates them), in layout order, optionally narrowed to a section, grade or status.
    ///
    /// A request reads at most 25,000 seats this way (QUERY_TOO_COSTLY above): a bigger
    /// venue is read in pages, `first` seats (at most 10,000) after the seat `after` (the
    /// last id of the previous page; the first page without it), a section at a time or
    /// not. A page shorter than `first` is the last. The compact `seatMap` reads any venue
    /// in one request, but as one value a normalised cache does not split into seats.
    #[graphql(complexity = "1000 + child_complexity")]
    async fn seats(
        &self,
        ctx: &Context<'_>,
        section: Option<String>,
        grade: Option<String>,
        status: Option<SeatStatus>,
        first: Option<i32>,
        after: Option<ID>,
    ) -> async_graphql::Result<Vec<Seat>> {
        if first.is_some() || after.is_some() {
            let narrow = crate::seats::store::Narrow {
                section: section.as_deref(),
                grade: grade.as_deref(),
                status,
            };
            let first = first.unwrap_or(crate::seats::MAX_SEAT_PAGE);
            let seats =
                crate::seats::graphql::seat_page(ctx, self.0.id, &narrow, first, after.as_ref()).await?;
            crate::limits::charge_seats(ctx, i32::try_from(seats.len()).unwrap_or(i32::MAX), 4)?;
            return Ok(seats);
        }
        let rows = ctx
            .data::<DataLoader<SeatMapLoader>>()?
            .load_one(self.0.id)
            .await?
            .unwrap_or_default();
        let seats: Vec<Seat> = rows
            .into_iter()
            .filter(|s| section.as_deref().is_none_or(|x| s.section == x))
            .filter(|s| grade.as_deref().is_none_or(|x| s.grade == x))
            .filter(|s| status.is_none_or(|x| s.status == x))
            .map(Seat::from_row)
            .collect();
        // Charged by what it returns (the loader reads the map once per request): seven
        // resolved fields per seat, several times the compact map's work.
        crate::limits::charge_seats(ctx, i32::try_from(seats.len()).unwrap_or(i32::MAX), 4)?;
        Ok(seats)
    }
}

#[derive(InputObject, Default)]
pub struct ConcertFilter {
    /// Words or parts of words of the title, artist, venue or description.
    pub text: Option<String>,
    pub category: Option<String>,
    pub host_id: Option<ID>,
    /// Only concerts with a performance starting at or after this instant.
    pub starts_from: Option<DateTime<Utc>>,
    /// Only concerts with a performance starting before this instant.
    pub starts_before: Option<DateTime<Utc>>,
    /// Only concerts with a performance that still has seats.
    #[graphql(default)]
    pub only_available: bool,
    #[graphql(default)]
    pub sort: ConcertSort,
}

pub struct ConcertLoader(pub Pool);

impl Loader<i64> for ConcertLoader {
    type Value = ConcertRow;
    type Error = AppError;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, ConcertRow>, Self::Error> {
        let mut conn = self.0.get().await?;
        let rows = store::concerts_by_ids(&mut conn, keys).await?;
        Ok(rows.into_iter().map(|r| (r.id, r)).collect())
    }
}

pub struct SchedulesOfConcertLoader(pub Pool);

impl Loader<i64> for SchedulesOfConcertLoader {
    type Value = Vec<ScheduleRow>;
    type Error = AppError;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Vec<ScheduleRow>>, Self::Error> {
        let mut conn = self.0.get().await?;
        let rows = store::schedules_of_concerts(&mut conn, keys).await?;
        let mut out: HashMap<i64, Vec<ScheduleRow>> = HashMap::new();
        for row in rows {
            out.entry(row.concert_id).or_default().push(row);
        }
        Ok(out)
    }
}

pub struct HostLoader(pub Pool);

impl Loader<i64> for HostLoader {
    type Value = Host;
    type Error = AppError;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Host>, Self::Error> {
        let mut conn = self.0.get().await?;
        let rows = crate::auth::store::users_by_ids(&mut conn, keys).await?;
        Ok(rows
            .into_iter()
            .map(|u| {
                let host = Host {
                    id: ids::to_id(u.id),
                    display_name: u.display_name,
                };
                (u.id, host)
            })
            .collect())
    }
}

/// The viewer as an actor if signed in (one role lookup), for draft visibility.
async fn optional_actor(ctx: &Context<'_>) -> AppResult<Option<Actor>> {
    match viewer(ctx)? {
        Viewer::User(_) => Ok(Some(actor(ctx).await?)),
        _ => Ok(None),
    }
}

/// A concert the viewer may see, or NOT_FOUND (drafts are not revealed to others).
async fn visible_concert(ctx: &Context<'_>, id: i64) -> AppResult<ConcertRow> {
    let concert = ctx
        .data::<DataLoader<ConcertLoader>>()?
        .load_one(id)
        .await?
        .ok_or(AppError::NotFound("concert"))?;
    if !is_visible(ctx, &concert).await? {
        return Err(AppError::NotFound("concert"));
    }
    Ok(concert)
}

/// Whether the viewer may see `concert` (the token is only looked at for a draft).
async fn is_visible(ctx: &Context<'_>, concert: &ConcertRow) -> AppResult<bool> {
    Ok(concert.status != ConcertStatus::Draft || service::visible(concert, optional_actor(ctx).await?))
}

#[derive(Default)]
pub struct ConcertsQuery;

#[Object]
impl ConcertsQuery {
    /// Published concerts matching `filter`, in Relay pages of at most 100.
    #[graphql(complexity = "pagination::cost(first, child_complexity)")]
    async fn concerts(
        &self,
        ctx: &Context<'_>,
        filter: Option<ConcertFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Concert>, AppError> {
        let limit = pagination::page_size(first)?;
        let after_cursor = pagination::decode::<Cursor>(after.as_deref())?;
        let f = filter.unwrap_or_default();
        let filter = search::normalize(Filter {
            text: f.text,
            category: f.category,
            host_id: f
                .host_id
                .as_ref()
                .map(|id| ids::parse(id, "filter.hostId"))
                .transpose()?,
            starts_from: f.starts_from,
            starts_before: f.starts_before,
            only_available: f.only_available,
            sort: f.sort,
        })?;
        let mut conn = state(ctx)?.db.get().await?;
        let hits = search::search(&mut conn, &filter, after_cursor, limit).await?;
        let cursor = |h: &search::Hit| {
            pagination::encode(Cursor {
                key: h.sort_key,
                id: h.concert.id,
            })
        };
        pagination::page(hits, limit, after_cursor.is_some(), cursor, |h| {
            Ok(Concert(h.concert))
        })
    }

    /// A concert by id. Drafts are visible only to their host and admins.
    async fn concert(&self, ctx: &Context<'_>, id: ID) -> Result<Concert, AppError> {
        let id = ids::parse(&id, "id")?;
        Ok(Concert(visible_concert(ctx, id).await?))
    }

    /// A schedule by id, with its seat map and availability.
    async fn schedule(&self, ctx: &Context<'_>, id: ID) -> Result<Schedule, AppError> {
        let id = ids::parse(&id, "id")?;
        let mut conn = state(ctx)?.db.get().await?;
        let found = store::schedule_with_concert(&mut conn, id).await?;
        drop(conn);
        match found {
            Some((row, concert)) if is_visible(ctx, &concert).await? => Ok(Schedule::new(row)),
            _ => Err(AppError::NotFound("schedule")),
        }
    }

    /// The signed-in host's own concerts, drafts included, newest first.
    #[graphql(
        guard = "RoleGuard(Role::Host)",
        complexity = "pagination::cost(first, child_complexity)"
    )]
    async fn my_concerts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Concert>, AppError> {
        let limit = pagination::page_size(first)?;
        let after = pagination::decode::<i64>(after.as_deref())?;
        let actor = actor(ctx).await?;
        let mut conn = state(ctx)?.db.get().await?;
        let rows = store::concerts_of_host(&mut conn, actor.id, after, limit).await?;
        pagination::page(
            rows,
            limit,
            after.is_some(),
            |r| pagination::encode(r.id),
            |r| Ok(Concert(r)),
        )
    }
}

#[derive(Default)]
pub struct ConcertsMutation;

#[Object]
impl ConcertsMutation {
    /// Creates a draft concert owned by the signed-in host.
    #[graphql(guard = "RoleGuard(Role::Host)")]
    async fn create_concert(&self, ctx: &Context<'_>, input: ConcertInput) -> Result<Concert, AppError> {
        let actor = actor(ctx).await?;
        let state = state(ctx)?;
        let mut conn = state.db.get().await?;
        let row = service::create_concert(&mut conn, state.writes(), actor, &input).await?;
        Ok(Concert(row))
    }

    #[graphql(guard = "RoleGuard(Role::Host)")]
    async fn update_concert(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: ConcertUpdateInput,
    ) -> Result<Concert, AppError> {
        let id = ids::parse(&id, "id")?;
        let actor = actor(ctx).await?;
        let state = state(ctx)?;
        let mut conn = state.db.get().await?;
        let row = service::update_concert(&mut conn, state.writes(), actor, id, &input).await?;
        Ok(Concert(row))
    }

    /// Makes a draft visible to everyone (needs a schedule with seats).
    #[graphql(guard = "RoleGuard(Role::Host)")]
    async fn publish_concert(&self, ctx: &Context<'_>, id: ID) -> Result<Concert, AppError> {
        let id = ids::parse(&id, "id")?;
        let actor = actor(ctx).await?;
        let state = state(ctx)?;
        let mut conn = state.db.get().await?;
        let row = service::publish_concert(&mut conn, state.writes(), actor, id).await?;
        Ok(Concert(row))
    }

    /// Cancels the concert and all its schedules: every hold is released and every paid
    /// reservation refunded, in one transaction.
    #[graphql(guard = "RoleGuard(Role::Host)")]
    async fn cancel_concert(&self, ctx: &Context<'_>, id: ID, reason: String) -> Result<Concert, AppError> {
        let id = ids::parse(&id, "id")?;
        let actor = actor(ctx).await?;
        Ok(Concert(
            crate::booking::cancel_concert(state(ctx)?, actor, id, &reason).await?,
        ))
    }

    #[graphql(guard = "RoleGuard(Role::Host)")]
    async fn add_schedule(
        &self,
        ctx: &Context<'_>,
        concert_id: ID,
        input: ScheduleInput,
    ) -> Result<Schedule, AppError> {
        let concert_id = ids::parse(&concert_id, "concertId")?;
        let actor = actor(ctx).await?;
        let state = state(ctx)?;
        let mut conn = state.db.get().await?;
        let row = service::add_schedule(&mut conn, state.writes(), actor, concert_id, &input).await?;
        Ok(Schedule::new(row))
    }

    /// Cancels one performance: its holds are released and paid reservations refunded.
    #[graphql(guard = "RoleGuard(Role::Host)")]
    async fn cancel_schedule(&self, ctx: &Context<'_>, id: ID) -> Result<Schedule, AppError> {
        let id = ids::parse(&id, "id")?;
        let actor = actor(ctx).await?;
        Ok(Schedule::new(
            crate::booking::cancel_schedule(state(ctx)?, actor, id).await?,
        ))
    }
}

pub struct ScheduleLoader(pub Pool);

impl Loader<i64> for ScheduleLoader {
    type Value = ScheduleRow;
    type Error = AppError;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, ScheduleRow>, Self::Error> {
        let mut conn = self.0.get().await?;
        let rows = store::schedules_by_ids(&mut conn, keys).await?;
        Ok(rows.into_iter().map(|r| (r.id, r)).collect())
    }
}

type Loaders = (
    DataLoader<ConcertLoader>,
    DataLoader<SchedulesOfConcertLoader>,
    DataLoader<HostLoader>,
    DataLoader<ScheduleLoader>,
);

/// The loaders of this module, for a request's data.
pub fn loaders(pool: &Pool) -> Loaders {
    (
        DataLoader::new(ConcertLoader(pool.clone()), tokio::spawn),
        DataLoader::new(SchedulesOfConcertLoader(pool.clone()), tokio::spawn),
        DataLoader::new(HostLoader(pool.clone()), tokio::spawn),
        DataLoader::new(ScheduleLoader(pool.clone()), tokio::spawn),
    )
}
