//! Printed passports and wallet cards, as PDF.
//!
//! Typeset with [krilla] (a maintained PDF library: it embeds a subset of the font and
//! writes the PDF objects) in DejaVu Sans, embedded in the binary (`fonts/`, Bitstream Vera
//! licence). This crate knows nothing of FHIR or access: callers hand it what the reader
//! may see, already decided and in words ([`Document`], [`Card`]), and it lays it out:
//! lines wrapped to the measure, pages broken between lines, every page saying when it was
//! printed and that the online passport is the current one.

mod layout;
mod qr;

pub use layout::{Block, Card, Document, Entry};

/// A4 portrait, in points.
pub const A4: (f32, f32) = (595.28, 841.89);
/// A wallet card (ISO/IEC 7810 ID-1, 85.60 × 53.98 mm), in points.
pub const CARD: (f32, f32) = (242.65, 153.01);

/// The passport (or the chosen sections of it) as a PDF.
pub fn passport(doc: &Document) -> Vec<u8> {
    layout::passport(doc)
}

/// The wallet card as a two-page PDF (front: who, allergies and the QR code of the card
/// link; back: who to call and what the card is), each page the size of a bank card.
pub fn card(card: &Card) -> Vec<u8> {
    layout::card(card)
}
