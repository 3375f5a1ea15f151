//! Signed export URLs: who asked for which export of which performance, and until when,
//! under an HMAC-SHA256 of the server's key (`EXPORT_URL_SECRET`). The URL is the whole
//! credential (a browser downloads it without a token), so it lives minutes.

use hmac::{Hmac, Mac as _};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::Sha256;

use super::ExportKind;

/// What a URL grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    pub schedule_id: i64,
    pub kind: ExportKind,
    /// Unix seconds.
    pub expires: i64,
    /// The account that asked; checked again when the URL is used.
    pub user_id: i64,
}

fn mac(secret: &SecretString, g: &Grant) -> Hmac<Sha256> {
    // An HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(
        format!(
            "export v1\n{}\n{}\n{}\n{}",
            g.schedule_id,
            g.kind.file(),
            g.expires,
            g.user_id
        )
        .as_bytes(),
    );
    mac
}

/// The signature of a grant, hex.
pub fn sign(secret: &SecretString, g: &Grant) -> String {
    hex::encode(mac(secret, g).finalize().into_bytes())
}

/// Whether `signature` (hex) is the grant's, compared in constant time.
pub fn verify(secret: &SecretString, g: &Grant, signature: &str) -> bool {
    hex::decode(signature).is_ok_and(|sig| mac(secret, g).verify_slice(&sig).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_change_breaks_the_signature() {
        let key: SecretString = "k".repeat(32).into();
        let g = Grant {
            schedule_id: 7,
            kind: ExportKind::Sales,
            expires: 1_900_000_000,
            user_id: 3,
        };
        let sig = sign(&key, &g);
        assert!(verify(&key, &g, &sig));
        for other in [
            Grant { schedule_id: 8, ..g },
            Grant {
                kind: ExportKind::Attendees,
                ..g
            },
            Grant {
                expires: g.expires + 1,
                ..g
            },
            Grant { user_id: 4, ..g },
        ] {
            assert!(!verify(&key, &other, &sig), "{other:?}");
        }
        assert!(!verify(&"j".repeat(32).into(), &g, &sig));
        assert!(!verify(&key, &g, "zz"));
        assert!(!verify(&key, &g, ""));
    }
}
