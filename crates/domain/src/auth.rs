//! The secrets of signing in: argon2id password hashes, RFC 6238 TOTP codes, random tokens
//! and their SHA-256 hashes (what the store keeps).

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, PasswordHash};
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Passwords shorter than this are refused when set.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// TOTP: 30-second steps, 6 digits, HMAC-SHA1 (what every authenticator app supports).
pub const TOTP_STEP_SECS: i64 = 30;
pub const TOTP_DIGITS: u32 = 6;

/// An argon2id PHC string for `password` (default parameters: 19 MiB, 2 passes).
pub fn hash_password(password: &str) -> String {
    Argon2::default()
        .hash_password(password.as_bytes())
        .expect("argon2 hashes any password")
        .to_string()
}

/// Checks `password` against a PHC string; `None` (no account) still spends the same
/// time, against a fixed hash, so response times do not tell which accounts exist.
pub fn verify_password(password: &str, phc: Option<&str>) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_password("not a real password, only for timing"));
    let (phc, real) = match phc {
        Some(p) => (p, true),
        None => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
        && real
}

/// `n` random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the operating system's random source");
    b
}

/// A random 256-bit token, URL-safe base64 (for cookies, links and form fields).
pub fn random_token() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// What the store keeps of a token: its SHA-256.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Constant-time equality of two strings (CSRF tokens).
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The RFC 4226 HOTP value of `counter` (RFC 6238 uses the time step as the counter).
pub fn hotp(secret: &[u8], counter: u64) -> u32 {
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = usize::from(h[h.len() - 1] & 0x0f);
    let bin = u32::from_be_bytes([
        h[offset] & 0x7f,
        h[offset + 1],
        h[offset + 2],
        h[offset + 3],
    ]);
    bin % 10u32.pow(TOTP_DIGITS)
}

/// The TOTP code for `unix_secs`, as the user's app shows it.
pub fn totp_code(secret: &[u8], unix_secs: i64) -> String {
    let step = u64::try_from(unix_secs.max(0) / TOTP_STEP_SECS).unwrap_or(0);
    format!("{:06}", hotp(secret, step))
}

/// Accepts the code of the current step or either neighbour (clock drift).
pub fn totp_ok(secret: &[u8], code: &str, unix_secs: i64) -> bool {
    totp_step(secret, code, unix_secs).is_some()
}

/// The time step whose code `code` is (the current step or either neighbour), if any. The
/// caller refuses a step already used (`Store::accept_totp_step`).
pub fn totp_step(secret: &[u8], code: &str, unix_secs: i64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != TOTP_DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    [-1, 0, 1].into_iter().find_map(|d| {
        let at = unix_secs + d * TOTP_STEP_SECS;
        same(&totp_code(secret, at), code.as_str()).then_some(at.max(0) / TOTP_STEP_SECS)
    })
}

/// RFC 4648 base32 without padding (authenticator apps' secret format).
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buf >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buf << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The `otpauth://` enrolment URI (shown once, as text or a QR code, when the account is made).
pub fn totp_uri(secret: &[u8], login: &str) -> String {
    let label: String = form_urlencoded::byte_serialize(format!("Passport:{login}").as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    format!(
        "otpauth://totp/{label}?secret={}&issuer=Passport&algorithm=SHA1&digits={TOTP_DIGITS}&period={TOTP_STEP_SECS}",
        base32(secret)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 appendix B (SHA-1 key, 8-digit values; we keep the last 6 digits).
        let key = b"12345678901234567890";
        for (t, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(totp_code(key, t), eight[2..], "t={t}");
        }
        assert!(totp_ok(key, "287 082", 59 + 30));
        assert!(!totp_ok(key, "287082", 59 + 90));
        assert!(!totp_ok(key, "28708", 59));
    }

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
    }

    #[test]
    fn passwords_verify() {
        let h = hash_password("correct horse battery");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", Some(&h)));
        assert!(!verify_password("wrong", Some(&h)));
        assert!(!verify_password("correct horse battery", None));
    }
}
