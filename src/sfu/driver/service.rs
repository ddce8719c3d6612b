//! A peer's state machine after any input: its events, what it received
//! (viewer RTCP, WHIP media, chat), its writes and its next deadline.

use super::*;

impl Driver {
    pub(super) fn flush_writes(&mut self, p: &mut Peer, pin: Option<SocketAddr>) {
        let Conn::Rtc(pc) = &mut p.conn else {
            return;
        };
        while let Some(out) = pc.poll_write() {
            let to = out.transport.peer_addr;
            self.rx_proved |= self.rx_from == Some(to);
            // Our side answered this address, so ICE has checked the
            // request's MESSAGE-INTEGRITY: now it may route to this peer.
            if pin == Some(to) && !p.addrs.contains(&to) && p.addrs.len() < MAX_ADDRS_PER_PEER {
                p.addrs.push(to);
                self.index_addr(to, p.id);
            }
            wire!(self).send_tagged(&out.transport, &out.message);
        }
    }

    /// Runs a peer's state machine after any input: events, received
    /// messages, queued writes, and its next deadline. A panic in it drops
    /// that peer alone.
    pub(super) fn service(&mut self, pid: PeerId, pin: Option<SocketAddr>) {
        if isolate::catch(PEER, &pid, || self.service_peer(pid, pin)).is_none() {
            self.forget(pid, "panicked");
        }
    }

