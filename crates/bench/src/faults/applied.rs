//! What the database says took effect: the reservations made by the holds and the orders
//! (by idempotency key), and the paid ones.

use super::*;

/// What the database says took effect.
pub(super) struct Applied<'a> {
    /// (user, key) of the holds' reservations.
    pub(super) holds: &'a HashSet<(i64, String)>,
    /// (user, key) of the orders' reservations.
    pub(super) orders: &'a HashSet<(i64, String)>,
    /// Paid reservations of the holds' schedule.
    pub(super) paid: &'a HashSet<i64>,
}

impl Applied<'_> {
    /// Whether the request took effect (a queue entry is never counted: entering again
    /// keeps a place, so an entry answered UNAVAILABLE may stand, by design).
    pub(super) fn took(&self, a: &Attempt) -> bool {
        match a.kind {
            Kind::Hold => self.holds.contains(&(a.user_id, a.key.clone())),
            Kind::Order => self.orders.contains(&(a.user_id, a.key.clone())),
            Kind::Pay => a.reference.is_some_and(|r| self.paid.contains(&r)),
            Kind::Enter => false,
        }
    }
}

/// The paid reservations of the schedule.
pub(super) async fn paid(conn: &mut AsyncPgConnection, schedule_id: i64) -> anyhow::Result<HashSet<i64>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let rows: Vec<Row> =
        diesel::sql_query("SELECT id FROM reservations WHERE schedule_id = $1 AND paid_at IS NOT NULL")
            .bind::<BigInt, _>(schedule_id)
            .load(conn)
            .await
            .context("reading the paid reservations")?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// (user, idempotency key) of every reservation of the schedule.
pub(super) async fn keys_taken(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
) -> anyhow::Result<HashSet<(i64, String)>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        user_id: i64,
        #[diesel(sql_type = Nullable<Text>)]
        idempotency_key: Option<String>,
    }
    let rows: Vec<Row> =
        diesel::sql_query("SELECT user_id, idempotency_key FROM reservations WHERE schedule_id = $1")
            .bind::<BigInt, _>(schedule_id)
            .load(conn)
            .await
            .context("reading the reservations")?;
    Ok(rows
        .into_iter()
        .filter_map(|r| Some((r.user_id, r.idempotency_key?)))
        .collect())
}
