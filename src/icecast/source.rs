//! One source connection: credentials and content type checked, then its
//! body read for as long as it lasts. Every frame goes two ways: its bytes
//! to the mount (plain listeners), its audio to the hub, where WebRTC,
//! LL-HLS and the recorder read it as they read any publish:
//!
//! - MP3: decoded once, encoded to AAC (always) and Opus (while WebRTC
//!   viewers watch), both written to the stream ([`Stream::set_both_audio_forms`]).
//! - ADTS: AAC-LC frames passed through; the WebRTC egress makes Opus.
//! - Ogg/Opus: Opus packets passed through; the HLS egress makes AAC.
//!
//! [`Stream::set_both_audio_forms`]: crate::hub::Stream::set_both_audio_forms

use super::demux::{Audio, Demuxer, Format, Frame, HeaderRole};
use super::head::{clean_text, mount_channel, Head};
use super::mount::{Mount, CHUNK_TICKS, MAX_CHUNK_BYTES};
use super::{
    clip, refuse, respond, Icecast, MAX_SOURCE_BYTES_PER_SEC, MAX_SOURCE_LEAD, READ_BUF,
    SOURCE_IDLE_TIMEOUT,
};
use crate::audio::Mp3Transcoder;
use crate::codec::aac::AdtsHeader;
use crate::hub::{Publisher, Source};
use crate::media::{AacConfig, OpusConfig, Payload, TrackConfig, Unit, CLOCK_RATE};
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

pub(super) async fn run(
    ic: &Arc<Icecast>,
    mut socket: TcpStream,
    peer: SocketAddr,
    head: Head,
    body: Vec<u8>,
    shutdown: CancellationToken,
) {
    let Some(channel) = mount_channel(head.path()) else {
        tracing::warn!(%peer, mount = %clip(head.path()), "icecast source refused: not a channel's mount");
        respond(
            &mut socket,
            "404 Not Found",
            &[],
            "no such mount: use /CHANNEL\n",
        )
        .await;
        return;
    };
    if let Err(r) = ic.authorize(&head, peer.ip(), &channel).await {
        tracing::warn!(%peer, %channel, "icecast source refused: {}", r.why());
        refuse(&mut socket, &r).await;
        return;
    }
    if head.header("transfer-encoding").is_some() {
        tracing::warn!(%peer, %channel, "icecast source refused: a chunked body");
        respond(
            &mut socket,
            "501 Not Implemented",
            &[],
            "send the stream as a plain body, not chunked\n",
        )
        .await;
        return;
    }
    let format = match head.header("content-type") {
        None => {
            // What Icecast does for 1.x-era clients that send no type.
            tracing::info!(%peer, %channel, "icecast source sent no Content-Type; taking it as MP3");
            Format::Mp3
        }
        Some(ct) => match Format::from_content_type(ct) {
            Some(f) => f,
            None => {
                tracing::warn!(%peer, %channel, content_type = %clip(ct), "icecast source refused: unsupported content type");
                respond(
                    &mut socket,
                    "415 Unsupported Media Type",
                    &[],
                    "send audio/mpeg (MP3), audio/aac (ADTS AAC-LC) or application/ogg (Opus)\n",
                )
                .await;
                return;
            }
        },
    };
    let who = crate::hooks::Admission {
        channel: &channel,
        protocol: "icecast",
        remote: peer.ip(),
    };
    if let Err(why) = ic.hooks.admit(who).await {
        crate::metrics::publish("icecast", false);
        respond(&mut socket, "403 Forbidden", &[], &format!("{why}\n")).await;
        return;
    }
    crate::metrics::publish("icecast", true);
    let ice = |k: &str| head.header(k).map(clean_text).filter(|v| !v.is_empty());
    let name = ice("ice-name");
    let description = ice("ice-description");
    apply_titles(ic, &channel, name.as_deref(), description.as_deref()).await;
    let continue_100 = head
        .header("expect")
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"));
    let answer: &[u8] = if continue_100 {
        b"HTTP/1.1 100 Continue\r\n\r\n"
    } else {
        b"HTTP/1.0 200 OK\r\nServer: onair\r\n\r\n"
    };
    if !matches!(
        tokio::time::timeout(super::HEAD_TIMEOUT, socket.write_all(answer)).await,
        Ok(Ok(()))
    ) {
        return;
    }

    let publisher = ic.hub.publish_from(&channel, Source::Icecast);
    let stream = publisher.stream().clone();
    // Authorized on these very credentials before this was reached.
    if let Some((_, key)) = head
        .header("authorization")
        .and_then(super::head::basic_auth)
    {
        stream.hold_key(crate::hub::keys::fingerprint(&key));
    }
    if format == Format::Mp3 {
        stream.set_both_audio_forms();
    }
    stream.update_health(|h| {
        h.audio_codec = Some(
            match format {
                Format::Mp3 => "MP3 (Icecast; AAC and Opus made once)",
                Format::Adts => "AAC (Icecast)",
                Format::OggOpus => "Opus in Ogg (Icecast)",
            }
            .into(),
        );
        for key in [
            "ice-name",
            "ice-description",
            "ice-genre",
            "ice-url",
            "ice-public",
            "ice-audio-info",
        ] {
            if let Some(v) = ice(key) {
                h.metadata.insert(key.into(), v.into());
            }
        }
    });
    let mount = ic.mounts.open(
        &channel,
        format,
        stream.id(),
        name.clone().unwrap_or_default(),
        description.unwrap_or_default(),
    );
    tracing::info!(%peer, %channel, ?format, method = %head.method, "icecast source started");
    let mut ingest = Ingest::new(publisher, mount.clone(), format);
    let why = ingest.run(&mut socket, body, &shutdown).await;
    ic.mounts.close(&mount);
    let h = ingest.publisher.stream().health();
    tracing::info!(%peer, %channel, audio_units = h.audio_units, bytes = ingest.bytes,
        dropped_frames = ingest.demux.dropped, undecodable_frames = ingest.corrupt,
        "icecast source ended: {why}");
    let _ = socket.shutdown().await;
}

