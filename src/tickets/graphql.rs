//! GraphQL face of tickets: `Ticket` (and `Reservation.tickets` through [`TicketsLoader`]),
//! `ticketKeys`, `revokedTickets`, `scanner`, `scanners`, `createScanner`, `revokeScanner`,
//! `checkIn`, `checkInBatch`; the `checkIns` subscription is in `check_ins`.

use std::collections::HashMap;

use async_graphql::{
    Context, Enum, ID, InputObject, Object, SimpleObject,
    dataloader::{DataLoader, Loader},
};
use boxoffice_ticket_codes::{CheckInStatus as DoorStatus, TicketStatus as CodeTicketStatus};
use chrono::{DateTime, Utc};

mod check_ins;
use check_ins::announce;
pub use check_ins::{CheckInCounts, GateAdmissions, TicketsSubscription};

use super::{
    door::{self, Answer, Scan},
    scanners,
    store::{self, ScannerRow, TicketRow},
};
use crate::{
    auth::{
        Role, Viewer,
        context::{RoleGuard, actor, state, viewer},
    },
    booking::reserved_seats::{ReservedSeat, ReservedSeatsLoader},
    concerts::graphql::Schedule,
    db::Pool,
    error::{AppError, AppResult},
    ids,
};

#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum TicketStatus {
    /// Not let in yet.
    Valid,
    /// Let in (`checkedInAt`, `gate`).
    Used,
    /// Its reservation was cancelled or refunded: the door refuses it.
    Revoked,
}

impl From<CodeTicketStatus> for TicketStatus {
    fn from(s: CodeTicketStatus) -> Self {
        match s {
            CodeTicketStatus::Valid => Self::Valid,
            CodeTicketStatus::Used => Self::Used,
            CodeTicketStatus::Revoked => Self::Revoked,
        }
    }
}

/// What the door answers a scan.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum CheckInStatus {
    /// Let this person in.
    Admitted,
    /// The ticket was let in before: `firstCheckInAt` and `firstGate` say when and where.
    AlreadyUsed,
    /// Not a ticket of ours: forged, altered, or signed by a key that no longer verifies.
    Invalid,
    /// A ticket for another performance.
    WrongSchedule,
    /// Its reservation was cancelled or refunded.
    Revoked,
    /// The doors are not open yet.
    NotYet,
    /// The performance is over.
    Ended,
}

impl From<DoorStatus> for CheckInStatus {
    fn from(s: DoorStatus) -> Self {
        match s {
            DoorStatus::Admitted => Self::Admitted,
            DoorStatus::AlreadyUsed => Self::AlreadyUsed,
            DoorStatus::Invalid => Self::Invalid,
            DoorStatus::WrongSchedule => Self::WrongSchedule,
            DoorStatus::Revoked => Self::Revoked,
            DoorStatus::NotYet => Self::NotYet,
            DoorStatus::Ended => Self::Ended,
        }
    }
}

/// A ticket: one seat of a paid reservation, with the signed code the door scans.
pub struct Ticket(pub TicketRow);

#[Object]
impl Ticket {
    async fn id(&self) -> ID {
        ids::to_id(self.0.id)
    }
    async fn seat(&self, ctx: &Context<'_>) -> Result<ReservedSeat, AppError> {
        let seats = ctx
            .data::<DataLoader<ReservedSeatsLoader>>()?
            .load_one(self.0.reservation_id)
            .await?
            .unwrap_or_default();
        let id = ids::to_id(self.0.seat_id);
        seats
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("ticket {} without its seat", self.0.id)))
    }
    /// The reservation holder's display name.
    async fn holder_name(&self) -> &str {
        &self.0.holder_name
    }
    async fn status(&self) -> Result<TicketStatus, AppError> {
        Ok(self.0.status()?.into())
    }
    /// The signed code (base32, about 128 characters): what the QR code holds. Its format
    /// is in docs/tickets.md; scanners verify it with `ticketKeys`.
    async fn code(&self) -> &str {
        &self.0.code
    }
    /// The code as a QR code, an SVG document.
    async fn qr_svg(&self) -> Result<String, AppError> {
        boxoffice_ticket_codes::qr::svg(&self.0.code).map_err(AppError::internal)
    }
    async fn issued_at(&self) -> DateTime<Utc> {
        self.0.issued_at
    }
    async fn checked_in_at(&self) -> Option<DateTime<Utc>> {
        self.0.checked_in_at
    }
    async fn gate(&self) -> Option<&str> {
        self.0.gate.as_deref()
    }
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
}

/// The tickets of a reservation, by reservation id.
pub struct TicketsLoader(pub Pool);

