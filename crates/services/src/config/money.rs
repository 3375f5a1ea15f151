//! Money's settings: the payment provider and the bounds of amounts (`PAYMENT_*`, `POINTS_*`).

use std::time::Duration;

use secrecy::SecretString;

use super::{ConfigError, Environment, err, parse};

/// Which payment provider confirms top-ups.
#[derive(Clone, Debug)]
pub enum PaymentProviderConfig {
    /// No provider: top-ups are refused (the default in prod).
    None,
    /// Confirms at once, capped per account per day, labelled sandbox everywhere.
    Sandbox,
    Toss {
        secret_key: SecretString,
        client_key: String,
        api_url: String,
    },
}

/// Money: the provider, its timeouts and the bounds every amount keeps.
#[derive(Clone, Debug)]
pub struct PaymentsConfig {
    pub provider: PaymentProviderConfig,
    pub timeout: Duration,
    pub reconcile_interval: Duration,
    pub pending_expiry: Duration,
    pub sandbox_daily_limit: i64,
    pub max_top_up: i64,
    pub max_balance: i64,
}

/// A balance (and so any amount) stays below this, so it fits GraphQL's 32-bit `Int`
/// with room for one reservation's worth of race (see `points::service::credit`).
pub const MAX_BALANCE_CEILING: i64 = 2_000_000_000;

impl PaymentsConfig {
    pub(super) fn from_lookup(
        get: &impl Fn(&'static str) -> Option<String>,
        environment: Environment,
    ) -> Result<Self, ConfigError> {
        let default = if environment == Environment::Dev {
            "sandbox"
        } else {
            "none"
        };
        let provider = match get("PAYMENT_PROVIDER").as_deref().unwrap_or(default) {
            "none" => PaymentProviderConfig::None,
            "sandbox" => {
                if environment == Environment::Prod && !parse(get, "PAYMENTS_SANDBOX_IN_PROD", Some(false))? {
                    return Err(err(
                        "PAYMENT_PROVIDER",
                        "the sandbox gives points without payment; in prod set PAYMENTS_SANDBOX_IN_PROD=true to accept that",
                    ));
                }
                PaymentProviderConfig::Sandbox
            }
            "toss" => PaymentProviderConfig::Toss {
                secret_key: get("PAYMENT_TOSS_SECRET_KEY")
                    .map(SecretString::from)
                    .ok_or_else(|| {
                        err(
                            "PAYMENT_TOSS_SECRET_KEY",
                            "is required with PAYMENT_PROVIDER=toss",
                        )
                    })?,
                client_key: get("PAYMENT_TOSS_CLIENT_KEY").ok_or_else(|| {
                    err(
                        "PAYMENT_TOSS_CLIENT_KEY",
                        "is required with PAYMENT_PROVIDER=toss",
                    )
                })?,
                api_url: {
                    let raw = get("PAYMENT_TOSS_API_URL")
                        .unwrap_or_else(|| "https://api.tosspayments.com".to_owned());
                    let url = url::Url::parse(&raw)
                        .map_err(|e| err("PAYMENT_TOSS_API_URL", format!("{raw:?}: {e}")))?;
                    if !matches!(url.scheme(), "http" | "https") {
                        return Err(err("PAYMENT_TOSS_API_URL", "must be an http(s) URL"));
                    }
                    raw.trim_end_matches('/').to_owned()
                },
            },
            other => {
                return Err(err(
                    "PAYMENT_PROVIDER",
                    format!("expected toss, sandbox or none, got {other:?}"),
                ));
            }
        };
        let c = Self {
            provider,
            timeout: Duration::from_millis(parse(get, "PAYMENT_TIMEOUT_MS", Some(10_000))?),
            reconcile_interval: Duration::from_secs(parse(
                get,
                "PAYMENT_RECONCILE_INTERVAL_SECONDS",
                Some(60),
            )?),
            pending_expiry: Duration::from_secs(parse(get, "PAYMENT_PENDING_EXPIRY_SECONDS", Some(3600))?),
            sandbox_daily_limit: parse(get, "POINTS_SANDBOX_DAILY_LIMIT", Some(1_000_000))?,
            max_top_up: parse(get, "POINTS_MAX_TOP_UP", Some(10_000_000))?,
            max_balance: parse(get, "POINTS_MAX_BALANCE", Some(1_000_000_000))?,
        };
        for (var, zero) in [
            ("PAYMENT_TIMEOUT_MS", c.timeout.is_zero()),
            (
                "PAYMENT_RECONCILE_INTERVAL_SECONDS",
                c.reconcile_interval.is_zero(),
            ),
            ("PAYMENT_PENDING_EXPIRY_SECONDS", c.pending_expiry.is_zero()),
            ("POINTS_SANDBOX_DAILY_LIMIT", c.sandbox_daily_limit < 0),
            ("POINTS_MAX_TOP_UP", c.max_top_up <= 0),
            ("POINTS_MAX_BALANCE", c.max_balance <= 0),
        ] {
            if zero {
                return Err(err(var, "must be positive"));
            }
        }
        if c.max_balance > MAX_BALANCE_CEILING {
            return Err(err(
                "POINTS_MAX_BALANCE",
                format!("must be at most {MAX_BALANCE_CEILING}, so balances fit a GraphQL Int"),
            ));
        }
        if c.max_top_up > c.max_balance {
            return Err(err("POINTS_MAX_TOP_UP", "must not exceed POINTS_MAX_BALANCE"));
        }
        Ok(c)
    }
}
