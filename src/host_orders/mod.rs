//! The GraphQL face of [`boxoffice_services::host_orders`]: the service lives in that crate,
//! re-exported here so resolvers name it as before.

pub use boxoffice_services::host_orders::*;

pub mod graphql;
