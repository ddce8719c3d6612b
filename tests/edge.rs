//! An origin and two edges (`--role origin|edge`) on one Postgres and a
//! real redis-server: viewers on both edges watch a channel published on
//! the origin with picture and sound, through one WHEP session per edge
//! however many watch there; an edge lets go of the origin once its last
//! viewer has been gone the linger; a full edge sends a viewer to the other
//! (307) and, with every edge full, answers 503 with Retry-After. An edge
//! takes no ingest, and sends LL-HLS players to the origin.

mod common;

use common::redis::{site_node_with, Site};
use common::webrtc_client::{access_units, watch, ViewerOptions};
use common::{ffmpeg_publish_sized, http, metric_or_zero, wait_for_live, TestServer};
use onair::config::Role;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const LINGER: Duration = Duration::from_secs(3);

async fn node(db: &str, redis: &str, role: Role, max_viewers: usize) -> TestServer {
    site_node_with(db, redis, |c| {
        c.role = role;
        c.max_viewers = max_viewers;
        c.pull_linger = LINGER;
        // The test's offers all come from one address, quickly.
        c.offer_rate = Some(0.0);
    })
    .await
}

/// WHEP sessions the origin serves to edges for `channel`.
async fn relays(origin: SocketAddr) -> f64 {
    metric_or_zero(origin, "onair_webrtc_relay_sessions{channel=\"demo\"}").await
}