impl Loader<i64> for TicketsLoader {
    type Value = Vec<TicketRow>;
    type Error = AppError;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let mut conn = self.0.get().await?;
        let mut out: HashMap<i64, Vec<TicketRow>> = HashMap::new();
        for t in store::of_reservations(&mut conn, keys).await? {
            out.entry(t.reservation_id).or_default().push(t);
        }
        Ok(out)
    }
}

/// `Reservation.tickets`: one per seat once paid; revoked ones stay listed, REVOKED.
pub async fn of_reservation(ctx: &Context<'_>, reservation_id: i64) -> Result<Vec<Ticket>, AppError> {
    Ok(ctx
        .data::<DataLoader<TicketsLoader>>()?
        .load_one(reservation_id)
        .await?
        .unwrap_or_default()
        .into_iter()
        .map(Ticket)
        .collect())
}

/// A public key that verifies ticket codes.
#[derive(SimpleObject)]
pub struct TicketKey {
    /// The key id written in every code it signed.
    key_id: i64,
    /// The raw 32-byte Ed25519 public key, base64url without padding (WebCrypto imports it
    /// as `raw`).
    public_key: String,
    /// When it stops verifying (the end of the last performance it signed tickets for);
    /// null while it signs new tickets.
    verifies_until: Option<DateTime<Utc>>,
}

#[derive(SimpleObject)]
pub struct RevokedTicket {
    ticket_id: ID,
    revoked_at: DateTime<Utc>,
}

/// A door credential for one performance.
pub struct Scanner(pub ScannerRow);

#[Object]
impl Scanner {
    async fn id(&self) -> ID {
        ids::to_id(self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn schedule(&self, ctx: &Context<'_>) -> Result<Schedule, AppError> {
        Schedule::load(ctx, self.0.schedule_id).await
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
    /// When the doors open (TICKET_DOORS_OPEN_MINUTES before the start).
    async fn doors_open_at(&self, ctx: &Context<'_>) -> Result<DateTime<Utc>, AppError> {
        Ok(show_of(ctx, self.0.schedule_id).await?.doors_open_at)
    }
    /// From when scans answer ENDED.
    async fn ends_at(&self, ctx: &Context<'_>) -> Result<DateTime<Utc>, AppError> {
        Ok(show_of(ctx, self.0.schedule_id).await?.ends_at)
    }
    /// Tickets of the performance let in so far, all gates.
    async fn admitted_count(&self, ctx: &Context<'_>) -> Result<i64, AppError> {
        let mut conn = state(ctx)?.db.get().await?;
        store::admitted_count(&mut conn, self.0.schedule_id).await
    }
}

async fn show_of(ctx: &Context<'_>, schedule_id: i64) -> AppResult<boxoffice_ticket_codes::door::Show> {
    let st = state(ctx)?;
    let mut conn = st.db.get().await?;
    let show = store::show(&mut conn, schedule_id)
        .await?
        .ok_or(AppError::NotFound("schedule"))?;
    Ok(st.tickets.show(schedule_id, show.starts_at))
}

/// A new scanner and its token: give the token to the door (e.g. as `/scan#token=...`).
/// It is shown only now.
#[derive(SimpleObject)]
pub struct ScannerCredentials {
    scanner: Scanner,
    token: String,
}

#[derive(InputObject)]
pub struct CheckInInput {
    /// The ticket's code as scanned or typed (case, spaces and dashes do not matter).
    pub code: String,
    /// The performance this scanner checks in for.
    pub schedule_id: ID,
    /// Where: a name of your choosing, 1 to 100 characters ("North 3").
    pub gate: String,
    /// A fresh random string per scan (1 to 100 characters): sending the same scan again
    /// with it answers the same result and counts once.
    pub nonce: String,
}

/// A scan an offline scanner made, uploaded later.
#[derive(InputObject)]
pub struct OfflineScanInput {
    pub code: String,
    pub schedule_id: ID,
    pub gate: String,
    /// When the scan was made (a time in the future counts as now).
    pub scanned_at: DateTime<Utc>,
    pub nonce: String,
}

pub struct CheckInResult(Answer);

#[Object]
impl CheckInResult {
    async fn status(&self) -> CheckInStatus {
        self.0.status.into()
    }
    /// The scan's nonce, to match answers to scans.
    async fn nonce(&self) -> &str {
        &self.0.nonce
    }
    /// The ticket, when the code is one of this performance's tickets.
    async fn ticket(&self) -> Option<Ticket> {
        self.0.ticket.clone().map(Ticket)
    }
    /// When the ticket was let in (this scan's time when ADMITTED; the earlier admission's
    /// when ALREADY_USED).
    async fn first_check_in_at(&self) -> Option<DateTime<Utc>> {
        self.0.first.as_ref().map(|a| a.at)
    }
    /// Where the ticket was let in.
    async fn first_gate(&self) -> Option<&str> {
        self.0.first.as_ref().map(|a| a.gate.as_str())
    }
    /// In an upload: another scan of this ticket (earlier, or already recorded) let it in.
    async fn conflict(&self) -> bool {
        self.0.conflict
    }
    /// Tickets of the performance let in so far, all gates, after this scan.
    async fn admitted_count(&self, ctx: &Context<'_>) -> Result<i64, AppError> {
        let scanner = scanner_of(ctx).await?;
        let mut conn = state(ctx)?.db.get().await?;
        store::admitted_count(&mut conn, scanner.schedule_id).await
    }
}

/// The answer to an upload of offline scans.
#[derive(SimpleObject)]
pub struct CheckInBatchResult {
    /// One per scan, in the order sent.
    results: Vec<CheckInResult>,
    /// The scans refused because another scan let their ticket in first.
    conflicts: Vec<CheckInResult>,
    /// Tickets of the performance let in so far, all gates.
    admitted_count: i64,
}

/// The scanner a request's token belongs to (and a clear refusal for anyone else).
async fn scanner_of(ctx: &Context<'_>) -> AppResult<ScannerRow> {
    match viewer(ctx)? {
        Viewer::Scanner(token) => {
            let mut conn = state(ctx)?.db.get().await?;
            scanners::authenticate(&mut conn, &token.0).await
        }
        Viewer::User(_) => {
            // A deleted account's token is UNAUTHENTICATED, as on every other mutation.
            actor(ctx).await?;
            Err(AppError::Forbidden(
                "checking in takes a scanner token (createScanner)",
            ))
        }
        _ => Err(AppError::Unauthenticated(
            "checking in takes a scanner token (createScanner)",
        )),
    }
}

fn for_schedule(scanner: &ScannerRow, schedule_id: &ID) -> AppResult<()> {
    if ids::parse(schedule_id, "scheduleId")? == scanner.schedule_id {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "this scanner checks in for another performance",
        ))
    }
}

/// A performance's door data is for its scanners and for whoever manages it.
pub(super) async fn may_watch(ctx: &Context<'_>, schedule_id: i64) -> AppResult<()> {
    if let Viewer::Scanner(_) = viewer(ctx)? {
        let scanner = scanner_of(ctx).await?;
        return if scanner.schedule_id == schedule_id {
            Ok(())
        } else {
            Err(AppError::Forbidden(
                "this scanner checks in for another performance",
            ))
        };
    }
    let actor = actor(ctx).await?;
    let mut conn = state(ctx)?.db.get().await?;
    scanners::may_watch(&mut conn, actor, schedule_id).await
}

#[derive(Default)]
pub struct TicketsQuery;

#[Object]
impl TicketsQuery {
    /// The public keys that verify ticket codes, for scanners that check offline. Public.
    async fn ticket_keys(&self, ctx: &Context<'_>) -> Result<Vec<TicketKey>, AppError> {
        Ok(state(ctx)?
            .tickets
            .published_keys(Utc::now())
            .into_iter()
            .map(|k| TicketKey {
                key_id: i64::from(k.key_id.0),
                public_key: k.public_key,
                verifies_until: k.verifies_until,
            })
            .collect())
    }

