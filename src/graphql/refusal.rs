//! Requests refused before execution, and the codes they carry.
//!
//! Errors of resolvers are [`crate::error::AppError`] and get their code there. A request
//! can also fail before any resolver runs: it does not parse, does not validate, asks for
//! too much, or names a persisted query the server does not have. async-graphql reports
//! those as bare messages; the functions here give each one its `extensions.code`, so that
//! every error a client sees has one (the README lists them). The schema's extension
//! (`edge`) applies them outside every other stage.

use async_graphql::{Response, ServerError};

use crate::error::ErrorCode;

/// Why a request was refused before execution; `code()` is its `extensions.code`.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Refusal {
    /// The document is not GraphQL.
    ParseFailed,
    /// The document does not fit the schema (unknown field, bad argument, unknown
    /// operation name, introspection when it is off, ...).
    ValidationFailed,
    /// Nested deeper than the server allows.
    TooDeep,
    /// Would cost more than the server allows: the estimated cost, or the seats read
    /// during execution (`crate::limits`).
    TooCostly,
    /// The document is too long, or asks for too many selections or root fields.
    TooLarge,
    /// A query ran out of time.
    Timeout,
    /// The answer would be larger than the response cap.
    ResponseTooLarge,
    /// An automatic persisted query by hash that this server does not have (yet): send
    /// the query with its hash once.
    PersistedQueryNotFound,
    /// A malformed request envelope, e.g. a `persistedQuery` extension whose hash does not
    /// match the query.
    BadRequest,
}

impl Refusal {
    /// Every refusal, for the test that finds each code in the schema's `ErrorCode`.
    pub const ALL: [Self; 9] = [
        Self::ParseFailed,
        Self::ValidationFailed,
        Self::TooDeep,
        Self::TooCostly,
        Self::TooLarge,
        Self::Timeout,
        Self::ResponseTooLarge,
        Self::PersistedQueryNotFound,
        Self::BadRequest,
    ];

    /// The code, one of the schema's `ErrorCode` values.
    pub fn error_code(self) -> ErrorCode {
        match self {
            Self::ParseFailed => ErrorCode::GraphqlParseFailed,
            Self::ValidationFailed => ErrorCode::GraphqlValidationFailed,
            Self::TooDeep => ErrorCode::QueryTooDeep,
            Self::TooCostly => ErrorCode::QueryTooCostly,
            Self::TooLarge => ErrorCode::QueryTooLarge,
            Self::Timeout => ErrorCode::Timeout,
            Self::ResponseTooLarge => ErrorCode::ResponseTooLarge,
            Self::PersistedQueryNotFound => ErrorCode::PersistedQueryNotFound,
            Self::BadRequest => ErrorCode::BadRequest,
        }
    }

    pub fn code(self) -> &'static str {
        self.error_code().as_str()
    }

    pub fn error(self, message: impl Into<String>) -> ServerError {
        let mut err = ServerError::new(message, None);
        tag(&mut err, self);
        err
    }
}

/// Sets `extensions.code` unless the error already has one.
fn tag(err: &mut ServerError, refusal: Refusal) {
    tag_code(err, refusal.code());
}

fn tag_code(err: &mut ServerError, code: &str) {
    let ext = err.extensions.get_or_insert_with(Default::default);
    if ext.get("code").is_none() {
        ext.set("code", code);
    }
}

/// Errors of a whole response that still have no code. Those without a path failed before
/// execution (async-graphql picks the operation after validation: an unknown operation name
/// lands here); those with one are input values that did not coerce. The last word on
/// codes: it sees every error of the answer, whichever stage raised it.
pub(crate) fn tag_response(mut response: Response) -> Response {
    for err in &mut response.errors {
        if err.path.is_empty() {
            tag(err, Refusal::ValidationFailed);
        } else {
            // Resolver failures all carry AppError's code; what is left is async-graphql's
            // own input coercion (a value that does not fit its type).
            tag_code(err, ErrorCode::BadUserInput.as_str());
        }
    }
    response
}

/// A document that did not parse, or that the checks run at parse time refused.
pub(crate) fn tag_parse_error(mut err: ServerError) -> ServerError {
    tag(&mut err, Refusal::ParseFailed);
    err
}

/// A document that does not fit the schema, or that the checks run at validation refused.
pub(crate) fn tag_validation_errors(mut errors: Vec<ServerError>) -> Vec<ServerError> {
    for err in &mut errors {
        tag(err, Refusal::ValidationFailed);
    }
    errors
}
