//! How the tables are stored where it decides the speed of booking.

use crate::common::TestApp;

/// A booking batch changes `status` and `reservation_id` of every seat it claims. As long as
/// no index of `seats` covers either column (or names one in its predicate) and pages keep
/// free room, PostgreSQL makes those HOT updates: the row changes in place, and no index
/// gets a new entry. An index added on either column would quietly cost every batch four
/// index insertions per seat.
#[tokio::test]
async fn seat_claims_stay_hot_updates() {
    let app = TestApp::spawn().await;
    let covering = app
        .count(
            "SELECT count(*) AS n FROM pg_index i
             WHERE i.indrelid = 'seats'::regclass
               AND pg_get_indexdef(i.indexrelid) ~ '\\m(status|reservation_id)\\M'",
        )
        .await;
    assert_eq!(
        covering, 0,
        "an index of seats covers a column that booking changes"
    );
    let room = app
        .count(
            "SELECT count(*) AS n FROM pg_class
             WHERE oid = 'seats'::regclass AND 'fillfactor=70' = ANY(reloptions)",
        )
        .await;
    assert_eq!(room, 1, "seats pages keep no room for HOT updates");
}
