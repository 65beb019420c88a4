//! Compact JWS (RFC 7515) as the authorisation server needs it: signing our tokens with
//! ES256, and verifying JWTs signed with a client's public JWK (RS256, RS384, ES256, ES384).
//! RustCrypto throughout (p256, p384, rsa): pure Rust, no C toolchain.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

/// Hex SHA-256, how secrets, codes and refresh tokens are stored.
pub fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new 256-bit random value, base64url (43 characters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    b64(&bytes)
}

/// A JWT split into its parts (not yet verified).
pub struct Parsed<'a> {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    /// `header.payload`, what the signature covers.
    pub signing_input: &'a str,
    pub signature: Vec<u8>,
}

pub fn parse(token: &str) -> Option<Parsed<'_>> {
    let (signing_input, sig) = token.rsplit_once('.')?;
    let (h, p) = signing_input.split_once('.')?;
    let header: Map<String, Value> = serde_json::from_slice(&unb64(h)?).ok()?;
    let claims: Map<String, Value> = serde_json::from_slice(&unb64(p)?).ok()?;
    Some(Parsed {
        header,
        claims,
        signing_input,
        signature: unb64(sig)?,
    })
}

/// Signs `claims` with an ES256 key; the header names `kid`.
pub fn sign_es256(key: &p256::ecdsa::SigningKey, kid: &str, claims: &Value) -> String {
    use p256::ecdsa::signature::Signer;
    let header = serde_json::json!({ "alg": "ES256", "typ": "JWT", "kid": kid });
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    // Low-S, as Passport asks of its clients (see `is_high_s`).
    let sig: p256::ecdsa::Signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64(&sig.normalize_s().to_bytes()))
}

/// The public JWK of an ES256 key (without `kid`).
pub fn es256_public_jwk(key: &p256::ecdsa::VerifyingKey) -> Value {
    let point = key.to_sec1_bytes();
    // Uncompressed SEC1: 0x04 || x (32) || y (32).
    serde_json::json!({
        "kty": "EC",
        "crv": "P-256",
        "x": b64(&point[1..33]),
        "y": b64(&point[33..65]),
    })
}

/// RFC 7638 thumbprint of an EC JWK, base64url: a stable `kid`.
pub fn ec_thumbprint(jwk: &Value) -> String {
    let canonical = format!(
        r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
        jwk["crv"].as_str().unwrap_or_default(),
        jwk["x"].as_str().unwrap_or_default(),
        jwk["y"].as_str().unwrap_or_default()
    );
    b64(&Sha256::digest(canonical.as_bytes()))
}

fn ec_point(jwk: &Value, crv: &str, len: usize) -> Option<Vec<u8>> {
    if jwk["kty"] != "EC" || jwk["crv"] != crv {
        return None;
    }
    let x = unb64(jwk["x"].as_str()?)?;
    let y = unb64(jwk["y"].as_str()?)?;
    if x.len() != len || y.len() != len {
        return None;
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(4);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Some(point)
}

/// A parsed ES256 public key (for verifying our own tokens).
pub fn es256_verifying_key(jwk: &Value) -> Option<p256::ecdsa::VerifyingKey> {
    p256::ecdsa::VerifyingKey::from_sec1_bytes(&ec_point(jwk, "P-256", 32)?).ok()
}

/// Verifies an ES256 signature in either S form (client assertions must also pass
/// [`is_high_s`]; an OpenID provider's id token need not).
pub fn verify_es256(key: &p256::ecdsa::VerifyingKey, input: &str, sig: &[u8]) -> bool {
    use p256::ecdsa::signature::Verifier;
    p256::ecdsa::Signature::from_slice(sig).is_ok_and(|s| key.verify(input.as_bytes(), &s).is_ok())
}

/// Is `signature` an ECDSA signature (`alg` ES256 or ES384) in its high-S form (s > n/2)?
/// For every valid signature (r, s) the pair (r, n − s) is valid too; client assertions are
/// accepted in the low-S form only, so that a captured assertion has exactly one valid
/// encoding (docs/SECURITY.md §16). Many JOSE libraries (OpenSSL underneath) do not
/// normalise S: integrators must, or use RS384 (docs/SECURITY.md §16).
pub fn is_high_s(alg: &str, signature: &[u8]) -> bool {
    match alg {
        "ES256" => {
            p256::ecdsa::Signature::from_slice(signature).is_ok_and(|s| s.normalize_s() != s)
        }
        "ES384" => {
            p384::ecdsa::Signature::from_slice(signature).is_ok_and(|s| s.normalize_s() != s)
        }
        _ => false,
    }
}

/// Verifies `signature` over `input` with a client's public `jwk` under `alg`. `false` for an
/// unsupported algorithm, a key of the wrong type, or a bad signature.
pub fn verify_with_jwk(alg: &str, jwk: &Value, input: &str, signature: &[u8]) -> bool {
    if jwk
        .get("alg")
        .and_then(Value::as_str)
        .is_some_and(|a| a != alg)
    {
        return false;
    }
    match alg {
        "ES256" => es256_verifying_key(jwk).is_some_and(|k| verify_es256(&k, input, signature)),
        "ES384" => {
            use p384::ecdsa::signature::Verifier;
            let Some(point) = ec_point(jwk, "P-384", 48) else {
                return false;
            };
            let (Ok(key), Ok(sig)) = (
                p384::ecdsa::VerifyingKey::from_sec1_bytes(&point),
                p384::ecdsa::Signature::from_slice(signature),
            ) else {
                return false;
            };
            key.verify(input.as_bytes(), &sig).is_ok()
        }
        "RS256" | "RS384" => {
            use rsa::signature::Verifier;
            if jwk["kty"] != "RSA" {
                return false;
            }
            let (Some(n), Some(e)) = (
                jwk["n"].as_str().and_then(unb64),
                jwk["e"].as_str().and_then(unb64),
            ) else {
                return false;
            };
            let Ok(key) = rsa::PublicKey::new(
                rsa::BoxedUint::from_be_slice_vartime(&n),
                rsa::BoxedUint::from_be_slice_vartime(&e),
            ) else {
                return false;
            };
            let Ok(sig) = rsa::pkcs1v15::Signature::try_from(signature) else {
                return false;
            };
            if alg == "RS256" {
                rsa::pkcs1v15::VerifyingKey::<rsa::sha2::Sha256>::new(key)
                    .verify(input.as_bytes(), &sig)
                    .is_ok()
            } else {
                rsa::pkcs1v15::VerifyingKey::<rsa::sha2::Sha384>::new(key)
                    .verify(input.as_bytes(), &sig)
                    .is_ok()
            }
        }
        _ => false,
    }
}
