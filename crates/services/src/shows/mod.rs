//! Running a show: what a host changes on a performance once it exists.
//!
//! - `edit`: `updateSchedule` (times, sales window, limits, queue settings) and
//!   `updateGradePrices`, each one transaction under the schedule lock, with the rule that
//!   refused a change named in its error.
//! - `guests`: the guest of a complimentary ticket (their account, invited if new).
//! - `graphql`, in the server (`src/`): the host mutations, thin: blocks and complimentary tickets go through
//!   `booking` (its `block`, `unblock`, `comp`), which holds the seats' one decision.

pub mod edit;
pub mod guests;
