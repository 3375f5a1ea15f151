//! The hold batch's statements are kept prepared on their connection
//! (crates/store/src/db/prepared.rs): parsed and planned once per connection, not at every
//! batch. And because they name their columns, a cached one survives a migration that adds
//! a column while the server runs (PostgreSQL refuses a cached plan whose result changed).

use diesel::{QueryableByName, sql_types::Text};
use diesel_async::RunQueryDsl;
use serde_json::json;

use crate::common::{Session, Show, TestApp, layout};

const RESERVE: &str = "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id status } }";

/// Holds seat `i` with an idempotency key, so that every statement of the batch runs (the
/// key lock and the read of used keys included).
async fn hold(app: &TestApp, who: &Session, show: &Show, i: usize) {
    let key = uuid::Uuid::new_v4().to_string();
    let body = app
        .ok(
            Some(&who.access),
            RESERVE,
            json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[i]], "idempotencyKey": key } }),
        )
        .await;
    assert_eq!(body["reserveSeats"]["status"], "HELD", "{body}");
}

#[derive(QueryableByName)]
struct Statement {
    #[diesel(sql_type = Text)]
    statement: String,
}

/// A piece of each statement of the batch: the schedule lock's read, the key locks, the
/// seats, the users, the keys already used, and the write.
const BATCH: [&str; 6] = [
    "txid_current() AS txid",
    "pg_advisory_xact_lock(1651470187",
    "FROM seats s JOIN seat_grades g",
    "AS p(schedule_id, user_id)",
    "AS k(user_id, key)",
    "nextval('reservations_id_seq')",
];

#[tokio::test]
async fn a_connection_prepares_the_hold_batchs_statements_once_and_reuses_them() {
    // One pooled connection, so every batch and the check below share it.
    let app = TestApp::spawn_with(&[("DATABASE_POOL_SIZE", "1")]).await;
    let show = app.show(layout(1, 6), 4).await;
    let fan = app.sign_up("fan@example.com").await;
    for i in 0..3 {
        hold(&app, &fan, &show, i).await;
    }
    let mut conn = app.state.db.get().await.unwrap();
    let prepared: Vec<Statement> = diesel::sql_query("SELECT statement FROM pg_prepared_statements")
        .load(&mut *conn)
        .await
        .unwrap();
    for piece in BATCH {
        let found = prepared.iter().filter(|s| s.statement.contains(piece)).count();
        // None: prepared and closed at every batch. More than one: prepared anew.
        assert_eq!(found, 1, "statements holding {piece:?} kept on the connection");
    }
}

#[tokio::test]
async fn a_prepared_batch_survives_a_migration_that_adds_columns() {
    let app = TestApp::spawn_with(&[("DATABASE_POOL_SIZE", "1")]).await;
    let show = app.show(layout(1, 6), 4).await;
    let fan = app.sign_up("fan@example.com").await;
    hold(&app, &fan, &show, 0).await;
    {
        // What a newer instance's migration does while this one runs.
        let mut conn = app.state.db.get().await.unwrap();
        for table in ["reservations", "schedules"] {
            diesel::sql_query(format!("ALTER TABLE {table} ADD COLUMN added_later int"))
                .execute(&mut *conn)
                .await
                .unwrap();
        }
    }
    // With `made.*` or `s.*`, PostgreSQL would answer "cached plan must not change result
    // type" here, and at every batch on this connection after.
    hold(&app, &fan, &show, 1).await;
    hold(&app, &fan, &show, 2).await;
}
