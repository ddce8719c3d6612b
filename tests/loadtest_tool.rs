//! `onair-loadtest` runs a small instance of every scenario against a real
//! server, and its reports must say what a viewer actually got: connected
//! peers, bytes, and a sane glass-to-glass latency from the publisher's
//! stamps. Exactly the code behind the binary's subcommands runs here.

mod common;

use common::{get, TestServer};
use serde_json::Value;

async fn run(args: &[&str]) -> Value {
    onair_loadtest::cli::run(args.iter().map(|s| s.to_string()))
        .await
        .unwrap_or_else(|e| panic!("onair-loadtest {args:?}: {e:#}"))
}

/// Runs viewer `scenario` against `srv`'s channel for `seconds`, fed by a
/// small synthetic publisher (`source`: `--rtmp URL` or `--whip-key KEY`),
/// with no table; `more` goes last.
async fn run_viewers(
    srv: &TestServer,
    scenario: &str,
    viewers: &str,
    seconds: &str,
    source: [&str; 2],
    more: &[&str],
) -> Value {
    let addr = srv.http.to_string();
    let mut args = vec![
        scenario,
        "--http",
        &addr,
        "--channel",
        &srv.channel,
        "--viewers",
        viewers,
        "--seconds",
        seconds,
        source[0],
        source[1],
        "--size",
        "320x180",
        "--kbps",
        "300",
        "--quiet",
    ];
    args.extend_from_slice(more);
    run(&args).await
}

