//! Payments: how money enters boxoffice (C17, I10).
//!
//! A top-up starts PENDING with an order id of ours; the fan pays it through the provider
//! (the browser widget), and the points are credited once, only when the provider
//! confirms that exact amount for that order, whether the confirmation comes from the
//! browser (`confirmTopUp`), the provider's webhook or the reconciliation job. The
//! lifecycle: PENDING → CONFIRMED | FAILED | CANCELLED; CONFIRMED → REFUNDING → REFUNDED
//! (`refundTopUp`, to the card); CONFIRMED → CANCELLED when the provider cancels after
//! credit (the points come back out; what was spent becomes debt, see `points`).
//!
//! `provider` is the trait, `toss` and `sandbox` its adapters, `store` the rows,
//! `service` the lifecycle; the server holds `graphql` (the API) and `webhook` (the provider's
//! HTTP callback);
//! `reconcile` the job that settles what the provider left unanswered.

pub mod provider;
pub mod reconcile;
pub mod sandbox;
pub mod service;
pub use boxoffice_store::payments as store;
pub use boxoffice_store::payments::TopUpStatus;
pub mod toss;

use std::sync::Arc;

use crate::{
    config::{PaymentProviderConfig, PaymentsConfig},
    error::{AppError, AppResult},
};
use provider::PaymentProvider;

/// The instance's payment provider and the bounds on amounts. Cheap to clone.
#[derive(Clone)]
pub struct Payments {
    provider: Option<Arc<dyn PaymentProvider>>,
    pub config: Arc<PaymentsConfig>,
    /// Accounts that owe points (no new holds), known here within a second.
    pub debtors: Arc<crate::points::debtors::Debtors>,
}

impl Payments {
    pub fn from_config(config: &PaymentsConfig) -> anyhow::Result<Self> {
        let provider: Option<Arc<dyn PaymentProvider>> = match &config.provider {
            PaymentProviderConfig::None => None,
            PaymentProviderConfig::Sandbox => {
                tracing::warn!(
                    "payments: SANDBOX provider: top-ups are confirmed without payment (capped per account per day)"
                );
                Some(Arc::new(sandbox::Sandbox))
            }
            PaymentProviderConfig::Toss {
                secret_key,
                client_key,
                api_url,
            } => Some(Arc::new(toss::Toss::new(
                api_url,
                secret_key.clone(),
                client_key.clone(),
                config.timeout,
            )?)),
        };
        Ok(Self {
            provider,
            config: Arc::new(config.clone()),
            debtors: Arc::default(),
        })
    }

    /// The provider, or FORBIDDEN when this server takes no payments.
    pub fn provider(&self) -> AppResult<&dyn PaymentProvider> {
        self.provider.as_deref().ok_or(AppError::Forbidden(
            "this server takes no payments (PAYMENT_PROVIDER is none): top-ups are off",
        ))
    }

    pub fn kind(&self) -> Option<provider::ProviderKind> {
        self.provider.as_ref().map(|p| p.kind())
    }

    pub fn is_sandbox(&self) -> bool {
        self.kind() == Some(provider::ProviderKind::Sandbox)
    }
}