/// `ice-name` and `ice-description` become the channel's title and
/// description, as the owner would set them on the dashboard, before the
/// publish starts (the recording takes the title it finds then).
async fn apply_titles(ic: &Icecast, channel: &str, name: Option<&str>, description: Option<&str>) {
    if name.is_none() && description.is_none() {
        return;
    }
    let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    let patch = crate::db::ChannelPatch {
        title: name.map(|t| cut(t, crate::http::TITLE_MAX)),
        description: description.map(|d| cut(d, crate::http::DESCRIPTION_MAX)),
        ..Default::default()
    };
    if let Err(e) = ic.db.update_channel(channel, &patch).await {
        tracing::warn!(
            channel,
            "icecast: could not set the title from ice-name: {e}"
        );
    }
}

/// Media time from sample counts, across changes of sample rate.
#[derive(Debug, Default)]
struct MediaClock {
    base: i64,
    rate: u32,
    samples: i64,
}

impl MediaClock {
    fn now(&self) -> i64 {
        if self.rate == 0 {
            return self.base;
        }
        self.base + self.samples * CLOCK_RATE / i64::from(self.rate)
    }

    fn advance(&mut self, samples: u32, rate: u32) {
        if rate != self.rate {
            self.base = self.now();
            self.rate = rate;
            self.samples = 0;
        }
        self.samples += i64::from(samples);
    }
}

struct Ingest {
    publisher: Publisher,
    mount: Arc<Mount>,
    demux: Demuxer,
    mp3: Option<Mp3Transcoder>,
    aac_config: Option<((u8, u8), Arc<TrackConfig>)>,
    opus_config: Option<(u8, Arc<TrackConfig>)>,
    clock: MediaClock,
    /// Listener bytes gathered for the next chunk, and their duration.
    pending: BytesMut,
    pending_ticks: i64,
    frames: Vec<Frame>,
    units: Vec<Unit>,
    bytes: u64,
    corrupt: u64,
}

impl Ingest {
    fn new(publisher: Publisher, mount: Arc<Mount>, format: Format) -> Ingest {
        Ingest {
            publisher,
            mount,
            demux: Demuxer::new(format),
            mp3: None,
            aac_config: None,
            opus_config: None,
            clock: MediaClock::default(),
            pending: BytesMut::with_capacity(MAX_CHUNK_BYTES),
            pending_ticks: 0,
            frames: Vec::new(),
            units: Vec::new(),
            bytes: 0,
            corrupt: 0,
        }
    }

    /// Reads the body until the source leaves, is replaced, stalls, or
    /// sends what cannot be decoded; says which.
    async fn run(
        &mut self,
        socket: &mut TcpStream,
        first: Vec<u8>,
        shutdown: &CancellationToken,
    ) -> String {
        let started = Instant::now();
        if let Err(e) = self.feed(&first) {
            return e;
        }
        let replaced = self.publisher.stream().closed().clone();
        let mut buf = vec![0u8; READ_BUF];
        loop {
            // Never run more than MAX_SOURCE_LEAD ahead of real time, in
            // media time or in bytes at the byte-rate cap.
            let media =
                Duration::from_micros((self.clock.now().max(0) as u64).saturating_mul(1000) / 90);
            let by_bytes =
                Duration::from_secs_f64(self.bytes as f64 / MAX_SOURCE_BYTES_PER_SEC as f64);
            let ahead = media
                .max(by_bytes)
                .saturating_sub(started.elapsed() + MAX_SOURCE_LEAD);
            if !ahead.is_zero() {
                if by_bytes > media {
                    crate::metrics::limit_hit("icecast_source_rate");
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return "server shutting down".into(),
                    _ = replaced.cancelled() => return "replaced by a newer source (or ended)".into(),
                    _ = tokio::time::sleep(ahead) => {}
                }
            }
            let n = tokio::select! {
                _ = shutdown.cancelled() => return "server shutting down".into(),
                _ = replaced.cancelled() => return "replaced by a newer source (or ended)".into(),
                r = tokio::time::timeout(SOURCE_IDLE_TIMEOUT, socket.read(&mut buf)) => match r {
                    Err(_) => {
                        crate::metrics::limit_hit("icecast_source_idle");
                        return format!("nothing received for {SOURCE_IDLE_TIMEOUT:?}");
                    }
                    Ok(Err(e)) => return format!("read failed: {e}"),
                    Ok(Ok(0)) => return "the source closed the connection".into(),
                    Ok(Ok(n)) => n,
                },
            };
            if let Err(e) = self.feed(buf.get(..n).unwrap_or_default()) {
                return e;
            }
        }
    }

