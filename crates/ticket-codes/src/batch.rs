//! The rule for scans made offline and uploaded together.
//!
//! An offline scanner lets people in on its own judgement (a good signature, the right
//! show, not seen before on this device); when it is back online it uploads what it saw.
//! Two offline gates may both have let the same ticket in; the upload decides which scan
//! counts:
//!
//! - scans are judged in the order they were made (`scanned_at`, ties by upload order), so
//!   the first scan in time of a ticket is its admission and every later scan of it is
//!   ALREADY_USED with the first one's gate and time, and listed as a conflict;
//! - a ticket already admitted before the upload keeps that admission (someone was let in
//!   on it, and that answer cannot be taken back): the batch's scans of it are conflicts;
//! - a nonce seen before (in this batch, or stored from an earlier upload) is the same
//!   scan sent again: it gets the first answer and counts once (the same nonce on another
//!   code is INVALID: it is not a repeat, and must not borrow another scan's answer);
//! - a scan dated in the future is taken as made now, so a wrong device clock cannot move
//!   a scan past a later one's claim or outside the doors' hours in its favour.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::code::{CodeError, TicketClaims};
use crate::door::{self, Admission, CheckInStatus, Decision, Show, TicketRecord, TicketStatus};

/// One uploaded scan.
#[derive(Debug, Clone)]
pub struct OfflineScan {
    /// The key ring's answer for the scan's code.
    pub verified: Result<TicketClaims, CodeError>,
    pub gate: String,
    pub scanned_at: DateTime<Utc>,
    pub nonce: String,
    /// The answer already stored for this nonce, if it was uploaded before.
    pub replay: Option<Outcome>,
}

/// What one scan is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub status: CheckInStatus,
    /// The ticket's admission (its own for ADMITTED, the earlier one for ALREADY_USED).
    pub first: Option<Admission>,
}

/// The plan for one scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub outcome: Outcome,
    /// The store must record this scan as its ticket's admission.
    pub admit: bool,
    /// Another scan of the same ticket was its admission.
    pub conflict: bool,
    /// The same nonce appeared earlier in this batch (by time) at this index.
    pub repeat_of: Option<usize>,
    /// When the scan counts as made (`scanned_at`, or now if that is in the future).
    pub at: DateTime<Utc>,
}

