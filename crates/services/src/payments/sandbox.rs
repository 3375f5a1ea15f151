//! The sandbox provider: for development and the demo. It "confirms" at once without any
//! money, so it is capped per account per day (`POINTS_SANDBOX_DAILY_LIMIT`), every top-up
//! it makes says `sandbox: true`, and prod refuses to start with it unless told
//! (`PAYMENTS_SANDBOX_IN_PROD`).

use async_trait::async_trait;

use super::provider::{PaymentProvider, PaymentStatus, ProviderError, ProviderKind, ProviderPayment};

pub struct Sandbox;

#[async_trait]
impl PaymentProvider for Sandbox {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Sandbox
    }

    fn client_key(&self) -> Option<&str> {
        None
    }

    async fn confirm(
        &self,
        payment_key: &str,
        order_id: &str,
        amount: i64,
    ) -> Result<ProviderPayment, ProviderError> {
        Ok(ProviderPayment {
            payment_key: payment_key.to_owned(),
            order_id: order_id.to_owned(),
            status: PaymentStatus::Done,
            total_amount: amount,
        })
    }

    /// The sandbox keeps no payments of its own: its top-ups are settled when they start.
    async fn payment(&self, _payment_key: &str) -> Result<ProviderPayment, ProviderError> {
        Err(ProviderError::NotFound)
    }

    async fn payment_of_order(&self, _order_id: &str) -> Result<ProviderPayment, ProviderError> {
        Err(ProviderError::NotFound)
    }

    async fn cancel(
        &self,
        payment_key: &str,
        _reason: &str,
        _idempotency_key: &str,
    ) -> Result<ProviderPayment, ProviderError> {
        Ok(ProviderPayment {
            payment_key: payment_key.to_owned(),
            order_id: String::new(),
            status: PaymentStatus::Canceled,
            total_amount: 0,
        })
    }
}
