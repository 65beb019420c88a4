//! A child's photo as the passport keeps it: a JPEG or PNG of at most [`MAX_BYTES`], with
//! every metadata block that can say where or when it was taken removed before it is
//! stored (issue 10: "size-limited, location metadata stripped").
//!
//! The image is not decoded or re-encoded (that needs a full image library); its container
//! is walked and only the blocks a viewer needs to draw it are kept:
//!
//! - **JPEG**: every segment before the image data except APP1 (Exif, with its GPS
//!   position, and XMP), APP13 (Photoshop/IPTC, which has location fields), the other
//!   application segments and comments. Kept: APP0 (JFIF), APP2 only when it is an ICC
//!   colour profile, APP14 only when it is Adobe's colour-transform flag (without it some
//!   JPEGs draw in the wrong colours), and the tables and frame headers. From the first
//!   start-of-scan the rest is image data and is copied as it is.
//! - **PNG**: the chunks that draw the image (IHDR, PLTE, IDAT, IEND, tRNS) and colour ones
//!   (gAMA, cHRM, sRGB, iCCP, sBIT, pHYs, bKGD); every other chunk — eXIf, text chunks
//!   (tEXt, zTXt, iTXt, which cameras and apps fill with places and dates), tIME — goes.
//!
//! Anything else, or a file whose structure does not hold together, is refused: the
//! person is told, and nothing is stored.

/// The largest photo accepted (after upload, before cleaning).
pub const MAX_BYTES: usize = 5 * 1024 * 1024;

/// Why a photo was refused, in words for the person uploading it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhotoError {
    #[error("The photo must be smaller than 5 MB")]
    TooLarge,
    #[error("Choose a photo")]
    Empty,
    #[error("The photo must be a JPEG or PNG")]
    NotAnImage,
    #[error("The photo could not be read: try saving it again as a JPEG or PNG")]
    Malformed,
}

/// A photo ready to store: its media type and its cleaned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Photo {
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

/// Checks and cleans an uploaded photo.
pub fn clean(bytes: &[u8]) -> Result<Photo, PhotoError> {
    if bytes.is_empty() {
        return Err(PhotoError::Empty);
    }
    if bytes.len() > MAX_BYTES {
        return Err(PhotoError::TooLarge);
    }
    if bytes.starts_with(&[0xFF, 0xD8]) {
        return Ok(Photo {
            content_type: "image/jpeg",
            bytes: jpeg(bytes)?,
        });
    }
    if bytes.starts_with(PNG_SIGNATURE) {
        return Ok(Photo {
            content_type: "image/png",
            bytes: png(bytes)?,
        });
    }
    Err(PhotoError::NotAnImage)
}

const PNG_SIGNATURE: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

/// Whether a JPEG segment (marker, body after the length) is kept.
fn keep_jpeg_segment(marker: u8, body: &[u8]) -> bool {
    match marker {
        0xE0 => true,
        0xE2 => body.starts_with(b"ICC_PROFILE\0"),
        0xEE => body.starts_with(b"Adobe"),
        0xE1 | 0xE3..=0xED | 0xEF | 0xFE => false,
        _ => true,
    }
}

fn jpeg(bytes: &[u8]) -> Result<Vec<u8>, PhotoError> {
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..2]);
    let mut i = 2;
    loop {
        // A marker: 0xFF, any fill bytes 0xFF, then its code.
        if bytes.get(i) != Some(&0xFF) {
            return Err(PhotoError::Malformed);
        }
        while bytes.get(i) == Some(&0xFF) {
            i += 1;
        }
        let marker = *bytes.get(i).ok_or(PhotoError::Malformed)?;
        i += 1;
        match marker {
            // End of image: done (anything after it is not part of the image).
            0xD9 => {
                out.extend_from_slice(&[0xFF, 0xD9]);
                return Ok(out);
            }
            // Markers without a body.
            0x01 | 0xD0..=0xD7 => out.extend_from_slice(&[0xFF, marker]),
            0x00 => return Err(PhotoError::Malformed),
            _ => {
                let len = bytes
                    .get(i..i + 2)
                    .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
                    .ok_or(PhotoError::Malformed)?;
                let body = bytes.get(i + 2..i + len).filter(|_| len >= 2);
                let body = body.ok_or(PhotoError::Malformed)?;
                if marker == 0xDA {
                    // Start of scan: the image data, to the end, as it is.
                    out.extend_from_slice(&[0xFF, marker]);
                    out.extend_from_slice(&bytes[i..]);
                    return Ok(out);
                }
                if keep_jpeg_segment(marker, body) {
                    out.extend_from_slice(&[0xFF, marker]);
                    out.extend_from_slice(&bytes[i..i + len]);
                }
                i += len;
            }
        }
    }
}

/// PNG chunks that draw the image or its colours.
const PNG_KEPT: &[&[u8; 4]] = &[
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT",
    b"pHYs", b"bKGD",
];

