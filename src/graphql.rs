//! The GraphQL schema: the merged parts of every domain, and the extensions every request
//! passes through (persisted queries, limits, error codes).

pub mod apq;
pub mod limits;
pub mod order;
pub mod refusal;

use async_graphql::{
    MergedObject, MergedSubscription, Request, Schema, SchemaBuilder, dataloader::DataLoader,
};

use crate::{admin, auth, booking, concerts, live, orders, points, queue, seats, state::AppState};

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
);

#[derive(MergedSubscription, Default)]
pub struct Subscription(
    live::graphql::LiveSubscription,
    queue::graphql::QueueSubscription,
    orders::graphql::OrdersSubscription,
);

pub type AppSchema = Schema<Query, Mutation, Subscription>;

fn builder() -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(Query::default(), Mutation::default(), Subscription::default())
}

/// The schema with its extensions, outermost first: codes (so that every refusal below
/// gets one), field order (answers in the request's order), persisted queries (a hash
/// becomes its query before anything looks at it), then the depth, complexity and
/// introspection limits, which async-graphql's own `limit_depth` cannot tell apart (it
/// would refuse the standard introspection query).
pub fn build(state: AppState) -> AppSchema {
    let mut b = builder()
        .extension(refusal::Codes)
        .extension(order::FieldOrder)
        .extension(state.persisted_queries.clone())
        .extension(limits::Limits {
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
