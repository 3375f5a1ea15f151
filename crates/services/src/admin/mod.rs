//! Administration: finding users, changing roles, and the audit log of privileged actions.

pub use boxoffice_store::audit;
pub mod store;
