//! Certificates from a real ACME CA: Debian's pebble (RFC 8555 test CA),
//! with pebble-challtestsrv as its DNS so `onair.test` resolves to the
//! loopback, where pebble checks HTTP-01 on onair's plain HTTP port.
//!
//! One run covers issuing, a CA that is down when onair starts (the cached
//! certificate is served at once, orders fail and are retried), and a
//! renewal while serving (the new certificate replaces the old one without
//! a restart).

mod common;

use common::child::{free_addr, serve_with, wait_healthy};
use common::tls::{handshake_cert, self_signed, write_pair};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

const DOMAIN: &str = "onair.test";

struct Pebble {
    child: Child,
    _dns: Child,
}

/// pebble on `listen` (ACME directory) and `manage` (its roots), checking
/// HTTP-01 on `http_port`, resolving every name to 127.0.0.1.
fn pebble(dir: &Path, listen: SocketAddr, manage: SocketAddr, http_port: u16, log: &str) -> Pebble {
    let dns = free_addr();
    let dns_child = Command::new("pebble-challtestsrv")
        .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
        .args([
            "-dns01",
            &dns.to_string(),
            "-management",
            &free_addr().to_string(),
        ])
        .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("pebble-challtestsrv is installed (apt-get install pebble)");
    let config = serde_json::json!({"pebble": {
        "listenAddress": listen.to_string(),
        "managementListenAddress": manage.to_string(),
        "certificate": dir.join("pebble.pem"),
        "privateKey": dir.join("pebble.key"),
        "httpPort": http_port,
        "tlsPort": free_addr().port(),
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false
    }});
    let path = dir.join("pebble.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let child = Command::new("pebble")
        .arg("-config")
        .arg(&path)
        .args(["-dnsserver", &dns.to_string()])
        // No random waits or nonce rejections: the run is about onair, not
        // pebble's chaos (which instant-acme also handles).
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .stdout(std::fs::File::create(dir.join(log)).unwrap())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("pebble is installed (apt-get install pebble)");
    Pebble {
        child,
        _dns: dns_child,
    }
}

/// pebble's issuing root, which changes with every pebble run.
async fn pebble_root(dir: &Path, manage: SocketAddr) -> Vec<u8> {
    let start = Instant::now();
    loop {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "5", "--cacert"])
            .arg(dir.join("pebble.pem"))
            .arg(format!("https://127.0.0.1:{}/roots/0", manage.port()))
            .output()
            .unwrap();
        if out.status.success() && out.stdout.starts_with(b"-----BEGIN CERTIFICATE") {
            use rustls_pki_types::pem::PemObject;
            return rustls_pki_types::CertificateDer::from_pem_slice(&out.stdout)
                .unwrap()
                .to_vec();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "pebble never started"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// [`wait_healthy`], with the server's log when it fails.
async fn healthy(http: SocketAddr, log: &Path) {
    let log = log.to_path_buf();
    if tokio::spawn(wait_healthy(http)).await.is_err() {
        panic!("{}", std::fs::read_to_string(log).unwrap_or_default());
    }
}

async fn served_within(
    https: SocketAddr,
    root: &[u8],
    limit: Duration,
    what: &str,
    log: &Path,
) -> Vec<u8> {
    let start = Instant::now();
    loop {
        if let Some(leaf) = handshake_cert(&https, DOMAIN, root).await {
            return leaf;
        }
        assert!(
            start.elapsed() < limit,
            "{what}: no certificate from the CA within {limit:?}; the server said:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_issues_serves_the_cache_through_a_ca_outage_and_renews() {
    let dir = tempfile::tempdir().unwrap();
    let pebble_cert = self_signed("localhost");
    write_pair(
        &pebble_cert,
        &dir.path().join("pebble.pem"),
        &dir.path().join("pebble.key"),
    );
    let (http, rtmp, https) = (free_addr(), free_addr(), free_addr());
    let (listen, manage) = (free_addr(), free_addr());
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let directory = format!("https://127.0.0.1:{}/dir", listen.port());
    let ca_root = dir.path().join("pebble.pem").display().to_string();
    let acme_args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec![
            "--acme-domain".into(),
            DOMAIN.into(),
            "--acme-email".into(),
            "ops@onair.test".into(),
            "--acme-directory".into(),
            directory.clone(),
            "--acme-ca-root".into(),
            ca_root.clone(),
            "--acme-retry".into(),
            "2s".into(),
            "--https".into(),
            https.to_string(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let serve = |args: &[String], log: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        serve_with(&data, http, rtmp, log, &args)
    };

    // 1. Issuing: no certificate yet; the CA checks HTTP-01 on `http`.
    let mut ca = pebble(dir.path(), listen, manage, http.port(), "pebble1.log");
    let root = pebble_root(dir.path(), manage).await;
    let mut onair = serve(&acme_args(&[]), "first.log");
    healthy(http, &data.join("first.log")).await;
    let first = served_within(
        https,
        &root,
        Duration::from_secs(30),
        "issuing",
        &data.join("first.log"),
    )
    .await;
    assert!(
        data.join("acme/certificate.pem").exists() && data.join("acme/certificate.key").exists()
    );
    let issued = common::metric(http, "onair_acme_orders_total{result=\"issued\"}").await;
    assert_eq!(issued, 1.0);
    let _ = onair.start_kill();
    let _ = onair.wait().await;

    // 2. The CA is down at start-up, and renewal is due at once: the cached
    //    certificate is served, and the failed orders are counted.
    let _ = ca.child.start_kill();
    let _ = ca.child.wait().await;
    drop(ca);
    let mut onair = serve(&acme_args(&["--acme-renew-before", "36500d"]), "second.log");
    healthy(http, &data.join("second.log")).await;
    let leaf = served_within(
        https,
        &root,
        Duration::from_secs(5),
        "cached",
        &data.join("second.log"),
    )
    .await;
    assert_eq!(leaf, first, "the cached certificate");
    let start = Instant::now();
    while common::metric_or_zero(http, "onair_acme_orders_total{result=\"failed\"}").await < 2.0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "orders to a CA that is down are retried"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let page = common::get(http, "/healthz").await;
    assert_eq!(page.status, 200, "healthy with the CA down");

    // 3. The CA comes back (a new pebble: new roots, no accounts): the
    //    running server renews, and new handshakes get the new certificate.
    let ca = pebble(dir.path(), listen, manage, http.port(), "pebble2.log");
    let root2 = pebble_root(dir.path(), manage).await;
    let renewed = served_within(
        https,
        &root2,
        Duration::from_secs(40),
        "renewal",
        &data.join("second.log"),
    )
    .await;
    assert_ne!(renewed, first);
    let log = std::fs::read_to_string(data.join("second.log")).unwrap();
    assert!(log.contains("ACME order failed"), "{log}");
    assert!(log.contains("issued by the ACME CA"), "{log}");
    let cached = std::fs::read(data.join("acme/certificate.pem")).unwrap();
    {
        use rustls_pki_types::pem::PemObject;
        let leaf = rustls_pki_types::CertificateDer::pem_slice_iter(&cached)
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(leaf.to_vec(), renewed, "the cache holds what is served");
    }
    let _ = onair.start_kill();
    let _ = onair.wait().await;
    drop(ca);
}
