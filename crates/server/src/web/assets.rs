//! The NHS.UK frontend, self-hosted at `/assets/…`.
//!
//! The `nhsuk-frontend` npm package is pinned in `web-assets/package.json` (+ lock) and
//! installed with `npm ci` (`scripts/serve` and CI do it). The server reads the installed
//! package's `dist/` once, at the first request for an asset, from `PASSPORT_ASSETS_DIR`
//! (the package folder) or `web-assets/node_modules/nhsuk-frontend` (under the current
//! directory, then the source tree). Nothing is copied into the repository.
//!
//! The stylesheet's `@font-face` rules point at the licensed Frutiger font on an NHS host:
//! they are removed on load (the font stack falls back to Arial, named again in our own
//! `passport.css`), so a page never makes a request to any other host — and the
//! Content-Security-Policy (`default-src 'self'`) would block one anyway. If the package is
//! not installed, pages still work, unstyled, and a warning is logged once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use axum::extract::Path as UrlPath;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

struct Asset {
    body: Bytes,
    content_type: &'static str,
}

/// Every text asset compressed once, at load: the stylesheet is most of a page's weight
/// (278 KB, 30 KB gzipped). Only static files are compressed: pages carry CSRF tokens next
/// to what people typed, and compressing those would open them to BREACH-style guessing.
fn gzipped(assets: &HashMap<String, Asset>) -> HashMap<String, Bytes> {
    use std::io::Write;
    assets
        .iter()
        .filter(|(_, a)| {
            a.content_type.starts_with("text/") || a.content_type.starts_with("image/svg")
        })
        .filter_map(|(k, a)| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(&a.body).ok()?;
            Some((k.clone(), Bytes::from(e.finish().ok()?)))
        })
        .collect()
}

/// Whether the client takes gzip (`Accept-Encoding`, not refused with `q=0`).
fn accepts_gzip(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|part| {
            let mut it = part.split(';').map(str::trim);
            it.next().is_some_and(|c| c.eq_ignore_ascii_case("gzip"))
                && !it.any(|p| p.replace(' ', "") == "q=0" || p.replace(' ', "") == "q=0.0")
        })
}

const OWN_CSS: &str = include_str!("../../assets/passport.css");
/// Search as you type in long choose-from-list questions (progressive enhancement).
const CHOOSE_JS: &str = include_str!("../../assets/passport-choose.js");

fn package_dir() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("PASSPORT_ASSETS_DIR").map(PathBuf::from),
        Some(PathBuf::from("web-assets/node_modules/nhsuk-frontend")),
        Some(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../web-assets/node_modules/nhsuk-frontend"),
        ),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|d| d.join("dist/nhsuk/nhsuk-frontend.min.css").is_file())
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/manifest+json",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// Removes every `@font-face { … }` block that loads from another host.
pub fn strip_remote_fonts(css: &str) -> String {
    let mut out = String::with_capacity(css.len());
    let mut rest = css;
    while let Some(start) = rest.find("@font-face") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        let block = &rest[start..start + len + 1];
        out.push_str(&rest[..start]);
        if !block.contains("url(http")
            && !block.contains("url(\"http")
            && !block.contains("url('http")
            && !block.contains("url(//")
        {
            out.push_str(block);
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

fn walk(dir: &Path, prefix: &str, out: &mut HashMap<String, Asset>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let key = format!("{prefix}{name}");
        if path.is_dir() {
            walk(&path, &format!("{key}/"), out);
        } else if let Ok(body) = std::fs::read(&path) {
            out.insert(
                key.clone(),
                Asset {
                    content_type: content_type(&key),
                    body: Bytes::from(body),
                },
            );
        }
    }
}

fn load() -> HashMap<String, Asset> {
    let mut files = HashMap::new();
    files.insert(
        "passport.css".to_owned(),
        Asset {
            body: Bytes::from_static(OWN_CSS.as_bytes()),
            content_type: content_type("x.css"),
        },
    );
    files.insert(
        "passport-choose.js".to_owned(),
        Asset {
            body: Bytes::from_static(CHOOSE_JS.as_bytes()),
            content_type: content_type("x.js"),
        },
    );
    let Some(dir) = package_dir() else {
        tracing::warn!(
            "nhsuk-frontend is not installed (run `npm ci` in web-assets/, or set PASSPORT_ASSETS_DIR): pages are served without its styles"
        );
        return files;
    };
    let dist = dir.join("dist/nhsuk");
    walk(&dist.join("assets"), "", &mut files);
    if let Ok(css) = std::fs::read_to_string(dist.join("nhsuk-frontend.min.css")) {
        files.insert(
            "nhsuk-frontend.min.css".into(),
            Asset {
                body: Bytes::from(strip_remote_fonts(&css)),
                content_type: content_type("x.css"),
            },
        );
    }
    if let Ok(js) = std::fs::read(dist.join("nhsuk-frontend.min.js")) {
        files.insert(
            "nhsuk-frontend.min.js".into(),
            Asset {
                body: Bytes::from(js),
                content_type: content_type("x.js"),
            },
        );
    }
    tracing::info!(dir = %dir.display(), files = files.len(), "NHS.UK frontend assets loaded");
    files
}

fn assets() -> &'static HashMap<String, Asset> {
    static ASSETS: OnceLock<HashMap<String, Asset>> = OnceLock::new();
    ASSETS.get_or_init(load)
}