async fn wait_until(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !f().await {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t.elapsed()
}

/// A viewer that must see picture and sound, on the edge at `addr`.
async fn viewer(addr: SocketAddr, secs: u64) -> (usize, usize) {
    let got = watch(
        addr,
        "demo",
        Duration::from_secs(secs),
        ViewerOptions::default(),
    )
    .await
    .expect("viewer ran");
    let mut dec = openh264::decoder::Decoder::new().expect("openh264 decoder");
    let frames = access_units(&got.video)
        .iter()
        .filter(|(_, au)| matches!(dec.decode(au), Ok(Some(_))))
        .count();
    let mut opus = opus::Decoder::new(48_000, opus::Channels::Stereo).expect("opus decoder");
    let mut pcm = vec![0i16; 5760 * 2];
    let sound = got
        .audio
        .iter()
        .filter(|p| {
            opus.decode(&p.payload, &mut pcm, false)
                .is_ok_and(|n| n > 0)
        })
        .count();
    (frames, sound)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_pull_once_each_and_let_go_and_send_viewers_where_there_is_room() {
    let Some(Site { redis, db }) = Site::start().await else {
        return;
    };
    let origin = node(&db, &redis.url(), Role::Origin, 20_000).await;
    let a = node(&db, &redis.url(), Role::Edge, 20_000).await;
    let b = node(&db, &redis.url(), Role::Edge, 20_000).await;

    // An edge takes no ingest.
    let whip = http(
        a.http,
        "POST",
        "/whip",
        &[
            ("Content-Type", "application/sdp"),
            ("Authorization", &format!("Bearer {}", a.key)),
        ],
        b"v=0",
    )
    .await;
    assert_eq!(whip.status, 421, "{}", whip.text());
    assert!(tokio::net::TcpStream::connect(a.rtmp).await.is_err());
    // An offer that does not read is refused before any pull starts.
    let bad = http(
        a.http,
        "POST",
        "/whep/demo",
        &[("Content-Type", "application/sdp")],
        b"not an offer",
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert_eq!(metric_or_zero(a.http, "onair_edge_pulls").await, 0.0);

    let _ff = ffmpeg_publish_sized(&origin.rtmp_url(&origin.key), 60, "640x360", &["-bf", "0"]);
    wait_for_live(origin.http, "demo").await;

    // 1. Two viewers on each edge: picture and sound, and the origin
    // serves one session per edge.
    let watching = tokio::spawn(async move {
        let (a, b) = (a, b);
        let got = tokio::join!(
            viewer(a.http, 6),
            viewer(a.http, 6),
            viewer(b.http, 6),
            viewer(b.http, 6)
        );
        (a, b, [got.0, got.1, got.2, got.3])
    });
    let took = wait_until("both edges pulling", Duration::from_secs(5), async || {
        relays(origin.http).await == 2.0
    })
    .await;
    eprintln!("both edges pulled within {took:?}");
    let (a, b, got) = watching.await.unwrap();
    // LL-HLS is the origin's: an edge relaying the channel sends players
    // there.
    let hls = http(a.http, "GET", "/hls/demo/index.m3u8", &[], b"").await;
    assert_eq!(hls.status, 307, "{}", hls.text());
    let origin_playlist = format!("http://{}/hls/demo/index.m3u8", origin.http);
    assert_eq!(hls.header("location"), Some(origin_playlist.as_str()));
    for (i, (frames, sound)) in got.iter().enumerate() {
        eprintln!("viewer {i}: {frames} frames decoded, {sound} Opus packets decoded");
        assert!(*frames >= 60, "viewer {i} decoded {frames} frames");
        assert!(*sound >= 100, "viewer {i} decoded {sound} audio packets");
    }

    // Still one session per edge with 20 viewers on one of them.
    let crowd = tokio::spawn(async move {
        let views = (0..20).map(|_| {
            watch(
                a.http,
                "demo",
                Duration::from_secs(5),
                ViewerOptions {
                    record: false,
                    ..Default::default()
                },
            )
        });
        let got = futures_util::future::join_all(views).await;
        (a, got)
    });
    let mut most = 0.0f64;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(4) {
        most = most.max(relays(origin.http).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (a, got) = crowd.await.unwrap();
    let playing = got
        .iter()
        .filter(|g| g.as_ref().is_ok_and(|g| g.counters.frames > 30))
        .count();
    assert_eq!(playing, 20, "of 20 viewers on one edge, {playing} played");
    // b may have let go meanwhile (its viewers left): one or two.
    assert!(
        (1.0..=2.0).contains(&most),
        "the origin served {most} sessions to two edges"
    );
    assert!(
        metric_or_zero(
            origin.http,
            "onair_viewers{channel=\"demo\",protocol=\"webrtc\"}"
        )
        .await
            == 0.0
    );

    // 2. Every viewer gone: each edge lets go within linger + 2 s.
    let took = wait_until(
        "the edges let go",
        LINGER + Duration::from_secs(2),
        async || relays(origin.http).await == 0.0,
    )
    .await;
    eprintln!("the edges let go {took:?} after the last viewer left (linger {LINGER:?})");
    assert_eq!(metric_or_zero(a.http, "onair_edge_pulls").await, 0.0);

    // 3. A full edge sends the viewer to the other; with both full, 503.
    a.stop().await;
    b.stop().await;
    let full_a = node(&db, &redis.url(), Role::Edge, 1).await;
    let full_b = node(&db, &redis.url(), Role::Edge, 1).await;
    // A fresh offer each time: the peer behind it is never connected.
    let post = |addr| {
        let (_pc, offer) = common::scenario_clients::offer(false);
        async move {
            http(
                addr,
                "POST",
                "/whep/demo",
                &[("Content-Type", "application/sdp")],
                offer.as_bytes(),
            )
            .await
        }
    };
    let first = post(full_a.http).await;
    assert_eq!(first.status, 201, "{}", first.text());
    // The census has both new edges within a second or two, and the
    // stopped ones drop out when their entries expire: until `full_a`
    // reads `full_b`'s entry it may know of no edge with room (503).
    let to_b = format!("http://{}/whep/demo", full_b.http);
    wait_until(
        "a 307 to the edge with room",
        Duration::from_secs(6),
        async || {
            let sent = post(full_a.http).await;
            if sent.status == 503 {
                return false;
            }
            assert_eq!(sent.status, 307, "{}", sent.text());
            sent.header("location") == Some(to_b.as_str())
        },
    )
    .await;
    let second = post(full_b.http).await;
    assert_eq!(second.status, 201, "{}", second.text());
    let session = second.header("location").unwrap_or_default().to_string();
    assert!(
        session.starts_with(&format!("http://{}/whep/demo/", full_b.http)),
        "{session}"
    );
    wait_until(
        "503 with every edge full",
        Duration::from_secs(3),
        async || {
            let refused = post(full_a.http).await;
            if refused.status == 503 {
                assert!(refused.header("retry-after").is_some());
            }
            refused.status == 503
        },
    )
    .await;
    // DELETE goes to the serving edge, by its absolute URL; then it has room.
    let path = session.split_once(&full_b.http.to_string()).unwrap().1;
    let gone = http(full_b.http, "DELETE", path, &[], b"").await;
    assert_eq!(gone.status, 200);
    let again = post(full_b.http).await;
    assert_eq!(again.status, 201, "{}", again.text());

    // A signed-in viewer sent to the other edge chats there as themselves
    // (the redirect carries a ticket; no cookie or token goes along).
    let again = again.header("location").unwrap().to_string();
    let path = again.split_once(&full_b.http.to_string()).unwrap().1;
    assert_eq!(
        http(full_b.http, "DELETE", path, &[], b"").await.status,
        200
    );
    let token = common::signup(full_a.http, "alice").await;
    let auth = common::bearer(&token);
    let mut ticketed = String::new();
    wait_until(
        "a ticketed 307 to the edge with room",
        Duration::from_secs(6),
        async || {
            let _ = post(full_a.http).await; // full_a full, whatever it had
            let (_pc, offer) = common::scenario_clients::offer(false);
            let sent = http(
                full_a.http,
                "POST",
                "/whep/demo",
                &[
                    ("Content-Type", "application/sdp"),
                    ("Authorization", &auth),
                ],
                offer.as_bytes(),
            )
            .await;
            ticketed = sent.header("location").unwrap_or_default().to_string();
            sent.status == 307 && ticketed.starts_with(&to_b)
        },
    )
    .await;
    let query = ticketed.split_once('?').expect("a ticket").1;
    assert!(query.starts_with("ticket="), "{ticketed}");
    let got = watch(
        full_b.http,
        &format!("demo?{query}"),
        Duration::from_secs(4),
        ViewerOptions {
            chat_message: Some(r#"{"type":"chat","text":"hello from b"}"#.into()),
            ..Default::default()
        },
    )
    .await
    .expect("viewer ran");
    let said = got
        .chat
        .iter()
        .find(|l| l.contains("hello from b"))
        .unwrap_or_else(|| panic!("the message never came back: {:?}", got.chat));
    assert!(said.contains("\"alice\""), "{said}");
    // A forged ticket is nobody: read-only chat.
    let forged = query.replace("ticket=", "ticket=0");
    let got = watch(
        full_b.http,
        &format!("demo?{forged}"),
        Duration::from_secs(3),
        ViewerOptions {
            chat_message: Some(r#"{"type":"chat","text":"forged"}"#.into()),
            ..Default::default()
        },
    )
    .await
    .expect("viewer ran");
    assert!(
        !got.chat.iter().any(|l| l.contains("\"text\":\"forged\"")),
        "{:?}",
        got.chat
    );
}
