//! Laying out a passport and a card: text measured with the font's own advances
//! (ttf-parser), wrapped by words to the measure, set in pages of drawing operations, then
//! drawn with krilla.

use std::sync::OnceLock;

use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::metadata::Metadata;
use krilla::page::PageSettings;
use krilla::paint::Fill;
use krilla::text::{Font, TextDirection};

use crate::{A4, CARD};

const REGULAR: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
const BOLD: &[u8] = include_bytes!("../fonts/DejaVuSans-Bold.ttf");

/// A printed passport: what its reader may see, in words.
#[derive(Debug, Clone, Default)]
pub struct Document {
    /// "Mia Jones's passport".
    pub title: String,
    /// Who it is about: "Born 27 March 2019", "NHS Number 943 476 5919".
    pub identity: Vec<String>,
    /// "Printed on 3 December 2026 at 14:02 by Sam Jones".
    pub printed: String,
    /// Warnings and notes under the title (review overdue, items waiting for review).
    pub notes: Vec<String>,
    pub blocks: Vec<Block>,
}

/// A section, or a part of the emergency information.
#[derive(Debug, Clone, Default)]
pub struct Block {
    pub heading: String,
    /// What to say when `entries` is empty: "None recorded." or "Not shared with you."
    pub empty: String,
    pub entries: Vec<Entry>,
}

/// One item: its name, its answers, and its review state.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub heading: String,
    pub rows: Vec<(String, String)>,
    pub status: String,
}

/// A wallet card.
#[derive(Debug, Clone, Default)]
pub struct Card {
    pub name: String,
    /// "Born 27 March 2019", "NHS 943 476 5919".
    pub identity: Vec<String>,
    /// Allergies in a few words each: "Peanut — anaphylaxis (severe)".
    pub allergies: Vec<String>,
    /// Who to call: (name and role, phone).
    pub contacts: Vec<(String, String)>,
    /// The card link the QR code holds.
    pub url: String,
    /// The link needs a passcode (the card says so, never what it is).
    pub passcode: bool,
    /// "Printed on 3 December 2026".
    pub printed: String,
}

struct Fonts {
    regular: Font,
    bold: Font,
    regular_face: ttf_parser::Face<'static>,
    bold_face: ttf_parser::Face<'static>,
}

fn fonts() -> &'static Fonts {
    static FONTS: OnceLock<Fonts> = OnceLock::new();
    FONTS.get_or_init(|| Fonts {
        regular: Font::new(REGULAR.into(), 0).expect("DejaVu Sans loads"),
        bold: Font::new(BOLD.into(), 0).expect("DejaVu Sans Bold loads"),
        regular_face: ttf_parser::Face::parse(REGULAR, 0).expect("DejaVu Sans parses"),
        bold_face: ttf_parser::Face::parse(BOLD, 0).expect("DejaVu Sans Bold parses"),
    })
}

/// The width of `text` set in `size` points.
fn width(bold: bool, size: f32, text: &str) -> f32 {
    let f = fonts();
    let face = if bold { &f.bold_face } else { &f.regular_face };
    let units: u32 = text
        .chars()
        .map(|c| {
            face.glyph_index(c)
                .and_then(|g| face.glyph_hor_advance(g))
                .map_or(0, u32::from)
        })
        .sum();
    units as f32 * size / f32::from(face.units_per_em())
}

/// `text` broken into lines no wider than `max`: between words, and inside a word only
/// when the word alone is wider.
fn wrap(bold: bool, size: f32, text: &str, max: f32) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            let candidate = if line.is_empty() {
                word.to_owned()
            } else {
                format!("{line} {word}")
            };
            if width(bold, size, &candidate) <= max {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            // A word wider than the measure (a long token, an address) is broken.
            for c in word.chars() {
                if !line.is_empty() && width(bold, size, &format!("{line}{c}")) > max {
                    lines.push(std::mem::take(&mut line));
                }
                line.push(c);
            }
        }
        lines.push(line);
    }
    lines
}

