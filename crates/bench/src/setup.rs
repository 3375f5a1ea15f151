//! The data a scenario needs (the invariant checks afterwards are `boxoffice::invariants`).
//!
//! Users are inserted in bulk with SQL and their access tokens minted with the server's
//! keys (one INSERT instead of thousands of argon2 sign-ups: set-up, not what is measured).
//! Shows are made through the API as a host would, which is fast enough (`generateSeats`
//! lays out tens of thousands of seats in about a second).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use boxoffice::auth::{Role, tokens::JwtKeys};
use diesel::{QueryableByName, sql_types::BigInt};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};

use crate::client::Gql;

#[derive(Clone)]
pub struct User {
    pub id: i64,
    pub token: String,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

pub async fn connect(database_url: &str) -> anyhow::Result<AsyncPgConnection> {
    AsyncPgConnection::establish(database_url)
        .await
        .context("connecting to PostgreSQL (--database-url)")
}

/// A tag that keeps this run's e-mail addresses apart from every other run's.
pub fn run_tag() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!("{ms}-{}", std::process::id())
}

pub struct Minter(JwtKeys);

impl Minter {
    /// Tokens live an hour: longer than any bounded run.
    pub fn new(secret: &str) -> Self {
        Self(JwtKeys::new(&secret.to_owned().into(), Duration::from_secs(3600)))
    }

    pub fn token(&self, user_id: i64, role: Role) -> anyhow::Result<String> {
        Ok(self.0.issue(user_id, role)?.0)
    }
}

/// `n` new accounts with the given role, made in one statement, with their tokens.
pub async fn users(
    conn: &mut AsyncPgConnection,
    minter: &Minter,
    tag: &str,
    kind: &str,
    n: usize,
    role: Role,
) -> anyhow::Result<Vec<User>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let rows: Vec<Id> = diesel::sql_query(
        "INSERT INTO users (email, password_hash, display_name, role)
         SELECT 'bench-' || $1 || '-' || $2 || '-' || g || '@example.com', 'x', 'fan', $3
         FROM generate_series(1, $4::bigint) g
         RETURNING id",
    )
    .bind::<diesel::sql_types::Text, _>(tag)
    .bind::<diesel::sql_types::Text, _>(kind)
    .bind::<diesel::sql_types::Text, _>(role.as_str())
    .bind::<BigInt, _>(i64::try_from(n)?)
    .load(conn)
    .await
    .context("inserting the bench users")?;
    let mut out = Vec::with_capacity(rows.len());
    for Id { id } in rows {
        out.push(User {
            id,
            token: minter.token(id, role)?,
        });
    }
    out.sort_by_key(|u| u.id);
    Ok(out)
}

/// A schedule and its seats (ids in layout order).
pub struct Show {
    pub schedule_id: i64,
    pub seats: Vec<i64>,
}

pub struct ShowSpec {
    pub seats: usize,
    pub per_user_limit: u32,
    /// Queue settings: `(admit_per_second, max_active)`; `None` sells without a queue.
    pub queue: Option<(u32, u32)>,
    /// How long a hold lasts (30..=3600).
    pub hold_seconds: u32,
}

/// Rows of 100 seats, sections of 50 rows; grades by row: the first tenth VIP, then R, S
/// and A in thirds (a grade may go unused in a small layout, which the API allows).
pub fn layout(seats: usize) -> Value {
    const PER_ROW: usize = 100;
    const ROWS_PER_SECTION: usize = 50;
    let rows = seats.div_ceil(PER_ROW).max(1);
    let grade = |r: usize| {
        let f = r as f64 / rows as f64;
        if f < 0.1 {
            "VIP"
        } else if f < 0.4 {
            "R"
        } else if f < 0.7 {
            "S"
        } else {
            "A"
        }
    };
    let mut sections = Vec::new();
    let mut r = 0;
    while r < rows {
        let mut section_rows = Vec::new();
        for _ in 0..ROWS_PER_SECTION {
            if r >= rows {
                break;
            }
            let n = (seats - r * PER_ROW).clamp(1, PER_ROW);
            section_rows.push(json!({ "label": format!("R{}", r + 1), "seats": n, "grade": grade(r) }));
            r += 1;
        }
        sections.push(json!({ "name": format!("Block {}", sections.len() + 1), "rows": section_rows }));
    }
    json!({
        "grades": [
            { "name": "VIP", "price": 150, "color": "#D4AF37" },
            { "name": "R", "price": 100, "color": "#C0392B" },
            { "name": "S", "price": 70, "color": "#2980B9" },
            { "name": "A", "price": 50, "color": "#27AE60" },
        ],
        "sections": sections,
    })
}

