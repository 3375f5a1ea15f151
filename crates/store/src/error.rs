//! The one error type of boxoffice and its single mapping to GraphQL.
//!
//! Domain code and resolvers return [`AppError`] (resolvers as `Result<T, AppError>`, so a
//! diesel, pool or Redis error needs one `?`), and the `From<AppError>` impl below is the
//! only place where an error becomes something a client sees. Internal failures (database, Redis, bugs) are logged here, once, with their cause and
//! reach the client as a generic message: never SQL text, never a stack trace.
//!
//! async-graphql is built with `custom-error-conversion`, so a raw `diesel` or `redis` error
//! cannot be turned into a GraphQL error by `?` by accident: it has to pass through here.

use async_graphql::{Enum, ErrorExtensions};

/// Every code an error of this API carries as `extensions.code`: the outcomes of operations
/// and, from GRAPHQL_PARSE_FAILED on, the refusals of a request before anything ran.
//
// The first part is `AppError`'s, the second `graphql::refusal::Refusal`'s: one enum, so
// that the schema lists every code a client can meet.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq, Hash, serde::Serialize, serde::Deserialize)]
#[graphql(name = "ErrorCode", rename_items = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    Unauthenticated,
    Forbidden,
    BadUserInput,
    NotFound,
    Conflict,
    SeatUnavailable,
    SoldOut,
    LimitExceeded,
    HoldExpired,
    InsufficientPoints,
    QueueRequired,
    RateLimited,
    Unavailable,
    Internal,
    /// The document is not GraphQL.
    GraphqlParseFailed,
    /// The document does not fit the schema.
    GraphqlValidationFailed,
    /// Nested deeper than the server allows.
    QueryTooDeep,
    /// Would cost more than the server allows.
    QueryTooCostly,
    /// The document is too long, or selects too many fields or root fields.
    QueryTooLarge,
    /// A query ran out of time.
    Timeout,
    /// The answer would be larger than the response cap.
    ResponseTooLarge,
    /// A persisted query's hash this server does not know (yet): send the query once.
    PersistedQueryNotFound,
    /// A malformed request envelope (body, media type, persisted-query extension).
    BadRequest,
    /// More operations on one WebSocket than the server allows.
    TooManySubscriptions,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::NotFound => "NOT_FOUND",
            Self::Conflict => "CONFLICT",
            Self::SeatUnavailable => "SEAT_UNAVAILABLE",
            Self::SoldOut => "SOLD_OUT",
            Self::LimitExceeded => "LIMIT_EXCEEDED",
            Self::HoldExpired => "HOLD_EXPIRED",
            Self::InsufficientPoints => "INSUFFICIENT_POINTS",
            Self::QueueRequired => "QUEUE_REQUIRED",
            Self::RateLimited => "RATE_LIMITED",
            Self::Unavailable => "UNAVAILABLE",
            Self::Internal => "INTERNAL",
            Self::GraphqlParseFailed => "GRAPHQL_PARSE_FAILED",
            Self::GraphqlValidationFailed => "GRAPHQL_VALIDATION_FAILED",
            Self::QueryTooDeep => "QUERY_TOO_DEEP",
            Self::QueryTooCostly => "QUERY_TOO_COSTLY",
            Self::QueryTooLarge => "QUERY_TOO_LARGE",
            Self::Timeout => "TIMEOUT",
            Self::ResponseTooLarge => "RESPONSE_TOO_LARGE",
            Self::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            Self::BadRequest => "BAD_REQUEST",
            Self::TooManySubscriptions => "TOO_MANY_SUBSCRIPTIONS",
        }
    }
}

/// The cause of an internal or unavailable error, for the log only. Shared (`Arc`) so that
/// an error can be cloned: DataLoaders hand one error to every key of a failed load, and a
/// failed batch answers each of its requests.
#[derive(Clone)]
pub struct Cause(std::sync::Arc<anyhow::Error>);

impl std::ops::Deref for Cause {
    type Target = anyhow::Error;

    fn deref(&self) -> &anyhow::Error {
        &self.0
    }
}

impl std::fmt::Debug for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&*self.0, f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl Cause {
    pub fn new(e: impl Into<anyhow::Error>) -> Self {
        Self(std::sync::Arc::new(e.into()))
    }
}

