//! The check-in decision for one scan: given what the code says, the ticket's stored state
//! and the show, what the door answers.
//!
//! The order of the checks is the order a door person needs the answers in: a code that is
//! not ours (INVALID), a ticket for another performance (WRONG_SCHEDULE), a ticket that was
//! cancelled or refunded (REVOKED), a scan after the show (ENDED) or before the doors open
//! (NOT_YET), a ticket already let in (ALREADY_USED, with where and when), and only then
//! ADMITTED. [`precheck`] is the part that needs no stored state, which an offline scanner
//! runs on its own.
//!
//! Admitting is not decided here alone: the store turns [`Decision::Admit`] into a
//! conditional update (`... WHERE status = 'VALID'`), and a scan that loses that race is
//! decided again against the state the winner left.

use chrono::{DateTime, Duration, Utc};

use crate::code::{CodeError, TicketClaims};

/// How long before a show starts its doors open, unless configured otherwise.
pub const DEFAULT_DOORS_OPEN_BEFORE: Duration = Duration::hours(2);

/// What the door answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckInStatus {
    Admitted,
    AlreadyUsed,
    Invalid,
    WrongSchedule,
    Revoked,
    NotYet,
    Ended,
}

impl CheckInStatus {
    pub const ALL: [Self; 7] = [
        Self::Admitted,
        Self::AlreadyUsed,
        Self::Invalid,
        Self::WrongSchedule,
        Self::Revoked,
        Self::NotYet,
        Self::Ended,
    ];

    /// The stable code stored with a scan and served to clients.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admitted => "ADMITTED",
            Self::AlreadyUsed => "ALREADY_USED",
            Self::Invalid => "INVALID",
            Self::WrongSchedule => "WRONG_SCHEDULE",
            Self::Revoked => "REVOKED",
            Self::NotYet => "NOT_YET",
            Self::Ended => "ENDED",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == code)
    }
}

/// A ticket's stored status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TicketStatus {
    Valid,
    Used,
    Revoked,
}

impl TicketStatus {
    pub const ALL: [Self; 3] = [Self::Valid, Self::Used, Self::Revoked];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "VALID",
            Self::Used => "USED",
            Self::Revoked => "REVOKED",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == code)
    }
}

/// Where and when a ticket was let in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Admission {
    pub at: DateTime<Utc>,
    pub gate: String,
}

/// What the store knows of a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRecord {
    pub id: i64,
    pub schedule_id: i64,
    pub seat_id: i64,
    /// Unix seconds, as signed into its code.
    pub issued_at: i64,
    pub status: TicketStatus,
    /// Set exactly when `status` is `Used`.
    pub admission: Option<Admission>,
}

/// The performance a scanner checks in for, and its door times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Show {
    pub schedule_id: i64,
    pub doors_open_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

impl Show {
    /// Doors open `doors_open_before` the start; scans are refused from `ends_at` on.
    pub fn new(
        schedule_id: i64,
        starts_at: DateTime<Utc>,
        doors_open_before: Duration,
        ends_at: DateTime<Utc>,
    ) -> Self {
        Self {
            schedule_id,
            doors_open_at: starts_at - doors_open_before,
            ends_at,
        }
    }
}

/// The answer to one scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Let this person in (for the store: admit, if the ticket is still VALID).
    Admit,
    /// Refuse; `first` is set for ALREADY_USED.
    Refuse {
        status: CheckInStatus,
        first: Option<Admission>,
    },
}

impl Decision {
    pub fn status(&self) -> CheckInStatus {
        match self {
            Self::Admit => CheckInStatus::Admitted,
            Self::Refuse { status, .. } => *status,
        }
    }

    fn refuse(status: CheckInStatus) -> Self {
        Self::Refuse { status, first: None }
    }
}

/// The checks that need only a verified code and the show: what an offline scanner can
/// decide by itself. `Ok` means "admit unless the ticket's state says otherwise".
pub fn precheck(claims: &TicketClaims, show: &Show, at: DateTime<Utc>) -> Result<(), CheckInStatus> {
    if claims.schedule_id != show.schedule_id {
        return Err(CheckInStatus::WrongSchedule);
    }
    if at >= show.ends_at {
        return Err(CheckInStatus::Ended);
    }
    if at < show.doors_open_at {
        return Err(CheckInStatus::NotYet);
    }
    Ok(())
}

