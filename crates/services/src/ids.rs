//! GraphQL `ID`s are the decimal database ids; parsing one names the argument on failure.

use async_graphql::ID;

use crate::error::{AppError, AppResult};

pub fn parse(id: &ID, field: &str) -> AppResult<i64> {
    id.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| AppError::bad_input(field, "is not a valid id"))
}

pub fn to_id(id: i64) -> ID {
    ID(id.to_string())
}
