//! H.264 bitstream helpers: the AVC decoder configuration record RTMP sends
//! as its sequence header, AVCC (length-prefixed) and Annex B (start code)
//! access units, and just enough of the SPS to learn the picture size.

use super::bits::BitReader;
use super::{invalid, truncated, CodecError};
use bytes::Bytes;

/// NAL unit types (ITU-T H.264 Table 7-1) that ingest cares about.
pub const NAL_SLICE: u8 = 1;
pub const NAL_IDR: u8 = 5;
pub const NAL_SEI: u8 = 6;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;
pub const NAL_AUD: u8 = 9;

/// An access unit with more NAL units than this is refused. Real encoders
/// send a handful (AUD, SPS, PPS, SEI, a few slices); the cap keeps a
/// hostile stream of zero-length NALs from growing a `Vec` per packet.
pub const MAX_NALUS_PER_AU: usize = 1024;

/// A configuration record may list at most 31 SPS (5-bit count) and 255 PPS;
/// we accept the format's own limits and nothing larger.
const MAX_PARAMETER_SETS: usize = 255;

/// Pictures wider or taller than this (in pixels) are refused as garbage.
/// Level 6.2 tops out at 8192x4320 (H.264 Table A-1, 139264 macroblocks);
/// 16384 leaves headroom while keeping the arithmetic far from overflow.
pub const MAX_DIMENSION: u32 = 16384;

/// The NAL unit type of a NAL unit (H.264 7.3.1), or `None` when empty.
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1f)
}

/// Whether an access unit holds an IDR slice, i.e. is a random access point.
pub fn is_keyframe(nalus: &[Bytes]) -> bool {
    nalus.iter().any(|n| nal_type(n) == Some(NAL_IDR))
}

/// The AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1), as carried
/// in an FLV AVC sequence header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcDecoderConfig {
    pub profile_indication: u8,
    pub profile_compatibility: u8,
    pub level_indication: u8,
    /// Bytes in each NAL length prefix of the AVCC access units: 1, 2 or 4.
    pub nal_length_size: u8,
    pub sps: Vec<Bytes>,
    pub pps: Vec<Bytes>,
}

/// Writes the AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1.2)
/// for one SPS and one PPS, with 4-byte NAL lengths: the body of an MP4
/// `avcC` box and of an FLV AVC sequence header alike.
pub fn write_avc_decoder_config(o: &mut impl bytes::BufMut, v: &crate::media::H264Config) {
    o.put_u8(1);
    o.put_u8(v.profile_idc);
    o.put_u8(v.constraint_flags);
    o.put_u8(v.level_idc);
    o.put_u8(0xff); // lengthSizeMinusOne = 3
    o.put_u8(0xe1); // one SPS
    o.put_u16(v.sps.len() as u16);
    o.put_slice(&v.sps);
    o.put_u8(1);
    o.put_u16(v.pps.len() as u16);
    o.put_slice(&v.pps);
    if matches!(v.profile_idc, 100 | 110 | 122 | 144) {
        // 5.3.3.1.2: the high-profile extension. The SPS parser does not
        // keep bit depths; 8-bit 4:2:0 is what every browser-playable
        // stream uses.
        let chroma = parse_sps(&v.sps).map(|s| s.chroma_format_idc).unwrap_or(1);
        o.put_u8(0xfc | (chroma as u8 & 3));
        o.put_u8(0xf8);
        o.put_u8(0xf8);
        o.put_u8(0);
    }
}

