//! The hold write's pointers (a reservation's schedule, its seat rows' reservation and seat,
//! a seat's reservation) carry no foreign key since migration `hold_pointers`: the write
//! checks them itself, and the invariant checks count any that points nowhere. Each pointer
//! is broken here by hand, as a writer that forgot the rules would, and must be counted;
//! with the keys in place PostgreSQL refused these writes (this test failed on them).
//! The writers that could leave such rows (a layout replaced after dead reservations, a
//! seat asked for that does not exist) are covered in `show_edit` and `booking`.

use serde_json::json;

use crate::common::{TestApp, layout};

const HOLD: &str = "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }";

/// A show of four seats and a fan's hold of its first `seats`: the show and the hold's id.
async fn held(app: &TestApp, seats: usize) -> (crate::common::Show, String) {
    let show = app.show(layout(1, 4), 4).await;
    let fan = app.sign_up("fan@example.com").await;
    let held = app
        .ok(
            Some(&fan.access),
            HOLD,
            json!({ "i": { "scheduleId": show.schedule_id, "seatIds": show.seats[..seats] } }),
        )
        .await;
    let rid = held["reserveSeats"]["id"].as_str().unwrap().to_owned();
    (show, rid)
}
const SEAT_ROW: &str = "I7: a reservation's seat row names a reservation or seat that does not exist";

/// Runs `sql` (one UPDATE or INSERT of one row, with `RETURNING 1`) and checks it wrote it.
async fn write_one(app: &TestApp, sql: &str) {
    let n = app
        .count(&format!(
            "WITH w AS ({sql} RETURNING 1) SELECT count(*) AS n FROM w"
        ))
        .await;
    assert_eq!(n, 1, "{sql}");
}

#[tokio::test]
async fn a_hold_pointer_that_points_nowhere_is_a_violation() {
    let app = TestApp::spawn().await;
    let (show, rid) = held(&app, 2).await;
    let (seat, free) = (&show.seats[0], &show.seats[2]);
    app.assert_invariants().await;
    let nowhere = app
        .count("SELECT greatest((SELECT max(id) FROM reservations), (SELECT max(id) FROM seats), (SELECT max(id) FROM schedules)) + 1000 AS n")
        .await;
    let (schedule, rid) = (&show.schedule_id, &rid);
    // (what breaks a pointer, the check that must count it, what mends it)
    let breaks = [
        (
            format!(
                "INSERT INTO reservation_seats (reservation_id, seat_id, grade_name, price) VALUES ({nowhere}, {free}, 'A', 0)"
            ),
            SEAT_ROW,
            format!("DELETE FROM reservation_seats WHERE reservation_id = {nowhere}"),
        ),
        (
            format!(
                "UPDATE reservation_seats SET seat_id = {nowhere} WHERE reservation_id = {rid} AND seat_id = {seat}"
            ),
            SEAT_ROW,
            format!(
                "UPDATE reservation_seats SET seat_id = {seat} WHERE reservation_id = {rid} AND seat_id = {nowhere}"
            ),
        ),
        (
            format!("UPDATE seats SET reservation_id = {nowhere} WHERE id = {seat}"),
            "I7: a held seat without a live reservation",
            format!("UPDATE seats SET reservation_id = {rid} WHERE id = {seat}"),
        ),
        (
            format!("UPDATE reservations SET schedule_id = {nowhere} WHERE id = {rid}"),
            "I7: a reservation of a schedule that does not exist",
            format!("UPDATE reservations SET schedule_id = {schedule} WHERE id = {rid}"),
        ),
    ];
    for (breaking, check, mending) in &breaks {
        write_one(&app, breaking).await;
        let found = app.violations_of(boxoffice::invariants::MORE).await;
        assert!(found.contains(check), "{breaking}: {found:?}");
        write_one(&app, mending).await;
        app.assert_invariants().await;
    }
}

/// Runs `sql` and checks that PostgreSQL refused it saying `why`.
async fn refused(app: &TestApp, sql: &str, why: &str) {
    let mut conn = app.state.db.get().await.unwrap();
    let e = diesel_async::RunQueryDsl::execute(diesel::sql_query(sql), &mut *conn)
        .await
        .expect_err(sql)
        .to_string();
    assert!(e.contains(why), "{sql}: {e}");
}

