//! RTMP ingest against real ffmpeg and against a raw rml_rtmp client:
//! publishes, refusals, hostile input, replacement, parameter changes.

mod common;

use bytes::Bytes;
use common::{ffmpeg_publish, ffmpeg_publish_with};
use onair::hub::{Channels, Hub, Reader, Stream};
use onair::media::{ms_to_ticks, MediaKind, Payload, TrackConfig, Unit};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;

const GOOD_KEY: &str = "goodkey";
const CHANNEL: &str = "demo";

struct TestChannels;

impl Channels for TestChannels {
    fn channel_for_key(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<String>, onair::db::DbError>> + Send {
        let found = (key == GOOD_KEY).then(|| CHANNEL.to_string());
        async move { Ok(found) }
    }

    fn exists(&self, name: &str) -> impl Future<Output = Result<bool, onair::db::DbError>> + Send {
        let found = name == CHANNEL;
        async move { Ok(found) }
    }
}

struct Server {
    addr: SocketAddr,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start() -> Server {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("onair=debug")
            .with_test_writer()
            .try_init();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hub = Hub::new();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(onair::rtmp::serve(
            listener,
            None,
            hub.clone(),
            Arc::new(TestChannels),
            onair::hooks::Hooks::none(),
            shutdown.clone(),
            false,
        ));
        Server {
            addr,
            hub,
            shutdown,
            task,
        }
    }

    fn url(&self, app: &str, key: &str) -> String {
        format!("rtmp://{}/{app}/{key}", self.addr)
    }

    /// Waits for a live stream on the channel other than `not`.
    async fn wait_stream(&self, not: Option<u64>, within: Duration) -> Arc<Stream> {
        let mut rx = self.hub.watch(CHANNEL);
        timeout(within, async {
            loop {
                if let Some(s) = rx.borrow_and_update().clone() {
                    if Some(s.id()) != not {
                        return s;
                    }
                }
                rx.changed().await.unwrap();
            }
        })
        .await
        .expect("no stream published in time")
    }

    async fn stop(self) {
        self.shutdown.cancel();
        timeout(Duration::from_secs(5), self.task)
            .await
            .expect("serve did not return after shutdown")
            .unwrap();
    }
}

async fn recv(reader: &mut Reader, within: Duration) -> Option<Arc<Unit>> {
    timeout(within, reader.recv()).await.ok().flatten()
}

/// Raw RTMP client on rml_rtmp's ClientSession, for what ffmpeg cannot do:
/// reading the exact status bytes, crafting FLV tags.
struct RawClient {
    socket: TcpStream,
    session: ClientSession,
    /// Every byte the server sent after the handshake.
    received: Vec<u8>,
}

impl RawClient {
    async fn connect(addr: SocketAddr) -> RawClient {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        let mut hs = Handshake::new(PeerType::Client);
        socket
            .write_all(&hs.generate_outbound_p0_and_p1().unwrap())
            .await
            .unwrap();
        let mut buf = vec![0u8; 8192];
        let leftover = loop {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "server closed during handshake");
            match hs.process_bytes(&buf[..n]).unwrap() {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    socket.write_all(&response_bytes).await.unwrap()
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    socket.write_all(&response_bytes).await.unwrap();
                    break remaining_bytes;
                }
            }
        };
        let (session, _) = ClientSession::new(ClientSessionConfig::new()).unwrap();
        let mut c = RawClient {
            socket,
            session,
            received: Vec::new(),
        };
        c.feed(&leftover).await;
        c
    }

    async fn send(&mut self, r: ClientSessionResult) {
        if let ClientSessionResult::OutboundResponse(p) = r {
            self.socket.write_all(&p.bytes).await.unwrap();
        }
    }

    async fn feed(&mut self, bytes: &[u8]) -> Vec<ClientSessionEvent> {
        self.received.extend_from_slice(bytes);
        let mut events = Vec::new();
        // The client session may dislike the server's refusals; the raw
        // bytes are what the tests look at then.
        for r in self.session.handle_input(bytes).unwrap_or_default() {
            match r {
                ClientSessionResult::RaisedEvent(e) => events.push(e),
                other => self.send(other).await,
            }
        }
        events
    }

    /// Reads until `want` is raised (true) or the server closes (false).
    async fn pump_until(&mut self, want: impl Fn(&ClientSessionEvent) -> bool) -> bool {
        let mut buf = vec![0u8; 8192];
        timeout(Duration::from_secs(5), async {
            loop {
                let n = self.socket.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    return false;
                }
                let chunk = buf[..n].to_vec();
                if self.feed(&chunk).await.iter().any(&want) {
                    return true;
                }
            }
        })
        .await
        .expect("server neither answered nor closed")
    }

    async fn connect_app(&mut self, app: &str) {
        let r = self.session.request_connection(app.to_string()).unwrap();
        self.send(r).await;
        assert!(
            self.pump_until(|e| matches!(e, ClientSessionEvent::ConnectionRequestAccepted))
                .await,
            "connect refused"
        );
    }

    /// Requests publishing; true if accepted, false if the server closed.
    async fn publish(&mut self, key: &str) -> bool {
        let r = self
            .session
            .request_publishing(key.to_string(), PublishRequestType::Live)
            .unwrap();
        self.send(r).await;
        self.pump_until(|e| matches!(e, ClientSessionEvent::PublishRequestAccepted))
            .await
    }

    async fn video(&mut self, tag: Bytes, ts: u32) {
        let r = self
            .session
            .publish_video_data(tag, RtmpTimestamp::new(ts), false)
            .unwrap();
        self.send(r).await;
    }

    fn saw(&self, needle: &str) -> bool {
        self.received
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

const SPS_720P: &str = "6742c01fd9005005bb0110000003001000000303c0f1832480";
const SPS_360P: &str = "674d401eeca05017fcb80880000003008000001e078b16cb";
const PPS: &str = "68cb83cb20";

fn seq_header(sps: &str) -> Bytes {
    let (sps, pps) = (hex(sps), hex(PPS));
    let mut v = vec![0x17, 0, 0, 0, 0, 1, sps[1], sps[2], sps[3], 0xff, 0xe1];
    v.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    v.extend_from_slice(&sps);
    v.push(1);
    v.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    v.extend_from_slice(&pps);
    Bytes::from(v)
}

fn idr_tag() -> Bytes {
    Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 3, 0x65, 0x88, 0x84])
}

