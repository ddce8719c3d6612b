//! One task per channel with WebRTC viewers: reads the hub once, makes the
//! RTP form once (H.264 packetized, AAC transcoded to Opus), and hands each
//! access unit's packets to the channel's feed for the shards' fan-out. It follows the channel
//! across publisher reconnects, keeping sequence numbers and timestamps
//! continuous so viewers' sessions survive.

use super::feed::Feed;
use super::packetize::{self, Sequencer};
use super::Media;
use crate::audio::AacToOpus;
use crate::hub::Hub;
use crate::media::{MediaKind, Payload, TrackConfig, CLOCK_RATE};
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

const OPUS_RATE: i64 = 48_000;

/// Maps a publish's unit times onto the viewers' RTP clocks. Each new
/// publish (an epoch) continues where the last one stopped, advanced by the
/// wall time in between, so timestamps never jump backwards.
#[derive(Default)]
struct Clock {
    epoch: Option<Epoch>,
    last_video: Option<(u32, Instant)>,
    last_audio: Option<(u32, Instant)>,
}

struct Epoch {
    pts0: i64,
    /// When the first unit of the publish arrived: the wall-clock instant
    /// the media time `pts0` is pinned to, for both tracks alike.
    wall: Instant,
    announced: bool,
    video_base: u32,
    audio_base: u32,
}

impl Clock {
    fn new_publish(&mut self) {
        self.epoch = None;
    }

    /// Pins the publish's clock on its first unit and returns the anchor to
    /// announce, once per publish.
    fn take_anchor_after(&mut self, pts: i64, channel: &Arc<str>) -> Option<Media> {
        self.epoch(pts);
        self.take_anchor(channel)
    }

    /// The anchor to announce, once per publish.
    fn take_anchor(&mut self, channel: &Arc<str>) -> Option<Media> {
        let e = self.epoch.as_mut().filter(|e| !e.announced)?;
        e.announced = true;
        Some(Media::Anchor {
            channel: channel.clone(),
            wall: e.wall,
            video_ts: e.video_base,
            audio_ts: e.audio_base,
        })
    }

    /// The epoch for this publish, and whether it was made just now.
    fn epoch(&mut self, pts: i64) -> &Epoch {
        let (lv, la) = (self.last_video, self.last_audio);
        self.epoch.get_or_insert_with(|| {
            let cont = |last: Option<(u32, Instant)>, rate: i64| match last {
                Some((ts, at)) => {
                    ts.wrapping_add((at.elapsed().as_millis() as i64 * rate / 1000) as u32 + 1)
                }
                None => rand::random::<u32>(),
            };
            Epoch {
                pts0: pts,
                video_base: cont(lv, CLOCK_RATE),
                audio_base: cont(la, OPUS_RATE),
                wall: Instant::now(),
                announced: false,
            }
        })
    }

    fn video(&mut self, pts: i64) -> u32 {
        let e = self.epoch(pts);
        let ts = e.video_base.wrapping_add((pts - e.pts0) as u32);
        self.last_video = Some((ts, Instant::now()));
        ts
    }

    fn audio(&mut self, pts_90k: i64, pts_48k: i64) -> u32 {
        let e = self.epoch(pts_90k);
        let ts = e
            .audio_base
            .wrapping_add((pts_48k - e.pts0 * OPUS_RATE / CLOCK_RATE) as u32);
        self.last_audio = Some((ts, Instant::now()));
        ts
    }
}

struct Transcode {
    config: Arc<TrackConfig>,
    coder: AacToOpus,
}

/// A channel's egress, restarted after a pause if it panics (on media from a
/// hostile publisher, say): that channel's viewers miss a moment, nobody
/// else notices.
pub async fn run(channel: Arc<str>, hub: Arc<Hub>, out: Arc<Feed>, cancel: CancellationToken) {
    loop {
        let serve = serve(channel.clone(), hub.clone(), out.clone(), cancel.clone());
        // Cancelled from outside as well as at its own waits: a live event
        // waiting for room in a shard's full inbox ends with the feed too.
        let served = tokio::select! {
            _ = cancel.cancelled() => return,
            s = crate::isolate::task("webrtc_egress", &channel, serve) => s,
        };
        if served.is_some() {
            return;
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(RESTART_PAUSE) => {}
        }
    }
}

/// Pause before a channel's egress restarts after a panic.
const RESTART_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);

