//! The sale rules, in one place: whether a schedule can be booked at a given moment. Pure:
//! the caller gives the moment (the database clock, so that every place that asks agrees
//! about when sales open and close) and the schedule's and concert's standing.

use chrono::{DateTime, Utc};

/// Where a schedule's sale stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sale {
    Open,
    /// Published and scheduled, before `salesOpenAt`: the waiting queue may already fill.
    NotYetOpen,
    /// After `salesCloseAt`.
    Closed,
    /// The schedule or its concert is cancelled.
    Cancelled,
    /// The concert is a draft: not for sale, not public.
    Unpublished,
}

impl Sale {
    /// Why a hold is refused, or `None` when it may go ahead.
    pub fn refusal(self) -> Option<&'static str> {
        match self {
            Self::Open => None,
            Self::NotYetOpen => Some("sales have not opened yet"),
            Self::Closed => Some("sales are closed"),
            Self::Cancelled => Some("this performance is cancelled"),
            Self::Unpublished => Some("this concert is not on sale"),
        }
    }

    pub fn is_open(self) -> bool {
        self == Self::Open
    }
}

/// What the rules read of a schedule and its concert.
#[derive(Clone, Copy, Debug)]
pub struct SaleFacts {
    pub schedule_cancelled: bool,
    pub concert_cancelled: bool,
    pub concert_published: bool,
    pub sales_open_at: DateTime<Utc>,
    pub sales_close_at: DateTime<Utc>,
}

/// The sale rules: on sale means the concert is published, the schedule not cancelled, and
/// `now` within the sales window `[open, close)`.
pub fn rules(facts: SaleFacts, now: DateTime<Utc>) -> Sale {
    if facts.schedule_cancelled || facts.concert_cancelled {
        Sale::Cancelled
    } else if !facts.concert_published {
        Sale::Unpublished
    } else if now < facts.sales_open_at {
        Sale::NotYetOpen
    } else if now >= facts.sales_close_at {
        Sale::Closed
    } else {
        Sale::Open
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    #[test]
    fn every_rule_in_its_place() {
        let now = Utc::now();
        let hour = TimeDelta::hours(1);
        let open = SaleFacts {
            schedule_cancelled: false,
            concert_cancelled: false,
            concert_published: true,
            sales_open_at: now - hour,
            sales_close_at: now + hour,
        };
        assert_eq!(rules(open, now), Sale::Open);
        let draft = SaleFacts {
            concert_published: false,
            ..open
        };
        assert_eq!(rules(draft, now), Sale::Unpublished);
        let cancelled = SaleFacts {
            concert_cancelled: true,
            concert_published: false,
            ..open
        };
        assert_eq!(rules(cancelled, now), Sale::Cancelled);
        assert_eq!(rules(open, now - hour * 2), Sale::NotYetOpen);
        // The window is [open, close).
        assert_eq!(rules(open, now - hour), Sale::Open);
        assert_eq!(rules(open, now + hour), Sale::Closed);
        let schedule_cancelled = SaleFacts {
            schedule_cancelled: true,
            ..open
        };
        assert_eq!(rules(schedule_cancelled, now), Sale::Cancelled);
        assert!(Sale::Open.refusal().is_none() && Sale::Closed.refusal().is_some());
    }
}
