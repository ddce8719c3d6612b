//! ICE-TCP's bounds (src/sfu/tcp.rs), pushed from a raw socket on the
//! WebRTC port: RFC 4571 frames of length 0 or over 4096 bytes close that
//! connection, a silent connection is closed after 30 s, and at most 4096
//! connections are held, 256 from one host. Each time, real viewers carry
//! on: headless Chromium over ICE-TCP (tests/e2e/lossy_watch.mjs
//! `tcp-only`) and the `rtc` WHEP viewer over UDP.

mod common;

use common::node::run_script;
use common::webrtc_client::{watch, ViewerOptions};
use common::{ffmpeg_publish_sized, http, wait_for_live, TestServer};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// src/sfu/tcp.rs's limits.
const MAX_FRAME: usize = 4096;
const MAX_CONNECTIONS: usize = 4096;
const MAX_PER_SOURCE: usize = 256;
const IDLE: Duration = Duration::from_secs(30);

/// Small video: the publisher, the server and a browser share 2 cores.
const VIDEO: &[&str] = &["-bf", "0", "-b:v", "1500k"];

/// The browser test and the flood each load the machine; not both at once.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// ICE-TCP listens on the WebRTC port number, on the same address.
fn tcp_addr(srv: &TestServer) -> SocketAddr {
    srv.udp
}

/// An RFC 4571 frame: a 16-bit big-endian length, then the bytes.
fn frame(len: u16, fill: u8) -> Vec<u8> {
    let mut f = len.to_be_bytes().to_vec();
    f.extend(std::iter::repeat_n(fill, usize::from(len)));
    f
}

/// True if the server closes `s` (EOF, or a reset when it left our bytes
/// unread) within `limit`. Anything the server sends is read and ignored.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

async fn connect(addr: SocketAddr) -> TcpStream {
    tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .expect("connected in time")
        .expect("ICE-TCP port accepts")
}

/// Chromium that can reach the server only over ICE-TCP watches for 8 s.
async fn browser_plays_over_tcp(srv: &TestServer) {
    let base = format!("http://{}", srv.http);
    let args = [base.as_str(), srv.channel.as_str(), "8", "tcp-only"];
    let r = run_script("lossy_watch.mjs", &args, Duration::from_secs(70)).await;
    eprintln!("ICE-TCP viewer: {r}");
    assert_eq!(r["candidateProtocol"], "tcp", "{r}");
    let n = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
    assert!(n("steadyFps") > 20.0, "{r}");
    assert!(n("steadyAudioPackets") > 100.0, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frame_lengths_close_only_that_connection() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let srv = TestServer::start().await;
    let _ff = ffmpeg_publish_sized(&srv.rtmp_url(&srv.key), 90, "640x360", VIDEO);
    wait_for_live(srv.http, &srv.channel).await;
    let addr = tcp_addr(&srv);

    // The largest allowed frame, of garbage: the driver drops it, and the
    // connection stays (a bound, not a hair trigger).
    let mut at_limit = connect(addr).await;
    at_limit
        .write_all(&frame(MAX_FRAME as u16, 0xa5))
        .await
        .unwrap();
    // Then a burst of garbage frames of ordinary sizes.
    for i in 0..200u16 {
        let f = frame(100 + i * 5, (i % 251) as u8);
        at_limit.write_all(&f).await.unwrap();
    }
    assert!(
        !closed_within(&mut at_limit, Duration::from_secs(1)).await,
        "a {MAX_FRAME}-byte frame is allowed"
    );

    for (what, bytes) in [
        ("length 0", vec![0, 0]),
        ("length 4097", frame(MAX_FRAME as u16 + 1, 0x17)),
        ("length 65535 and garbage", {
            let mut b = vec![0xff, 0xff];
            b.extend(std::iter::repeat_n(0x42, 1000));
            b
        }),
        // A valid frame first: the bad one is refused mid-connection too.
        ("length 0 after a good frame", {
            let mut b = frame(20, 0x00);
            b.extend([0, 0]);
            b
        }),
    ] {
        let mut s = connect(addr).await;
        s.write_all(&bytes).await.unwrap();
        let t = Instant::now();
        assert!(
            closed_within(&mut s, Duration::from_secs(3)).await,
            "{what}: the server closes the connection"
        );
        eprintln!("{what}: closed after {:?}", t.elapsed());
    }
    // The connection at the limit was not taken down with the others.
    at_limit.write_all(&frame(60, 0x01)).await.unwrap();
    assert!(!closed_within(&mut at_limit, Duration::from_millis(500)).await);
    drop(at_limit);

    // Nothing broke: a real browser still connects over ICE-TCP and plays.
    browser_plays_over_tcp(&srv).await;
    srv.stop().await;
}

/// A connection that sends nothing, or half a frame, is closed after 30 s;
/// one that keeps sending is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_after_the_idle_limit() {
    let srv = TestServer::start().await;
    let addr = tcp_addr(&srv);
    let start = Instant::now();
    let silent = connect(addr).await;
    let mut half_header = connect(addr).await;
    half_header.write_all(&[0x00]).await.unwrap();
    let mut half_frame = connect(addr).await;
    half_frame.write_all(&[0x00, 100, 1, 2, 3]).await.unwrap();
    let mut chatty = connect(addr).await;

    let timed = |mut s: TcpStream, what: &'static str| async move {
        assert!(
            closed_within(&mut s, IDLE + Duration::from_secs(5)).await,
            "{what}: never closed"
        );
        let after = start.elapsed();
        eprintln!("{what}: closed after {after:?}");
        assert!(
            after >= IDLE - Duration::from_millis(500),
            "{what}: closed early, after {after:?}"
        );
    };
    let keep_talking = async {
        // A frame every 10 s: never idle for 30 s.
        for _ in 0..4 {
            chatty.write_all(&frame(100, 0x33)).await.unwrap();
            assert!(
                !closed_within(&mut chatty, Duration::from_secs(10)).await,
                "a connection that keeps sending stays open"
            );
        }
        eprintln!("chatty: open after {:?}", start.elapsed());
    };
    tokio::join!(
        timed(silent, "silent"),
        timed(half_header, "half a length"),
        timed(half_frame, "half a frame"),
        keep_talking,
    );
    assert!(start.elapsed() > IDLE + Duration::from_secs(5));
    srv.stop().await;
}

