//! WHIP ingest: a real WebRTC publisher (webrtc-rs `rtc`, its own H.264
//! packetizer) publishes with a stream key; a real WebRTC viewer watches
//! over WHEP. The publisher's RTP is forwarded, not re-encoded.

mod common;
mod hls_util;

use common::media::{clip, media};
use common::webrtc_client::{access_units as rtp_access_units, watch, ViewerOptions};
use common::{get, http, TestServer};
use onair_loadtest::whip::publish;
use openh264::formats::YUVSource;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_publisher_is_watched_over_whep() {
    let srv = TestServer::start().await;
    let opts = clip(&srv.key, &media(), 7);
    let publisher = tokio::spawn(publish(srv.http, opts));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = watch(
        srv.http,
        &srv.channel,
        Duration::from_secs(4),
        ViewerOptions::default(),
    )
    .await
    .expect("viewer");
    let published = publisher.await.unwrap().expect("publisher ran");

    assert_eq!(published.status, 201, "{}", published.error);
    assert!(
        published.location.starts_with("/whip/"),
        "{}",
        published.location
    );
    assert!(published.connected_after.is_some());
    assert!(
        published.keyframe_requests >= 1,
        "the server asks a new publisher for a keyframe"
    );

    let first = got.first_video_after.expect("video reached the viewer");
    eprintln!(
        "viewer connected after {:?}, first video after {first:?}",
        got.connected_after
    );
    let mut dec = openh264::decoder::Decoder::new().unwrap();
    let mut frames = 0;
    let mut dims = None;
    for (_, au) in rtp_access_units(&got.video) {
        if let Ok(Some(y)) = dec.decode(&au) {
            frames += 1;
            dims = Some(y.dimensions());
        }
    }
    assert!(frames >= 30, "decoded {frames} frames");
    assert_eq!(dims, Some((640, 360)));
    assert!(got.audio.len() >= 100, "{} audio packets", got.audio.len());
    let seqs: Vec<u16> = got.video.iter().map(|p| p.header.sequence_number).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "continuous sequence per viewer"
    );
    // The publisher's header extensions are not forwarded: a viewer's
    // copy carries only its own transport-wide number, under the id its
    // answer gave it.
    let twcc = got
        .answer
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix("a=extmap:")?;
            let (id, uri) = rest.split_once(' ')?;
            uri.trim()
                .ends_with("transport-wide-cc-extensions-01")
                .then(|| id.parse::<u8>().ok())?
        })
        .expect("the answer negotiates TWCC");
    assert!(
        got.video
            .iter()
            .all(|p| p.header.extensions.iter().all(|e| e.id == twcc)
                && p.header.extensions.len() == 1),
        "only the viewer's TWCC extension on its copies"
    );

    // Server-added latency is exported as a Prometheus histogram.
    let metrics = get(srv.http, "/metrics").await.text();
    let value = |prefix: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1.0)
    };
    let count = value("onair_forward_latency_seconds_count");
    assert!(count > 100.0, "forwarded packets were timed: {count}");
    let buckets: Vec<f64> = metrics
        .lines()
        .filter(|l| l.starts_with("onair_forward_latency_seconds_bucket"))
        .filter_map(|l| l.split_whitespace().last()?.parse().ok())
        .collect();
    assert!(
        buckets.windows(2).all(|w| w[0] <= w[1]) && buckets.last() == Some(&count),
        "cumulative buckets: {buckets:?}"
    );
    eprintln!(
        "forwarding latency: {} of {count} packets within 2 ms (debug build)",
        value("onair_forward_latency_seconds_bucket{le=\"0.002\"}")
    );
    // Publishes are counted per protocol, beside the build and start time,
    // and every family says what it is.
    let accepted = value("onair_publishes_total{protocol=\"whip\",result=\"accepted\"}");
    assert!(accepted >= 1.0, "WHIP publishes counted: {accepted}");
    assert_eq!(value("onair_build_info{"), 1.0);
    assert!(value("process_start_time_seconds") > 1.7e9);
    for family in metrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let name = family.split(' ').next().unwrap();
        assert!(
            metrics.contains(&format!("# HELP {name} ")),
            "no HELP for {name}"
        );
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_refuses_bad_keys_and_bad_offers() {
    let srv = TestServer::start().await;
    let offer = include_str!("data/chrome_offer.sdp");
    let sdp = ("Content-Type", "application/sdp");
    for (auth, want) in [
        (None, 401),
        (Some("Bearer wrong-key"), 401),
        (Some("Basic abc"), 401),
        (Some("Bearer "), 401),
    ] {
        let mut headers = vec![sdp];
        if let Some(a) = auth {
            headers.push(("Authorization", a));
        }
        let r = http(srv.http, "POST", "/whip", &headers, offer.as_bytes()).await;
        assert_eq!(r.status, want, "{auth:?}: {}", r.text());
        assert!(r.json()["error"].as_str().is_some());
    }
    let auth = format!("Bearer {}", srv.key);
    let r = http(
        srv.http,
        "POST",
        "/whip",
        &[sdp, ("Authorization", &auth)],
        b"not sdp",
    )
    .await;
    assert_eq!(r.status, 400);
    let r = http(srv.http, "DELETE", "/whip/not-a-session", &[], b"").await;
    assert_eq!(r.status, 404);
    let rejected = common::metric(
        srv.http,
        "onair_publishes_total{protocol=\"whip\",result=\"rejected\"}",
    )
    .await;
    assert!(
        rejected >= 5.0,
        "refused WHIP publishes counted: {rejected}"
    );
    srv.stop().await;
}

