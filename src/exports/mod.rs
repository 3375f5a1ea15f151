//! The GraphQL face of [`boxoffice_services::exports`]: the service lives in that crate,
//! re-exported here so resolvers name it as before.

pub use boxoffice_services::exports::*;

pub mod download;
pub mod graphql;
