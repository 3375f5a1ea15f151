//! The compact seat map: the whole map of a big venue in a few kilobytes, built once per
//! schedule version and shared by every reader of this instance.
//!
//! A 20,000-seat map as GraphQL objects is 140,000 resolved fields and 2 MB of JSON per
//! request; here it is one row object per row of seats and one character per seat.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use async_graphql::SimpleObject;
use bytes::Bytes;
use diesel::{
    QueryableByName,
    sql_types::{BigInt, Int4, Text},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::{error::AppResult, seats::status_letter};

/// One row of seats, numbered 1 to `seats`.
#[derive(SimpleObject, Clone, Debug, serde::Serialize)]
pub struct SeatMapRow {
    pub section: String,
    pub row: String,
    pub seats: i32,
    /// Index into `SeatMap.grades`.
    pub grade: i32,
}

#[derive(SimpleObject, Clone, Debug, serde::Serialize)]
pub struct SeatMapGrade {
    pub name: String,
    pub price: i64,
    pub color: String,
}

/// A whole seat map, compactly. Walk `rows` in order; each row's seats are numbered 1 to
/// `seats`; their ids come from `idRuns` and their statuses from `statuses`, in that same
/// order.
#[derive(SimpleObject, Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatMap {
    #[graphql(skip)]
    #[serde(serialize_with = "as_id")]
    pub schedule_id: i64,
    /// The schedule version the statuses are at least as new as (in fact exactly the
    /// version they were read at: the map and the version come from one snapshot).
    pub version: i64,
    pub grades: Vec<SeatMapGrade>,
    pub rows: Vec<SeatMapRow>,
    /// Seat ids in layout order as runs of consecutive ids: `[first, count, first, count, ...]`.
    pub id_runs: Vec<i64>,
    /// One letter per seat in layout order: A available, H held, S sold, B blocked (kept
    /// back by the host).
    #[serde(serialize_with = "as_str")]
    pub statuses: Arc<str>,
    /// The map as JSON (`GET /schedules/{id}/seat-map`), made at the first HTTP read and
    /// shared by every later one of this version.
    #[graphql(skip)]
    #[serde(skip)]
    json: OnceLock<Bytes>,
    /// Per-grade counts of `statuses`, counted at the first read that asks and shared by
    /// every later one of this version (every seat-map page asks).
    #[graphql(skip)]
    #[serde(skip)]
    counts: OnceLock<Option<Vec<crate::seats::availability::GradeAvailability>>>,
}

fn as_str<S: serde::Serializer>(text: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(text)
}

/// Ids are strings, as GraphQL `ID`s are.
fn as_id<S: serde::Serializer>(id: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(id)
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    section: String,
    #[diesel(sql_type = Text)]
    row_label: String,
    #[diesel(sql_type = Text)]
    status: crate::seats::SeatStatus,
    #[diesel(sql_type = Int4)]
    grade: i32,
}

#[derive(QueryableByName)]
struct Grade {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    price: i64,
    #[diesel(sql_type = Text)]
    color: String,
}

/// Maps already built, by schedule: one per schedule, replaced when its version moves.
///
/// Bounded by the bytes the maps hold (`MAPS_BYTES`; a 50,000-seat map is about 60 KB) and
/// dropped after `MAPS_IDLE` unread, so a crawler walking every schedule ever made costs
/// queries, not memory. Only schedules that exist get a map: nothing is kept for a miss.
pub struct SeatMaps(moka::sync::Cache<i64, Arc<SeatMap>>);

const MAPS_BYTES: u64 = 64 * 1024 * 1024;
const MAPS_IDLE: Duration = Duration::from_secs(600);

impl Default for SeatMaps {
    fn default() -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(MAPS_BYTES)
                .weigher(|_, map: &Arc<SeatMap>| map.weight())
                .time_to_idle(MAPS_IDLE)
                .build(),
        )
    }
}

impl SeatMap {
    /// The map as JSON: `scheduleId`, then the fields of the GraphQL `SeatMap` with the
    /// same names and meaning. Serialized once per map.
    pub fn json(&self) -> Bytes {
        self.json
            .get_or_init(|| Bytes::from(serde_json::to_vec(self).unwrap_or_default()))
            .clone()
    }

    /// Seats of each grade by status; `None` when `rows` and `statuses` disagree.
    fn count(&self) -> Option<Vec<crate::seats::availability::GradeAvailability>> {
        let mut counts = vec![[0i64; 4]; self.grades.len()];
        let mut letters = self.statuses.chars();
        for row in &self.rows {
            let slot = counts.get_mut(usize::try_from(row.grade).ok()?)?;
            for _ in 0..row.seats {
                match letters.next()? {
                    'H' => slot[1] += 1,
                    'S' => slot[2] += 1,
                    'B' => slot[3] += 1,
                    _ => slot[0] += 1,
                }
            }
        }
        Some(
            self.grades
                .iter()
                .zip(counts)
                .map(
                    |(g, [available, held, sold, blocked])| crate::seats::availability::GradeAvailability {
                        grade: g.name.clone(),
                        price: g.price,
                        color: g.color.clone(),
                        total: available + held + sold + blocked,
                        available,
                        held,
                        sold,
                        blocked,
                    },
                )
                .collect(),
        )
    }