/// The whole decision for a scan at `at`. `verified` is the key ring's answer for the code;
/// `record` the stored ticket with the code's ticket id, if any.
pub fn decide(
    verified: &Result<TicketClaims, CodeError>,
    record: Option<&TicketRecord>,
    show: &Show,
    at: DateTime<Utc>,
) -> Decision {
    let Ok(claims) = verified else {
        return Decision::refuse(CheckInStatus::Invalid);
    };
    if claims.schedule_id != show.schedule_id {
        return Decision::refuse(CheckInStatus::WrongSchedule);
    }
    // A signed code the store does not know, or whose seat or issue time differ from the
    // stored ticket's: a leaked key or a superseded code, not a ticket.
    let Some(record) = record.filter(|r| {
        r.id == claims.ticket_id
            && r.schedule_id == claims.schedule_id
            && r.seat_id == claims.seat_id
            && r.issued_at == claims.issued_at
    }) else {
        return Decision::refuse(CheckInStatus::Invalid);
    };
    if record.status == TicketStatus::Revoked {
        return Decision::refuse(CheckInStatus::Revoked);
    }
    if let Err(status) = precheck(claims, show, at) {
        return Decision::refuse(status);
    }
    match (record.status, &record.admission) {
        (TicketStatus::Valid, _) => Decision::Admit,
        (_, first) => Decision::Refuse {
            status: CheckInStatus::AlreadyUsed,
            first: first.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;
    use crate::keys::KeyId;

    fn at(hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 24, hour, minute, 0).unwrap()
    }

    fn show() -> Show {
        // Starts 20:00, doors 18:00, over at 23:00.
        Show::new(5, at(20, 0), DEFAULT_DOORS_OPEN_BEFORE, at(23, 0))
    }

    fn claims() -> TicketClaims {
        TicketClaims {
            key_id: KeyId(1),
            ticket_id: 10,
            schedule_id: 5,
            seat_id: 100,
            issued_at: 1_796_000_000,
        }
    }

    fn record(status: TicketStatus) -> TicketRecord {
        TicketRecord {
            id: 10,
            schedule_id: 5,
            seat_id: 100,
            issued_at: 1_796_000_000,
            status,
            admission: (status == TicketStatus::Used).then(|| Admission {
                at: at(18, 30),
                gate: "north".into(),
            }),
        }
    }

    fn status_of(
        verified: Result<TicketClaims, CodeError>,
        rec: Option<TicketRecord>,
        when: DateTime<Utc>,
    ) -> CheckInStatus {
        decide(&verified, rec.as_ref(), &show(), when).status()
    }

    #[test]
    fn a_valid_ticket_is_admitted_while_doors_are_open() {
        for when in [at(18, 0), at(20, 0), at(22, 59)] {
            assert_eq!(
                status_of(Ok(claims()), Some(record(TicketStatus::Valid)), when),
                CheckInStatus::Admitted
            );
        }
    }

    #[test]
    fn door_times_bound_admission() {
        let valid = || Some(record(TicketStatus::Valid));
        assert_eq!(
            status_of(Ok(claims()), valid(), at(17, 59)),
            CheckInStatus::NotYet
        );
        assert_eq!(status_of(Ok(claims()), valid(), at(23, 0)), CheckInStatus::Ended);
        let late_doors = Show::new(5, at(20, 0), Duration::minutes(30), at(23, 0));
        assert_eq!(
            decide(&Ok(claims()), valid().as_ref(), &late_doors, at(19, 0)).status(),
            CheckInStatus::NotYet
        );
    }

    #[test]
    fn a_used_ticket_answers_where_and_when_it_was_first_used() {
        let decision = decide(
            &Ok(claims()),
            Some(&record(TicketStatus::Used)),
            &show(),
            at(19, 0),
        );
        assert_eq!(
            decision,
            Decision::Refuse {
                status: CheckInStatus::AlreadyUsed,
                first: Some(Admission {
                    at: at(18, 30),
                    gate: "north".into()
                }),
            }
        );
    }

    #[test]
    fn refusals_come_in_the_order_the_door_needs_them() {
        let when = at(19, 0);
        assert_eq!(
            status_of(
                Err(CodeError::BadSignature),
                Some(record(TicketStatus::Valid)),
                when
            ),
            CheckInStatus::Invalid
        );
        let elsewhere = TicketClaims {
            schedule_id: 6,
            ..claims()
        };
        // Another show's ticket is WRONG_SCHEDULE even though the store has no such row here.
        assert_eq!(status_of(Ok(elsewhere), None, when), CheckInStatus::WrongSchedule);
        assert_eq!(status_of(Ok(claims()), None, when), CheckInStatus::Invalid);
        assert_eq!(
            status_of(Ok(claims()), Some(record(TicketStatus::Revoked)), when),
            CheckInStatus::Revoked
        );
        // Revoked wins over the clock; the clock wins over "already used".
        assert_eq!(
            status_of(Ok(claims()), Some(record(TicketStatus::Revoked)), at(23, 30)),
            CheckInStatus::Revoked
        );
        assert_eq!(
            status_of(Ok(claims()), Some(record(TicketStatus::Used)), at(23, 30)),
            CheckInStatus::Ended
        );
    }

    #[test]
    fn a_code_that_disagrees_with_its_stored_ticket_is_invalid() {
        let when = at(19, 0);
        for other in [
            TicketRecord {
                seat_id: 101,
                ..record(TicketStatus::Valid)
            },
            TicketRecord {
                issued_at: 1_796_000_001,
                ..record(TicketStatus::Valid)
            },
            TicketRecord {
                id: 11,
                ..record(TicketStatus::Valid)
            },
        ] {
            assert_eq!(status_of(Ok(claims()), Some(other), when), CheckInStatus::Invalid);
        }
    }

    #[test]
    fn statuses_round_trip_their_codes() {
        for s in CheckInStatus::ALL {
            assert_eq!(CheckInStatus::parse(s.as_str()), Some(s));
        }
        for s in TicketStatus::ALL {
            assert_eq!(TicketStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(CheckInStatus::parse("admitted"), None);
    }
}
