//! The GraphQL face of [`boxoffice_services::payments`]: the service lives in that crate,
//! re-exported here so resolvers name it as before.

pub use boxoffice_services::payments::*;

pub mod graphql;
pub mod webhook;
