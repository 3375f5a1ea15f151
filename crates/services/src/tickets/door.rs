//! Check-in: one scan online, or a batch of scans made offline, each decided by
//! `boxoffice_ticket_codes` and applied here.
//!
//! A scan's nonce is claimed first (its row in `check_ins`, unique per performance), then
//! the ticket is admitted by a conditional update. Two scans of one ticket at two gates:
//! both claim their nonces, both try the update, PostgreSQL lets one change the row and
//! the other finds it USED (and answers ALREADY_USED with where and when). The same scan
//! sent twice: the second waits on the first's nonce, then answers what the first stored.
//! Every transaction takes nonces before tickets, and tickets in ascending id, so two
//! check-ins never wait for each other in a circle.
//!
//! A code whose signature does not verify is INVALID before any database read, and is not
//! stored.

use std::collections::{BTreeMap, HashMap};

use boxoffice_outbox::append;
use boxoffice_ticket_codes::{
    Admission, CheckInStatus, Decision, TicketClaims,
    batch::{self, OfflineScan, Outcome},
    door,
};
use chrono::{DateTime, SubsecRound as _, Utc};
use diesel_async::AsyncPgConnection;
use sha2::{Digest as _, Sha256};

use super::{
    Tickets,
    store::{self, NewScan, ScanRow, ScannerRow, TicketRow},
};
use crate::error::{AppError, AppResult};

/// Most scans one upload may carry.
pub const MAX_BATCH: usize = 500;

/// One scan as received.
#[derive(Clone, Debug)]
pub struct Scan {
    pub code: String,
    pub gate: String,
    pub nonce: String,
    /// When an offline scanner made it; `None` online (it is made now).
    pub scanned_at: Option<DateTime<Utc>>,
}

/// What a scan is answered.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: CheckInStatus,
    pub nonce: String,
    /// The ticket, when the code named one of this performance's tickets.
    pub ticket: Option<TicketRow>,
    pub first: Option<Admission>,
    /// Another scan of the same ticket was its admission (an offline upload's conflict).
    pub conflict: bool,
}

impl Answer {
    fn bare(status: CheckInStatus, nonce: &str) -> Self {
        Self {
            status,
            nonce: nonce.to_owned(),
            ticket: None,
            first: None,
            conflict: false,
        }
    }
}

fn validate(scan: &Scan) -> AppResult<()> {
    let gate = scan.gate.trim();
    if gate.is_empty() || gate.chars().count() > 100 {
        return Err(AppError::bad_input("gate", "must be 1 to 100 characters"));
    }
    if scan.nonce.is_empty() || scan.nonce.len() > 100 {
        return Err(AppError::bad_input("nonce", "must be 1 to 100 characters"));
    }
    if scan.code.len() > 1000 {
        return Err(AppError::bad_input("code", "is too long to be a ticket code"));
    }
    Ok(())
}

/// The clock at PostgreSQL's precision (microseconds), so an answer replayed from the
/// database says exactly what the first one said.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn code_hash(code: &str) -> Vec<u8> {
    // The code as the door read it, normalised the way the reader does (case, spaces,
    // dashes), so a retyped code with the same nonce counts as the same scan.
    let normal: String = code
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '\n' | '\r' | '\t'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    Sha256::digest(normal.as_bytes()).to_vec()
}

/// The answer a stored scan gave, with its ticket.
async fn replay(conn: &mut AsyncPgConnection, row: &ScanRow, schedule_id: i64) -> AppResult<Answer> {
    let ticket = match row.ticket_id {
        Some(id) => store::ticket(conn, id)
            .await?
            .filter(|t| t.schedule_id == schedule_id),
        None => None,
    };
    Ok(Answer {
        status: row.status()?,
        nonce: row.nonce.clone(),
        ticket,
        first: match (row.first_check_in_at, &row.first_gate) {
            (Some(at), Some(gate)) => Some(Admission {
                at,
                gate: gate.clone(),
            }),
            _ => None,
        },
        conflict: false,
    })
}

/// The answer for a code that does not verify (and BAD_USER_INPUT for a malformed scan),
/// decided without the database; `None` for a genuine code.
pub fn refuse_forged(tickets: &Tickets, scan: &Scan) -> AppResult<Option<Answer>> {
    validate(scan)?;
    Ok(tickets
        .verify(&scan.code, Utc::now())
        .is_err()
        .then(|| Answer::bare(CheckInStatus::Invalid, &scan.nonce)))
}

