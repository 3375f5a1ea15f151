//! The GraphQL schema: the merged parts of every domain, and the limits that protect it.

use async_graphql::{EmptySubscription, MergedObject, Schema, SchemaBuilder};

use crate::{admin, auth, state::AppState};

#[derive(MergedObject, Default)]
pub struct Query(auth::graphql::AuthQuery, admin::graphql::AdminQuery);

#[derive(MergedObject, Default)]
pub struct Mutation(auth::graphql::AuthMutation, admin::graphql::AdminMutation);

pub type AppSchema = Schema<Query, Mutation, EmptySubscription>;

/// Deep enough for every legitimate query of this API, shallow enough to refuse abuse.
const MAX_DEPTH: usize = 12;
/// Each field costs 1; list fields cost their page size times their children.
const MAX_COMPLEXITY: usize = 5_000;

fn builder() -> SchemaBuilder<Query, Mutation, EmptySubscription> {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
}

pub fn build(state: AppState) -> AppSchema {
    let mut b = builder();
    if !state.config.introspection {
        b = b.disable_introspection();
    }
    b.data(state).finish()
}

/// The SDL, as written to schema.graphql by `boxoffice export-schema`.
pub fn sdl() -> String {
    builder().finish().sdl()
}
