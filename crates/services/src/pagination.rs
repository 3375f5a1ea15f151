//! Relay cursor pagination shared by every list field: page-size rules and opaque cursors.

use async_graphql::{
    OutputType,
    connection::{Connection, CursorType, Edge, OpaqueCursor},
};

use crate::error::{AppError, AppResult};

pub const DEFAULT_PAGE: i64 = 20;
pub const MAX_PAGE: i64 = 100;

/// Validates `first` (default 20, at most 100).
pub fn page_size(first: Option<i32>) -> AppResult<i64> {
    match first {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&i64::from(n)) => Ok(i64::from(n)),
        Some(_) => Err(AppError::bad_input(
            "first",
            format!("must be between 1 and {MAX_PAGE}"),
        )),
    }
}

/// A Relay page from the `limit + 1` rows a query fetched (the extra row only says that
/// there is a next page), each row's cursor, and its GraphQL node.
pub fn page<R, N: OutputType>(
    mut rows: Vec<R>,
    limit: i64,
    has_previous: bool,
    cursor: impl Fn(&R) -> String,
    mut node: impl FnMut(R) -> AppResult<N>,
) -> AppResult<Connection<String, N>> {
    let has_next = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let mut page = Connection::new(has_previous, has_next);
    for row in rows {
        let c = cursor(&row);
        page.edges.push(Edge::new(c, node(row)?));
    }
    Ok(page)
}

/// Query complexity of a page: its size times the cost of one item (for
/// `#[graphql(complexity = ...)]`), so a client cannot ask for 100 × 100 × 100 rows.
pub fn cost(first: Option<i32>, child_complexity: usize) -> usize {
    let n = first.map_or(DEFAULT_PAGE, |n| i64::from(n).clamp(1, MAX_PAGE));
    usize::try_from(n).unwrap_or(1) * child_complexity.max(1)
}

/// Decodes an `after` cursor made by [`encode`]; any other string is BAD_USER_INPUT.
pub fn decode<T: serde::de::DeserializeOwned + serde::Serialize>(
    after: Option<&str>,
) -> AppResult<Option<T>> {
    after
        .map(|s| {
            OpaqueCursor::<T>::decode_cursor(s)
                .map(|c| c.0)
                .map_err(|_| AppError::bad_input("after", "is not a cursor from this API"))
        })
        .transpose()
}

pub fn encode<T: serde::Serialize + serde::de::DeserializeOwned>(value: T) -> String {
    OpaqueCursor(value).encode_cursor()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(None).unwrap(), 20);
        assert_eq!(page_size(Some(100)).unwrap(), 100);
        assert!(page_size(Some(0)).is_err());
        assert!(page_size(Some(101)).is_err());
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = encode(42i64);
        assert_eq!(decode::<i64>(Some(&c)).unwrap(), Some(42));
        assert!(decode::<i64>(Some("not a cursor")).is_err());
    }
}
