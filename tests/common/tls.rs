//! Certificates and TLS clients for the HTTPS, RTMPS and ACME tests.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// A fresh self-signed certificate for `name` (and 127.0.0.1).
pub fn self_signed(name: &str) -> rcgen::CertifiedKey<rcgen::KeyPair> {
    rcgen::generate_simple_self_signed(vec![name.to_string(), "127.0.0.1".to_string()])
        .expect("rcgen makes a certificate")
}

pub fn write_pair(c: &rcgen::CertifiedKey<rcgen::KeyPair>, cert: &Path, key: &Path) {
    std::fs::write(key, c.signing_key.serialize_pem()).unwrap();
    std::fs::write(cert, c.cert.pem()).unwrap();
}

/// Extension for a certificate's PEM, for trust files.
pub trait Pem {
    fn cert_pem(&self) -> String;
}

impl Pem for rcgen::CertifiedKey<rcgen::KeyPair> {
    fn cert_pem(&self) -> String {
        self.cert.pem()
    }
}

/// curl to `url` (whose host is `localhost` or another name) on `addr`,
/// trusting `ca`; returns stdout (what `-w` or `-D -` printed).
pub fn curl(addr: &SocketAddr, ca: &Path, args: &[&str], url: &str) -> String {
    let host = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split([':', '/']).next())
        .expect("a URL with a host");
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args([
            "--resolve",
            &format!("{host}:{}:{}", addr.port(), addr.ip()),
        ])
        .args(args)
        .arg(url)
        .output()
        .expect("curl is installed");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if text.is_empty() {
        return String::from_utf8_lossy(&out.stderr).trim().to_string();
    }
    text
}

/// A TLS connection to `addr` for `name`, trusting only `root` (DER).
pub async fn connect(
    addr: &SocketAddr,
    name: &str,
    root: &[u8],
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from(root.to_vec()))
        .map_err(std::io::Error::other)?;
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("default versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name =
        rustls_pki_types::ServerName::try_from(name.to_string()).map_err(std::io::Error::other)?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// The leaf certificate `addr` serves for `name`, if it chains to `root`.
pub async fn handshake_cert(addr: &SocketAddr, name: &str, root: &[u8]) -> Option<Vec<u8>> {
    let tls = connect(addr, name, root, &[]).await.ok()?;
    let leaf = tls.get_ref().1.peer_certificates()?.first()?.to_vec();
    Some(leaf)
}

/// A WebSocket over TLS to `path` on `addr` for `localhost`, trusting only
/// `root` (DER).
pub async fn wss(
    addr: &std::net::SocketAddr,
    root: Vec<u8>,
    path: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tls = connect(addr, "localhost", &root, &[b"http/1.1"])
        .await
        .expect("TLS handshake");
    let url = format!("wss://localhost:{}{path}", addr.port());
    let (ws, _) = tokio_tungstenite::client_async(url, tls)
        .await
        .expect("WSS upgrade");
    ws
}

/// Makes the Chromium started with `HOME=home` trust `cert` (PEM) as a CA:
/// an NSS database in `home/.pki/nssdb`, as Chromium reads on Linux. For
/// what `--ignore-certificate-errors` does not cover (TURN over TLS).
pub fn trust_in_chromium(home: &Path, cert: &Path) {
    let db = home.join(".pki").join("nssdb");
    std::fs::create_dir_all(&db).unwrap();
    let db_arg = format!("sql:{}", db.display());
    let run = |args: &[&str]| {
        let out = std::process::Command::new("certutil")
            .args(args)
            .output()
            .expect("certutil is installed (apt-get install libnss3-tools)");
        assert!(
            out.status.success(),
            "certutil {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["-N", "-d", &db_arg, "--empty-password"]);
    run(&[
        "-A",
        "-d",
        &db_arg,
        "-n",
        "onair-test",
        "-t",
        "C,,",
        "-i",
        cert.to_str().unwrap(),
    ]);
}
