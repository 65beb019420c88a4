//! A minimal HTTP/1.1 client: one keep-alive connection per worker, straight on hyper's
//! connection API (no pool, no redirects, no URL parsing), so that client overhead on a
//! small machine shared with the server stays as low as it can be.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

pub const FHIR_JSON: &str = "application/fhir+json";

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub location: Option<String>,
    pub etag: Option<String>,
    /// Every `Set-Cookie` header (only the web pages set cookies).
    pub set_cookie: Vec<String>,
    pub body: Bytes,
}

pub struct Client {
    addr: SocketAddr,
    host: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Self {
        Client {
            addr,
            host: addr.to_string(),
            sender: None,
        }
    }

    async fn connect(&mut self) -> Result<(), Error> {
        let stream = tokio::net::TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// Sends one request and reads the whole response. A connection the server closed is
    /// re-opened before sending (never after: a request is sent at most once).
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Result<Response, Error> {
        let reusable = match self.sender.as_mut() {
            Some(s) if !s.is_closed() => s.ready().await.is_ok(),
            _ => false,
        };
        if !reusable {
            self.sender = None;
            self.connect().await?;
        }
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body.unwrap_or_default()))?;
        let sender = self.sender.as_mut().expect("connected");
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                self.sender = None;
                return Err(e.into());
            }
        };
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let location = header("location");
        let etag = header("etag");
        let set_cookie = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect();
        let body = match resp.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                self.sender = None;
                return Err(e.into());
            }
        };
        Ok(Response {
            status,
            location,
            etag,
            set_cookie,
            body,
        })
    }

    pub async fn get(&mut self, path: &str) -> Result<Response, Error> {
        self.send(Method::GET, path, &[("accept", FHIR_JSON)], None)
            .await
    }
}

/// The value of cookie `name` among a response's `Set-Cookie` headers.
pub fn cookie_value<'a>(set_cookie: &'a [String], name: &str) -> Option<&'a str> {
    set_cookie.iter().find_map(|c| {
        let (k, v) = c.split(';').next()?.split_once('=')?;
        (k.trim() == name).then(|| v.trim())
    })
}

/// `application/x-www-form-urlencoded` of `pairs` (every byte but the unreserved ones
/// percent-encoded).
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        percent_encode_into(&mut out, k);
        out.push('=');
        percent_encode_into(&mut out, v);
    }
    out
}

/// Percent-encodes `s` into `out`, keeping only `A-Z a-z 0-9 - . _ ~`.
pub fn percent_encode_into(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Standard base64 with padding (RFC 4648 §4), for HTTP Basic credentials.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(A[(n >> (18 - 6 * k)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// base64url without padding (RFC 4648 §5), for the PKCE S256 challenge (RFC 7636).
pub fn base64url(data: &[u8]) -> String {
    base64(data)
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect()
}

/// Decodes `%XX` escapes and `+` (form encoding) in a query-string value.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(x) => {
                    out.push(x);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            x => out.push(x),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The logical id in a `Location` header `{base}/fhir/{Type}/{id}[/_history/{v}]`.
pub fn id_from_location(location: &str) -> Option<&str> {
    type_and_id_from_location(location).map(|(_, id)| id)
}

/// The type and logical id in a location `{base}/fhir/{Type}/{id}[/_history/{v}]`.
pub fn type_and_id_from_location(location: &str) -> Option<(&str, &str)> {
    let rest = &location[location.find("/fhir/")? + "/fhir/".len()..];
    let mut parts = rest.split('/');
    let ty = parts.next().filter(|t| !t.is_empty())?;
    let id = parts.next().filter(|id| !id.is_empty())?;
    Some((ty, id))
}

/// The version number in a weak ETag `W/"n"`.
pub fn version_from_etag(etag: &str) -> Option<u64> {
    etag.trim()
        .strip_prefix("W/")?
        .trim_matches('"')
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_and_etag_parsing() {
        assert_eq!(
            id_from_location("http://127.0.0.1:1/fhir/Patient/abc-1/_history/1"),
            Some("abc-1")
        );
        assert_eq!(
            id_from_location("http://h/base/fhir/Condition/x"),
            Some("x")
        );
        assert_eq!(id_from_location("http://h/fhir/Patient/"), None);
        assert_eq!(id_from_location("http://h/Patient/x"), None);
        assert_eq!(
            type_and_id_from_location("http://h/fhir/Observation/o1/_history/1"),
            Some(("Observation", "o1"))
        );
        assert_eq!(type_and_id_from_location("http://h/fhir//o1"), None);
        assert_eq!(version_from_etag("W/\"12\""), Some(12));
        assert_eq!(version_from_etag("\"12\""), None);
    }

    #[test]
    fn encodings() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
        assert_eq!(
            base64(b"Aladdin:open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(
            form_encode(&[("scope", "system/*.cruds"), ("a b", "x&y=z~")]),
            "scope=system%2F%2A.cruds&a%20b=x%26y%3Dz~"
        );
        let cookies = vec![
            "passport_csrf=abc; Path=/; HttpOnly".to_owned(),
            "passport_session=s1; Path=/".to_owned(),
        ];
        assert_eq!(cookie_value(&cookies, "passport_session"), Some("s1"));
        assert_eq!(cookie_value(&cookies, "passport_csrf"), Some("abc"));
        assert_eq!(cookie_value(&cookies, "other"), None);
    }
}
