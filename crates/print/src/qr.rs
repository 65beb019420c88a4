//! The card link as a QR code: the `qrcode` crate encodes it; each dark module becomes a
//! filled square.

use qrcode::{Color, EcLevel, QrCode};

/// The dark modules of `text`'s QR code (error correction M) as (column, row), and the
/// code's width in modules (without the quiet zone).
pub fn modules(text: &str) -> (Vec<(usize, usize)>, usize) {
    let Ok(code) = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M) else {
        return (Vec::new(), 0);
    };
    let width = code.width();
    let dark = code
        .to_colors()
        .into_iter()
        .enumerate()
        .filter(|(_, c)| *c == Color::Dark)
        .map(|(i, _)| (i % width, i / width))
        .collect();
    (dark, width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_link_fits_a_small_code_with_its_finder_patterns() {
        let (dark, width) = modules(
            "https://passport.example.nhs.uk/card/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        );
        assert!((21..=57).contains(&width), "{width}");
        // The three finder patterns' corners are dark; the one opposite them is light
        // unless data falls there, so check only the three.
        for corner in [(0, 0), (width - 1, 0), (0, width - 1)] {
            assert!(dark.contains(&corner), "{corner:?}");
        }
        assert!(dark.len() > width * width / 4);
    }
}
