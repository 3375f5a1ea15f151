//! The group's load step: the requested seats, the users with their holdings, and the keys
//! already used, read under the schedule locks.

use super::*;

/// A requested seat with what a reservation snapshots of it.
#[derive(QueryableByName, Clone, Debug)]
pub(super) struct SeatRow {
    #[diesel(sql_type = BigInt)]
    pub(super) id: i64,
    #[diesel(sql_type = BigInt)]
    pub(super) schedule_id: i64,
    #[diesel(sql_type = Text)]
    pub(super) status: SeatStatus,
    #[diesel(sql_type = Text)]
    pub(super) grade: String,
    #[diesel(sql_type = BigInt)]
    pub(super) price: i64,
}

#[derive(QueryableByName)]
pub(super) struct UserHolds {
    #[diesel(sql_type = BigInt)]
    pub(super) schedule_id: i64,
    #[diesel(sql_type = BigInt)]
    pub(super) user_id: i64,
    #[diesel(sql_type = BigInt)]
    pub(super) seats: i64,
    #[diesel(sql_type = Text)]
    pub(super) role: String,
}

/// A reservation made with one of the batch's keys, with its seats (ascending) and their
/// distinct grades.
#[derive(QueryableByName)]
pub(super) struct Keyed {
    #[diesel(embed)]
    pub(super) reservation: ReservationRow,
    #[diesel(sql_type = Array<BigInt>)]
    pub(super) seat_ids: Vec<i64>,
    #[diesel(sql_type = Array<Text>)]
    pub(super) grades: Vec<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub(super) request_hash: Option<i64>,
}

/// One schedule's batch of a group as read under the group's locks.
pub(super) struct PartLoad {
    pub(super) locked: LockedSchedule,
    pub(super) loaded: Loaded,
}

/// What a group reads under its locks: each part's load (None if its schedule does not
/// exist), in the parts' order, with every seat its requests name and every reservation
/// made with one of its keys.
pub(super) struct GroupLoad {
    pub(super) parts: Vec<Option<PartLoad>>,
    pub(super) seats: HashMap<i64, SeatRow>,
    pub(super) replays: HashMap<i64, ReservationRow>,
    /// The transaction's id, once a schedule row was locked (see `settle`).
    pub(super) txid: Option<i64>,
}

