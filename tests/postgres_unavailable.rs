//! A Postgres server that goes away while onair runs: requests that need it
//! get 503 `{"error":"database unavailable"}` (and a log line), nothing
//! crashes, and service comes back with the database.

mod common;

use common::{api, bearer, signup, TestServer};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP proxy to Postgres that the test can cut (every connection reset,
/// the port closed) and restore on the same port.
struct Proxy {
    addr: SocketAddr,
    target: SocketAddr,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let p = Proxy {
            addr: listener.local_addr().unwrap(),
            target,
            tasks: Arc::default(),
        };
        p.serve(listener);
        p
    }

    fn serve(&self, listener: TcpListener) {
        let tasks = self.tasks.clone();
        let target = self.target;
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let t = tokio::spawn(async move {
                    if let Ok(mut out) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                tasks.lock().unwrap().push(t);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    fn cut(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    async fn restore(&self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_going_away_is_503_not_a_crash() {
    let Some(url) = common::fresh_postgres_db().await else {
        return;
    };
    // postgres://user:pw@HOST:PORT/db -> the proxy's port instead.
    let (head, rest) = url.split_once('@').unwrap();
    let (hostport, db) = rest.split_once('/').unwrap();
    let target: SocketAddr = tokio::net::lookup_host(hostport)
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = Proxy::start(target).await;
    let proxied = format!("{head}@{}/{db}", proxy.addr);
    let srv = TestServer::start_with(move |c| c.database_url = proxied).await;
    let a = srv.http;
    let token = signup(a, "alice").await;
    assert_eq!(
        api(
            a,
            "GET",
            "/api/me",
            &[("Authorization", &bearer(&token))],
            None
        )
        .await
        .status,
        200
    );

    proxy.cut();
    for path in [
        "/api/me",
        "/api/channels",
        "/api/channels/alice",
        "/api/categories",
    ] {
        let r = tokio::time::timeout(
            Duration::from_secs(20),
            api(a, "GET", path, &[("Authorization", &bearer(&token))], None),
        )
        .await
        .expect("answers within the pool's acquire timeout");
        assert_eq!(r.status, 503, "{path}: {}", r.text());
        assert_eq!(r.json()["error"], "database unavailable");
    }
    let r = api(
        a,
        "POST",
        "/api/auth/login",
        &[],
        Some(&serde_json::json!({"username": "alice", "password": common::password_of("alice")})),
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.text());
    // The server itself is fine.
    assert_eq!(api(a, "GET", "/healthz", &[], None).await.status, 200);

    proxy.restore().await;
    let start = std::time::Instant::now();
    loop {
        let r = api(
            a,
            "GET",
            "/api/me",
            &[("Authorization", &bearer(&token))],
            None,
        )
        .await;
        if r.status == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "recovers: {}",
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    srv.stop().await;
}

/// Migrations and the channel/key path used by RTMP and WHEP work on
/// Postgres as on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_runs_migrations_and_ingest_lookup() {
    let Some(url) = common::fresh_postgres_db().await else {
        return;
    };
    let db = onair::db::Db::open(&url).await.unwrap();
    // Opening again re-runs nothing and fails nothing.
    let db2 = onair::db::Db::open(&url).await.unwrap();
    let ch = db.create_channel("pgchan").await.unwrap();
    use onair::hub::Channels;
    assert_eq!(
        db2.channel_for_key(&ch.stream_key)
            .await
            .unwrap()
            .as_deref(),
        Some("pgchan")
    );
    assert!(db2.exists("pgchan").await.unwrap());
    assert!(matches!(
        db.create_channel("pgchan").await,
        Err(onair::db::DbError::Conflict(_))
    ));
    assert_eq!(db.categories().await.unwrap().len(), 4);
}
