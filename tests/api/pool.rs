//! The connection pool's discard rule (crates/store/src/db.rs): a pooled connection whose server stopped
//! taking writes (a demoted primary, a standby reached by a multi-host URL) or that was
//! closed is never handed out again. The failover itself
//! (Patroni) is exercised by `scripts/ha failover`, outside cargo test.

use std::time::Duration;

use boxoffice::{config::DatabaseTimeouts, db};
use diesel::{QueryableByName, sql_types::Integer};
use diesel_async::RunQueryDsl;

use crate::common::TestDb;

pub(crate) const TIMEOUTS: DatabaseTimeouts = DatabaseTimeouts {
    lock: Duration::from_secs(3),
    statement: Duration::from_secs(30),
    idle_in_transaction: Duration::from_secs(5),
    keepalive_idle: Duration::from_secs(10),
};

/// A pool of one connection on the test database (`role_reads` uses it too).
pub(crate) async fn pool(db: &TestDb) -> db::Pool {
    db::connect_pool(
        &db.url,
        db::PoolSettings {
            size: 1,
            timeouts: &TIMEOUTS,
        },
    )
    .await
    .unwrap()
}

#[derive(QueryableByName)]
struct Pid {
    #[diesel(sql_type = Integer)]
    pid: i32,
}

async fn backend_pid(conn: &mut diesel_async::AsyncPgConnection) -> i32 {
    diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result::<Pid>(conn)
        .await
        .unwrap()
        .pid
}

#[tokio::test]
async fn a_connection_whose_server_turned_read_only_is_dropped_not_reused() {
    let db = TestDb::new().await;
    let pool = pool(&db).await;
    let first = {
        let mut conn = pool.get().await.unwrap();
        // What a demoted primary looks like from an open session: every transaction is
        // read-only from now on.
        diesel::sql_query("SET SESSION default_transaction_read_only = on")
            .execute(&mut *conn)
            .await
            .unwrap();
        backend_pid(&mut conn).await
    };
    let mut conn = pool.get().await.unwrap();
    assert_ne!(
        backend_pid(&mut conn).await,
        first,
        "the read-only connection came back"
    );
    diesel::sql_query("CREATE TABLE pool_probe (id int)")
        .execute(&mut *conn)
        .await
        .expect("the connection handed out takes writes");
}

#[tokio::test]
async fn a_write_on_a_read_only_server_answers_unavailable() {
    let db = TestDb::new().await;
    let pool = pool(&db).await;
    let mut conn = pool.get().await.unwrap();
    diesel::sql_query("SET SESSION default_transaction_read_only = on")
        .execute(&mut *conn)
        .await
        .unwrap();
    let err = diesel::sql_query("CREATE TABLE pool_probe (id int)")
        .execute(&mut *conn)
        .await
        .unwrap_err();
    // Nothing was written, and the next connection may reach the new primary: retryable.
    let app = boxoffice::error::AppError::from(err);
    assert_eq!(app.code(), boxoffice::error::ErrorCode::Unavailable, "{app:?}");
}

#[tokio::test]
async fn a_connection_closed_by_the_server_is_replaced() {
    let db = TestDb::new().await;
    let pool = pool(&db).await;
    let first = {
        let mut conn = pool.get().await.unwrap();
        backend_pid(&mut conn).await
    };
    // As a primary shutting down does to its sessions (57P01, admin shutdown).
    let mut admin = pool.dedicated_connection().await.unwrap();
    diesel::sql_query(format!("SELECT pg_terminate_backend({first})"))
        .execute(&mut admin)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut conn = pool.get().await.unwrap();
    assert_ne!(backend_pid(&mut conn).await, first);
}
