//! Audio transcoding, paid once per stream: AAC (RTMP) to Opus for WebRTC
//! viewers, and Opus (WHIP) to AAC for HLS and recordings. One iteration is
//! one second of 48 kHz stereo, so the time per iteration is the share of a
//! core one stream costs.

use criterion::{criterion_group, criterion_main, Criterion};
use onair::audio::OpusToAac;

/// One second of a 440 Hz tone as 50 Opus packets of 20 ms.
fn opus_second() -> Vec<Vec<u8>> {
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
            enc.encode_vec_float(&pcm, 4000).unwrap()
        })
        .collect()
}

fn opus_to_aac(c: &mut Criterion) {
    let packets = opus_second();
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

criterion_group!(benches, opus_to_aac);
criterion_main!(benches);