    /// Roughly the bytes this map holds, for the cache's bound (with its JSON, about as
    /// much again).
    fn weight(&self) -> u32 {
        let bytes = 2 * self.statuses.len()
            + self.id_runs.len() * 8
            + self
                .rows
                .iter()
                .map(|r| 48 + r.section.len() + r.row.len())
                .sum::<usize>()
            + self
                .grades
                .iter()
                .map(|g| 48 + g.name.len() + g.color.len())
                .sum::<usize>();
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }
}

impl SeatMaps {
    /// Per-grade counts from a built map of exactly `version`, if there is one.
    pub fn availability(
        &self,
        schedule_id: i64,
        version: i64,
    ) -> Option<Vec<crate::seats::availability::GradeAvailability>> {
        let map = self.0.get(&schedule_id).filter(|m| m.version == version)?;
        map.counts.get_or_init(|| map.count()).clone()
    }

    /// The map of this instance for `schedule_id`, whatever its version: no query.
    pub fn cached(&self, schedule_id: i64) -> Option<Arc<SeatMap>> {
        self.0.get(&schedule_id)
    }

    /// The map of `schedule_id` at `version` or newer.
    pub async fn get(
        &self,
        pool: &crate::db::Pool,
        schedule_id: i64,
        version: i64,
    ) -> AppResult<Arc<SeatMap>> {
        if let Some(map) = self.0.get(&schedule_id)
            && map.version >= version
        {
            return Ok(map);
        }
        let mut conn = pool.get().await?;
        let map = Arc::new(build(&mut conn, schedule_id).await?);
        // Two readers may build at once: the newer version stays.
        self.0.entry(schedule_id).and_upsert_with(|old| match old {
            Some(old) if old.value().version >= map.version => old.into_value(),
            _ => map.clone(),
        });
        Ok(map)
    }
}

/// The map and the schedule version it is at, from one snapshot (a repeatable-read
/// transaction): a map's version names exactly its statuses, so two instances that build
/// version N answer the same bytes, and an ETag naming N names one representation.
async fn build(conn: &mut AsyncPgConnection, schedule_id: i64) -> AppResult<SeatMap> {
    let (version, grades, seats) = conn
        .build_transaction()
        .repeatable_read()
        .read_only()
        .run(async |conn| {
            let mut version: Vec<Version> = diesel::sql_query("SELECT version FROM schedules WHERE id = $1")
                .bind::<BigInt, _>(schedule_id)
                .load(conn)
                .await?;
            let (grades, seats) = read(conn, schedule_id).await?;
            Ok::<_, diesel::result::Error>((version.pop().map_or(0, |v| v.version), grades, seats))
        })
        .await?;
    Ok(assemble(schedule_id, version, grades, seats))
}

#[derive(QueryableByName)]
struct Version {
    #[diesel(sql_type = BigInt)]
    version: i64,
}

async fn read(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
) -> Result<(Vec<Grade>, Vec<Row>), diesel::result::Error> {
    let grades: Vec<Grade> = diesel::sql_query(
        "SELECT name, price, color FROM seat_grades WHERE schedule_id = $1 ORDER BY position",
    )
    .bind::<BigInt, _>(schedule_id)
    .load(conn)
    .await?;
    let seats: Vec<Row> = diesel::sql_query(
        "SELECT s.id, s.section, s.row_label, s.status, (g.position - 1) AS grade
         FROM seats s JOIN seat_grades g ON g.id = s.grade_id
         WHERE s.schedule_id = $1 ORDER BY s.id",
    )
    .bind::<BigInt, _>(schedule_id)
    .load(conn)
    .await?;
    Ok((grades, seats))
}

fn assemble(schedule_id: i64, version: i64, grades: Vec<Grade>, seats: Vec<Row>) -> SeatMap {
    let mut rows: Vec<SeatMapRow> = Vec::new();
    let mut id_runs: Vec<i64> = Vec::new();
    let mut statuses = String::with_capacity(seats.len());
    for s in &seats {
        match rows.last_mut() {
            Some(r) if r.section == s.section && r.row == s.row_label => r.seats += 1,
            _ => rows.push(SeatMapRow {
                section: s.section.clone(),
                row: s.row_label.clone(),
                seats: 1,
                grade: s.grade,
            }),
        }
        let n = id_runs.len();
        if n >= 2 && id_runs[n - 2] + id_runs[n - 1] == s.id {
            id_runs[n - 1] += 1;
        } else {
            id_runs.extend([s.id, 1]);
        }
        statuses.push(status_letter(s.status));
    }
    SeatMap {
        schedule_id,
        version,
        grades: grades
            .into_iter()
            .map(|g| SeatMapGrade {
                name: g.name,
                price: g.price,
                color: g.color,
            })
            .collect(),
        rows,
        id_runs,
        statuses: statuses.into(),
        json: OnceLock::new(),
        counts: OnceLock::new(),
    }
}
