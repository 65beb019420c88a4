//! Outgoing email: verification links for self-registration (and, later, password resets).
//!
//! One [`Mailer`] per server, built from the configuration:
//!
//! - **SMTP** (`--smtp-url`, lettre on tokio + rustls): `smtps://HOST[:PORT]` (implicit TLS,
//!   port 465 by default) or `smtp://HOST[:PORT]?tls=required` (STARTTLS, refused if the
//!   server does not offer it; `tls=starttls` means the same). Credentials go in the URL
//!   (`smtps://USER:PASSWORD@HOST`, URL-encoded). Certificates are checked against the
//!   Mozilla roots (webpki-roots). Unencrypted `smtp://` is accepted only to a relay on this
//!   machine (a loopback address or `localhost`), and `tls=opportunistic` (which a man in
//!   the middle can strip) never: both would send links that sign people in across the
//!   network in the clear.
//! - **Console** (`--demo` without SMTP): each message's links are printed on stdout, one
//!   line, marked `PASSPORT DEMO EMAIL`, and the message is not sent. Only links to this
//!   server are printed, never the address or the rest of the text.
//! - **Nowhere** (neither): the message is dropped and a warning says email is not
//!   configured.
//!
//! Nothing here logs an address, a subject's personal details or a link: failures are
//! logged by kind (permanent, transient, connection) and SMTP status code only, because an
//! SMTP server's error text often repeats the recipient's address.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::Config;

/// How long one delivery may take (connect, TLS, the whole SMTP conversation).
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Console,
    Nowhere,
}

/// Sends plain-text email (see the module documentation). Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    from: Option<Mailbox>,
    /// This server's public base URL: the console prints only links under it.
    base: String,
}

/// Why a message was not delivered (never carries the address or the text).
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the recipient address is not one email can be sent to")]
    Address,
    #[error("the SMTP server refused the message permanently (status {0})")]
    Permanent(String),
    #[error("the SMTP server refused the message for now (status {0})")]
    Transient(String),
    #[error("could not talk to the SMTP server ({0})")]
    Connection(&'static str),
    #[error("the message could not be built")]
    Build,
}

impl Mailer {
    /// The mailer `config` asks for; an error names what is wrong with `--smtp-url` or
    /// `--mail-from` (checked at start, so a typo stops the server rather than every email).
    pub fn from_config(config: &Config) -> Result<Mailer, String> {
        let base = config.base().to_owned();
        let Some(url) = config.smtp_url.as_deref().filter(|u| !u.trim().is_empty()) else {
            let transport = if config.demo {
                Transport::Console
            } else {
                Transport::Nowhere
            };
            return Ok(Mailer {
                transport,
                from: None,
                base,
            });
        };
        let from: Mailbox = config
            .mail_from
            .as_deref()
            .ok_or("--mail-from (PASSPORT_MAIL_FROM) is needed with --smtp-url")?
            .parse()
            .map_err(|e| format!("--mail-from is not an email address: {e}"))?;
        let url = smtp_url(url)?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
            .map_err(|e| format!("--smtp-url: {e}"))?
            .timeout(Some(SMTP_TIMEOUT));
        // EHLO with this server's public host name (lettre would say "localhost" without
        // its hostname feature), unless the URL names one in its path.
        if url::Url::parse(&url).is_ok_and(|u| u.path().trim_matches('/').is_empty())
            && let Some(id) = client_id(&base)
        {
            builder = builder.hello_name(id);
        }
        Ok(Mailer {
            transport: Transport::Smtp(builder.build()),
            from: Some(from),
            base,
        })
    }

    /// Whether messages actually leave this server (SMTP is configured).
    pub fn sends(&self) -> bool {
        matches!(self.transport, Transport::Smtp(_))
    }

    /// Sends a plain-text message to `to`. Without SMTP: see the module documentation.
    pub async fn send(&self, to: &str, subject: &str, text: &str) -> Result<(), MailError> {
        match &self.transport {
            Transport::Nowhere => {
                tracing::warn!(
                    "email is not configured (--smtp-url): a message was not sent; \
                     people who register cannot verify their address"
                );
                Ok(())
            }
            Transport::Console => {
                println!("{}", self.console_line(subject, text));
                Ok(())
            }
            Transport::Smtp(smtp) => {
                let to: Mailbox = to.parse().map_err(|_| MailError::Address)?;
                let from = self.from.clone().ok_or(MailError::Build)?;
                let message = Message::builder()
                    .from(from)
                    .to(to)
                    .subject(subject)
                    .header(ContentType::TEXT_PLAIN)
                    .body(text.to_owned())
                    .map_err(|_| MailError::Build)?;
                smtp.send(message).await.map(|_| ()).map_err(|e| {
                    let status = e.status().map(|c| c.to_string()).unwrap_or_default();
                    if e.is_permanent() {
                        MailError::Permanent(status)
                    } else if e.is_transient() {
                        MailError::Transient(status)
                    } else if e.is_timeout() {
                        MailError::Connection("timed out")
                    } else if e.is_tls() {
                        MailError::Connection("TLS failed")
                    } else {
                        MailError::Connection("connection failed")
                    }
                })
            }
        }
    }

