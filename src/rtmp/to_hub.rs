//! FLV tags (as RTMP video/audio messages carry them) -> hub units. Sans-I/O:
//! the connection hands in tag bodies and RTMP timestamps, this writes
//! [`Unit`]s to the [`Publisher`] (which never blocks) and keeps the
//! stream's health current. Everything a publisher can get wrong is logged
//! once per publish, not once per packet.

use crate::codec::aac::{self, AudioSpecificConfig};
use crate::codec::flv::{self, AudioPacket, VideoPacket};
use crate::codec::h264::{self, NAL_AUD, NAL_PPS, NAL_SPS};
use crate::codec::CodecError;
use crate::hub::Publisher;
use crate::media::{ms_to_ticks, AacConfig, H264Config, Payload, TrackConfig, Unit};
use bytes::Bytes;
use rml_rtmp::sessions::StreamMetadata;
use std::net::SocketAddr;
use std::sync::Arc;

/// `onMetaData` strings (encoder name) longer than this are cut: the health
/// JSON is shown on dashboards and must stay small whatever a client sends.
const MAX_METADATA_STRING: usize = 256;

/// Extends 32-bit RTMP millisecond timestamps (RTMP 1.0 5.3.1.2.1) to i64.
/// Successive values are read as a signed 32-bit step from the previous
/// one, so a wrap after 49.7 days continues upwards and a small backwards
/// step (audio/video interleaving jitter) stays small instead of becoming
/// a 49-day jump.
#[derive(Debug, Default)]
pub(super) struct Timeline {
    last: Option<(u32, i64)>,
}

impl Timeline {
    pub(super) fn extend(&mut self, ts: u32) -> i64 {
        let ext = match self.last {
            None => i64::from(ts),
            Some((raw, ext)) => ext + i64::from(ts.wrapping_sub(raw) as i32),
        };
        self.last = Some((ts, ext));
        ext
    }
}

/// Counts repeats of one kind of problem and says when to log: the 1st,
/// 2nd, 4th, 8th... so a broken stream gives a handful of lines, not one per
/// packet, and the count still shows.
#[derive(Debug, Default)]
struct Repeats(u64);

impl Repeats {
    fn hit(&mut self) -> Option<u64> {
        self.0 += 1;
        self.0.is_power_of_two().then_some(self.0)
    }
}

struct Video {
    config: Arc<TrackConfig>,
    sps: Bytes,
    pps: Bytes,
    nal_length_size: u8,
}

/// Per-publish state. Dropping it drops the publisher and so ends the stream.
pub(super) struct Ingest {
    publisher: Publisher,
    peer: SocketAddr,
    channel: String,
    clock: Timeline,
    last_video_dts: Option<i64>,
    last_audio_dts: Option<i64>,
    video: Option<Video>,
    audio: Option<Arc<TrackConfig>>,
    warned_no_seq_header: bool,
    warned_no_asc: bool,
    warned_bframes: bool,
    warned_video_codec: bool,
    warned_audio_codec: bool,
    warned_he_aac: bool,
    bad_video: Repeats,
    bad_audio: Repeats,
    /// Parameter changes are logged 1st, 2nd, 4th...: a client switching
    /// them on every packet must not flood the log.
    video_changes: Repeats,
    audio_changes: Repeats,
}

impl Ingest {
    pub(super) fn new(publisher: Publisher, peer: SocketAddr, channel: String) -> Self {
        Ingest {
            publisher,
            peer,
            channel,
            clock: Timeline::default(),
            last_video_dts: None,
            last_audio_dts: None,
            video: None,
            audio: None,
            warned_no_seq_header: false,
            warned_no_asc: false,
            warned_bframes: false,
            warned_video_codec: false,
            warned_audio_codec: false,
            warned_he_aac: false,
            bad_video: Repeats::default(),
            bad_audio: Repeats::default(),
            video_changes: Repeats::default(),
            audio_changes: Repeats::default(),
        }
    }

    pub(super) fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// Adds a warning to the stream's health once (operators read it on the
    /// dashboard; the list stays as short as the set of once-per-publish
    /// warnings).
    fn health_warning(&self, text: String) {
        self.publisher.stream().update_health(|h| {
            if !h.warnings.contains(&text) {
                h.warnings.push(text);
            }
        });
    }