/// Parses an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1.2).
/// The high-profile trailer (chroma format, bit depths, SPS extensions)
/// is ignored: the SPS itself carries the same information.
pub fn parse_avc_decoder_config(data: &Bytes) -> Result<AvcDecoderConfig, CodecError> {
    const WHAT: &str = "AVCDecoderConfigurationRecord";
    let head = data
        .get(..6)
        .ok_or_else(|| truncated(WHAT, 6, data.len()))?;
    if head[0] != 1 {
        return Err(invalid(
            WHAT,
            format!("configurationVersion {} (want 1)", head[0]),
        ));
    }
    // lengthSizeMinusOne is 2 bits; the value 2 (3-byte lengths) is reserved.
    let nal_length_size = (head[4] & 0x03) + 1;
    if nal_length_size == 3 {
        return Err(invalid(WHAT, "lengthSizeMinusOne = 2 is not allowed"));
    }
    let mut pos = 5;
    let sps_count = usize::from(head[5] & 0x1f);
    pos += 1;
    let sps = read_parameter_sets(data, &mut pos, sps_count, WHAT)?;
    let pps_count = usize::from(
        *data
            .get(pos)
            .ok_or_else(|| truncated(WHAT, pos + 1, data.len()))?,
    );
    pos += 1;
    if pps_count > MAX_PARAMETER_SETS {
        return Err(invalid(WHAT, "too many PPS"));
    }
    let pps = read_parameter_sets(data, &mut pos, pps_count, WHAT)?;
    Ok(AvcDecoderConfig {
        profile_indication: head[1],
        profile_compatibility: head[2],
        level_indication: head[3],
        nal_length_size,
        sps,
        pps,
    })
}

/// `count` entries of (u16 length, bytes), each sliced without copying.
fn read_parameter_sets(
    data: &Bytes,
    pos: &mut usize,
    count: usize,
    what: &'static str,
) -> Result<Vec<Bytes>, CodecError> {
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let len_bytes = data
            .get(*pos..*pos + 2)
            .ok_or_else(|| truncated(what, *pos + 2, data.len()))?;
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        let start = *pos + 2;
        let end = start + len;
        if end > data.len() {
            return Err(truncated(what, end, data.len()));
        }
        if len == 0 {
            return Err(invalid(what, "empty parameter set"));
        }
        out.push(data.slice(start..end));
        *pos = end;
    }
    Ok(out)
}

/// Splits an AVCC access unit (ISO/IEC 14496-15 5.3.4.2: each NAL unit
/// preceded by its big-endian length in `length_size` bytes) into NAL units,
/// sharing `data`'s memory. A length running past the end is an error;
/// zero-length NAL units are skipped (some muxers pad with them).
pub fn split_avcc(data: &Bytes, length_size: u8) -> Result<Vec<Bytes>, CodecError> {
    const WHAT: &str = "AVCC access unit";
    let ls = usize::from(length_size);
    if !matches!(ls, 1 | 2 | 4) {
        return Err(invalid(WHAT, format!("NAL length size {length_size}")));
    }
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let prefix = data
            .get(pos..pos + ls)
            .ok_or_else(|| truncated(WHAT, pos + ls, data.len()))?;
        let len = prefix
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        let start = pos + ls;
        // `len` is at most u32::MAX, and `start` at most data.len(): no overflow
        // on 64-bit; checked anyway for 32-bit targets.
        let end = start
            .checked_add(len)
            .filter(|end| *end <= data.len())
            .ok_or_else(|| truncated(WHAT, start.saturating_add(len), data.len()))?;
        if len > 0 {
            if out.len() >= MAX_NALUS_PER_AU {
                return Err(invalid(
                    WHAT,
                    format!("more than {MAX_NALUS_PER_AU} NAL units"),
                ));
            }
            out.push(data.slice(start..end));
        }
        pos = end;
    }
    Ok(out)
}

/// Joins NAL units into an AVCC access unit with 4-byte lengths.
pub fn join_avcc(nalus: &[Bytes]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nalus.iter().map(|n| n.len() + 4).sum());
    for n in nalus {
        // NAL units come from our own splitters, whose inputs are far below 4 GiB.
        out.extend_from_slice(&(n.len() as u32).to_be_bytes());
        out.extend_from_slice(n);
    }
    out
}

