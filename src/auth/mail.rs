//! Mail for email verification and password reset, over SMTP (lettre).
//! Off unless `--smtp-url` is given; the HTTP layer then says so.

use clap::Args;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

#[derive(Debug, Args, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct MailArgs {
    /// SMTP server for verification and password-reset mail:
    /// `smtp://[user:password@]host[:port]` (plain SMTP, e.g. a local
    /// relay). Without it those flows are off.
    #[arg(long, env = "ONAIR_SMTP_URL", global = true)]
    pub smtp_url: Option<String>,
    /// Sender address of that mail.
    #[arg(long, env = "ONAIR_SMTP_FROM", global = true)]
    pub smtp_from: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct MailConfig {
    pub smtp_url: Option<String>,
    pub from: Option<String>,
}

impl MailArgs {
    pub fn resolve(&self) -> MailConfig {
        MailConfig {
            smtp_url: self.smtp_url.clone(),
            from: self.smtp_from.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("bad --smtp-url {0:?}: want smtp://[user:password@]host[:port]")]
    BadUrl(String),
    #[error("bad address: {0}")]
    Address(String),
    #[error("cannot send mail: {0}")]
    Send(String),
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

impl Mailer {
    /// `None` when mail is off.
    pub fn new(cfg: &MailConfig) -> Result<Option<Mailer>, MailError> {
        let Some(url) = &cfg.smtp_url else {
            return Ok(None);
        };
        let bad = || MailError::BadUrl(url.clone());
        let rest = url.strip_prefix("smtp://").ok_or_else(bad)?;
        let rest = rest.trim_end_matches('/');
        let (creds, hostport) = match rest.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, rest),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
            None => (hostport, DEFAULT_SMTP_PORT),
        };
        if host.is_empty() {
            return Err(bad());
        }
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(SMTP_TIMEOUT));
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

    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), MailError> {
        let to: Mailbox = to
            .parse()
            .map_err(|e: lettre::address::AddressError| MailError::Address(e.to_string()))?;
        let msg = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .body(body)
            .map_err(|e| MailError::Send(e.to_string()))?;
        self.transport
            .send(msg)
            .await
            .map_err(|e| MailError::Send(e.to_string()))?;
        Ok(())
    }
}