    /// Per-track dts, never going backwards: a reader can rely on it.
    fn monotonic(last: &mut Option<i64>, dts: i64) -> i64 {
        let dts = last.map_or(dts, |l| dts.max(l));
        *last = Some(dts);
        dts
    }

    pub(super) fn video(&mut self, data: Bytes, rtmp_ts: u32) {
        let dts_ms = self.clock.extend(rtmp_ts);
        let tag = match flv::parse_video_tag(&data) {
            Ok(tag) => tag,
            Err(e @ (CodecError::UnsupportedVideoCodec(_) | CodecError::EnhancedRtmp { .. })) => {
                if !self.warned_video_codec {
                    self.warned_video_codec = true;
                    tracing::warn!(channel = %self.channel, peer = %self.peer,
                        "video ignored: {e}. Fix: in OBS set Output > Encoder to x264 or another H.264 encoder");
                    self.health_warning(format!("video ignored: {e}"));
                }
                return;
            }
            Err(e) => {
                if let Some(n) = self.bad_video.hit() {
                    tracing::warn!(channel = %self.channel, peer = %self.peer, count = n, "malformed video tag dropped: {e}");
                }
                return;
            }
        };
        match tag.packet {
            VideoPacket::SequenceHeader(record) => self.video_sequence_header(&record),
            VideoPacket::Nalus {
                composition_time,
                data,
            } => self.video_nalus(&data, dts_ms, composition_time),
            VideoPacket::EndOfSequence | VideoPacket::Command => {}
        }
    }

    fn video_sequence_header(&mut self, record: &Bytes) {
        let parsed = h264::parse_avc_decoder_config(record).and_then(|rec| {
            match (rec.sps.first(), rec.pps.first()) {
                (Some(sps), Some(pps)) => Ok((sps.clone(), pps.clone(), rec.nal_length_size)),
                _ => Err(crate::codec::invalid(
                    "AVC sequence header",
                    "no SPS or no PPS",
                )),
            }
        });
        match parsed {
            Ok((sps, pps, len)) => self.set_video_config(sps, pps, len),
            Err(e) => {
                if let Some(n) = self.bad_video.hit() {
                    tracing::warn!(channel = %self.channel, peer = %self.peer, count = n, "bad AVC sequence header ignored: {e}");
                }
            }
        }
    }

    /// Installs a new SPS/PPS pair unless it is the one in use (OBS resends
    /// its sequence header unchanged, e.g. after a reconnect of its output).
    fn set_video_config(&mut self, sps: Bytes, pps: Bytes, nal_length_size: u8) {
        if let Some(v) = &mut self.video {
            v.nal_length_size = nal_length_size;
            if v.sps == sps && v.pps == pps {
                return;
            }
        }
        let info = match h264::parse_sps(&sps) {
            Ok(info) => info,
            Err(e) => {
                if let Some(n) = self.bad_video.hit() {
                    tracing::warn!(channel = %self.channel, peer = %self.peer, count = n, "unparseable SPS ignored: {e}");
                }
                return;
            }
        };
        let config = H264Config {
            sps: sps.clone(),
            pps: pps.clone(),
            width: info.width,
            height: info.height,
            profile_idc: info.profile_idc,
            constraint_flags: info.constraint_flags,
            level_idc: info.level_idc,
        };
        let count = self.video_changes.hit();
        match (&self.video, count) {
            (_, None) => {}
            (Some(old), Some(n)) => {
                if let TrackConfig::H264(o) = old.config.as_ref() {
                    tracing::info!(channel = %self.channel, changes = n - 1,
                        "H.264 parameters changed: {}x{} -> {}x{} ({} level {})",
                        o.width, o.height, info.width, info.height, info.profile_name(), info.level_idc);
                }
            }
            (None, Some(_)) => tracing::info!(channel = %self.channel,
                "video: H.264 {} {}x{} level {}", info.profile_name(), info.width, info.height, info.level_idc),
        }
        let codec = format!(
            "H.264 {} {}x{}",
            info.profile_name(),
            info.width,
            info.height
        );
        self.publisher.stream().update_health(|h| {
            h.video_codec = Some(codec);
            h.width = Some(info.width);
            h.height = Some(info.height);
        });
        self.video = Some(Video {
            config: Arc::new(TrackConfig::H264(config)),
            sps,
            pps,
            nal_length_size,
        });
    }

