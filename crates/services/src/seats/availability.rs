//! What a schedule's seats of one grade are doing: the GraphQL value the seat-map cache,
//! schedules and live events all answer with.

use async_graphql::SimpleObject;

use super::store::GradeCount;

/// Seats of one grade of a schedule, by status. A value of its schedule (or event), with
/// no id of its own: caches embed it in its parent.
#[derive(SimpleObject, Clone, Debug)]
pub struct GradeAvailability {
    pub grade: String,
    pub price: i64,
    pub color: String,
    pub total: i64,
    pub available: i64,
    pub held: i64,
    pub sold: i64,
    /// Kept back by the host (`blockSeats`): never sold, not available.
    pub blocked: i64,
}

impl From<GradeCount> for GradeAvailability {
    fn from(c: GradeCount) -> Self {
        Self {
            grade: c.name,
            price: c.price,
            color: c.color,
            total: c.total,
            available: c.available,
            held: c.held,
            sold: c.sold,
            blocked: c.blocked,
        }
    }
}
