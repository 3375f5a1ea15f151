//! The invariants of SPEC.md as SQL over the whole database: one definition, run by the
//! test suite after its storms and by the bench after every scenario.
//!
//! Each check counts the rows that break it; zero means it holds. They read only, and are
//! meant for a quiet moment (after a test or a run), not for production traffic: some scan
//! every reservation.

use diesel::{QueryableByName, sql_types::BigInt};
use diesel_async::{AsyncPgConnection, RunQueryDsl as _};

/// One check: what it means when it fails, and the query counting its offending rows
/// (a single bigint column `n`).
#[derive(Clone, Copy, Debug)]
pub struct Check {
    pub name: &'static str,
    pub sql: &'static str,
}

/// I1-I4: no seat sold twice, booking counts, balances, per-user limits.
pub const CORE: &[Check] = &[
    Check {
        name: "I1: a seat is in more than one live reservation",
        sql: "SELECT count(*) AS n FROM (SELECT rs.seat_id FROM reservation_seats rs
              JOIN reservations r ON r.id = rs.reservation_id
              WHERE r.status IN ('held','confirmed') GROUP BY rs.seat_id HAVING count(*) > 1) x",
    },
    Check {
        name: "I1: a live reservation's seat is not marked as belonging to it",
        sql: "SELECT count(*) AS n FROM reservation_seats rs JOIN reservations r ON r.id = rs.reservation_id
              JOIN seats s ON s.id = rs.seat_id
              WHERE r.status IN ('held','confirmed') AND s.reservation_id IS DISTINCT FROM r.id",
    },
    Check {
        name: "I2: a booking count differs from held + sold + blocked seats, or exceeds capacity",
        sql: "SELECT count(*) AS n FROM schedules sc WHERE sc.booked_count <>
              (SELECT count(*) FROM seats s WHERE s.schedule_id = sc.id AND s.status <> 'available')
              OR sc.booked_count > sc.capacity",
    },
    Check {
        name: "I3: a balance differs from its ledger or is negative",
        sql: "SELECT count(*) AS n FROM users u WHERE u.points < 0 OR u.points <>
              coalesce((SELECT sum(amount) FROM point_ledger l WHERE l.user_id = u.id), 0)",
    },
    Check {
        // Complimentary seats are the host's gift, outside the limit. A limit lowered later
        // does not touch reservations made before (`updateSchedule`): holdings over it break
        // the rule only if a reservation of them was made after the change.
        name: "I4: a user holds more seats than the per-user limit",
        sql: "SELECT count(*) AS n FROM (SELECT r.schedule_id, r.user_id FROM reservations r
              JOIN schedules sc ON sc.id = r.schedule_id
              WHERE r.status IN ('held','confirmed') AND NOT r.complimentary
              GROUP BY r.schedule_id, r.user_id, sc.per_user_limit, sc.limit_lowered_at
              HAVING sum(r.seat_count) > sc.per_user_limit
                 AND max(r.created_at) > coalesce(sc.limit_lowered_at, '-infinity')) x",
    },
];

/// I5 and I7: idempotency keys, and reservations that agree with their seats. (I6, no
/// deadlock, shows as a failed request, not as rows.)
pub const MORE: &[Check] = &[
    Check {
        name: "I5: an idempotency key took effect twice",
        sql: "SELECT count(*) AS n FROM (SELECT 1 FROM reservations WHERE idempotency_key IS NOT NULL
              GROUP BY user_id, idempotency_key HAVING count(*) > 1) x",
    },
    Check {
        name: "I7: a reservation whose seats do not match its count or total",
        sql: "SELECT count(*) AS n FROM reservations r WHERE r.seat_count <>
              (SELECT count(*) FROM reservation_seats rs WHERE rs.reservation_id = r.id)
              OR r.total_price <> (SELECT coalesce(sum(price), 0) FROM reservation_seats rs WHERE rs.reservation_id = r.id)",
    },
    Check {
        name: "I7: a held seat without a live reservation",
        sql: "SELECT count(*) AS n FROM seats s WHERE s.status IN ('held', 'sold') AND NOT EXISTS
              (SELECT 1 FROM reservations r WHERE r.id = s.reservation_id AND r.status IN ('held', 'confirmed'))",
    },
    // The hold write's pointers carry no foreign key (migration `hold_pointers`): these two
    // and the check above (a seat's `reservation_id` is set exactly when it is held or sold)
    // count what a key would have refused.
    Check {
        name: "I7: a reservation's seat row names a reservation or seat that does not exist",
        sql: "SELECT count(*) AS n FROM reservation_seats rs
              WHERE NOT EXISTS (SELECT 1 FROM reservations r WHERE r.id = rs.reservation_id)
                 OR NOT EXISTS (SELECT 1 FROM seats s WHERE s.id = rs.seat_id)",
    },
    Check {
        name: "I7: a reservation of a schedule that does not exist",
        sql: "SELECT count(*) AS n FROM reservations r
              WHERE NOT EXISTS (SELECT 1 FROM schedules sc WHERE sc.id = r.schedule_id)",
    },
];

