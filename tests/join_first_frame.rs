//! A viewer that joins around a publisher's start always gets its picture:
//! viewers join at offsets from 0 to 3 s after each of many publishes, and
//! every one must decode a frame within 2 s of its offer. A browser WHIP
//! publisher (Chromium sends keyframes only at its start and when asked)
//! and an RTMP one (a keyframe every second) each take 60 joins, so a
//! 1-in-15 failure cannot pass unseen. The join-to-first-frame figures go
//! to docs/BENCHMARKS.md.

mod common;

use common::node::{e2e_dir, ensure_node_modules};
use common::{api_as, signup, TestServer};
use onair_loadtest::decode::Rotation;
use onair_loadtest::whep::{watch, ViewerOptions};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::task::JoinHandle;

/// When, after its offer, each viewer joins a publish.
const OFFSETS_MS: [u64; 6] = [0, 600, 1200, 1800, 2400, 3000];
const CYCLES: u32 = 10;
const LIVE_SECS: u64 = 5;
/// What a viewer may wait for its first decoded frame.
const FIRST_FRAME_WITHIN: Duration = Duration::from_secs(2);

/// Both scenarios put a browser or an encoder plus six decoding viewers on
/// 2 cores: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One viewer joining `channel` at `at`, `offset` after its publish
/// started: how long from its offer to its first decoded frame, if it got
/// one, with the offset (for the failure message).
fn join(
    http: std::net::SocketAddr,
    channel: &str,
    at: Instant,
    offset: u64,
) -> JoinHandle<(u64, Option<Duration>)> {
    let channel = channel.to_string();
    tokio::spawn(async move {
        tokio::time::sleep_until(at.into()).await;
        let offered = Instant::now();
        let opts = ViewerOptions {
            record: false,
            decode: Some((
                Rotation {
                    start: offered,
                    viewers: 1,
                },
                0,
            )),
            ..Default::default()
        };
        let got = watch(http, &channel, Duration::from_secs(4), opts).await;
        let first = got.ok().and_then(|g| g.counters.decode.first_frame_at);
        (offset, first.map(|t| t.saturating_duration_since(offered)))
    })
}

/// The viewers of one publish that started at `started` (wall clock).
fn joins_for(
    http: std::net::SocketAddr,
    channel: &str,
    started: SystemTime,
) -> Vec<JoinHandle<(u64, Option<Duration>)>> {
    let since = SystemTime::now()
        .duration_since(started)
        .unwrap_or_default();
    OFFSETS_MS
        .iter()
        .map(|ms| {
            let wait = Duration::from_millis(*ms).saturating_sub(since);
            join(http, channel, Instant::now() + wait, *ms)
        })
        .collect()
}

