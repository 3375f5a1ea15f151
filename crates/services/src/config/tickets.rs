//! Tickets' settings: the signing key and the door's times (`TICKET_*`).

use std::time::Duration;

use super::{ConfigError, Environment, err, parse};

/// Tickets: the key that signs their codes and when the door admits them.
#[derive(Clone, Debug)]
pub struct TicketsConfig {
    /// `None` only in dev (a key is made at start and logged).
    pub signing_key: Option<boxoffice_ticket_codes::SigningKeyConfig>,
    pub doors_open_before: Duration,
    pub valid_after_start: Duration,
}

impl TicketsConfig {
    pub(super) fn from_lookup(
        get: &impl Fn(&'static str) -> Option<String>,
        environment: Environment,
    ) -> Result<Self, ConfigError> {
        let signing_key = match get("TICKET_SIGNING_KEY") {
            Some(text) => Some(
                boxoffice_ticket_codes::SigningKeyConfig::parse(&text)
                    .map_err(|e| err("TICKET_SIGNING_KEY", e.to_string()))?,
            ),
            None if environment == Environment::Prod => {
                return Err(err(
                    "TICKET_SIGNING_KEY",
                    "must be set in production: tickets signed by a key made at start would not verify after a restart",
                ));
            }
            None => None,
        };
        let minutes = |var: &'static str, default: u64| -> Result<Duration, ConfigError> {
            let m: u64 = parse(get, var, Some(default))?;
            if m == 0 || m > 7 * 24 * 60 {
                return Err(err(var, "must be between 1 and 10080 minutes"));
            }
            Ok(Duration::from_secs(m * 60))
        };
        Ok(Self {
            signing_key,
            doors_open_before: minutes("TICKET_DOORS_OPEN_MINUTES", 120)?,
            valid_after_start: minutes("TICKET_VALID_MINUTES", 240)?,
        })
    }
}