/// One drawing operation on a page (y grows downwards; text at its baseline).
enum Op {
    Text {
        x: f32,
        y: f32,
        size: f32,
        bold: bool,
        text: String,
        colour: (u8, u8, u8),
    },
    Rect {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        colour: (u8, u8, u8),
    },
}

const BLACK: (u8, u8, u8) = (33, 43, 50);
const GREY: (u8, u8, u8) = (76, 98, 114);
const NHS_BLUE: (u8, u8, u8) = (0, 94, 184);
const WARNING: (u8, u8, u8) = (255, 235, 59);

/// Text flowing down A4 pages between margins.
struct Flow {
    pages: Vec<Vec<Op>>,
    y: f32,
}

const MARGIN: f32 = 50.0;
const FOOTER: f32 = 40.0;

impl Flow {
    fn new() -> Flow {
        Flow {
            pages: vec![Vec::new()],
            y: MARGIN,
        }
    }

    fn measure() -> f32 {
        A4.0 - 2.0 * MARGIN
    }

    /// Room for `h` more points on this page, or a new page.
    fn need(&mut self, h: f32) {
        if self.y + h > A4.1 - MARGIN - FOOTER {
            self.pages.push(Vec::new());
            self.y = MARGIN;
        }
    }

    fn op(&mut self, op: Op) {
        self.pages.last_mut().expect("a page").push(op);
    }

    /// A wrapped paragraph at `indent`.
    fn text(&mut self, indent: f32, size: f32, bold: bool, colour: (u8, u8, u8), text: &str) {
        let leading = size * 1.35;
        for line in wrap(bold, size, text, Self::measure() - indent) {
            self.need(leading);
            self.y += leading;
            self.op(Op::Text {
                x: MARGIN + indent,
                y: self.y - size * 0.3,
                size,
                bold,
                text: line,
                colour,
            });
        }
    }

    fn gap(&mut self, h: f32) {
        self.y += h;
    }
}

pub(crate) fn passport(doc: &Document) -> Vec<u8> {
    let mut f = Flow::new();
    f.text(0.0, 20.0, true, BLACK, &doc.title);
    for line in &doc.identity {
        f.text(0.0, 11.0, false, GREY, line);
    }
    f.gap(6.0);
    for note in &doc.notes {
        f.need(24.0);
        let top = f.y;
        f.op(Op::Rect {
            x: MARGIN,
            y: top + 2.0,
            w: 4.0,
            h: 16.0,
            colour: WARNING,
        });
        f.text(10.0, 10.0, true, BLACK, note);
        f.gap(4.0);
    }
    for block in &doc.blocks {
        f.gap(10.0);
        // A heading is never the last line of a page.
        f.need(60.0);
        f.op(Op::Rect {
            x: MARGIN,
            y: f.y + 4.0,
            w: Flow::measure(),
            h: 1.5,
            colour: NHS_BLUE,
        });
        f.gap(4.0);
        f.text(0.0, 14.0, true, NHS_BLUE, &block.heading);
        if block.entries.is_empty() {
            f.text(0.0, 10.0, false, GREY, &block.empty);
        }
        for entry in &block.entries {
            f.gap(4.0);
            f.need(30.0);
            f.text(0.0, 11.0, true, BLACK, &entry.heading);
            for (key, value) in &entry.rows {
                f.text(10.0, 10.0, false, BLACK, &format!("{key}: {value}"));
            }
            if !entry.status.is_empty() {
                f.text(10.0, 9.0, false, GREY, &entry.status);
            }
        }
    }
    let total = f.pages.len();
    for (i, page) in f.pages.iter_mut().enumerate() {
        let footer = format!(
            "{}. The online passport is the current one: this printed copy may be out of date. Page {} of {total}.",
            doc.printed,
            i + 1
        );
        let mut y = A4.1 - MARGIN - FOOTER + 14.0;
        for line in wrap(false, 8.0, &footer, Flow::measure()) {
            page.push(Op::Text {
                x: MARGIN,
                y,
                size: 8.0,
                bold: false,
                text: line,
                colour: GREY,
            });
            y += 11.0;
        }
    }
    draw(&doc.title, A4, f.pages)
}