/// The other half of each key: what a hold names cannot be deleted (the triggers of
/// migration `hold_pointers`), while what nothing names still can.
#[tokio::test]
async fn what_a_hold_names_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    let (show, rid) = held(&app, 1).await;
    let (seat, free) = (&show.seats[0], &show.seats[3]);

    refused(
        &app,
        &format!("DELETE FROM seats WHERE id IN ({seat}, {free})"),
        "a row of seats that reservation_seats.seat_id names cannot be deleted",
    )
    .await;
    refused(
        &app,
        &format!("DELETE FROM reservations WHERE id = {rid}"),
        "a row of reservations that reservation_seats.reservation_id names cannot be deleted",
    )
    .await;
    // The schedule's seats go first (their key cascades) and are refused on their own.
    refused(
        &app,
        &format!("DELETE FROM schedules WHERE id = {}", show.schedule_id),
        "cannot be deleted",
    )
    .await;
    app.assert_invariants().await;

    // A seat nobody names goes, as before.
    write_one(&app, &format!("DELETE FROM seats WHERE id = {free}")).await;
    // A reservation whose seat rows went (by hand, breaking I7) is still refused while a
    // seat points at it.
    write_one(
        &app,
        &format!("DELETE FROM reservation_seats WHERE reservation_id = {rid}"),
    )
    .await;
    refused(
        &app,
        &format!("DELETE FROM reservations WHERE id = {rid}"),
        "a row of reservations that seats.reservation_id names cannot be deleted",
    )
    .await;
    // Its seats may go now, the schedule still not: a reservation names it.
    refused(
        &app,
        &format!("DELETE FROM schedules WHERE id = {}", show.schedule_id),
        "a row of schedules that reservations.schedule_id names cannot be deleted",
    )
    .await;
}

/// The one pointer of the hold write that keeps its key: an account can be deleted by an
/// operator at any moment, and only the key's lock on the user row orders that against a
/// batch writing a hold in its name.
#[tokio::test]
async fn an_account_with_a_reservation_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 2), 2).await;
    let fan = app.sign_up("fan@example.com").await;
    app.ok(
        Some(&fan.access),
        HOLD,
        json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[0]] } }),
    )
    .await;
    refused(
        &app,
        &format!("DELETE FROM users WHERE id = {}", fan.id),
        "foreign key",
    )
    .await;
    app.assert_invariants().await;
}

/// A second request at once: a seat deleted while a hold naming it is still in flight. The
/// trigger runs after the DELETE, so it is the hold's row lock on the seat (its claim)
/// that makes the DELETE wait; once the hold commits, the trigger's fresh read sees the
/// seat row and refuses.
#[tokio::test]
async fn a_delete_waiting_on_a_hold_in_flight_is_refused_once_it_commits() {
    let app = TestApp::spawn().await;
    let (show, rid) = held(&app, 1).await;
    let (free, schedule) = (&show.seats[3], &show.schedule_id);

    // The hold's writes, as its statement makes them, in a transaction left open.
    let mut writer = app.state.db.get().await.unwrap();
    for sql in [
        "BEGIN".to_owned(),
        format!("UPDATE seats SET status = 'held', reservation_id = {rid} WHERE id = {free}"),
        format!(
            "INSERT INTO reservation_seats (reservation_id, seat_id, grade_name, price) VALUES ({rid}, {free}, 'A', 0)"
        ),
        format!("UPDATE reservations SET seat_count = seat_count + 1 WHERE id = {rid}"),
        format!("UPDATE schedules SET booked_count = booked_count + 1 WHERE id = {schedule}"),
    ] {
        diesel_async::RunQueryDsl::execute(diesel::sql_query(&sql), &mut *writer)
            .await
            .unwrap();
    }
    let pool = app.state.db.clone();
    let delete = format!("DELETE FROM seats WHERE id = {free}");
    let deleting = tokio::spawn(async move {
        let mut conn = pool.get().await.unwrap();
        diesel_async::RunQueryDsl::execute(diesel::sql_query(&delete), &mut *conn)
            .await
            .map_err(|e| e.to_string())
    });
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while app.lock_waiters().await == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the DELETE did not wait for the hold");
    diesel_async::RunQueryDsl::execute(diesel::sql_query("COMMIT"), &mut *writer)
        .await
        .unwrap();
    drop(writer);
    let e = deleting
        .await
        .unwrap()
        .expect_err("a seat a committed hold names was deleted");
    assert!(
        e.contains("a row of seats that reservation_seats.seat_id names cannot be deleted"),
        "{e}"
    );
    app.assert_invariants().await;
}
