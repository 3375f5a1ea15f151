//! Running a show's orders (C19): the host's order list (`scheduleOrders`), refunding one
//! order (`refundReservation`, through booking's one entrance), and sales over time
//! (`salesTimeline`, the host's chart).
//!
//! Who may: the concert's host or an admin. Another host is answered NOT_FOUND, as if the
//! schedule or reservation did not exist (its buyers' names and emails are not theirs to
//! learn); a fan is refused by the field's role guard (FORBIDDEN).
//!
//! - `graphql`, in the server (`src/`): the types and thin resolvers.
//! - `timeline`: the buckets of the sales chart.
//! - queries: `boxoffice_store::host_orders`.

pub mod timeline;

pub use boxoffice_store::host_orders as store;
use diesel_async::AsyncPgConnection;

use crate::{
    auth::{Actor, Role},
    booking::ReservationRow,
    error::{AppError, AppResult},
    state::Services,
};

/// The longest search text and refund reason accepted.
const MAX_TEXT: usize = 100;
const MAX_REASON: usize = 500;

/// The schedule's owner row when `actor` manages it: its host or an admin. Anyone else (a
/// host of another concert) gets NOT_FOUND, exactly as for a schedule that does not exist.
pub async fn managed_schedule(
    conn: &mut AsyncPgConnection,
    actor: Actor,
    schedule_id: i64,
) -> AppResult<store::ScheduleOwner> {
    store::schedule_owner(conn, schedule_id)
        .await?
        .filter(|o| manages(actor, o.host_id))
        .ok_or(AppError::NotFound("schedule"))
}

fn manages(actor: Actor, host_id: i64) -> bool {
    actor.role == Role::Admin || (actor.role == Role::Host && actor.id == host_id)
}

/// A checked order filter: statuses as given, the text trimmed (at most 100 characters);
/// a text that is a reservation id also finds that reservation.
pub fn order_filter(
    statuses: Option<Vec<crate::booking::ReservationStatus>>,
    text: Option<&str>,
) -> AppResult<store::OrderFilter> {
    let text = text.map(str::trim).filter(|t| !t.is_empty());
    if let Some(t) = text
        && t.chars().count() > MAX_TEXT
    {
        return Err(AppError::bad_input(
            "filter.text",
            format!("must be at most {MAX_TEXT} characters"),
        ));
    }
    let mut statuses = statuses.unwrap_or_default();
    statuses.sort_by_key(|s| s.as_db());
    statuses.dedup();
    Ok(store::OrderFilter {
        statuses,
        reservation_id: text
            .map(|t| t.trim_start_matches('#'))
            .and_then(|t| t.parse::<i64>().ok())
            .filter(|id| *id > 0),
        text: text.map(str::to_owned),
    })
}

/// A schedule's orders for its host (see [`managed_schedule`]), newest first.
pub async fn orders(
    state: &Services,
    actor: Actor,
    schedule_id: i64,
    filter: &store::OrderFilter,
    after: Option<i64>,
    limit: i64,
) -> AppResult<Vec<store::OrderRow>> {
    let mut conn = state.db.get().await?;
    managed_schedule(&mut conn, actor, schedule_id).await?;
    Ok(store::orders(&mut conn, schedule_id, filter, after, limit).await?)
}

/// Checks a refund's reason: 1 to 500 characters once trimmed.
pub fn refund_reason(reason: &str) -> AppResult<String> {
    let reason = reason.trim();
    match reason.chars().count() {
        0 => Err(AppError::bad_input("reason", "must not be empty")),
        n if n > MAX_REASON => Err(AppError::bad_input(
            "reason",
            format!("must be at most {MAX_REASON} characters"),
        )),
        _ => Ok(reason.to_owned()),
    }
}

/// Refunds one order in full for the concert's host or an admin (`refundReservation`).
/// Another host: NOT_FOUND. Idempotent (booking's `refund`).
pub async fn refund(
    state: &Services,
    actor: Actor,
    reservation_id: i64,
    reason: &str,
) -> AppResult<ReservationRow> {
    let reason = refund_reason(reason)?;
    {
        let mut conn = state.db.get().await?;
        let r = crate::booking::reservation(&mut conn, reservation_id)
            .await?
            .ok_or(AppError::NotFound("reservation"))?;
        // A concert's host never changes, so checking before booking's transaction is
        // checking for good.
        managed_schedule(&mut conn, actor, r.schedule_id)
            .await
            .map_err(|_| AppError::NotFound("reservation"))?;
    }
    crate::booking::refund(state, actor, reservation_id, &reason).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::booking::ReservationStatus;

    #[test]
    fn filters_are_checked() {
        let f = order_filter(None, Some("  #42 ")).unwrap();
        assert_eq!(f.reservation_id, Some(42));
        assert_eq!(f.text.as_deref(), Some("#42"));
        let f = order_filter(
            Some(vec![ReservationStatus::Held, ReservationStatus::Held]),
            Some("  "),
        )
        .unwrap();
        assert_eq!(f.statuses, vec![ReservationStatus::Held]);
        assert_eq!(f.text, None);
        assert!(order_filter(None, Some(&"x".repeat(101))).is_err());
        assert_eq!(order_filter(None, Some("ann")).unwrap().reservation_id, None);
    }

    #[test]
    fn reasons_are_checked() {
        assert_eq!(refund_reason("  double booking ").unwrap(), "double booking");
        assert!(refund_reason(" ").is_err());
        assert!(refund_reason(&"x".repeat(501)).is_err());
    }

    #[test]
    fn who_manages() {
        let host = Actor {
            id: 7,
            role: Role::Host,
        };
        assert!(manages(host, 7));
        assert!(!manages(host, 8));
        assert!(manages(
            Actor {
                id: 1,
                role: Role::Admin
            },
            8
        ));
        assert!(!manages(
            Actor {
                id: 7,
                role: Role::User
            },
            7
        ));
    }
}
