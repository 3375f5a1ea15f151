//! A hold batch's BEGIN goes out with its load (`crates/store/src/db/pipelined.rs`), not in
//! a round trip of its own: on a machine serving a sale, each round trip waited 1-3 ms for
//! both processes to be scheduled, and a sale's batches run one after another.
//!
//! A proxy between the server and PostgreSQL cuts what the server sends into flights: the
//! bytes sent between two answers of the server, which is what a round trip costs.

use std::sync::{Arc, Mutex, PoisonError};

use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use diesel_async::RunQueryDsl as _;

use crate::common::{TestApp, TestDb, contains_bytes, layout};

/// What the server sent PostgreSQL, one entry per flight, over every connection.
#[derive(Clone, Default)]
struct Flights(Arc<Mutex<Vec<Vec<u8>>>>);

impl Flights {
    fn all(&self) -> Vec<Vec<u8>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

async fn proxy(flights: Flights) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            tokio::spawn(connection(inbound, flights.clone()));
        }
    });
    addr
}

/// Forwards one connection; bytes from the server end the client's current flight.
async fn connection(inbound: tokio::net::TcpStream, flights: Flights) {
    let Ok(outbound) = tokio::net::TcpStream::connect("127.0.0.1:5432").await else {
        return;
    };
    let (mut from_client, mut to_client) = inbound.into_split();
    let (mut from_server, mut to_server) = outbound.into_split();
    // Where this connection's current flight is in `flights`, until the server answers.
    let current: Arc<Mutex<Option<usize>>> = Arc::default();
    let answered = current.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = from_server.read(&mut buf).await {
            // Answers arrive a little late, as over a network: what the server sends without
            // waiting for one cannot be cut into two flights by the scheduler's timing.
            tokio::time::sleep(ANSWER_DELAY).await;
            *answered.lock().unwrap_or_else(PoisonError::into_inner) = None;
            if to_client.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n @ 1..) = from_client.read(&mut buf).await {
        {
            let mut all = flights.0.lock().unwrap_or_else(PoisonError::into_inner);
            let mut current = current.lock().unwrap_or_else(PoisonError::into_inner);
            match *current {
                Some(i) => all[i].extend_from_slice(&buf[..n]),
                None => {
                    *current = Some(all.len());
                    all.push(buf[..n].to_vec());
                }
            }
        }
        if to_server.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

const ANSWER_DELAY: std::time::Duration = std::time::Duration::from_millis(5);

/// A simple-protocol `BEGIN` (Query message: 'Q', its length, the text and a NUL).
const BEGIN: &[u8] = b"Q\0\0\0\x0aBEGIN\0";
/// The schedule lock's statement: the first statement of a batch's load. On a connection's
/// first batch it is prepared, so its text goes out (later batches send only its name).
const LOCK: &[u8] = b"FOR UPDATE OF s";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_batchs_begin_goes_out_with_its_load() {
    let flights = Flights::default();
    let addr = proxy(flights.clone()).await;
    let app = TestApp::spawn_behind(addr).await;
    let show = app.show(layout(1, 4), 4).await;
    let fan = app.sign_up("one-flight@example.com").await;
    let body = app
        .ok(
            Some(&fan.access),
            "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { status } }",
            json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[0]] } }),
        )
        .await;
    assert_eq!(body["reserveSeats"]["status"], "HELD", "{body}");

    let sent = flights.all();
    let load = sent
        .iter()
        .position(|f| contains_bytes(f, LOCK))
        .expect("the batch's lock statement went through the proxy");
    assert!(
        contains_bytes(&sent[load], BEGIN),
        "the batch's BEGIN was not in its load's flight: it cost a round trip of its own \
         (flight before the load: {:?})",
        String::from_utf8_lossy(&sent[load.saturating_sub(1)])
    );
    app.assert_invariants().await;
}

#[derive(diesel::QueryableByName, PartialEq, Eq, Debug)]
struct Txid {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    txid: i64,
}

/// The transaction's id as one statement of it sees it, kept prepared (as the batch's are).
async fn txid(mut conn: &diesel_async::AsyncPgConnection) -> diesel::QueryResult<Txid> {
    boxoffice::db::Prepared(diesel::sql_query("SELECT txid_current() AS txid"))
        .get_result(&mut conn)
        .await
}

#[derive(diesel::QueryableByName)]
struct Status {
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
}

/// What became of a transaction: committed, aborted or in progress.
async fn status(conn: &mut diesel_async::AsyncPgConnection, txid: i64) -> String {
    diesel::sql_query("SELECT txid_status($1) AS status")
        .bind::<diesel::sql_types::BigInt, _>(txid)
        .get_result::<Status>(conn)
        .await
        .unwrap()
        .status
}

/// BEGIN goes before a statement the connection has prepared already (sent at once, where
/// a new one waits for its Parse), so both statements run in the one transaction; ROLLBACK
/// and COMMIT end it as diesel-async's own would; and a transaction dropped midway leaves the
/// connection marked for the pool to throw away.
#[tokio::test]
async fn a_pipelined_transaction_begins_before_its_statements_and_ends_as_diesels() {
    use boxoffice::db::pipelined;
    use diesel_async::{
        AnsiTransactionManager, AsyncConnection as _, AsyncPgConnection, TransactionManager as _,
    };

    let db = TestDb::new().await;
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    let outside = txid(&conn).await.unwrap();
    for end in [Err(diesel::result::Error::RollbackTransaction), Ok(())] {
        pipelined::open(&mut conn).unwrap();
        let (begun, first, second) = futures_util::join!(pipelined::begin(&conn), txid(&conn), txid(&conn));
        begun.unwrap();
        let (first, second) = (first.unwrap(), second.unwrap());
        assert_eq!(first, second, "two statements of one transaction");
        assert_ne!(first, outside);
        let ended = format!("{end:?}");
        let expected = if end.is_ok() { "committed" } else { "aborted" };
        let _ = pipelined::close(&mut conn, end).await;
        assert_eq!(status(&mut conn, first.txid).await, expected, "after {ended}");
        assert!(
            !AnsiTransactionManager::is_broken_transaction_manager(&mut conn),
            "after {ended} the connection is as good as new"
        );
        // Out of the transaction: each statement is its own again.
        assert_ne!(txid(&conn).await.unwrap(), txid(&conn).await.unwrap());
    }
    pipelined::open(&mut conn).unwrap();
    assert!(
        AnsiTransactionManager::is_broken_transaction_manager(&mut conn),
        "a transaction opened and dropped before its end: the pool must not lend this connection"
    );
}