fn dims(u: &Unit) -> Option<(u32, u32)> {
    match u.config.as_ref() {
        TrackConfig::H264(c) => Some((c.width, c.height)),
        _ => None,
    }
}

/// Asserts that nothing got published on the channel.
fn assert_offline(server: &Server) {
    assert!(
        server.hub.stream(CHANNEL).is_none(),
        "a stream was published"
    );
}

#[tokio::test]
async fn ffmpeg_publish_h264_aac() {
    let server = Server::start().await;
    let mut ff = ffmpeg_publish(&server.url("live", GOOD_KEY), 5);
    let stream = server.wait_stream(None, Duration::from_secs(10)).await;
    let mut reader = stream.subscribe("test");
    let (mut video, mut audio) = (Vec::new(), Vec::new());
    while video.len() < 45 || audio.len() < 50 {
        let u = recv(&mut reader, Duration::from_secs(5))
            .await
            .expect("units stopped");
        match u.kind() {
            MediaKind::Video => video.push(u),
            MediaKind::Audio => audio.push(u),
        }
    }
    let first = &video[0];
    assert!(first.keyframe, "first video unit is a keyframe");
    match &first.payload {
        Payload::H264(n) => {
            assert_eq!(n[0][0] & 0x1f, 7, "starts with SPS");
            assert_eq!(n[1][0] & 0x1f, 8, "then PPS");
            assert!(n.iter().all(|n| n[0] & 0x1f != 9), "no AUD");
        }
        p => panic!("{p:?}"),
    }
    assert_eq!(dims(first), Some((1280, 720)));
    match audio[0].config.as_ref() {
        TrackConfig::Aac(c) => assert_eq!((c.sample_rate, c.object_type), (48000, 2)),
        c => panic!("{c:?}"),
    }
    for track in [&video, &audio] {
        for w in track.windows(2) {
            assert!(w[1].pts >= w[0].pts, "pts monotonic");
            assert!(w[1].dts >= w[0].dts, "dts monotonic");
        }
    }
    // Both tracks start together (the reader joined at the stream's start).
    let skew = (video[0].pts - audio[0].pts).abs();
    assert!(skew <= ms_to_ticks(100), "a/v start skew {skew} ticks");
    let h = stream.health();
    // libx264 ultrafast uses Constrained Baseline.
    assert_eq!(
        h.video_codec.as_deref(),
        Some("H.264 Constrained Baseline 1280x720")
    );
    assert_eq!(h.audio_codec.as_deref(), Some("AAC-LC 48000 Hz 1ch"));
    assert_eq!((h.width, h.height), (Some(1280), Some(720)));
    assert!(!h.bframes);
    assert!(
        h.metadata.contains_key("encoder"),
        "onMetaData stored: {:?}",
        h.metadata
    );
    let _ = ff.kill().await;
    server.stop().await;
}

