//! Signing ticket codes, and the ring of public keys that verifies them.
//!
//! Every key has a small numeric id written into each code it signs. Rotating means
//! signing new tickets with a new id while the ring keeps the old public keys: a code names
//! its key, so old tickets keep verifying. An old key verifies until the last show of the
//! tickets it signed has ended (`verifies_until`, which the caller works out from its
//! tickets); after that it is dropped and any code naming it is INVALID.
//!
//! Verification is `verify_strict` (RFC 8032's cofactorless check, refusing small-order
//! keys and non-canonical signatures), so a code has no second valid signature.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use data_encoding::BASE64URL_NOPAD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use thiserror::Error;

// The key id is part of the code's format, so it is defined there: keys depend on the
// code, never the other way round.
pub use crate::code::KeyId;
use crate::code::{self, CodeError, TicketClaims, UnverifiedCode};

/// A key given in configuration that cannot be used; names what is wrong, never the key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    #[error("expected `<key id>:<32-byte seed in base64url>`")]
    Shape,
    #[error("the key id is not a number from 0 to 4294967295")]
    KeyId,
    #[error("the key is not base64url")]
    Encoding,
    #[error("the key has {0} bytes, not 32")]
    Length(usize),
    #[error("the public key is not a valid Ed25519 point")]
    Point,
}

/// The configured signing key: `<key id>:<32-byte Ed25519 seed, base64url>`.
#[derive(Clone)]
pub struct SigningKeyConfig {
    pub key_id: KeyId,
    seed: [u8; 32],
}

impl SigningKeyConfig {
    pub fn new(key_id: KeyId, seed: [u8; 32]) -> Self {
        Self { key_id, seed }
    }

    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let (id, seed) = text.trim().split_once(':').ok_or(KeyError::Shape)?;
        let key_id = KeyId(id.trim().parse().map_err(|_| KeyError::KeyId)?);
        let seed = decode_32(seed.trim())?;
        Ok(Self { key_id, seed })
    }

    /// The configuration text for this key (a secret: for generating a dev key only).
    pub fn to_config_text(&self) -> String {
        format!("{}:{}", self.key_id, BASE64URL_NOPAD.encode(&self.seed))
    }

    pub fn signer(&self) -> TicketSigner {
        TicketSigner {
            key_id: self.key_id,
            key: SigningKey::from_bytes(&self.seed),
        }
    }
}

/// Never prints the seed.
impl fmt::Debug for SigningKeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyConfig")
            .field("key_id", &self.key_id)
            .field("seed", &"[redacted]")
            .finish()
    }
}

/// Signs ticket codes with one key.
#[derive(Clone)]
pub struct TicketSigner {
    key_id: KeyId,
    key: SigningKey,
}

impl fmt::Debug for TicketSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketSigner")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl TicketSigner {
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The code text for a ticket; `claims.key_id` is set to this signer's.
    pub fn sign(&self, claims: TicketClaims) -> String {
        let claims = TicketClaims {
            key_id: self.key_id,
            ..claims
        };
        let payload = code::payload(&claims);
        let signature = self.key.sign(&payload).to_bytes();
        code::to_text(&payload, &signature)
    }
}

/// A public key as published to scanners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedKey {
    pub key_id: KeyId,
    /// Raw 32-byte Ed25519 public key, base64url without padding (what WebCrypto imports
    /// as `raw`).
    pub public_key: String,
    /// When this key stops verifying; `None` while it still signs.
    pub verifies_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
struct RingKey {
    key: VerifyingKey,
    verifies_until: Option<DateTime<Utc>>,
}

/// The public keys that verify codes, by key id.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: BTreeMap<KeyId, RingKey>,
}

impl KeyRing {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a key. `verifies_until: None` means "for as long as it is here".
    pub fn insert(
        &mut self,
        key_id: KeyId,
        public_key: &[u8; 32],
        verifies_until: Option<DateTime<Utc>>,
    ) -> Result<(), KeyError> {
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| KeyError::Point)?;
        self.keys.insert(key_id, RingKey { key, verifies_until });
        Ok(())
    }

    /// Adds a key published as base64url text.
    pub fn insert_text(
        &mut self,
        key_id: KeyId,
        public_key: &str,
        verifies_until: Option<DateTime<Utc>>,
    ) -> Result<(), KeyError> {
        self.insert(key_id, &decode_32(public_key)?, verifies_until)
    }

    /// The keys that still verify at `at`, for scanners.
    pub fn published(&self, at: DateTime<Utc>) -> Vec<PublishedKey> {
        self.keys
            .iter()
            .filter(|(_, k)| k.verifies_until.is_none_or(|until| at < until))
            .map(|(&key_id, k)| PublishedKey {
                key_id,
                public_key: BASE64URL_NOPAD.encode(k.key.as_bytes()),
                verifies_until: k.verifies_until,
            })
            .collect()
    }

    /// The claims of a code whose signature one of this ring's live keys made. Reads no
    /// database: a forged or altered code stops here.
    pub fn verify(&self, text: &str, at: DateTime<Utc>) -> Result<TicketClaims, CodeError> {
        self.verify_code(&code::from_text(text)?, at)
    }

    pub fn verify_code(&self, code: &UnverifiedCode, at: DateTime<Utc>) -> Result<TicketClaims, CodeError> {
        let key_id = code.claims.key_id;
        let key = self.keys.get(&key_id).ok_or(CodeError::UnknownKey(key_id))?;
        if key.verifies_until.is_some_and(|until| at >= until) {
            return Err(CodeError::KeyRetired(key_id));
        }
        key.key
            .verify_strict(&code.payload, &Signature::from_bytes(&code.signature))
            .map_err(|_| CodeError::BadSignature)?;
        Ok(code.claims)
    }
}

