//! `boxoffice demo`: a box office with something in it, for a newcomer's first minute.
//!
//! Seeds three accounts (an admin, a host, a fan with points) and two published concerts
//! on sale now: a Korean one in a hall of about 2,000 seats and an English one in a
//! 20,000-seat stadium that sells through the waiting queue. Everything goes through the
//! same rules as the API (the host is promoted by the admin, the fan's points are an
//! audited admin adjustment, layouts are validated and generated like `generateSeats`).
//!
//! Running it again adds nothing: each step looks for what an earlier run made (accounts
//! by email, concerts by host and title, a schedule with seats, the welcome adjustment)
//! and does only what is missing, so a run interrupted half-way is completed by the next.
//! Passwords are random and printed once, when the account is made: they are not stored
//! anywhere but in their hash.

use chrono::{Duration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rand::Rng as _;

use crate::{
    auth::{
        Actor, Role, password,
        store::{self as users, NewUser, UserRow},
    },
    concerts::{
        ConcertStatus,
        service::{self as concerts, ConcertInput, ScheduleInput},
        store as concerts_store,
    },
    config::PaymentsConfig,
    error::{AppError, AppResult},
    in_doubt::Writes,
    seats::layout::{self, SeatGradeInput, SeatLayoutInput, SeatRowInput, SeatSectionInput},
};

pub const ADMIN_EMAIL: &str = "demo-admin@example.com";
pub const HOST_EMAIL: &str = "demo-host@example.com";
pub const FAN_EMAIL: &str = "demo-fan@example.com";
/// The reason of the fan's welcome adjustment: how a later run knows it was given.
pub const WELCOME_REASON: &str = "demo: welcome points";
pub const WELCOME_POINTS: i64 = 1_000_000;

/// Serialises concurrent runs against one database (two at once would both create).
const LOCK_KEY: i64 = 0x0b0f_de30;

/// One account of the demo: its password only when this run created it.
pub struct Account {
    pub role: Role,
    pub email: String,
    pub id: i64,
    pub new_password: Option<String>,
}

/// A concert of the demo and whether this run created (or completed) it.
pub struct Show {
    pub title: String,
    pub schedule_id: i64,
    pub capacity: i32,
    pub queue_enabled: bool,
    pub created: bool,
}

pub struct Report {
    pub accounts: Vec<Account>,
    pub shows: Vec<Show>,
    pub points_given: bool,
}

impl Report {
    /// What the operator reads: each account with its password (printed this once), and
    /// where to go next.
    pub fn render(&self, base_url: &str) -> String {
        let mut out = String::from("boxoffice demo\n\nAccounts:\n");
        for a in &self.accounts {
            let role = a.role.as_str();
            match &a.new_password {
                Some(p) => out.push_str(&format!("  {role:<5} {:<24} password: {p}\n", a.email)),
                None => out.push_str(&format!(
                    "  {role:<5} {:<24} (already there; its password was printed when it was made)\n",
                    a.email
                )),
            }
        }
        if self.accounts.iter().any(|a| a.new_password.is_some()) {
            out.push_str("  These passwords are shown only now: note them.\n");
        }
        if self.points_given {
            out.push_str(&format!(
                "  {FAN_EMAIL} got {WELCOME_POINTS} points to buy with.\n"
            ));
        }
        out.push_str("\nConcerts on sale now:\n");
        for s in &self.shows {
            out.push_str(&format!(
                "  {} · {} seats{} · {base_url}/schedules/{}{}\n",
                s.title,
                s.capacity,
                if s.queue_enabled { " · waiting queue" } else { "" },
                s.schedule_id,
                if s.created { "" } else { " (already there)" },
            ));
        }
        out.push_str(&format!(
            "\nOpen {base_url}/ and log in with one of the accounts.\n"
        ));
        out
    }
}

/// Seeds the demo (see the module). `bounds` are the deployment's point bounds, which the
/// fan's welcome grant obeys like any admin grant; `fixed_password` gives every new account
/// that password instead of a random one (tests and scripted set-ups). `writes`: how its
/// writes end (`Writes::by_hand` from the command line).
pub async fn seed(
    conn: &mut AsyncPgConnection,
    writes: Writes<'_>,
    bounds: &PaymentsConfig,
    fixed_password: Option<&str>,
) -> AppResult<Report> {
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(LOCK_KEY)
        .execute(conn)
        .await?;
    let result = seed_locked(conn, writes, bounds, fixed_password).await;
    diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<diesel::sql_types::BigInt, _>(LOCK_KEY)
        .execute(conn)
        .await?;
    result
}

async fn seed_locked(
    conn: &mut AsyncPgConnection,
    writes: Writes<'_>,
    bounds: &PaymentsConfig,
    fixed_password: Option<&str>,
) -> AppResult<Report> {
    let admin = account(
        conn,
        ADMIN_EMAIL,
        "Demo Admin",
        Role::Admin,
        Role::Admin,
        fixed_password,
    )
    .await?;
    let admin_actor = Actor {
        id: admin.id,
        role: Role::Admin,
    };
    // The host signs up as a user and is promoted by the admin, as in the app.
    let host = account(
        conn,
        HOST_EMAIL,
        "Demo Host",
        Role::User,
        Role::Host,
        fixed_password,
    )
    .await?;
    if users::current_role(conn, host.id).await? != Some(Role::Host) {
        crate::admin::store::set_role(conn, writes, admin_actor, host.id, Role::Host).await?;
    }
    let fan = account(
        conn,
        FAN_EMAIL,
        "Demo Fan",
        Role::User,
        Role::User,
        fixed_password,
    )
    .await?;
    let points_given = if welcomed(conn, fan.id).await? {
        false
    } else {
        crate::points::service::adjust(
            conn,
            writes,
            bounds,
            admin_actor,
            fan.id,
            WELCOME_POINTS,
            WELCOME_REASON,
        )
        .await?;
        true
    };
    let host_actor = Actor {
        id: host.id,
        role: Role::Host,
    };
    let shows = vec![
        show(conn, writes, host_actor, &korean()).await?,
        show(conn, writes, host_actor, &english()).await?,
    ];
    Ok(Report {
        accounts: vec![admin, host, fan],
        shows,
        points_given,
    })
}

/// The account with `email`, made with `created_as` when missing. An existing account must
/// already have `expected` (or, for the host, the plain user role it is promoted from):
/// otherwise someone else signed it up and chose its password, and handing it a role
/// would give them that role, so the run stops.
async fn account(
    conn: &mut AsyncPgConnection,
    email: &str,
    name: &str,
    created_as: Role,
    expected: Role,
    fixed_password: Option<&str>,
) -> AppResult<Account> {
    if let Some(user) = users::user_by_email(conn, email).await? {
        let role = user.role()?;
        if role != expected && role != created_as {
            return Err(AppError::Conflict(format!(
                "{email} exists with the role {} instead of {}: not touching it",
                role.as_str(),
                expected.as_str()
            )));
        }
        if expected != created_as && role == created_as && !was_made_by_demo(&user) {
            return Err(AppError::Conflict(format!(
                "{email} exists as a plain account that the demo did not make: not promoting it"
            )));
        }
        return Ok(Account {
            role: expected,
            email: user.email,
            id: user.id,
            new_password: None,
        });
    }
    let password = fixed_password.map_or_else(random_password, str::to_owned);
    password::validate(&password, email, "--password")?;
    let hash = password::hash(password.clone()).await?;
    let user = users::insert_user(
        conn,
        &NewUser {
            email,
            password_hash: &hash,
            display_name: name,
            role: created_as.as_str(),
        },
    )
    .await?
    .ok_or_else(|| AppError::Conflict(format!("{email} was created concurrently; run again")))?;
    Ok(Account {
        role: expected,
        email: user.email,
        id: user.id,
        new_password: Some(password),
    })
}

/// A plain account named "Demo Host" is the one an interrupted run left before promoting it.
fn was_made_by_demo(user: &UserRow) -> bool {
    user.display_name == "Demo Host"
}

/// Whether the fan already got the welcome adjustment.
async fn welcomed(conn: &mut AsyncPgConnection, fan_id: i64) -> AppResult<bool> {
    use crate::schema::point_ledger;
    let n: i64 = point_ledger::table
        .filter(point_ledger::user_id.eq(fan_id))
        .filter(point_ledger::kind.eq("adjustment"))
        .filter(point_ledger::reason.eq(WELCOME_REASON))
        .count()
        .get_result(conn)
        .await?;
    Ok(n > 0)
}

/// Four words' worth of randomness in a form that is easy to type: `xxxx-xxxx-xxxx-xxxx`
/// from lower-case letters and digits (about 82 bits), always with a letter and a digit.
fn random_password() -> String {
    const LETTERS: &[u8] = b"abcdefghijkmnpqrstuvwxyz";
    const DIGITS: &[u8] = b"23456789";
    let mut rng = rand::rng();
    let mut groups = Vec::with_capacity(4);
    for g in 0..4 {
        let group: String = (0..4)
            .map(|i| {
                // The first group starts with a letter and the last ends with a digit.
                let pool: &[u8] = match (g, i) {
                    (0, 0) => LETTERS,
                    (3, 3) => DIGITS,
                    _ if rng.random_bool(0.5) => LETTERS,
                    _ => DIGITS,
                };
                char::from(pool[rng.random_range(0..pool.len())])
            })
            .collect();
        groups.push(group);
    }
    groups.join("-")
}

/// What one demo concert is made of.
struct Plan {
    concert: ConcertInput,
    queue_enabled: bool,
    per_user_limit: i32,
    layout: SeatLayoutInput,
}

/// Finds or makes the concert, its schedule (on sale from a minute ago for 30 days), its
/// seats, and publishes it: only the steps an earlier run did not finish.
async fn show(conn: &mut AsyncPgConnection, writes: Writes<'_>, host: Actor, plan: &Plan) -> AppResult<Show> {
    use crate::schema::concerts as c;
    let existing = c::table
        .filter(c::host_id.eq(host.id))
        .filter(c::title.eq(&plan.concert.title))
        .select(c::id)
        .order(c::id.asc())
        .first::<i64>(conn)
        .await
        .optional()?;
    let mut created = false;
    let concert_id = match existing {
        Some(id) => id,
        None => {
            created = true;
            concerts::create_concert(conn, writes, host, &plan.concert)
                .await?
                .id
        }
    };
    let schedule = match concerts_store::schedules_of_concerts(conn, &[concert_id])
        .await?
        .into_iter()
        .next()
    {
        Some(s) => s,
        None => {
            created = true;
            let now = Utc::now();
            let input = ScheduleInput {
                starts_at: now + Duration::days(31),
                sales_open_at: now - Duration::minutes(1),
                sales_close_at: now + Duration::days(30),
                per_user_limit: plan.per_user_limit,
                hold_seconds: 600,
                queue_enabled: plan.queue_enabled,
                admit_per_second: 50,
                max_active: 1000,
                admission_seconds: 900,
            };
            concerts::add_schedule(conn, writes, host, concert_id, &input).await?
        }
    };
    let mut capacity = schedule.capacity;
    if capacity == 0 {
        created = true;
        let seats = layout::plan(&plan.layout)?;
        // A new schedule has no waiting list, so generating serves no one.
        layout::generate(conn, writes, host, schedule.id, &seats).await?;
        capacity = i32::try_from(seats.total).map_err(AppError::internal)?;
    }
    let concert = concerts_store::concert(conn, concert_id)
        .await?
        .ok_or(AppError::NotFound("concert"))?;
    if concert.status == ConcertStatus::Draft {
        created = true;
        concerts::publish_concert(conn, writes, host, concert_id).await?;
    }
    Ok(Show {
        title: plan.concert.title.clone(),
        schedule_id: schedule.id,
        capacity,
        queue_enabled: schedule.queue_enabled,
        created,
    })
}

fn grade(name: &str, price: i64, color: &str) -> SeatGradeInput {
    SeatGradeInput {
        name: name.into(),
        price,
        color: color.into(),
    }
}

/// `count` rows labelled from `labels`, each of `seats` seats of `grade`.
fn rows(labels: impl IntoIterator<Item = String>, seats: i32, grade: &str) -> Vec<SeatRowInput> {
    labels
        .into_iter()
        .map(|label| SeatRowInput {
            label,
            seats,
            grade: grade.into(),
        })
        .collect()
}

fn letters(first: u8, count: u8) -> Vec<String> {
    (0..count).map(|i| char::from(first + i).to_string()).collect()
}

fn numbers(from: u32, count: u32) -> Vec<String> {
    (from..from + count).map(|n| n.to_string()).collect()
}

/// A classical evening in Seoul: 2,004 seats over three floors.
fn korean() -> Plan {
    let mut floor = rows(letters(b'A', 10), 40, "VIP");
    floor.extend(rows(letters(b'K', 10), 44, "R"));
    Plan {
        concert: ConcertInput {
            title: "별빛 오케스트라 — 겨울밤의 클래식".into(),
            artist: "서울 별빛 오케스트라".into(),
            description:
                "차이콥스키 교향곡 5번과 드보르자크 첼로 협주곡. 공연 시간 약 120분 (인터미션 20분).".into(),
            venue: "한강 아트센터 대극장".into(),
            category: "classical".into(),
            poster_url: None,
        },
        queue_enabled: false,
        per_user_limit: 4,
        layout: SeatLayoutInput {
            grades: vec![
                grade("VIP", 150_000, "#D4AF37"),
                grade("R", 120_000, "#C0392B"),
                grade("S", 90_000, "#2980B9"),
                grade("A", 60_000, "#27AE60"),
            ],
            sections: vec![
                SeatSectionInput {
                    name: "1층".into(),
                    rows: floor,
                },
                SeatSectionInput {
                    name: "2층".into(),
                    rows: rows(numbers(1, 15), 50, "S"),
                },
                SeatSectionInput {
                    name: "3층".into(),
                    rows: rows(numbers(1, 9), 46, "A"),
                },
            ],
        },
    }
}

/// A stadium tour: 20,000 seats, sold through the waiting queue.
fn english() -> Plan {
    let mut sections = Vec::new();
    for side in ["Left", "Centre", "Right"] {
        let mut r = rows(numbers(1, 10), 40, "VIP");
        r.extend(rows(numbers(11, 15), 40, "R"));
        sections.push(SeatSectionInput {
            name: format!("Floor {side}"),
            rows: r,
        });
    }
    for n in 101..=108 {
        sections.push(SeatSectionInput {
            name: format!("Lower {n}"),
            rows: rows(letters(b'A', 20), 45, "S"),
        });
    }
    for n in 201..=208 {
        sections.push(SeatSectionInput {
            name: format!("Upper {n}"),
            rows: rows(letters(b'A', 25), 49, "A"),
        });
    }
    Plan {
        concert: ConcertInput {
            title: "Northern Lights World Tour".into(),
            artist: "The Aurora Band".into(),
            description: "The stadium leg of the tour, with the full light show. Doors open 90 minutes before the start."
                .into(),
            venue: "Riverside Stadium".into(),
            category: "rock".into(),
            poster_url: None,
        },
        queue_enabled: true,
        per_user_limit: 6,
        layout: SeatLayoutInput {
            grades: vec![
                grade("VIP", 220_000, "#8E44AD"),
                grade("R", 165_000, "#C0392B"),
                grade("S", 110_000, "#2980B9"),
                grade("A", 77_000, "#27AE60"),
            ],
            sections,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_are_valid_and_the_sizes_promised() {
        assert_eq!(layout::plan(&korean().layout).unwrap().total, 2_004);
        assert_eq!(layout::plan(&english().layout).unwrap().total, 20_000);
    }

    #[test]
    fn random_passwords_pass_the_password_rules() {
        for _ in 0..200 {
            let p = random_password();
            assert_eq!(p.len(), 19);
            password::validate(&p, FAN_EMAIL, "p").unwrap();
        }
        assert_ne!(random_password(), random_password());
    }
}