pub(crate) fn card(card: &Card) -> Vec<u8> {
    let (w, h) = CARD;
    let pad = 10.0;
    let qr_side = 86.0;
    let text_w = w - 3.0 * pad - qr_side;
    let mut front = Vec::new();
    // A blue band with the card's purpose.
    front.push(Op::Rect {
        x: 0.0,
        y: 0.0,
        w,
        h: 20.0,
        colour: NHS_BLUE,
    });
    front.push(Op::Text {
        x: pad,
        y: 14.0,
        size: 9.0,
        bold: true,
        text: "EMERGENCY HEALTH INFORMATION".into(),
        colour: (255, 255, 255),
    });
    let mut y = 34.0;
    let line = |page: &mut Vec<Op>, y: &mut f32, size: f32, bold: bool, text: &str, max: f32| {
        for l in wrap(bold, size, text, max) {
            if *y > h - pad {
                return;
            }
            page.push(Op::Text {
                x: pad,
                y: *y,
                size,
                bold,
                text: l,
                colour: BLACK,
            });
            *y += size * 1.3;
        }
    };
    line(&mut front, &mut y, 10.0, true, &card.name, text_w);
    for id in &card.identity {
        line(&mut front, &mut y, 6.5, false, id, text_w);
    }
    y += 3.0;
    line(&mut front, &mut y, 7.0, true, "Allergies", text_w);
    if card.allergies.is_empty() {
        line(&mut front, &mut y, 6.5, false, "None recorded", text_w);
    }
    for a in &card.allergies {
        line(&mut front, &mut y, 6.5, false, a, text_w);
    }
    // The QR code of the card link, with its quiet zone.
    let (dark, modules) = crate::qr::modules(&card.url);
    if modules > 0 {
        let unit = qr_side / (modules as f32 + 8.0);
        let (x0, y0) = (w - pad - qr_side + 4.0 * unit, 26.0 + 4.0 * unit);
        for (c, r) in dark {
            front.push(Op::Rect {
                x: x0 + c as f32 * unit,
                y: y0 + r as f32 * unit,
                w: unit,
                h: unit,
                colour: (0, 0, 0),
            });
        }
    }
    let scan = if card.passcode {
        "Scan for the current plan (passcode needed)"
    } else {
        "Scan for the current plan"
    };
    let mut sy = 26.0 + qr_side + 8.0;
    for l in wrap(false, 5.5, scan, qr_side) {
        front.push(Op::Text {
            x: w - pad - qr_side,
            y: sy,
            size: 5.5,
            bold: false,
            text: l,
            colour: BLACK,
        });
        sy += 7.0;
    }

    let mut back = Vec::new();
    let full = w - 2.0 * pad;
    let mut y = pad + 8.0;
    line(&mut back, &mut y, 8.0, true, "Who to call", full);
    if card.contacts.is_empty() {
        line(&mut back, &mut y, 6.5, false, "None recorded", full);
    }
    for (who, phone) in card.contacts.iter().take(4) {
        line(
            &mut back,
            &mut y,
            6.5,
            false,
            &format!("{who}: {phone}"),
            full,
        );
    }
    y += 4.0;
    line(
        &mut back,
        &mut y,
        6.5,
        true,
        "In an emergency call 999.",
        full,
    );
    y += 2.0;
    let note = format!(
        "{}. The online passport is the current one: scan the code on the front for the plan as it is now. This card may be out of date.",
        card.printed
    );
    line(&mut back, &mut y, 5.5, false, &note, full);
    draw(
        &format!("Emergency card for {}", card.name),
        CARD,
        vec![front, back],
    )
}