fn assets_gzipped() -> &'static HashMap<String, Bytes> {
    static GZ: OnceLock<HashMap<String, Bytes>> = OnceLock::new();
    GZ.get_or_init(|| gzipped(assets()))
}

/// Loads (and compresses) the assets now rather than at the first request.
pub fn preload() {
    let _ = assets_gzipped();
}

/// `GET /assets/{*path}`.
pub async fn serve(UrlPath(path): UrlPath<String>, headers: axum::http::HeaderMap) -> Response {
    match assets().get(path.as_str()) {
        Some(a) => {
            let gz = assets_gzipped()
                .get(path.as_str())
                .filter(|_| accepts_gzip(&headers));
            let mut resp = gz.unwrap_or(&a.body).clone().into_response();
            let h = resp.headers_mut();
            h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
            if gz.is_some() {
                h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(a.content_type),
            );
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            );
            resp
        }
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_assets_are_served_gzipped_to_those_who_take_it() {
        use std::io::Read;
        let gz = assets_gzipped();
        let own = &gz["passport.css"];
        let mut plain = String::new();
        flate2::read::GzDecoder::new(&own[..])
            .read_to_string(&mut plain)
            .unwrap();
        assert_eq!(plain, OWN_CSS);
        let h = |v: &str| {
            let mut m = axum::http::HeaderMap::new();
            m.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            m
        };
        assert!(accepts_gzip(&h("gzip, deflate, br")));
        assert!(accepts_gzip(&h("br;q=1.0, gzip;q=0.8")));
        assert!(!accepts_gzip(&h("gzip;q=0")));
        assert!(!accepts_gzip(&h("br")));
        assert!(!accepts_gzip(&axum::http::HeaderMap::new()));
    }

    #[test]
    fn remote_fonts_are_removed() {
        let css = "a{b:c}@font-face{font-family:F;src:url(https://assets.nhs.uk/f.woff2)}p{q:r}@font-face{font-family:G;src:url(/g.woff2)}";
        assert_eq!(
            strip_remote_fonts(css),
            "a{b:c}p{q:r}@font-face{font-family:G;src:url(/g.woff2)}"
        );
    }

    #[test]
    fn the_installed_stylesheet_names_no_other_host() {
        let Some(css) = assets().get("nhsuk-frontend.min.css") else {
            eprintln!("nhsuk-frontend not installed; skipped");
            return;
        };
        let text = std::str::from_utf8(&css.body).unwrap();
        assert!(!text.contains("url(http"), "a remote URL is left");
        assert!(!text.contains("url(//"));
    }
}