/// The soft limit on open files, from /proc (Linux).
/// Raises this process's open-file limit towards `want` (as far as the hard
/// limit allows; a fresh Debian login starts at a soft 1024) and returns it.
fn raise_open_file_limit(want: usize) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write only the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if (lim.rlim_cur as usize) < want {
            lim.rlim_cur = (want as libc::rlim_t).min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
    }
    lim.rlim_cur as usize
}

/// A connection from `source`, one of loopback's many addresses.
async fn connect_from(source: IpAddr, addr: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::new(source, 0)).unwrap();
    tokio::time::timeout(Duration::from_secs(5), s.connect(addr))
        .await
        .expect("connected in time")
        .expect("ICE-TCP port accepts")
}

/// `n` connections from `source`, in batches: the listen backlog is
/// short, and a SYN it drops costs a one-second retransmit.
async fn open_many(source: IpAddr, addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let batch = (n - out.len()).min(64);
        let more = (0..batch).map(|_| connect_from(source, addr));
        out.extend(futures_util::future::join_all(more).await);
    }
    out
}

/// One host floods ICE-TCP: it gets its share of connections, and a
/// browser elsewhere still connects over ICE-TCP and plays. Many hosts
/// fill every slot: the next connection is refused, HTTP and UDP viewers
/// carry on, and when the flood goes the slots come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_is_capped_and_viewers_still_play() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // Client and server ends both live in this process.
    let need = 2 * MAX_CONNECTIONS + 1024;
    let limit = raise_open_file_limit(need);
    assert!(
        limit >= need,
        "this test holds {need} sockets: raise `ulimit -n` (now {limit})"
    );
    let srv = TestServer::start().await;
    let _ff = ffmpeg_publish_sized(&srv.rtmp_url(&srv.key), 90, "640x360", VIDEO);
    wait_for_live(srv.http, &srv.channel).await;
    let addr = tcp_addr(&srv);
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();

    // One host: its share, then no more.
    let t = Instant::now();
    let flooder = ip("127.0.0.2");
    let one_host = open_many(flooder, addr, MAX_PER_SOURCE).await;
    eprintln!(
        "{MAX_PER_SOURCE} connections from one host in {:?}",
        t.elapsed()
    );
    let mut extra = connect_from(flooder, addr).await;
    assert!(
        closed_within(&mut extra, Duration::from_secs(10)).await,
        "connection {} from one host is refused",
        MAX_PER_SOURCE + 1
    );
    // Kept busy, so the idle limit does not end the flood for us.
    let one_host = Arc::new(tokio::sync::Mutex::new(one_host));
    let keep_alive = tokio::spawn({
        let one_host = one_host.clone();
        async move {
            loop {
                for s in one_host.lock().await.iter_mut() {
                    s.write_all(&frame(20, 0x77)).await.unwrap();
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    });
    // The browser (from 127.0.0.1) plays over ICE-TCP during the flood.
    browser_plays_over_tcp(&srv).await;
    {
        let mut held = one_host.lock().await;
        assert!(!closed_within(&mut held[0], Duration::from_millis(200)).await);
    }

    // Many hosts: every slot taken.
    let t = Instant::now();
    let mut many_hosts = Vec::new();
    for i in 1..=(MAX_CONNECTIONS / MAX_PER_SOURCE - 1) {
        let host = ip(&format!("127.0.1.{i}"));
        many_hosts.extend(open_many(host, addr, MAX_PER_SOURCE).await);
    }
    eprintln!("{} more connections in {:?}", many_hosts.len(), t.elapsed());
    // The accept queue is FIFO: by the time this one is taken, all the
    // others were counted, so it is refused.
    let mut over = connect_from(ip("127.0.2.1"), addr).await;
    assert!(
        closed_within(&mut over, Duration::from_secs(10)).await,
        "connection {} is refused",
        MAX_CONNECTIONS + 1
    );
    assert!(t.elapsed() < IDLE - Duration::from_secs(10), "still open");
    assert!(!closed_within(&mut many_hosts[0], Duration::from_millis(200)).await);

    // Everyone else is unharmed: HTTP answers, a UDP viewer plays.
    let health = http(srv.http, "GET", "/healthz", &[], b"").await;
    assert_eq!(health.status, 200);
    let got = watch(
        srv.http,
        &srv.channel,
        Duration::from_secs(3),
        ViewerOptions::default(),
    )
    .await
    .expect("a WHEP viewer during the flood");
    eprintln!(
        "UDP viewer during the flood: {} video, {} audio packets",
        got.video.len(),
        got.audio.len()
    );
    assert!(got.first_video_after.is_some());
    assert!(got.video.len() > 100, "{} video packets", got.video.len());
    assert!(got.audio.len() > 50, "{} audio packets", got.audio.len());

    // The flood goes; its slots come back.
    keep_alive.abort();
    let _ = keep_alive.await;
    drop((one_host, many_hosts));
    let start = Instant::now();
    loop {
        let mut s = connect_from(ip("127.0.2.1"), addr).await;
        s.write_all(&frame(100, 0x55)).await.unwrap();
        if !closed_within(&mut s, Duration::from_secs(1)).await {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "slots were never released"
        );
    }
    srv.stop().await;
}
