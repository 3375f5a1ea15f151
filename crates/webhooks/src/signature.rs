//! Standard Webhooks signatures (symmetric scheme, `v1`).
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{body}`, the MAC is HMAC-SHA256
//! keyed with the secret's decoded bytes, and the header is `v1,<base64 MAC>`; several
//! signatures are separated by spaces, which is how a secret is rotated without downtime
//! (the old and the new secret both sign for a while). Secrets are shown to hosts as
//! `whsec_<base64 of 24 to 64 random bytes>`.
//!
//! Checked against the published vector of the specification's reference libraries
//! (see the tests).

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

const PREFIX: &str = "whsec_";
const VERSION: &str = "v1";
/// The specification's bounds on a symmetric secret: at least 192 bits, at most 512.
const MIN_SECRET_BYTES: usize = 24;
const MAX_SECRET_BYTES: usize = 64;
/// What boxoffice generates: 256 bits, HMAC-SHA256's own block of strength.
const NEW_SECRET_BYTES: usize = 32;
/// How far a receiver lets `webhook-timestamp` drift from its clock before refusing a
/// message as a replay (the reference libraries' five minutes).
pub const DEFAULT_TOLERANCE_SECONDS: i64 = 5 * 60;

/// A webhook signing secret. Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    key: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a webhook secret starts with whsec_")]
    Prefix,
    #[error("a webhook secret is base64 after whsec_")]
    Base64,
    #[error("a webhook secret has {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes")]
    Length,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(whsec_…)")
    }
}

impl Secret {
    /// A fresh random secret from the operating system's generator (through rand's
    /// thread-local CSPRNG, reseeded from it).
    pub fn generate() -> Secret {
        let mut key = vec![0u8; NEW_SECRET_BYTES];
        rand::rng().fill_bytes(&mut key);
        Secret { key }
    }

    /// Reads the `whsec_…` form.
    pub fn parse(text: &str) -> Result<Secret, SecretError> {
        let encoded = text.strip_prefix(PREFIX).ok_or(SecretError::Prefix)?;
        let key = STANDARD.decode(encoded).map_err(|_| SecretError::Base64)?;
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
            return Err(SecretError::Length);
        }
        Ok(Secret { key })
    }

    /// The `whsec_…` form, shown to the host once and stored for signing.
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.key))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        // new_from_slice accepts keys of any length for HMAC; the length was checked on entry.
        let mut mac = HmacSha256::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// One `v1,<base64>` signature of a message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self.mac(id, timestamp, body).finalize().into_bytes();
        format!("{VERSION},{}", STANDARD.encode(tag))
    }
}

/// The three headers of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub id: String,
    pub timestamp: i64,
    /// Space-separated `v1,…` signatures, one per secret.
    pub signature: String,
}

impl Signed {
    /// Signs `body` with every secret given (the current one first; a rotated-out one still
    /// valid during its grace period after it).
    ///
    /// An id holding a `.` would let a message be re-cut into a different (id, timestamp,
    /// body) with the same signed bytes, so ids are restricted to what boxoffice generates.
    pub fn new(secrets: &[Secret], id: &str, timestamp: i64, body: &[u8]) -> Result<Signed, SignatureError> {
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(SignatureError::BadId);
        }
        if secrets.is_empty() {
            return Err(SignatureError::NoSecret);
        }
        let signature = secrets
            .iter()
            .map(|s| s.sign(id, timestamp, body))
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Signed {
            id: id.to_owned(),
            timestamp,
            signature,
        })
    }

    pub fn headers(&self) -> [(&'static str, String); 3] {
        [
            (HEADER_ID, self.id.clone()),
            (HEADER_TIMESTAMP, self.timestamp.to_string()),
            (HEADER_SIGNATURE, self.signature.clone()),
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("a webhook id is letters, digits, - and _")]
    BadId,
    #[error("nothing to sign with")]
    NoSecret,
    #[error("webhook-timestamp is not a unix time in seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is too far from now")]
    OutsideTolerance,
    #[error("no v1 signature matches")]
    NoMatch,
}

/// A receiver's check, exactly as the specification asks: the timestamp within `tolerance`
/// seconds of `now`, then any `v1` signature of the header matching, compared in constant
/// time. Signatures of other schemes (`v1a`) are skipped, not failed.
pub fn verify(
    secret: &Secret,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
    tolerance: i64,
) -> Result<(), SignatureError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if (now - ts).abs() > tolerance {
        return Err(SignatureError::OutsideTolerance);
    }
    let expected = secret.mac(id, ts, body);
    let matched = signatures
        .split(' ')
        .filter_map(|s| s.split_once(','))
        .filter(|(version, _)| *version == VERSION)
        .filter_map(|(_, b64)| STANDARD.decode(b64).ok())
        // verify_slice compares in constant time.
        .any(|tag| expected.clone().verify_slice(&tag).is_ok());
    if matched {
        Ok(())
    } else {
        Err(SignatureError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The vector of the Standard Webhooks reference libraries (libraries/rust/src/lib.rs,
    // test_sign), also checked with Python's hmac module.
    const VECTOR_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const VECTOR_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const VECTOR_TIMESTAMP: i64 = 1649367553;
    const VECTOR_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const VECTOR_SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    #[test]
    fn signs_the_published_vector() {
        let secret = Secret::parse(VECTOR_SECRET).unwrap();
        assert_eq!(
            secret.sign(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY),
            VECTOR_SIGNATURE
        );
        let signed = Signed::new(&[secret], VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY).unwrap();
        assert_eq!(signed.signature, VECTOR_SIGNATURE);
        assert_eq!(
            signed.headers()[1],
            ("webhook-timestamp", "1649367553".to_owned())
        );
    }

    #[test]
    fn verifies_the_published_vector_and_nothing_altered() {
        let secret = Secret::parse(VECTOR_SECRET).unwrap();
        let ts = VECTOR_TIMESTAMP.to_string();
        let check = |id: &str, ts: &str, sig: &str, body: &[u8]| {
            verify(
                &secret,
                id,
                ts,
                sig,
                body,
                VECTOR_TIMESTAMP + 10,
                DEFAULT_TOLERANCE_SECONDS,
            )
        };
        assert_eq!(check(VECTOR_ID, &ts, VECTOR_SIGNATURE, VECTOR_BODY), Ok(()));
        let altered_body = br#"{"email":"test@example.com","username":"test_usen"}"#;
        assert_eq!(
            check(VECTOR_ID, &ts, VECTOR_SIGNATURE, altered_body),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            check("msg_other", &ts, VECTOR_SIGNATURE, VECTOR_BODY),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            check(VECTOR_ID, "1649367554", VECTOR_SIGNATURE, VECTOR_BODY),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            check(VECTOR_ID, "soon", VECTOR_SIGNATURE, VECTOR_BODY),
            Err(SignatureError::BadTimestamp)
        );
        // The wrong scheme's prefix with the right bytes does not count.
        let v1a = VECTOR_SIGNATURE.replacen("v1,", "v1a,", 1);
        assert_eq!(
            check(VECTOR_ID, &ts, &v1a, VECTOR_BODY),
            Err(SignatureError::NoMatch)
        );
        let other = Secret::generate();
        assert_eq!(
            verify(
                &other,
                VECTOR_ID,
                &ts,
                VECTOR_SIGNATURE,
                VECTOR_BODY,
                VECTOR_TIMESTAMP,
                300
            ),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn refuses_a_replay_outside_the_tolerance() {
        let secret = Secret::parse(VECTOR_SECRET).unwrap();
        let ts = VECTOR_TIMESTAMP.to_string();
        for now in [VECTOR_TIMESTAMP + 301, VECTOR_TIMESTAMP - 301] {
            assert_eq!(
                verify(&secret, VECTOR_ID, &ts, VECTOR_SIGNATURE, VECTOR_BODY, now, 300),
                Err(SignatureError::OutsideTolerance)
            );
        }
    }

    #[test]
    fn any_of_several_signatures_matches_during_a_rotation() {
        let old = Secret::generate();
        let new = Secret::generate();
        let signed = Signed::new(&[new.clone(), old.clone()], "evt_1", 100, b"{}").unwrap();
        assert_eq!(signed.signature.split(' ').count(), 2);
        for secret in [&old, &new] {
            assert_eq!(
                verify(secret, "evt_1", "100", &signed.signature, b"{}", 100, 300),
                Ok(())
            );
        }
        let header = format!("v1a,AAAA v1,notbase64! {}", new.sign("evt_1", 100, b"{}"));
        assert_eq!(verify(&new, "evt_1", "100", &header, b"{}", 100, 300), Ok(()));
    }

    #[test]
    fn secrets_have_the_whsec_form_and_bounds() {
        let secret = Secret::generate();
        let text = secret.expose();
        assert!(text.starts_with("whsec_"));
        assert_eq!(Secret::parse(&text), Ok(secret.clone()));
        assert_ne!(Secret::generate(), secret);
        assert_eq!(format!("{secret:?}"), "Secret(whsec_…)");
        assert_eq!(
            Secret::parse("C2FVsBQIhrscChlQIMV+b5sSYspob7oD"),
            Err(SecretError::Prefix)
        );
        assert_eq!(Secret::parse("whsec_***"), Err(SecretError::Base64));
        assert_eq!(
            Secret::parse(&format!("whsec_{}", STANDARD.encode([1u8; 23]))),
            Err(SecretError::Length)
        );
        assert_eq!(
            Secret::parse(&format!("whsec_{}", STANDARD.encode([1u8; 65]))),
            Err(SecretError::Length)
        );
    }

    #[test]
    fn ids_that_could_be_recut_are_refused() {
        let s = [Secret::generate()];
        assert_eq!(Signed::new(&s, "a.b", 1, b""), Err(SignatureError::BadId));
        assert_eq!(Signed::new(&s, "", 1, b""), Err(SignatureError::BadId));
        assert_eq!(Signed::new(&[], "a", 1, b""), Err(SignatureError::NoSecret));
        assert!(Signed::new(&s, "0193a1b2-0000-7000-8000-000000000001", 1, b"").is_ok());
    }
}
