//! CSV exports' settings (`EXPORT_*`).

use std::time::Duration;

use secrecy::SecretString;

use super::{ConfigError, err, parse};

/// CSV exports (`crate::exports`): the download URLs `exportSchedule` hands out are signed.
#[derive(Clone, Debug)]
pub struct ExportsConfig {
    /// HMAC key of export URLs (`EXPORT_URL_SECRET`); unset: derived from `JWT_SECRET`, so
    /// every instance sharing that secret accepts the others' URLs.
    pub url_secret: SecretString,
    /// How long an export URL can be used (`EXPORT_URL_TTL_SECONDS`).
    pub url_ttl: Duration,
    /// Downloads streaming at once per instance (`EXPORT_CONCURRENCY`); more wait for none
    /// and are answered 503 with Retry-After.
    pub concurrency: usize,
}

impl ExportsConfig {
    pub(super) fn from_lookup(
        get: &impl Fn(&'static str) -> Option<String>,
        jwt_secret: &str,
    ) -> Result<Self, ConfigError> {
        let url_secret = match get("EXPORT_URL_SECRET") {
            Some(s) if s.len() < 32 => {
                return Err(err("EXPORT_URL_SECRET", "must be at least 32 bytes long"));
            }
            Some(s) => s,
            // A key of its own, not the JWT secret itself: an export signature can never
            // be replayed as a token signature or back.
            None => {
                use hmac::Mac as _;
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(jwt_secret.as_bytes())
                    .map_err(|_| err("JWT_SECRET", "cannot key an HMAC"))?;
                mac.update(b"boxoffice export urls v1");
                hex::encode(mac.finalize().into_bytes())
            }
        };
        let config = Self {
            url_secret: url_secret.into(),
            url_ttl: Duration::from_secs(parse(get, "EXPORT_URL_TTL_SECONDS", Some(300))?),
            concurrency: parse(get, "EXPORT_CONCURRENCY", Some(4))?,
        };
        if !(10..=86_400).contains(&config.url_ttl.as_secs()) {
            return Err(err("EXPORT_URL_TTL_SECONDS", "must be between 10 and 86400"));
        }
        if !(1..=64).contains(&config.concurrency) {
            return Err(err("EXPORT_CONCURRENCY", "must be between 1 and 64"));
        }
        Ok(config)
    }
}
