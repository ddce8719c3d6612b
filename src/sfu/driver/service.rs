//! A peer's state machine after any input: its events, what it received
//! (viewer RTCP, WHIP media, chat), its writes and its next deadline.

use super::*;

impl Driver {
    pub(super) fn flush_writes(&mut self, p: &mut Peer, pin: Option<SocketAddr>) {
        while let Some(out) = p.pc.poll_write() {
            let to = out.transport.peer_addr;
            self.rx_proved |= self.rx_from == Some(to);
            // Our side answered this address, so ICE has checked the
            // request's MESSAGE-INTEGRITY: now it may route to this peer.
            if pin == Some(to) && !p.addrs.contains(&to) && p.addrs.len() < MAX_ADDRS_PER_PEER {
                p.addrs.push(to);
                self.by_addr.insert(to, p.id);
            }
            send_out(
                &mut self.out,
                &mut self.tcp_out,
                &out.transport,
                &out.message,
            );
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
        let mut close: Option<&'static str> = None;
        // A viewer joined, or one needs a keyframe: ask a WHIP source.
        let mut viewer_joined = false;
        let mut replies: Vec<String> = Vec::new();
        while let Some(ev) = p.pc.poll_event() {
            self.rx_proved = true;
            match ev {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) => match s {
                    // ICE can go Disconnected and back: only the first
                    // Connected starts the picture.
                    RTCPeerConnectionState::Connected if !p.connected => {
                        p.connected = true;
                        p.wait_for_keyframe(Instant::now());
                        tracing::debug!(session = p.session, after = ?p.created.elapsed(), "viewer connected");
                        if let Some(ch) = self.channels.get(&p.channel) {
                            if p.video_codec == Some(ch.gop_codec) {
                                let (out, tcp_out) = (&mut self.out, &mut self.tcp_out);
                                p.fast_start(&ch.gop, &mut |pc| drain_writes(out, tcp_out, pc));
                            }
                        }
                        if p.ingest.is_none() {
                            viewer_joined = true;
                        }
                    }
                    RTCPeerConnectionState::Failed => close = Some("connection failed"),
                    RTCPeerConnectionState::Closed => close = Some("connection closed"),
                    _ => {}
                },
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    let video = p.pc.rtp_receiver(init.receiver_id).is_some_and(|r| {
                        r.track().kind() == rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Video
                    });
                    if let (true, Some(ingest)) = (video, p.ingest.as_mut()) {
                        ingest.video_receiver = Some(init.receiver_id);
                    }
                }
                RTCPeerConnectionEvent::OnDataChannel(RTCDataChannelEvent::OnOpen(id)) => {
                    let is_chat =
                        p.pc.data_channel(id)
                            .map(|dc| dc.label() == "chat")
                            .unwrap_or(false);
                    if is_chat {
                        p.chat = Some(id);
                        if let Some(tap) = &p.chat_tap {
                            // The room sends history and live state itself.
                            let _ = tap.events.try_send(crate::sfu::DataChannelEvent::Open);
                        } else {
                            let live = self
                                .channels
                                .get(&p.channel)
                                .map(|c| c.live)
                                .unwrap_or(false);
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
                }
                _ => {}
            }
        }
        let mut forwards: Vec<(MediaKind, Packet)> = Vec::new();
        let now = Instant::now();
        while let Some(m) = p.pc.poll_read() {
            self.rx_proved = true;
            match m.message {
                RTCMessage::DataChannelMessage(id, msg) if Some(id) == p.chat => {
                    match &p.chat_tap {
                        Some(tap) if msg.data.len() <= MAX_DC_MESSAGE => {
                            let text = String::from_utf8_lossy(&msg.data).into_owned();
                            // A full tap means chat is saturated for this viewer;
                            // the message is dropped like a lost packet.
                            let _ = tap
                                .events
                                .try_send(crate::sfu::DataChannelEvent::Text(text));
                        }
                        _ => replies.push(chat_reply(&msg.data)),
                    }
                }
                RTCMessage::RtcpPacket(_, packets) if p.ingest.is_none() => {
                    let bps = self.channels.get(&p.channel).map_or(0.0, |c| c.video_bps);
                    let video_ssrc = p.video.map(|s| s.ssrc);
                    let o =
                        feedback::on_viewer_rtcp(&mut p.congestion, video_ssrc, &packets, bps, now);
                    viewer_joined |= o.wants_keyframe;
                    if let (false, Some(ch)) = (o.nacked.is_empty(), self.channels.get(&p.channel))
                    {
                        let (out, tcp_out) = (&mut self.out, &mut self.tcp_out);
                        let resent = p.resend(&ch.history, &o.nacked, now, &mut |pc| {
                            drain_writes(out, tcp_out, pc)
                        });
                        crate::metrics::retransmitted(resent);
                    }
                    if let Some(level) = o.level {
                        tracing::info!(session = p.session, level = level.as_str(), "viewer level");
                        if level != Level::AudioOnly {
                            // Frames the viewer skipped are references
                            // for the next ones: resume at a keyframe.
                            p.wait_for_keyframe(now);
                            viewer_joined = true;
                        }
                    }
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
                            forwards.push((kind, pkt));
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
        if let Some(dc_id) = p.chat {
            if let Some(mut dc) = p.pc.data_channel(dc_id) {
                for r in replies {
                    let _ = dc.send_text(Instant::now(), r);
                }
            }
        }
        self.flush_writes(&mut p, pin);
        // A deadline already past would be served again at once, and a peer
        // whose state machine keeps asking for that (seen with viewers that
        // vanished mid-session) would spin the loop; a millisecond floor
        // keeps it a timer.
        let floor = Instant::now() + MIN_TIMER;
        let next = p.pc.poll_timeout().map(|t| t.max(floor));
        if next != p.deadline {
            if let Some(old) = p.deadline {
                self.timers.remove(&(old, pid));
            }
            if let Some(n) = next {
                self.timers.insert((n, pid));
            }
            p.deadline = next;
        }
        let channel = p.channel.clone();
        self.peers.insert(pid, p);
        for (kind, pkt) in forwards {
            self.forward_rtp(&channel, source, kind, pkt);
        }

        // A WHIP source is asked for a keyframe when a viewer joins or when
        // our own picture broke; an RTMP source cannot be asked.
        if viewer_joined || wants_keyframe {
            self.request_keyframe(&channel);
        }
        if let Some(why) = close {
            self.remove_peer(pid, why);
        }
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
