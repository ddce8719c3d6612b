//! RTMP (ffmpeg) -> hub -> WHEP (a real webrtc-rs viewer): picture and sound.

mod common;

use common::webrtc_client::{access_units, watch, ViewerOptions};
use common::{ffmpeg_publish, http, metric, TestServer};
use openh264::formats::YUVSource;
use std::time::Duration;

/// Decodes every access unit; returns (frames decoded, dimensions seen).
fn decode_video(aus: &[(u32, Vec<u8>)]) -> (usize, Vec<(usize, usize)>) {
    let mut dec = openh264::decoder::Decoder::new().expect("openh264 decoder");
    let mut frames = 0;
    let mut dims = Vec::new();
    for (_, au) in aus {
        if let Ok(Some(yuv)) = dec.decode(au) {
            frames += 1;
            let d = yuv.dimensions();
            if !dims.contains(&d) {
                dims.push(d);
            }
        }
    }
    (frames, dims)
}

/// Decodes Opus packets to mono PCM at 48 kHz.
fn decode_audio(packets: &[rtc::rtp::packet::Packet]) -> Vec<f32> {
    let mut dec = opus::Decoder::new(48_000, opus::Channels::Stereo).expect("opus decoder");
    let mut pcm = Vec::new();
    let mut buf = vec![0i16; 5760 * 2];
    for p in packets {
        if let Ok(n) = dec.decode(&p.payload, &mut buf, false) {
            pcm.extend(
                buf[..n * 2]
                    .chunks(2)
                    .map(|s| (s[0] as f32 + s[1] as f32) / 65536.0),
            );
        }
    }
    pcm
}

/// Power of one frequency (Goertzel), normalised by the signal's length.
fn tone_power(pcm: &[f32], freq: f32) -> f32 {
    let w = 2.0 * std::f32::consts::PI * freq / 48_000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &x in pcm {
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / pcm.len().max(1) as f32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_publish_is_watched_over_whep_with_picture_and_sound() {
    let srv = TestServer::start().await;
    let _ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 12);
    // Connect while the channel may still be offline: media must start when it
    // goes live.
    let got = watch(
        srv.http,
        &srv.channel,
        Duration::from_secs(6),
        ViewerOptions {
            chat_message: Some(r#"{"type":"chat","text":"hi"}"#.into()),
            ..Default::default()
        },
    )
    .await
    .expect("viewer ran");

    assert!(
        got.location.starts_with("/whep/demo/"),
        "Location {}",
        got.location
    );
    assert!(
        got.answer.contains("a=candidate:"),
        "non-trickle answer carries candidates:\n{}",
        got.answer
    );
    assert!(got.connected_after.is_some(), "viewer connected");

    eprintln!("sender reports: {:?}", got.sender_reports);
    let aus = access_units(&got.video);
    eprintln!(
        "connected after {:?}, first video after {:?}, {} video / {} audio packets",
        got.connected_after,
        got.first_video_after,
        got.video.len(),
        got.audio.len()
    );
    let (frames, dims) = decode_video(&aus);
    assert!(
        frames >= 30,
        "decoded {frames} frames of {} access units",
        aus.len()
    );
    assert_eq!(dims, vec![(1280, 720)]);
    // Each access unit's delivery to its viewers is timed for /metrics.
    let timed = metric(srv.http, "onair_frame_delivery_seconds_count").await;
    assert!(timed >= 30.0, "access units timed: {timed}");
    let ts: Vec<u32> = aus.iter().map(|(t, _)| *t).collect();
    assert!(
        ts.windows(2).all(|w| w[1].wrapping_sub(w[0]) < 90_000),
        "video timestamps advance smoothly"
    );

    let pcm = decode_audio(&got.audio);
    assert!(
        pcm.len() > 48_000,
        "at least a second of audio, got {} samples",
        pcm.len()
    );
    let rms = (pcm.iter().map(|x| x * x).sum::<f32>() / pcm.len() as f32).sqrt();
    assert!(rms > 0.01, "audio is not silent (rms {rms})");
    let at_440 = tone_power(&pcm, 440.0);
    let at_1000 = tone_power(&pcm, 1000.0);
    assert!(
        at_440 > 50.0 * at_1000,
        "a 440 Hz tone: power {at_440} vs {at_1000} at 1 kHz"
    );

    assert!(
        got.chat.iter().any(|m| m.contains(r#""type":"live""#)),
        "live event on the data channel: {:?}",
        got.chat
    );
    assert!(
        got.chat.iter().any(|m| m.contains("sign in to chat")),
        "chat without an account is refused: {:?}",
        got.chat
    );

    // The session is ours to end; a second DELETE finds nothing.
    let del = http(srv.http, "DELETE", &got.location, &[], b"").await;
    assert!(
        del.status == 200 || del.status == 404,
        "DELETE answered {}",
        del.status
    );
    srv.stop().await;
}

/// A viewer that joins mid-GOP gets the current GOP at once (squeezed to the
/// live timestamp), so it shows a picture without waiting for the next
/// keyframe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_joining_a_live_channel_shows_a_picture_within_a_second() {
    let srv = TestServer::start().await;
    let _ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 12);
    common::wait_for_live(srv.http, &srv.channel).await;
    for round in 0..3 {
        // Join at different points of the 1 s GOP.
        tokio::time::sleep(Duration::from_millis(330)).await;
        let got = watch(
            srv.http,
            &srv.channel,
            Duration::from_millis(1500),
            ViewerOptions::default(),
        )
        .await
        .expect("viewer ran");
        let first = got.first_video_after.expect("video arrived");
        eprintln!(
            "round {round}: connected after {:?}, first video after {first:?}",
            got.connected_after
        );
        assert!(
            first < Duration::from_secs(1),
            "first video after {first:?}"
        );
        let aus = access_units(&got.video);
        let mut dec = openh264::decoder::Decoder::new().unwrap();
        let first_picture = aus
            .iter()
            .position(|(_, au)| matches!(dec.decode(au), Ok(Some(_))));
        assert_eq!(
            first_picture,
            Some(0),
            "the very first access unit decodes to a picture"
        );
        let ts: Vec<u32> = aus.iter().map(|(t, _)| *t).collect();
        assert!(
            ts.windows(2).all(|w| w[1].wrapping_sub(w[0]) < 0x8000_0000),
            "timestamps never go back"
        );
    }
    srv.stop().await;
}

/// The answer names the H.264 format the viewer itself offered, whichever
/// profile that is, and the stream decodes under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_profile_is_negotiated_against_the_offer() {
    let srv = TestServer::start().await;
    let _ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 10);
    common::wait_for_live(srv.http, &srv.channel).await;
    for profile in ["640c1f", "42e01f", "4d001f"] {
        let opts = ViewerOptions {
            profile_level_id: profile,
            ..Default::default()
        };
        let got = watch(srv.http, &srv.channel, Duration::from_millis(1500), opts)
            .await
            .expect("viewer ran");
        let fmtp = got
            .answer
            .lines()
            .find(|l| l.starts_with("a=fmtp:") && l.contains("profile-level-id"))
            .unwrap_or("");
        assert!(
            fmtp.contains(&format!("profile-level-id={profile}")),
            "{profile}: {fmtp}"
        );
        assert!(fmtp.contains("packetization-mode=1"), "{fmtp}");
        let (frames, dims) = decode_video(&access_units(&got.video));
        assert!(
            frames > 0 && dims == vec![(1280, 720)],
            "{profile}: {frames} frames {dims:?}"
        );
    }
    srv.stop().await;
}