/// Creates a published concert with one schedule on sale now (holds last `hold_seconds`:
/// an hour, longer than any run, so no hold expires under the benchmark's feet, except
/// in the soak, which wants them to).
pub async fn show(gql: &Gql, endpoint: &str, host_token: &str, spec: &ShowSpec) -> anyhow::Result<Show> {
    let t = Some(host_token);
    let concert = gql
        .ok(
            endpoint,
            t,
            "mutation($i: ConcertInput!) { createConcert(input: $i) { id } }",
            json!({ "i": { "title": "Bench Night", "artist": "The Load Generators", "venue": "Loopback Arena", "category": "pop" } }),
        )
        .await?;
    let concert_id = concert["createConcert"]["id"]
        .as_str()
        .context("createConcert answered no id")?
        .to_owned();
    let now = chrono::Utc::now();
    let (queue_enabled, admit, max_active) = match spec.queue {
        Some((admit, max_active)) => (true, admit, max_active),
        None => (false, 50, 1000),
    };
    let schedule = gql
        .ok(
            endpoint,
            t,
            "mutation($c: ID!, $i: ScheduleInput!) { addSchedule(concertId: $c, input: $i) { id } }",
            json!({ "c": concert_id, "i": {
                "startsAt": (now + chrono::Duration::days(2)).to_rfc3339(),
                "salesOpenAt": (now - chrono::Duration::minutes(1)).to_rfc3339(),
                "salesCloseAt": (now + chrono::Duration::days(1)).to_rfc3339(),
                "perUserLimit": spec.per_user_limit,
                "holdSeconds": spec.hold_seconds,
                "queueEnabled": queue_enabled,
                "admitPerSecond": admit,
                "maxActive": max_active,
                "admissionSeconds": 7200,
            } }),
        )
        .await?;
    let schedule_id = schedule["addSchedule"]["id"]
        .as_str()
        .context("addSchedule answered no id")?
        .to_owned();
    gql.ok(
        endpoint,
        t,
        "mutation($s: ID!, $l: SeatLayoutInput!) { generateSeats(scheduleId: $s, layout: $l) { id } }",
        json!({ "s": schedule_id, "l": layout(spec.seats) }),
    )
    .await?;
    gql.ok(
        endpoint,
        t,
        "mutation($c: ID!) { publishConcert(id: $c) { id } }",
        json!({ "c": concert_id }),
    )
    .await?;
    let map = gql
        .ok(
            endpoint,
            t,
            "query($s: ID!) { schedule(id: $s) { seats { id } } }",
            json!({ "s": schedule_id }),
        )
        .await?;
    let seats = map["schedule"]["seats"]
        .as_array()
        .context("the seat map has no seats")?
        .iter()
        .map(|s| s["id"].as_str().and_then(|id| id.parse::<i64>().ok()))
        .collect::<Option<Vec<i64>>>()
        .context("a seat id is not a number")?;
    if seats.len() != spec.seats {
        anyhow::bail!("the schedule has {} seats, expected {}", seats.len(), spec.seats);
    }
    Ok(Show {
        schedule_id: schedule_id.parse().context("the schedule id is not a number")?,
        seats,
    })
}

/// Gives each of `users` `points` (an adjustment in the ledger, as an admin's would be),
/// so that they can pay.
pub async fn fund(conn: &mut AsyncPgConnection, users: &[User], points: i64) -> anyhow::Result<()> {
    let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
    diesel::sql_query(
        "WITH f AS (UPDATE users SET points = points + $2 WHERE id = ANY($1) RETURNING id, points)
         INSERT INTO point_ledger (user_id, kind, amount, balance_after, reason)
         SELECT id, 'adjustment', $2, points, 'bench' FROM f",
    )
    .bind::<diesel::sql_types::Array<BigInt>, _>(ids)
    .bind::<BigInt, _>(points)
    .execute(conn)
    .await
    .context("funding the bench users")?;
    Ok(())
}

pub async fn booked_count(conn: &mut AsyncPgConnection, schedule_id: i64) -> anyhow::Result<i64> {
    let row: N = diesel::sql_query("SELECT booked_count::bigint AS n FROM schedules WHERE id = $1")
        .bind::<BigInt, _>(schedule_id)
        .get_result(conn)
        .await
        .context("reading the booking count")?;
    Ok(row.n)
}

pub async fn count(conn: &mut AsyncPgConnection, sql: &str) -> anyhow::Result<i64> {
    let row: N = diesel::sql_query(sql)
        .get_result(conn)
        .await
        .with_context(|| format!("running {sql}"))?;
    Ok(row.n)
}

/// Every check of `boxoffice::invariants` (I1-I5, I7: the same SQL as the test suite's)
/// over the whole database; one line per check that fails.
pub async fn invariants(conn: &mut AsyncPgConnection) -> anyhow::Result<Vec<String>> {
    let found = boxoffice::invariants::violations(conn, boxoffice::invariants::all())
        .await
        .context("checking the invariants")?;
    Ok(found.iter().map(ToString::to_string).collect())
}
