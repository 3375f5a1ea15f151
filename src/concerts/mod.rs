//! The GraphQL face of [`boxoffice_services::concerts`]: the service lives in that crate,
//! re-exported here so resolvers name it as before.

pub use boxoffice_services::concerts::*;

pub mod graphql;
