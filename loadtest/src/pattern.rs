//! The synthetic publisher's video: a moving test pattern with noise,
//! encoded with openh264 once at start-up and then looped, so publishing
//! costs almost nothing while the load runs (the stamps are added per
//! frame at send time, outside the encoded pictures).

use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, RateControlMode,
};
use openh264::formats::YUVBuffer;
use openh264::OpenH264API;

/// One encoded picture in Annex B.
#[derive(Clone)]
pub struct Frame {
    pub annexb: Vec<u8>,
    pub key: bool,
}

pub struct PatternOptions {
    pub width: usize,
    pub height: usize,
    pub fps: u32,
    pub kbps: u32,
    /// Frames encoded before the loop repeats; a multiple of `fps` keeps the
    /// one-second GOP regular across the seam.
    pub frames: usize,
}

impl Default for PatternOptions {
    fn default() -> Self {
        PatternOptions {
            width: 640,
            height: 360,
            fps: 30,
            kbps: 600,
            frames: 60,
        }
    }
}

/// Encodes the loop. Every `fps`-th frame is an IDR with SPS and PPS.
pub fn encode(o: &PatternOptions) -> anyhow::Result<Vec<Frame>> {
    anyhow::ensure!(
        o.width.is_multiple_of(16)
            && o.height.is_multiple_of(2)
            && o.width <= 1920
            && o.height <= 1080,
        "size must be at most 1920x1080, width a multiple of 16"
    );
    anyhow::ensure!((1..=60).contains(&o.fps), "fps must be 1..=60");
    let config = EncoderConfig::new()
        .bitrate(BitRate::from_bps(o.kbps * 1000))
        .max_frame_rate(FrameRate::from_hz(o.fps as f32))
        .rate_control_mode(RateControlMode::Bitrate)
        .skip_frames(false)
        .intra_frame_period(IntraFramePeriod::from_num_frames(o.fps));
    let mut enc = Encoder::with_api_config(OpenH264API::from_source(), config)?;
    let (w, h) = (o.width, o.height);
    let mut yuv = vec![0u8; w * h * 3 / 2];
    let mut rng: u32 = 0x1234_5678;
    let mut out = Vec::with_capacity(o.frames);
    for i in 0..o.frames {
        // A diagonal gradient sliding right, plus noise in the lower half so
        // the encoder has something to spend its bit budget on.
        let shift = i * 4;
        for y in 0..h {
            for x in 0..w {
                let mut v = ((x + y + shift) & 0xff) as u8;
                if y > h * 3 / 4 {
                    rng ^= rng << 13;
                    rng ^= rng >> 17;
                    rng ^= rng << 5;
                    v = v.wrapping_add((rng & 0x07) as u8);
                }
                yuv[y * w + x] = v;
            }
        }
        let (u, v) = yuv[w * h..].split_at_mut(w * h / 4);
        u.fill(((i * 3) & 0xff) as u8);
        v.fill(128);
        if i.is_multiple_of(o.fps as usize) {
            enc.force_intra_frame();
        }
        let buf = YUVBuffer::from_vec(yuv.clone(), w, h);
        let bs = enc.encode(&buf)?;
        let key = matches!(bs.frame_type(), FrameType::IDR | FrameType::I);
        let annexb = bs.to_vec();
        if !annexb.is_empty() {
            out.push(Frame { annexb, key });
        }
    }
    anyhow::ensure!(
        out.first().is_some_and(|f| f.key),
        "first frame is not a keyframe"
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loop_has_a_one_second_gop_near_the_bitrate() {
        for (w, h, kbps) in [(640, 360, 600), (1280, 720, 2500)] {
            let o = PatternOptions {
                width: w,
                height: h,
                kbps,
                ..Default::default()
            };
            let frames = encode(&o).unwrap();
            assert_eq!(frames.len(), o.frames);
            let keys: Vec<usize> = (0..frames.len()).filter(|&i| frames[i].key).collect();
            assert_eq!(keys, [0, 30]);
            let bytes: usize = frames.iter().map(|f| f.annexb.len()).sum();
            let got = bytes as f64 * 8.0 / 2.0 / 1000.0;
            eprintln!("pattern {w}x{h}: {got:.0} kbit/s for a {kbps} kbit/s target");
            assert!(got > kbps as f64 * 0.5 && got < kbps as f64 * 1.6, "{got}");
        }
    }
}