    fn service_peer(&mut self, pid: PeerId, pin: Option<SocketAddr>) {
        let Some(mut p) = self.peers.remove(&pid) else {
            return;
        };
        if p.catch_up_at().is_some() {
            let (gop, epoch) = self
                .channels
                .get(&p.channel)
                .map_or((&[][..], 0), |c| (c.gop.items(), c.gop.epoch()));
            p.catch_up(gop, epoch, Instant::now(), &mut wire!(self));
        }
        if let Conn::Lean(_) = p.conn {
            return self.service_lean(p);
        }
        let mut close: Option<&'static str> = None;
        // A viewer joined, or one needs a keyframe: ask a WHIP source.
        let mut viewer_joined = false;
        let mut replies: Vec<String> = Vec::new();
        let mut forwards: Vec<(MediaKind, bool, Packet)> = Vec::new();
        let now = Instant::now();
        while let Some(ev) = p.pc().and_then(|pc| pc.poll_event()) {
            self.rx_proved = true;
            match ev {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) => match s {
                    RTCPeerConnectionState::Connected => viewer_joined |= self.on_connected(&mut p),
                    RTCPeerConnectionState::Failed => close = Some("connection failed"),
                    RTCPeerConnectionState::Closed => close = Some("connection closed"),
                    _ => {}
                },
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    let video = p
                        .pc()
                        .and_then(|pc| pc.rtp_receiver(init.receiver_id))
                        .is_some_and(|r| {
                            r.track().kind()
                                == rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Video
                        });
                    if let (true, Some(ingest)) = (video, p.ingest.as_mut()) {
                        ingest.video_receiver = Some(init.receiver_id);
                    }
                }
                RTCPeerConnectionEvent::OnDataChannel(RTCDataChannelEvent::OnOpen(id)) => {
                    let is_chat = p
                        .pc()
                        .and_then(|pc| pc.data_channel(id))
                        .is_some_and(|dc| dc.label() == "chat");
                    if is_chat {
                        p.chat = Some(id);
                        self.on_chat_open(&p, &mut replies);
                    }
                }
                _ => {}
            }
        }
        while let Some(m) = p.pc().and_then(|pc| pc.poll_read()) {
            self.rx_proved = true;
            match m.message {
                RTCMessage::DataChannelMessage(id, msg) if Some(id) == p.chat => {
                    on_chat_text(&p, &msg.data, &mut replies);
                }
                RTCMessage::RtcpPacket(_, packets) if p.ingest.is_none() => {
                    viewer_joined |= self.on_viewer_rtcp(&mut p, &packets, now);
                }
                RTCMessage::RtpPacket(_, pkt) => {
                    if self.fault_injection {
                        self.inject_fault(&pkt.payload);
                    }
                    if let Some(ingest) = p.ingest.as_mut() {
                        // Kicked (a rotated key, a deleted account, an
                        // admin) or replaced by another ingest: its media
                        // stops here, at its next packet.
                        if ingest.publisher.stream().is_closed() {
                            close = Some("its publish was ended");
                            continue;
                        }
                        if let Some(kind) =
                            ingest.kind_of(&pkt).filter(|k| ingest.payload_ok(*k, &pkt))
                        {
                            ingest.on_rtp(kind, &pkt, now);
                            let keyframe = ingest.starts_keyframe(kind, &pkt);
                            forwards.push((kind, keyframe, pkt));
                        }
                    }
                }
                _ => {}
            }
        }
        let source = p
            .ingest
            .as_ref()
            .map(|i| i.publisher.stream().id())
            .unwrap_or(0);
        let wants_keyframe = p.ingest.as_ref().is_some_and(|i| i.wants_keyframe);
        if let (Some(dc_id), Conn::Rtc(pc)) = (p.chat, &mut p.conn) {
            if let Some(mut dc) = pc.data_channel(dc_id) {
                for r in replies {
                    let _ = dc.send_text(Instant::now(), r);
                }
            }
        }
        self.flush_writes(&mut p, pin);
        let next = p.pc().and_then(|pc| pc.poll_timeout());
        self.file_deadline(&mut p, next);
        let channel = p.channel.clone();
        self.peers.insert(pid, p);
        for (kind, keyframe, pkt) in forwards {
            self.forward_rtp(&channel, source, kind, keyframe, pkt);
        }
        self.after_service(pid, &channel, viewer_joined || wants_keyframe, close);
    }

    /// The first Connected of a peer (ICE can go Disconnected and back:
    /// only the first starts the picture). True for a viewer with no GOP
    /// to start from, whose joining asks the source for a keyframe: one
    /// that has a GOP starts now, and asking anyway would burst a keyframe
    /// to every viewer for each one that joins.
    pub(super) fn on_connected(&mut self, p: &mut Peer) -> bool {
        if p.connected {
            return false;
        }
        p.connected = true;
        p.wait_for_keyframe(Instant::now());
        tracing::debug!(session = p.session, after = ?p.created.elapsed(), "viewer connected");
        let started = match self.channels.get(&p.channel) {
            Some(ch) if p.video_codec == Some(ch.gop_codec) => p.fast_start(
                ch.gop.items(),
                ch.gop.epoch(),
                Instant::now(),
                &mut wire!(self),
            ),
            _ => false,
        };
        p.ingest.is_none() && !started
    }

    /// The viewer's `chat` data channel opened.
    pub(super) fn on_chat_open(&self, p: &Peer, replies: &mut Vec<String>) {
        if let Some(tap) = &p.chat_tap {
            // The room sends history and live state itself.
            let _ = tap.events.try_send(crate::sfu::DataChannelEvent::Open);
        } else {
            let live = self.channels.get(&p.channel).is_some_and(|c| c.live);
            replies.push(
                if live {
                    r#"{"type":"live"}"#
                } else {
                    r#"{"type":"offline"}"#
                }
                .into(),
            );
        }
    }

    /// RTCP from a viewer: NACKs answered from the channel's history,
    /// congestion steps, keyframe requests. True when the source should be
    /// asked for a keyframe.
    pub(super) fn on_viewer_rtcp(
        &mut self,
        p: &mut Peer,
        packets: &[Box<dyn rtc::rtcp::Packet>],
        now: Instant,
    ) -> bool {
        let bps = self.channels.get(&p.channel).map_or(0.0, |c| c.video_bps);
        let video_ssrc = p.video.map(|s| s.ssrc);
        let o = feedback::on_viewer_rtcp(
            &mut p.congestion,
            &mut p.twcc,
            video_ssrc,
            packets,
            bps,
            now,
        );
        let mut wants_keyframe = o.wants_keyframe;
        if let (false, Some(ch)) = (o.nacked.is_empty(), self.channels.get(&p.channel)) {
            let resent = p.resend(&ch.history, &o.nacked, now, &mut wire!(self));
            crate::metrics::retransmitted(resent);
        }
        if let Some(level) = o.level {
            tracing::info!(session = p.session, level = level.as_str(), "viewer level");
            if level != Level::AudioOnly {
                // Frames the viewer skipped are references for the next
                // ones: resume at a keyframe.
                p.wait_for_keyframe(now);
                wants_keyframe = true;
            }
        }
        wants_keyframe
    }

    /// Files the peer's next deadline in the driver's timer set.
    pub(super) fn file_deadline(&mut self, p: &mut Peer, next: Option<Instant>) {
        // A deadline already past would be served again at once, and a peer
        // whose state machine keeps asking for that (seen with viewers that
        // vanished mid-session) would spin the loop; a millisecond floor
        // keeps it a timer.
        let floor = Instant::now() + MIN_TIMER;
        let next = match (next, p.catch_up_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .map(|t| t.max(floor));
        if next != p.deadline {
            if let Some(old) = p.deadline {
                self.timers.remove(&(old, p.id));
            }
            if let Some(n) = next {
                self.timers.insert((n, p.id));
            }
            p.deadline = next;
        }
    }

    /// What is left once a serviced peer is back in the map: a keyframe
    /// request to a WHIP source (an RTMP one cannot be asked), and the
    /// peer's end.
    pub(super) fn after_service(
        &mut self,
        pid: PeerId,
        channel: &Arc<str>,
        wants_keyframe: bool,
        close: Option<&'static str>,
    ) {
        if wants_keyframe {
            self.request_keyframe(channel);
        }
        if let Some(why) = close {
            self.remove_peer(pid, why);
        }
    }
}

/// A viewer's message on its `chat` channel: to the room when one serves
/// it, else answered here.
pub(super) fn on_chat_text(p: &Peer, data: &[u8], replies: &mut Vec<String>) {
    match &p.chat_tap {
        Some(tap) if data.len() <= MAX_DC_MESSAGE => {
            let text = String::from_utf8_lossy(data).into_owned();
            // A full tap means chat is saturated for this viewer; the
            // message is dropped like a lost packet.
            let _ = tap
                .events
                .try_send(crate::sfu::DataChannelEvent::Text(text));
        }
        _ => replies.push(chat_reply(data)),
    }
}

/// What a viewer's message on the `chat` channel gets back. Writing needs an
/// account, which this server does not have yet, so every well-formed chat
/// message is refused with a reason rather than dropped.
fn chat_reply(data: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct In {
        #[serde(rename = "type")]
        typ: String,
    }
    let err = |e: &str| serde_json::json!({"type": "error", "error": e}).to_string();
    if data.len() > MAX_DC_MESSAGE {
        return err("message too large");
    }
    match serde_json::from_slice::<In>(data) {
        Ok(m) if m.typ == "chat" => err("sign in to chat"),
        Ok(m) => err(&format!("unknown message type {:?}", m.typ)),
        Err(_) => err("messages are JSON objects with a \"type\""),
    }
}
