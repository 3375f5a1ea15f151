//! Every write but booking's (money, the door, a host's and an admin's edits) runs through
//! `in_doubt::write`: a reply deadline, and a `write_marks` row that settles a COMMIT whose
//! answer was lost. Played through `commit_lost`'s proxy, which cuts the first COMMIT of a
//! transaction that sent the marker once it is armed: answer lost after PostgreSQL
//! committed (the answer must be the write's), or the COMMIT never sent (UNAVAILABLE, and
//! nothing written).

use std::time::{Duration, Instant};

use diesel_async::RunQueryDsl;
use serde_json::{Value, json};

use crate::{
    commit_lost::{CHARGE, Cut, app_behind, through_the_cut},
    common::{Session, TestApp, code},
    faults::{behind_a_proxy, frozen_peer_locking},
};

/// The ledger entry every credit and adjustment writes (`points::store::apply`).
const LEDGER: &[u8] = b"INSERT INTO point_ledger (user_id, kind, amount, balance_after, reservation_id";
/// A new concert (diesel's insert).
const NEW_CONCERT: &[u8] = b"INSERT INTO \"concerts\"";

const ADJUST: &str = "mutation($u: ID!, $a: Int!) { adjustPoints(userId: $u, amount: $a, reason: \"goodwill\") { balanceAfter } }";
const CREATE_CONCERT: &str = "mutation($i: ConcertInput!) { createConcert(input: $i) { id title } }";

async fn points(app: &TestApp, user: &Session) -> i64 {
    app.count(&format!("SELECT points AS n FROM users WHERE id = {}", user.id))
        .await
}

