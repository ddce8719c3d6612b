//! AAC -> Opus with real AAC from ffmpeg: the Opus output is decoded again
//! and checked for what a viewer would hear (a 440 Hz tone) and for the
//! timestamps the WebRTC egress will put on the wire.

use std::process::Command;
use std::time::Instant;

use bytes::Bytes;
use onair::audio::{AacToOpus, AudioError, OpusFrame};
use onair::media::AacConfig;
use rand::{Rng, SeedableRng};

const FFMPEG: &str = "/usr/bin/ffmpeg";
const TONE_HZ: f64 = 440.0;

/// An ADTS stream split into raw frames, with the config a demuxer would
/// hand the hub.
struct Adts {
    frames: Vec<Vec<u8>>,
    config: AacConfig,
}

fn ffmpeg_adts(source: &str, extra: &[&str]) -> Vec<u8> {
    let mut args = vec![
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        source,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-c:a", "aac", "-b:a", "128k", "-f", "adts", "pipe:1"]);
    let out = Command::new(FFMPEG)
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("running {FFMPEG}: {e}"));
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A 440 Hz sine, AAC-LC in ADTS.
fn sine_adts(rate: u32, channels: u32, secs: f64) -> Adts {
    let source = format!("sine=frequency={TONE_HZ}:sample_rate={rate}");
    let ch = channels.to_string();
    let t = secs.to_string();
    split_adts(&ffmpeg_adts(&source, &["-t", &t, "-ac", &ch]))
}

/// ISO/IEC 13818-7 6.2 ADTS: 7-byte header (9 with CRC), then the raw frame.
fn split_adts(mut data: &[u8]) -> Adts {
    let mut frames = Vec::new();
    let mut config = None;
    while !data.is_empty() {
        assert!(data.len() >= 7, "truncated ADTS header");
        assert!(data[0] == 0xff && data[1] & 0xf0 == 0xf0, "lost ADTS sync");
        let protection_absent = data[1] & 1 == 1;
        let profile = data[2] >> 6;
        let sfi = (data[2] >> 2) & 0x0f;
        let channels = ((data[2] & 1) << 2) | (data[3] >> 6);
        let len = (usize::from(data[3] & 3) << 11)
            | (usize::from(data[4]) << 3)
            | usize::from(data[5] >> 5);
        let header = if protection_absent { 7 } else { 9 };
        assert!(
            len > header && len <= data.len(),
            "bad ADTS frame length {len}"
        );
        frames.push(data[header..len].to_vec());
        config.get_or_insert_with(|| {
            let object_type = profile + 1;
            AacConfig {
                asc: Bytes::from(asc(object_type, sfi, channels).to_vec()),
                object_type,
                sample_rate: [
                    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025,
                    8000, 7350,
                ][usize::from(sfi)],
                channels,
            }
        });
        data = &data[len..];
    }
    Adts {
        frames,
        config: config.expect("no ADTS frames"),
    }
}

/// A 2-byte AudioSpecificConfig: object type, sampling index, channels.
fn asc(object_type: u8, sfi: u8, channels: u8) -> [u8; 2] {
    [
        (object_type << 3) | (sfi >> 1),
        ((sfi & 1) << 7) | (channels << 3),
    ]
}

/// The pts a demuxer would give frame `i` of a stream starting at `start`.
fn pts_of(i: usize, rate: u32, start: i64) -> i64 {
    start + (i as i64 * 1024 * 90_000) / i64::from(rate)
}

fn to_48k(pts_90k: i64) -> i64 {
    (pts_90k * 8).div_euclid(15)
}

/// What a browser would play: interleaved stereo at 48 kHz.
fn decode_opus(frames: &[OpusFrame]) -> Vec<f32> {
    let mut dec = opus::Decoder::new(48_000, opus::Channels::Stereo).expect("opus decoder");
    let mut pcm = Vec::new();
    let mut buf = vec![0f32; 2 * 5760];
    for f in frames {
        let n = dec
            .decode_float(&f.data, &mut buf, false)
            .expect("our own Opus must decode");
        assert_eq!(n, 960, "an Opus frame is 20 ms");
        pcm.extend_from_slice(&buf[..2 * n]);
    }
    pcm
}

fn channel(pcm: &[f32], ch: usize) -> Vec<f32> {
    pcm.iter().skip(ch).step_by(2).copied().collect()
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// Goertzel power of `freq` in `x` sampled at 48 kHz.
fn goertzel(x: &[f32], freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / 48_000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s = f64::from(v) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// The strongest frequency between 100 and 1000 Hz (1 Hz steps), and the
/// share of the signal's energy it holds (1.0 for a pure tone).
fn dominant(x: &[f32]) -> (f64, f64) {
    let (freq, power) = (100..=1000)
        .map(|f| (f as f64, goertzel(x, f as f64)))
        .fold((0.0, 0.0), |best, c| if c.1 > best.1 { c } else { best });
    let energy: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    (freq, 2.0 * power / (x.len() as f64 * energy.max(1e-12)))
}

/// Checks one channel sounds like the source tone: loud, and 440 Hz.
fn assert_tone(label: &str, x: &[f32]) {
    let level = rms(x);
    assert!(level > 0.03, "{label}: rms {level} is near silence");
    let (freq, share) = dominant(x);
    assert!(
        (freq - TONE_HZ).abs() <= 5.0,
        "{label}: dominant {freq} Hz, want {TONE_HZ}"
    );
    assert!(
        share > 0.8,
        "{label}: tone holds only {share} of the energy"
    );
}

fn assert_continuous(label: &str, frames: &[OpusFrame]) {
    for w in frames.windows(2) {
        assert_eq!(
            w[1].pts_48k - w[0].pts_48k,
            960,
            "{label}: pts step at {}",
            w[0].pts_48k
        );
    }
    assert!(frames
        .iter()
        .all(|f| f.samples == 960 && !f.data.is_empty()));
}

#[test]
fn transcodes_real_aac_at_common_rates() {
    // (sample rate, channels): passthrough, the common resampled rates, and
    // mono that must come out as stereo.
    let cases = [(48000, 2), (44100, 2), (44100, 1), (32000, 1), (22050, 2)];
    let start = 123_457; // odd on purpose: the 90k -> 48k mapping floors
    for (rate, channels) in cases {
        let label = format!("{rate} Hz x{channels}");
        let adts = sine_adts(rate, channels, 2.0);
        assert_eq!(adts.config.sample_rate, rate);
        let mut t = AacToOpus::new(&adts.config).expect("AAC-LC is accepted");
        let mut out = Vec::new();
        for (i, f) in adts.frames.iter().enumerate() {
            out.extend(
                t.push(f, pts_of(i, rate, start))
                    .expect("good frame decodes"),
            );
        }

        let input_secs = adts.frames.len() as f64 * 1024.0 / f64::from(rate);
        let expect = (input_secs * 50.0).floor() as i64;
        assert!(
            (out.len() as i64 - expect).abs() <= 2,
            "{label}: {} frames for {input_secs:.3} s",
            out.len()
        );
        assert!(
            out.len() >= 100,
            "{label}: 2 s of input is at least 100 frames"
        );
        assert_eq!(out[0].pts_48k, to_48k(start), "{label}: first pts");
        assert_continuous(&label, &out);

        // Skip the encoders' priming and the first frames' ramp-up.
        let pcm = decode_opus(&out);
        let (left, right) = (channel(&pcm, 0), channel(&pcm, 1));
        let steady = 12_000..60_000;
        assert_tone(&format!("{label} left"), &left[steady.clone()]);
        assert_tone(&format!("{label} right"), &right[steady.clone()]);
        if channels == 1 {
            let diff: Vec<f32> = left[steady.clone()]
                .iter()
                .zip(&right[steady.clone()])
                .map(|(l, r)| l - r)
                .collect();
            assert!(
                rms(&diff) < 0.1 * rms(&left[steady]),
                "{label}: upmixed channels differ"
            );
        }
    }
}

#[test]
fn publisher_gap_resyncs_but_jitter_does_not() {
    let adts = sine_adts(48000, 2, 3.0);
    let mut t = AacToOpus::new(&adts.config).unwrap();
    let n = adts.frames.len();
    assert!(n > 120);
    // Frames 0..50 on time (frame 20 jittered by 30 ms), 50..100 after a 2 s
    // gap, 100.. jumping back to near zero as a restarted publisher would.
    let pts = |i: usize| -> i64 {
        let base = pts_of(i, 48000, 0);
        match i {
            20 => base + 2700,
            0..50 => base,
            50..100 => base + 180_000,
            _ => base - pts_of(100, 48000, 0) + 9_000,
        }
    };
    let mut segments: Vec<Vec<OpusFrame>> = vec![Vec::new(); 3];
    for (i, f) in adts.frames.iter().enumerate() {
        let seg = match i {
            0..50 => 0,
            50..100 => 1,
            _ => 2,
        };
        segments[seg].extend(t.push(f, pts(i)).unwrap());
    }
    for (k, seg) in segments.iter().enumerate() {
        assert!(seg.len() > 40, "segment {k}: {} frames", seg.len());
        assert_continuous(&format!("segment {k}"), seg);
    }
    // Each resync restarts the count from that frame's own pts.
    assert_eq!(segments[0][0].pts_48k, 0);
    assert_eq!(segments[1][0].pts_48k, to_48k(pts(50)));
    assert_eq!(segments[2][0].pts_48k, to_48k(pts(100)));
    // The partial frame buffered at the gap is dropped, not smeared across.
    let last_before = segments[0].last().unwrap().pts_48k;
    assert!(last_before + 960 <= to_48k(pts(50) - 180_000));
    // Audio after a resync is still the tone.
    let pcm = decode_opus(&segments[1]);
    assert_tone("after gap", &channel(&pcm, 0)[9_600..]);
}

#[test]
fn corrupt_frames_are_errors_and_the_stream_goes_on() {
    let adts = sine_adts(44100, 2, 3.0);
    let mut t = AacToOpus::new(&adts.config).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut out = Vec::new();
    let mut errors = 0;
    for (i, f) in adts.frames.iter().enumerate() {
        let pts = pts_of(i, 44100, 0);
        if (40..48).contains(&i) {
            // Random bytes in place of eight frames, the first a CPE element
            // (id 1) so it is not rejected on its first three bits alone.
            let mut junk: Vec<u8> = (0..rng.gen_range(20..400)).map(|_| rng.gen()).collect();
            junk[0] = (junk[0] & 0x1f) | 0x20;
            match t.push(&junk, pts) {
                Err(AudioError::CorruptFrame(_)) => errors += 1,
                Err(e) => panic!("frame {i}: wrong error {e}"),
                Ok(frames) => out.extend(frames),
            }
            continue;
        }
        out.extend(
            t.push(f, pts)
                .unwrap_or_else(|e| panic!("good frame {i}: {e}")),
        );
    }
    assert!(errors >= 6, "only {errors} of 8 random frames were refused");
    assert!(matches!(t.push(&[], 0), Err(AudioError::CorruptFrame(_))));

    // Skipped frames leave a hole, but every timestamp stays on the grid and
    // increasing: the viewer conceals the hole as loss.
    assert!(out.iter().all(|f| f.pts_48k % 960 == 0));
    assert!(out.windows(2).all(|w| w[1].pts_48k > w[0].pts_48k));
    let input_secs = adts.frames.len() as f64 * 1024.0 / 44100.0;
    let expect = (input_secs * 50.0) as usize;
    assert!(
        out.len() + 12 >= expect && out.len() <= expect,
        "{} frames, {expect} without skips",
        out.len()
    );
    let after = out
        .iter()
        .position(|f| f.pts_48k > to_48k(pts_of(48, 44100, 0)) + 4_800)
        .unwrap();
    let pcm = decode_opus(&out[after..]);
    assert_tone("after corruption", &channel(&pcm, 0)[4_800..]);
}

#[test]
fn fuzzed_frames_never_panic() {
    let adts = sine_adts(44100, 1, 0.5);
    let mut t = AacToOpus::new(&adts.config).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    for i in 0..500 {
        let len = rng.gen_range(0..800);
        let mut junk: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        if i % 2 == 0 && !junk.is_empty() {
            // Mutate a real frame instead: deeper into the decoder.
            let real = &adts.frames[i % adts.frames.len()];
            junk = real.clone();
            let at = rng.gen_range(0..junk.len());
            junk[at] ^= rng.gen::<u8>() | 1;
        }
        let _ = t.push(&junk, pts_of(i, 44100, 0));
    }
    // Still usable: a resync and clean audio.
    let mut out = Vec::new();
    for (i, f) in adts.frames.iter().enumerate() {
        out.extend(t.push(f, 90_000_000 + pts_of(i, 44100, 0)).unwrap());
    }
    assert!(out.len() > 15);
    assert_eq!(out[0].pts_48k, to_48k(90_000_000));
}

#[test]
fn unsupported_configs_are_refused_with_a_reason() {
    let cfg = |asc: [u8; 2], object_type: u8, channels: u8| AacConfig {
        asc: Bytes::from(asc.to_vec()),
        object_type,
        sample_rate: 48000,
        channels,
    };
    for (what, c) in [
        ("explicit HE-AAC", cfg(asc(5, 3, 2), 5, 2)),
        ("HE-AACv2", cfg(asc(29, 3, 2), 29, 2)),
        ("HE-AAC found by the ingest", cfg(asc(2, 3, 2), 5, 2)),
    ] {
        let err = AacToOpus::new(&c).expect_err(what).to_string();
        assert!(
            err.contains("HE-AAC is not supported, use AAC-LC"),
            "{what}: {err}"
        );
    }
    assert!(matches!(
        AacToOpus::new(&cfg(asc(2, 3, 6), 2, 6)),
        Err(AudioError::Channels(6))
    ));
    assert!(matches!(
        AacToOpus::new(&cfg(asc(1, 3, 2), 1, 2)),
        Err(AudioError::UnsupportedObjectType(1))
    ));
    let mut short = cfg(asc(2, 3, 2), 2, 2);
    short.asc = Bytes::from_static(&[0x11]);
    assert!(matches!(
        AacToOpus::new(&short),
        Err(AudioError::BadConfig(_))
    ));
    assert!(AacToOpus::new(&cfg(asc(2, 3, 2), 2, 2)).is_ok());
}

/// Not a benchmark with a threshold: prints what 10 s of stereo costs, for
/// capacity planning. Run with `cargo test --release -- --nocapture cost`.
#[test]
fn cost_of_ten_seconds_of_stereo() {
    // Two different tones plus noise, so the encoder sees real stereo.
    let adts = split_adts(&ffmpeg_adts(
        "aevalsrc=0.3*sin(2*PI*440*t)+0.05*random(0)|0.3*sin(2*PI*660*t)+0.05*random(1):s=44100:d=10",
        &[],
    ));
    assert_eq!(adts.config.channels, 2);
    let mut t = AacToOpus::new(&adts.config).unwrap();
    let started = Instant::now();
    let mut frames = 0;
    for (i, f) in adts.frames.iter().enumerate() {
        frames += t.push(f, pts_of(i, 44100, 0)).unwrap().len();
    }
    let elapsed = started.elapsed();
    println!(
        "AAC-LC 44.1 kHz stereo -> Opus 48 kHz: 10 s in {elapsed:?} ({frames} frames, {:.0}x real time)",
        10.0 / elapsed.as_secs_f64()
    );
    assert!(frames >= 495);
}