/// Draws the pages with krilla.
fn draw(title: &str, (w, h): (f32, f32), pages: Vec<Vec<Op>>) -> Vec<u8> {
    let f = fonts();
    let mut document = krilla::Document::new();
    document.set_metadata(
        Metadata::new()
            .title(title.to_owned())
            .language("en-GB".to_owned())
            .creator("Passport".to_owned()),
    );
    let settings = PageSettings::from_wh(w, h).expect("a page size");
    for ops in pages {
        let mut page = document.start_page_with(settings.clone());
        let mut surface = page.surface();
        for op in ops {
            match op {
                Op::Text {
                    x,
                    y,
                    size,
                    bold,
                    text,
                    colour,
                } => {
                    surface.set_fill(Some(fill(colour)));
                    let font = if bold { &f.bold } else { &f.regular };
                    surface.draw_text(
                        Point::from_xy(x, y),
                        font.clone(),
                        size,
                        &text,
                        false,
                        TextDirection::Auto,
                    );
                }
                Op::Rect { x, y, w, h, colour } => {
                    let Some(rect) = Rect::from_xywh(x, y, w, h) else {
                        continue;
                    };
                    let mut path = PathBuilder::new();
                    path.push_rect(rect);
                    if let Some(path) = path.finish() {
                        surface.set_fill(Some(fill(colour)));
                        surface.draw_path(&path);
                    }
                }
            }
        }
        surface.finish();
        page.finish();
    }
    // krilla refuses only invalid documents (none are built here); an empty answer is
    // refused by the callers' tests.
    document.finish().unwrap_or_default()
}

fn fill((r, g, b): (u8, u8, u8)) -> Fill {
    Fill {
        paint: rgb::Color::new(r, g, b).into(),
        ..Fill::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_wrapped_to_the_measure_and_keep_every_word() {
        let text = "Give buccal midazolam 5 mg (0.5 mL) into the buccal cavity if the seizure lasts more than 5 minutes";
        let lines = wrap(false, 10.0, text, 120.0);
        assert!(lines.len() > 2, "{lines:?}");
        for l in &lines {
            assert!(width(false, 10.0, l) <= 120.0, "{l}");
        }
        assert_eq!(lines.join(" "), text);
        let long = wrap(false, 10.0, &"x".repeat(200), 100.0);
        assert!(long.len() > 1 && long.concat() == "x".repeat(200));
    }

    #[test]
    fn a_passport_and_a_card_are_pdfs() {
        let doc = Document {
            title: "Mia Jones's passport".into(),
            identity: vec!["Born 27 March 2019".into()],
            printed: "Printed on 3 December 2026".into(),
            notes: vec!["1 item is waiting for review".into()],
            blocks: (0..40)
                .map(|i| Block {
                    heading: format!("Section {i}"),
                    empty: "None recorded.".into(),
                    entries: vec![Entry {
                        heading: "Peanut".into(),
                        rows: vec![("Reaction".into(), "Swollen lips".into())],
                        status: "Checked".into(),
                    }],
                })
                .collect(),
        };
        let pdf = passport(&doc);
        assert!(pdf.starts_with(b"%PDF-"), "a PDF");
        if let Ok(dir) = std::env::var("PASSPORT_PRINT_SAMPLES") {
            std::fs::write(format!("{dir}/passport.pdf"), &pdf).unwrap();
        }
        let card = card(&Card {
            name: "Mia Jones".into(),
            url: "https://passport.test/card/abc".into(),
            printed: "Printed on 3 December 2026".into(),
            ..Card::default()
        });
        assert!(card.starts_with(b"%PDF-"));
        if let Ok(dir) = std::env::var("PASSPORT_PRINT_SAMPLES") {
            std::fs::write(format!("{dir}/card.pdf"), &card).unwrap();
        }
    }
}
