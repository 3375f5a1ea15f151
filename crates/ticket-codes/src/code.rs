//! The ticket code: what a ticket's QR code holds, and how to read it back.
//!
//! ## Format, version 1
//!
//! The binary code is the signed payload followed by its Ed25519 signature:
//!
//! | field       | encoding                                   |
//! |-------------|--------------------------------------------|
//! | version     | 1 byte, `0x01`                             |
//! | key id      | unsigned LEB128 varint (u32)               |
//! | ticket id   | zigzag LEB128 varint (i64)                 |
//! | schedule id | zigzag LEB128 varint (i64)                 |
//! | seat id     | zigzag LEB128 varint (i64)                 |
//! | issued at   | zigzag LEB128 varint, Unix seconds (i64)   |
//! | signature   | 64 bytes, Ed25519 over every byte above    |
//!
//! Varints must be minimal (no redundant `0x80` continuation bytes) and nothing may follow
//! the signature, so one set of claims has exactly one code. The text is RFC 4648 base32
//! without padding, upper case: its 32 characters are all in the QR code's alphanumeric
//! mode (5.5 bits a character, against 8 for base64 in byte mode), so a typical code of
//! about 80 bytes is a 128-character text and a version 7 QR code (45 × 45 modules) at
//! error correction M, which a phone camera reads from another phone's screen. Base32 is
//! also easy to read aloud or type when a camera fails: the reader upper-cases and drops
//! spaces and dashes before decoding.
//!
//! Why these fields: the ticket id names the row to admit; the schedule and seat let an
//! offline scanner answer WRONG_SCHEDULE and show the seat without a database; issued-at
//! tells a re-issued ticket from an older one; the key id picks the public key.

use std::fmt;

use thiserror::Error;

/// A signing key's id, written in every code it signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub u32);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The format version this crate writes and reads.
pub const VERSION: u8 = 1;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// What a ticket code says, once its signature is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TicketClaims {
    pub key_id: KeyId,
    pub ticket_id: i64,
    pub schedule_id: i64,
    pub seat_id: i64,
    /// Unix seconds.
    pub issued_at: i64,
}

/// Why a code is not a valid ticket. Every variant is answered INVALID at the door; the
/// reason is for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodeError {
    #[error("the code is not base32 text")]
    NotBase32,
    #[error("unknown code format version {0}")]
    Version(u8),
    #[error("the code ends too early")]
    Truncated,
    #[error("the code has a non-minimal number encoding")]
    NonCanonical,
    #[error("the code's number is out of range")]
    Overflow,
    #[error("the code has {0} bytes after its payload instead of a 64-byte signature")]
    SignatureLength(usize),
    #[error("no key {0} is known")]
    UnknownKey(KeyId),
    #[error("key {0} no longer verifies tickets")]
    KeyRetired(KeyId),
    #[error("the signature does not match")]
    BadSignature,
}

/// A decoded code whose signature is not checked yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnverifiedCode {
    pub claims: TicketClaims,
    /// The signed bytes.
    pub payload: Vec<u8>,
    pub signature: [u8; SIGNATURE_LEN],
}

/// The signed bytes for `claims`.
pub fn payload(claims: &TicketClaims) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    out.push(VERSION);
    put_varint(&mut out, u64::from(claims.key_id.0));
    for value in [
        claims.ticket_id,
        claims.schedule_id,
        claims.seat_id,
        claims.issued_at,
    ] {
        put_varint(&mut out, zigzag(value));
    }
    out
}

/// The text form of a signed payload.
pub fn to_text(payload: &[u8], signature: &[u8; SIGNATURE_LEN]) -> String {
    let mut bytes = Vec::with_capacity(payload.len() + SIGNATURE_LEN);
    bytes.extend_from_slice(payload);
    bytes.extend_from_slice(signature);
    data_encoding::BASE32_NOPAD.encode(&bytes)
}

/// Reads a code's text: tolerant of case, spaces and dashes (people type codes), strict
/// about everything else.
pub fn from_text(text: &str) -> Result<UnverifiedCode, CodeError> {
    let cleaned: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '\n' | '\r' | '\t'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let bytes = data_encoding::BASE32_NOPAD
        .decode(cleaned.as_bytes())
        .map_err(|_| CodeError::NotBase32)?;
    from_bytes(&bytes)
}