fn answered(body: &Value, write: &str) {
    assert!(
        body["errors"].is_null(),
        "a committed {write} answered as an error (I9): {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_adjustment_whose_commit_answer_is_lost_is_answered_as_made() {
    let (app, trap) = app_behind(Cut::AfterCommit, LEDGER).await;
    let fan = app.sign_up("adjusted@example.com").await;
    let admin = app.user_with_role("grants@example.com", "admin").await;
    let body = through_the_cut(
        &app,
        &trap,
        &admin,
        ADJUST,
        json!({ "u": fan.id.to_string(), "a": 250 }),
    )
    .await;
    assert_eq!(
        points(&app, &fan).await,
        250,
        "PostgreSQL committed the adjustment: {body}"
    );
    answered(&body, "adjustment");
    assert_eq!(body["data"]["adjustPoints"]["balanceAfter"], 250, "{body}");
    app.assert_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_adjustment_whose_commit_never_arrived_is_unavailable_and_nothing_is_written() {
    let (app, trap) = app_behind(Cut::BeforeCommit, LEDGER).await;
    let fan = app.sign_up("unadjusted@example.com").await;
    let admin = app.user_with_role("no-grant@example.com", "admin").await;
    let vars = json!({ "u": fan.id.to_string(), "a": 250 });
    let tables = ["point_ledger", "audit_log", "write_marks"];
    let mut before = Vec::new();
    for table in tables {
        before.push(app.count(&format!("SELECT count(*) AS n FROM {table}")).await);
    }
    let body = through_the_cut(&app, &trap, &admin, ADJUST, vars.clone()).await;
    assert_eq!(code(&body), "UNAVAILABLE", "{body}");
    assert_eq!(points(&app, &fan).await, 0, "nothing was granted: {body}");
    for (table, before) in tables.into_iter().zip(before) {
        let n = app.count(&format!("SELECT count(*) AS n FROM {table}")).await;
        assert_eq!(n, before, "{table} kept a row of a write that never committed");
    }
    // UNAVAILABLE meant "nothing happened": the admin's retry grants once.
    let again = app.ok(Some(&admin.access), ADJUST, vars).await;
    assert_eq!(again["adjustPoints"]["balanceAfter"], 250);
    app.assert_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_top_up_whose_commit_answer_is_lost_is_answered_as_credited() {
    let (app, trap) = app_behind(Cut::AfterCommit, LEDGER).await;
    let fan = app.sign_up("topped-up@example.com").await;
    let body = through_the_cut(&app, &trap, &fan, CHARGE, json!({ "a": 700, "k": "top-up-1" })).await;
    assert_eq!(
        points(&app, &fan).await,
        700,
        "PostgreSQL committed the top-up: {body}"
    );
    answered(&body, "top-up");
    assert_eq!(body["data"]["chargePoints"]["balanceAfter"], 700, "{body}");
    // The same key again is the same top-up, credited once.
    let again = app
        .ok(Some(&fan.access), CHARGE, json!({ "a": 700, "k": "top-up-1" }))
        .await;
    assert_eq!(again["chargePoints"]["balanceAfter"], 700);
    assert_eq!(points(&app, &fan).await, 700);
    app.assert_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_concert_whose_commit_answer_is_lost_is_answered_with_the_concert() {
    let (app, trap) = app_behind(Cut::AfterCommit, NEW_CONCERT).await;
    let host = app.user_with_role("lost-concert@example.com", "host").await;
    let input =
        json!({ "i": { "title": "Settled", "artist": "Quorum", "venue": "Hall", "category": "pop" } });
    let body = through_the_cut(&app, &trap, &host, CREATE_CONCERT, input).await;
    let made = app.count("SELECT count(*) AS n FROM concerts").await;
    assert_eq!(made, 1, "PostgreSQL committed the concert: {body}");
    answered(&body, "new concert");
    let id = app.count("SELECT id AS n FROM concerts").await;
    assert_eq!(body["data"]["createConcert"]["id"], id.to_string(), "{body}");
}

/// A transaction id committed after a failover may be another transaction's (the standby
/// promoted without the write's WAL hands it out again): a mark counts only with its time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mark_settles_only_the_write_that_made_it() {
    use boxoffice::in_doubt::negative_control::mark_settles_as_committed;

    let app = TestApp::spawn().await;
    let fan = app.sign_up("marked@example.com").await;
    let admin = app.user_with_role("marker@example.com", "admin").await;
    app.ok(
        Some(&admin.access),
        ADJUST,
        json!({ "u": fan.id.to_string(), "a": 5 }),
    )
    .await;
    let txid = app.count("SELECT max(txid) AS n FROM write_marks").await;
    let micros = app
        .count(&format!(
            "SELECT (extract(epoch FROM at) * 1000000)::bigint AS n FROM write_marks WHERE txid = {txid}"
        ))
        .await;
    let at = chrono::DateTime::from_timestamp_micros(micros).unwrap();
    let db = &app.state.db;
    assert!(
        mark_settles_as_committed(db, txid, at).await,
        "the write's own mark"
    );
    assert!(
        !mark_settles_as_committed(db, txid, at - chrono::Duration::milliseconds(3)).await,
        "a reused transaction id was taken for the write's commit"
    );
    assert!(
        !mark_settles_as_committed(db, txid + 1_000_000, at).await,
        "an id past the server's history"
    );
}

/// Marks are needed only while a write settles (seconds): later writes delete those older
/// than five minutes, so the table holds a few minutes of writes with no task of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn later_writes_prune_old_marks() {
    let app = TestApp::spawn().await;
    let fan = app.sign_up("pruned@example.com").await;
    let admin = app.user_with_role("pruner@example.com", "admin").await;
    let written = app
        .count(
            "WITH w AS (INSERT INTO write_marks (txid, at)
               SELECT g, now() - interval '10 minutes' FROM generate_series(1, 5) g
               UNION ALL SELECT 99, now() - interval '1 minute' RETURNING 1)
             SELECT count(*) AS n FROM w",
        )
        .await;
    assert_eq!(written, 6);
    app.ok(
        Some(&admin.access),
        ADJUST,
        json!({ "u": fan.id.to_string(), "a": 5 }),
    )
    .await;
    let old = "SELECT count(*) AS n FROM write_marks WHERE at < now() - interval '5 minutes'";
    assert_eq!(app.count(old).await, 0, "marks past anyone's settling stay");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM write_marks WHERE txid = 99")
            .await,
        1,
        "a mark a write may still settle by was pruned"
    );
    assert!(app.count("SELECT count(*) AS n FROM write_marks").await >= 2);
}

