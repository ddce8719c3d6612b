//! A real `redis-server` (apt) for the tests, on a free port, with nothing
//! kept on disk: stopping and starting it again is Redis restarted empty.

use super::child::free_addr;
use super::TestServer;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

pub struct RedisServer {
    pub addr: SocketAddr,
    child: Option<Child>,
}

impl RedisServer {
    /// `None` (after [`super::missing_service`]) when redis-server is not
    /// installed.
    pub async fn start() -> Option<RedisServer> {
        if std::process::Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            super::missing_service("redis-server", "run ./scripts/setup.sh --test");
            return None;
        }
        let mut r = RedisServer {
            addr: free_addr(),
            child: None,
        };
        r.restart().await;
        Some(r)
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Starts it (again) on the same port, empty, and waits for a PONG.
    pub async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.addr.port().to_string(),
            ])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let start = Instant::now();
        while !self.pong().await {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server did not answer on {}",
                self.addr
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn pong(&self) -> bool {
        let Ok(mut s) = tokio::net::TcpStream::connect(self.addr).await else {
            return false;
        };
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").await.is_ok()
            && s.read_exact(&mut buf).await.is_ok()
            && &buf == b"+PONG\r\n"
    }

    /// Kills it; what it held is gone.
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }
}

/// A server of a site: on the Postgres database `db` and the Redis at
/// `redis`, its `--node-url` its own HTTP address.
pub async fn site_node(db: &str, redis: &str) -> TestServer {
    site_node_with(db, redis, |_| {}).await
}

/// [`site_node`] with changes to its config (a role, limits).
pub async fn site_node_with(
    db: &str,
    redis: &str,
    change: impl FnOnce(&mut onair::config::Config),
) -> TestServer {
    let (db, redis) = (db.to_string(), redis.to_string());
    TestServer::start_bound(
        move |c| {
            c.database_url = db;
            c.redis_url = Some(redis);
            change(c);
        },
        |c, l| c.node_url = Some(format!("http://{}", l.http_addr())),
    )
    .await
}

/// What the servers of a test site share: a real redis-server and a
/// fresh Postgres database.
pub struct Site {
    pub redis: RedisServer,
    pub db: String,
}

impl Site {
    /// `None` (after [`super::missing_service`]) when Redis or Postgres is
    /// missing.
    pub async fn start() -> Option<Site> {
        let redis = RedisServer::start().await?;
        let db = super::fresh_postgres_db().await?;
        Some(Site { redis, db })
    }
}

/// Redis and two servers of one site on a fresh Postgres database; `None`
/// (after [`super::missing_service`]) when Redis or Postgres is missing.
pub async fn two_servers() -> Option<(RedisServer, TestServer, TestServer)> {
    let Site { redis, db } = Site::start().await?;
    let a = site_node(&db, &redis.url()).await;
    let b = site_node(&db, &redis.url()).await;
    Some((redis, a, b))
}