/// Goertzel power of `freq` in mono s16 PCM at 48 kHz, normalised by length.
fn tone_power(pcm: &[i16], freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / 48_000.0;
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in pcm {
        let s0 = f64::from(x) / 32768.0 + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2) / pcm.len().max(1) as f64
}

/// The audio of `url` decoded by ffmpeg as 48 kHz mono s16.
async fn decode_audio(url: &str) -> Vec<i16> {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("ffmpeg")
            .args(["-v", "error", "-i", url, "-vn", "-ac", "1", "-ar", "48000"])
            .args(["-f", "s16le", "pipe:1"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ffmpeg finished in time")
    .expect("ffmpeg is installed");
    assert!(
        out.status.success(),
        "ffmpeg {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// `(codec_type, start_time, duration)` per stream of a URL, from ffprobe.
async fn stream_times(url: &str) -> Vec<(String, f64, f64)> {
    let out = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries"])
        .args(["stream=codec_type,start_time,duration", "-of", "json", url])
        .output()
        .await
        .expect("ffprobe is installed");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe JSON");
    let num = |s: &serde_json::Value| s.as_str().and_then(|x| x.parse().ok()).unwrap_or(-1.0);
    v["streams"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let kind = s["codec_type"].as_str().unwrap_or("").to_string();
            (kind, num(&s["start_time"]), num(&s["duration"]))
        })
        .collect()
}

/// A WHIP stream in the rest of the system: its Opus becomes AAC (once per
/// stream) in the LL-HLS playlist and the recording, from the first packet
/// on, and the tone survives the trip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_stream_plays_in_hls_with_aac_and_is_recorded() {
    let srv = TestServer::start().await;
    let opts = clip(&srv.key, &media(), 8);
    let publisher = tokio::spawn(publish(srv.http, opts));
    hls_util::wait_for_playlist(srv.http, &srv.channel).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let live = format!("http://{}/hls/{}/index.m3u8", srv.http, srv.channel);
    let (streams, _) = hls_util::ffprobe(&live).await;
    let kinds: Vec<(&str, &str)> = streams
        .iter()
        .map(|s| (s.0.as_str(), s.1.as_str()))
        .collect();
    assert!(kinds.contains(&("video", "h264")), "{streams:?}");
    assert!(kinds.contains(&("audio", "aac")), "{streams:?}");

    let published = publisher.await.unwrap().expect("publisher ran");
    assert_eq!(published.status, 201, "{}", published.error);

    // The recording: both tracks, audio from the start (not seconds late
    // while waiting for sender reports), and the 440 Hz tone intact.
    let start = std::time::Instant::now();
    let id = loop {
        let r = get(
            srv.http,
            &format!("/api/channels/{}/broadcasts", srv.channel),
        )
        .await;
        let item = r.json()["items"][0].clone();
        if !item["ended_at"].is_null() {
            break common::json_id(&item["id"]);
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{}", r.text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let vod = format!("http://{}/vod/{id}/index.m3u8", srv.http);
    let times = stream_times(&vod).await;
    let get = |k: &str| times.iter().find(|t| t.0 == k).cloned();
    let (v, a) = (get("video").expect("video"), get("audio").expect("audio"));
    eprintln!("recording: video {v:?}, audio {a:?}");
    assert!(
        (a.1 - v.1).abs() < 0.2,
        "audio starts with the video: {times:?}"
    );
    let pcm = decode_audio(&vod).await;
    let secs = pcm.len() as f64 / 48_000.0;
    assert!(
        secs > 5.0,
        "{secs} s of audio recorded in 8 s of publishing"
    );
    let (on, off) = (tone_power(&pcm, 440.0), tone_power(&pcm, 1000.0));
    eprintln!("440 Hz power {on:.3e}, 1 kHz {off:.3e}");
    assert!(on > 100.0 * off && on > 1e-3, "the tone came through");
    srv.stop().await;
}

/// OBS lost its network and reconnects: a second WHIP publisher with the
/// same key takes over while the first one's session is still open. The
/// viewer keeps its session, its sequence numbers stay continuous, and
/// the picture is back as soon as the new publisher's first keyframe is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_whip_publisher_takes_over_and_the_viewer_keeps_its_session() {
    let srv = TestServer::start().await;
    let media = media();
    let opts = |secs| clip(&srv.key, &media, secs);
    let first = tokio::spawn(publish(srv.http, opts(6)));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let viewer = tokio::spawn({
        let (http, channel) = (srv.http, srv.channel.clone());
        async move {
            watch(
                http,
                &channel,
                Duration::from_secs(9),
                ViewerOptions::default(),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let taken_over_at = std::time::Instant::now();
    let second = tokio::spawn(publish(srv.http, opts(5)));
    let second = second.await.unwrap().expect("second publisher ran");
    assert_eq!(second.status, 201, "{}", second.error);
    let connect = second.connected_after.expect("second publisher connected");
    assert!(
        taken_over_at.elapsed() < Duration::from_secs(10) && connect < Duration::from_secs(5),
        "took over within 5 s: {connect:?}"
    );
    let got = viewer.await.unwrap().expect("viewer");
    let _ = first.await;
    let seqs: Vec<u16> = got.video.iter().map(|p| p.header.sequence_number).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "continuous sequence across publishers"
    );
    // The takeover's pause: the new publisher's connection time plus at
    // most a second until its keyframe reaches the viewer.
    let gap = Duration::from_millis(got.counters.longest_video_gap_ms);
    eprintln!("takeover: second publisher connected after {connect:?}, longest video gap {gap:?}");
    assert!(
        gap <= connect + Duration::from_secs(1),
        "picture back in time: {gap:?}"
    );
    let mut dec = openh264::decoder::Decoder::new().unwrap();
    let decoded = rtp_access_units(&got.video)
        .iter()
        .filter(|(_, au)| matches!(dec.decode(au), Ok(Some(_))))
        .count();
    assert!(
        decoded >= 150,
        "decoded {decoded} frames over both publishers"
    );
    srv.stop().await;
}

/// An offer shaped like OBS 30's (libdatachannel): sendonly H.264 + Opus,
/// all candidates in the offer, no trickle, no data channel. OBS needs a
/// complete answer at once (from 30.2 it will not trickle) and the
/// Location header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_obs_style_offer_gets_a_complete_answer() {
    let srv = TestServer::start().await;
    let auth = format!("Bearer {}", srv.key);
    let r = http(
        srv.http,
        "POST",
        "/whip",
        &[
            ("Content-Type", "application/sdp"),
            ("Authorization", &auth),
        ],
        include_str!("data/obs_offer.sdp").as_bytes(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let location = r.header("location").unwrap_or_default().to_string();
    assert!(location.starts_with("/whip/"), "{location:?}");
    let answer = r.text();
    for want in [
        "a=rtpmap:96 H264/90000",
        "a=rtpmap:111 opus/48000/2",
        "a=recvonly",
        "a=setup:passive",
        "a=ice-lite",
        "a=end-of-candidates",
    ] {
        assert!(answer.contains(want), "{want:?} missing from:\n{answer}");
    }
    assert!(
        answer
            .lines()
            .any(|l| l.starts_with("a=candidate:") && l.contains(" udp ")),
        "candidates gathered before answering:\n{answer}"
    );
    // The session ends with DELETE on the Location, and only once.
    let del = http(srv.http, "DELETE", &location, &[], b"").await;
    assert_eq!(del.status, 200, "{}", del.text());
    let again = http(srv.http, "DELETE", &location, &[], b"").await;
    assert_eq!(again.status, 404);
    srv.stop().await;
}
