//! Two servers of one site (one Postgres, one real redis-server, each with
//! its `--node-url`): a stream key published through both leaves exactly
//! one publish live, the newest, as on one server; a WHEP offer reaching
//! the other server is redirected (307) to the one the channel is live on,
//! whose session URL is absolute, and so are an HLS player's playlist and
//! the channel's thumbnail; Redis restarted empty under a live
//! publish ends nothing, and the lease is held again. Both servers report
//! the channel live with the viewers of the one it is live on, and drop it
//! when that server is gone.

mod common;

use common::redis::{two_servers, RedisServer};
use common::scenario_clients::offer;
use common::{ffmpeg_publish_sized, http, wait_for_live, ws_connect, ws_next, TestServer};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// `http://ADDR/PATH` split.
fn split(url: &str) -> (SocketAddr, String) {
    let rest = url.strip_prefix("http://").expect("an absolute http URL");
    let (addr, path) = rest.split_once('/').expect("a path");
    (addr.parse().unwrap(), format!("/{path}"))
}

/// Whether `channel` is live on the server at `addr` (its hub has a
/// stream with readers: the series [`wait_for_live`] looks for).
async fn live_on(addr: SocketAddr, channel: &str) -> bool {
    let text = common::get(addr, "/metrics").await.text();
    text.contains(&format!("onair_stream_readers{{channel=\"{channel}\"}}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_on_two_servers_is_live_on_one() {
    let Some((mut redis, a, b)) = two_servers().await else {
        return;
    };
    let small = |srv: &TestServer| {
        ffmpeg_publish_sized(&srv.rtmp_url(&srv.key), 60, "320x180", &["-bf", "0"])
    };
    let mut on_a = small(&a);
    wait_for_live(a.http, "demo").await;

    // The same key through the other server: that publish is the newest,
    // and the first one ends.
    let _on_b = small(&b);
    wait_for_live(b.http, "demo").await;
    let t = Instant::now();
    while live_on(a.http, "demo").await {
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "still live on both servers"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "the older publish ended {:?} after the newer one was live",
        t.elapsed()
    );
    // a's encoder was told: its connection ends.
    let ended = tokio::time::timeout(Duration::from_secs(10), on_a.wait()).await;
    assert!(ended.is_ok(), "the first encoder is still connected");

    // A viewer's offer reaching a is sent to b, where the channel is live;
    // the session is b's, by its absolute URL.
    let (_pc, sdp) = offer(false);
    let sdp_type = [("Content-Type", "application/sdp")];
    let r = http(a.http, "POST", "/whep/demo", &sdp_type, sdp.as_bytes()).await;
    assert_eq!(r.status, 307, "{}", r.text());
    let there = r.header("location").expect("a Location").to_string();
    assert_eq!(there, format!("http://{}/whep/demo", b.http));
    let (addr, path) = split(&there);
    let r = http(addr, "POST", &path, &sdp_type, sdp.as_bytes()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let session = r.header("location").expect("a session").to_string();
    assert!(
        session.starts_with(&format!("http://{}/whep/demo/", b.http)),
        "{session}"
    );
    let (addr, path) = split(&session);
    assert_eq!(http(addr, "DELETE", &path, &[], b"").await.status, 200);
    // An HLS player too, blocking reload and all.
    let r = http(a.http, "GET", "/hls/demo/index.m3u8?_HLS_msn=3", &[], b"").await;
    assert_eq!(r.status, 307, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some(format!("http://{}/hls/demo/index.m3u8?_HLS_msn=3", b.http).as_str())
    );
    // And the directory's thumbnail of it.
    let r = http(a.http, "GET", "/api/channels/demo/thumbnail.jpg", &[], b"").await;
    assert_eq!(r.status, 307, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some(format!("http://{}/api/channels/demo/thumbnail.jpg", b.http).as_str())
    );
    // Where it is live, the offer is served.
    let (_pc, sdp) = offer(false);
    let r = http(b.http, "POST", "/whep/demo", &sdp_type, sdp.as_bytes()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let (addr, path) = split(r.header("location").unwrap());
    assert_eq!(http(addr, "DELETE", &path, &[], b"").await.status, 200);

    // Redis restarted empty: nothing ends, and b holds the lease again.
    redis.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.restart().await;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(3) {
        assert!(
            live_on(b.http, "demo").await,
            "the publish ended with Redis"
        );
        assert!(!live_on(a.http, "demo").await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let holder = held(&redis).await;
    assert!(holder.is_some(), "the lease was not taken again");

    // Three HLS players on b: both servers say live, with three viewers,
    // and a chat joiner on a is told so.
    for ua in ["p1", "p2", "p3"] {
        let r = http(
            b.http,
            "GET",
            "/hls/demo/index.m3u8",
            &[("User-Agent", ua)],
            b"",
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    for srv in [a.http, b.http] {
        let view = until(srv, |v| v["live"] == true && v["viewers"] == 3).await;
        assert_eq!(view["viewers"], 3, "{srv}: {view}");
    }
    let mut ws = ws_connect(a.http, "/ws/demo", &[]).await;
    assert_eq!(ws_next(&mut ws).await, serde_json::json!({"type": "live"}));
    assert_eq!(
        ws_next(&mut ws).await,
        serde_json::json!({"type": "viewers", "count": 3})
    );

    // b stops: a counts it out when its entry expires.
    b.stop().await;
    let t = Instant::now();
    until(a.http, |v| v["live"] == false && v["viewers"] == 0).await;
    eprintln!("a saw b's channel end {:?} after b stopped", t.elapsed());
    a.stop().await;
}

/// `GET /api/channels/demo` on `addr` until `f` holds (10 s at most).
async fn until(addr: SocketAddr, f: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let t = Instant::now();
    loop {
        let v = http(addr, "GET", "/api/channels/demo", &[], b"")
            .await
            .json();
        if f(&v) {
            return v;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{addr}: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Who holds the demo channel's lease, read with a raw RESP command.
async fn held(redis: &RedisServer) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(redis.addr).await.unwrap();
    let key = "onair:lease:live:demo";
    let cmd = format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len());
    s.write_all(cmd.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 256];
    let n = s.read(&mut buf).await.unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]).to_string();
    (!reply.starts_with("$-1")).then_some(reply)
}