/// Plans a batch. `records` holds the stored tickets the batch's codes name; the answer
/// is in the order of `scans`.
pub fn plan(
    scans: &[OfflineScan],
    records: &HashMap<i64, TicketRecord>,
    show: &Show,
    now: DateTime<Utc>,
) -> Vec<Planned> {
    let mut order: Vec<usize> = (0..scans.len()).collect();
    order.sort_by_key(|&i| (scans[i].scanned_at.min(now), i));

    let mut tickets = records.clone();
    let mut nonces: HashMap<&str, usize> = HashMap::new();
    let mut planned: Vec<Option<Planned>> = vec![None; scans.len()];

    for i in order {
        let scan = &scans[i];
        let at = scan.scanned_at.min(now);
        if let Some(&first) = nonces.get(scan.nonce.as_str()) {
            let earlier = planned[first].clone().map(|p| p.outcome);
            // The same nonce on another code is not the same scan sent twice: a scanner
            // bug or a forgery, and it must not borrow the other scan's answer.
            let same_scan = scans[first].verified == scan.verified;
            let outcome = earlier.filter(|_| same_scan).unwrap_or(Outcome {
                status: CheckInStatus::Invalid,
                first: None,
            });
            planned[i] = Some(Planned {
                outcome,
                admit: false,
                conflict: false,
                repeat_of: same_scan.then_some(first),
                at,
            });
            continue;
        }
        nonces.insert(scan.nonce.as_str(), i);
        if let Some(outcome) = &scan.replay {
            planned[i] = Some(Planned {
                outcome: outcome.clone(),
                admit: false,
                conflict: false,
                repeat_of: None,
                at,
            });
            continue;
        }
        let record = scan
            .verified
            .as_ref()
            .ok()
            .and_then(|c| tickets.get(&c.ticket_id));
        let decision = door::decide(&scan.verified, record, show, at);
        planned[i] = Some(match decision {
            Decision::Admit => {
                let admission = Admission {
                    at,
                    gate: scan.gate.clone(),
                };
                if let Some(record) = scan
                    .verified
                    .as_ref()
                    .ok()
                    .and_then(|c| tickets.get_mut(&c.ticket_id))
                {
                    record.status = TicketStatus::Used;
                    record.admission = Some(admission.clone());
                }
                Planned {
                    outcome: Outcome {
                        status: CheckInStatus::Admitted,
                        first: Some(admission),
                    },
                    admit: true,
                    conflict: false,
                    repeat_of: None,
                    at,
                }
            }
            Decision::Refuse { status, first } => Planned {
                conflict: status == CheckInStatus::AlreadyUsed,
                outcome: Outcome { status, first },
                admit: false,
                repeat_of: None,
                at,
            },
        });
    }
    // Every index was visited once, in time order; a repeat's first occurrence came before it.
    planned.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;
    use crate::door::DEFAULT_DOORS_OPEN_BEFORE;
    use crate::keys::KeyId;

    fn at(hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 24, hour, minute, 0).unwrap()
    }

    fn show() -> Show {
        Show::new(5, at(20, 0), DEFAULT_DOORS_OPEN_BEFORE, at(23, 0))
    }

    fn claims(ticket: i64) -> TicketClaims {
        TicketClaims {
            key_id: KeyId(1),
            ticket_id: ticket,
            schedule_id: 5,
            seat_id: 100 + ticket,
            issued_at: 1_796_000_000,
        }
    }

    fn records(tickets: &[i64]) -> HashMap<i64, TicketRecord> {
        tickets
            .iter()
            .map(|&t| {
                (
                    t,
                    TicketRecord {
                        id: t,
                        schedule_id: 5,
                        seat_id: 100 + t,
                        issued_at: 1_796_000_000,
                        status: TicketStatus::Valid,
                        admission: None,
                    },
                )
            })
            .collect()
    }

    fn scan(ticket: i64, gate: &str, when: DateTime<Utc>, nonce: &str) -> OfflineScan {
        OfflineScan {
            verified: Ok(claims(ticket)),
            gate: gate.into(),
            scanned_at: when,
            nonce: nonce.into(),
            replay: None,
        }
    }

    fn statuses(plan: &[Planned]) -> Vec<CheckInStatus> {
        plan.iter().map(|p| p.outcome.status).collect()
    }

    #[test]
    fn the_first_scan_in_time_wins_whatever_the_upload_order() {
        let scans = [
            scan(1, "south", at(19, 5), "b"),
            scan(1, "north", at(19, 0), "a"),
            scan(2, "south", at(19, 1), "c"),
        ];
        let plan = plan(&scans, &records(&[1, 2]), &show(), at(21, 0));
        assert_eq!(
            statuses(&plan),
            [
                CheckInStatus::AlreadyUsed,
                CheckInStatus::Admitted,
                CheckInStatus::Admitted
            ]
        );
        let north = Some(Admission {
            at: at(19, 0),
            gate: "north".into(),
        });
        assert_eq!(plan[0].outcome.first, north);
        assert!(plan[0].conflict && !plan[0].admit);
        assert!(plan[1].admit && !plan[1].conflict);
        assert_eq!(plan[1].outcome.first, north);
        assert_eq!(plan.iter().filter(|p| p.admit).count(), 2);
    }

    #[test]
    fn a_ticket_admitted_before_the_upload_keeps_its_admission() {
        let mut stored = records(&[1]);
        let online = Admission {
            at: at(19, 30),
            gate: "online".into(),
        };
        stored.get_mut(&1).unwrap().status = TicketStatus::Used;
        stored.get_mut(&1).unwrap().admission = Some(online.clone());
        let plan = plan(&[scan(1, "north", at(19, 0), "a")], &stored, &show(), at(21, 0));
        assert_eq!(
            plan[0].outcome,
            Outcome {
                status: CheckInStatus::AlreadyUsed,
                first: Some(online)
            }
        );
        assert!(plan[0].conflict && !plan[0].admit);
    }

    #[test]
    fn a_repeated_nonce_counts_once_and_answers_the_same() {
        let scans = [
            scan(1, "north", at(19, 0), "same"),
            scan(1, "north", at(19, 0), "same"),
            scan(1, "north", at(19, 2), "other"),
        ];
        let plan = plan(&scans, &records(&[1]), &show(), at(21, 0));
        assert_eq!(plan[0].outcome, plan[1].outcome);
        assert_eq!(plan[1].repeat_of, Some(0));
        assert!(!plan[1].admit && !plan[1].conflict);
        assert_eq!(plan[2].outcome.status, CheckInStatus::AlreadyUsed);
        assert_eq!(plan.iter().filter(|p| p.admit).count(), 1);
    }

    #[test]
    fn a_nonce_reused_on_another_code_is_invalid() {
        let scans = [
            scan(1, "north", at(19, 0), "same"),
            scan(2, "north", at(19, 1), "same"),
        ];
        let plan = plan(&scans, &records(&[1, 2]), &show(), at(21, 0));
        assert_eq!(statuses(&plan), [CheckInStatus::Admitted, CheckInStatus::Invalid]);
        assert!(!plan[1].admit);
    }

    #[test]
    fn a_nonce_stored_from_an_earlier_upload_replays_its_answer() {
        let stored = Outcome {
            status: CheckInStatus::Admitted,
            first: Some(Admission {
                at: at(19, 0),
                gate: "north".into(),
            }),
        };
        let mut replayed = scan(1, "north", at(19, 0), "a");
        replayed.replay = Some(stored.clone());
        let mut used = records(&[1]);
        used.get_mut(&1).unwrap().status = TicketStatus::Used;
        used.get_mut(&1).unwrap().admission = stored.first.clone();
        let plan = plan(&[replayed], &used, &show(), at(21, 0));
        assert_eq!(plan[0].outcome, stored);
        assert!(!plan[0].admit && !plan[0].conflict);
    }

    #[test]
    fn offline_scans_are_judged_at_the_time_they_were_made() {
        // Uploaded after the show ended, made during it: still admitted.
        let plan_late = plan(
            &[scan(1, "north", at(19, 0), "a")],
            &records(&[1]),
            &show(),
            at(23, 30),
        );
        assert_eq!(plan_late[0].outcome.status, CheckInStatus::Admitted);
        // Made before doors opened.
        let early = plan(
            &[scan(1, "north", at(17, 0), "a")],
            &records(&[1]),
            &show(),
            at(19, 0),
        );
        assert_eq!(early[0].outcome.status, CheckInStatus::NotYet);
        // Dated in the future: taken as now, and cannot jump ahead of a real scan.
        let future = plan(
            &[scan(1, "liar", at(23, 59), "a"), scan(1, "north", at(19, 0), "b")],
            &records(&[1]),
            &show(),
            at(19, 30),
        );
        assert_eq!(
            statuses(&future),
            [CheckInStatus::AlreadyUsed, CheckInStatus::Admitted]
        );
        assert_eq!(future[0].at, at(19, 30));
    }

    #[test]
    fn invalid_and_foreign_codes_in_a_batch_are_refused_alone() {
        let mut forged = scan(1, "north", at(19, 0), "x");
        forged.verified = Err(CodeError::BadSignature);
        let mut foreign = scan(2, "north", at(19, 0), "y");
        foreign.verified = Ok(TicketClaims {
            schedule_id: 6,
            ..claims(2)
        });
        let scans = [forged, foreign, scan(1, "north", at(19, 1), "z")];
        let plan = plan(&scans, &records(&[1, 2]), &show(), at(21, 0));
        assert_eq!(
            statuses(&plan),
            [
                CheckInStatus::Invalid,
                CheckInStatus::WrongSchedule,
                CheckInStatus::Admitted
            ]
        );
        assert!(!plan[0].conflict && !plan[1].conflict);
    }
}
