//! A real S3-compatible server for the tests: moto's server mode (from
//! scripts/setup.sh, in its own virtualenv), started on a free port.

use super::child::free_addr;
use onair_loadtest::http::try_http;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::process::{Child, Command};

pub struct S3Server {
    pub addr: SocketAddr,
    child: Child,
}

fn moto_server() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let venv = PathBuf::from(home).join(".cache/onair-test/moto/bin/moto_server");
    venv.is_file().then_some(venv)
}

impl S3Server {
    /// `None` (after [`super::missing_service`]) when moto is not installed.
    pub async fn start() -> Option<S3Server> {
        let Some(bin) = moto_server() else {
            super::missing_service("moto_server", "run ./scripts/setup.sh --test");
            return None;
        };
        let addr = free_addr();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &addr.port().to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start moto_server");
        let srv = S3Server { addr, child };
        let start = std::time::Instant::now();
        while try_http(addr, "GET", "/", &[], b"").await.is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "moto_server did not answer on {addr}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(srv)
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Makes a bucket (moto takes unsigned requests).
    pub async fn create_bucket(&self, bucket: &str) {
        let r = try_http(self.addr, "PUT", &format!("/{bucket}"), &[], b"")
            .await
            .unwrap();
        assert_eq!(r.status, 200, "create bucket: {}", r.text());
    }

    /// The keys in `bucket` under `prefix`.
    pub async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let path = format!("/{bucket}?list-type=2&prefix={prefix}");
        let r = try_http(self.addr, "GET", &path, &[], b"").await.unwrap();
        assert_eq!(r.status, 200, "list: {}", r.text());
        r.text()
            .split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
