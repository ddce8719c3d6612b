//! Hostile RTMP clients against src/rtmp's limits, over real sockets: a
//! raw client (handshake, then chunks built by hand) interleaves partial
//! messages on many chunk streams, declares oversized messages and
//! trickles them, sets absurd chunk sizes, connects and never publishes,
//! and floods connections from one address. Each attack runs while a
//! victim channel is published by ffmpeg and watched (tests/common/victim.rs),
//! and passes only if each hostile connection was closed at its limit, the
//! victim kept playing, and the bytes the server held for RTMP clients
//! (`onair_rtmp_buffered_bytes`, and the process's RSS) stayed within the
//! bound.

mod common;

use common::rtmp::*;
use common::victim::Victim;
use common::{ffmpeg_publish_sized, http, wait_for_live, TestServer};
use rml_rtmp::rml_amf0::Amf0Value;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// src/rtmp's limits.
const PUBLISH_DEADLINE: Duration = onair::rtmp::PUBLISH_DEADLINE;
const PER_HOST: usize = onair::rtmp::MAX_CONNECTIONS_PER_HOST;
const MAX_MEDIA: usize = onair::rtmp::MAX_MEDIA_MESSAGE as usize;
const MAX_CONTROL: usize = onair::rtmp::MAX_CONTROL_MESSAGE as usize;
/// What one connection may hold, publishing or not; plus one 64 KiB read
/// the server has taken and not yet looked at.
const HELD_PUBLISHING: usize = 2 * MAX_MEDIA + 65536;
const HELD_CONNECTING: usize = 2 * MAX_CONTROL + 65536;
/// The victim's own ffmpeg holds part of a frame now and then.
const VICTIM_SLACK: usize = 1 << 20;

/// Each test has a victim (ffmpeg and a decoding viewer) and reads a
/// process-wide gauge: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const ATTACKER: &str = "127.0.0.2";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

// ---- what the server holds ----

/// A labelled value from `/metrics`, 0 when absent.
async fn labelled(addr: SocketAddr, name_and_label: &str) -> f64 {
    let text = http(addr, "GET", "/metrics", &[], b"").await.text();
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name_and_label))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0)
}

fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kib * 1024
}

/// Samples `onair_rtmp_buffered_bytes` and this process's RSS (the server
/// runs in it) until dropped; keeps the peaks.
struct Peaks {
    buffered: Arc<AtomicU64>,
    rss: Arc<AtomicU64>,
    rss_before: usize,
    task: tokio::task::JoinHandle<()>,
}

