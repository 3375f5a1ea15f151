//! Why a pure rule refuses a request. The kinds are those of the API's error codes that a
//! rule can decide on its own; the server turns each into its one error type, and so into
//! its code, in one place (`boxoffice::error`, `From<Refusal>`).

/// A refusal with the message meant for the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The requesting account no longer exists.
    Unauthenticated(&'static str),
    NotFound(&'static str),
    Conflict(String),
    /// Bad input; `field` names the offending input field (e.g. `input.seatIds`).
    BadInput {
        field: &'static str,
        message: String,
    },
    SeatUnavailable(String),
    SoldOut(String),
    LimitExceeded(String),
    /// A bug: the rule was not given what it needs. For the log, never for the client.
    Internal(&'static str),
}

impl Refusal {
    pub fn bad_input(field: &'static str, message: impl Into<String>) -> Self {
        Self::BadInput {
            field,
            message: message.into(),
        }
    }

    /// The API's error code for it, as clients read it in `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Conflict(_) => "CONFLICT",
            Self::BadInput { .. } => "BAD_USER_INPUT",
            Self::SeatUnavailable(_) => "SEAT_UNAVAILABLE",
            Self::SoldOut(_) => "SOLD_OUT",
            Self::LimitExceeded(_) => "LIMIT_EXCEEDED",
            Self::Internal(_) => "INTERNAL",
        }
    }
}
