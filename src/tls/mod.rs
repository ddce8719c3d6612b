//! TLS for the TCP listeners: HTTPS (HTTP/1.1 and HTTP/2) and RTMPS share
//! one certificate, from PEM files (read again on SIGHUP) or from an ACME
//! CA ([`acme`]). The certificate is looked up per handshake, so a new one
//! takes effect for new connections without dropping the open ones.

pub mod acme;

use clap::Args;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

pub const DEFAULT_HTTPS: &str = "0.0.0.0:8443";
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// A handshake must finish within this, like a request head
/// ([`crate::http::listen::HEADER_TIMEOUT`]): a client that opens a
/// connection and says nothing holds a slot no longer than that.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Args, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct TlsArgs {
    /// Certificate chain (PEM) for HTTPS and RTMPS; read again on SIGHUP.
    /// Turns TLS on, with `--tls-key`.
    #[arg(long, env = "ONAIR_TLS_CERT", global = true)]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "ONAIR_TLS_KEY", global = true)]
    pub tls_key: Option<PathBuf>,
    /// Get the certificate from an ACME CA (Let's Encrypt by default) for
    /// this name; repeat or comma-separate for more. Turns TLS on. The CA
    /// checks each name over plain HTTP on port 80 (HTTP-01), so `--http`
    /// must be reachable there. Certificates are kept in the data dir and
    /// renewed a third of their lifetime before they expire.
    #[arg(long, env = "ONAIR_ACME_DOMAIN", value_delimiter = ',', global = true)]
    pub acme_domain: Vec<String>,
    /// Contact address given to the ACME CA (expiry warnings).
    #[arg(long, env = "ONAIR_ACME_EMAIL", global = true)]
    pub acme_email: Option<String>,
    /// The ACME CA's directory URL [default: Let's Encrypt's].
    #[arg(long, env = "ONAIR_ACME_DIRECTORY", global = true)]
    pub acme_directory: Option<String>,
    /// PEM root certificate that the ACME directory's own HTTPS chains to,
    /// for a private CA. Default: the system's roots.
    #[arg(long, env = "ONAIR_ACME_CA_ROOT", global = true)]
    pub acme_ca_root: Option<PathBuf>,
    /// Renew this long before expiry instead of at two thirds of the
    /// lifetime (tests).
    #[arg(long, hide = true, global = true, value_parser = parse_long_duration)]
    #[serde(skip)]
    pub acme_renew_before: Option<Duration>,
    /// Wait between two orders, and after a failed one. Default 10 min.
    #[arg(long, hide = true, global = true, value_parser = crate::hooks::parse_duration)]
    #[serde(skip)]
    pub acme_retry: Option<Duration>,
    /// HTTPS listener (with TLS on): API, WHIP/WHEP, HLS, web UI, WSS.
    /// Plain `--http` then only redirects here and answers ACME challenges.
    #[arg(long, env = "ONAIR_HTTPS", global = true, default_value = DEFAULT_HTTPS)]
    pub https: Option<SocketAddr>,
    /// RTMPS ingest (RTMP over TLS, `rtmps://HOST:PORT/live`) on this
    /// address, with the same certificate. Needs TLS on.
    #[arg(long, env = "ONAIR_RTMPS", global = true)]
    pub rtmps: Option<SocketAddr>,
}

/// Where the certificate comes from.
#[derive(Debug, Clone)]
pub enum CertSource {
    Files { cert: PathBuf, key: PathBuf },
    Acme(acme::AcmeConfig),
}

