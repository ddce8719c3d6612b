//! The lean viewer session against other WebRTC stacks, over both SRTP
//! profiles: aiortc (Python; libsrtp and OpenSSL), werift (TypeScript) and
//! rtc's own peer connection each watch an RTMP publish over WHEP. The
//! profile DTLS settled on is read from the server's `/metrics`, so each run
//! proves which one carried the media. Chromium's run is `browser_whep`.
//!
//! aiortc comes from `scripts/setup.sh --test` (its own virtualenv), werift
//! from `tests/e2e`'s npm packages.

mod common;

use common::node::run_script;
use common::webrtc_client::{access_units, watch, ViewerOptions};
use common::{ffmpeg_publish, TestServer};
use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use std::path::PathBuf;
use std::time::Duration;

const GCM: &str = "aead_aes_128_gcm";
/// The profile counters are the process's: one scenario at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const CM: &str = "aes_cm_128_hmac_sha1_80";

/// Lean viewers that connected with `profile`, so far.
async fn sessions(srv: &TestServer, profile: &str) -> u64 {
    let text = common::get(srv.http, "/metrics").await.text();
    let key = format!("onair_webrtc_srtp_sessions_total{{profile=\"{profile}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(key.as_str()))
        .map_or(0, |v| v.trim().parse().expect("a counter"))
}

fn aiortc_python() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let py = PathBuf::from(home).join(".cache/onair-test/aiortc/bin/python");
    py.is_file().then_some(py)
}

fn has_live(chat: &serde_json::Value) -> bool {
    chat.as_array().is_some_and(|a| {
        a.iter()
            .any(|m| m.as_str().is_some_and(|m| m.contains(r#""type":"live""#)))
    })
}

/// aiortc offering only AES-CM, only AES-GCM, and its own list (AES-256-GCM
/// first, which we do not take): each decodes the 720p picture and the
/// sound, hears the live event on its chat channel, and connected with the
/// profile expected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_decodes_picture_and_sound_over_both_srtp_profiles() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(python) = aiortc_python() else {
        return common::missing_service("aiortc", "run ./scripts/setup.sh --test");
    };
    let srv = TestServer::start().await;
    let _ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 120);
    common::wait_for_live(srv.http, &srv.channel).await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/aiortc_whep.py");
    let base = format!("http://{}", srv.http);
    for (offered, expected) in [("cm", CM), ("gcm", GCM), ("all", GCM)] {
        let before = sessions(&srv, expected).await;
        let out = tokio::time::timeout(
            Duration::from_secs(90),
            tokio::process::Command::new(&python)
                .arg(&script)
                .args([base.as_str(), srv.channel.as_str(), "6", offered])
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("aiortc viewer finished")
        .expect("aiortc viewer ran");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "aiortc ({offered}) failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: serde_json::Value =
            serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("a JSON report");
        eprintln!("aiortc offering {offered}: {r}");
        assert_eq!(r["status"], 201, "{offered}: {r}");
        assert!(
            r["frames"].as_u64() > Some(60),
            "{offered}: frames decoded: {r}"
        );
        assert!(
            r["sizes"]
                .as_array()
                .is_some_and(|s| s.contains(&serde_json::json!([1280, 720]))),
            "{offered}: 1280x720 pictures: {r}"
        );
        assert!(
            r["audio_frames"].as_u64() > Some(100),
            "{offered}: audio frames: {r}"
        );
        assert!(
            has_live(&r["chat"]),
            "{offered}: the live event on the chat channel: {r}"
        );
        assert_eq!(
            sessions(&srv, expected).await,
            before + 1,
            "{offered}: connected with {expected}"
        );
    }
    srv.stop().await;
}

/// werift (GCM preferred): the video's packets, a keyframe among them, the
/// audio's, and the chat channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn werift_receives_video_audio_and_chat_over_gcm() {
    let _one = ONE_AT_A_TIME.lock().await;
    let srv = TestServer::start().await;
    let _ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 90);
    common::wait_for_live(srv.http, &srv.channel).await;
    let before = sessions(&srv, GCM).await;
    let base = format!("http://{}", srv.http);
    let r = run_script(
        "werift_whep.mjs",
        &[&base, &srv.channel, "6"],
        Duration::from_secs(60),
    )
    .await;
    eprintln!("werift: {r}");
    assert_eq!(r["status"], 201, "{r}");
    assert_eq!(r["connection"], "connected", "{r}");
    assert!(
        r["video_packets"].as_u64() > Some(300),
        "video packets: {r}"
    );
    assert!(r["keyframes"].as_u64() >= Some(2), "keyframes: {r}");
    assert!(
        r["audio_packets"].as_u64() > Some(200),
        "audio packets: {r}"
    );
    assert!(
        has_live(&r["chat"]),
        "the live event on the chat channel: {r}"
    );
    assert_eq!(sessions(&srv, GCM).await, before + 1, "connected with GCM");
    srv.stop().await;
}

/// rtc's own peer connection offering each profile alone: every packet of
/// both tracks opens (rtc's SRTP checks our tags), and the picture decodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtcs_peer_plays_over_both_srtp_profiles() {
    let _one = ONE_AT_A_TIME.lock().await;
    let srv = TestServer::start().await;
    let _ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 60);
    common::wait_for_live(srv.http, &srv.channel).await;
    for (offered, expected) in [
        (SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80, CM),
        (SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm, GCM),
    ] {
        let before = sessions(&srv, expected).await;
        let got = watch(
            srv.http,
            &srv.channel,
            Duration::from_secs(4),
            ViewerOptions {
                srtp_profiles: vec![offered],
                ..Default::default()
            },
        )
        .await
        .expect("viewer ran");
        let aus = access_units(&got.video);
        let mut dec = openh264::decoder::Decoder::new().unwrap();
        let pictures = aus
            .iter()
            .filter(|(_, au)| matches!(dec.decode(au), Ok(Some(_))))
            .count();
        eprintln!(
            "rtc offering {expected}: {} video and {} audio packets, {pictures} pictures",
            got.video.len(),
            got.audio.len()
        );
        assert!(pictures > 60, "{expected}: pictures decoded: {pictures}");
        assert!(got.audio.len() > 100, "{expected}: audio packets");
        assert_eq!(
            sessions(&srv, expected).await,
            before + 1,
            "connected with {expected}"
        );
    }
    srv.stop().await;
}
