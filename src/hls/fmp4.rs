//! CMAF fragmented MP4 (ISO/IEC 14496-12, ISO/IEC 23000-19): an init segment
//! (`ftyp` + `moov`) per track set, and one `moof` + `mdat` fragment per
//! LL-HLS part. Written by hand: the boxes we need are few and fixed, and
//! owning them lets a part be exactly what the segmenter decided.

use crate::media::{AacConfig, H264Config, CLOCK_RATE};
use bytes::{BufMut, Bytes, BytesMut};

/// Track ids in the init segment: video (when present) is 1, audio 2.
pub const VIDEO_TRACK_ID: u32 = 1;
pub const AUDIO_TRACK_ID: u32 = 2;

/// Samples that start decoding: `sample_depends_on = 2` (14496-12 8.8.3.1).
const FLAGS_SYNC: u32 = 0x0200_0000;
/// `sample_depends_on = 1`, `sample_is_non_sync_sample = 1`.
const FLAGS_NON_SYNC: u32 = 0x0101_0000;

/// What the init segment describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracks {
    pub video: Option<H264Config>,
    pub audio: Option<AacConfig>,
}

impl Tracks {
    /// The RFC 6381 `CODECS` value, e.g. `avc1.64001f,mp4a.40.2`.
    pub fn codecs(&self) -> String {
        let mut c = Vec::new();
        if let Some(v) = &self.video {
            c.push(format!("avc1.{}", v.profile_level_id()));
        }
        if let Some(a) = &self.audio {
            c.push(format!("mp4a.40.{}", a.object_type));
        }
        c.join(",")
    }

    pub fn audio_timescale(&self) -> u32 {
        self.audio
            .as_ref()
            .map(|a| a.sample_rate.max(1))
            .unwrap_or(48_000)
    }
}

/// One sample of a fragment, its data already in MP4 form (AVCC NAL units
/// with 4-byte lengths for video, a raw frame for AAC).
#[derive(Debug, Clone)]
pub struct Sample {
    pub duration: u32,
    /// pts - dts, in the track's timescale.
    pub cts_offset: i32,
    pub sync: bool,
    pub data: Vec<Bytes>,
}

impl Sample {
    fn size(&self) -> usize {
        self.data.iter().map(|d| d.len()).sum()
    }
}

/// The samples of one track in one fragment.
#[derive(Debug, Clone)]
pub struct Run {
    pub track_id: u32,
    /// Decode time of the first sample, in the track's timescale.
    pub base_decode_time: u64,
    pub samples: Vec<Sample>,
}

/// Writes a box: a 32-bit size placeholder, the type, the body, then fixes
/// the size.
fn boxed(out: &mut BytesMut, kind: &[u8; 4], body: impl FnOnce(&mut BytesMut)) {
    let start = out.len();
    out.put_u32(0);
    out.put_slice(kind);
    body(out);
    let size = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

fn full_box(
    out: &mut BytesMut,
    kind: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut BytesMut),
) {
    boxed(out, kind, |o| {
        o.put_u32(((version as u32) << 24) | (flags & 0x00ff_ffff));
        body(o)
    })
}

const UNITY_MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// `ftyp` + `moov` for `tracks`.
pub fn init_segment(tracks: &Tracks) -> Bytes {
    let mut o = BytesMut::with_capacity(1024);
    boxed(&mut o, b"ftyp", |o| {
        o.put_slice(b"iso6");
        o.put_u32(0);
        for b in [b"iso6", b"cmfc", b"isom", b"mp41", b"dash"] {
            o.put_slice(b);
        }
    });
    boxed(&mut o, b"moov", |o| {
        full_box(o, b"mvhd", 0, 0, |o| {
            o.put_u32(0); // creation_time
            o.put_u32(0); // modification_time
            o.put_u32(1000); // timescale
            o.put_u32(0); // duration: unknown (fragmented)
            o.put_u32(0x0001_0000); // rate 1.0
            o.put_u16(0x0100); // volume 1.0
            o.put_u16(0);
            o.put_u64(0);
            for m in UNITY_MATRIX {
                o.put_u32(m);
            }
            for _ in 0..6 {
                o.put_u32(0); // pre_defined
            }
            o.put_u32(AUDIO_TRACK_ID + 1); // next_track_ID
        });
        if let Some(v) = &tracks.video {
            video_trak(o, v);
        }
        if let Some(a) = &tracks.audio {
            audio_trak(o, a);
        }
        boxed(o, b"mvex", |o| {
            let ids = tracks
                .video
                .as_ref()
                .map(|_| VIDEO_TRACK_ID)
                .into_iter()
                .chain(tracks.audio.as_ref().map(|_| AUDIO_TRACK_ID));
            for id in ids {
                full_box(o, b"trex", 0, 0, |o| {
                    o.put_u32(id);
                    o.put_u32(1); // default_sample_description_index
                    o.put_u32(0);
                    o.put_u32(0);
                    o.put_u32(0);
                });
            }
        });
    });
    o.freeze()
}