impl Peaks {
    fn start(addr: SocketAddr) -> Peaks {
        let (buffered, peak_rss) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (b, r) = (buffered.clone(), peak_rss.clone());
        let task = tokio::spawn(async move {
            loop {
                let v = common::metric(addr, "onair_rtmp_buffered_bytes").await;
                b.fetch_max(v as u64, Ordering::Relaxed);
                r.fetch_max(rss() as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Peaks {
            buffered,
            rss: peak_rss,
            rss_before: rss(),
            task,
        }
    }

    /// Asserts the peak held bytes stayed within `bound`; returns a line
    /// for the report.
    fn check(self, attack: &str, bound: usize) -> String {
        self.task.abort();
        let held = self.buffered.load(Ordering::Relaxed) as usize;
        let grew = (self.rss.load(Ordering::Relaxed) as usize).saturating_sub(self.rss_before);
        let line = format!(
            "{attack}: peak onair_rtmp_buffered_bytes {} KiB (bound {} KiB), RSS grew {} MiB",
            held >> 10,
            bound >> 10,
            grew >> 20
        );
        println!("{line}");
        assert!(held <= bound, "{line}");
        // The allocator may keep what it was given; it must not have been
        // given much more than what was held.
        assert!(grew <= 2 * bound + (64 << 20), "{line}");
        line
    }
}

async fn limit_hits(addr: SocketAddr, limit: &str) -> f64 {
    labelled(
        addr,
        &format!("onair_limit_hits_total{{limit=\"{limit}\"}}"),
    )
    .await
}

// ---- the attacks ----

/// Partial messages left on many chunk streams at once, before publishing
/// (one host's every connection) and on the attacker's own publish: each
/// connection is closed once it holds more than twice the largest message
/// it may send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_partial_messages_are_capped() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let srv = TestServer::start().await;
    let key = srv.db.create_channel("attacker").await.unwrap().stream_key;
    let victim = Victim::start(&srv, 12).await;
    let attacker = ip(ATTACKER);

    // Unauthenticated: every connection one host may open, each leaving
    // 4 KiB pieces of 60 KiB commands on 30 chunk streams (120 KiB held,
    // under the 128 KiB bound), then three pieces more.
    let peaks = Peaks::start(srv.http);
    let mut conns = Vec::new();
    for _ in 0..PER_HOST {
        let mut c = Raw::handshaken(srv.rtmp, attacker).await;
        let mut b = [connect("live"), set_chunk_size(4096)].concat();
        for csid in 4..34 {
            b.extend(header(csid, 60 << 10, 20, 0));
            b.extend_from_slice(&[0x41; 4096]);
        }
        c.send(&b).await.unwrap();
        conns.push(c);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for c in &conns {
        assert!(!c.is_closed(), "120 KiB held is within the bound");
    }
    for c in &mut conns {
        let mut more = Vec::new();
        for csid in 4..7 {
            more.extend(basic(3, csid));
            more.extend_from_slice(&[0x41; 4096]);
        }
        let _ = c.send(&more).await;
    }
    for c in &conns {
        let t = c.closed_within(Duration::from_secs(5)).await;
        assert!(t.is_some(), "a connection holding 132 KiB is closed");
    }
    peaks.check(
        "interleaved partial messages, 16 unauthenticated connections",
        PER_HOST * HELD_CONNECTING + VICTIM_SLACK,
    );

    // Authenticated, on its own channel: 62 chunk streams (64 with control
    // and commands) each holding part of an 8 MiB video message, 64 KiB
    // more every round.
    let peaks = Peaks::start(srv.http);
    let mut c = Raw::publishing(srv.rtmp, attacker, &key).await;
    c.send(&set_chunk_size(64 << 10)).await.unwrap();
    let mut round = 0;
    while !c.is_closed() && round < 10 {
        let mut b = Vec::new();
        for csid in 4..66 {
            b.extend(if round == 0 {
                header(csid, MAX_MEDIA, 9, 1)
            } else {
                basic(3, csid)
            });
            b.extend_from_slice(&[0x27; 64 << 10]);
        }
        if c.send(&b).await.is_err() {
            break;
        }
        round += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        c.closed_within(Duration::from_secs(5)).await.is_some(),
        "the publishing attacker is closed"
    );
    // 62 x 64 KiB a round: past 16 MiB in the fifth.
    assert!(round >= 4, "closed after {round} rounds, before the bound");
    peaks.check(
        "interleaved partial 8 MiB messages, attacker's own publish",
        HELD_PUBLISHING + VICTIM_SLACK,
    );
    assert!(limit_hits(srv.http, "rtmp_in_flight_bytes").await >= (PER_HOST + 1) as f64);
    victim
        .finish()
        .await
        .assert_kept_playing("interleaved partial messages on many chunk streams");
    srv.stop().await;
}

/// Messages declared larger than allowed are refused at their header;
/// one declared at the limit and trickled holds only what has arrived,
/// and before publishing a trickle is cut off at the publish deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_trickled_messages_are_capped() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let srv = TestServer::start().await;
    let key = srv.db.create_channel("attacker").await.unwrap().stream_key;
    let victim = Victim::start(&srv, 14).await;
    let attacker = ip(ATTACKER);
    let peaks = Peaks::start(srv.http);

    // Before publishing: a 16 MiB command, refused at once.
    let mut c = Raw::handshaken(srv.rtmp, attacker).await;
    c.send(&[connect("live"), header(3, 0xFF_FFFF, 20, 0)].concat())
        .await
        .unwrap();
    let t = c.closed_within(Duration::from_secs(3)).await;
    assert!(t.is_some(), "a 16 MiB command is refused at its header");

    // Publishing: a 16 MiB video message, refused at once.
    let mut c = Raw::publishing(srv.rtmp, attacker, &key).await;
    c.send(&header(6, 0xFF_FFFF, 9, 1)).await.unwrap();
    assert!(
        c.closed_within(Duration::from_secs(3)).await.is_some(),
        "a 16 MiB video message is refused at its header"
    );

    // Before publishing, from every slot of the host: 60 KiB commands
    // trickled a byte every 100 ms. The deadline ends them all.
    let mut trickles = Vec::new();
    for _ in 0..PER_HOST - 1 {
        let mut c = Raw::handshaken(srv.rtmp, attacker).await;
        c.send(&[connect("live"), header(3, 60 << 10, 20, 0)].concat())
            .await
            .unwrap();
        trickles.push(c);
    }
    // Publishing: an 8 MiB keyframe (allowed) trickled at 64 KiB a tick;
    // what the server holds grows with what arrives, not with what was declared.
    let mut big = Raw::publishing(srv.rtmp, attacker, &key).await;
    big.send(&[set_chunk_size(0x7FFF_FFFF), header(6, MAX_MEDIA, 9, 1)].concat())
        .await
        .unwrap();
    let start = Instant::now();
    let mut sent = 0;
    while start.elapsed() < PUBLISH_DEADLINE + Duration::from_secs(2) {
        for c in &mut trickles {
            let _ = c.send(&[0x41]).await;
        }
        if sent < MAX_MEDIA / 2 {
            big.send(&[0x27; 64 << 10]).await.unwrap();
            sent += 64 << 10;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for c in &trickles {
        let t = c
            .closed_within(Duration::from_secs(1))
            .await
            .expect("a trickling connection is closed at the publish deadline");
        assert!(
            t >= PUBLISH_DEADLINE - Duration::from_millis(500)
                && t <= PUBLISH_DEADLINE + Duration::from_secs(2),
            "closed after {t:?}"
        );
    }
    assert!(
        !big.is_closed(),
        "a trickled keyframe within the limit is allowed"
    );
    let held = common::metric(srv.http, "onair_rtmp_buffered_bytes").await as usize;
    assert!(
        held >= sent && held <= sent + VICTIM_SLACK,
        "the server holds what arrived ({sent} bytes), not the 8 MiB declared: {held}"
    );
    drop(big);
    peaks.check(
        "oversized and trickled messages",
        PER_HOST * HELD_CONNECTING + HELD_PUBLISHING + VICTIM_SLACK,
    );
    assert!(limit_hits(srv.http, "rtmp_message_size").await >= 2.0);
    assert!(limit_hits(srv.http, "rtmp_publish_deadline").await >= (PER_HOST - 1) as f64);
    victim
        .finish()
        .await
        .assert_kept_playing("oversized messages, and messages trickled a byte at a time");
    srv.stop().await;
}

/// Chunk sizes from 1 to 2^31 - 1 work as RTMP 1.0 5.4.1 says; 0 and
/// values with the top bit set close the connection; so does a 65th chunk
/// stream id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_chunk_sizes_and_chunk_stream_ids() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let srv = TestServer::start().await;
    let key = srv.db.create_channel("attacker").await.unwrap().stream_key;
    let victim = Victim::start(&srv, 8).await;
    let attacker = ip(ATTACKER);
    let peaks = Peaks::start(srv.http);

    for size in [1u32, 0x7FFF_FFFF] {
        // A publish, then a 100 KiB video message at this chunk size: the
        // message arrives (an answered ping after it shows it was read).
        let mut c = Raw::publishing(srv.rtmp, attacker, &key).await;
        let payload = vec![0x27; 100 << 10];
        let before = c.got.lock().unwrap().len();
        c.send(
            &[
                set_chunk_size(size),
                message(6, 9, 1, &payload, size as usize),
                ping_chunked(7, size as usize),
            ]
            .concat(),
        )
        .await
        .unwrap();
        assert!(
            c.wait_for_len(before + 1, Duration::from_secs(10)).await,
            "chunk size {size}: the ping after a 100 KiB message is answered"
        );
        assert!(!c.is_closed(), "chunk size {size} is allowed");
    }
    for size in [0u32, 0x8000_0000, u32::MAX] {
        let mut c = Raw::handshaken(srv.rtmp, attacker).await;
        c.send(&[connect("live"), set_chunk_size(size)].concat())
            .await
            .unwrap();
        assert!(
            c.closed_within(Duration::from_secs(3)).await.is_some(),
            "chunk size {size:#x} closes the connection"
        );
    }
    // 64 chunk stream ids (2, 3 and 62 more) are fine; the 65th is not.
    let mut c = Raw::handshaken(srv.rtmp, attacker).await;
    let mut b = [connect("live"), ping(1)].concat();
    for csid in 64..126 {
        b.extend(message(csid, 4, 0, &[0, 6, 0, 0, 0, 1], 128));
    }
    c.send(&b).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!c.is_closed(), "64 chunk stream ids are allowed");
    c.send(&message(40_000, 4, 0, &[0, 6, 0, 0, 0, 1], 128))
        .await
        .unwrap();
    assert!(
        c.closed_within(Duration::from_secs(3)).await.is_some(),
        "a 65th chunk stream id closes the connection"
    );
    assert!(limit_hits(srv.http, "rtmp_chunk_streams").await >= 1.0);
    peaks.check("absurd chunk sizes", HELD_PUBLISHING + VICTIM_SLACK);
    victim
        .finish()
        .await
        .assert_kept_playing("chunk sizes 0, 1, 2^31-1, 2^32-1 and 65 chunk stream ids");
    srv.stop().await;
}

/// Connections that never publish (silent, mid-handshake, or connected and
/// pinging) are closed at the publish deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_publish_are_closed() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let srv = TestServer::start().await;
    let victim = Victim::start(&srv, 14).await;
    let attacker = ip(ATTACKER);
    let mut idle = Vec::new();
    for i in 0..PER_HOST {
        idle.push(match i % 3 {
            0 => Raw::connect(srv.rtmp, attacker).await,
            1 => {
                let mut c = Raw::connect(srv.rtmp, attacker).await;
                c.send(&[3; 700]).await.unwrap();
                c
            }
            _ => {
                let mut c = Raw::handshaken(srv.rtmp, attacker).await;
                c.send(&[connect("live"), create_stream()].concat())
                    .await
                    .unwrap();
                c
            }
        });
    }
    // The host's next connection is refused at once.
    let extra = Raw::connect(srv.rtmp, attacker).await;
    assert!(
        extra.closed_within(Duration::from_secs(2)).await.is_some(),
        "connection {} from one host is refused",
        PER_HOST + 1
    );
    let start = Instant::now();
    while start.elapsed() < PUBLISH_DEADLINE + Duration::from_secs(1) {
        for (i, c) in idle.iter_mut().enumerate() {
            if i % 3 == 2 && !c.is_closed() {
                let _ = c.send(&ping(i as u32)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for (i, c) in idle.iter().enumerate() {
        let t = c
            .closed_within(Duration::from_secs(2))
            .await
            .unwrap_or_else(|| panic!("connection {i} still open"));
        assert!(
            t >= PUBLISH_DEADLINE - Duration::from_millis(500),
            "connection {i} closed after {t:?}"
        );
        if i % 3 == 2 {
            assert!(c.said("_result"), "connection {i} was answered before");
        }
    }
    // Its slots are back.
    let mut back = Raw::handshaken(srv.rtmp, attacker).await;
    back.send(&connect("live")).await.unwrap();
    assert!(
        back.wait_said("NetConnection.Connect.Success", Duration::from_secs(3))
            .await
    );
    assert!(limit_hits(srv.http, "rtmp_publish_deadline").await >= PER_HOST as f64);
    victim
        .finish()
        .await
        .assert_kept_playing("16 connections that never publish");
    srv.stop().await;
}

/// One address opens connections as fast as it can: it gets its 16, the
/// rest are closed at accept, and a legitimate ffmpeg publisher from
/// another address goes live on its own channel during the flood.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_from_one_address_is_capped() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let srv = TestServer::start().await;
    let legit_key = srv.db.create_channel("legit").await.unwrap().stream_key;
    let victim = Victim::start(&srv, 14).await;
    let attacker = ip(ATTACKER);
    let rtmp = srv.rtmp;
    let stop = Arc::new(AtomicBool::new(false));
    let (opened, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut flooders = Vec::new();
    for _ in 0..8 {
        let (stop, opened, refused) = (stop.clone(), opened.clone(), refused.clone());
        flooders.push(tokio::spawn(async move {
            let mut held = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let c = Raw::connect(rtmp, attacker).await;
                opened.fetch_add(1, Ordering::Relaxed);
                if c.closed_within(Duration::from_millis(200)).await.is_some() {
                    refused.fetch_add(1, Ordering::Relaxed);
                } else {
                    held.push(c);
                }
            }
            // A connection still in the server's accept backlog looks held
            // until the server gets to it and refuses it: on a loaded
            // machine that can be seconds. Held ones get a second more.
            let until = Instant::now() + Duration::from_secs(1);
            for c in &held {
                c.closed_within(until.saturating_duration_since(Instant::now()))
                    .await;
            }
            held.iter().filter(|c| !c.is_closed()).count()
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t = Instant::now();
    let mut legit = ffmpeg_publish_sized(&srv.rtmp_url(&legit_key), 20, "320x180", &["-bf", "0"]);
    wait_for_live(srv.http, "legit").await;
    let went_live = t.elapsed();
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    let mut held = 0;
    for f in flooders {
        held += f.await.unwrap();
    }
    let (opened, refused) = (
        opened.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    let refused_metric = labelled(
        srv.http,
        "onair_connections_refused_total{listener=\"rtmp\"}",
    )
    .await;
    println!(
        "flood: {opened} connections opened, {refused} closed at once, {held} held (cap {PER_HOST}); \
         legit publisher live after {went_live:?}; onair_connections_refused_total{{listener=\"rtmp\"}} {refused_metric}"
    );
    assert!(held <= PER_HOST, "{held} connections held from one address");
    assert!(
        opened > 10 * PER_HOST as u64,
        "the flood was a flood: {opened}"
    );
    assert!(
        refused_metric >= refused as f64,
        "every quick close was a refusal at the cap"
    );
    let _ = legit.kill().await;
    victim
        .finish()
        .await
        .assert_kept_playing("a connection flood from one address");
    srv.stop().await;
}

/// A panic while serving one RTMP connection (`--fault-injection`: a
/// command named `onair-fault:rtmp`) ends that connection and its publish
/// alone: logged once, counted, and every other connection carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_one_connection_drops_only_that_connection() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let srv = TestServer::start_with(|c| c.fault_injection = true).await;
    let key = srv.db.create_channel("attacker").await.unwrap().stream_key;
    let victim = Victim::start(&srv, 6).await;
    let attacker = ip(ATTACKER);
    let series = "onair_isolated_panics_total{component=\"rtmp\"}";
    let before = common::metric_or_zero(srv.http, series).await;

    let bystander = Raw::handshaken(srv.rtmp, attacker).await;
    let mut c = Raw::publishing(srv.rtmp, attacker, &key).await;
    wait_for_live(srv.http, "attacker").await;
    c.send(&command(
        "onair-fault:rtmp",
        4.0,
        0,
        Amf0Value::Null,
        vec![],
    ))
    .await
    .unwrap();
    assert!(
        c.closed_within(Duration::from_secs(3)).await.is_some(),
        "the panicking connection is closed"
    );
    assert_eq!(common::metric_or_zero(srv.http, series).await, before + 1.0);
    let live = http(srv.http, "GET", "/metrics", &[], b"").await.text();
    assert!(
        !live.contains("onair_stream_readers{channel=\"attacker\"}"),
        "its publish ended with it"
    );
    assert!(!bystander.is_closed(), "another connection is untouched");
    assert_eq!(common::get(srv.http, "/healthz").await.status, 200);
    // RTMP still takes publishers.
    let again = Raw::publishing(srv.rtmp, attacker, &key).await;
    assert!(!again.is_closed());
    victim
        .finish()
        .await
        .assert_kept_playing("a panic while serving one RTMP connection");
    srv.stop().await;
}
