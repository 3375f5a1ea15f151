//! Administration: finding users, changing roles, and the audit log of privileged actions.

pub mod audit;
pub mod graphql;
pub mod store;
