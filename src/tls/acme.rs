//! Certificates from an ACME CA (RFC 8555): Let's Encrypt by default, or
//! any CA's directory. One order covers every `--acme-domain`; each name is
//! proved over HTTP-01, answered by the plain HTTP listener.
//!
//! Kept in `<data-dir>/acme/`: the account (one per directory URL) and the
//! last certificate with its key. A restart serves the cached certificate
//! at once, so a CA that is down at start-up costs nothing until renewal
//! is due; failed orders are retried every [`AcmeConfig::retry`].

use super::{unix_now, Certs, Validity};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use sha2::Digest;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Between two orders, and after a failed one: Let's Encrypt allows five
/// failed validations per name per hour.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(600);
/// How often a valid certificate's renewal time is looked at again (the
/// clock may jump; a long sleep would miss it).
const RECHECK: Duration = Duration::from_secs(6 * 3600);
/// One order, from creation to the certificate. The CA's own polling
/// advice fits in it many times.
const ORDER_TIMEOUT: Duration = Duration::from_secs(180);

#[derive(Debug, Clone)]
pub struct AcmeConfig {
    pub domains: Vec<String>,
    pub email: Option<String>,
    pub directory: String,
    /// PEM root for the directory's HTTPS, when it is not publicly trusted.
    pub ca_root: Option<PathBuf>,
    /// `None`: renew at two thirds of the lifetime.
    pub renew_before: Option<Duration>,
    pub retry: Duration,
}

/// HTTP-01 tokens of the orders in progress and their key authorizations.
/// Only this server's own orders add to it (one entry per name), and each
/// order removes its own when it ends.
#[derive(Debug, Default)]
pub struct Challenges {
    tokens: Mutex<HashMap<String, String>>,
}

impl Challenges {
    /// The key authorization to answer `GET /.well-known/acme-challenge/TOKEN`.
    pub fn answer(&self, token: &str) -> Option<String> {
        self.lock().get(token).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Removes an order's tokens however the order ends.
struct Published<'a> {
    challenges: &'a Challenges,
    tokens: Vec<String>,
}

impl Published<'_> {
    fn add(&mut self, token: String, key_authorization: String) {
        self.challenges
            .lock()
            .insert(token.clone(), key_authorization);
        self.tokens.push(token);
    }
}

impl Drop for Published<'_> {
    fn drop(&mut self) {
        let mut map = self.challenges.lock();
        for t in &self.tokens {
            map.remove(t);
        }
    }
}

pub struct Manager {
    cfg: AcmeConfig,
    dir: PathBuf,
    certs: Arc<Certs>,
}

impl Manager {
    pub fn new(cfg: AcmeConfig, data_dir: &Path, certs: Arc<Certs>) -> Manager {
        Manager {
            cfg,
            dir: data_dir.join("acme"),
            certs,
        }
    }

    fn cert_path(&self) -> PathBuf {
        self.dir.join("certificate.pem")
    }

    fn key_path(&self) -> PathBuf {
        self.dir.join("certificate.key")
    }