/// I11 for seats kept back and given away: a BLOCKED seat is in no live reservation and
/// has no owner; a complimentary reservation is free, confirmed, and has a valid ticket
/// per seat.
pub const KEPT: &[Check] = &[
    Check {
        name: "I11: a blocked seat belongs to a reservation",
        sql: "SELECT count(*) AS n FROM seats s WHERE s.status = 'blocked' AND (s.reservation_id IS NOT NULL
              OR EXISTS (SELECT 1 FROM reservation_seats rs JOIN reservations r ON r.id = rs.reservation_id
                         WHERE rs.seat_id = s.id AND r.status IN ('held', 'confirmed')))",
    },
    Check {
        name: "I11: a complimentary reservation that is not free, or held",
        sql: "SELECT count(*) AS n FROM reservations r WHERE r.complimentary
              AND (r.total_price <> 0 OR r.status = 'held'
                   OR EXISTS (SELECT 1 FROM reservation_seats rs WHERE rs.reservation_id = r.id AND rs.price <> 0))",
    },
    Check {
        name: "I11: a confirmed complimentary reservation without a valid ticket per seat",
        sql: "SELECT count(*) AS n FROM reservations r WHERE r.complimentary AND r.status = 'confirmed'
              AND r.seat_count <> (SELECT count(*) FROM tickets t WHERE t.reservation_id = r.id AND t.status <> 'revoked')",
    },
];

/// I10, money: every credited top-up has exactly one confirmed payment of that amount,
/// and nothing unconfirmed is ever credited.
pub const MONEY: &[Check] = &[
    Check {
        name: "I10: a credited top-up without exactly one credit of its amount and a confirmed payment",
        sql: "SELECT count(*) AS n FROM top_ups t WHERE t.status IN ('confirmed', 'refunding', 'refunded', 'cancelled')
              AND t.confirmed_at IS NOT NULL AND (t.payment_key IS NULL OR
              (SELECT count(*) FROM point_ledger l WHERE l.top_up_id = t.id AND l.kind = 'top_up' AND l.amount = t.amount) <> 1)",
    },
    Check {
        name: "I10: a top-up credited while pending or failed, or credited with another amount",
        sql: "SELECT count(*) AS n FROM point_ledger l JOIN top_ups t ON t.id = l.top_up_id
              WHERE l.kind = 'top_up' AND (t.status IN ('pending', 'failed') OR t.confirmed_at IS NULL
              OR l.amount <> t.amount OR l.user_id <> t.user_id)",
    },
    Check {
        name: "I10: a refunded or cancelled top-up whose points did not all come back out (or went into debt)",
        sql: "SELECT count(*) AS n FROM top_ups t WHERE t.status IN ('refunding', 'refunded', 'cancelled')
              AND t.confirmed_at IS NOT NULL
              AND (SELECT coalesce(sum(l.amount), 0) FROM point_ledger l WHERE l.top_up_id = t.id) <> t.debt_created",
    },
    Check {
        name: "I10: a debt that differs from the debt created minus the debt repaid",
        sql: "SELECT count(*) AS n FROM users u WHERE u.points_debt <>
              coalesce((SELECT sum(debt_created) FROM top_ups t WHERE t.user_id = u.id), 0)
              + coalesce((SELECT sum(amount) FROM point_ledger l WHERE l.user_id = u.id AND l.kind = 'debt_repayment'), 0)",
    },
    Check {
        name: "I10: a paid reservation refunded other than once in full when cancelled (a double refund, or none)",
        sql: "SELECT count(*) AS n FROM reservations r WHERE
              (SELECT coalesce(sum(l.amount), 0) FROM point_ledger l WHERE l.reservation_id = r.id AND l.kind = 'refund')
              <> CASE WHEN r.status = 'cancelled' AND r.paid_at IS NOT NULL THEN r.total_price ELSE 0 END",
    },
];