/// Resolved TLS settings; `source: None` is plain HTTP only.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub source: Option<CertSource>,
    pub https: SocketAddr,
    pub rtmps: Option<SocketAddr>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            source: None,
            https: DEFAULT_HTTPS.parse().expect("literal"),
            rtmps: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("--tls-cert and --tls-key go together")]
    HalfPair,
    #[error("give either --tls-cert/--tls-key or --acme-domain, not both")]
    TwoSources,
    #[error("--rtmps needs TLS: --tls-cert/--tls-key or --acme-domain")]
    RtmpsWithoutTls,
    #[error("bad --acme-domain {0:?}: expected a DNS name such as live.example.com")]
    Domain(String),
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0}: no certificate in it")]
    NoCertificate(String),
    #[error("{0}: {1}")]
    Pem(String, rustls_pki_types::pem::Error),
    #[error("{0}: unusable private key: {1}")]
    Key(String, rustls::Error),
    #[error("{0}: the private key does not belong to the certificate")]
    Mismatch(String),
    #[error("{0}: cannot read the certificate's validity")]
    Validity(String),
}

impl TlsArgs {
    /// Flags over the file's values (`file` holds what the TOML file said).
    pub fn resolve(&self, file: &TlsArgs) -> Result<TlsConfig, TlsError> {
        let pick = |a: &Option<PathBuf>, b: &Option<PathBuf>| a.clone().or_else(|| b.clone());
        let cert = pick(&self.tls_cert, &file.tls_cert);
        let key = pick(&self.tls_key, &file.tls_key);
        let domains = if self.acme_domain.is_empty() {
            file.acme_domain.clone()
        } else {
            self.acme_domain.clone()
        };
        let source = match (cert, key, domains.is_empty()) {
            (Some(_), _, false) | (_, Some(_), false) => return Err(TlsError::TwoSources),
            (Some(cert), Some(key), true) => Some(CertSource::Files { cert, key }),
            (Some(_), None, true) | (None, Some(_), true) => return Err(TlsError::HalfPair),
            (None, None, true) => None,
            (None, None, false) => {
                for d in &domains {
                    if !valid_domain(d) {
                        return Err(TlsError::Domain(d.clone()));
                    }
                }
                Some(CertSource::Acme(acme::AcmeConfig {
                    domains,
                    email: self.acme_email.clone().or_else(|| file.acme_email.clone()),
                    directory: self
                        .acme_directory
                        .clone()
                        .or_else(|| file.acme_directory.clone())
                        .unwrap_or_else(|| LETS_ENCRYPT.to_owned()),
                    ca_root: pick(&self.acme_ca_root, &file.acme_ca_root),
                    renew_before: self.acme_renew_before.or(file.acme_renew_before),
                    retry: self
                        .acme_retry
                        .or(file.acme_retry)
                        .unwrap_or(acme::DEFAULT_RETRY),
                }))
            }
        };
        let rtmps = self.rtmps.or(file.rtmps);
        if rtmps.is_some() && source.is_none() {
            return Err(TlsError::RtmpsWithoutTls);
        }
        Ok(TlsConfig {
            source,
            https: self
                .https
                .or(file.https)
                .unwrap_or_else(|| DEFAULT_HTTPS.parse().expect("literal")),
            rtmps,
        })
    }
}

/// `90d`, `12h`, `30m` or `5s`.
fn parse_long_duration(s: &str) -> Result<Duration, String> {
    let unit = match s.chars().last() {
        Some('d') => 86_400,
        Some('h') => 3600,
        Some('m') => 60,
        Some('s') => 1,
        _ => {
            return Err(format!(
                "{s:?}: expected a number of days, hours, minutes or seconds (90d, 12h, 30m, 5s)"
            ))
        }
    };
    let n: u64 = s[..s.len() - 1]
        .parse()
        .map_err(|_| format!("{s:?}: expected a number before the unit"))?;
    Ok(Duration::from_secs(n.saturating_mul(unit)))
}