/// Splits an Annex B byte stream (H.264 Annex B.1: NAL units behind
/// 0x000001 or 0x00000001 start codes) into NAL units sharing `data`'s
/// memory. Trailing zero bytes before a start code belong to it, not to the
/// NAL unit. Bytes before the first start code are refused: a stream that
/// does not start with one is not Annex B.
pub fn split_annexb(data: &Bytes) -> Result<Vec<Bytes>, CodecError> {
    const WHAT: &str = "Annex B stream";
    let mut starts = Vec::new(); // (start code begin, payload begin)
    let mut i = 0;
    let mut zeros = 0usize;
    while i < data.len() {
        let b = data[i];
        if b == 1 && zeros >= 2 {
            let begin = i - zeros.min(3);
            starts.push((begin, i + 1));
            zeros = 0;
        } else if b == 0 {
            zeros += 1;
        } else {
            zeros = 0;
        }
        i += 1;
    }
    match starts.first() {
        None if data.is_empty() => return Ok(Vec::new()),
        None => return Err(invalid(WHAT, "no start code")),
        Some((begin, _)) if data[..*begin].iter().any(|b| *b != 0) => {
            return Err(invalid(WHAT, "bytes before the first start code"));
        }
        Some(_) => {}
    }
    let mut out = Vec::with_capacity(starts.len());
    for (k, (_, payload)) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(data.len(), |(b, _)| *b);
        // trailing_zero_8bits (B.1.1) are not part of the NAL unit.
        while end > *payload && data[end - 1] == 0 {
            end -= 1;
        }
        if end > *payload {
            if out.len() >= MAX_NALUS_PER_AU {
                return Err(invalid(
                    WHAT,
                    format!("more than {MAX_NALUS_PER_AU} NAL units"),
                ));
            }
            out.push(data.slice(*payload..end));
        }
    }
    Ok(out)
}

/// Removes emulation prevention bytes (H.264 7.4.1: a 0x03 after two zero
/// bytes), turning a NAL unit's payload into its RBSP.
pub fn nal_to_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// What ingest needs from a sequence parameter set (H.264 7.3.2.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sps {
    pub profile_idc: u8,
    /// constraint_set0..5 flags and the two reserved bits, as one byte.
    pub constraint_flags: u8,
    pub level_idc: u8,
    pub chroma_format_idc: u32,
    pub frame_mbs_only: bool,
    /// Displayed size, after the frame cropping rectangle.
    pub width: u32,
    pub height: u32,
}

impl Sps {
    /// A human name for the profile (H.264 Annex A), for logs and health.
    pub fn profile_name(&self) -> &'static str {
        profile_name(self.profile_idc, self.constraint_flags)
    }
}

/// Names a profile from profile_idc and constraint_set1_flag (A.2).
pub fn profile_name(profile_idc: u8, constraint_flags: u8) -> &'static str {
    match profile_idc {
        66 if constraint_flags & 0x40 != 0 => "Constrained Baseline",
        66 => "Baseline",
        77 => "Main",
        88 => "Extended",
        100 => "High",
        110 => "High 10",
        122 => "High 4:2:2",
        244 => "High 4:4:4",
        44 => "CAVLC 4:4:4",
        _ => "unknown profile",
    }
}