#[tokio::test]
async fn wrong_key_is_refused() {
    let server = Server::start().await;
    let mut ff = ffmpeg_publish(&server.url("live", "badkey"), 3);
    let status = timeout(Duration::from_secs(10), ff.wait())
        .await
        .expect("ffmpeg kept going with a wrong key")
        .unwrap();
    assert!(!status.success());
    assert_offline(&server);

    // The exact status, as a raw client sees it.
    let mut c = RawClient::connect(server.addr).await;
    c.connect_app("live").await;
    assert!(!c.publish("badkey").await, "publish accepted");
    assert!(c.saw("NetStream.Publish.BadName"));
    assert_offline(&server);
    server.stop().await;
}

#[tokio::test]
async fn empty_key_and_unknown_app_are_refused() {
    let server = Server::start().await;
    for (app, key) in [("live", ""), ("other", GOOD_KEY), ("", GOOD_KEY)] {
        let mut c = RawClient::connect(server.addr).await;
        let r = c.session.request_connection(app.to_string()).unwrap();
        c.send(r).await;
        if !c
            .pump_until(|e| matches!(e, ClientSessionEvent::ConnectionRequestAccepted))
            .await
        {
            continue; // refused at connect (empty app): fine too
        }
        assert!(!c.publish(key).await, "{app}/{key} accepted");
        assert!(c.saw("NetStream.Publish.BadName"), "{app}/{key}");
    }
    let mut ff = ffmpeg_publish(&server.url("other", GOOD_KEY), 3);
    let status = timeout(Duration::from_secs(10), ff.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!status.success());
    assert_offline(&server);
    server.stop().await;
}

#[tokio::test]
async fn trailing_slash_and_query_are_accepted() {
    let server = Server::start().await;
    let mut c = RawClient::connect(server.addr).await;
    c.connect_app("live/").await;
    assert!(c.publish(&format!("{GOOD_KEY}?token=abc")).await);
    server.wait_stream(None, Duration::from_secs(5)).await;
    server.stop().await;
}

#[tokio::test]
async fn play_is_refused() {
    let server = Server::start().await;
    let mut c = RawClient::connect(server.addr).await;
    c.connect_app("live").await;
    let r = c.session.request_playback(CHANNEL.to_string()).unwrap();
    c.send(r).await;
    assert!(
        !c.pump_until(|e| matches!(e, ClientSessionEvent::PlaybackRequestAccepted))
            .await
    );
    assert!(c.saw("NetStream.Play.Failed"));
    server.stop().await;
}