fn tkhd(o: &mut BytesMut, track_id: u32, audio: bool, width: u32, height: u32) {
    // flags: enabled | in_movie | in_preview
    full_box(o, b"tkhd", 0, 0x7, |o| {
        o.put_u32(0);
        o.put_u32(0);
        o.put_u32(track_id);
        o.put_u32(0); // reserved
        o.put_u32(0); // duration
        o.put_u64(0); // reserved
        o.put_u16(0); // layer
        o.put_u16(if audio { 1 } else { 0 }); // alternate_group
        o.put_u16(if audio { 0x0100 } else { 0 }); // volume
        o.put_u16(0);
        for m in UNITY_MATRIX {
            o.put_u32(m);
        }
        o.put_u32(width << 16);
        o.put_u32(height << 16);
    });
}

fn mdhd_hdlr(o: &mut BytesMut, timescale: u32, handler: &[u8; 4], name: &str) {
    full_box(o, b"mdhd", 0, 0, |o| {
        o.put_u32(0);
        o.put_u32(0);
        o.put_u32(timescale);
        o.put_u32(0);
        o.put_u16(0x55c4); // language "und"
        o.put_u16(0);
    });
    full_box(o, b"hdlr", 0, 0, |o| {
        o.put_u32(0);
        o.put_slice(handler);
        o.put_u32(0);
        o.put_u32(0);
        o.put_u32(0);
        o.put_slice(name.as_bytes());
        o.put_u8(0);
    });
}

fn dinf_and_empty_tables(o: &mut BytesMut, stsd: impl FnOnce(&mut BytesMut)) {
    boxed(o, b"dinf", |o| {
        full_box(o, b"dref", 0, 0, |o| {
            o.put_u32(1);
            full_box(o, b"url ", 0, 1, |_| {}); // self-contained
        });
    });
    boxed(o, b"stbl", |o| {
        full_box(o, b"stsd", 0, 0, |o| {
            o.put_u32(1);
            stsd(o);
        });
        for kind in [b"stts", b"stsc", b"stco"] {
            full_box(o, kind, 0, 0, |o| o.put_u32(0));
        }
        full_box(o, b"stsz", 0, 0, |o| {
            o.put_u32(0);
            o.put_u32(0);
        });
    });
}

fn video_trak(o: &mut BytesMut, v: &H264Config) {
    boxed(o, b"trak", |o| {
        tkhd(o, VIDEO_TRACK_ID, false, v.width, v.height);
        boxed(o, b"mdia", |o| {
            mdhd_hdlr(o, CLOCK_RATE as u32, b"vide", "onair video");
            boxed(o, b"minf", |o| {
                full_box(o, b"vmhd", 0, 1, |o| o.put_u64(0));
                dinf_and_empty_tables(o, |o| avc1(o, v));
            });
        });
    });
}

/// `avc1` visual sample entry with its `avcC` (ISO/IEC 14496-15 5.3.3.1).
fn avc1(o: &mut BytesMut, v: &H264Config) {
    boxed(o, b"avc1", |o| {
        o.put_slice(&[0; 6]);
        o.put_u16(1); // data_reference_index
        o.put_slice(&[0; 16]);
        o.put_u16(v.width as u16);
        o.put_u16(v.height as u16);
        o.put_u32(0x0048_0000); // 72 dpi
        o.put_u32(0x0048_0000);
        o.put_u32(0);
        o.put_u16(1); // frame_count
        o.put_slice(&[0; 32]); // compressorname
        o.put_u16(0x0018); // depth
        o.put_i16(-1);
        boxed(o, b"avcC", |o| {
            crate::codec::h264::write_avc_decoder_config(o, v)
        });
    });
}

fn audio_trak(o: &mut BytesMut, a: &AacConfig) {
    boxed(o, b"trak", |o| {
        tkhd(o, AUDIO_TRACK_ID, true, 0, 0);
        boxed(o, b"mdia", |o| {
            mdhd_hdlr(o, a.sample_rate.max(1), b"soun", "onair audio");
            boxed(o, b"minf", |o| {
                full_box(o, b"smhd", 0, 0, |o| o.put_u32(0));
                dinf_and_empty_tables(o, |o| mp4a(o, a));
            });
        });
    });
}