async fn serve(channel: Arc<str>, hub: Arc<Hub>, out: Arc<Feed>, cancel: CancellationToken) {
    let mut watch = hub.watch(&channel);
    let mut video_seq = Sequencer::new(rand::random());
    let mut audio_seq = Sequencer::new(rand::random());
    let mut clock = Clock::default();
    let mut packets = Vec::new();
    loop {
        let stream = loop {
            if let Some(s) = watch.borrow_and_update().clone() {
                if !s.is_closed() {
                    break s;
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = watch.changed() => if r.is_err() { return },
            }
        };
        if stream.source() == crate::hub::Source::Whip {
            // The driver forwards a WHIP publisher's RTP itself; here only
            // the channel's live state is followed.
            let _ = out
                .send(Media::Live {
                    channel: channel.clone(),
                    source: stream.id(),
                    live: true,
                })
                .await;
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = stream.closed().cancelled() => {}
            }
            let still_live = watch.borrow().as_ref().is_some_and(|s| !s.is_closed());
            if !still_live {
                let _ = out
                    .send(Media::Live {
                        channel: channel.clone(),
                        source: stream.id(),
                        live: false,
                    })
                    .await;
            }
            continue;
        }
        let mut reader = stream.subscribe("webrtc");
        clock.new_publish();
        // Live state changes are few and must not be lost to a full queue
        // (media may be; the next keyframe repairs that).
        let _ = out
            .send(Media::Live {
                channel: channel.clone(),
                source: stream.id(),
                live: true,
            })
            .await;
        let mut transcode: Option<Transcode> = None;
        let mut profile = None;
        // After a dropped video batch, P-frames are useless until the next
        // keyframe.
        let mut video_broken = false;
        let mut audio_error_logged = false;
        loop {
            let unit = tokio::select! {
                _ = cancel.cancelled() => return,
                u = reader.recv() => u,
            };
            let Some(unit) = unit else { break };
            let taken = Instant::now();
            if let Some(anchor) = clock.take_anchor_after(unit.pts, &channel) {
                out.notify(anchor);
            }
            match &unit.payload {
                Payload::H264(nalus) => {
                    if let TrackConfig::H264(c) = unit.config.as_ref() {
                        if profile != Some(c.profile_idc) {
                            profile = Some(c.profile_idc);
                            out.set_profile(c.profile_idc);
                        }
                    }
                    if video_broken && !unit.keyframe {
                        continue;
                    }
                    let ts = clock.video(unit.pts);
                    packets.clear();
                    packetize::h264(nalus, ts, &mut video_seq, &mut packets);
                    if packets.is_empty() {
                        continue;
                    }
                    let count = packets.len();
                    let batch = std::mem::take(&mut packets);
                    video_broken =
                        !out.media(stream.id(), MediaKind::Video, unit.keyframe, batch, taken);
                    if video_broken {
                        video_seq.rewind(count);
                        crate::metrics::add_reader_drops(1);
                    }
                }
                // The publisher writes Opus as well: that is ours.
                Payload::Aac(_) if stream.both_audio_forms() => {}
                Payload::Aac(frame) => {
                    let TrackConfig::Aac(cfg) = unit.config.as_ref() else {
                        continue;
                    };
                    let stale = transcode
                        .as_ref()
                        .is_none_or(|t| !Arc::ptr_eq(&t.config, &unit.config));
                    if stale {
                        match AacToOpus::new(cfg) {
                            Ok(coder) => {
                                transcode = Some(Transcode {
                                    config: unit.config.clone(),
                                    coder,
                                })
                            }
                            Err(e) => {
                                if !audio_error_logged {
                                    tracing::warn!(channel = %channel, "WebRTC viewers get no audio: {e}");
                                    audio_error_logged = true;
                                }
                                transcode = None;
                                continue;
                            }
                        }
                    }
                    let Some(t) = transcode.as_mut() else {
                        continue;
                    };
                    let frames = match t.coder.push(frame, unit.pts) {
                        Ok(f) => f,
                        Err(e) => {
                            tracing::debug!(channel = %channel, "skipping an AAC frame: {e}");
                            continue;
                        }
                    };
                    let lookahead = t.coder.lookahead();
                    for f in frames {
                        let ts = clock.audio(unit.pts, f.pts_48k - lookahead);
                        let pkt = packetize::opus(f.data, ts, &mut audio_seq);
                        if !out.media(stream.id(), MediaKind::Audio, true, vec![pkt], taken) {
                            audio_seq.rewind(1);
                        }
                    }
                }
                Payload::Opus(frame) => {
                    let pts_48k = unit.pts * OPUS_RATE / CLOCK_RATE;
                    let ts = clock.audio(unit.pts, pts_48k);
                    let pkt = packetize::opus(frame.clone(), ts, &mut audio_seq);
                    if !out.media(stream.id(), MediaKind::Audio, true, vec![pkt], taken) {
                        audio_seq.rewind(1);
                    }
                }
            }
        }
        let still_live = watch.borrow().as_ref().is_some_and(|s| !s.is_closed());
        if !still_live {
            let _ = out
                .send(Media::Live {
                    channel: channel.clone(),
                    source: stream.id(),
                    live: false,
                })
                .await;
        }
    }
}
