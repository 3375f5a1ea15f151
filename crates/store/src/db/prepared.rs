//! Raw SQL kept as a prepared statement on its connection.
//!
//! diesel never caches a `sql_query`: its text could be built anew at every call, so each
//! execution is parsed, analysed and planned again, and diesel-async prepares and closes a
//! statement for it every time. For the hold batch's statements that was most of
//! PostgreSQL's work in a sale of small batches: planning 19.5 % and parsing 9.5 % of both
//! cores, against 20.8 % running the statements (docs/performance.md, "where a small
//! batch's time goes"). [`Prepared`] marks a statement whose text is fixed as safe to
//! cache: diesel-async then keeps it per connection, keyed by its text and bind types.
//! PostgreSQL still plans it at every execution (for arrays of a few ids a custom plan always
//! looks cheaper than the generic one); forcing generic plans was measured and not kept.
//!
//! Rules for a statement wrapped here:
//! - Its text is one of a few fixed strings, never built from data: each distinct text is a
//!   prepared statement held by every pooled connection for the connection's life.
//! - It names the columns it returns, never `*` or `t.*` of a table: once a migration adds
//!   a column, a cached statement whose result would change fails with "cached plan must
//!   not change result type" on every connection of every instance still running the old
//!   code, until they restart.

use diesel::{
    QueryResult,
    pg::Pg,
    query_builder::{AstPass, Query, QueryFragment, QueryId},
};

/// `columns!("r": id, name)` is `"r.id, r.name"`: a column list for a statement kept
/// prepared, as a string literal (so it can be `concat!`ed into a `const`).
#[macro_export]
macro_rules! columns {
    ($t:literal: $first:ident $(, $column:ident)* $(,)?) => {
        concat!($t, ".", stringify!($first) $(, ", ", $t, ".", stringify!($column))*)
    };
}

/// A raw statement (`diesel::sql_query` with its binds) that its connection prepares once
/// and reuses. See the module's rules.
#[derive(Debug, Clone, Copy)]
#[must_use = "a statement does nothing until it is run"]
pub struct Prepared<Q>(pub Q);

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Prepared<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    /// `sql_query` says no because its text may vary; the rules above make it fixed.
    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

/// No static id: the cache then keys the statement by its SQL text and bind types.
impl<Q> QueryId for Prepared<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}

#[cfg(test)]
mod tests {
    use diesel::{QueryDsl as _, SelectableHelper as _};

    use super::*;
    use crate::{
        booking::ReservationRow,
        concerts::ScheduleRow,
        schema::{reservations, schedules},
    };

    /// The column names a query builder select reads, in order (`"t"."c", …` → `c`).
    fn selected(query: impl QueryFragment<Pg>) -> Vec<String> {
        let sql = diesel::debug_query::<Pg, _>(&query).to_string();
        let list = sql
            .strip_prefix("SELECT ")
            .and_then(|s| s.split(" FROM ").next())
            .unwrap_or_else(|| panic!("not a select: {sql}"));
        list.split(", ")
            .map(|c| c.rsplit('.').next().unwrap_or(c).trim_matches('"').to_owned())
            .collect()
    }

    /// The column names of a hand-written list (`r.c, …` → `c`).
    fn listed(list: &str) -> Vec<String> {
        list.split(", ")
            .map(|c| c.rsplit('.').next().unwrap_or(c).to_owned())
            .collect()
    }

    #[test]
    fn columns_lists_each_column_with_its_table() {
        assert_eq!(crate::columns!("r": id, name), "r.id, r.name");
    }

    #[test]
    fn the_column_lists_are_their_rows_fields() {
        assert_eq!(
            listed(crate::reservation_columns!("r")),
            selected(reservations::table.select(ReservationRow::as_select()))
        );
        assert_eq!(
            listed(crate::schedule_columns!("s")),
            selected(schedules::table.select(ScheduleRow::as_select()))
        );
    }
}
