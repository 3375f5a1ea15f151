//! Accounts' current roles read in batches (`auth::roles`): every guarded mutation reads
//! its account's role, and a rush of first mutations from as many accounts (a queue
//! opening) read one by one cost a pooled checkout and a query each: entering the queue
//! fell from about 17,900 to 6,700 a second (docs/performance.md). Asks made while a read
//! waits go out together, and each still gets its own account's answer.

use std::time::Duration;

use boxoffice::{auth::Role, auth::roles::CurrentRoles, db};

use crate::{
    common::TestApp,
    pool::{TIMEOUTS, pool as pool_of_one},
};

#[tokio::test]
async fn roles_asked_while_a_read_waits_go_out_together_each_with_its_own_answer() {
    let app = TestApp::spawn().await;
    let fan = app.sign_up("fan@example.com").await;
    let host = app.user_with_role("host@example.com", "host").await;
    let admin = app.user_with_role("admin@example.com", "admin").await;
    let gone = app.sign_up("gone@example.com").await;
    app.count(&format!(
        "WITH d AS (DELETE FROM users WHERE id = {} RETURNING 1) SELECT count(*) AS n FROM d",
        gone.id
    ))
    .await;
    let accounts = [
        (fan.id, Some(Role::User)),
        (host.id, Some(Role::Host)),
        (admin.id, Some(Role::Admin)),
        (gone.id, None),
    ];

    let pool = pool_of_one(&app.db).await;
    let roles = std::sync::Arc::new(CurrentRoles::start(pool.clone()));
    // The pool's one connection is busy: the first reads wait for it, and every ask made
    // meanwhile waits for the next read.
    let busy = pool.get().await.unwrap();
    let asks: Vec<_> = (0..200)
        .map(|i| {
            let (id, want) = accounts[i % accounts.len()];
            let roles = roles.clone();
            tokio::spawn(async move { (roles.of(id).await.unwrap(), want) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        asks.iter().all(|a| !a.is_finished()),
        "answered without the database"
    );
    drop(busy);
    for ask in asks {
        let (got, want) = ask.await.unwrap();
        assert_eq!(got, want);
    }
    // The read that started before the connection came free, then one for everything
    // asked meanwhile.
    assert!(roles.reads() <= 2, "{} reads for 200 asks", roles.reads());

    // Later asks are read again, not remembered: a role changed since is seen.
    app.set_role(fan.id, "host").await;
    assert_eq!(roles.of(fan.id).await.unwrap(), Some(Role::Host));
}

#[tokio::test]
async fn a_reader_whose_connection_was_closed_answers_the_next_ask_on_another() {
    let app = TestApp::spawn().await;
    let fan = app.sign_up("fan@example.com").await;
    let roles = CurrentRoles::start(pool_of_one(&app.db).await);
    assert_eq!(roles.of(fan.id).await.unwrap(), Some(Role::User));
    // Every other session of the database closed, the reader's included, as a primary
    // shutting down does (57P01).
    let closed = app.close_other_sessions().await;
    assert!(closed >= 1, "the reader's connection was not found");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(roles.of(fan.id).await.unwrap(), Some(Role::User));
}

#[tokio::test]
async fn when_the_database_cannot_be_reached_every_ask_waiting_is_told_unavailable() {
    // Nothing listens on port 1: the pool's checkout fails after its timeout (5 s).
    let pool = db::connect_pool(
        "postgres://postgres@127.0.0.1:1/none",
        db::PoolSettings {
            size: 1,
            timeouts: &TIMEOUTS,
        },
    )
    .await
    .unwrap();
    let roles = std::sync::Arc::new(CurrentRoles::start(pool));
    let asks: Vec<_> = (0..20)
        .map(|i| {
            let roles = roles.clone();
            tokio::spawn(async move { roles.of(i).await })
        })
        .collect();
    for ask in asks {
        let err = ask.await.unwrap().expect_err("answered without a database");
        assert_eq!(err.code().as_str(), "UNAVAILABLE", "{err:?}");
    }
}