/// One scan, online: decided now.
pub async fn check_in(
    conn: &mut AsyncPgConnection,
    writes: crate::in_doubt::Writes<'_>,
    tickets: &Tickets,
    scanner: &ScannerRow,
    scan: Scan,
) -> AppResult<Answer> {
    validate(&scan)?;
    let now = now();
    let Ok(claims) = tickets.verify(&scan.code, now) else {
        return Ok(Answer::bare(CheckInStatus::Invalid, &scan.nonce));
    };
    let gate = scan.gate.trim().to_owned();
    let hash = code_hash(&scan.code);
    let schedule_id = scanner.schedule_id;
    let show_row = store::show(conn, schedule_id)
        .await?
        .ok_or(AppError::NotFound("schedule"))?;
    let show = tickets.show(schedule_id, show_row.starts_at);
    crate::in_doubt::write(conn, writes, async |conn| {
        let ticket = load_for(conn, &claims, schedule_id).await?;
        let record = ticket.as_ref().map(TicketRow::record).transpose()?;
        let decision = door::decide(&Ok(claims), record.as_ref(), &show, now);
        let own = Admission {
            at: now,
            gate: gate.clone(),
        };
        let (status, first) = outcome_of(&decision, &own);
        // An admission is recorded only once the ticket is ours (the unique index on
        // admissions would otherwise fail the losers of a race); until then, inside this
        // transaction, the scan stands as refused.
        let claimed = store::claim_scan(
            conn,
            &NewScan {
                schedule_id,
                scanner_id: scanner.id,
                nonce: &scan.nonce,
                code_hash: &hash,
                ticket_id: ticket.as_ref().map(|t| t.id),
                gate: &gate,
                scanned_at: now,
                offline: false,
                status: provisional(status),
                first: first.as_ref(),
            },
        )
        .await?;
        let Some(scan_id) = claimed else {
            return sent_again(conn, schedule_id, &scan.nonce, &hash).await;
        };
        let ticket = ticket.filter(|_| status != CheckInStatus::WrongSchedule);
        if decision != Decision::Admit {
            return Ok(Answer {
                status,
                nonce: scan.nonce.clone(),
                ticket,
                first,
                conflict: false,
            });
        }
        let Some(t) = ticket else {
            return Err(AppError::internal(anyhow::anyhow!(
                "admitting a scan without its ticket"
            )));
        };
        if store::admit(conn, t.id, now, &gate).await? {
            store::set_scan_outcome(conn, scan_id, CheckInStatus::Admitted, Some(&own)).await?;
            append::tickets_checked_in(conn, &[t.id], false).await?;
            let ticket = store::ticket(conn, t.id).await?;
            return Ok(Answer {
                status: CheckInStatus::Admitted,
                nonce: scan.nonce.clone(),
                ticket,
                first: Some(own),
                conflict: false,
            });
        }
        // Lost the race: another gate admitted it (or it was revoked) since we read it.
        let ticket = store::ticket(conn, t.id).await?;
        let record = ticket.as_ref().map(TicketRow::record).transpose()?;
        let decision = door::decide(&Ok(claims), record.as_ref(), &show, now);
        let (status, first) = outcome_of(&decision, &own);
        store::set_scan_outcome(conn, scan_id, status, first.as_ref()).await?;
        Ok(Answer {
            status,
            nonce: scan.nonce.clone(),
            ticket,
            first,
            conflict: false,
        })
    })
    .await
}

/// The ticket a verified code names, if it is this performance's (another performance's
/// ticket is WRONG_SCHEDULE whatever its state, so it is not read).
async fn load_for(
    conn: &mut AsyncPgConnection,
    claims: &TicketClaims,
    schedule_id: i64,
) -> AppResult<Option<TicketRow>> {
    if claims.schedule_id != schedule_id {
        return Ok(None);
    }
    store::ticket(conn, claims.ticket_id).await
}

/// What a claimed scan says until its ticket is admitted.
fn provisional(status: CheckInStatus) -> CheckInStatus {
    match status {
        CheckInStatus::Admitted => CheckInStatus::AlreadyUsed,
        other => other,
    }
}

