//! Audio transcoding, paid once per stream: AAC (RTMP) to Opus for WebRTC
//! viewers, and Opus (WHIP) to AAC for HLS and recordings. One iteration is
//! one second of 48 kHz stereo, so the time per iteration is the share of a
//! core one stream costs.

use criterion::{criterion_group, criterion_main, Criterion};
use onair::audio::OpusToAac;

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

criterion_group!(benches, opus_to_aac);
criterion_main!(benches);
