//! Audio and video stay in sync within 80 ms, measured the way a player
//! does: each track's RTP time mapped to wall-clock time through the
//! server's RTCP sender reports, on content with a known alignment (a white
//! flash and a 1 kHz beep start together every second).

mod common;

use common::webrtc_client::{access_units, watch, ViewerOptions, AUDIO_PT};
use common::TestServer;
use openh264::formats::YUVSource;
use std::process::Stdio;
use std::time::Duration;

/// Wall-clock seconds (NTP) for an RTP time, through the latest sender report
/// of that SSRC at or before `index` in the report list.
fn to_ntp(srs: &[(u32, f64, u32)], ssrc: u32, ts: u32, clock: f64) -> Option<f64> {
    let (_, ntp, rtp) = srs.iter().rev().find(|(s, _, _)| *s == ssrc)?;
    Some(ntp + (ts.wrapping_sub(*rtp) as i32) as f64 / clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_and_video_stay_within_80_ms() {
    let srv = TestServer::start().await;
    let mut ff = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "color=c=black:s=320x240:r=30,format=yuv420p,geq=lum='if(lt(mod(T\\,1)\\,0.1)\\,235\\,16)':cb=128:cr=128"])
        .args(["-f", "lavfi", "-i", "aevalsrc='if(lt(mod(t\\,1)\\,0.1)\\,0.5*sin(2*PI*1000*t)\\,0)':s=48000"])
        .args(["-t", "10", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30", "-bf", "0"])
        .args(["-c:a", "aac", "-ar", "48000", "-f", "flv", &srv.rtmp_url(&srv.key)])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg");
    let got = watch(
        srv.http,
        &srv.channel,
        Duration::from_secs(7),
        ViewerOptions::default(),
    )
    .await
    .expect("viewer");
    let _ = ff.kill().await;

    let vssrc = got.video.first().expect("video").header.ssrc;
    let assrc = got.audio.first().expect("audio").header.ssrc;
    assert!(
        got.sender_reports.iter().any(|r| r.0 == vssrc)
            && got.sender_reports.iter().any(|r| r.0 == assrc),
        "sender reports for both tracks"
    );

    // Flash onsets: the first bright frame after a dark one.
    let mut dec = openh264::decoder::Decoder::new().unwrap();
    let mut flashes = Vec::new();
    let mut was_bright = true;
    for (ts, au) in access_units(&got.video) {
        if let Ok(Some(yuv)) = dec.decode(&au) {
            let luma = yuv.y();
            let mean = luma.iter().step_by(7).map(|&v| v as f64).sum::<f64>()
                / (luma.len() / 7).max(1) as f64;
            let bright = mean > 128.0;
            if bright && !was_bright {
                flashes.push(to_ntp(&got.sender_reports, vssrc, ts, 90_000.0).expect("video SR"));
            }
            was_bright = bright;
        }
    }
    // Beep onsets: the first loud sample after a quiet packet.
    let mut opus = opus::Decoder::new(48_000, opus::Channels::Stereo).unwrap();
    let mut beeps = Vec::new();
    let mut was_loud = true;
    let mut pcm = vec![0i16; 5760 * 2];
    for p in got
        .audio
        .iter()
        .filter(|p| p.header.payload_type == AUDIO_PT)
    {
        let Ok(n) = opus.decode(&p.payload, &mut pcm, false) else {
            continue;
        };
        let first_loud = pcm[..n * 2]
            .chunks(2)
            .position(|s| (s[0] as i32).abs() > 6000);
        match first_loud {
            Some(i) if !was_loud => {
                beeps.push(
                    to_ntp(
                        &got.sender_reports,
                        assrc,
                        p.header.timestamp.wrapping_add(i as u32),
                        48_000.0,
                    )
                    .expect("audio SR"),
                );
                was_loud = true;
            }
            Some(_) => {}
            None => was_loud = false,
        }
    }
    eprintln!("flashes {flashes:?}\nbeeps {beeps:?}");
    let mut offsets = Vec::new();
    for f in &flashes {
        if let Some(b) = beeps
            .iter()
            .min_by(|a, b| (*a - f).abs().total_cmp(&(*b - f).abs()))
        {
            if (b - f).abs() < 0.5 {
                offsets.push(b - f);
            }
        }
    }
    eprintln!("audio - video offsets (s): {offsets:?}");
    assert!(
        offsets.len() >= 3,
        "at least three flash/beep pairs, got {offsets:?}"
    );
    for o in &offsets {
        assert!(
            o.abs() <= 0.080,
            "audio and video within 80 ms, got {:.1} ms",
            o * 1000.0
        );
    }
    srv.stop().await;
}