/// Profiles whose SPS carries chroma_format_idc, bit depths and scaling
/// matrices (H.264 7.3.2.1.1, the `if( profile_idc == 100 || ...` branch).
fn has_chroma_info(profile_idc: u8) -> bool {
    matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

/// pic_order_cnt_type 1 lists one offset per reference frame in the POC
/// cycle; the spec caps num_ref_frames_in_pic_order_cnt_cycle at 255.
const MAX_REF_FRAMES_IN_POC_CYCLE: u32 = 255;

/// Parses an SPS NAL unit (header byte included, emulation prevention still
/// in) far enough to know the profile, level and displayed picture size.
pub fn parse_sps(nal: &[u8]) -> Result<Sps, CodecError> {
    const WHAT: &str = "SPS";
    match nal_type(nal) {
        Some(NAL_SPS) => {}
        Some(t) => return Err(invalid(WHAT, format!("NAL type {t}, want 7"))),
        None => return Err(truncated(WHAT, 1, 0)),
    }
    let rbsp = nal_to_rbsp(nal.get(1..).unwrap_or_default());
    let mut r = BitReader::new(&rbsp, WHAT);
    let profile_idc = r.u8(8)?;
    let constraint_flags = r.u8(8)?;
    let level_idc = r.u8(8)?;
    let _sps_id = r.ue()?;
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if has_chroma_info(profile_idc) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return Err(invalid(
                WHAT,
                format!("chroma_format_idc {chroma_format_idc}"),
            ));
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit()?;
        }
        let _bit_depth_luma_minus8 = r.ue()?;
        let _bit_depth_chroma_minus8 = r.ue()?;
        let _qpprime_y_zero_transform_bypass = r.bit()?;
        if r.bit()? {
            // seq_scaling_matrix_present_flag: 6 4x4 lists, then 2 (or 6 for
            // 4:4:4) 8x8 lists, each present or not.
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    let _log2_max_frame_num_minus4 = r.ue()?;
    match r.ue()? {
        0 => {
            let _log2_max_poc_lsb_minus4 = r.ue()?;
        }
        1 => {
            let _delta_pic_order_always_zero = r.bit()?;
            let _offset_for_non_ref_pic = r.se()?;
            let _offset_for_top_to_bottom_field = r.se()?;
            let n = r.ue()?;
            if n > MAX_REF_FRAMES_IN_POC_CYCLE {
                return Err(invalid(WHAT, "num_ref_frames_in_pic_order_cnt_cycle > 255"));
            }
            for _ in 0..n {
                let _offset_for_ref_frame = r.se()?;
            }
        }
        2 => {}
        t => return Err(invalid(WHAT, format!("pic_order_cnt_type {t}"))),
    }
    let _max_num_ref_frames = r.ue()?;
    let _gaps_in_frame_num_allowed = r.bit()?;
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_map_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = r.bit()?;
    if !frame_mbs_only {
        let _mb_adaptive_frame_field = r.bit()?;
    }
    let _direct_8x8_inference = r.bit()?;
    let (mut crop_l, mut crop_r, mut crop_t, mut crop_b) = (0u64, 0u64, 0u64, 0u64);
    if r.bit()? {
        crop_l = r.ue()?.into();
        crop_r = r.ue()?.into();
        crop_t = r.ue()?.into();
        crop_b = r.ue()?.into();
    }
    // Frame cropping units, H.264 7.4.2.1.1 (equations 7-19 to 7-22) with
    // SubWidthC/SubHeightC from Table 6-1.
    let field_factor: u64 = if frame_mbs_only { 1 } else { 2 };
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (crop_x, crop_y) = match chroma_array_type {
        0 => (1, field_factor),
        1 => (2, 2 * field_factor),
        2 => (2, field_factor),
        _ => (1, field_factor),
    };
    let full_w = width_mbs * 16;
    let full_h = height_map_units * 16 * field_factor;
    let cut_w = (crop_l + crop_r) * crop_x;
    let cut_h = (crop_t + crop_b) * crop_y;
    if cut_w >= full_w || cut_h >= full_h {
        return Err(invalid(
            WHAT,
            "cropping rectangle is larger than the picture",
        ));
    }
    let (width, height) = (full_w - cut_w, full_h - cut_h);
    if width > u64::from(MAX_DIMENSION) || height > u64::from(MAX_DIMENSION) {
        return Err(invalid(
            WHAT,
            format!("picture {width}x{height} is too large"),
        ));
    }
    Ok(Sps {
        profile_idc,
        constraint_flags,
        level_idc,
        chroma_format_idc,
        frame_mbs_only,
        // Both are <= MAX_DIMENSION, checked above.
        width: width as u32,
        height: height as u32,
    })
}

/// scaling_list() (H.264 7.3.2.1.1.1): only walked, the values are not needed.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), CodecError> {
    let mut last: i64 = 8;
    let mut next: i64 = 8;
    for _ in 0..size {
        if next != 0 {
            let delta = i64::from(r.se()?);
            next = (last + delta).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "h264_tests.rs"]
mod tests;
