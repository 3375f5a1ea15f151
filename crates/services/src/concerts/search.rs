//! `concerts(filter, first, after)`: published concerts by text, category, host, dates and
//! seats left, sorted by first performance or relevance, in keyset pages.
//!
//! Text matches either the full-text document (whole words, any order:
//! `websearch_to_tsquery('simple', ...)`) or a case-insensitive substring of the searchable
//! text (partial words; Korean or any script), served by a trigram index. One query with
//! every filter bound (NULL = not filtering).
//!
//! The indexes are usable only because every search is planned with its actual values:
//! diesel never caches a `sql_query` statement, so PostgreSQL makes a custom plan each time
//! and drops the `$1 IS NULL OR ...` branches. A cached statement would switch to a generic
//! plan after five runs, which can only scan the whole table (measured: ~35 ms instead of
//! ~3 ms on 10,000 concerts). Keep it uncached, or split it per filter shape.

use chrono::{DateTime, Utc};
use diesel::{
    QueryableByName,
    sql_types::{BigInt, Bool, Double, Nullable, Text, Timestamptz},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::store::ConcertRow;
use crate::error::{AppError, AppResult};

#[derive(Clone, Copy, Debug, Default, Eq, PartialEq, async_graphql::Enum)]
pub enum ConcertSort {
    /// Earliest matching performance first (the default).
    #[default]
    StartDate,
    /// Best text match first (same as START_DATE without `text`).
    Relevance,
}

#[derive(Debug, Default)]
pub struct Filter {
    pub text: Option<String>,
    pub category: Option<String>,
    pub host_id: Option<i64>,
    pub starts_from: Option<DateTime<Utc>>,
    pub starts_before: Option<DateTime<Utc>>,
    pub only_available: bool,
    pub sort: ConcertSort,
}

/// Where the previous page ended: the sort key and the id of its last concert.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct Cursor {
    /// Carried as its bit pattern: serde_json reads a float back only to within one unit
    /// in the last place, and a key one unit off repeats or skips rows at a page boundary
    /// (relevance keys, floats widened from `real`, often do not survive the round trip).
    #[serde(with = "key_bits")]
    pub key: f64,
    pub id: i64,
}

mod key_bits {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(key: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(key.to_bits())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let key = f64::from_bits(u64::deserialize(d)?);
        if key.is_finite() {
            Ok(key)
        } else {
            Err(D::Error::custom("not a sort key"))
        }
    }
}

#[derive(QueryableByName)]
pub struct Hit {
    #[diesel(embed)]
    pub concert: ConcertRow,
    #[diesel(sql_type = Double)]
    pub sort_key: f64,
}

const SQL: &str = r"
SELECT * FROM (
    SELECT c.id, c.host_id, c.title, c.artist, c.description, c.venue, c.category, c.poster_url,
           c.status, c.cancel_reason, c.created_at, c.updated_at,
           CASE WHEN $8 AND $1::text IS NOT NULL
                THEN -(ts_rank(c.search_doc, websearch_to_tsquery('simple', $1)) + similarity(c.search_text, $1))::float8
                ELSE coalesce(extract(epoch FROM fs.first_start)::float8, 1e15)
           END AS sort_key
    FROM concerts c
    CROSS JOIN LATERAL (
        SELECT min(s.starts_at) AS first_start
        FROM schedules s
        WHERE s.concert_id = c.id
          AND s.status = 'scheduled'
          -- Upcoming performances only, unless the client asks for a start of its own.
          AND s.starts_at >= coalesce($5::timestamptz, now())
          AND ($6::timestamptz IS NULL OR s.starts_at < $6)
          AND (NOT $7 OR s.booked_count < s.capacity)
    ) fs
    WHERE c.status = 'published'
      AND ($1::text IS NULL
           OR c.search_doc @@ websearch_to_tsquery('simple', $1)
           OR c.search_text ILIKE $2)
      AND ($3::text IS NULL OR c.category = $3)
      AND ($4::bigint IS NULL OR c.host_id = $4)
      AND (($5::timestamptz IS NULL AND $6::timestamptz IS NULL AND NOT $7) OR fs.first_start IS NOT NULL)
) page
WHERE $9::float8 IS NULL OR (page.sort_key, page.id) > ($9, $10)
ORDER BY page.sort_key, page.id
LIMIT $11";

fn escape_like(term: &str) -> String {
    term.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Checks and normalises the filter's free-text parts.
pub fn normalize(mut f: Filter) -> AppResult<Filter> {
    f.text = f.text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
    if f.text.as_ref().is_some_and(|t| t.chars().count() > 200) {
        return Err(AppError::bad_input(
            "filter.text",
            "must be at most 200 characters",
        ));
    }
    f.category = f
        .category
        .map(|c| c.trim().to_lowercase())
        .filter(|c| !c.is_empty());
    if let (Some(from), Some(before)) = (f.starts_from, f.starts_before)
        && from >= before
    {
        return Err(AppError::bad_input(
            "filter.startsBefore",
            "must be after startsFrom",
        ));
    }
    Ok(f)
}

/// One page (`limit + 1` rows: the extra one tells that there is a next page).
pub async fn search(
    conn: &mut AsyncPgConnection,
    f: &Filter,
    after: Option<Cursor>,
    limit: i64,
) -> AppResult<Vec<Hit>> {
    let like = f.text.as_deref().map(|t| format!("%{}%", escape_like(t)));
    Ok(diesel::sql_query(SQL)
        .bind::<Nullable<Text>, _>(f.text.as_deref())
        .bind::<Nullable<Text>, _>(like)
        .bind::<Nullable<Text>, _>(f.category.as_deref())
        .bind::<Nullable<BigInt>, _>(f.host_id)
        .bind::<Nullable<Timestamptz>, _>(f.starts_from)
        .bind::<Nullable<Timestamptz>, _>(f.starts_before)
        .bind::<Bool, _>(f.only_available)
        .bind::<Bool, _>(f.sort == ConcertSort::Relevance)
        .bind::<Nullable<Double>, _>(after.map(|c| c.key))
        .bind::<Nullable<BigInt>, _>(after.map(|c| c.id))
        .bind::<BigInt, _>(limit + 1)
        .load(conn)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pagination;

    #[test]
    fn cursors_keep_their_key_exactly() {
        // Relevance keys are `real`s widened to float8; many of them do not survive a
        // decimal round trip through serde_json.
        for i in 1..2000u32 {
            let key = -f64::from(f32::from_bits(0x3e00_0000 + i * 7919));
            let start = 1.8e9 + f64::from(i) * 0.123_457;
            for key in [key, start, 1e15] {
                let c = Cursor {
                    key,
                    id: i64::from(i),
                };
                let back = pagination::decode::<Cursor>(Some(&pagination::encode(c))).unwrap();
                assert_eq!(back.map(|b| b.key.to_bits()), Some(key.to_bits()));
            }
        }
    }

    #[test]
    fn text_is_trimmed_and_bounded() {
        let f = normalize(Filter {
            text: Some("  jazz ".into()),
            category: Some(" Rock ".into()),
            ..Filter::default()
        })
        .unwrap();
        assert_eq!(f.text.as_deref(), Some("jazz"));
        assert_eq!(f.category.as_deref(), Some("rock"));
        assert!(
            normalize(Filter {
                text: Some("x".repeat(201)),
                ..Filter::default()
            })
            .is_err()
        );
        assert_eq!(escape_like("100%_\\"), "100\\%\\_\\\\");
    }
}