fn decode_32(text: &str) -> Result<[u8; 32], KeyError> {
    // Accept the padded form too: people paste keys from tools that pad.
    let bytes = BASE64URL_NOPAD
        .decode(text.trim_end_matches('=').as_bytes())
        .map_err(|_| KeyError::Encoding)?;
    let len = bytes.len();
    bytes.try_into().map_err(|_| KeyError::Length(len))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 24, hour, 0, 0).unwrap()
    }

    fn claims() -> TicketClaims {
        TicketClaims {
            key_id: KeyId(0),
            ticket_id: 77,
            schedule_id: 5,
            seat_id: 1234,
            issued_at: 1_796_000_000,
        }
    }

    fn config(id: u32, byte: u8) -> SigningKeyConfig {
        SigningKeyConfig::new(KeyId(id), [byte; 32])
    }

    fn ring_of(signers: &[&TicketSigner]) -> KeyRing {
        let mut ring = KeyRing::new();
        for s in signers {
            ring.insert(s.key_id(), &s.public_key(), None).unwrap();
        }
        ring
    }

    #[test]
    fn a_signed_code_verifies_with_the_signers_key_id() {
        let signer = config(7, 1).signer();
        let text = signer.sign(claims());
        let verified = ring_of(&[&signer]).verify(&text, at(20)).unwrap();
        assert_eq!(
            verified,
            TicketClaims {
                key_id: KeyId(7),
                ..claims()
            }
        );
    }

    #[test]
    fn a_code_signed_by_another_key_is_refused() {
        let real = config(1, 1).signer();
        let forger = config(1, 2).signer();
        let ring = ring_of(&[&real]);
        assert_eq!(
            ring.verify(&forger.sign(claims()), at(20)),
            Err(CodeError::BadSignature)
        );
        let unknown = config(9, 1).signer();
        assert_eq!(
            ring.verify(&unknown.sign(claims()), at(20)),
            Err(CodeError::UnknownKey(KeyId(9)))
        );
    }

    #[test]
    fn claims_moved_under_another_signature_are_refused() {
        let signer = config(1, 1).signer();
        let ring = ring_of(&[&signer]);
        let genuine = code::from_text(&signer.sign(claims())).unwrap();
        let other = TicketClaims {
            key_id: KeyId(1),
            seat_id: 1235,
            ..claims()
        };
        let swapped = code::to_text(&code::payload(&other), &genuine.signature);
        assert_eq!(ring.verify(&swapped, at(20)), Err(CodeError::BadSignature));
    }

    #[test]
    fn rotation_keeps_old_tickets_valid_until_their_shows_end() {
        let old = config(1, 1).signer();
        let new = config(2, 2).signer();
        let mut ring = KeyRing::new();
        ring.insert(old.key_id(), &old.public_key(), Some(at(23)))
            .unwrap();
        ring.insert(new.key_id(), &new.public_key(), None).unwrap();
        let old_code = old.sign(claims());
        let new_code = new.sign(claims());
        assert!(ring.verify(&old_code, at(22)).is_ok());
        assert!(ring.verify(&new_code, at(22)).is_ok());
        assert_eq!(
            ring.verify(&old_code, at(23)),
            Err(CodeError::KeyRetired(KeyId(1)))
        );
        assert!(ring.verify(&new_code, at(23)).is_ok());
        let published: Vec<_> = ring.published(at(22)).iter().map(|k| k.key_id).collect();
        assert_eq!(published, [KeyId(1), KeyId(2)]);
        let published: Vec<_> = ring.published(at(23)).iter().map(|k| k.key_id).collect();
        assert_eq!(published, [KeyId(2)]);
    }

    #[test]
    fn published_keys_round_trip_into_a_scanners_ring() {
        let signer = config(4, 3).signer();
        let server = ring_of(&[&signer]);
        let mut scanner = KeyRing::new();
        for k in server.published(at(12)) {
            scanner
                .insert_text(k.key_id, &k.public_key, k.verifies_until)
                .unwrap();
        }
        assert!(scanner.verify(&signer.sign(claims()), at(12)).is_ok());
    }

    #[test]
    fn signing_key_config_parses_and_never_prints_its_seed() {
        let cfg = config(12, 9);
        let text = cfg.to_config_text();
        let parsed = SigningKeyConfig::parse(&text).unwrap();
        assert_eq!(parsed.signer().public_key(), cfg.signer().public_key());
        assert_eq!(parsed.key_id, KeyId(12));
        let seed_text = text.split_once(':').unwrap().1;
        assert!(!format!("{parsed:?}").contains(seed_text));
        assert!(!format!("{:?}", parsed.signer()).contains(seed_text));
        assert_eq!(
            SigningKeyConfig::parse(&format!(" {text}= ")).unwrap().key_id,
            KeyId(12)
        );
        assert_eq!(SigningKeyConfig::parse("abc").unwrap_err(), KeyError::Shape);
        assert_eq!(SigningKeyConfig::parse("x:AAAA").unwrap_err(), KeyError::KeyId);
        assert_eq!(SigningKeyConfig::parse("1:!!!").unwrap_err(), KeyError::Encoding);
        assert_eq!(
            SigningKeyConfig::parse("1:AAAA").unwrap_err(),
            KeyError::Length(3)
        );
    }
}