/// A partition between an instance and PostgreSQL that holds the bytes catches an admin's
/// adjustment while it waits for the account's row lock: UNAVAILABLE within the reply
/// timeout (2 s on that instance) instead of the partition's length, nothing granted, and
/// the admin's retry grants once when the network is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_adjustment_caught_by_a_database_partition_answers_within_its_reply_timeout() {
    let app = TestApp::spawn().await;
    let fan = app.sign_up("partitioned@example.com").await;
    let admin = app.user_with_role("partition-admin@example.com", "admin").await;
    let (proxy, far) = behind_a_proxy(&app).await;
    let vars = json!({ "u": fan.id.to_string(), "a": 40 });
    let mut peer = frozen_peer_locking(&app, "users", &fan.id.to_string()).await;
    let started = Instant::now();
    let caught = tokio::time::timeout(
        Duration::from_secs(8),
        far.gql(Some(&admin.access), ADJUST, vars.clone()),
    );
    let (answer, ()) = tokio::join!(caught, async {
        let waiting = Instant::now();
        while app.lock_waiters().await == 0 {
            assert!(
                waiting.elapsed() < Duration::from_secs(10),
                "the adjustment never waited for the account's lock"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        proxy.partition();
    });
    let took = started.elapsed();
    let answer = answer.expect("the adjustment waited out the partition instead of its reply timeout");
    assert_eq!(code(&answer), "UNAVAILABLE", "{answer}");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(8),
        "answered after {took:?}: the reply timeout is 2 s"
    );
    diesel::sql_query("COMMIT").execute(&mut peer).await.unwrap();
    assert_eq!(points(&app, &fan).await, 0, "nothing was granted: {answer}");

    proxy.restore();
    let back = Instant::now();
    loop {
        let again = far.gql(Some(&admin.access), ADJUST, vars.clone()).await;
        if again["errors"].is_null() {
            assert_eq!(again["data"]["adjustPoints"]["balanceAfter"], 40, "{again}");
            break;
        }
        assert_eq!(code(&again), "UNAVAILABLE", "{again}");
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "no adjustment after the partition: {again}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(points(&app, &fan).await, 40, "granted once");
    app.assert_invariants().await;
}

/// Every write goes through `in_doubt::write` or settles by a witness of its own: a new
/// `conn.transaction(...)` elsewhere would answer UNAVAILABLE for a COMMIT that may have
/// taken effect (I9). The places that open a transaction themselves (diesel-async's, or one
/// whose BEGIN is pipelined: `db::pipelined`), and why; a new one fails here until it is
/// converted or added with its reason.
#[test]
fn every_transaction_settles_its_commit_or_says_why_not() {
    const OWN: &[(&str, usize, &str)] = &[
        ("crates/services/src/in_doubt.rs", 1, "the mechanism itself"),
        (
            "crates/services/src/booking/reserve/mod.rs",
            1,
            "the hold batch: its transaction id and a reservation it wrote",
        ),
        (
            "crates/services/src/booking/lifecycle.rs",
            3,
            "payment and release (paid_at, cancelled_at); the sweeper's expiry answers nobody and runs again",
        ),
        (
            "crates/services/src/auth/service.rs",
            1,
            "create-admin, a command its operator runs again",
        ),
        (
            "crates/outbox/src/relay.rs",
            1,
            "a delivery's outcome, answered to nobody; its claim runs out and it is sent again",
        ),
        (
            "crates/outbox/src/relay/fan_out.rs",
            1,
            "the relay's fan-out, answered to nobody; events stay unrelayed and go out again",
        ),
    ];
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = std::collections::BTreeMap::new();
    let mut dirs = vec![root.join("src"), root.join("crates")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if !path.ends_with("tests") {
                    dirs.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let n = text
                    .lines()
                    .filter(|l| {
                        !l.trim_start().starts_with("//")
                            && (l.contains(".transaction(") || l.contains("pipelined::open("))
                    })
                    .count();
                if n > 0 {
                    let name = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                    found.insert(name, n);
                }
            }
        }
    }
    let expected: std::collections::BTreeMap<String, usize> =
        OWN.iter().map(|(f, n, _)| ((*f).to_owned(), *n)).collect();
    assert_eq!(
        found, expected,
        "a transaction outside in_doubt::write: convert it, or list it here with why its COMMIT needs no settling"
    );
}