/// A DNS name an ACME CA could issue for: letters, digits, hyphens and
/// dots, a leading `*.` for a wildcard (which needs DNS-01, so the CA will
/// refuse it over HTTP-01; the CA says so in the log).
fn valid_domain(d: &str) -> bool {
    let d = d.strip_prefix("*.").unwrap_or(d);
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The certificate every handshake gets; replaced whole when it is
/// renewed or reloaded.
#[derive(Debug, Default)]
pub struct Certs {
    current: RwLock<Option<Installed>>,
}

#[derive(Debug, Clone)]
struct Installed {
    key: Arc<CertifiedKey>,
    valid: Validity,
}

/// A certificate's validity period, in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

impl Validity {
    /// When to renew: `before` the end, or at two thirds of the lifetime
    /// (what Let's Encrypt advises, whatever the lifetime).
    pub fn renew_at(&self, before: Option<Duration>) -> i64 {
        match before {
            Some(b) => self
                .not_after
                .saturating_sub(i64::try_from(b.as_secs()).unwrap_or(i64::MAX)),
            None => self.not_before + (self.not_after - self.not_before) * 2 / 3,
        }
    }
}

impl Certs {
    pub fn install(&self, key: Arc<CertifiedKey>, valid: Validity) {
        crate::metrics::set_tls_not_after(valid.not_after);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) =
            Some(Installed { key, valid });
    }

    /// The installed certificate's validity, if there is one.
    pub fn validity(&self) -> Option<Validity> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|c| c.valid)
    }
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // One certificate for every name: ACME orders cover them all.
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|c| c.key.clone())
    }
}

/// A chain and its key from PEM text; `what` names them in errors.
pub fn parse_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    what: &str,
) -> Result<(Arc<CertifiedKey>, Validity), TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(what.to_owned(), e))?;
    let leaf = chain
        .first()
        .ok_or_else(|| TlsError::NoCertificate(what.to_owned()))?;
    let valid = validity(leaf).ok_or_else(|| TlsError::Validity(what.to_owned()))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Pem(what.into(), e))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| TlsError::Key(what.to_owned(), e))?;
    let certified = CertifiedKey::new(chain, signer);
    if certified.keys_match().is_err() {
        return Err(TlsError::Mismatch(what.to_owned()));
    }
    Ok((Arc::new(certified), valid))
}

/// Reads a certificate and key pair of PEM files.
pub fn load_files(cert: &Path, key: &Path) -> Result<(Arc<CertifiedKey>, Validity), TlsError> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| TlsError::Read(p.to_path_buf(), e));
    parse_pem(&read(cert)?, &read(key)?, &cert.display().to_string())
}

fn validity(der: &CertificateDer<'_>) -> Option<Validity> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some(Validity {
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// The DNS names a certificate is for (its subject alternative names).
pub fn names(der: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// TLS at run time: the certificate store and the server configurations
/// built on it.
pub struct Tls {
    pub certs: Arc<Certs>,
    /// HTTPS: ALPN offers HTTP/2, then HTTP/1.1.
    pub https: Arc<ServerConfig>,
    /// RTMPS: no ALPN (OBS and ffmpeg send none).
    pub plain: Arc<ServerConfig>,
    /// ACME HTTP-01 answers, served on the plain HTTP listener.
    pub challenges: Arc<acme::Challenges>,
}

impl Tls {
    /// Installs the first certificate (the files, or the ACME cache) and
    /// starts what keeps it current: SIGHUP for files, the ACME task for
    /// ACME. Files that cannot be read are fatal here, never later.
    pub fn start(
        source: &CertSource,
        data_dir: &Path,
        shutdown: CancellationToken,
        tracker: &tokio_util::task::TaskTracker,
    ) -> anyhow::Result<Tls> {
        let certs = Arc::new(Certs::default());
        let challenges = Arc::new(acme::Challenges::default());
        match source {
            CertSource::Files { cert, key } => {
                let (k, valid) = load_files(cert, key)?;
                log_installed("loaded", valid);
                certs.install(k, valid);
                tracker.spawn(reload_on_sighup(
                    certs.clone(),
                    cert.clone(),
                    key.clone(),
                    shutdown,
                ));
            }
            CertSource::Acme(cfg) => {
                let manager = acme::Manager::new(cfg.clone(), data_dir, certs.clone());
                manager.load_cached();
                tracker.spawn(manager.run(challenges.clone(), shutdown));
            }
        }
        Ok(Tls {
            https: Arc::new(server_config(
                certs.clone(),
                vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            )),
            plain: Arc::new(server_config(certs.clone(), Vec::new())),
            certs,
            challenges,
        })
    }
}

fn server_config(certs: Arc<Certs>, alpn: Vec<Vec<u8>>) -> ServerConfig {
    let mut c =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(certs);
    c.alpn_protocols = alpn;
    c
}

fn log_installed(how: &str, valid: Validity) {
    let days = (valid.not_after - unix_now()) / 86_400;
    tracing::info!(
        not_after = valid.not_after,
        days_left = days,
        "TLS certificate {how}"
    );
}

/// Reads the files again on each SIGHUP; a pair that does not load keeps
/// the current certificate (and says why), so a half-copied renewal never
/// takes HTTPS down.
async fn reload_on_sighup(
    certs: Arc<Certs>,
    cert: PathBuf,
    key: PathBuf,
    shutdown: CancellationToken,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: the TLS certificate will not be reloaded");
        return;
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            got = hup.recv() => if got.is_none() { return },
        }
        match load_files(&cert, &key) {
            Ok((k, valid)) => {
                certs.install(k, valid);
                log_installed("reloaded", valid);
            }
            Err(e) => tracing::warn!("SIGHUP: kept the current TLS certificate: {e}"),
        }
    }
}

