//! Servers of a site killed with SIGKILL (real `onair` children): viewers
//! on two edges and an HLS player on the origin are counted on every
//! server, and a killed edge's are counted out; an edge killed leaves the
//! other edge's viewers playing without a gap, and so does Redis
//! restarted; the origin killed and restarted is pulled again by the edge,
//! whose viewer keeps its session and sees the picture again. `origin` and `edge` refuse to start
//! without what they share.

mod common;

use common::child::{free_addr, serve_with, wait_healthy, BIN};
use common::redis::{site_node_with, Site};
use common::webrtc_client::{watch, Live, ViewerOptions};
use common::{ffmpeg_publish_sized, metric_or_zero, wait_for_live, TestServer};
use onair::config::Role;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A server of the site as a child process, with its own data directory.
struct Node {
    dir: tempfile::TempDir,
    http: SocketAddr,
    rtmp: SocketAddr,
    args: Vec<String>,
    child: tokio::process::Child,
}

impl Node {
    async fn start(db: &str, redis: &str, role: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let (http, rtmp) = (free_addr(), free_addr());
        let args: Vec<String> = [
            "--database-url",
            db,
            "--redis-url",
            redis,
            "--node-url",
            &format!("http://{http}"),
            "--role",
            role,
            "--pull-linger",
            "3s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let child = serve_with(dir.path(), http, rtmp, "first.log", &argv);
        wait_healthy(http).await;
        Node {
            dir,
            http,
            rtmp,
            args,
            child,
        }
    }

    async fn kill(&mut self) {
        self.child.start_kill().unwrap();
        let _ = self.child.wait().await;
    }

    async fn restart(&mut self) {
        let argv: Vec<&str> = self.args.iter().map(String::as_str).collect();
        self.child = serve_with(self.dir.path(), self.http, self.rtmp, "second.log", &argv);
        wait_healthy(self.http).await;
    }
}

async fn in_process_edge(db: &str, redis: &str) -> TestServer {
    site_node_with(db, redis, |c| {
        c.role = Role::Edge;
        c.pull_linger = Duration::from_secs(3);
    })
    .await
}

/// A viewer of `demo` on `addr` for `secs`, whose gaps `live` shows; the
/// frames it saw.
fn viewer(addr: SocketAddr, secs: u64, live: &Arc<Live>) -> tokio::task::JoinHandle<u64> {
    let live = live.clone();
    tokio::spawn(async move {
        let got = watch(
            addr,
            "demo",
            Duration::from_secs(secs),
            ViewerOptions {
                record: false,
                live: Some(live),
                ..Default::default()
            },
        )
        .await;
        // A viewer of a killed edge ends in error; the test judges by `live`.
        got.map_or(0, |g| g.counters.frames)
    })
}

async fn frames_flowing(live: &Live, limit: Duration) -> Duration {
    let t = Instant::now();
    let start = live.frames.load(std::sync::atomic::Ordering::Relaxed);
    while live.frames.load(std::sync::atomic::Ordering::Relaxed) < start + 30 {
        assert!(t.elapsed() < limit, "no picture within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t.elapsed()
}

/// Waits until every server in `at` says `demo` has `n` viewers.
async fn counted(at: &[SocketAddr], n: u64, limit: Duration) -> Duration {
    let t = Instant::now();
    for &addr in at {
        loop {
            let v = common::http(addr, "GET", "/api/channels/demo", &[], b"")
                .await
                .json();
            if v["viewers"] == n {
                break;
            }
            assert!(
                t.elapsed() < limit,
                "{addr} counts {} viewers, not {n}: {v}",
                v["viewers"]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    t.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_edge_leaves_the_other_playing_and_a_killed_origin_is_pulled_again() {
    let Some(Site { redis, db }) = Site::start().await else {
        return;
    };
    // The in-process edge creates the channel in the shared database.
    let b = in_process_edge(&db, &redis.url()).await;
    let mut origin = Node::start(&db, &redis.url(), "origin").await;
    let mut a = Node::start(&db, &redis.url(), "edge").await;
    let rtmp = |n: &Node| format!("rtmp://{}/live/{}", n.rtmp, b.key);
    let mut ff = ffmpeg_publish_sized(&rtmp(&origin), 60, "640x360", &["-bf", "0"]);
    wait_for_live(origin.http, "demo").await;

    // Three viewers on A, two on B, one HLS player on the origin.
    let (on_a, on_b) = (Arc::new(Live::default()), Arc::new(Live::default()));
    let _va: Vec<_> = (0..3).map(|_| viewer(a.http, 40, &on_a)).collect();
    let vb = viewer(b.http, 40, &on_b);
    let _vb2 = viewer(b.http, 40, &Arc::new(Live::default()));
    frames_flowing(&on_a, Duration::from_secs(8)).await;
    frames_flowing(&on_b, Duration::from_secs(8)).await;
    let hls = common::http(origin.http, "GET", "/hls/demo/index.m3u8", &[], b"").await;
    assert_eq!(hls.status, 200, "{}", hls.text());

    // 5. Every server counts six, and five once A is killed.
    let took = counted(&[origin.http, a.http, b.http], 6, Duration::from_secs(3)).await;
    eprintln!("six viewers counted on every server within {took:?}");

    // 6. Edge A killed: B's viewer plays on without a gap over 500 ms.
    on_b.take_gap(Instant::now(), 0);
    a.kill().await;
    let took = counted(&[origin.http, b.http], 3, Duration::from_secs(5)).await;
    eprintln!("edge a's viewers counted out {took:?} after it was killed");
    let gap = on_b.take_gap(Instant::now(), 0).expect("video on b");
    eprintln!("longest video gap on edge b after edge a was killed: {gap:?}");
    assert!(gap < Duration::from_millis(500), "b's viewer froze {gap:?}");

    // 8. Redis restarted (empty) under playback: it never stops.
    let mut redis = redis;
    redis.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.restart().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let gap = on_b.take_gap(Instant::now(), 0).expect("video on b");
    eprintln!("longest video gap on edge b across a Redis restart: {gap:?}");
    assert!(gap < Duration::from_millis(500), "b's viewer froze {gap:?}");

    // 7. The origin killed and restarted with a new publish: the edge pulls
    // again, and its viewer, still in its session, sees the picture.
    origin.kill().await;
    let _ = ff.kill().await;
    origin.restart().await;
    let restarted = Instant::now();
    ff = ffmpeg_publish_sized(&rtmp(&origin), 60, "640x360", &["-bf", "0"]);
    let took = {
        let t = Instant::now();
        while metric_or_zero(origin.http, "onair_webrtc_relay_sessions{channel=\"demo\"}").await
            < 1.0
        {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the edge never pulled again"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        t.elapsed()
    };
    frames_flowing(&on_b, Duration::from_secs(10)).await;
    eprintln!(
        "after the origin's restart the edge pulled again in {took:?}; its viewer saw the picture again {:?} after the restart",
        restarted.elapsed()
    );
    assert!(took < Duration::from_secs(5), "pulled again after {took:?}");
    let frames = vb.await.unwrap();
    assert!(frames > 0);
    let _ = ff.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_and_edge_refuse_to_start_alone() {
    let dir = tempfile::tempdir().unwrap();
    for role in ["origin", "edge"] {
        let out = std::process::Command::new(BIN)
            .args(["serve", "--role", role, "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "--role {role} started alone");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "--role {role} needs --redis-url, --node-url and a Postgres"
            )),
            "{err}"
        );
    }
}