/// An MPEG-4 descriptor (ISO/IEC 14496-1 8.3.3): tag, then the size in the
/// 4-byte expandable form, which every reader accepts.
fn descriptor(o: &mut BytesMut, tag: u8, body: impl FnOnce(&mut BytesMut)) {
    let mut inner = BytesMut::new();
    body(&mut inner);
    o.put_u8(tag);
    let n = inner.len() as u32;
    o.put_u8(0x80 | ((n >> 21) & 0x7f) as u8);
    o.put_u8(0x80 | ((n >> 14) & 0x7f) as u8);
    o.put_u8(0x80 | ((n >> 7) & 0x7f) as u8);
    o.put_u8((n & 0x7f) as u8);
    o.put_slice(&inner);
}

/// `mp4a` audio sample entry with its `esds` (ISO/IEC 14496-14 5.6).
fn mp4a(o: &mut BytesMut, a: &AacConfig) {
    boxed(o, b"mp4a", |o| {
        o.put_slice(&[0; 6]);
        o.put_u16(1);
        o.put_u64(0);
        o.put_u16(a.channels.max(1) as u16);
        o.put_u16(16); // samplesize
        o.put_u32(0);
        // samplerate is 16.16; rates above 65535 do not fit, and the real
        // rate is in the ASC anyway.
        o.put_u32((a.sample_rate.min(65_535)) << 16);
        full_box(o, b"esds", 0, 0, |o| {
            descriptor(o, 0x03, |o| {
                o.put_u16(AUDIO_TRACK_ID as u16); // ES_ID
                o.put_u8(0);
                descriptor(o, 0x04, |o| {
                    o.put_u8(0x40); // Audio ISO/IEC 14496-3
                    o.put_u8(0x15); // streamType audio (5) << 2 | 1
                    o.put_slice(&[0, 0, 0]); // bufferSizeDB
                    o.put_u32(0); // maxBitrate
                    o.put_u32(0); // avgBitrate
                    descriptor(o, 0x05, |o| o.put_slice(&a.asc));
                });
                descriptor(o, 0x06, |o| o.put_u8(0x02));
            });
        });
    });
}

/// One `moof` + `mdat` holding `runs`. `sequence` is the fragment's
/// `mfhd` sequence number, increasing across the stream.
pub fn fragment(sequence: u32, runs: &[Run]) -> Bytes {
    let runs: Vec<&Run> = runs.iter().filter(|r| !r.samples.is_empty()).collect();
    let data_len: usize = runs
        .iter()
        .flat_map(|r| r.samples.iter())
        .map(Sample::size)
        .sum();
    let mut o = BytesMut::with_capacity(256 + runs.len() * 16 * 64 + data_len);
    let mut offset_slots = Vec::new();
    boxed(&mut o, b"moof", |o| {
        full_box(o, b"mfhd", 0, 0, |o| o.put_u32(sequence));
        for r in &runs {
            boxed(o, b"traf", |o| {
                // default-base-is-moof: data offsets count from the moof.
                full_box(o, b"tfhd", 0, 0x02_0000, |o| o.put_u32(r.track_id));
                full_box(o, b"tfdt", 1, 0, |o| o.put_u64(r.base_decode_time));
                // data-offset, duration, size, flags, composition offsets;
                // version 1 makes the offsets signed.
                full_box(
                    o,
                    b"trun",
                    1,
                    0x0001 | 0x0100 | 0x0200 | 0x0400 | 0x0800,
                    |o| {
                        o.put_u32(r.samples.len() as u32);
                        offset_slots.push(o.len());
                        o.put_u32(0);
                        for s in &r.samples {
                            o.put_u32(s.duration);
                            o.put_u32(s.size() as u32);
                            o.put_u32(if s.sync { FLAGS_SYNC } else { FLAGS_NON_SYNC });
                            o.put_i32(s.cts_offset);
                        }
                    },
                );
            });
        }
    });
    let moof_len = o.len();
    o.put_u32((8 + data_len) as u32);
    o.put_slice(b"mdat");
    let mut pos = moof_len + 8;
    for (r, slot) in runs.iter().zip(offset_slots) {
        o[slot..slot + 4].copy_from_slice(&(pos as u32).to_be_bytes());
        for s in &r.samples {
            for d in &s.data {
                o.put_slice(d);
            }
            pos += s.size();
        }
    }
    o.freeze()
}

/// What [`scan_fragments`] learnt from a file of fragments.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FragmentScan {
    /// Bytes up to the end of the last complete `moof` + `mdat` pair.
    pub complete_len: usize,
    /// Sum of sample durations of `track_id`, in its timescale.
    pub duration: u64,
    pub fragments: usize,
}

