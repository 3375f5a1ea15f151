//! The GraphQL schema: the merged parts of every domain, and the one extension every
//! request passes through (`edge`: error codes, field order, persisted queries, limits).

pub mod apq;
pub mod depth;
pub mod documents;
pub mod edge;
pub mod order;
pub mod refusal;
mod variables;

use async_graphql::{
    MergedObject, MergedSubscription, Request, Schema, SchemaBuilder, dataloader::DataLoader,
};

use crate::{
    admin, auth, booking, concerts, events, exports, host_orders, live, notices, orders, payments, points,
    queue, seats, shows, state::AppState, tickets, waitlist,
};

#[derive(MergedObject, Default)]
pub struct Query(
    auth::graphql::AuthQuery,
    admin::graphql::AdminQuery,
    admin::graphql::ReportsQuery,
    concerts::graphql::ConcertsQuery,
    booking::graphql::BookingQuery,
    points::graphql::PointsQuery,
    payments::graphql::PaymentsQuery,
    queue::graphql::QueueQuery,
    orders::graphql::OrdersQuery,
    waitlist::graphql::WaitlistQuery,
    tickets::graphql::TicketsQuery,
    events::graphql::WebhooksQuery,
    host_orders::graphql::HostOrdersQuery,
    notices::graphql::NoticesQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    auth::graphql::AuthMutation,
    admin::graphql::AdminMutation,
    concerts::graphql::ConcertsMutation,
    seats::mutation::SeatsMutation,
    shows::graphql::ShowsMutation,
    booking::graphql::BookingMutation,
    points::graphql::PointsMutation,
    payments::graphql::PaymentsMutation,
    queue::graphql::QueueMutation,
    orders::graphql::OrdersMutation,
    waitlist::graphql::WaitlistMutation,
    tickets::graphql::TicketsMutation,
    events::graphql::WebhooksMutation,
    host_orders::graphql::HostOrdersMutation,
    exports::graphql::ExportsMutation,
    notices::graphql::NoticesMutation,
);

#[derive(MergedSubscription, Default)]
pub struct Subscription(
    live::graphql::LiveSubscription,
    queue::graphql::QueueSubscription,
    orders::graphql::OrdersSubscription,
    waitlist::graphql::WaitlistSubscription,
    tickets::graphql::TicketsSubscription,
);

pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// The schema without its data and without the limits (`build` adds those in its extension:
/// `depth` replaces async-graphql's `limit_depth`, which would refuse the standard
/// introspection query, and `crate::limits`' cost model replaces its complexity limit, which
/// counted every field as 1 and walked fragments once per spread).
pub(crate) fn builder() -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(Query::default(), Mutation::default(), Subscription::default()).limit_directives(8)
}

/// The schema with its one extension (`edge`, which says in what order a request meets
/// codes, field order, persisted queries, limits and depth).
pub fn build(state: AppState) -> AppSchema {
    let config = &state.config.edge;
    let booking = crate::limits::BookingRate::new(config.booking_rate_per_second, config.booking_rate_burst);
    let limiter = crate::limits::Limiter::new(config.limits.clone(), Some(booking));
    let mut b = builder().extension(edge::Edge::new(
        state.persisted_queries.clone(),
        limiter,
        state.config.introspection,
    ));
    if !state.config.introspection {
        // "Did you mean …" would spell out, field by field, the schema that switching
        // introspection off is meant to keep to ourselves.
        b = b.disable_introspection().disable_suggestions();
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
    data.insert(DataLoader::new(
        tickets::graphql::TicketsLoader(pool.clone()),
        tokio::spawn,
    ));
}

/// A request with its loaders.
pub fn with_loaders(mut request: Request, state: &AppState) -> Request {
    loaders(&mut request.data, state);
    request
}

/// The SDL, as written to schema.graphql by `boxoffice export-schema`: with
/// `@specifiedBy` on the scalars that have it, as introspection reports them.
pub fn sdl() -> String {
    builder()
        .finish()
        .sdl_with_options(async_graphql::SDLExportOptions::new().include_specified_by())
}
