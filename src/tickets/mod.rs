//! The GraphQL face of [`boxoffice_services::tickets`]: the service lives in that crate,
//! re-exported here so resolvers name it as before.

pub use boxoffice_services::tickets::*;

pub mod graphql;
