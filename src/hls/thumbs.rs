//! Thumbnails: every [`INTERVAL`] per live channel, the latest keyframe is
//! decoded with openh264 and encoded as a JPEG. The work runs on the
//! blocking pool, never on the segmenter's task; at most one decode per
//! channel is in flight.

use crate::media::{Payload, Unit};
use bytes::Bytes;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a live channel's thumbnail is refreshed.
pub const INTERVAL: Duration = Duration::from_secs(10);
/// Thumbnails are scaled down to at most this width (directory tiles and
/// posters need no more).
const MAX_WIDTH: usize = 640;
const JPEG_QUALITY: u8 = 80;

/// Channel -> (the stream that made it, JPEG).
type Latest = Arc<Mutex<HashMap<String, (u64, Bytes)>>>;

#[derive(Default, Clone)]
pub struct Thumbnails {
    latest: Latest,
}

impl Thumbnails {
    pub fn get(&self, channel: &str) -> Option<Bytes> {
        self.latest
            .lock()
            .expect("thumbs poisoned")
            .get(channel)
            .map(|(_, jpeg)| jpeg.clone())
    }

    /// Thumbnails of one stream (`stream` = its id) of `channel`.
    pub fn for_channel(&self, channel: &str, stream: u64) -> ChannelThumbs {
        ChannelThumbs {
            stream,
            channel: channel.to_string(),
            latest: self.latest.clone(),
            last: None,
            busy: Arc::new(AtomicBool::new(false)),
        }
    }
}

pub struct ChannelThumbs {
    stream: u64,
    channel: String,
    latest: Latest,
    last: Option<Instant>,
    busy: Arc<AtomicBool>,
}

impl ChannelThumbs {
    /// Offers a video keyframe. When a thumbnail is due, decodes it in the
    /// background; the JPEG becomes the channel's thumbnail and, the first
    /// time, `poster` (a recording's poster.jpg) if given and absent.
    pub fn offer(&mut self, unit: &Arc<Unit>, poster: Option<PathBuf>) {
        if !unit.keyframe || self.last.is_some_and(|t| t.elapsed() < INTERVAL) {
            return;
        }
        if self.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        self.last = Some(Instant::now());
        let unit = unit.clone();
        let latest = self.latest.clone();
        let channel = self.channel.clone();
        let busy = self.busy.clone();
        let stream = self.stream;
        tokio::task::spawn_blocking(move || {
            match keyframe_to_jpeg(&unit) {
                Ok(jpeg) => {
                    let jpeg = Bytes::from(jpeg);
                    if let Some(p) = poster.filter(|p| !p.exists()) {
                        if let Err(e) = write_atomic(&p, &jpeg) {
                            tracing::warn!(channel, "cannot write poster {}: {e}", p.display());
                        }
                    }
                    latest
                        .lock()
                        .expect("thumbs poisoned")
                        .insert(channel, (stream, jpeg));
                }
                Err(e) => tracing::debug!(channel, "thumbnail failed: {e}"),
            }
            busy.store(false, Ordering::Release);
        });
    }
}

impl Drop for ChannelThumbs {
    fn drop(&mut self) {
        // An offline channel has no thumbnail; a stream that replaced this
        // one keeps its own.
        let mut latest = self.latest.lock().expect("thumbs poisoned");
        if latest
            .get(&self.channel)
            .is_some_and(|(s, _)| *s == self.stream)
        {
            latest.remove(&self.channel);
        }
    }
}

/// Written whole or not at all, and durable: the data before the rename,
/// the rename (a directory entry) by syncing the folder after it.
fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_data()?;
    std::fs::rename(&tmp, path)?;
    match path.parent() {
        Some(dir) => super::recorder::sync_dir(dir),
        None => Ok(()),
    }
}

/// Decodes one IDR access unit (SPS and PPS included, as the hub delivers
/// keyframes) and encodes it as JPEG, scaled to at most [`MAX_WIDTH`].
pub fn keyframe_to_jpeg(unit: &Unit) -> Result<Vec<u8>, String> {
    use openh264::formats::YUVSource;
    let Payload::H264(nalus) = &unit.payload else {
        return Err("not H.264".into());
    };
    let mut annexb = Vec::with_capacity(unit.payload.len() + nalus.len() * 4 + 64);
    if let crate::media::TrackConfig::H264(c) = &*unit.config {
        // Parameter sets first, whether or not the unit repeats them.
        for ps in [&c.sps, &c.pps] {
            annexb.extend_from_slice(&[0, 0, 0, 1]);
            annexb.extend_from_slice(ps);
        }
    }
    for n in nalus {
        annexb.extend_from_slice(&[0, 0, 0, 1]);
        annexb.extend_from_slice(n);
    }
    let mut dec = openh264::decoder::Decoder::new().map_err(|e| e.to_string())?;
    let (w, h, rgb) = {
        let frame = dec
            .decode(&annexb)
            .map_err(|e| e.to_string())?
            .map(|f| (f.dimensions(), rgb_of(&f)));
        match frame {
            Some(((w, h), rgb)) => (w, h, rgb),
            None => {
                let rest = dec.flush_remaining().map_err(|e| e.to_string())?;
                let f = rest.first().ok_or("no picture decoded")?;
                let (w, h) = f.dimensions();
                (w, h, rgb_of(f))
            }
        }
    };
    let (rgb, w, h) = downscale(&rgb, w, h);
    let mut out = Vec::new();
    let enc = jpeg_encoder::Encoder::new(&mut out, JPEG_QUALITY);
    enc.encode(&rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

fn rgb_of(f: &openh264::decoder::DecodedYUV<'_>) -> Vec<u8> {
    use openh264::formats::YUVSource;
    let (w, h) = f.dimensions();
    let mut rgb = vec![0u8; w * h * 3];
    f.write_rgb8(&mut rgb);
    rgb
}

/// Box-averages down by an integer factor so the width is at most
/// [`MAX_WIDTH`].
fn downscale(rgb: &[u8], w: usize, h: usize) -> (Vec<u8>, usize, usize) {
    let k = w.div_ceil(MAX_WIDTH).max(1);
    if k == 1 {
        return (rgb.to_vec(), w, h);
    }
    let (nw, nh) = (w / k, h / k);
    let mut out = vec![0u8; nw * nh * 3];
    for y in 0..nh {
        for x in 0..nw {
            for c in 0..3 {
                let mut sum = 0u32;
                for dy in 0..k {
                    for dx in 0..k {
                        sum += rgb[((y * k + dy) * w + x * k + dx) * 3 + c] as u32;
                    }
                }
                out[(y * nw + x) * 3 + c] = (sum / (k * k) as u32) as u8;
            }
        }
    }
    (out, nw, nh)
}