#[tokio::test]
async fn garbage_does_not_hurt_the_server() {
    let server = Server::start().await;
    let mut junk = TcpStream::connect(server.addr).await.unwrap();
    junk.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    // The server may answer nothing or a few bytes, then must close.
    let closed = timeout(Duration::from_secs(5), async {
        loop {
            match junk.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "garbage connection left open");

    // Garbage after a valid handshake: an RTMP protocol error.
    let mut c = RawClient::connect(server.addr).await;
    c.socket.write_all(&[0xc7; 64]).await.unwrap();
    c.socket.write_all(&[0x3f; 300]).await.unwrap();
    drop(c);

    let mut ff = ffmpeg_publish(&server.url("live", GOOD_KEY), 3);
    let stream = server.wait_stream(None, Duration::from_secs(10)).await;
    let mut reader = stream.subscribe("test");
    let u = recv(&mut reader, Duration::from_secs(5))
        .await
        .expect("no media after garbage");
    assert!(!u.payload.is_empty());
    let _ = ff.kill().await;
    server.stop().await;
}

#[tokio::test]
async fn truncated_handshake_times_out() {
    let server = Server::start().await;
    let mut half = TcpStream::connect(server.addr).await.unwrap();
    let mut c0c1 = vec![3u8];
    c0c1.extend_from_slice(&[0u8; 700]); // half of C1, then silence
    half.write_all(&c0c1).await.unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    timeout(Duration::from_secs(14), async {
        loop {
            match half.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("half-open client not dropped");
    assert!(start.elapsed() >= onair::rtmp::PUBLISH_DEADLINE - Duration::from_secs(1));
    server.stop().await;
}

#[tokio::test]
async fn bframes_are_reported() {
    let server = Server::start().await;
    let mut ff = ffmpeg_publish_with(
        &server.url("live", GOOD_KEY),
        4,
        &[
            "-profile:v",
            "main",
            "-bf",
            "2",
            "-x264-params",
            "bframes=2:b-adapt=0",
        ],
    );
    let stream = server.wait_stream(None, Duration::from_secs(10)).await;
    let mut reader = stream.subscribe("test");
    let mut saw_offset = false;
    while let Some(u) = recv(&mut reader, Duration::from_secs(5)).await {
        if u.kind() == MediaKind::Video && u.pts != u.dts {
            saw_offset = true;
            break;
        }
    }
    assert!(saw_offset, "no composition offsets seen");
    assert!(stream.health().bframes);
    assert!(stream.health().video_codec.unwrap().contains("Main"));
    let _ = ff.kill().await;
    server.stop().await;
}

#[tokio::test]
async fn second_publisher_replaces_first() {
    let server = Server::start().await;
    let mut first = ffmpeg_publish(&server.url("live", GOOD_KEY), 20);
    let s1 = server.wait_stream(None, Duration::from_secs(10)).await;
    let mut second = ffmpeg_publish(&server.url("live", GOOD_KEY), 5);
    let s2 = server
        .wait_stream(Some(s1.id()), Duration::from_secs(10))
        .await;
    assert!(s1.is_closed());
    assert!(!s2.is_closed());
    // The first encoder loses its connection and gives up.
    timeout(Duration::from_secs(8), first.wait())
        .await
        .expect("first publisher's connection stayed open")
        .unwrap();
    let mut reader = s2.subscribe("test");
    assert!(recv(&mut reader, Duration::from_secs(5)).await.is_some());
    let _ = second.kill().await;
    server.stop().await;
}

#[tokio::test]
async fn sps_change_and_video_before_header() {
    let server = Server::start().await;
    let mut c = RawClient::connect(server.addr).await;
    c.connect_app("live").await;
    assert!(c.publish(GOOD_KEY).await);
    let stream = server.wait_stream(None, Duration::from_secs(5)).await;
    let mut reader = stream.subscribe("test");
    c.video(idr_tag(), 0).await; // before any sequence header: dropped
    c.video(seq_header(SPS_720P), 10).await;
    c.video(idr_tag(), 10).await;
    c.video(seq_header(SPS_360P), 50).await;
    c.video(idr_tag(), 50).await;
    let a = recv(&mut reader, Duration::from_secs(5)).await.unwrap();
    let b = recv(&mut reader, Duration::from_secs(5)).await.unwrap();
    assert_eq!((dims(&a), a.dts), (Some((1280, 720)), ms_to_ticks(10)));
    assert_eq!(dims(&b), Some((640, 360)));
    assert!(!Arc::ptr_eq(&a.config, &b.config));
    assert_eq!(stream.health().width, Some(640));
    // Closing the connection ends the stream.
    drop(c);
    timeout(Duration::from_secs(5), stream.closed().cancelled())
        .await
        .expect("stream not closed after the publisher left");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_closes_publishers() {
    let server = Server::start().await;
    let mut c = RawClient::connect(server.addr).await;
    c.connect_app("live").await;
    assert!(c.publish(GOOD_KEY).await);
    let stream = server.wait_stream(None, Duration::from_secs(5)).await;
    server.stop().await;
    assert!(stream.is_closed());
    let mut buf = [0u8; 64];
    let n = timeout(Duration::from_secs(2), c.socket.read(&mut buf))
        .await
        .unwrap();
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "socket still open after shutdown"
    );
}

/// A proxy in front of the server that keeps every byte the client sent.
async fn capture(server: SocketAddr) -> (SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut client, _) = listener.accept().await.unwrap();
        let mut upstream = TcpStream::connect(server).await.unwrap();
        let (mut cr, mut cw) = client.split();
        let (mut ur, mut uw) = upstream.split();
        let mut sent = Vec::new();
        let up = async {
            let mut buf = vec![0u8; 65536];
            loop {
                let n = cr.read(&mut buf).await.unwrap_or(0);
                if n == 0 || uw.write_all(&buf[..n]).await.is_err() {
                    let _ = uw.shutdown().await;
                    return;
                }
                sent.extend_from_slice(&buf[..n]);
            }
        };
        let down = tokio::io::copy(&mut ur, &mut cw);
        let _ = tokio::join!(up, down);
        sent
    });
    (addr, task)
}

/// ffmpeg publishes through the capturing proxy for a second; then what it
/// sent, replayed into a fresh sans-I/O session (the server's random
/// handshake does not matter: RTMP does not check C2), publishes the same
/// media. With `ONAIR_WRITE_FUZZ_SEEDS=DIR` the captures are written there
/// as seeds for the `rtmp` fuzz target (fuzz/corpus/rtmp).
#[tokio::test]
async fn ffmpeg_traffic_replays_through_the_session() {
    let server = Server::start().await;
    let seeds = std::env::var_os("ONAIR_WRITE_FUZZ_SEEDS").map(std::path::PathBuf::from);
    let video_in = ["-f", "lavfi", "-i", "testsrc2=size=160x90:rate=30"];
    let audio_in = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"];
    let h264 = ["-c:v", "libx264", "-g", "15", "-pix_fmt", "yuv420p"];
    let fast = ["-preset", "ultrafast", "-tune", "zerolatency"];
    let bframes = ["-preset", "veryfast", "-bf", "2"];
    let aac = ["-c:a", "aac", "-b:a", "64k"];
    let variants: [(&str, Vec<&str>, bool, bool); 3] = [
        (
            "h264_aac",
            [&video_in[..], &audio_in, &h264, &fast, &aac].concat(),
            true,
            true,
        ),
        (
            "bframes",
            [&video_in[..], &h264, &bframes].concat(),
            true,
            false,
        ),
        ("audio_only", [&audio_in[..], &aac].concat(), false, true),
    ];
    for (name, args, has_video, has_audio) in variants {
        let (proxy, sent) = capture(server.addr).await;
        let status = tokio::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error"])
            .args(&args)
            .args(["-t", "1", "-f", "flv"])
            .arg(format!("rtmp://{proxy}/live/{GOOD_KEY}"))
            .stdin(std::process::Stdio::null())
            .status()
            .await
            .expect("ffmpeg runs");
        assert!(status.success(), "{name}: ffmpeg published");
        let sent = timeout(Duration::from_secs(10), sent)
            .await
            .unwrap()
            .unwrap();

        let hub = Hub::new();
        let peer = "127.0.0.1:1".parse().unwrap();
        let mut session = onair::rtmp::Session::new(peer, hub.clone(), std::time::Instant::now());
        // ffmpeg ends with deleteStream, which ends the publish: the
        // session closes at the last read, not before.
        let pieces: Vec<&[u8]> = sent.chunks(4096).collect();
        for (i, piece) in pieces.iter().enumerate() {
            let mut step = session.input(piece).unwrap();
            while let onair::rtmp::Step::Authorize { key } = step {
                assert_eq!(key, GOOD_KEY);
                step = session.authorize(Ok(CHANNEL.into())).unwrap();
            }
            if step == onair::rtmp::Step::Close {
                assert_eq!(i, pieces.len() - 1, "{name}: closed early");
            }
        }
        let h = session.stream().expect("the replay published").health();
        println!(
            "{name}: {} bytes replayed: {} video, {} audio units",
            sent.len(),
            h.video_units,
            h.audio_units
        );
        assert_eq!(h.video_units >= 25, has_video, "{name}: {h:?}");
        assert_eq!(h.audio_units >= 40, has_audio, "{name}: {h:?}");
        assert_eq!(
            session.in_flight(),
            0,
            "{name}: every byte became a message"
        );

        if let Some(dir) = &seeds {
            // The fuzz target's first byte: bit 0 set when the input has
            // its own handshake; bits 1-3 = 5 for 4 KiB reads.
            const HANDSHAKE: usize = 1 + 2 * 1536;
            const MAX_SEED: usize = 60_000;
            let end = sent.len().min(HANDSHAKE + MAX_SEED);
            std::fs::create_dir_all(dir).unwrap();
            let after = [&[0x0a][..], &sent[HANDSHAKE..end]].concat();
            std::fs::write(dir.join(format!("ffmpeg_{name}")), after).unwrap();
            if name == "h264_aac" {
                let whole = [&[0x0b][..], &sent[..end]].concat();
                std::fs::write(dir.join("ffmpeg_with_handshake"), whole).unwrap();
            }
        }
    }
    server.stop().await;
}
