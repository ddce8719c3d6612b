//! A channel's media on its way to the shards that serve its viewers. It is
//! made once, by the channel's egress task (hub media) or by the driver
//! that holds its WHIP publisher, numbered once in the channel's sequence,
//! and handed to every shard with viewers of the channel as the same
//! `Arc`: shards never packetize, and never copy a packet for another.

use super::egress;
use super::sdp::VideoCodec;
use super::whip::Continuity;
use super::{Arrived, Media};
use crate::hub::Hub;
use crate::media::{Gop, MediaKind};
use rtc::rtp::packet::Packet;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Every channel that has WebRTC viewers on some shard, and what WHIP
/// publishers send.
pub(crate) struct Feeds {
    hub: Arc<Hub>,
    tracker: TaskTracker,
    /// The server's runtime, where egress tasks run: a shard subscribes
    /// from its own thread, whose runtime has no I/O and dies with it.
    runtime: tokio::runtime::Handle,
    channels: Mutex<HashMap<Arc<str>, Arc<Feed>>>,
    /// The video codec of each channel's WHIP publisher (absent: H.264,
    /// which the hub's egress makes).
    codecs: Mutex<HashMap<Arc<str>, VideoCodec>>,
    /// The inbox of the driver that holds WHIP publishers: where shards'
    /// keyframe requests go.
    ingest: mpsc::Sender<Media>,
    next_id: AtomicU64,
}

/// One channel's feed.
pub(crate) struct Feed {
    channel: Arc<str>,
    state: Mutex<FeedState>,
}

struct FeedState {
    subscribers: Vec<Subscriber>,
    /// Video and audio: every source's RTP mapped to the channel's
    /// numbering. Outlives publishers so reconnects stay continuous; goes
    /// with the channel's last subscriber.
    forward: [Continuity; 2],
    /// The latest live state and clock anchor, in that order: what a
    /// shard that subscribes later is told first.
    latest: [Option<Media>; 2],
    /// The video batches since the latest keyframe, which a shard that
    /// subscribes later starts its viewers from: without them its first
    /// viewer would wait for the next keyframe, up to a whole GOP (or,
    /// from a browser, for a PLI to be answered). Shared batches, never
    /// copies, weighed in packets, of one source: `gop_source`.
    gop: Gop<Media>,
    gop_source: u64,
    /// The H.264 profile the source sends, which new viewers' answers
    /// name.
    profile: Option<u8>,
    /// Stops the channel's egress task, with the last subscriber (the task
    /// holds the feed, so the feed cannot stop it by being dropped).
    egress: CancellationToken,
}

/// About 2 s of 6 Mbit/s video. A publisher with longer or heavier GOPs
/// simply makes new viewers wait for the next keyframe.
pub(crate) const GOP_MAX_PACKETS: usize = 1500;

struct Subscriber {
    id: u64,
    tx: mpsc::Sender<Media>,
    /// It missed a video batch (its inbox was full): P-frames are useless
    /// to it until the next keyframe.
    video_broken: bool,
}

/// A shard's interest in a channel, for as long as it has viewers of it.
/// Dropping it (the channel's last viewer left, or the shard died)
/// unsubscribes.
pub(crate) struct Subscription {
    feeds: Arc<Feeds>,
    channel: Arc<str>,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.feeds.unsubscribe(&self.channel, self.id);
    }
}

/// How a batch's RTP is put into the channel's numbering.
#[derive(Clone, Copy)]
enum Mapping {
    /// Hub media: the egress keeps timestamps continuous itself.
    Sequence,
    /// A WHIP publisher's RTP, on its own clock of this rate.
    Full(u32),
}

impl Feeds {
    pub fn new(hub: Arc<Hub>, tracker: TaskTracker, ingest: mpsc::Sender<Media>) -> Arc<Feeds> {
        Arc::new(Feeds {
            hub,
            tracker,
            runtime: tokio::runtime::Handle::current(),
            channels: Mutex::default(),
            codecs: Mutex::default(),
            ingest,
            next_id: AtomicU64::new(0),
        })
    }

