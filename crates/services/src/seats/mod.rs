//! Graded seat layouts and the seat map.
//!
//! - `best_available`: choosing the best free seats for a count and grade (pure).
//! - `layout`: validating a `SeatLayoutInput` and generating its seats in bulk.
//! - `store`: seat and grade queries (the map, availability per grade).
//! - `map`: the compact seat map, cached per schedule version.
//! - `availability`: `GradeAvailability`, a grade's seats by status.
//! - `graphql`, in the server (`src/`): `Seat`, `SeatGrade`, the layout input types, loaders.
//! - `mutation`, in the server (`src/`): `generateSeats`.
//!
//! Seat *status* changes (hold, sell, release) belong to `booking`, never here.

pub use boxoffice_core::best_available;
pub mod availability;
pub mod layout;
pub mod map;
pub use boxoffice_store::seats as store;
pub use boxoffice_store::seats::SeatStatus;

/// Seats one page of `Schedule.seats(first:)` returns at most: four pages read a 40,000-seat
/// section, and a page with its seats' ids and statuses stays well inside one request's
/// seat budget (`limits::charge_seats`).
pub const MAX_SEAT_PAGE: i32 = 10_000;

/// The one-letter status codes of `packed` strings and compact seat maps.
pub fn status_letter(status: SeatStatus) -> char {
    match status {
        SeatStatus::Available => 'A',
        SeatStatus::Held => 'H',
        SeatStatus::Sold => 'S',
        SeatStatus::Blocked => 'B',
    }
}