    /// Tickets of a performance revoked at or after `since` (all without it), oldest first:
    /// an offline scanner asks again with the last `revokedAt` it saw. For the
    /// performance's scanners, its host and admins.
    async fn revoked_tickets(
        &self,
        ctx: &Context<'_>,
        schedule_id: ID,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<RevokedTicket>, AppError> {
        let schedule_id = ids::parse(&schedule_id, "scheduleId")?;
        may_watch(ctx, schedule_id).await?;
        let mut conn = state(ctx)?.db.get().await?;
        Ok(store::revoked_since(&mut conn, schedule_id, since)
            .await?
            .into_iter()
            .map(|r| RevokedTicket {
                ticket_id: ids::to_id(r.id),
                revoked_at: r.revoked_at,
            })
            .collect())
    }

    /// The scanner the request's scanner token belongs to: its performance and door times.
    async fn scanner(&self, ctx: &Context<'_>) -> Result<Scanner, AppError> {
        Ok(Scanner(scanner_of(ctx).await?))
    }

    /// A performance's scanners (revoked ones too), for its host or an admin.
    #[graphql(guard = "RoleGuard(Role::Host)")]
    async fn scanners(&self, ctx: &Context<'_>, schedule_id: ID) -> Result<Vec<Scanner>, AppError> {
        let schedule_id = ids::parse(&schedule_id, "scheduleId")?;
        let actor = actor(ctx).await?;
        let mut conn = state(ctx)?.db.get().await?;
        Ok(scanners::of_schedule(&mut conn, actor, schedule_id)
            .await?
            .into_iter()
            .map(Scanner)
            .collect())
    }
}

#[derive(Default)]
pub struct TicketsMutation;

#[Object]
impl TicketsMutation {
    /// A door credential for one performance (its host or an admin). The token can check
    /// in for that performance and read its door data, nothing else. Errors: NOT_FOUND,
    /// FORBIDDEN, BAD_USER_INPUT (name).
    #[graphql(guard = "RoleGuard(Role::Host)")]
    async fn create_scanner(
        &self,
        ctx: &Context<'_>,
        schedule_id: ID,
        name: String,
    ) -> Result<ScannerCredentials, AppError> {
        let schedule_id = ids::parse(&schedule_id, "scheduleId")?;
        let actor = actor(ctx).await?;
        let state = state(ctx)?;
        let mut conn = state.db.get().await?;
        let (row, token) = scanners::create(&mut conn, state.writes(), actor, schedule_id, &name).await?;
        Ok(ScannerCredentials {
            scanner: Scanner(row),
            token,
        })
    }

