//! Audio transcoding, paid once per stream: AAC (RTMP) to Opus for WebRTC
//! viewers, Opus (WHIP) to AAC for HLS and recordings, and MP3 (Icecast)
//! decoded once to both. One iteration is one second of audio, so the time
//! per iteration is the share of a core one stream costs.

use criterion::{criterion_group, criterion_main, Criterion};
use onair::audio::{Mp3Transcoder, OpusToAac};
use onair::icecast::demux::{Audio, Demuxer, Format, Frame};

// The tests' WHIP media: its `audio()` is one second of a 440 Hz tone as
// 50 Opus packets of 20 ms.
#[allow(dead_code)]
#[path = "../tests/common/media.rs"]
mod media;

fn opus_to_aac(c: &mut Criterion) {
    let packets = media::audio();
    let mut t = OpusToAac::new().unwrap();
    let mut pts = 0i64;
    c.bench_function("opus_to_aac/1s_stereo_48k", |b| {
        b.iter(|| {
            let mut n = 0;
            for p in &packets {
                n += t.push(p, pts).len();
                pts += 1800;
            }
            n
        })
    });
}

/// One second of a 128 kbit/s stereo MP3 at 44.1 kHz (what DJ software
/// sends by default), from ffmpeg, as frames.
fn mp3_second() -> Vec<Frame> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi"])
        .args([
            "-i",
            "sine=frequency=440:sample_rate=44100",
            "-ac",
            "2",
            "-t",
            "1.1",
        ])
        .args(["-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3", "pipe:1"])
        .output()
        .expect("ffmpeg is installed");
    let mut frames = Vec::new();
    Demuxer::new(Format::Mp3)
        .push(&out.stdout, &mut frames)
        .unwrap();
    // 38 frames of 1152 samples: one second.
    frames.truncate(38);
    frames
}

/// MP3 decode plus AAC encode (always made, for HLS and the recorder),
/// with and without the Opus encode (made while WebRTC viewers watch).
fn mp3_to_aac_and_opus(c: &mut Criterion) {
    let frames = mp3_second();
    for (name, opus) in [
        ("mp3_decode_aac/1s_stereo_44k", false),
        ("mp3_decode_aac_opus/1s_stereo_44k", true),
    ] {
        let mut t = Mp3Transcoder::new().unwrap();
        let mut pts = 0i64;
        let mut units = Vec::new();
        c.bench_function(name, |b| {
            b.iter(|| {
                units.clear();
                for f in &frames {
                    let Audio::Mp3(h) = &f.audio else { continue };
                    let _ = t.push(&f.raw, h, pts, opus, &mut units);
                    pts += 2351;
                }
                units.len()
            })
        });
    }
}

criterion_group!(benches, opus_to_aac, mp3_to_aac_and_opus);
criterion_main!(benches);