/// Sorted join-to-first-frame times: every join must have one, within the
/// limit. Prints the distribution.
async fn check(what: &str, joins: Vec<JoinHandle<(u64, Option<Duration>)>>) {
    let mut times = Vec::new();
    let mut missing = 0;
    // (publish, offset in ms, time to first frame) of each late join.
    let mut late = Vec::new();
    for (i, j) in joins.into_iter().enumerate() {
        match j.await.unwrap() {
            (offset, Some(t)) => {
                times.push(t);
                if t > FIRST_FRAME_WITHIN {
                    late.push((i / OFFSETS_MS.len(), offset, t));
                }
            }
            (_, None) => missing += 1,
        }
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
    if !times.is_empty() {
        println!(
            "{what}: {} joins, first frame p50 {:?}, p99 {:?}, max {:?}; {missing} without a picture",
            times.len() + missing,
            pct(0.5),
            pct(0.99),
            times.last().unwrap()
        );
    }
    assert_eq!(
        missing, 0,
        "{what}: {missing} viewers never decoded a frame"
    );
    assert!(
        late.is_empty(),
        "{what}: first frame later than 2 s for (publish, offset ms, wait) {late:?}"
    );
}

async fn key_of(srv: &TestServer, user: &str) -> String {
    let token = signup(srv.http, user).await;
    let r = api_as(
        srv.http,
        &token,
        "GET",
        &format!("/api/channels/{user}/key"),
        None,
    )
    .await;
    r.json()["stream_key"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn viewers_of_a_browser_publisher_always_get_a_picture() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let srv = TestServer::start().await;
    let key = key_of(&srv, "alice").await;
    ensure_node_modules().await;
    let mut child = tokio::process::Command::new("node")
        .arg(e2e_dir().join("whip_cycles.mjs"))
        .args([
            &format!("http://{}", srv.http),
            &key,
            &CYCLES.to_string(),
            &LIVE_SECS.to_string(),
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node is installed");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut joins = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(u64::from(CYCLES) * (LIVE_SECS + 1) + 90);
    let mut summary = None;
    while let Ok(Ok(Some(line))) = tokio::time::timeout_at(deadline.into(), lines.next_line()).await
    {
        let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        match v["at"].as_u64() {
            Some(ms) => {
                let started = UNIX_EPOCH + Duration::from_millis(ms);
                joins.extend(joins_for(srv.http, "alice", started));
            }
            None => summary = Some(v),
        }
    }
    let status = child.wait().await.unwrap();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use tokio::io::AsyncReadExt;
        let _ = e.read_to_string(&mut err).await;
    }
    assert!(status.success(), "whip_cycles.mjs failed: {err}");
    println!("publisher: {}", summary.expect("the summary line"));
    check("browser WHIP publisher", joins).await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn viewers_of_an_rtmp_publisher_always_get_a_picture() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let srv = TestServer::start().await;
    let key = key_of(&srv, "bob").await;
    let mut joins = Vec::new();
    for _ in 0..CYCLES {
        let mut ff = common::ffmpeg_publish_sized(
            &srv.rtmp_url(&key),
            LIVE_SECS as u32,
            "640x360",
            &["-bf", "0"],
        );
        // The publish starts when the hub has it.
        common::wait_for_live(srv.http, "bob").await;
        joins.extend(joins_for(srv.http, "bob", SystemTime::now()));
        let _ = tokio::time::timeout(Duration::from_secs(LIVE_SECS + 5), ff.wait()).await;
        let _ = ff.kill().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    check("RTMP publisher", joins).await;
    srv.stop().await;
}

/// A publisher that ignores the first keyframe requests: the viewer is told
/// it is waiting, the server keeps asking (bounded), counts the viewer as
/// waiting, and the picture comes as soon as a keyframe does.
#[tokio::test(flavor = "multi_thread")]
async fn a_viewer_waiting_for_a_picture_is_never_left_silent() {
    use bytes::Bytes;
    use onair_loadtest::whip::{publish, RawVideo};
    let _serial = ONE_AT_A_TIME.lock().await;
    let srv = TestServer::start().await;
    let key = key_of(&srv, "carol").await;
    // 6 s of P-slices only (a publisher whose keyframe got lost and which
    // answers only some requests), then a real stream with keyframes.
    let p_slice = vec![(Bytes::from_static(&[0x41, 0x9a, 0x02, 0x03]), true)];
    let mut opts = common::media::clip(&key, &common::media::media(), 6);
    opts.raw = Some(RawVideo {
        frames: vec![p_slice],
        ts_step: 3000,
    });
    let http = srv.http;
    let broken = tokio::spawn(async move { publish(http, opts).await });
    common::wait_for_live(srv.http, "carol").await;
    let plis_before = common::metric(srv.http, "onair_pli_sent_total").await;
    let page = tokio::spawn({
        let base = format!("http://{}", srv.http);
        async move {
            common::node::run_script(
                "watch_waiting.mjs",
                &[&base, "carol", "4"],
                Duration::from_secs(60),
            )
            .await
        }
    });
    let viewer = tokio::spawn(async move {
        watch(
            http,
            "carol",
            Duration::from_secs(4),
            ViewerOptions {
                record: false,
                ..Default::default()
            },
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let waiting = common::metric(srv.http, "onair_viewers_waiting_for_picture").await;
    let plis = common::metric(srv.http, "onair_pli_sent_total").await - plis_before;
    let got = viewer.await.unwrap().expect("viewer");
    let shown = page.await.unwrap();
    println!("waiting viewers {waiting}, keyframe requests {plis} in 3.2 s, page {shown}");
    assert!(waiting >= 1.0, "viewers waiting over 2 s are counted");
    assert!(
        (4.0..=12.0).contains(&plis),
        "the source is asked again, at most twice a second: {plis}"
    );
    assert!(
        got.first_video_after.is_none(),
        "no picture without a keyframe"
    );
    assert_eq!(
        shown["waited_visible"], true,
        "the page says it is waiting: {shown}"
    );
    let _ = broken.await;
    // The real stream: a waiting viewer gets its picture at the first keyframe.
    let publisher = tokio::spawn(publish(
        srv.http,
        common::media::clip(&key, &common::media::media(), 8),
    ));
    common::wait_for_live(srv.http, "carol").await;
    check(
        "after a publisher that ignored requests",
        vec![join(srv.http, "carol", Instant::now(), 0)],
    )
    .await;
    let _ = publisher.await;
    srv.stop().await;
}