    /// One account per CA: switching `--acme-directory` must not send one
    /// CA's account to another.
    fn account_path(&self) -> PathBuf {
        let h = sha2::Sha256::digest(self.cfg.directory.as_bytes());
        let tag: String = h[..6].iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("account-{tag}.json"))
    }

    /// Installs the cached certificate if it covers every configured name
    /// and has not expired.
    pub fn load_cached(&self) {
        let (cert, key) = (self.cert_path(), self.key_path());
        if !cert.exists() {
            return;
        }
        match super::load_files(&cert, &key) {
            Ok((k, valid)) => {
                let covered = k
                    .cert
                    .first()
                    .map(super::names)
                    .is_some_and(|names| self.covers(&names));
                if !covered {
                    tracing::info!("cached ACME certificate is for other names: ordering anew");
                } else if valid.not_after <= unix_now() {
                    tracing::info!("cached ACME certificate has expired: ordering anew");
                } else {
                    super::log_installed("loaded from the ACME cache", valid);
                    self.certs.install(k, valid);
                }
            }
            Err(e) => tracing::warn!("ignoring the cached ACME certificate: {e}"),
        }
    }

    fn covers(&self, names: &[String]) -> bool {
        self.cfg
            .domains
            .iter()
            .all(|d| names.iter().any(|n| n.eq_ignore_ascii_case(d)))
    }

    /// Orders whenever the installed certificate is due (or missing), until
    /// `shutdown`.
    pub async fn run(self, challenges: Arc<Challenges>, shutdown: CancellationToken) {
        let mut account: Option<Account> = None;
        loop {
            let now = unix_now();
            let due = self
                .certs
                .validity()
                .map_or(now, |v| v.renew_at(self.cfg.renew_before));
            if due > now {
                let wait = Duration::from_secs(u64::try_from(due - now).unwrap_or(0)).min(RECHECK);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => continue,
                }
            }
            let attempt = async {
                if account.is_none() {
                    account = Some(self.account().await?);
                }
                let account = account.as_ref().expect("set above");
                self.order(account, &challenges).await
            };
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = tokio::time::timeout(ORDER_TIMEOUT, attempt) => r
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("no certificate within {ORDER_TIMEOUT:?}"))),
            };
            match outcome {
                Ok(valid) => {
                    crate::metrics::acme_order(true);
                    super::log_installed("issued by the ACME CA", valid);
                }
                Err(e) => {
                    crate::metrics::acme_order(false);
                    account = None;
                    // The CA forgot the account (a reset test CA, a
                    // deactivated account): the next attempt makes a new one.
                    if unknown_account(&e) {
                        let _ = std::fs::remove_file(self.account_path());
                    }
                    tracing::warn!(
                        directory = %self.cfg.directory,
                        retry_in = ?self.cfg.retry,
                        "ACME order failed: {e:#}"
                    );
                }
            }
            // Also after a success: a renewal window set longer than the
            // lifetime must not turn into a loop of orders.
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.cfg.retry) => {}
            }
        }
    }

    async fn account(&self) -> anyhow::Result<Account> {
        let builder = || match &self.cfg.ca_root {
            Some(root) => Account::builder_with_root(root),
            None => Account::builder(),
        };
        let path = self.account_path();
        if let Ok(text) = std::fs::read_to_string(&path) {
            match serde_json::from_str::<AccountCredentials>(&text) {
                Ok(creds) => return Ok(builder()?.from_credentials(creds).await?),
                Err(e) => tracing::warn!("ignoring {}: {e}", path.display()),
            }
        }
        let contact = self.cfg.email.as_ref().map(|e| format!("mailto:{e}"));
        let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
        let (account, creds) = builder()?
            .create(
                &NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.cfg.directory.clone(),
                None,
            )
            .await?;
        write_private(&path, serde_json::to_string(&creds)?.as_bytes())?;
        tracing::info!(directory = %self.cfg.directory, "ACME account created");
        Ok(account)
    }

    async fn order(&self, account: &Account, challenges: &Challenges) -> anyhow::Result<Validity> {
        let ids: Vec<Identifier> = self
            .cfg
            .domains
            .iter()
            .map(|d| Identifier::Dns(d.clone()))
            .collect();
        let mut order = account.new_order(&NewOrder::new(&ids)).await?;
        let mut published = Published {
            challenges,
            tokens: Vec::new(),
        };
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => anyhow::bail!("authorization is {other:?}"),
            }
            let mut challenge = authz
                .challenge(ChallengeType::Http01)
                .ok_or_else(|| anyhow::anyhow!("the CA offers no HTTP-01 challenge"))?;
            published.add(
                challenge.token.clone(),
                challenge.key_authorization().as_str().to_owned(),
            );
            challenge.set_ready().await?;
        }
        let status = order.poll_ready(&RetryPolicy::default()).await?;
        if status != OrderStatus::Ready {
            anyhow::bail!("order is {status:?}: {:?}", order.state().error);
        }
        drop(published);
        let key_pem = order.finalize().await?;
        let chain_pem = order.poll_certificate(&RetryPolicy::default()).await?;
        let (key, valid) = super::parse_pem(chain_pem.as_bytes(), key_pem.as_bytes(), "ACME")?;
        // Key first: a crash between the two leaves a pair that does not
        // match, which `load_cached` refuses, and the next start orders.
        write_private(&self.key_path(), key_pem.as_bytes())?;
        write_private(&self.cert_path(), chain_pem.as_bytes())?;
        self.certs.install(key, valid);
        Ok(valid)
    }
}

fn unknown_account(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<instant_acme::Error>(),
        Some(instant_acme::Error::Api(p))
            if p.r#type.as_deref() == Some("urn:ietf:params:acme:error:accountDoesNotExist")
    )
}

/// Writes a file only its owner can read, whole or not at all.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().expect("a file in a directory");
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}
