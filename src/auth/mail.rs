//! Mail for email verification and password reset, over SMTP (lettre).
//! Off unless `--smtp-url` is given; the HTTP layer then says so.

use clap::Args;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

#[derive(Debug, Args, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct MailArgs {
    /// SMTP server for verification and password-reset mail:
    /// `smtp://[user:password@]host[:port]` (plain, e.g. a local relay),
    /// `smtp://...:587?tls=required` (STARTTLS, refused without it) or
    /// `smtps://...:465` (TLS from the start). Without it those flows are
    /// off.
    #[arg(long, env = "ONAIR_SMTP_URL", global = true)]
    pub smtp_url: Option<String>,
    /// PEM root the SMTP server's certificate chains to, when a private CA
    /// signed it [default: the public web's roots].
    #[arg(long, env = "ONAIR_SMTP_CA_ROOT", global = true)]
    pub smtp_ca_root: Option<std::path::PathBuf>,
    /// Sender address of that mail.
    #[arg(long, env = "ONAIR_SMTP_FROM", global = true)]
    pub smtp_from: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct MailConfig {
    pub smtp_url: Option<String>,
    pub from: Option<String>,
    pub ca_root: Option<std::path::PathBuf>,
}

impl MailArgs {
    pub fn resolve(&self) -> MailConfig {
        MailConfig {
            smtp_url: self.smtp_url.clone(),
            from: self.smtp_from.clone(),
            ca_root: self.smtp_ca_root.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("bad --smtp-url {0:?}: want smtp://[user:password@]host[:port][?tls=required] or smtps://...")]
    BadUrl(String),
    #[error("SMTP TLS: {0}")]
    Tls(String),
    #[error("bad address: {0}")]
    Address(String),
    #[error("cannot send mail: {0}")]
    Send(String),
}

/// A mail's plain text, and the same as simple HTML.
pub struct MailBody {
    pub text: String,
    pub html: String,
}

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    jobs: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Mail being prepared or sent at once, off the request path. The rate
/// limits keep this far from full; if the SMTP server hangs it fills, and
/// further mail is dropped (and counted) instead of piling up tasks.
pub const MAIL_JOBS: usize = 64;
/// Longest one SMTP delivery may take before it is given up.
pub const SMTP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Port 25 is SMTP's (RFC 5321 4.5.4.2 names no other for relays).
const DEFAULT_SMTP_PORT: u16 = 25;
/// Submission over implicit TLS (RFC 8314 7.3).
const SUBMISSIONS_PORT: u16 = 465;

impl Mailer {
    /// `None` when mail is off.
    pub fn new(cfg: &MailConfig) -> Result<Option<Mailer>, MailError> {
        let Some(url) = &cfg.smtp_url else {
            return Ok(None);
        };
        let bad = || MailError::BadUrl(url.clone());
        let (wrapped, rest) = match url.split_once("://") {
            Some(("smtp", rest)) => (false, rest),
            Some(("smtps", rest)) => (true, rest),
            _ => return Err(bad()),
        };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let starttls = match query {
            "" => false,
            "tls=required" if !wrapped => true,
            _ => return Err(bad()),
        };
        let rest = rest.trim_end_matches('/');
        let (creds, hostport) = match rest.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, rest),
        };
        let default_port = if wrapped {
            SUBMISSIONS_PORT
        } else {
            DEFAULT_SMTP_PORT
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
            None => (hostport, default_port),
        };
        if host.is_empty() {
            return Err(bad());
        }
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(SMTP_TIMEOUT));
        if wrapped || starttls {
            let mut tls = TlsParameters::builder(host.to_string());
            if let Some(path) = &cfg.ca_root {
                let pem = std::fs::read(path)
                    .map_err(|e| MailError::Tls(format!("{}: {e}", path.display())))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| MailError::Tls(format!("{}: {e}", path.display())))?;
                tls = tls.add_root_certificate(cert);
            }
            let tls = tls
                .build_rustls()
                .map_err(|e| MailError::Tls(e.to_string()))?;
            // Credentials never cross the network in the clear: STARTTLS is
            // required, not merely tried.
            builder = builder.tls(if wrapped {
                Tls::Wrapper(tls)
            } else {
                Tls::Required(tls)
            });
        }
        if let Some(c) = creds {
            let (u, p) = c.split_once(':').ok_or_else(bad)?;
            builder = builder.credentials(Credentials::new(u.to_string(), p.to_string()));
        }
        let from = cfg
            .from
            .clone()
            .unwrap_or_else(|| format!("onair <onair@{host}>"));
        let from: Mailbox = from
            .parse()
            .map_err(|e: lettre::address::AddressError| MailError::Address(e.to_string()))?;
        Ok(Some(Mailer {
            transport: builder.build(),
            from,
            jobs: std::sync::Arc::new(tokio::sync::Semaphore::new(MAIL_JOBS)),
        }))
    }

    /// A place for one more mail job, or `None` when [`MAIL_JOBS`] are
    /// already under way. Hold it until the job ends.
    pub fn job(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let permit = self.jobs.clone().try_acquire_owned().ok();
        if permit.is_none() {
            crate::metrics::limit_hit("mail_jobs");
        }
        permit
    }

    pub async fn send(&self, to: &str, subject: &str, body: MailBody) -> Result<(), MailError> {
        let to: Mailbox = to
            .parse()
            .map_err(|e: lettre::address::AddressError| MailError::Address(e.to_string()))?;
        let msg = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .multipart(lettre::message::MultiPart::alternative_plain_html(
                body.text, body.html,
            ))
            .map_err(|e| MailError::Send(e.to_string()))?;
        self.transport
            .send(msg)
            .await
            .map_err(|e| MailError::Send(e.to_string()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailer(url: &str) -> Result<Option<Mailer>, MailError> {
        Mailer::new(&MailConfig {
            smtp_url: Some(url.into()),
            from: Some("onair <onair@example.com>".into()),
            ca_root: None,
        })
    }

    #[test]
    fn smtp_urls_are_plain_starttls_or_tls_and_nothing_else() {
        for good in [
            "smtp://relay.local",
            "smtp://relay.local:2525",
            "smtp://me:pw@mail.example.com:587?tls=required",
            "smtps://me:pw@mail.example.com",
            "smtps://mail.example.com:465/",
        ] {
            assert!(matches!(mailer(good), Ok(Some(_))), "{good}");
        }
        for bad in [
            "http://mail.example.com",
            "mail.example.com:25",
            "smtp://",
            "smtp://host:port",
            "smtp://me@host:25",
            "smtp://host?tls=maybe",
            // TLS from the first byte needs no STARTTLS on top.
            "smtps://host?tls=required",
        ] {
            assert!(matches!(mailer(bad), Err(MailError::BadUrl(_))), "{bad}");
        }
        let missing = Mailer::new(&MailConfig {
            smtp_url: Some("smtps://host".into()),
            from: None,
            ca_root: Some("/nonexistent/ca.pem".into()),
        });
        assert!(matches!(missing, Err(MailError::Tls(_))));
        assert!(matches!(Mailer::new(&MailConfig::default()), Ok(None)));
    }
}