/// Completes a server handshake within [`HANDSHAKE_TIMEOUT`].
pub async fn accept<S>(
    config: &Arc<ServerConfig>,
    io: S,
) -> Option<tokio_rustls::server::TlsStream<S>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(config.clone());
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            tracing::trace!("TLS handshake failed: {e}");
            None
        }
        Err(_) => {
            crate::metrics::limit_hit("tls_handshake_timeout");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_dns_names() {
        for ok in ["live.example.com", "a-b.c", "*.example.com", "localhost"] {
            assert!(valid_domain(ok), "{ok}");
        }
        for bad in [
            "",
            "-a.com",
            "a-.com",
            "a..com",
            "a b.com",
            "a/b",
            "1.2.3.4:80",
            "é.com",
        ] {
            assert!(!valid_domain(bad), "{bad}");
        }
    }

    #[test]
    fn long_durations() {
        assert_eq!(
            parse_long_duration("30d"),
            Ok(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(parse_long_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_long_duration("2").is_err());
        assert!(parse_long_duration("xd").is_err());
    }

    #[test]
    fn renewal_is_at_two_thirds_unless_told() {
        let v = Validity {
            not_before: 0,
            not_after: 90 * 86_400,
        };
        assert_eq!(v.renew_at(None), 60 * 86_400);
        assert_eq!(
            v.renew_at(Some(Duration::from_secs(10 * 86_400))),
            80 * 86_400
        );
    }

    #[test]
    fn sources_exclude_each_other() {
        let none = TlsArgs::default();
        let files = TlsArgs {
            tls_cert: Some("c.pem".into()),
            tls_key: Some("k.pem".into()),
            ..Default::default()
        };
        assert!(matches!(
            files.resolve(&none).unwrap().source,
            Some(CertSource::Files { .. })
        ));
        let half = TlsArgs {
            tls_cert: Some("c.pem".into()),
            ..Default::default()
        };
        assert!(matches!(half.resolve(&none), Err(TlsError::HalfPair)));
        let both = TlsArgs {
            acme_domain: vec!["a.example".into()],
            ..files.clone()
        };
        assert!(matches!(both.resolve(&none), Err(TlsError::TwoSources)));
        let rtmps = TlsArgs {
            rtmps: Some("127.0.0.1:1936".parse().unwrap()),
            ..Default::default()
        };
        assert!(matches!(
            rtmps.resolve(&none),
            Err(TlsError::RtmpsWithoutTls)
        ));
        let acme = TlsArgs {
            acme_domain: vec!["a.example".into()],
            ..Default::default()
        };
        match acme.resolve(&none).unwrap().source {
            Some(CertSource::Acme(a)) => assert_eq!(a.directory, LETS_ENCRYPT),
            other => panic!("{other:?}"),
        }
    }
}
