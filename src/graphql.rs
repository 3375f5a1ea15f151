//! The GraphQL schema: the merged parts of every domain, and the extensions every request
//! passes through (persisted queries, limits, error codes).

pub mod apq;
pub mod depth;
pub mod documents;
pub mod order;
pub mod refusal;

use async_graphql::{
    MergedObject, MergedSubscription, Request, Schema, SchemaBuilder, dataloader::DataLoader,
};

use crate::{admin, auth, booking, concerts, live, orders, points, queue, seats, state::AppState, waitlist};

#[derive(MergedObject, Default)]
pub struct Query(
    auth::graphql::AuthQuery,
    admin::graphql::AdminQuery,
    admin::graphql::ReportsQuery,
    concerts::graphql::ConcertsQuery,
    booking::graphql::BookingQuery,
    points::graphql::PointsQuery,
    queue::graphql::QueueQuery,
    orders::graphql::OrdersQuery,
    waitlist::graphql::WaitlistQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    auth::graphql::AuthMutation,
    admin::graphql::AdminMutation,
    concerts::graphql::ConcertsMutation,
    seats::graphql::SeatsMutation,
    booking::graphql::BookingMutation,
    points::graphql::PointsMutation,
    queue::graphql::QueueMutation,
    orders::graphql::OrdersMutation,
    waitlist::graphql::WaitlistMutation,
);

#[derive(MergedSubscription, Default)]
pub struct Subscription(
    live::graphql::LiveSubscription,
    queue::graphql::QueueSubscription,
    orders::graphql::OrdersSubscription,
    waitlist::graphql::WaitlistSubscription,
);

pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// The schema without its data and without the limits (`build` adds those as extensions:
/// `depth` replaces async-graphql's `limit_depth`, which would refuse the standard
/// introspection query, and `crate::limits`' cost model replaces its complexity limit, which
/// counted every field as 1 and walked fragments once per spread).
pub(crate) fn builder() -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(Query::default(), Mutation::default(), Subscription::default()).limit_directives(8)
}

/// The schema with its extensions, outermost first: codes (so that every refusal below
/// gets one), field order (answers in the request's order), persisted queries (a hash
/// becomes its query before anything looks at it), then what one request may cost
/// (`crate::limits`: document size, selections, root fields, the cost model, deadline and
/// response size), then depth and the bounds of introspection (`depth`), which
/// async-graphql's own `limit_depth` cannot tell apart (it would refuse the standard
/// introspection query).
pub fn build(state: AppState) -> AppSchema {
    let edge = &state.config.edge;
    let booking = crate::limits::BookingRate::new(edge.booking_rate_per_second, edge.booking_rate_burst);
    let mut b = builder()
        .extension(refusal::Codes)
        .extension(order::FieldOrder)
        .extension(state.persisted_queries.clone())
        .extension(crate::limits::LimitsExtension::new(
            edge.limits.clone(),
            Some(booking),
        ))
        .extension(depth::DepthLimits {
            introspection: state.config.introspection,
        });
    if !state.config.introspection {
        b = b.disable_introspection();
    }
    b.data(state).finish()
}

/// Per-request (or per-connection) data: the DataLoaders that batch every foreign-key and
/// per-parent lookup into one query per kind. They do not cache, so a long-lived
/// WebSocket connection never serves stale rows.
pub fn loaders(data: &mut async_graphql::Data, state: &AppState) {
    let pool = &state.db;
    let (concert, schedules_of, host, schedule) = concerts::graphql::loaders(pool);
    data.insert(concert);
    data.insert(schedules_of);
    data.insert(host);
    data.insert(schedule);
    data.insert(DataLoader::new(
        seats::graphql::SeatMapLoader(pool.clone()),
        tokio::spawn,
    ));
    data.insert(DataLoader::new(
        seats::graphql::SeatLoader(pool.clone()),
        tokio::spawn,
    ));
    data.insert(DataLoader::new(
        seats::graphql::AvailabilityLoader(pool.clone()),
        tokio::spawn,
    ));
    data.insert(DataLoader::new(
        booking::graphql::ReservedSeatsLoader(pool.clone()),
        tokio::spawn,
    ));
}

/// A request with its loaders.
pub fn with_loaders(mut request: Request, state: &AppState) -> Request {
    loaders(&mut request.data, state);
    request
}

/// The SDL, as written to schema.graphql by `boxoffice export-schema`.
pub fn sdl() -> String {
    builder().finish().sdl()
}
