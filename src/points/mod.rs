//! Points: the account balance and its append-only ledger.
//!
//! A balance changes only through [`store::apply`], which updates the user row and appends
//! the ledger entry (with the balance after it) in one statement, refusing to go below zero.
//! So a balance always equals the sum of its entries (I3). Payments and refunds call it from
//! `booking`; charges and admin adjustments come through `service`.

pub mod graphql;
pub mod service;
pub mod store;