    /// `tx` gets the channel's media from now on; the first subscriber
    /// starts the channel's egress. What came before, which the subscriber
    /// handles first: the live state, the clock anchor and the current GOP.
    pub fn subscribe(
        self: &Arc<Self>,
        channel: &Arc<str>,
        tx: mpsc::Sender<Media>,
    ) -> (Subscription, Vec<Media>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // Under the map's lock throughout, so a last subscriber leaving at
        // the same moment cannot retire the feed this one joins.
        let mut channels = lock(&self.channels);
        let feed = channels
            .entry(channel.clone())
            .or_insert_with(|| {
                let cancel = CancellationToken::new();
                let feed = Arc::new(Feed {
                    channel: channel.clone(),
                    state: Mutex::new(FeedState {
                        subscribers: Vec::new(),
                        forward: Default::default(),
                        latest: [None, None],
                        gop: Gop::new(GOP_MAX_PACKETS, GOP_MAX_PACKETS),
                        gop_source: 0,
                        profile: None,
                        egress: cancel.clone(),
                    }),
                });
                self.tracker.spawn_on(
                    egress::run(channel.clone(), self.hub.clone(), feed.clone(), cancel),
                    &self.runtime,
                );
                feed
            })
            .clone();
        let mut s = feed.lock();
        let backlog = s.latest.iter().flatten().chain(s.gop.items());
        let backlog = backlog.cloned().collect();
        s.subscribers.push(Subscriber {
            id,
            tx,
            video_broken: false,
        });
        drop(s);
        drop(channels);
        let sub = Subscription {
            feeds: self.clone(),
            channel: channel.clone(),
            id,
        };
        (sub, backlog)
    }

    fn unsubscribe(&self, channel: &Arc<str>, id: u64) {
        let mut channels = lock(&self.channels);
        let Some(feed) = channels.get(channel) else {
            return;
        };
        let empty = {
            let mut s = feed.lock();
            s.subscribers.retain(|s| s.id != id);
            s.subscribers.is_empty()
        };
        if empty {
            feed.lock().egress.cancel();
            channels.remove(channel);
        }
    }

    /// One RTP packet from `channel`'s WHIP publisher, to every shard with
    /// viewers of it. `at` is when its datagram was read.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        channel: &Arc<str>,
        source: u64,
        kind: MediaKind,
        codec: VideoCodec,
        keyframe: bool,
        pkt: Packet,
        at: Option<Instant>,
    ) {
        let Some(feed) = lock(&self.channels).get(channel).cloned() else {
            return;
        };
        let clock = match kind {
            MediaKind::Video => 90_000,
            MediaKind::Audio => 48_000,
        };
        feed.deliver(
            source,
            kind,
            codec,
            keyframe,
            vec![pkt],
            Mapping::Full(clock),
            at.map(Arrived::Datagram),
        );
    }

    /// The channel's WHIP publisher sends `codec` video (`None`: it left).
    pub fn set_codec(&self, channel: &Arc<str>, codec: Option<VideoCodec>) {
        let mut codecs = lock(&self.codecs);
        match codec {
            Some(c) => codecs.insert(channel.clone(), c),
            None => codecs.remove(channel),
        };
    }

    /// Forgets every WHIP publisher's codec (their driver started anew).
    pub fn clear_codecs(&self) {
        lock(&self.codecs).clear();
    }

    /// The video codec `channel`'s source sends.
    pub fn codec(&self, channel: &str) -> VideoCodec {
        lock(&self.codecs)
            .get(channel)
            .copied()
            .unwrap_or(VideoCodec::H264)
    }

    /// The H.264 profile of the channel's source, if known.
    pub fn profile(&self, channel: &str) -> Option<u8> {
        let feed = lock(&self.channels).get(channel).cloned()?;
        let s = feed.lock();
        s.profile
    }

    /// Asks `channel`'s WHIP publisher, if it has one, for a keyframe. The
    /// driver that holds it keeps to one request per interval.
    pub fn want_keyframe(&self, channel: &Arc<str>) {
        if lock(&self.codecs).contains_key(channel) {
            let _ = self.ingest.try_send(Media::WantKeyframe {
                channel: channel.clone(),
            });
        }
    }
}

