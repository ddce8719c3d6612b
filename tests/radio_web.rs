//! The listening page: an audio-only channel published over RTMP (ffmpeg,
//! AAC), WHIP (our WebRTC publisher, Opus, no video m-line) and Icecast
//! (ffmpeg, MP3) plays over WebRTC in headless Chromium soon after opening
//! the page (`FIRST_SOUND_MS`), never falls back to LL-HLS, and its level meter
//! moves; an Icecast title update reaches the open page. A page opened
//! while an RTMP publish is live but has sent nothing yet waits to learn
//! whether it has video, and becomes the listening page.
//!
//! Needs the built app (`web/dist`), node and the Debian `chromium`
//! package, as tests/web_app.rs does.

mod common;

use common::node::{require_built_app, run_script, run_script_with_env, shots};
use common::rtmp::{flv_message, flv_tags, ping, set_chunk_size, Raw};
use common::{wait_for_live, TestServer};
use serde_json::Value;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Fresh page loads per source: their median is judged, so one load that
/// meets a busy moment of a shared machine does not decide.
const LOADS: usize = 5;
/// The issue asks for sound within a second of opening the page; that is
/// measured on a release build (docs/BENCHMARKS.md, "Web app"). This test
/// runs a debug server beside ffmpeg and Chromium on 2 cores, where the
/// median ranged 0.6-1.1 s: its bound catches a player that waits for a
/// picture or for the HLS fallback (4 s), not a busy moment.
const FIRST_SOUND_MS: f64 = 2000.0;

/// Each test runs a server, ffmpeg and Chromium, and the first judges a
/// time to first sound: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn ffmpeg(args: &[&str]) -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-ac",
            "2",
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg is installed")
}

/// One load of the page: the listening page, playing over WebRTC alone,
/// with sound and a moving level meter, and no video asked for.
fn listening(source: &str, l: &Value) {
    assert_eq!(l["card"], 1, "{source}: the listening page: {l}");
    assert_eq!(l["mode"], "webrtc", "{source}: plays over WebRTC: {l}");
    assert_eq!(
        l["modes"],
        serde_json::json!(["webrtc"]),
        "{source}: never LL-HLS: {l}"
    );
    assert!(
        !l["scripts"].to_string().contains("hls"),
        "{source}: hls.js never loaded: {l}"
    );
    assert!(
        l["totalAudioEnergy"].as_f64().unwrap_or(0.0) > 0.0,
        "{source}: sound: {l}"
    );
    assert_eq!(l["framesDecoded"], 0, "{source}: no video asked for: {l}");
    assert!(l["offers"].as_u64() >= Some(1), "{source}: an offer: {l}");
    assert_eq!(
        l["videoOffers"], 0,
        "{source}: no offer ever asked for video, not even one replaced: {l}"
    );
    // ffmpeg's sine is 1/8 of full scale (RMS 0.088): well above
    // silence, which reads 0.
    let level = l["maxLevel"].as_f64().unwrap_or(0.0);
    assert!(
        level > 0.02,
        "{source}: the level meter moves (max RMS {level}): {l}"
    );
}

/// Runs the page script against `channel` and checks what it measured.
async fn judge(srv: &TestServer, channel: &str, source: &str, song: &[&str]) -> Value {
    require_built_app();
    let base = format!("http://{}", srv.http);
    let loads = LOADS.to_string();
    let shots = shots();
    let mut args = vec![base.as_str(), channel, loads.as_str(), shots.as_str()];
    args.extend_from_slice(song);
    let r = run_script("radio_watch.mjs", &args, Duration::from_secs(150)).await;
    eprintln!("{source}: {r}");
    let loads = r["loads"].as_array().expect("loads");
    let mut firsts = Vec::new();
    for l in loads {
        listening(source, l);
        firsts.push(l["firstSoundMs"].as_f64().expect("played"));
    }
    firsts.sort_by(f64::total_cmp);
    let median = firsts[firsts.len() / 2];
    eprintln!("{source}: page open -> first WebRTC sound: median {median} ms, all {firsts:?}");
    assert!(
        median < FIRST_SOUND_MS,
        "{source}: first sound {median} ms after opening the page"
    );
    let last = loads.last().unwrap();
    assert_eq!(last["pausedState"], true, "{source}: pause pauses: {last}");
    assert_eq!(last["resumedState"], false, "{source}: play plays: {last}");
    r
}