    /// The one stdout line of a message in demo mode: its subject and its links to this
    /// server (nothing else of the text, never the address).
    fn console_line(&self, subject: &str, text: &str) -> String {
        let links: Vec<&str> = text
            .split_whitespace()
            .filter(|w| w.starts_with(&format!("{}/", self.base)))
            .collect();
        format!(
            "PASSPORT DEMO EMAIL (not sent: no --smtp-url): {subject}: {}",
            if links.is_empty() {
                "(no link in this message)".to_owned()
            } else {
                links.join(" ")
            }
        )
    }
}

/// Checks `--smtp-url` against the TLS rules above and rewrites `tls=starttls` to lettre's
/// `tls=required`.
fn smtp_url(raw: &str) -> Result<String, String> {
    let mut url = url::Url::parse(raw.trim()).map_err(|e| format!("--smtp-url: {e}"))?;
    let host = url
        .host()
        .ok_or("--smtp-url needs a host, like smtps://smtp.example.org")?;
    let loopback = match host {
        // smtp: is not a "special" URL scheme, so its IPv4 hosts arrive as domains.
        url::Host::Domain(d) => {
            d.eq_ignore_ascii_case("localhost")
                || d.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    let tls: Option<String> = url
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.to_ascii_lowercase());
    match (url.scheme(), tls.as_deref()) {
        ("smtps", None) => {}
        ("smtp", Some("required" | "starttls")) => {
            let others: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| k != "tls")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            url.query_pairs_mut()
                .clear()
                .extend_pairs(others)
                .append_pair("tls", "required");
        }
        ("smtp", None) if loopback => {}
        ("smtp", None) => {
            return Err(
                "--smtp-url: unencrypted smtp:// is allowed only to this machine \
                        (localhost); use smtps://HOST or smtp://HOST?tls=required"
                    .into(),
            );
        }
        ("smtp", Some(other)) => {
            return Err(format!(
                "--smtp-url: tls={other} is not accepted; use tls=required (STARTTLS) or smtps://"
            ));
        }
        ("smtps", Some(_)) => {
            return Err("--smtp-url: smtps:// is always TLS; drop the tls= parameter".into());
        }
        (scheme, _) => {
            return Err(format!(
                "--smtp-url: the scheme must be smtp or smtps, not {scheme}"
            ));
        }
    }
    Ok(url.into())
}

/// The EHLO name: the host of the public base URL.
fn client_id(base: &str) -> Option<ClientId> {
    match url::Url::parse(base).ok()?.host()? {
        url::Host::Domain(d) => Some(ClientId::Domain(d.to_owned())),
        url::Host::Ipv4(ip) => Some(ClientId::Ipv4(ip)),
        url::Host::Ipv6(ip) => Some(ClientId::Ipv6(ip)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(smtp: Option<&str>, from: Option<&str>, demo: bool) -> Config {
        let mut c = Config::new("127.0.0.1:8080".parse().unwrap(), "sqlite::memory:");
        c.smtp_url = smtp.map(str::to_owned);
        c.mail_from = from.map(str::to_owned);
        c.demo = demo;
        c
    }

    #[test]
    fn tls_is_required_off_this_machine() {
        for ok in [
            "smtps://smtp.example.org",
            "smtps://user:pa%20ss@smtp.example.org:2465",
            "smtp://smtp.example.org:587?tls=required",
            "smtp://smtp.example.org?tls=starttls",
            "smtp://127.0.0.1:2525",
            "smtp://localhost",
            "smtp://[::1]:25",
        ] {
            let m = Mailer::from_config(&config(
                Some(ok),
                Some("Passport <no-reply@example.org>"),
                false,
            ));
            assert!(m.as_ref().is_ok_and(Mailer::sends), "{ok}: {:?}", m.err());
        }
        assert_eq!(
            smtp_url("smtp://smtp.example.org?tls=starttls").unwrap(),
            "smtp://smtp.example.org?tls=required"
        );
        for bad in [
            "smtp://smtp.example.org",
            "smtp://10.0.0.1:25",
            "smtp://smtp.example.org?tls=opportunistic",
            "smtps://smtp.example.org?tls=required",
            "http://smtp.example.org",
            "not a url",
        ] {
            let m = Mailer::from_config(&config(Some(bad), Some("no-reply@example.org"), false));
            assert!(m.is_err(), "{bad} accepted");
        }
        // SMTP needs a sender; a bad sender is refused.
        assert!(
            Mailer::from_config(&config(Some("smtps://smtp.example.org"), None, false)).is_err()
        );
        assert!(
            Mailer::from_config(&config(
                Some("smtps://smtp.example.org"),
                Some("nobody"),
                false
            ))
            .is_err()
        );
    }

    #[test]
    fn without_smtp_demo_prints_only_links() {
        let demo = Mailer::from_config(&config(None, None, true)).unwrap();
        assert!(!demo.sends());
        let line = demo.console_line(
            "Confirm your email address",
            "Hello alex@example.com,\n\nhttp://127.0.0.1:8080/verify-email/abc\n\nhttps://elsewhere.example/x",
        );
        assert_eq!(
            line,
            "PASSPORT DEMO EMAIL (not sent: no --smtp-url): Confirm your email address: http://127.0.0.1:8080/verify-email/abc"
        );
        assert!(!line.contains("alex"));
        let quiet = Mailer::from_config(&config(None, None, false)).unwrap();
        assert!(!quiet.sends());
        assert!(matches!(quiet.transport, Transport::Nowhere));
    }
}