    /// Ends a scanner's token at once. Revoking twice answers the scanner unchanged.
    #[graphql(guard = "RoleGuard(Role::Host)")]
    async fn revoke_scanner(&self, ctx: &Context<'_>, id: ID) -> Result<Scanner, AppError> {
        let id = ids::parse(&id, "id")?;
        let actor = actor(ctx).await?;
        let state = state(ctx)?;
        let mut conn = state.db.get().await?;
        Ok(Scanner(
            scanners::revoke(&mut conn, state.writes(), actor, id).await?,
        ))
    }

    /// Checks a ticket in (a scanner token of that performance). Admits a ticket once
    /// across every gate; the same scan sent again with its nonce answers the same result.
    /// A forged or altered code is INVALID without a database read.
    async fn check_in(&self, ctx: &Context<'_>, input: CheckInInput) -> Result<CheckInResult, AppError> {
        let st = state(ctx)?;
        let scan = Scan {
            code: input.code,
            gate: input.gate,
            nonce: input.nonce,
            scanned_at: None,
        };
        // A forged or altered code is answered before anything is read from the database
        // (the scanner's token included): forgeries cost the door no query.
        if let Viewer::Scanner(_) = viewer(ctx)?
            && let Some(answer) = door::refuse_forged(&st.tickets, &scan)?
        {
            return Ok(CheckInResult(answer));
        }
        let scanner = scanner_of(ctx).await?;
        for_schedule(&scanner, &input.schedule_id)?;
        let mut conn = st.db.get().await?;
        let gate = scan.gate.trim().to_owned();
        let answer = door::check_in(&mut conn, st.writes(), &st.tickets, &scanner, scan).await?;
        announce(ctx, scanner.schedule_id, &[&answer], |_| gate.clone());
        Ok(CheckInResult(answer))
    }

    /// Uploads scans an offline scanner made (at most 500). The first scan in time of each
    /// ticket is its admission (unless it was let in before the upload); later ones are
    /// ALREADY_USED with where and when the first was, and listed in `conflicts`. Nonces
    /// sent before answer what they answered then.
    async fn check_in_batch(
        &self,
        ctx: &Context<'_>,
        scans: Vec<OfflineScanInput>,
    ) -> Result<CheckInBatchResult, AppError> {
        let scanner = scanner_of(ctx).await?;
        for s in &scans {
            for_schedule(&scanner, &s.schedule_id)?;
        }
        let st = state(ctx)?;
        let mut conn = st.db.get().await?;
        let gates: HashMap<String, String> = scans
            .iter()
            .map(|s| (s.nonce.clone(), s.gate.trim().to_owned()))
            .collect();
        let answers = door::check_in_batch(
            &mut conn,
            st.writes(),
            &st.tickets,
            &scanner,
            scans
                .into_iter()
                .map(|s| Scan {
                    code: s.code,
                    gate: s.gate,
                    nonce: s.nonce,
                    scanned_at: Some(s.scanned_at),
                })
                .collect(),
        )
        .await?;
        let admitted: Vec<&Answer> = answers
            .iter()
            .filter(|a| a.status == DoorStatus::Admitted)
            .collect();
        announce(ctx, scanner.schedule_id, &admitted, |a| {
            gates.get(&a.nonce).cloned().unwrap_or_default()
        });
        let admitted_count = store::admitted_count(&mut conn, scanner.schedule_id).await?;
        let conflicts = answers
            .iter()
            .filter(|a| a.conflict)
            .cloned()
            .map(CheckInResult)
            .collect();
        Ok(CheckInBatchResult {
            results: answers.into_iter().map(CheckInResult).collect(),
            conflicts,
            admitted_count,
        })
    }
}
