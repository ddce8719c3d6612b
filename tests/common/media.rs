//! What the tests' WHIP publisher sends: a short H.264 clip and an Opus
//! tone, both looped by `onair_loadtest::whip::publish`.

use bytes::Bytes;
use onair_loadtest::whip::{access_units, PublishOptions};
use std::time::Duration;

/// 3 s of 640x360 H.264 (Constrained Baseline, 1 s GOP, an AUD per access
/// unit) from ffmpeg, as access units.
pub fn video() -> Vec<Bytes> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi"])
        .args(["-i", "testsrc2=size=640x360:rate=30", "-t", "3"])
        .args(["-c:v", "libx264", "-profile:v", "baseline", "-preset"])
        .args(["ultrafast", "-g", "30", "-bf", "0", "-x264-params", "aud=1"])
        .args(["-pix_fmt", "yuv420p", "-f", "h264", "pipe:1"])
        .output()
        .expect("ffmpeg is installed");
    assert!(out.status.success());
    let video = access_units(&out.stdout);
    assert!(video.len() >= 89, "{} access units", video.len());
    video
}

/// 1 s of a 440 Hz stereo tone as 20 ms Opus frames.
pub fn audio() -> Vec<Bytes> {
    let mut enc =
        opus::Encoder::new(48_000, opus::Channels::Stereo, opus::Application::Audio).unwrap();
    (0..50)
        .map(|f| {
            let pcm: Vec<f32> = (0..960)
                .flat_map(|i| {
                    let t = (f * 960 + i) as f32 / 48_000.0;
                    let x = 0.3 * (2.0 * std::f32::consts::PI * 440.0 * t).sin();
                    [x, x]
                })
                .collect();
            Bytes::from(enc.encode_vec_float(&pcm, 4000).unwrap())
        })
        .collect()
}

/// `video()` and `audio()`, made once and cloned per publisher.
pub type Media = (Vec<Bytes>, Vec<Bytes>);

pub fn media() -> Media {
    (video(), audio())
}

/// `media` published at 30 fps with `key` for `secs`, unstamped.
pub fn clip(key: &str, media: &Media, secs: u64) -> PublishOptions {
    PublishOptions {
        key: key.to_string(),
        video: media.0.clone(),
        fps: 30,
        audio: media.1.clone(),
        duration: Duration::from_secs(secs),
        stamp: false,
        raw: None,
        on_session: None,
    }
}

/// One frame of ffmpeg's test card as a JPEG of `size` (`WxH`), as a
/// camera or an editor makes one: a profile picture to upload.
pub fn jpeg_picture(size: &str) -> Vec<u8> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi"])
        .args(["-i", &format!("testsrc2=size={size}"), "-frames:v", "1"])
        .args(["-c:v", "mjpeg", "-f", "image2pipe", "pipe:1"])
        .output()
        .expect("ffmpeg is installed");
    assert!(out.status.success());
    out.stdout
}
