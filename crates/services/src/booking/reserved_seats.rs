//! The seats of a reservation as GraphQL answers them (`Reservation.seats`, `Ticket.seat`),
//! loaded for many reservations in one query.

use std::collections::HashMap;

use async_graphql::{ID, SimpleObject, dataloader::Loader};

use super::store;
use crate::{db::Pool, error::AppError, ids};

/// A seat of a reservation, with the grade and price it was held at.
#[derive(SimpleObject, Clone)]
pub struct ReservedSeat {
    pub id: ID,
    pub section: String,
    pub row: String,
    pub number: i32,
    pub grade: String,
    pub price: i64,
}

pub struct ReservedSeatsLoader(pub Pool);

impl Loader<i64> for ReservedSeatsLoader {
    type Value = Vec<ReservedSeat>;
    type Error = AppError;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let mut conn = self.0.get().await?;
        let rows = store::reserved_seats(&mut conn, keys).await?;
        let mut out: HashMap<i64, Vec<ReservedSeat>> = HashMap::new();
        for r in rows {
            out.entry(r.reservation_id).or_default().push(ReservedSeat {
                id: ids::to_id(r.seat_id),
                section: r.section,
                row: r.row_label,
                number: r.number,
                grade: r.grade_name,
                price: r.price,
            });
        }
        Ok(out)
    }
}
