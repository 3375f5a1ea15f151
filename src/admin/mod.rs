//! The GraphQL face of [`boxoffice_services::admin`]: the service lives in that crate,
//! re-exported here so resolvers name it as before.

pub use boxoffice_services::admin::*;

pub mod graphql;