impl Feed {
    fn lock(&self) -> MutexGuard<'_, FeedState> {
        lock(&self.state)
    }

    /// An event that must not be lost to a full inbox (live state): waits
    /// for room at each subscriber in turn.
    pub async fn send(&self, m: Media) {
        let to: Vec<mpsc::Sender<Media>> = {
            let mut s = self.lock();
            if let Media::Live { live, source, .. } = m {
                // A new publish is anchored anew. Its GOP is its own: an
                // ended publish has none, and a new source's shards must not
                // start on the last one's pictures. (A WHIP publisher's
                // packets can beat its live event: its own GOP stays.)
                s.latest = [Some(m.clone()), None];
                if !live || source != s.gop_source {
                    s.gop.clear();
                }
            }
            s.subscribers.iter().map(|s| s.tx.clone()).collect()
        };
        for tx in to {
            let _ = tx.send(m.clone()).await;
        }
    }

    /// An event worth no wait (a clock anchor).
    pub fn notify(&self, m: Media) {
        let mut s = self.lock();
        if let Media::Anchor { .. } = m {
            s.latest[1] = Some(m.clone());
        }
        for s in &s.subscribers {
            let _ = s.tx.try_send(m.clone());
        }
    }

    /// The source's H.264 profile (`profile_idc`) changed.
    pub fn set_profile(&self, profile: u8) {
        self.lock().profile = Some(profile);
    }

    /// One access unit's (or audio frame's) packets from the hub, taken
    /// from it `at`. False when no shard took them (all saturated): the
    /// caller numbers the next ones as these, so no viewer sees a gap.
    pub fn media(
        &self,
        source: u64,
        kind: MediaKind,
        keyframe: bool,
        packets: Vec<Packet>,
        at: Instant,
    ) -> bool {
        self.deliver(
            source,
            kind,
            VideoCodec::H264,
            keyframe,
            packets,
            Mapping::Sequence,
            Some(Arrived::Unit(at)),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn deliver(
        &self,
        source: u64,
        kind: MediaKind,
        codec: VideoCodec,
        keyframe: bool,
        mut packets: Vec<Packet>,
        mapping: Mapping,
        at: Option<Arrived>,
    ) -> bool {
        let mut s = self.lock();
        if s.subscribers.is_empty() {
            return true;
        }
        let slot = &mut s.forward[usize::from(kind == MediaKind::Audio)];
        for p in &mut packets {
            match mapping {
                Mapping::Sequence => slot.map_sequence(source, p),
                Mapping::Full(clock) => slot.map(source, clock, p),
            }
        }
        let count = packets.len();
        let batch = Media::Batch {
            channel: self.channel.clone(),
            source,
            kind,
            codec,
            keyframe,
            packets: packets.into(),
            at,
        };
        let video = kind == MediaKind::Video;
        let mut taken = false;
        for sub in &mut s.subscribers {
            if video && sub.video_broken && !keyframe {
                continue;
            }
            let ok = sub.tx.try_send(batch.clone()).is_ok();
            if video {
                sub.video_broken = !ok;
            }
            taken |= ok;
        }
        if video {
            if source != s.gop_source {
                s.gop.clear();
                s.gop_source = source;
            }
            // A batch no shard had room for breaks the GOP for all.
            if taken {
                s.gop.push(keyframe, count, [batch]);
            } else {
                s.gop.clear();
            }
        }
        taken
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn rtp(seq: u16, payload: &'static [u8]) -> Packet {
        let mut p = Packet::default();
        p.header.sequence_number = seq;
        p.header.timestamp = u32::from(seq) * 3000;
        p.payload = Bytes::from_static(payload);
        p
    }

    fn batch(m: Media) -> (Arc<[Packet]>, bool) {
        match m {
            Media::Batch {
                packets, keyframe, ..
            } => (packets, keyframe),
            _ => panic!("not a batch"),
        }
    }

    #[tokio::test]
    async fn shards_share_each_packet_and_a_full_one_waits_for_a_keyframe() {
        let (ingest, _) = mpsc::channel(1);
        let tracker = TaskTracker::new();
        let feeds = Feeds::new(Hub::new(), tracker.clone(), ingest);
        let ch: Arc<str> = "c".into();
        let (a_tx, mut a) = mpsc::channel(8);
        let (b_tx, mut b) = mpsc::channel(1);
        let (sa, _) = feeds.subscribe(&ch, a_tx);
        let (sb, _) = feeds.subscribe(&ch, b_tx);
        let send = |seq, key| {
            feeds.forward(
                &ch,
                7,
                MediaKind::Video,
                VideoCodec::Vp8,
                key,
                rtp(seq, b"x"),
                None,
            )
        };
        send(100, true);
        let (pa, _) = batch(a.try_recv().unwrap());
        let (pb, _) = batch(b.try_recv().unwrap());
        assert!(Arc::ptr_eq(&pa, &pb), "one copy for every shard");
        let first = pa[0].header.sequence_number;
        // b's inbox (one deep) fills; a still gets everything.
        send(101, false);
        send(102, false);
        send(103, false);
        let seqs: Vec<u16> = std::iter::from_fn(|| a.try_recv().ok())
            .map(|m| batch(m).0[0].header.sequence_number)
            .collect();
        assert_eq!(seqs, [1, 2, 3].map(|i| first.wrapping_add(i)));
        // b missed 102: 103 is no use to it, the next keyframe is.
        assert_eq!(
            batch(b.try_recv().unwrap()).0[0].header.sequence_number,
            first.wrapping_add(1)
        );
        assert!(b.try_recv().is_err());
        send(104, false);
        assert!(b.try_recv().is_err(), "a P-frame after a gap");
        send(105, true);
        let (pb, key) = batch(b.try_recv().unwrap());
        assert!(key);
        assert_eq!(pb[0].header.sequence_number, first.wrapping_add(5));
        assert_eq!(std::iter::from_fn(|| a.try_recv().ok()).count(), 2);
        // With its last subscriber gone the feed goes, numbering and all,
        // and its egress task ends.
        assert_eq!(tracker.len(), 1, "one egress for the channel");
        drop((sa, sb));
        assert!(lock(&feeds.channels).is_empty());
        tracker.close();
        tokio::time::timeout(std::time::Duration::from_secs(5), tracker.wait())
            .await
            .expect("the egress stopped with the last subscriber");
        send(106, true);
        assert!(a.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_late_shard_learns_the_live_state_and_anchor_first() {
        let (ingest, _) = mpsc::channel(1);
        let feeds = Feeds::new(Hub::new(), TaskTracker::new(), ingest);
        let ch: Arc<str> = "c".into();
        let (a_tx, _a) = mpsc::channel(8);
        let _sa = feeds.subscribe(&ch, a_tx).0;
        let feed = lock(&feeds.channels).get(&ch).cloned().unwrap();
        let live = |source| Media::Live {
            channel: ch.clone(),
            source,
            live: true,
        };
        let anchor = Media::Anchor {
            channel: ch.clone(),
            wall: Instant::now(),
            video_ts: 1,
            audio_ts: 2,
        };
        feed.send(live(1)).await;
        feed.notify(anchor.clone());
        feed.set_profile(100);
        let (b_tx, _b) = mpsc::channel(8);
        let (_sb, backlog) = feeds.subscribe(&ch, b_tx);
        let told: Vec<&str> = backlog
            .into_iter()
            .map(|m| match m {
                Media::Live { source: 1, .. } => "live",
                Media::Anchor { video_ts: 1, .. } => "anchor",
                _ => "other",
            })
            .collect();
        assert_eq!(told, ["live", "anchor"]);
        assert_eq!(feeds.profile(&ch), Some(100), "for new viewers' answers");
        // A new publish's anchor is not the last one's.
        feed.send(live(2)).await;
        let (c_tx, _c) = mpsc::channel(8);
        let (_sc, backlog) = feeds.subscribe(&ch, c_tx);
        assert_eq!(backlog.len(), 1, "live, no stale anchor");
    }

    /// What a late shard's backlog holds after the live state: the video
    /// batches since the latest keyframe (by sequence number).
    fn gop_of(feeds: &Arc<Feeds>, ch: &Arc<str>) -> Vec<u16> {
        let (tx, _rx) = mpsc::channel(1);
        let (_s, backlog) = feeds.subscribe(ch, tx);
        backlog
            .into_iter()
            .filter(|m| matches!(m, Media::Batch { .. }))
            .map(|m| batch(m).0[0].header.sequence_number)
            .collect()
    }

    #[tokio::test]
    async fn a_late_shard_starts_from_the_gop_the_others_have() {
        let (ingest, _) = mpsc::channel(1);
        let feeds = Feeds::new(Hub::new(), TaskTracker::new(), ingest);
        let ch: Arc<str> = "c".into();
        let (a_tx, mut a) = mpsc::channel(4096);
        let _sa = feeds.subscribe(&ch, a_tx).0;
        let send = |source, seq, key, kind| {
            feeds.forward(
                &ch,
                source,
                kind,
                VideoCodec::Vp8,
                key,
                rtp(seq, b"x"),
                None,
            )
        };
        let video = MediaKind::Video;
        send(1, 10, false, video);
        assert!(gop_of(&feeds, &ch).is_empty(), "no keyframe yet");
        send(1, 11, true, video);
        send(1, 12, false, video);
        send(1, 13, true, MediaKind::Audio);
        let first = batch(a.try_recv().unwrap()).0[0].header.sequence_number;
        let seqs = |n: u16| (1..n).map(|i| first.wrapping_add(i)).collect::<Vec<_>>();
        assert_eq!(
            gop_of(&feeds, &ch),
            seqs(3),
            "from the keyframe on, video only"
        );
        // The late shard's batches are the ones the others got.
        let (tx, _rx) = mpsc::channel(1);
        let shared = batch(feeds.subscribe(&ch, tx).1.into_iter().next().unwrap()).0;
        let got = batch(a.try_recv().unwrap()).0;
        assert!(Arc::ptr_eq(&shared, &got), "shared, not copied");
        // The next keyframe starts it over.
        send(1, 14, true, video);
        assert_eq!(gop_of(&feeds, &ch).len(), 1);
        // A new source's P-frames are no continuation of the old GOP.
        send(2, 20, false, video);
        assert!(gop_of(&feeds, &ch).is_empty(), "a new source");
        // A GOP past the cap is not kept: new shards wait for a keyframe.
        send(2, 21, true, video);
        for i in 0..GOP_MAX_PACKETS as u16 {
            send(2, 22 + i, false, video);
        }
        assert!(gop_of(&feeds, &ch).is_empty(), "over the cap");
        // A live event keeps its own source's GOP (its packets may come
        // first), and drops another's; an ended publish has none.
        let feed = lock(&feeds.channels).get(&ch).cloned().unwrap();
        let live = |source, live| Media::Live {
            channel: ch.clone(),
            source,
            live,
        };
        send(2, 9000, true, video);
        feed.send(live(2, true)).await;
        assert_eq!(gop_of(&feeds, &ch).len(), 1, "its own source's");
        feed.send(live(3, true)).await;
        assert!(gop_of(&feeds, &ch).is_empty(), "a new source");
        send(3, 9100, true, video);
        assert_eq!(gop_of(&feeds, &ch).len(), 1);
        feed.send(live(3, false)).await;
        assert!(gop_of(&feeds, &ch).is_empty(), "offline");
    }
}