/// I11, the door: a ticket is let in at most once, and only for a confirmed reservation's
/// seat; only a confirmed reservation's seats have valid tickets.
pub const DOORS: &[Check] = &[
    Check {
        name: "I11: a used ticket that is not a confirmed reservation's seat",
        sql: "SELECT count(*) AS n FROM tickets t JOIN reservations r ON r.id = t.reservation_id
              WHERE t.status = 'used' AND (r.status <> 'confirmed' OR r.schedule_id <> t.schedule_id
              OR NOT EXISTS (SELECT 1 FROM reservation_seats rs WHERE rs.reservation_id = r.id AND rs.seat_id = t.seat_id))",
    },
    Check {
        name: "I11: a ticket admitted more than once",
        sql: "SELECT count(*) AS n FROM (SELECT ticket_id FROM check_ins WHERE status = 'ADMITTED'
              GROUP BY ticket_id HAVING count(*) > 1) x",
    },
    Check {
        name: "I11: a used ticket without its one admission, or an admission of a ticket not used",
        sql: "SELECT count(*) AS n FROM tickets t WHERE (t.status = 'used') <> EXISTS
              (SELECT 1 FROM check_ins c WHERE c.ticket_id = t.id AND c.status = 'ADMITTED')
              AND t.status <> 'revoked'",
    },
    Check {
        name: "I11: a valid ticket of a reservation that is not confirmed",
        sql: "SELECT count(*) AS n FROM tickets t JOIN reservations r ON r.id = t.reservation_id
              WHERE t.status = 'valid' AND r.status <> 'confirmed'",
    },
];

/// A check that failed, with the number of offending rows.
#[derive(Clone, Debug)]
pub struct Violation {
    pub check: Check,
    pub rows: i64,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} rows)", self.check.name, self.rows)
    }
}

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Runs `checks` (e.g. [`CORE`], [`MORE`], or [`all`]); the ones that fail.
pub async fn violations(
    conn: &mut AsyncPgConnection,
    checks: impl IntoIterator<Item = &Check>,
) -> diesel::QueryResult<Vec<Violation>> {
    let mut found = Vec::new();
    for check in checks {
        let row: N = diesel::sql_query(check.sql).get_result(conn).await?;
        if row.n > 0 {
            found.push(Violation {
                check: *check,
                rows: row.n,
            });
        }
    }
    Ok(found)
}

/// I12: every committed reservation change has its outbox event, and no event is without
/// its change. Events are pruned after their retention, so the first check looks only at
/// reservations changed since the oldest event still kept. A hold batch's events are carried
/// by one row (subject `batch`, naming the batch's reservations, published one event per
/// reservation by the relay): a reservation named there has its `reservation.held` event.
pub const EVENTS: &[Check] = &[
    Check {
        name: "I12: a reservation's current status has no event",
        sql: "WITH carried AS (
                SELECT e::bigint AS id, c.event_type
                FROM outbox c, jsonb_array_elements_text(c.data->'reservationIds') e WHERE c.subject = 'batch')
              SELECT count(*) AS n FROM reservations r
              WHERE r.updated_at >= coalesce((SELECT min(created_at) FROM outbox), '-infinity')
                AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.subject = 'reservations/' || r.id
                                AND o.event_type = 'reservation.' || r.status)
                AND NOT EXISTS (SELECT 1 FROM carried WHERE carried.id = r.id
                                AND carried.event_type = 'reservation.' || r.status)",
    },
    Check {
        name: "I12: a reservation event has no reservation",
        sql: "SELECT count(*) AS n FROM outbox o WHERE o.subject LIKE 'reservations/%'
              AND NOT EXISTS (SELECT 1 FROM reservations r WHERE r.id = split_part(o.subject, '/', 2)::bigint)",
    },
    Check {
        name: "I12: a used ticket has no ticket.checked_in event",
        sql: "SELECT count(*) AS n FROM tickets t
              WHERE t.checked_in_at IS NOT NULL
                AND t.checked_in_at >= coalesce((SELECT min(created_at) FROM outbox), '-infinity')
                AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.subject = 'tickets/' || t.id
                                AND o.event_type = 'ticket.checked_in')",
    },
    Check {
        name: "I12: a carried reservation event has no reservation",
        sql: "SELECT count(*) AS n FROM outbox c, jsonb_array_elements_text(c.data->'reservationIds') e
              WHERE c.subject = 'batch'
                AND NOT EXISTS (SELECT 1 FROM reservations r WHERE r.id = e::bigint)",
    },
];

/// Every check of this module.
pub fn all() -> impl Iterator<Item = &'static Check> {
    CORE.iter()
        .chain(MORE)
        .chain(MONEY)
        .chain(EVENTS)
        .chain(DOORS)
        .chain(KEPT)
}
