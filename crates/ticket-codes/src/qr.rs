//! A ticket code as a QR code in SVG, for the fan's "My tickets" page.
//!
//! Error correction M (15 %): a phone screen held up to a scanner has glare and scratches
//! to survive, and M keeps a ~128-character code at version 7, whose modules stay large
//! enough to read on a small screen. The quiet zone is kept: cameras need it to find the
//! code against a busy page.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use thiserror::Error;

/// Text too long for any QR code (cannot happen for a ticket code, which is ~128 characters).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("the text does not fit a QR code: {0}")]
pub struct QrError(String);

/// An SVG document (no XML declaration, so it can be inlined in HTML) drawing `text`.
pub fn svg(text: &str) -> Result<String, QrError> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| QrError(e.to_string()))?;
    let image = code
        .render::<svg::Color<'_>>()
        .min_dimensions(240, 240)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .quiet_zone(true)
        .build();
    // Drop the XML declaration: inlined SVG in HTML must start at `<svg`.
    Ok(match image.find("<svg") {
        Some(start) => image[start..].to_string(),
        None => image,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code::{self, TicketClaims};
    use crate::keys::KeyId;

    #[test]
    fn a_ticket_code_is_a_version_7_or_smaller_svg() {
        let claims = TicketClaims {
            key_id: KeyId(1),
            ticket_id: 1_234_567,
            schedule_id: 4_321,
            seat_id: 98_765_432,
            issued_at: 1_796_000_000,
        };
        let text = code::to_text(&code::payload(&claims), &[0xab; 64]);
        let qr = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).unwrap();
        assert!(
            matches!(qr.version(), qrcode::Version::Normal(v) if v <= 7),
            "{:?}",
            qr.version()
        );
        let image = svg(&text).unwrap();
        assert!(image.starts_with("<svg"));
        assert!(image.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn text_beyond_any_qr_code_is_an_error() {
        assert!(svg(&"A".repeat(5_000)).is_err());
    }
}
