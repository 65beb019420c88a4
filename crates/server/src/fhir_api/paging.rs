//! Page positions (`_cursor`, `_before` in `next` and `previous` links) are sealed: encrypted
//! and authenticated (ChaCha20-Poly1305) with a key derived from the deployment's audit key.
//!
//! Why: a position names the last row of a page *before* access filtering (the store pages
//! over every match), which may be a resource the caller may not see — its id and sort
//! values must not reach them. Sealing also makes positions tamper-proof: a client can
//! only send back what this deployment made. Every process of a deployment shares the
//! audit key, so a link made by one process works on another.

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

pub struct PageSealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl PageSealer {
    pub fn new(key: [u8; 32]) -> PageSealer {
        PageSealer {
            key: LessSafeKey::new(
                UnboundKey::new(&CHACHA20_POLY1305, &key).expect("a 256-bit key"),
            ),
            rng: SystemRandom::new(),
        }
    }

    /// `position`, sealed, as URL-safe base64.
    pub fn seal(&self, position: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).expect("the system random source");
        let mut data = position.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
            .expect("sealing cannot fail for short data");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        crate::oauth::jwt::b64(&out)
    }

    /// The position in a sealed string, or `None` if this deployment did not make it.
    pub fn open(&self, sealed: &str) -> Option<String> {
        let raw = crate::oauth::jwt::unb64(sealed)?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, data) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = data.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut data)
            .ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_and_reveal_nothing() {
        let s = PageSealer::new([7; 32]);
        let sealed = s.seal(r#"["2026-01-01","secret-id"]"#);
        assert!(!sealed.contains("secret"));
        assert_eq!(
            s.open(&sealed).as_deref(),
            Some(r#"["2026-01-01","secret-id"]"#)
        );
        // Another deployment's key, a changed byte, garbage: refused.
        assert_eq!(PageSealer::new([8; 32]).open(&sealed), None);
        let mut bytes = crate::oauth::jwt::unb64(&sealed).unwrap();
        bytes[15] ^= 1;
        assert_eq!(s.open(&crate::oauth::jwt::b64(&bytes)), None);
        assert_eq!(s.open("not base64 at all!"), None);
        assert_eq!(s.open(""), None);
    }
}

/// How many of a page's entries (their bodies' sizes in order) fit in `max_bytes` — at
/// least one — when they do not all fit; `None` when they do. A page of a search, history
/// or `$everything` ends there, and its `next` link goes on from the last entry it holds
/// (`--max-bundle-bytes`: the bytes one bundle holds at once are bounded).
pub fn cut_at_bytes(
    sizes: impl ExactSizeIterator<Item = usize>,
    max_bytes: usize,
) -> Option<usize> {
    let len = sizes.len();
    let mut total = 0usize;
    let mut sizes = sizes;
    let over = sizes.position(|n| {
        total = total.saturating_add(n);
        total > max_bytes
    })?;
    let keep = over.max(1);
    (keep < len).then_some(keep)
}

#[cfg(test)]
mod cut_tests {
    use super::cut_at_bytes;

    #[test]
    fn pages_end_at_the_byte_budget_with_at_least_one_entry() {
        let cut = |s: &[usize]| cut_at_bytes(s.iter().copied(), 100);
        assert_eq!(cut(&[10, 10, 10]), None);
        assert_eq!(cut(&[40, 40, 40]), Some(2));
        assert_eq!(cut(&[500, 10]), Some(1));
        // One entry over the budget is still a whole page: nothing more to link to.
        assert_eq!(cut(&[500]), None);
        assert_eq!(cut(&[40, 500]), Some(1));
        assert_eq!(cut(&[]), None);
    }
}