fn num(r: &Value, key: &str) -> f64 {
    r[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {r:#}"))
}

/// A latency a loopback run must produce: positive, under two seconds.
fn sane_latency(r: &Value, max_ms: f64) {
    let (p50, p99) = (num(r, "latency_ms_p50"), num(r, "latency_ms_p99"));
    assert!(num(r, "latency_samples") > 10.0, "{r:#}");
    assert!(p50 > 0.0 && p50 <= p99 && p99 < max_ms, "{r:#}");
}

fn server_usage_present(r: &Value) {
    let s = &r["server"];
    assert!(s["cpu_percent_of_one_core"].as_f64().is_some(), "{r:#}");
    assert!(s["rss_mib"].as_f64().unwrap_or(0.0) > 1.0, "{r:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whep_viewers_of_an_rtmp_publisher() {
    let srv = TestServer::start().await;
    let url = srv.rtmp_url(&srv.key);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("whep.json");
    let more = ["--json", json.to_str().unwrap()];
    let r = run_viewers(&srv, "whep", "3", "3", ["--rtmp", &url], &more).await;
    assert_eq!(r["connected"], 3, "{r:#}");
    assert_eq!(r["receiving_video"], 3, "{r:#}");
    assert_eq!(r["errors"], 0, "{r:#}");
    assert!(num(&r, "mbps_per_viewer") > 0.05, "{r:#}");
    assert!(num(&r, "fps_per_viewer") > 15.0, "{r:#}");
    assert!(num(&r, "loss_percent") < 1.0, "{r:#}");
    assert!(num(&r, "join_ms_p99") < 5000.0, "{r:#}");
    // The rotating decode check decoded real pictures, without errors.
    assert!(num(&r, "decoded_frames") >= 20.0, "{r:#}");
    assert_eq!(r["decode_errors"], 0, "{r:#}");
    sane_latency(&r, 2000.0);
    assert_eq!(r["publisher"]["protocol"], "rtmp", "{r:#}");
    assert!(num(&r["publisher"], "frames") > 100.0, "{r:#}");
    server_usage_present(&r);
    // The file holds the same report.
    eprintln!("{r:#}");
    let file: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    // Compared as parsed text: serde_json's default float parsing can land
    // one ULP off the value it printed (e.g. the publisher's Mbit/s).
    let printed: Value = serde_json::from_str(&r.to_string()).unwrap();
    for k in ["scenario", "connected", "latency_samples", "publisher"] {
        assert_eq!(file[k], printed[k], "{k}");
    }
    // Egress and process metrics moved.
    let m = get(srv.http, "/metrics").await.text();
    let rtp = onair_loadtest::report::metric(&m, "onair_rtp_packets_out_total").unwrap();
    assert!(rtp > 100.0, "{m}");
    srv.stop().await;
}

/// `--decrypt-every`: viewers that only read their media's clear headers
/// still count it as the decrypting one does, and the server gets their
/// feedback (it opens and counts each transport-cc packet).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whep_viewers_that_do_not_decrypt_count_and_send_feedback() {
    let srv = TestServer::start().await;
    let url = srv.rtmp_url(&srv.key);
    let more = ["--decrypt-every", "4"];
    let r = run_viewers(&srv, "whep", "4", "4", ["--rtmp", &url], &more).await;
    eprintln!("{r:#}");
    assert_eq!(r["connected"], 4, "{r:#}");
    assert_eq!(r["receiving_video"], 4, "{r:#}");
    assert_eq!(r["decrypting_viewers"], 1, "{r:#}");
    assert!(num(&r, "fps_per_viewer") > 15.0, "{r:#}");
    assert!(num(&r, "loss_percent") < 1.0, "{r:#}");
    assert_eq!(r["freezes"], 0, "{r:#}");
    // The one that decrypts decodes in every slot: the rotation is its own.
    assert!(num(&r, "decoded_frames") >= 20.0, "{r:#}");
    assert_eq!(r["decode_errors"], 0, "{r:#}");
    sane_latency(&r, 2000.0);
    // About ten a second from each viewer (some 70 over the run): more
    // than two viewers' worth means the ones reading clear headers sent
    // theirs and the server read it.
    let m = get(srv.http, "/metrics").await.text();
    let twcc = onair_loadtest::report::metric(&m, "onair_twcc_feedback_received_total").unwrap();
    assert!(twcc > 150.0, "{twcc} transport-cc packets");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whep_viewers_of_a_whip_publisher() {
    let srv = TestServer::start().await;
    let r = run_viewers(&srv, "whep", "2", "3", ["--whip-key", &srv.key], &[]).await;
    assert_eq!(r["connected"], 2, "{r:#}");
    assert_eq!(r["receiving_video"], 2, "{r:#}");
    assert_eq!(r["publisher"]["protocol"], "whip", "{r:#}");
    sane_latency(&r, 1000.0);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hls_viewers_do_blocking_reloads() {
    let srv = TestServer::start().await;
    let url = srv.rtmp_url(&srv.key);
    let r = run_viewers(&srv, "hls", "3", "5", ["--rtmp", &url], &[]).await;
    assert_eq!(r["connected"], 3, "{r:#}");
    assert_eq!(r["receiving_parts"], 3, "{r:#}");
    assert!(num(&r, "mbps_per_viewer") > 0.05, "{r:#}");
    // Blocking reloads: about one playlist per part, not a polling storm.
    let (parts, playlists) = (num(&r, "parts"), num(&r, "playlists"));
    assert!(parts > 10.0 && playlists < parts * 3.0, "{r:#}");
    eprintln!("{r:#}");
    sane_latency(&r, 5000.0);
    server_usage_present(&r);
    let m = get(srv.http, "/metrics").await.text();
    let media = onair_loadtest::report::metric(&m, "onair_hls_media_requests_total").unwrap();
    assert!(media >= parts, "{m}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chat_clients_measure_delivery() {
    let srv = TestServer::start().await;
    let addr = srv.http.to_string();
    let r = run(&[
        "chat",
        "--http",
        &addr,
        "--channel",
        &srv.channel,
        "--clients",
        "6",
        "--rate",
        "3",
        "--seconds",
        "3",
        "--quiet",
    ])
    .await;
    assert_eq!(r["connected"], 6, "{r:#}");
    assert_eq!(r["writers"], 4, "{r:#}");
    assert_eq!(r["rejected"], 0, "{r:#}");
    assert!(num(&r, "sent") >= 6.0, "{r:#}");
    assert!(num(&r, "delivered_percent") > 99.0, "{r:#}");
    sane_latency(&r, 1000.0);
    let m = get(srv.http, "/metrics").await.text();
    let chat = onair_loadtest::report::metric(&m, "onair_chat_messages_total").unwrap();
    assert!(chat >= num(&r, "sent"), "{m}");
    assert!(m.contains("onair_db_pool_connections "), "{m}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publish_alone_and_bounds() {
    let srv = TestServer::start().await;
    let (addr, url) = (srv.http.to_string(), srv.rtmp_url(&srv.key));
    let r = run(&[
        "publish",
        "--http",
        &addr,
        "--rtmp",
        &url,
        "--seconds",
        "2",
        "--size",
        "320x180",
        "--quiet",
    ])
    .await;
    assert!(num(&r["publisher"], "frames") >= 55.0, "{r:#}");
    assert!(num(&r["publisher"], "mbps") > 0.05, "{r:#}");
    // A wrong key is refused, and said so.
    let bad = format!("rtmp://{}/live/wrong", srv.rtmp);
    let e =
        onair_loadtest::cli::run(["publish", "--http", &addr, "--rtmp", &bad, "--seconds", "1"])
            .await
            .unwrap_err();
    assert!(format!("{e:#}").contains("refused"), "{e:#}");
    // Load goes to loopback only, and runs are capped.
    for args in [
        vec!["whep", "--http", "10.1.2.3:8080", "--viewers", "1"],
        vec!["whep", "--http", &addr, "--viewers", "100000"],
        vec!["chat", "--http", &addr, "--rate", "100000"],
        vec![
            "publish",
            "--http",
            &addr,
            "--rtmp",
            "rtmp://10.1.2.3/live/k",
        ],
    ] {
        assert!(
            onair_loadtest::cli::run(args.clone()).await.is_err(),
            "{args:?}"
        );
    }
    srv.stop().await;
}

/// 45 s of `soak` at tiny sizes, every attack but TURN in rotation (the
/// test server has no relay): a timeline line per sample, nothing panics,
/// the victim keeps playing (no gap of 1 s or more, no decode error),
/// publishers restart, and every broadcast is finalized when the server
/// stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_short_soak_keeps_the_victim_playing() {
    let mut srv = TestServer::start().await;
    let (http, rtmp) = (srv.http.to_string(), srv.rtmp.to_string());
    let dir = tempfile::tempdir().unwrap();
    let timeline = dir.path().join("timeline.jsonl");
    let summary = dir.path().join("summary.json");
    let r = run(&[
        "soak",
        "--http",
        &http,
        "--rtmp",
        &rtmp,
        "--minutes",
        "0.75",
        "--sample-secs",
        "5",
        "--attack-secs",
        "4",
        "--rest-secs",
        "1",
        "--rtmp-publishers",
        "1",
        "--whip-publishers",
        "1",
        "--publish-secs",
        "12",
        "--webrtc-viewers",
        "2",
        "--hls-viewers",
        "1",
        "--chat-clients",
        "4",
        "--chat-rate",
        "2",
        "--size",
        "320x180",
        "--kbps",
        "300",
        "--timeline",
        timeline.to_str().unwrap(),
        "--json",
        summary.to_str().unwrap(),
        "--quiet",
    ])
    .await;
    eprintln!("{r:#}");
    let written: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(written["run"], r["run"]);
    assert_eq!(written["attacks_run"], r["attacks_run"]);
    let v = &r["verdict"];
    assert_eq!(r["panics"], 0.0, "{r:#}");
    assert_eq!(v["zero_panics"], true, "{r:#}");
    assert!(num(&r, "victim_longest_gap_ms") < 1000.0, "{r:#}");
    assert_eq!(v["victim_kept_playing"], true, "{r:#}");
    assert!(num(&r, "victim_fps") > 15.0, "{r:#}");
    // RSS and descriptors of the server were sampled after the warm-up.
    for k in [
        "rss_mib_min",
        "rss_mib_max",
        "rss_spread_percent",
        "fds_min",
        "fds_max",
    ] {
        assert!(num(&r, k) >= 0.0, "{k}: {r:#}");
    }
    // The timeline has a line per sample, and the server was under load.
    let lines: Vec<Value> = std::fs::read_to_string(&timeline)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 9, "{} samples", lines.len());
    assert!(lines.iter().all(|l| l["error"].is_null()), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l["live_streams"].as_f64() >= Some(3.0)),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l["fwd_packets"].as_f64() > Some(0.0)),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l["fwd_p99_ms"].as_f64().is_some()),
        "{lines:#?}"
    );
    // Attacks ran, the attackers did their part, and they met the
    // server's limits.
    assert!(num(&r, "attacks_run") >= 5.0, "{r:#}");
    assert_eq!(r["attack_errors"], 0, "{r:#}");
    assert_eq!(
        lines.last().unwrap()["attacks_run"],
        r["attacks_run"],
        "{lines:#?}"
    );
    for (name, a) in r["attacks"].as_object().unwrap() {
        assert_eq!(a["victim_decode_errors"], 0, "{name}: {r:#}");
    }
    assert!(
        lines.last().unwrap()["limit_hits"].as_f64() > Some(0.0)
            || lines.last().unwrap()["refused"].as_f64() > Some(0.0),
        "{lines:#?}"
    );
    // Publishers restarted: broadcasts began and ended during the run.
    let load = &r["load"];
    assert!(num(load, "broadcasts_ended") >= 3.0, "{r:#}");
    assert_eq!(load["publish_errors"], 0, "{r:#}");
    assert!(num(load, "webrtc_with_video") >= 1.0, "{r:#}");
    assert!(num(load, "hls_with_parts") >= 1.0, "{r:#}");
    assert!(num(load, "spam_rejected") > 0.0, "{r:#}");
    // Every broadcast is finalized once the server stops.
    let run_id = r["run"].as_str().unwrap().to_string();
    let db = srv.db.clone();
    let data = std::mem::replace(&mut srv.dir, tempfile::tempdir().unwrap());
    srv.stop().await;
    let mut recorded = 0;
    for ch in ["p0", "p1", "v", "a"] {
        let ch = format!("s{run_id}{ch}");
        for b in db.broadcasts(&ch, None, 100).await.unwrap() {
            assert!(b.ended_at.is_some(), "{ch}: {b:?}");
            if b.recorded {
                recorded += 1;
                let playlist = data.path().join(format!("recordings/{}/index.m3u8", b.id));
                let text = std::fs::read_to_string(&playlist).unwrap();
                assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{ch}: {text}");
            }
        }
    }
    assert!(recorded >= 4, "{recorded} recorded broadcasts");
}
