//! The GraphQL face of [`boxoffice_services::seats`]: the service lives in that crate,
//! re-exported here so resolvers name it as before.

pub use boxoffice_services::seats::*;

pub mod graphql;
pub mod mutation;