    fn video_nalus(&mut self, data: &Bytes, dts_ms: i64, composition_time: i32) {
        let Some(length_size) = self.video.as_ref().map(|v| v.nal_length_size) else {
            if !self.warned_no_seq_header {
                self.warned_no_seq_header = true;
                tracing::warn!(channel = %self.channel, peer = %self.peer,
                    "video before the AVC sequence header; dropping it until one arrives");
            }
            return;
        };
        let nalus = match h264::split_avcc(data, length_size) {
            Ok(n) => n,
            Err(e) => {
                if let Some(n) = self.bad_video.hit() {
                    tracing::warn!(channel = %self.channel, peer = %self.peer, count = n, "malformed AVC access unit dropped: {e}");
                }
                return;
            }
        };
        // In-band parameter sets (some encoders repeat them before IDRs)
        // win over the sequence header when both are present and differ.
        let in_band_sps = nalus.iter().find(|n| h264::nal_type(n) == Some(NAL_SPS));
        let in_band_pps = nalus.iter().find(|n| h264::nal_type(n) == Some(NAL_PPS));
        if let (Some(sps), Some(pps)) = (in_band_sps, in_band_pps) {
            self.set_video_config(sps.clone(), pps.clone(), length_size);
        }
        let Some(video) = &self.video else { return };
        let keyframe = h264::is_keyframe(&nalus);
        let mut au = Vec::with_capacity(nalus.len() + 2);
        if keyframe {
            // A reader joining here needs nothing else (media::Payload::H264).
            au.push(video.sps.clone());
            au.push(video.pps.clone());
        }
        au.extend(nalus.into_iter().filter(|n| match h264::nal_type(n) {
            // The AUD only delimits Annex B streams; RTP and fMP4 do not want it.
            Some(NAL_AUD) => false,
            Some(NAL_SPS) if keyframe => *n != video.sps,
            Some(NAL_PPS) if keyframe => *n != video.pps,
            _ => true,
        }));
        if au.is_empty() {
            return;
        }
        let config = video.config.clone();
        if composition_time != 0 && !self.warned_bframes {
            self.warned_bframes = true;
            tracing::warn!(channel = %self.channel, peer = %self.peer,
                "encoder is using B-frames; WebRTC viewers will stutter. Fix: in OBS set Output > Encoder > B-frames to 0 (or x264 option bframes=0)");
            self.publisher.stream().update_health(|h| h.bframes = true);
            self.health_warning(
                "encoder uses B-frames: set B-frames to 0 for smooth WebRTC playback".into(),
            );
        }
        let dts = Self::monotonic(&mut self.last_video_dts, ms_to_ticks(dts_ms));
        let pts = dts + ms_to_ticks(i64::from(composition_time));
        self.publisher.write(Unit {
            flv_body: Default::default(),
            config,
            pts,
            dts,
            keyframe,
            payload: Payload::H264(au),
        });
    }

    pub(super) fn audio(&mut self, data: Bytes, rtmp_ts: u32) {
        let dts_ms = self.clock.extend(rtmp_ts);
        let tag = match flv::parse_audio_tag(&data) {
            Ok(tag) => tag,
            Err(e @ (CodecError::UnsupportedAudioFormat(_) | CodecError::EnhancedRtmp { .. })) => {
                if !self.warned_audio_codec {
                    self.warned_audio_codec = true;
                    tracing::warn!(channel = %self.channel, peer = %self.peer,
                        "audio ignored: {e}. Fix: in OBS set the audio encoder to AAC");
                    self.health_warning(format!("audio ignored: {e}"));
                }
                return;
            }
            Err(e) => {
                if let Some(n) = self.bad_audio.hit() {
                    tracing::warn!(channel = %self.channel, peer = %self.peer, count = n, "malformed audio tag dropped: {e}");
                }
                return;
            }
        };
        match tag.packet {
            AudioPacket::SequenceHeader(asc) => self.audio_sequence_header(asc),
            AudioPacket::Raw(frame) => {
                let Some(config) = self.audio.clone() else {
                    if !self.warned_no_asc {
                        self.warned_no_asc = true;
                        tracing::warn!(channel = %self.channel, peer = %self.peer,
                            "audio before the AAC sequence header; dropping it until one arrives");
                    }
                    return;
                };
                if frame.is_empty() {
                    return;
                }
                let dts = Self::monotonic(&mut self.last_audio_dts, ms_to_ticks(dts_ms));
                self.publisher.write(Unit {
                    flv_body: Default::default(),
                    config,
                    pts: dts,
                    dts,
                    keyframe: true,
                    payload: Payload::Aac(frame),
                });
            }
        }
    }

