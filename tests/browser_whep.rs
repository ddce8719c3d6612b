//! RTMP (ffmpeg) -> hub -> WHEP -> a real browser: headless Chromium (driven
//! by playwright-core, `tests/e2e/whep_watch.mjs`) watches the channel and
//! reports what `RTCPeerConnection.getStats()` saw.
//!
//! Needs `node`/`npm` and the Debian `chromium` package (or `CHROMIUM=` set to
//! a Chrome binary). `tests/e2e/node_modules` is installed with `npm ci` on
//! first run.

mod common;

use common::node::run_script;
use common::{ffmpeg_publish, TestServer};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_watches_rtmp_publish_over_whep() {
    let srv = TestServer::start().await;
    // Long enough to outlast a cold Chromium start (20 s was seen on a fresh
    // machine); ffmpeg is killed when the test ends.
    let _ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 90);

    let base = format!("http://{}", srv.http);
    let started = Instant::now();
    // The script has its own hard timeout (seconds + 45 s); this is the
    // backstop.
    let r = run_script(
        "whep_watch.mjs",
        &[&base, &srv.channel, "8"],
        Duration::from_secs(90),
    )
    .await;
    eprintln!("browser report after {:?}: {r}", started.elapsed());

    let num = |k: &str| {
        r[k].as_f64()
            .unwrap_or_else(|| panic!("{k} missing or not a number in {r}"))
    };
    let first_frame_ms = r["firstFrameMs"].as_f64();
    eprintln!(
        "firstFrameMs (POST -> first frame) = {:?} via {}, framesDecoded = {}, totalAudioEnergy = {}, analyser peak rms = {}",
        first_frame_ms, r["firstFrameSource"], r["framesDecoded"], r["totalAudioEnergy"], r["analyserPeakRms"]
    );

    assert_eq!(r["status"], 201, "WHEP POST status: {r}");
    let location = r["location"].as_str().unwrap_or_default();
    assert!(
        location.starts_with(&format!("/whep/{}/", srv.channel)),
        "Location {location:?}"
    );
    assert!(num("framesDecoded") > 30.0, "framesDecoded: {r}");
    assert_eq!(
        (num("frameWidth"), num("frameHeight")),
        (1280.0, 720.0),
        "frame size: {r}"
    );
    assert!(num("audioSamplesReceived") > 0.0, "audio samples: {r}");
    assert!(
        num("totalAudioEnergy") > 0.0,
        "audio energy (inbound-rtp totalAudioEnergy): {r}"
    );
    // The same sound seen through WebAudio (an AnalyserNode on the remote
    // track): the 440 Hz sine at amplitude 1/8 has an RMS of ~0.088.
    assert!(
        num("analyserPeakRms") > 0.01,
        "audio RMS through WebAudio: {r}"
    );
    let chat: Vec<&str> = r["chat"]
        .as_array()
        .expect("chat array")
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    assert!(
        chat.iter().any(|m| m.contains(r#""type":"live""#)),
        "live event on the data channel: {chat:?}"
    );
    let first_frame_ms = first_frame_ms.unwrap_or_else(|| panic!("no first frame time: {r}"));
    assert!(
        first_frame_ms < 5000.0,
        "first frame took {first_frame_ms} ms (sanity bound 5 s): {r}"
    );

    srv.stop().await;
}
