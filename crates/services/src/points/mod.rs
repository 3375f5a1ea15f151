//! Points: the account balance and its append-only ledger.
//!
//! A balance changes only through [`store::apply`], which updates the user row and appends
//! the ledger entry (with the balance after it) in one statement, refusing to go below zero.
//! So a balance always equals the sum of its entries (I3). Payments and refunds call it from
//! `booking`, top-ups from `payments`, admin adjustments from `service`. A credit while the
//! account owes a debt (a top-up cancelled by the provider after its points were spent)
//! pays the debt first; an account in debt takes no new holds.

pub mod debtors;
pub mod long;
pub mod service;
pub use boxoffice_store::points as store;

pub use long::Long;