    fn feed(&mut self, data: &[u8]) -> Result<(), String> {
        self.bytes += data.len() as u64;
        let mut frames = std::mem::take(&mut self.frames);
        let result = self.demux.push(data, &mut frames);
        for frame in frames.drain(..) {
            self.frame(frame);
        }
        self.frames = frames;
        if self.pending_ticks >= CHUNK_TICKS || self.pending.len() >= MAX_CHUNK_BYTES {
            self.flush();
        }
        result.map_err(|e| {
            crate::metrics::ingest_dropped("icecast_undecodable");
            format!("undecodable: {e}")
        })
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            self.mount.send(self.pending.split().freeze());
        }
        self.pending_ticks = 0;
    }

    fn frame(&mut self, frame: Frame) {
        match frame.header {
            HeaderRole::First | HeaderRole::More => {
                self.flush();
                self.mount
                    .header_page(frame.raw.clone(), frame.header == HeaderRole::First);
            }
            HeaderRole::None => {
                if self.pending.len() + frame.raw.len() > MAX_CHUNK_BYTES {
                    self.flush();
                }
                self.pending.extend_from_slice(&frame.raw);
            }
        }
        let before = self.clock.now();
        self.units.clear();
        match frame.audio {
            Audio::None => {}
            Audio::Mp3(header) => {
                let want_opus = self.publisher.stream().has_reader("webrtc");
                let pts = self.clock.now();
                let coder = match &mut self.mp3 {
                    Some(c) => Some(c),
                    None => match Mp3Transcoder::new() {
                        Ok(c) => Some(self.mp3.insert(c)),
                        Err(e) => {
                            tracing::error!("icecast: no MP3 decoder: {e}");
                            None
                        }
                    },
                };
                if let Some(c) = coder {
                    if let Err(e) = c.push(&frame.raw, &header, pts, want_opus, &mut self.units) {
                        self.corrupt += 1;
                        if self.corrupt.is_power_of_two() {
                            tracing::warn!(channel = %self.mount.channel, count = self.corrupt, "icecast: MP3 frame did not decode: {e}");
                        }
                    }
                }
                self.clock.advance(header.samples, header.sample_rate);
            }
            Audio::Aac { adts, frame: raw } => {
                let config = self.aac_config(&adts);
                let pts = self.clock.now();
                self.units.push(Unit {
                    flv_body: Default::default(),
                    config,
                    pts,
                    dts: pts,
                    keyframe: true,
                    payload: Payload::Aac(raw),
                });
                self.clock.advance(1024, adts.sample_rate);
            }
            Audio::Opus { channels, packets } => {
                let config = self.opus_config(channels);
                for (packet, samples) in packets {
                    let pts = self.clock.now();
                    self.units.push(Unit {
                        flv_body: Default::default(),
                        config: config.clone(),
                        pts,
                        dts: pts,
                        keyframe: true,
                        payload: Payload::Opus(packet),
                    });
                    self.clock.advance(samples, 48_000);
                }
            }
        }
        if frame.header == HeaderRole::None {
            self.pending_ticks += self.clock.now() - before;
        }
        for unit in self.units.drain(..) {
            self.publisher.write(unit);
        }
    }

    fn aac_config(&mut self, adts: &AdtsHeader) -> Arc<TrackConfig> {
        let key = (adts.sampling_index, adts.channel_config);
        if let Some((k, c)) = &self.aac_config {
            if *k == key {
                return c.clone();
            }
        }
        // AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1): object type 2
        // (LC), the ADTS sampling index and channel configuration.
        let asc = [
            (2 << 3) | (adts.sampling_index >> 1),
            ((adts.sampling_index & 1) << 7) | (adts.channel_config << 3),
        ];
        let c = Arc::new(TrackConfig::Aac(AacConfig {
            asc: Bytes::copy_from_slice(&asc),
            object_type: 2,
            sample_rate: adts.sample_rate,
            channels: adts.channel_config,
        }));
        self.aac_config = Some((key, c.clone()));
        c
    }

    fn opus_config(&mut self, channels: u8) -> Arc<TrackConfig> {
        if let Some((k, c)) = &self.opus_config {
            if *k == channels {
                return c.clone();
            }
        }
        let c = Arc::new(TrackConfig::Opus(OpusConfig { channels }));
        self.opus_config = Some((channels, c.clone()));
        c
    }
}
