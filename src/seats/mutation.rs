//! `generateSeats`: a host lays out a schedule's seats from graded sections. Apart from the
//! seat types because it answers with the schedule, whose type uses those.

use async_graphql::{Context, ID, Object};

use super::layout::{self, SeatLayoutInput};
use crate::{
    auth::{
        Role,
        context::{RoleGuard, actor, state},
    },
    concerts::graphql::Schedule,
    error::AppError,
    ids,
};

#[derive(Default)]
pub struct SeatsMutation;

#[Object]
impl SeatsMutation {
    /// Creates the schedule's seats from a graded layout, replacing any previous layout.
    /// Refused with CONFLICT once a seat of the schedule has been reserved.
    #[graphql(guard = "RoleGuard(Role::Host)")]
    async fn generate_seats(
        &self,
        ctx: &Context<'_>,
        schedule_id: ID,
        layout: SeatLayoutInput,
    ) -> Result<Schedule, AppError> {
        let schedule_id = ids::parse(&schedule_id, "scheduleId")?;
        let plan = layout::plan(&layout)?;
        let actor = actor(ctx).await?;
        let state = state(ctx)?;
        let mut conn = state.db.get().await?;
        let served = layout::generate(&mut conn, state.bulk_writes(), actor, schedule_id, &plan).await?;
        if let Some(change) = served.change {
            state.live.publish_seats(change);
        }
        crate::waitlist::publish(&state.live.hub, &served.offers);
        let row = crate::concerts::store::schedule(&mut conn, schedule_id)
            .await?
            .ok_or(AppError::NotFound("schedule"))?;
        Ok(Schedule::new(row))
    }
}