/// Reads a binary code.
pub fn from_bytes(bytes: &[u8]) -> Result<UnverifiedCode, CodeError> {
    let (&version, mut rest) = bytes.split_first().ok_or(CodeError::Truncated)?;
    if version != VERSION {
        return Err(CodeError::Version(version));
    }
    let key_id = u32::try_from(take_varint(&mut rest)?).map_err(|_| CodeError::Overflow)?;
    let ticket_id = unzigzag(take_varint(&mut rest)?);
    let schedule_id = unzigzag(take_varint(&mut rest)?);
    let seat_id = unzigzag(take_varint(&mut rest)?);
    let issued_at = unzigzag(take_varint(&mut rest)?);
    let signature: [u8; SIGNATURE_LEN] = rest
        .try_into()
        .map_err(|_| CodeError::SignatureLength(rest.len()))?;
    let payload = bytes[..bytes.len() - SIGNATURE_LEN].to_vec();
    Ok(UnverifiedCode {
        claims: TicketClaims {
            key_id: KeyId(key_id),
            ticket_id,
            schedule_id,
            seat_id,
            issued_at,
        },
        payload,
        signature,
    })
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// One minimal LEB128 varint off the front of `input`.
fn take_varint(input: &mut &[u8]) -> Result<u64, CodeError> {
    let mut value: u64 = 0;
    for (i, &byte) in input.iter().enumerate() {
        let shift = 7 * i as u32;
        if shift > 63 || (shift == 63 && byte > 1) {
            return Err(CodeError::Overflow);
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            // A last byte of zero after others is a redundant continuation.
            if byte == 0 && i > 0 {
                return Err(CodeError::NonCanonical);
            }
            *input = &input[i + 1..];
            return Ok(value);
        }
    }
    Err(CodeError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> TicketClaims {
        TicketClaims {
            key_id: KeyId(3),
            ticket_id: 123_456,
            schedule_id: 42,
            seat_id: 9_876_543,
            issued_at: 1_796_000_000,
        }
    }

    #[test]
    fn payload_round_trips_through_text() {
        let payload = payload(&claims());
        let signature = [7u8; SIGNATURE_LEN];
        let text = to_text(&payload, &signature);
        let code = from_text(&text).unwrap();
        assert_eq!(code.claims, claims());
        assert_eq!(code.payload, payload);
        assert_eq!(code.signature, signature);
    }

    #[test]
    fn a_typical_code_is_short_and_qr_alphanumeric() {
        let text = to_text(&payload(&claims()), &[0; SIGNATURE_LEN]);
        assert!(text.len() <= 130, "{} characters", text.len());
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        );
    }

    #[test]
    fn typed_codes_are_read_case_and_dash_insensitively() {
        let text = to_text(&payload(&claims()), &[1; SIGNATURE_LEN]);
        let typed = text
            .to_lowercase()
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("-");
        assert_eq!(from_text(&typed).unwrap().claims, claims());
    }

    #[test]
    fn extremes_round_trip() {
        for value in [0, 1, -1, i64::MAX, i64::MIN] {
            let c = TicketClaims {
                key_id: KeyId(u32::MAX),
                ticket_id: value,
                schedule_id: value,
                seat_id: value,
                issued_at: value,
            };
            let text = to_text(&payload(&c), &[0; SIGNATURE_LEN]);
            assert_eq!(from_text(&text).unwrap().claims, c);
        }
    }

    #[test]
    fn malformed_codes_are_refused_with_their_reason() {
        let good = {
            let mut b = payload(&claims());
            b.extend_from_slice(&[0; SIGNATURE_LEN]);
            b
        };
        assert_eq!(from_text("not base32!"), Err(CodeError::NotBase32));
        assert_eq!(from_bytes(&[]), Err(CodeError::Truncated));
        let mut other_version = good.clone();
        other_version[0] = 2;
        assert_eq!(from_bytes(&other_version), Err(CodeError::Version(2)));
        assert_eq!(
            from_bytes(&good[..good.len() - 1]),
            Err(CodeError::SignatureLength(63))
        );
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(from_bytes(&longer), Err(CodeError::SignatureLength(65)));
        // Key id 3 written with a redundant continuation byte.
        let redundant = [1u8, 0x83, 0x00];
        assert_eq!(from_bytes(&redundant), Err(CodeError::NonCanonical));
        let too_big = [1u8, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert_eq!(from_bytes(&too_big), Err(CodeError::Overflow));
        assert_eq!(from_bytes(&[1u8, 0x80]), Err(CodeError::Truncated));
    }
}
