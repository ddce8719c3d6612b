//! Viewers on the lean session (`crate::sfu::session`): its datagrams in,
//! its events, control datagrams and deadline out. Their media never comes
//! through here: the fan-out seals it straight into the send batch.

use super::service::on_chat_text;
use super::*;
use crate::sfu::session::Event;

impl Driver {
    /// One datagram for a lean viewer. Only what the session authenticated
    /// (a STUN check's MESSAGE-INTEGRITY, a DTLS record, SRTCP) keeps the
    /// viewer alive or gives it a new address.
    pub(super) fn on_lean_datagram(&mut self, pid: PeerId, mut d: Datagram) {
        let Some(p) = self.peers.get_mut(&pid) else {
            return;
        };
        if !matches!(p.conn, Conn::Lean(_)) {
            return;
        }
        if let Some(conn) = d.tcp.take() {
            self.tcp_out.entry(d.from).or_insert(conn);
        }
        let now = Instant::now();
        let Some(input) = isolate::catch(PEER, &pid, || {
            p.lean_input(now, d.from, d.local, &mut d.data)
        }) else {
            return self.forget(pid, "panicked on a datagram");
        };
        let Some(input) = input else {
            return;
        };
        if input.proved {
            p.last_rx = now;
        }
        if input.moved {
            crate::metrics::webrtc_path_change();
        }
        if let Some(gone) = input.gone {
            self.unindex_addr(gone, pid);
        }
        if input.new {
            self.index_addr(d.from, pid);
        }
        self.rx_at = Some(d.at);
        self.service(pid, None);
        self.rx_at = None;
    }

    /// A lean viewer after any input (see `service_peer`).
    pub(super) fn service_lean(&mut self, mut p: Box<Peer>) {
        let now = Instant::now();
        let mut close: Option<&'static str> = None;
        let mut wants_keyframe = false;
        let mut replies: Vec<String> = Vec::new();
        // The handshake's last flight before any media: a viewer drops SRTP
        // that comes before its DTLS is done.
        lean_of(&mut p).flush(&mut wire!(self));
        while let Some(ev) = lean_of(&mut p).session.poll_event() {
            match ev {
                Event::Connected { profile } => {
                    crate::metrics::srtp_profile(profile);
                    wants_keyframe |= self.on_connected(&mut p);
                }
                Event::Closed(why) => close = Some(why),
                Event::ChatOpen => self.on_chat_open(&p, &mut replies),
                Event::ChatText(text) => on_chat_text(&p, text.as_bytes(), &mut replies),
                Event::Rtcp(packets) => {
                    wants_keyframe |= self.on_viewer_rtcp(&mut p, &packets, now)
                }
            }
        }
        let lean = lean_of(&mut p);
        for r in replies {
            lean.session.send_text(now, &r);
        }
        lean.flush(&mut wire!(self));
        let next = lean.session.poll_timeout();
        self.file_deadline(&mut p, next);
        let (pid, channel) = (p.id, p.channel.clone());
        self.peers.insert(pid, p);
        self.after_service(pid, &channel, wants_keyframe, close);
    }

    /// A line for a lean viewer's chat channel.
    pub(super) fn send_lean_text(&mut self, pid: PeerId, text: &str) {
        let Some(p) = self.peers.get_mut(&pid) else {
            return;
        };
        let Conn::Lean(lean) = &mut p.conn else {
            return;
        };
        let sent = isolate::catch(PEER, &pid, || {
            lean.session.send_text(Instant::now(), text);
        });
        if sent.is_none() {
            return self.forget(pid, "panicked sending on its data channel");
        }
        self.service(pid, None);
    }
}

fn lean_of(p: &mut Peer) -> &mut peer::Lean {
    match &mut p.conn {
        Conn::Lean(l) => l,
        Conn::Rtc(_) => unreachable!("only lean peers are serviced here"),
    }
}