/// One source at a time on one server: RTMP, then WHIP, then Icecast.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_only_rtmp_whip_and_icecast_play_over_webrtc_without_falling_back() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let srv = TestServer::start().await;

    let mut ff = ffmpeg(&[
        "-t",
        "40",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        "-f",
        "flv",
        &srv.rtmp_url(&srv.key),
    ]);
    wait_for_live(srv.http, "demo").await;
    judge(&srv, "demo", "RTMP", &[]).await;
    ff.kill().await.ok();

    let whip_key = srv.db.create_channel("whipradio").await.unwrap().stream_key;
    let http = srv.http;
    let whip = tokio::spawn(async move {
        onair_loadtest::whip::publish(
            http,
            onair_loadtest::whip::PublishOptions {
                key: whip_key,
                video: Vec::new(),
                fps: 30,
                audio: common::media::audio(),
                duration: Duration::from_secs(40),
                stamp: false,
                raw: None,
                on_session: None,
            },
        )
        .await
    });
    wait_for_live(srv.http, "whipradio").await;
    judge(&srv, "whipradio", "WHIP", &[]).await;
    whip.abort();

    let ice_key = srv
        .db
        .create_channel("icecastradio")
        .await
        .unwrap()
        .stream_key;
    let url = format!(
        "icecast://source:{ice_key}@{}/icecastradio.mp3",
        srv.icecast
    );
    let _ff = ffmpeg(&[
        "-t",
        "60",
        "-c:a",
        "libmp3lame",
        "-b:a",
        "128k",
        "-ice_name",
        "Night Shift",
        "-f",
        "mp3",
        &url,
    ]);
    wait_for_live(srv.http, "icecastradio").await;
    let song = "Artist - A Title";
    let update = format!(
        "http://{}/admin/metadata?mount=/icecastradio&mode=updinfo&song=Artist+-+A+Title",
        srv.icecast
    );
    let auth = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("source:{ice_key}")
        )
    );
    let r = judge(&srv, "icecastradio", "Icecast", &[song, &update, &auth]).await;
    let last = r["loads"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["updateStatus"], 200, "{last}");
    assert!(
        last["nowPlaying"]
            .as_str()
            .unwrap_or_default()
            .contains(song),
        "the title update reached the open page: {last}"
    );
    assert_eq!(last["title"], "Night Shift", "{last}");
    srv.stop().await;
}

/// An RTMP publish that is live before its first packet: a page opened in
/// between is told the stream is live but not yet whether it has video.
/// It asks again rather than guess, and once 2 s of audio without metadata
/// say there is no picture it is the listening page playing over WebRTC:
/// its player never offered video, not even first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_opened_before_the_first_audio_becomes_a_listening_page() {
    let _serial = ONE_AT_A_TIME.lock().await;
    require_built_app();
    let srv = TestServer::start().await;
    // The audio, as ffmpeg publishes it, sent by hand once the page is open.
    let dir = tempfile::tempdir().unwrap();
    let flv = dir.path().join("radio.flv");
    let made = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi"])
        .args(["-i", "sine=frequency=440:sample_rate=48000", "-ac", "2"])
        .args(["-t", "30", "-c:a", "aac", "-b:a", "128k", "-f", "flv"])
        .arg(&flv)
        .status()
        .await
        .expect("ffmpeg is installed");
    assert!(made.success(), "ffmpeg wrote the FLV");
    let tags = flv_tags(&std::fs::read(&flv).unwrap());
    assert!(tags.iter().any(|t| t.kind == 8), "AAC in the FLV");

    let mut publisher = Raw::publishing(srv.rtmp, "127.0.0.1".parse().unwrap(), &srv.key).await;
    publisher.send(&set_chunk_size(4096)).await.unwrap();
    wait_for_live(srv.http, "demo").await;
    let details = common::http(srv.http, "GET", "/api/channels/demo", &[], b"")
        .await
        .json();
    assert_eq!(details["live"], true, "{details}");
    assert_eq!(details["video"], Value::Null, "not known yet: {details}");

    let base = format!("http://{}", srv.http);
    let shots = shots();
    let page = tokio::spawn(async move {
        run_script_with_env(
            "radio_watch.mjs",
            &[&base, "demo", "1", &shots],
            &[("START_WITHIN_MS", "25000")],
            Duration::from_secs(180),
        )
        .await
    });
    // The page is open once its chat socket is; give it a moment more to
    // have asked for the details, then start the audio in real time. The
    // publisher pings meanwhile: the server closes a connection silent
    // for 30 s.
    let opened = Instant::now();
    let mut pinged = Instant::now();
    while common::metric(srv.http, "onair_chat_sockets").await < 1.0 {
        assert!(
            opened.elapsed() < Duration::from_secs(60),
            "the page opened"
        );
        if pinged.elapsed() > Duration::from_secs(5) {
            publisher.send(&ping(1)).await.expect("the publish is up");
            pinged = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Sound alone, without the FLV's metadata: only 2 s of it says there
    // is no picture (the first test's ffmpeg sends metadata, which says so
    // at once).
    let sender = tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        for tag in tags.iter().filter(|t| t.kind == 8) {
            tokio::time::sleep_until(start + Duration::from_millis(tag.ts.into())).await;
            if publisher.send(&flv_message(tag, 4096)).await.is_err() {
                break;
            }
        }
        publisher
    });
    let r = page.await.unwrap();
    sender.abort();
    eprintln!("late audio: {r}");
    let l = &r["loads"][0];
    listening("RTMP, audio after the page opened", l);
    let seen = l["videoSeen"].as_array().expect("videoSeen");
    assert_eq!(
        seen.first(),
        Some(&Value::Null),
        "the page first saw a live stream without knowing about video: {l}"
    );
    assert_eq!(
        seen.last(),
        Some(&Value::Bool(false)),
        "and asked until it knew: {l}"
    );
    srv.stop().await;
}
