//! What boxoffice needs from a payment provider, whichever it is: confirm a payment the
//! browser made, look a payment up, cancel it. Adapters: [`super::toss`] and
//! [`super::sandbox`].

use async_trait::async_trait;

/// The provider's word on a payment (Toss's `Payment` object, reduced to what settles a
/// top-up).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderPayment {
    pub payment_key: String,
    pub order_id: String,
    pub status: PaymentStatus,
    /// What the fan paid.
    pub total_amount: i64,
}

/// A payment's status at the provider (Toss's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentStatus {
    /// Created, or being authenticated, or waiting for a bank transfer: not money yet.
    Ready,
    InProgress,
    WaitingForDeposit,
    /// Paid: the money is taken.
    Done,
    /// Given back in full.
    Canceled,
    /// Given back in part (from the provider's dashboard; boxoffice never does this).
    PartialCanceled,
    /// Failed or timed out before it was paid.
    Aborted,
    Expired,
}

impl PaymentStatus {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "READY" => Self::Ready,
            "IN_PROGRESS" => Self::InProgress,
            "WAITING_FOR_DEPOSIT" => Self::WaitingForDeposit,
            "DONE" => Self::Done,
            "CANCELED" => Self::Canceled,
            "PARTIAL_CANCELED" => Self::PartialCanceled,
            "ABORTED" => Self::Aborted,
            "EXPIRED" => Self::Expired,
            _ => return None,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider answered and said no: a definite outcome (nothing happened there).
    #[error("the payment provider refused: {code}: {message}")]
    Refused { code: String, message: String },
    /// No such payment (or order) at the provider.
    #[error("the payment provider knows no such payment")]
    NotFound,
    /// No answer in time, or one we could not read: the outcome is unknown, so whatever
    /// was asked may still have happened. The top-up stays as it is and is settled later.
    #[error("the payment provider did not answer: {0}")]
    Unreachable(anyhow::Error),
}

/// Which adapter, as the API shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    Sandbox,
    Toss,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Toss => "toss",
        }
    }
}

#[async_trait]
pub trait PaymentProvider: Send + Sync + 'static {
    fn kind(&self) -> ProviderKind;

    /// The key the browser opens the provider's payment window with, if it has one.
    fn client_key(&self) -> Option<&str>;

    /// Confirms (captures) a payment the browser authorised, for exactly `amount`.
    /// Repeating it for the same order must not take the money twice.
    async fn confirm(
        &self,
        payment_key: &str,
        order_id: &str,
        amount: i64,
    ) -> Result<ProviderPayment, ProviderError>;

    /// The payment with this key.
    async fn payment(&self, payment_key: &str) -> Result<ProviderPayment, ProviderError>;

    /// The payment of this order (when the browser never told us its key).
    async fn payment_of_order(&self, order_id: &str) -> Result<ProviderPayment, ProviderError>;

    /// Gives the whole payment back to the card. `idempotency_key` makes a retry safe.
    async fn cancel(
        &self,
        payment_key: &str,
        reason: &str,
        idempotency_key: &str,
    ) -> Result<ProviderPayment, ProviderError>;
}
