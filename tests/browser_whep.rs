//! RTMP (ffmpeg) -> hub -> WHEP -> a real browser: headless Chromium (driven
//! by playwright-core, `tests/e2e/whep_watch.mjs`) watches the channel and
//! reports what `RTCPeerConnection.getStats()` saw.
//!
//! Needs `node`/`npm` and the Debian `chromium` package (or `CHROMIUM=` set to
//! a Chrome binary). `tests/e2e/node_modules` is installed with `npm ci` on
//! first run.

mod common;

use common::{ffmpeg_publish, TestServer};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Command;

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("e2e")
}

/// `npm ci` in tests/e2e unless playwright-core is already there.
async fn ensure_node_modules(dir: &Path) {
    if dir
        .join("node_modules")
        .join("playwright-core")
        .join("package.json")
        .exists()
    {
        return;
    }
    eprintln!("installing {}/node_modules with npm ci", dir.display());
    let out = Command::new("npm")
        .arg("ci")
        .arg("--prefix")
        .arg(dir)
        .arg("--no-audit")
        .arg("--no-fund")
        // playwright-core downloads no browser, but be explicit about it.
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), out)
        .await
        .expect("npm ci finished within 5 minutes")
        .unwrap_or_else(|e| {
            panic!("could not run npm (is Node.js installed? apt-get install nodejs npm): {e}")
        });
    assert!(
        out.status.success(),
        "npm ci --prefix {} failed ({}):\n{}\n{}",
        dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_watches_rtmp_publish_over_whep() {
    let dir = e2e_dir();
    ensure_node_modules(&dir).await;

    let srv = TestServer::start().await;
    let _ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 15);

    let base = format!("http://{}", srv.http);
    let started = Instant::now();
    let node = Command::new("node")
        .arg(dir.join("whep_watch.mjs"))
        .arg(&base)
        .arg(&srv.channel)
        .arg("8")
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node is installed (apt-get install nodejs)");
    // The script has its own hard timeout (seconds + 45 s); this one is the
    // backstop, and dropping `node` on expiry kills it.
    let out = tokio::time::timeout(Duration::from_secs(90), node.wait_with_output())
        .await
        .expect("whep_watch.mjs finished in time")
        .expect("whep_watch.mjs ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.trim().is_empty() {
        eprintln!("whep_watch.mjs stderr:\n{stderr}");
    }
    assert!(
        out.status.success(),
        "whep_watch.mjs failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );

    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line in: {stdout}"));
    let r: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON ({e}): {line}"));
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