    fn audio_sequence_header(&mut self, asc_bytes: Bytes) {
        if let Some(TrackConfig::Aac(current)) = self.audio.as_deref() {
            if current.asc == asc_bytes {
                return;
            }
        }
        let asc: AudioSpecificConfig = match aac::parse_asc(&asc_bytes) {
            Ok(a) => a,
            Err(e) => {
                if let Some(n) = self.bad_audio.hit() {
                    tracing::warn!(channel = %self.channel, peer = %self.peer, count = n, "bad AAC sequence header ignored: {e}");
                }
                return;
            }
        };
        if asc.is_he_aac() && !self.warned_he_aac {
            self.warned_he_aac = true;
            tracing::warn!(channel = %self.channel, peer = %self.peer,
                "publisher sends {}; only AAC-LC is supported for WebRTC transcode, so WebRTC audio may fail. Fix: set the encoder's AAC profile to LC", asc.profile_name());
            self.health_warning(format!(
                "{} audio: only AAC-LC is supported for WebRTC",
                asc.profile_name()
            ));
        }
        let codec = format!(
            "{} {} Hz {}ch",
            asc.profile_name(),
            asc.sample_rate,
            asc.channels()
        );
        if let Some(n) = self.audio_changes.hit() {
            tracing::info!(channel = %self.channel, changes = n - 1, "audio: {codec}");
        }
        self.publisher.stream().update_health(|h| {
            h.audio_since.get_or_insert_with(std::time::Instant::now);
            h.audio_codec = Some(codec);
        });
        self.audio = Some(Arc::new(TrackConfig::Aac(AacConfig {
            asc: asc_bytes,
            object_type: asc.object_type,
            // The core rate: what an AAC-LC decoder outputs, HE-AAC included.
            sample_rate: asc.sample_rate,
            channels: asc.channels(),
        })));
    }

    /// Stores the publisher's `onMetaData` in the stream's health.
    pub(super) fn metadata(&mut self, m: &StreamMetadata) {
        let mut map = serde_json::Map::new();
        let mut put = |k: &str, v: Option<serde_json::Value>| {
            if let Some(v) = v {
                map.insert(k.to_string(), v);
            }
        };
        put("width", m.video_width.map(Into::into));
        put("height", m.video_height.map(Into::into));
        put("videocodecid", m.video_codec_id.map(Into::into));
        put("videodatarate", m.video_bitrate_kbps.map(Into::into));
        // f32 -> f64 would show 29.969999313354492; three decimals is what was meant.
        put(
            "framerate",
            m.video_frame_rate
                .map(|f| ((f64::from(f) * 1000.0).round() / 1000.0).into()),
        );
        put("audiocodecid", m.audio_codec_id.map(Into::into));
        put("audiodatarate", m.audio_bitrate_kbps.map(Into::into));
        put("audiosamplerate", m.audio_sample_rate.map(Into::into));
        put("audiochannels", m.audio_channels.map(Into::into));
        put("stereo", m.audio_is_stereo.map(Into::into));
        put(
            "encoder",
            m.encoder.as_ref().map(|e| {
                e.chars()
                    .take(MAX_METADATA_STRING)
                    .collect::<String>()
                    .into()
            }),
        );
        tracing::debug!(channel = %self.channel, metadata = ?map, "onMetaData");
        self.publisher.stream().update_health(|h| h.metadata = map);
    }
}

#[cfg(test)]
#[path = "to_hub_tests.rs"]
mod tests;