fn outcome_of(decision: &Decision, own: &Admission) -> (CheckInStatus, Option<Admission>) {
    match decision {
        Decision::Admit => (CheckInStatus::Admitted, Some(own.clone())),
        Decision::Refuse { status, first } => (*status, first.clone()),
    }
}

/// A nonce already stored: the same scan (same code) gets the stored answer; another code
/// under a spent nonce is INVALID and changes nothing.
async fn sent_again(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
    nonce: &str,
    hash: &[u8],
) -> AppResult<Answer> {
    let stored = store::scans(conn, schedule_id, &[nonce.to_owned()]).await?;
    match stored.first() {
        Some(row) if row.code_hash == hash => replay(conn, row, schedule_id).await,
        _ => Ok(Answer::bare(CheckInStatus::Invalid, nonce)),
    }
}

/// Scans made offline, uploaded together (the rule is `boxoffice_ticket_codes::batch`).
/// Answers in the order of `scans`.
pub async fn check_in_batch(
    conn: &mut AsyncPgConnection,
    writes: crate::in_doubt::Writes<'_>,
    tickets: &Tickets,
    scanner: &ScannerRow,
    scans: Vec<Scan>,
) -> AppResult<Vec<Answer>> {
    if scans.len() > MAX_BATCH {
        return Err(AppError::bad_input(
            "scans",
            format!("at most {MAX_BATCH} scans per upload"),
        ));
    }
    for s in &scans {
        validate(s)?;
    }
    let now = now();
    let schedule_id = scanner.schedule_id;
    let show_row = store::show(conn, schedule_id)
        .await?
        .ok_or(AppError::NotFound("schedule"))?;
    let show = tickets.show(schedule_id, show_row.starts_at);
    let hashes: Vec<Vec<u8>> = scans.iter().map(|s| code_hash(&s.code)).collect();
    let verified: Vec<_> = scans
        .iter()
        .map(|s| tickets.verify(&s.code, s.scanned_at.unwrap_or(now).min(now)))
        .collect();

    crate::in_doubt::write(conn, writes, async |conn| {
        let nonces: Vec<String> = scans.iter().map(|s| s.nonce.clone()).collect();
        let stored: HashMap<String, ScanRow> = store::scans(conn, schedule_id, &nonces)
            .await?
            .into_iter()
            .map(|r| (r.nonce.clone(), r))
            .collect();
        let ids: Vec<i64> = verified
            .iter()
            .filter_map(|v| v.as_ref().ok())
            .filter(|c| c.schedule_id == schedule_id)
            .map(|c| c.ticket_id)
            .collect();
        let mut rows: HashMap<i64, TicketRow> = store::tickets(conn, &ids)
            .await?
            .into_iter()
            .map(|t| (t.id, t))
            .collect();
        let mut records = HashMap::new();
        for t in rows.values() {
            records.insert(t.id, t.record()?);
        }
        let mut offline = Vec::with_capacity(scans.len());
        for (i, s) in scans.iter().enumerate() {
            let replay = match stored.get(&s.nonce) {
                Some(row) if row.code_hash == hashes[i] => Some(Outcome {
                    status: row.status()?,
                    first: match (row.first_check_in_at, &row.first_gate) {
                        (Some(at), Some(gate)) => Some(Admission {
                            at,
                            gate: gate.clone(),
                        }),
                        _ => None,
                    },
                }),
                // A spent nonce on another code: not the same scan.
                Some(_) => Some(Outcome {
                    status: CheckInStatus::Invalid,
                    first: None,
                }),
                None => None,
            };
            offline.push(OfflineScan {
                verified: verified[i].clone(),
                gate: s.gate.trim().to_owned(),
                scanned_at: s.scanned_at.unwrap_or(now),
                nonce: s.nonce.clone(),
                replay,
            });
        }
        let plan = batch::plan(&offline, &records, &show, now);

        // Claim the new scans' nonces (in time order, as a re-upload of the same batch
        // would), then admit in ascending ticket id.
        let mut order: Vec<usize> = (0..plan.len()).collect();
        order.sort_by_key(|&i| (plan[i].at, i));
        let mut scan_ids: HashMap<usize, i64> = HashMap::new();
        let mut outcomes: Vec<Outcome> = plan.iter().map(|p| p.outcome.clone()).collect();
        let mut conflicts: Vec<bool> = plan.iter().map(|p| p.conflict).collect();
        for &i in &order {
            let p = &plan[i];
            if p.repeat_of.is_some() || offline[i].replay.is_some() || verified[i].is_err() {
                continue;
            }
            let claims = verified[i].as_ref().ok();
            let ticket_id = claims.and_then(|c| rows.get(&c.ticket_id)).map(|t| t.id);
            let claimed = store::claim_scan(
                conn,
                &NewScan {
                    schedule_id,
                    scanner_id: scanner.id,
                    nonce: &offline[i].nonce,
                    code_hash: &hashes[i],
                    ticket_id,
                    gate: &offline[i].gate,
                    scanned_at: p.at,
                    offline: true,
                    status: provisional(p.outcome.status),
                    first: p.outcome.first.as_ref(),
                },
            )
            .await?;
            match claimed {
                Some(id) => {
                    scan_ids.insert(i, id);
                }
                None => {
                    // Stored meanwhile by a concurrent upload of the same scan.
                    let again = sent_again(conn, schedule_id, &offline[i].nonce, &hashes[i]).await?;
                    outcomes[i] = Outcome {
                        status: again.status,
                        first: again.first,
                    };
                    conflicts[i] = false;
                }
            }
        }
        let mut admits: BTreeMap<i64, usize> = BTreeMap::new();
        for (i, p) in plan.iter().enumerate() {
            if p.admit
                && scan_ids.contains_key(&i)
                && let Some(c) = verified[i].as_ref().ok()
            {
                admits.insert(c.ticket_id, i);
            }
        }
        let mut admitted_now = Vec::with_capacity(admits.len());
        for (ticket_id, i) in admits {
            let at = plan[i].at;
            if store::admit(conn, ticket_id, at, &offline[i].gate).await? {
                admitted_now.push(ticket_id);
                if let Some(&scan_id) = scan_ids.get(&i) {
                    store::set_scan_outcome(
                        conn,
                        scan_id,
                        CheckInStatus::Admitted,
                        plan[i].outcome.first.as_ref(),
                    )
                    .await?;
                }
                continue;
            }
            // Admitted (or revoked) since the batch read it: every scan of this ticket in
            // the batch is decided again against the state the winner left.
            let fresh = store::ticket(conn, ticket_id).await?;
            let record = fresh.as_ref().map(TicketRow::record).transpose()?;
            for (j, p) in plan.iter().enumerate() {
                let Some(c) = verified[j].as_ref().ok().filter(|c| c.ticket_id == ticket_id) else {
                    continue;
                };
                let Some(&scan_id) = scan_ids.get(&j) else {
                    continue;
                };
                let decision = door::decide(&Ok(*c), record.as_ref(), &show, p.at);
                let own = Admission {
                    at: p.at,
                    gate: offline[j].gate.clone(),
                };
                let (status, first) = outcome_of(&decision, &own);
                store::set_scan_outcome(conn, scan_id, status, first.as_ref()).await?;
                conflicts[j] = status == CheckInStatus::AlreadyUsed;
                outcomes[j] = Outcome { status, first };
            }
            if let Some(t) = fresh {
                rows.insert(ticket_id, t);
            }
        }
        // The admissions' events, in one statement (ids ascending: `admits` is ordered).
        append::tickets_checked_in(conn, &admitted_now, true).await?;
        // Answer with the tickets as they are now.
        let admitted: Vec<i64> = rows.keys().copied().collect();
        for t in store::tickets(conn, &admitted).await? {
            rows.insert(t.id, t);
        }
        Ok(outcomes
            .into_iter()
            .enumerate()
            .map(|(i, o)| Answer {
                ticket: match o.status {
                    CheckInStatus::Invalid | CheckInStatus::WrongSchedule => None,
                    _ => verified[i]
                        .as_ref()
                        .ok()
                        .and_then(|c| rows.get(&c.ticket_id))
                        .cloned(),
                },
                status: o.status,
                nonce: scans[i].nonce.clone(),
                first: o.first,
                conflict: conflicts[i],
            })
            .collect())
    })
    .await
}