/// Walks the top-level boxes of a segment file written by [`fragment`]
/// (for crash recovery): where the last complete fragment ends, and how
/// long the fragments last on `track_id`. Tolerates any garbage at the end.
pub fn scan_fragments(data: &[u8], track_id: u32) -> FragmentScan {
    let mut scan = FragmentScan::default();
    let mut pos = 0usize;
    let mut pending = 0u64;
    let mut in_moof = false;
    while pos + 8 <= data.len() {
        let size = u32::from_be_bytes(data[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        let kind = &data[pos + 4..pos + 8];
        if size < 8 || size > data.len() - pos {
            break;
        }
        match kind {
            b"moof" => {
                pending = moof_duration(&data[pos + 8..pos + size], track_id);
                in_moof = true;
            }
            b"mdat" if in_moof => {
                scan.duration = scan.duration.saturating_add(pending);
                scan.fragments += 1;
                scan.complete_len = pos + size;
                in_moof = false;
            }
            _ => in_moof = false,
        }
        pos += size;
    }
    scan
}

fn children(data: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        if pos + 8 > data.len() {
            return None;
        }
        let size = u32::from_be_bytes(data[pos..pos + 4].try_into().ok()?) as usize;
        if size < 8 || size > data.len() - pos {
            return None;
        }
        let item = (&data[pos + 4..pos + 8], &data[pos + 8..pos + size]);
        pos += size;
        Some(item)
    })
}

fn be32(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

fn moof_duration(moof: &[u8], track_id: u32) -> u64 {
    let mut total = 0u64;
    for (kind, traf) in children(moof) {
        if kind != b"traf" {
            continue;
        }
        let mut id = None;
        let mut dur = 0u64;
        for (k, b) in children(traf) {
            match k {
                b"tfhd" => id = be32(b, 4),
                b"trun" => {
                    let flags = be32(b, 0).unwrap_or(0) & 0xff_ffff;
                    let count = be32(b, 4).unwrap_or(0) as usize;
                    let mut at = 8;
                    if flags & 0x1 != 0 {
                        at += 4;
                    }
                    if flags & 0x4 != 0 {
                        at += 4;
                    }
                    let per = [0x100, 0x200, 0x400, 0x800]
                        .iter()
                        .filter(|f| flags & **f != 0)
                        .count()
                        * 4;
                    if flags & 0x100 == 0 || per == 0 {
                        continue;
                    }
                    // The count is read from the file: only the entries
                    // that are really there are summed.
                    let present = b.len().saturating_sub(at) / per;
                    for i in 0..count.min(present) {
                        dur = dur.saturating_add(be32(b, at + i * per).unwrap_or(0) as u64);
                    }
                }
                _ => {}
            }
        }
        if id == Some(track_id) {
            total = total.saturating_add(dur);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragment_offsets_point_into_mdat_and_scan_reads_durations() {
        let runs = vec![
            Run {
                track_id: VIDEO_TRACK_ID,
                base_decode_time: 9000,
                samples: vec![
                    Sample {
                        duration: 3000,
                        cts_offset: 0,
                        sync: true,
                        data: vec![Bytes::from_static(&[0, 0, 0, 2, 0x65, 1])],
                    },
                    Sample {
                        duration: 3000,
                        cts_offset: 0,
                        sync: false,
                        data: vec![Bytes::from_static(&[0, 0, 0, 1, 0x41])],
                    },
                ],
            },
            Run {
                track_id: AUDIO_TRACK_ID,
                base_decode_time: 4800,
                samples: vec![Sample {
                    duration: 1024,
                    cts_offset: 0,
                    sync: true,
                    data: vec![Bytes::from_static(&[7, 7, 7])],
                }],
            },
        ];
        let f = fragment(5, &runs);
        let mut file = f.to_vec();
        file.extend_from_slice(&f);
        file.extend_from_slice(&[0, 0, 1, 0, b'm', b'o']); // torn write
        let scan = scan_fragments(&file, VIDEO_TRACK_ID);
        assert_eq!(scan.fragments, 2);
        assert_eq!(scan.duration, 12000);
        assert_eq!(scan.complete_len, f.len() * 2);
        let audio = scan_fragments(&file, AUDIO_TRACK_ID);
        assert_eq!(audio.duration, 2048);
        // The audio sample's bytes sit where the audio trun says.
        let mdat_end = f.len();
        assert_eq!(&f[mdat_end - 3..], &[7, 7, 7]);
    }
}