/// The (user, key) pairs of some requests, ascending and distinct (a double-click sends one
/// key several times in a batch).
pub(super) fn keys_of<'a>(requests: impl IntoIterator<Item = &'a HoldRequest>) -> Vec<(i64, String)> {
    let mut keys: Vec<(i64, String)> = requests
        .into_iter()
        .filter_map(|r| r.idempotency_key.clone().map(|k| (r.user_id, k)))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Takes the group's locks and reads everything its decisions need, in one round trip
/// whatever the number of schedules: the statements are pipelined on the connection, and
/// PostgreSQL runs them in order, so every read starts after the locks are held (see
/// `locks::schedules_for_batch`): the schedule rows in ascending id, then the keys (I6).
pub(super) async fn load(
    conn: &mut AsyncPgConnection,
    parts: &[Part<'_>],
    lock: Lock,
    begin: Begin,
) -> AppResult<GroupLoad> {
    let requests = || parts.iter().flat_map(|p| p.1.iter());
    let mut schedule_ids: Vec<i64> = parts.iter().map(|p| p.0).collect();
    schedule_ids.sort_unstable();
    schedule_ids.dedup();
    let mut seat_ids: Vec<i64> = requests().flat_map(|r| r.seat_ids().iter().copied()).collect();
    seat_ids.sort_unstable();
    seat_ids.dedup();
    let mut pairs: Vec<(i64, i64)> = parts
        .iter()
        .flat_map(|(schedule_id, requests)| requests.iter().map(|r| (*schedule_id, r.user_id)))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let keys = keys_of(requests());
    // Key locks make two batches that carry one key for different schedules meet. A key
    // generated for a forwarded request is only ever used for its one schedule, whose
    // batches the schedule lock already runs one at a time: it needs no lock of its own
    // (clients may not send such keys: `booking::hold_key`). On the leader of a
    // two-instance sale most keys are generated.
    let client_keys: Vec<(i64, String)> = keys
        .iter()
        .filter(|(_, k)| !k.starts_with(crate::booking::leader::GENERATED_KEY_PREFIX))
        .cloned()
        .collect();
    let conn: &AsyncPgConnection = conn;
    let lock_schedules = async {
        match lock {
            Lock::Take => locks::schedules_for_batch(conn, &schedule_ids).await,
            #[cfg(feature = "negative-control")]
            Lock::Skip => locks::schedules_for_batch_unlocked(conn, &schedule_ids).await,
        }
    };
    let begun = async {
        match begin {
            Begin::Pipelined => pipelined::begin(conn).await,
            Begin::Begun => Ok(()),
        }
    };
    let (begun, locked, key_locks, seats, users, keyed) = futures_util::join!(
        begun,
        lock_schedules,
        locks::hold_keys(conn, &client_keys),
        read_seats(conn, &seat_ids),
        read_users(conn, &pairs),
        read_keyed(conn, &keys),
    );
    // In pipeline order: after a failed statement the rest fail only because the
    // transaction is aborted, so the first error is the one that says why.
    begun?;
    let locked = locked?;
    key_locks?;
    let (seats, users, keyed) = (seats?, users?, keyed?);
    let txid = <[LockedSchedule]>::first(&locked).map(|l| l.txid);
    let mut locked: HashMap<i64, LockedSchedule> = locked.into_iter().map(|l| (l.schedule.id, l)).collect();
    let seats: HashMap<i64, SeatRow> = seats.into_iter().map(|s| (s.id, s)).collect();
    let mut holds: HashMap<i64, Vec<UserHolds>> = HashMap::new();
    for u in users {
        holds.entry(u.schedule_id).or_default().push(u);
    }
    let mut replays: HashMap<i64, ReservationRow> = HashMap::new();
    let mut used: HashMap<(i64, String), KeyUse> = HashMap::new();
    for Keyed {
        reservation: row,
        seat_ids,
        mut grades,
        request_hash,
    } in keyed
    {
        let Some(key) = row.idempotency_key.clone() else {
            continue;
        };
        used.insert(
            (row.user_id, key),
            KeyUse {
                reservation_id: row.id,
                schedule_id: row.schedule_id,
                seat_ids,
                // The grade of its seats, unless they were of several.
                grade: (grades.len() == 1).then(|| grades.remove(0)),
                fingerprint: request_hash,
            },
        );
        replays.insert(row.id, row);
    }
    let parts = parts
        .iter()
        .map(|(schedule_id, requests)| {
            let locked = locked.remove(schedule_id)?;
            let users = holds.remove(schedule_id).unwrap_or_default();
            let keys = keys_of(requests.iter())
                .into_iter()
                .filter_map(|k| used.get(&k).cloned().map(|u| (k, u)))
                .collect();
            let seats = requests
                .iter()
                .flat_map(|r| r.seat_ids().iter())
                .filter_map(|id| seats.get(id))
                .map(|s| {
                    let state = SeatState {
                        schedule_id: s.schedule_id,
                        available: s.status == SeatStatus::Available,
                    };
                    (s.id, state)
                })
                .collect();
            Some(part_load(locked, users, seats, keys))
        })
        .collect();
    Ok(GroupLoad {
        parts,
        seats,
        replays,
        txid,
    })
}

/// One part's load from the group's rows of its schedule.
fn part_load(
    locked: LockedSchedule,
    users: Vec<UserHolds>,
    seats: HashMap<i64, SeatState>,
    keys: HashMap<(i64, String), KeyUse>,
) -> PartLoad {
    let schedule = &locked.schedule;
    // A draft's schedule exists only for those who may see its concert: the one rule of
    // `concerts::service::visible_to`, with the roles as they are now.
    let seen_by = (locked.concert_status == ConcertStatus::Draft).then(|| {
        users
            .iter()
            .filter(|u| {
                let actor = Role::parse(&u.role)
                    .ok()
                    .map(|role| Actor { id: u.user_id, role });
                visible_to(locked.concert_status, locked.concert_host_id, actor)
            })
            .map(|u| u.user_id)
            .collect()
    });
    let loaded = Loaded {
        schedule_id: schedule.id,
        per_user_limit: i64::from(schedule.per_user_limit),
        remaining: i64::from(schedule.capacity - schedule.booked_count),
        closed: None,
        seen_by,
        seats,
        users: users.into_iter().map(|u| (u.user_id, u.seats)).collect(),
        keys,
        layout: None,
        grades: Vec::new(),
    };
    PartLoad { locked, loaded }
}

/// The requested seats with their grades and prices (a seat detached from its schedule by a
/// layout replacement has schedule 0: the decision refuses it as another schedule's).
pub(super) async fn read_seats(mut conn: &AsyncPgConnection, seat_ids: &[i64]) -> QueryResult<Vec<SeatRow>> {
    Prepared(
        diesel::sql_query(
            "SELECT s.id, coalesce(s.schedule_id, 0) AS schedule_id, s.status, g.name AS grade, g.price
             FROM seats s JOIN seat_grades g ON g.id = s.grade_id
             WHERE s.id = ANY($1)",
        )
        .bind::<Array<BigInt>, _>(seat_ids),
    )
    .load(&mut conn)
    .await
}

/// Users that exist, each with the seats they hold or own of the schedule they ask for
/// (`pairs`: schedule, user): a missing user is refused by the decision instead of failing
/// the batch's INSERT on the foreign key. Complimentary seats are the host's gift and do
/// not count towards the per-user limit.
pub(super) async fn read_users(
    mut conn: &AsyncPgConnection,
    pairs: &[(i64, i64)],
) -> QueryResult<Vec<UserHolds>> {
    Prepared(
        diesel::sql_query(
            // A subquery per user, not a join: it always looks up (schedule, user) in
            // `reservations_live`. As a join, stale statistics in a sale's first minute (the
            // table was empty at the last ANALYZE) made PostgreSQL scan every live
            // reservation of the schedule once per user: 61 ms instead of 0.2 ms at 8,000
            // reservations.
            "SELECT p.schedule_id, u.id AS user_id, u.role,
               (SELECT coalesce(sum(r.seat_count), 0) FROM reservations r
                WHERE r.schedule_id = p.schedule_id AND r.user_id = u.id AND r.status IN ('held', 'confirmed')
                  AND NOT r.complimentary)::bigint AS seats
             FROM unnest($1::bigint[], $2::bigint[]) AS p(schedule_id, user_id)
             JOIN users u ON u.id = p.user_id",
        )
        .bind::<Array<BigInt>, _>(pairs.iter().map(|p| p.0).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(pairs.iter().map(|p| p.1).collect::<Vec<_>>()),
    )
    .load(&mut conn)
    .await
}

const READ_KEYED: &str = concat!(
    "SELECT ",
    boxoffice_store::reservation_columns!("r"),
    ", r.request_hash,
       coalesce(array_agg(rs.seat_id ORDER BY rs.seat_id) FILTER (WHERE rs.seat_id IS NOT NULL), '{}') AS seat_ids,
       coalesce(array_agg(DISTINCT rs.grade_name) FILTER (WHERE rs.grade_name IS NOT NULL), '{}') AS grades
     FROM reservations r
     JOIN unnest($1::bigint[], $2::text[]) AS k(user_id, key)
       ON r.user_id = k.user_id AND r.idempotency_key = k.key
     LEFT JOIN reservation_seats rs ON rs.reservation_id = r.id
     GROUP BY r.id"
);

/// The reservations already made with the batch's keys (any schedule: a key is the
/// user's), each with its seats and their grades.
pub(super) async fn read_keyed(
    mut conn: &AsyncPgConnection,
    keys: &[(i64, String)],
) -> QueryResult<Vec<Keyed>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    Prepared(
        diesel::sql_query(READ_KEYED)
            .bind::<Array<BigInt>, _>(keys.iter().map(|k| k.0).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(keys.iter().map(|k| k.1.as_str()).collect::<Vec<_>>()),
    )
    .load(&mut conn)
    .await
}