fn png(bytes: &[u8]) -> Result<Vec<u8>, PhotoError> {
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(PNG_SIGNATURE);
    let mut i = PNG_SIGNATURE.len();
    let mut first = true;
    while i < bytes.len() {
        let head = bytes.get(i..i + 8).ok_or(PhotoError::Malformed)?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let kind: [u8; 4] = [head[4], head[5], head[6], head[7]];
        // length + type + data + CRC
        let end = i
            .checked_add(12)
            .and_then(|n| n.checked_add(len))
            .filter(|&n| n <= bytes.len())
            .ok_or(PhotoError::Malformed)?;
        if first && &kind != b"IHDR" {
            return Err(PhotoError::Malformed);
        }
        first = false;
        if PNG_KEPT.contains(&&kind) {
            out.extend_from_slice(&bytes[i..end]);
        }
        i = end;
        if &kind == b"IEND" {
            return Ok(out);
        }
    }
    Err(PhotoError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(marker: u8, body: &[u8]) -> Vec<u8> {
        let mut s = vec![0xFF, marker];
        s.extend_from_slice(&u16::try_from(body.len() + 2).unwrap().to_be_bytes());
        s.extend_from_slice(body);
        s
    }

    /// A JPEG's structure: SOI, segments, a scan with its data, EOI.
    fn jpeg_of(segments: &[Vec<u8>]) -> Vec<u8> {
        let mut j = vec![0xFF, 0xD8];
        for s in segments {
            j.extend_from_slice(s);
        }
        j.extend(segment(0xDA, &[1, 1, 0, 0, 63, 0]));
        j.extend_from_slice(&[0x12, 0x34, 0xFF, 0x00, 0x56, 0xFF, 0xD9]);
        j
    }

    #[test]
    fn a_jpeg_loses_its_exif_xmp_iptc_and_comments_and_keeps_what_draws_it() {
        let jfif = segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
        let exif = segment(0xE1, b"Exif\0\0MM\0*GPSLatitude 51.5N GPSLongitude 0.12W");
        let xmp = segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0<exif:GPSLatitude>");
        let icc = segment(0xE2, b"ICC_PROFILE\0\x01\x01colours");
        let iptc = segment(0xED, b"Photoshop 3.0\08BIM City: Leeds");
        let comment = segment(0xFE, b"taken at 12 Acacia Avenue");
        let adobe = segment(0xEE, b"Adobe\0\x64\0\0\0\0\x01");
        let dqt = segment(0xDB, &[0; 65]);
        let sof = segment(0xC0, &[8, 0, 1, 0, 1, 1, 1, 0x11, 0]);
        let dht = segment(0xC4, &[0; 17]);
        let photo = jpeg_of(&[
            jfif.clone(),
            exif,
            xmp,
            icc.clone(),
            iptc,
            comment,
            adobe.clone(),
            dqt.clone(),
            sof.clone(),
            dht.clone(),
        ]);
        let clean = clean(&photo).unwrap();
        assert_eq!(clean.content_type, "image/jpeg");
        assert_eq!(clean.bytes, jpeg_of(&[jfif, icc, adobe, dqt, sof, dht]));
        for gone in [&b"GPS"[..], b"Leeds", b"Acacia", b"Exif"] {
            assert!(
                !clean.bytes.windows(gone.len()).any(|w| w == gone),
                "{}",
                String::from_utf8_lossy(gone)
            );
        }
        // Cleaning a clean photo changes nothing.
        assert_eq!(super::clean(&clean.bytes).unwrap(), clean);
    }

    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut c = u32::try_from(data.len()).unwrap().to_be_bytes().to_vec();
        c.extend_from_slice(kind);
        c.extend_from_slice(data);
        c.extend_from_slice(&[0, 0, 0, 0]);
        c
    }

    #[test]
    fn a_png_loses_its_text_exif_and_time_chunks() {
        let ihdr = chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0]);
        let srgb = chunk(b"sRGB", &[0]);
        let idat = chunk(b"IDAT", &[1, 2, 3]);
        let iend = chunk(b"IEND", &[]);
        let mut photo = PNG_SIGNATURE.to_vec();
        for c in [
            ihdr.clone(),
            srgb.clone(),
            chunk(b"tEXt", b"Location\0Leeds"),
            chunk(b"eXIf", b"MM\0*GPS"),
            chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0GPS"),
            chunk(b"tIME", &[7, 234, 12, 3, 9, 0, 0]),
            idat.clone(),
            iend.clone(),
        ] {
            photo.extend(c);
        }
        let clean = clean(&photo).unwrap();
        let mut want = PNG_SIGNATURE.to_vec();
        for c in [ihdr, srgb, idat, iend] {
            want.extend(c);
        }
        assert_eq!(clean.content_type, "image/png");
        assert_eq!(clean.bytes, want);
    }

    #[test]
    fn what_is_not_a_whole_jpeg_or_png_is_refused() {
        assert_eq!(clean(b""), Err(PhotoError::Empty));
        assert_eq!(clean(b"GIF89a...."), Err(PhotoError::NotAnImage));
        assert_eq!(clean(&vec![0xFF; MAX_BYTES + 1]), Err(PhotoError::TooLarge));
        // Cut short, or a length past the end.
        let whole = jpeg_of(&[segment(0xDB, &[0; 65])]);
        assert_eq!(clean(&whole[..10]), Err(PhotoError::Malformed));
        assert_eq!(
            clean(&[0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xFF, 1]),
            Err(PhotoError::Malformed)
        );
        let mut png = PNG_SIGNATURE.to_vec();
        png.extend(chunk(b"IDAT", &[1]));
        assert_eq!(clean(&png), Err(PhotoError::Malformed), "IHDR first");
        let mut png = PNG_SIGNATURE.to_vec();
        png.extend(chunk(b"IHDR", &[0; 13]));
        assert_eq!(clean(&png), Err(PhotoError::Malformed), "no IEND");
    }
}
