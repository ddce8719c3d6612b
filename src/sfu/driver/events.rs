//! What the driver tells viewers besides media: sender reports, chat lines
//! and its own events on the data channel.

use super::*;

impl Driver {
    /// Sender reports pinned to each publish's media clock, so both tracks
    /// map to wall time through the same anchor and players line them up
    /// exactly, whatever jitter the ingest had.
    pub(super) fn send_sender_reports(&mut self) {
        let now = Instant::now();
        let since_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let ntp = ((since_unix.as_secs() + NTP_UNIX_OFFSET) << 32)
            | (((since_unix.subsec_nanos() as u64) << 32) / 1_000_000_000);
        let mut touched = Vec::new();
        let mut broken = Vec::new();
        for ch in self.channels.values() {
            if ch.anchor.iter().all(Option::is_none) {
                continue;
            }
            let clock_at = |i: usize, rate: f64| {
                ch.anchor[i].map(|(wall, ts)| {
                    ts.wrapping_add(
                        (now.saturating_duration_since(wall).as_secs_f64() * rate) as u32,
                    )
                })
            };
            let (video_now, audio_now) = (clock_at(0, 90_000.0), clock_at(1, 48_000.0));
            for pid in &ch.viewers {
                let Some(p) = self.peers.get_mut(pid) else {
                    continue;
                };
                if !p.connected {
                    continue;
                }
                let tracks = [
                    (p.video, video_now, p.video_sent),
                    (p.audio, audio_now, p.audio_sent),
                ];
                for (sender, rtp_time, (packets, octets)) in tracks {
                    let (Some(sender), Some(rtp_time)) = (sender, rtp_time) else {
                        continue;
                    };
                    if packets == 0 {
                        continue;
                    }
                    let sr = rtc::rtcp::sender_report::SenderReport {
                        ssrc: sender.ssrc,
                        ntp_time: ntp,
                        rtp_time,
                        packet_count: packets,
                        octet_count: octets,
                        ..Default::default()
                    };
                    let kind = if Some(sender.ssrc) == p.video.map(|v| v.ssrc) {
                        MediaKind::Video
                    } else {
                        MediaKind::Audio
                    };
                    let mut wire = wire!(self);
                    let wrote = isolate::catch(PEER, pid, || match &mut p.conn {
                        Conn::Rtc(pc) => {
                            if let Some(mut s) = sender.id.and_then(|id| pc.rtp_sender(id)) {
                                let _ = s.write_rtcp(now, vec![Box::new(sr)]);
                            }
                        }
                        Conn::Lean(lean) => send_lean_rtcp(lean, kind, &sr, &mut wire),
                    });
                    if wrote.is_none() {
                        broken.push(*pid);
                    }
                }
                touched.push(*pid);
            }
        }
        for pid in broken {
            self.forget(pid, "panicked sending a sender report");
        }
        for pid in touched {
            self.service(pid, None);
        }
    }
    pub(super) fn send_viewer_counts(&mut self) {
        let dirty: Vec<(Arc<str>, usize)> = self
            .channels
            .iter_mut()
            .filter(|(_, c)| c.counts_dirty)
            .map(|(k, c)| {
                c.counts_dirty = false;
                (k.clone(), c.viewers.len())
            })
            .collect();
        for (channel, n) in dirty {
            let msg = format!(r#"{{"type":"viewers","count":{n}}}"#);
            let viewers = self
                .channels
                .get(&channel)
                .map(|c| c.viewers.clone())
                .unwrap_or_default();
            for pid in viewers {
                self.send_event(pid, &msg);
            }
        }
    }
    /// A line from the chat room for one session's data channel.
    pub(super) fn on_chat_line(&mut self, session: &str, line: &str) {
        if let Some(pid) = self.by_session.get(session).copied() {
            self.send_chat(pid, line);
        }
    }
    /// The driver's own events (live state, viewer counts) for viewers
    /// whose chat is not served by a room.
    pub(super) fn send_event(&mut self, pid: PeerId, text: &str) {
        if self.peers.get(&pid).is_some_and(|p| p.chat_tap.is_none()) {
            self.send_chat(pid, text);
        }
    }
    pub(super) fn send_chat(&mut self, pid: PeerId, text: &str) {
        let Some(p) = self.peers.get_mut(&pid) else {
            return;
        };
        let pc = match &mut p.conn {
            Conn::Rtc(pc) => pc,
            Conn::Lean(_) => return self.send_lean_text(pid, text),
        };
        let Some(dc_id) = p.chat else { return };
        let sent = isolate::catch(PEER, &pid, || {
            if let Some(mut dc) = pc.data_channel(dc_id) {
                let _ = dc.send_text(Instant::now(), text);
            }
        });
        if sent.is_none() {
            return self.forget(pid, "panicked sending on its data channel");
        }
        self.service(pid, None);
    }
}

/// An RTCP packet about `kind`'s track to a lean viewer, sealed in place in
/// the send batch.
fn send_lean_rtcp(
    lean: &mut peer::Lean,
    kind: MediaKind,
    packet: &dyn rtc::rtcp::Packet,
    wire: &mut Wire,
) {
    let Some((local, to)) = lean.route() else {
        return;
    };
    let Ok(plain) = packet.marshal() else {
        return;
    };
    let room = plain.len() + crate::sfu::srtp::Profile::AeadAes128Gcm.rtcp_overhead();
    let session = &mut lean.session;
    wire.write(local, to, room, |buf| {
        buf[..plain.len()].copy_from_slice(&plain);
        session.seal_rtcp(kind, buf, plain.len())
    });
}