/// Every failure a request can end with.
///
/// Client errors carry a message meant for the client. `Internal` carries the cause for the
/// log only; `Unavailable` is a dependency that is down or overloaded (retrying may help).
#[derive(Clone, Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    /// Bad input; `field` names the offending input field (e.g. `input.password`).
    #[error("{field}: {message}")]
    BadInput { field: String, message: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    /// A business-rule refusal with its own code (SEAT_UNAVAILABLE, SOLD_OUT, ...).
    #[error("{message}")]
    Rule { code: ErrorCode, message: String },
    #[error("too many attempts, retry in {retry_after_s} s")]
    RateLimited { retry_after_s: u64 },
    #[error("service temporarily unavailable")]
    Unavailable(#[source] Cause),
    #[error("internal error")]
    Internal(#[source] Cause),
}

impl AppError {
    pub fn bad_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadInput {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn rule(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Rule {
            code,
            message: message.into(),
        }
    }

    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self::Internal(Cause::new(cause))
    }

    pub fn unavailable(cause: impl Into<anyhow::Error>) -> Self {
        Self::Unavailable(Cause::new(cause))
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::BadInput { .. } => ErrorCode::BadUserInput,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::Rule { code, .. } => *code,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

/// Database failures a retry may cure: the connection was lost or the server is going away
/// ([`lost_connection`]), a lock or statement timeout fired (a peer holds a lock too long), a
/// serialization failure or deadlock. Everything else is a bug or bad data: INTERNAL.
/// PostgreSQL's messages are matched where diesel does not keep the SQLSTATE; they are
/// stable with the default `lc_messages`.
fn is_transient(err: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind as K, Error as E};
    if lost_connection(err) {
        return true;
    }
    match err {
        E::DatabaseError(K::SerializationFailure, _) => true,
        E::DatabaseError(_, info) => {
            let m = info.message();
            [
                "lock timeout",
                "statement timeout",
                "idle-in-transaction timeout",
                "deadlock detected",
                // PgBouncer: no server connection was free in time (nothing ran).
                "query_wait_timeout",
            ]
            .iter()
            .any(|p| m.contains(p))
        }
        E::BrokenTransactionManager => true,
        // A COMMIT whose connection dropped, then a ROLLBACK that could not be sent either.
        E::RollbackErrorOnCommit { commit_error, .. } => is_transient(commit_error),
        _ => false,
    }
}

/// Whether a statement failed because its connection did, not because of what it asked:
/// the connection is closed or cannot send, its server is shutting down or no longer takes
/// writes (a standby, a demoted primary: nothing written), or PgBouncer lost its server.
/// What the pool's check at checkout would have found; a connection kept past that check
/// (the hold batches' committers) runs its work again on a checked one. PgBouncer (1.18)
/// answers for a server connection it lost or cannot make with messages of its own: as
/// INTERNAL, a batch whose COMMIT met "server conn crashed?" in a failover was answered a
/// failure although it had committed (I9), where UNAVAILABLE has it settled.
pub fn lost_connection(err: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind as K, Error as E};
    match err {
        E::DatabaseError(K::UnableToSendCommand | K::ClosedConnection | K::ReadOnlyTransaction, _) => true,
        E::DatabaseError(_, info) => [
            "terminating connection",
            "shutting down",
            "server closed the connection",
            "server conn crashed",
            "cannot connect to server",
            "server login has been failing",
        ]
        .iter()
        .any(|p| info.message().contains(p)),
        _ => false,
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(err: diesel::result::Error) -> Self {
        if is_transient(&err) {
            Self::Unavailable(Cause::new(err))
        } else {
            Self::Internal(Cause::new(err))
        }
    }
}

impl From<bb8::RunError<diesel_async::pooled_connection::PoolError>> for AppError {
    fn from(err: bb8::RunError<diesel_async::pooled_connection::PoolError>) -> Self {
        // A pool timeout means the database is saturated or gone: the client may retry.
        Self::unavailable(anyhow::anyhow!("database pool: {err}"))
    }
}

impl From<redis::RedisError> for AppError {
    fn from(err: redis::RedisError) -> Self {
        Self::unavailable(anyhow::anyhow!("redis: {err}"))
    }
}

/// Errors async-graphql itself produces inside a resolver: missing context data (a wiring
/// bug) and input values that failed to parse.
/// A pure rule's refusal (`boxoffice_core`) becomes the error of its code.
impl From<boxoffice_core::Refusal> for AppError {
    fn from(refusal: boxoffice_core::Refusal) -> Self {
        use boxoffice_core::Refusal as R;
        match refusal {
            R::Unauthenticated(why) => Self::Unauthenticated(why),
            R::NotFound(what) => Self::NotFound(what),
            R::Conflict(message) => Self::Conflict(message),
            R::BadInput { field, message } => Self::bad_input(field, message),
            R::SeatUnavailable(message) => Self::rule(ErrorCode::SeatUnavailable, message),
            R::SoldOut(message) => Self::rule(ErrorCode::SoldOut, message),
            R::LimitExceeded(message) => Self::rule(ErrorCode::LimitExceeded, message),
            R::Internal(bug) => Self::internal(anyhow::anyhow!(bug)),
        }
    }
}

impl From<async_graphql::Error> for AppError {
    fn from(err: async_graphql::Error) -> Self {
        Self::internal(anyhow::anyhow!("async-graphql: {}", err.message))
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        let code = err.code();
        match &err {
            AppError::Internal(cause) => {
                tracing::error!(error.code = code.as_str(), error.cause = ?cause, "internal error");
            }
            AppError::Unavailable(cause) => {
                tracing::warn!(error.code = code.as_str(), error.cause = %cause, "dependency unavailable");
            }
            _ => {}
        }
        async_graphql::Error::new(err.to_string()).extend_with(|_, ext| {
            ext.set("code", code.as_str());
            match &err {
                AppError::BadInput { field, .. } => ext.set("field", field.as_str()),
                AppError::RateLimited { retry_after_s } => ext.set("retryAfter", *retry_after_s),
                // Transient: a second is long enough for a lock timeout or a reconnect.
                AppError::Unavailable(_) => ext.set("retryAfter", 1),
                _ => {}
            }
        })
    }
}

pub type AppResult<T> = Result<T, AppError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_cause() {
        let err: async_graphql::Error =
            AppError::internal(anyhow::anyhow!("relation \"users\" does not exist")).into();
        assert_eq!(err.message, "internal error");
        let ext = serde_json::to_value(err.extensions).unwrap_or_default();
        assert_eq!(ext["code"], "INTERNAL");
    }

    #[test]
    fn bad_input_names_the_field() {
        let err: async_graphql::Error = AppError::bad_input("input.email", "is not an email address").into();
        assert_eq!(err.message, "input.email: is not an email address");
        let ext = serde_json::to_value(err.extensions).unwrap_or_default();
        assert_eq!(ext["code"], "BAD_USER_INPUT");
        assert_eq!(ext["field"], "input.email");
    }

    #[test]
    fn a_lost_server_connection_is_unavailable_from_postgres_or_pgbouncer() {
        use diesel::result::{DatabaseErrorKind as K, Error as E};
        let db = |m: &str| E::DatabaseError(K::Unknown, Box::new(m.to_owned()));
        for message in [
            "terminating connection due to administrator command",
            "the database system is shutting down",
            "server conn crashed?",
            "pgbouncer cannot connect to server",
            "server login has been failing, try again later (server_login_retry)",
            "query_wait_timeout",
        ] {
            assert_eq!(
                AppError::from(db(message)).code(),
                ErrorCode::Unavailable,
                "{message}"
            );
        }
        assert_eq!(
            AppError::from(db("relation \"users\" does not exist")).code(),
            ErrorCode::Internal
        );
    }

    #[test]
    fn a_refusal_keeps_its_code() {
        use boxoffice_core::Refusal as R;
        for refusal in [
            R::Unauthenticated("gone"),
            R::NotFound("schedule"),
            R::Conflict("used".into()),
            R::bad_input("input.count", "must be 1 to 10"),
            R::SeatUnavailable("taken".into()),
            R::SoldOut("sold out".into()),
            R::LimitExceeded("at most 4".into()),
            R::Internal("a bug"),
        ] {
            let code = refusal.code();
            assert_eq!(AppError::from(refusal).code().as_str(), code);
        }
    }
}
