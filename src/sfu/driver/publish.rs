//! The driver's WHIP side: publishers, keyframe requests, and forwarding
//! their RTP to viewers.

use super::*;

/// A viewer waiting this long for a keyframe has its source asked again.
const KEYFRAME_CHASE_AFTER: Duration = Duration::from_millis(500);
/// A viewer waiting this long for a picture is counted as overdue.
pub(super) const PICTURE_OVERDUE: Duration = Duration::from_secs(2);

impl Driver {
    pub(super) fn add_publisher(
        &mut self,
        channel: Arc<str>,
        key: [u8; 32],
        offer: String,
    ) -> Result<WhepSession, SfuError> {
        if self.peers.len() >= MAX_PEERS {
            return Err(SfuError::Busy);
        }
        self.next_id += 1;
        let id = self.next_id;
        let peer::PublisherAnswer {
            answer,
            video,
            audio_pt,
        } = isolate::catch(PEER, &format_args!("WHIP offer for {channel}"), || {
            peer::answer_publisher(
                id,
                channel.clone(),
                offer,
                &self.candidates,
                &self.certificate,
                Instant::now(),
            )
        })
        .ok_or_else(|| SfuError::BadOffer("the offer could not be read".into()))??;
        // A new publisher with a valid key replaces the current one, RTMP
        // or WHIP: encoders that reconnect are never locked out.
        if let Some(old) = self.publishers.remove(&channel) {
            self.remove_peer(old, "replaced by a new WHIP publisher");
        }
        let publisher = self.hub.publish_from(&channel, crate::hub::Source::Whip);
        publisher.stream().hold_key(key);
        let mut peer = answer.peer;
        let ingest = Ingest::new(publisher, video, audio_pt);
        self.shared
            .feeds
            .set_codec(&channel, Some(ingest.video_codec));
        peer.ingest = Some(Box::new(ingest));
        let session = self.index_peer(id, &mut peer);
        self.peers.insert(id, Box::new(peer));
        self.publishers.insert(channel.clone(), id);
        self.service(id, None);
        tracing::info!(channel = %channel, session, "WHIP publisher joined");
        Ok(WhepSession {
            session,
            sdp: answer.sdp,
        })
    }
    /// Viewers still waiting for a picture: a WHIP source is asked for a
    /// keyframe again (at most every [`whip::PLI_INTERVAL`] per stream),
    /// since a request can be lost or go out before the publisher is
    /// ready, and a browser sends keyframes only when asked. Those waiting
    /// longer than [`PICTURE_OVERDUE`] are counted for `/metrics`.
    pub(super) fn chase_pictures(&mut self) {
        let now = Instant::now();
        let mut overdue = 0;
        let mut ask = Vec::new();
        for (name, ch) in &self.channels {
            let waiting = ch
                .viewers
                .iter()
                .filter_map(|pid| self.peers.get(pid))
                .filter(|p| p.waiting_longer_than(KEYFRAME_CHASE_AFTER, now))
                .map(|p| p.waiting_longer_than(PICTURE_OVERDUE, now))
                .fold(None, |n: Option<usize>, late| {
                    Some(n.unwrap_or(0) + usize::from(late))
                });
            if let Some(late) = waiting {
                overdue += late;
                ask.push(name.clone());
            }
        }
        crate::metrics::set_viewers_waiting_for_picture(self.shared.index, overdue);
        for channel in ask {
            self.request_keyframe(&channel);
        }
    }

    /// WHIP publishers whose hub stream was closed under them, for those
    /// that send nothing more after it (their media stops at the first
    /// packet after the close; see `service_peer`).
    pub(super) fn end_closed_publishers(&mut self) {
        let ended: Vec<PeerId> = self
            .publishers
            .values()
            .copied()
            .filter(|pid| {
                self.peers
                    .get(pid)
                    .and_then(|p| p.ingest.as_ref())
                    .is_some_and(|i| i.publisher.stream().is_closed())
            })
            .collect();
        for pid in ended {
            self.remove_peer(pid, "its publish was ended");
        }
    }

    /// The video codec the channel's source sends: its WHIP publisher's, or
    /// H.264 (RTMP, or nobody yet).
    pub(super) fn source_codec(&self, channel: &Arc<str>) -> VideoCodec {
        self.shared.feeds.codec(channel)
    }
    /// Asks the channel's WHIP publisher for a keyframe, at most once per
    /// [`whip::PLI_INTERVAL`]; from a fan-out shard, through the ingest.
    pub(super) fn request_keyframe(&mut self, channel: &Arc<str>) {
        let Some(pid) = self.publishers.get(channel).copied() else {
            // A fan-out shard asks the ingest, which holds WHIP publishers;
            // the ingest asking would only post the request back to itself.
            if !self.is_ingest() {
                self.shared.feeds.want_keyframe(channel);
            }
            return;
        };
        let Some(p) = self.peers.get_mut(&pid) else {
            return;
        };
        let Some(ingest) = p.ingest.as_mut() else {
            return;
        };
        let now = Instant::now();
        if ingest
            .last_pli
            .is_some_and(|t| now.duration_since(t) < whip::PLI_INTERVAL)
        {
            return;
        }
        let (Some(rid), Some(ssrc)) = (ingest.video_receiver, ingest.video_ssrc) else {
            return;
        };
        ingest.last_pli = Some(now);
        ingest.wants_keyframe = false;
        let sent = isolate::catch(PEER, &pid, || {
            if let Some(mut r) = p.pc().and_then(|pc| pc.rtp_receiver(rid)) {
                let pli =
                    rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication {
                        sender_ssrc: 0,
                        media_ssrc: ssrc,
                    };
                let _ = r.write_rtcp(now, vec![Box::new(pli)]);
            }
        });
        if sent.is_none() {
            return self.forget(pid, "panicked sending a PLI");
        }
        crate::metrics::pli_sent();
        self.service(pid, None);
    }
    /// Forwards one packet from a channel's WHIP publisher to the shards
    /// with its viewers (see [`super::super::feed`]).
    pub(super) fn forward_rtp(
        &mut self,
        channel: &Arc<str>,
        source: u64,
        kind: MediaKind,
        keyframe: bool,
        pkt: Packet,
    ) {
        let codec = self.source_codec(channel);
        self.shared
            .feeds
            .forward(channel, source, kind, codec, keyframe, pkt, self.rx_at);
    }
}
