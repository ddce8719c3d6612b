//! A real OpenID Connect provider for the tests: node `oidc-provider`
//! (tests/e2e/oidc_provider.mjs) on a free port, known to onair as `test`
//! ("Test ID"), and a sign-in through its pages over plain HTTP.

use super::node::{e2e_dir, ensure_node_modules};
use super::TestServer;
use onair::auth::oidc::ProviderSpec;
use onair_loadtest::http::{http, HttpResponse};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Who the provider knows, and what it says of them.
pub const ACCOUNTS: &str = r#"{
  "carol": {"email": "carol@example.test", "email_verified": true},
  "ray": {"email": "ray@example.test", "email_verified": true},
  "rita": {"email": "rita@example.test", "email_verified": true},
  "olga": {"email": "olga@example.test", "email_verified": true},
  "mallory": {"email": "dave@example.test", "email_verified": false},
  "dave-idp": {"email": "Dave@Example.test", "email_verified": true},
  "erin-idp": {"email": "erin.elsewhere@example.test", "email_verified": true}
}"#;

/// The provider's process, killed on drop.
pub struct IdP {
    _child: Child,
    pub addr: SocketAddr,
}

/// onair with the provider configured, and the provider, which must know
/// onair's callback URL before it starts.
pub async fn start() -> (TestServer, IdP) {
    ensure_node_modules().await;
    let port = super::child::free_addr().port();
    let issuer = format!("http://127.0.0.1:{port}");
    let srv = TestServer::start_with(|c| {
        let spec = format!(
            "id=test,name=Test ID,issuer={issuer},client-id=onair,client-secret=onair-secret"
        );
        c.oidc = vec![ProviderSpec::parse(&spec, |_| None).expect("spec")];
    })
    .await;
    let redirect = format!("http://{}/auth/oidc/test/callback", srv.http);
    let mut child = Command::new("node")
        .arg(e2e_dir().join("oidc_provider.mjs"))
        .env("OIDC_PORT", port.to_string())
        .env("OIDC_REDIRECT", &redirect)
        .env("OIDC_ACCOUNTS", ACCOUNTS)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node is installed");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let ready = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(l)) = lines.next_line().await {
            if l.trim() == "ready" {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "the OIDC provider started");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    (
        srv,
        IdP {
            _child: child,
            addr,
        },
    )
}

/// A browser's cookies for one site, by name.
#[derive(Default)]
pub struct Jar(BTreeMap<String, String>);

impl Jar {
    pub fn take(&mut self, r: &HttpResponse) {
        for (k, v) in &r.headers {
            if !k.eq_ignore_ascii_case("set-cookie") {
                continue;
            }
            let pair = v.split(';').next().unwrap_or("");
            if let Some((name, value)) = pair.split_once('=') {
                let gone = value.is_empty() || v.to_ascii_lowercase().contains("max-age=0");
                if gone {
                    self.0.remove(name.trim());
                } else {
                    self.0.insert(name.trim().to_string(), value.to_string());
                }
            }
        }
    }

    pub fn header(&self) -> String {
        let all: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        all.join("; ")
    }
}

fn path_of(url: &str) -> String {
    match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/".into(), |i| rest[i..].to_string()),
        None => url.to_string(),
    }
}

impl IdP {
    /// Signs in as `login` on the provider's pages, consenting, from its
    /// authorization URL; returns the URL it sends the browser back to.
    pub async fn sign_in(&self, authorize: &str, login: &str) -> String {
        let mut jar = Jar::default();
        let mut next = (String::from("GET"), path_of(authorize), String::new());
        for _ in 0..12 {
            let (method, path, body) = next.clone();
            let cookie = jar.header();
            let mut headers = vec![("Cookie", cookie.as_str())];
            if method == "POST" {
                headers.push(("Content-Type", "application/x-www-form-urlencoded"));
            }
            let r = http(self.addr, &method, &path, &headers, body.as_bytes()).await;
            jar.take(&r);
            if let Some(to) = r.header("location") {
                if to.starts_with("http") && !to.contains(&self.addr.to_string()) {
                    return to.to_string();
                }
                next = ("GET".into(), path_of(to), String::new());
                continue;
            }
            let page = r.text();
            assert_eq!(r.status, 200, "{method} {path}: {page}");
            let action = page
                .split("action=\"")
                .nth(1)
                .and_then(|a| a.split('"').next())
                .unwrap_or_else(|| panic!("a form on {path}: {page}"))
                .to_string();
            let form = if page.contains("name=\"login\"") {
                format!("prompt=login&login={login}&password=any")
            } else {
                "prompt=consent".to_string()
            };
            next = ("POST".into(), path_of(&action), form);
        }
        panic!("the provider never sent the browser back");
    }
}
