//! The GraphQL face of [`boxoffice_services::points`]: the service lives in that crate,
//! re-exported here so resolvers name it as before.

pub use boxoffice_services::points::*;

pub mod graphql;
