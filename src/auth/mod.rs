//! The GraphQL face of [`boxoffice_services::auth`]: the service lives in that crate,
//! re-exported here so resolvers name it as before.

pub use boxoffice_services::auth::*;

pub mod context;
pub mod graphql;
pub use graphql::User;
