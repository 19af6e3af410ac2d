//! Email over SMTP (lettre's blocking transport): a plain text and an HTML
//! part, with STARTTLS, implicit TLS or none, and optional login.

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmtpTls {
    /// Plain connection (a relay on localhost).
    None,
    /// Upgrade with STARTTLS; refuse a server that does not offer it.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

impl std::str::FromStr for SmtpTls {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(SmtpTls::None),
            "starttls" => Ok(SmtpTls::Starttls),
            "tls" => Ok(SmtpTls::Tls),
            _ => Err(format!("SMTP TLS {s:?}: use none, starttls or tls")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The From address.
    pub from: String,
}

pub fn send(
    cfg: &SmtpConfig,
    to: &[String],
    subject: &str,
    text: &str,
    html: &str,
) -> Result<(), String> {
    let from: Mailbox = cfg
        .from
        .parse()
        .map_err(|e| format!("SMTP from {:?}: {e}", cfg.from))?;
    let mut msg = Message::builder().from(from).subject(subject);
    for a in to {
        msg = msg.to(a.parse().map_err(|e| format!("address {a:?}: {e}"))?);
    }
    let msg = msg
        .multipart(MultiPart::alternative_plain_html(
            text.to_string(),
            html.to_string(),
        ))
        .map_err(|e| format!("building the email: {e}"))?;
    let tls =
        || TlsParameters::new(cfg.host.clone()).map_err(|e| format!("TLS for {}: {e}", cfg.host));
    let mut builder = SmtpTransport::builder_dangerous(&cfg.host)
        .port(cfg.port)
        .timeout(Some(Duration::from_secs(20)));
    builder = match cfg.tls {
        SmtpTls::None => builder.tls(Tls::None),
        SmtpTls::Starttls => builder.tls(Tls::Required(tls()?)),
        SmtpTls::Tls => builder.tls(Tls::Wrapper(tls()?)),
    };
    if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
        builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
    }
    builder
        .build()
        .send(&msg)
        .map(|_| ())
        .map_err(|e| format!("SMTP {}:{}: {e}", cfg.host, cfg.port))
}
