//! The driver's books: each peer filed under its ufrag, session and proven
//! addresses (here and in the routes shared with the other shards), the
//! viewer counts per channel, and every trace of a peer removed when it
//! leaves, goes silent or breaks.

use super::*;

impl Driver {
    /// Files a new peer under its ufrag and session, here and in the
    /// shared routes; its session id, tagged with this driver.
    pub(super) fn index_peer(&mut self, id: PeerId, p: &mut Peer) -> String {
        p.session = shard::tag_session(self.shared.index, &p.session);
        self.by_ufrag.insert(p.ufrag.clone(), id);
        self.shared.routes.add_ufrag(&p.ufrag, self.shared.index);
        self.by_session.insert(p.session.clone(), id);
        p.session.clone()
    }

    /// A proven address of a peer's, here and in the shared routes.
    pub(super) fn index_addr(&mut self, addr: SocketAddr, id: PeerId) {
        self.by_addr.insert(addr, id);
        self.shared.routes.add_addr(addr, self.shared.index);
    }

    /// An address peer `id` no longer answers from: what arrives from it
    /// is a stranger's again.
    pub(super) fn unindex_addr(&mut self, addr: SocketAddr, id: PeerId) {
        if self.by_addr.get(&addr) == Some(&id) {
            self.by_addr.remove(&addr);
            self.shared.routes.remove_addr(self.shared.index, addr);
        }
    }

    pub(super) fn set_count(&self, channel: &Arc<str>) {
        let (viewers, relays) = self
            .channels
            .get(channel)
            .map_or((0, 0), |c| (c.viewers.len() - c.relays, c.relays));
        let mut counts = lock_counts(&self.viewers);
        let counts = &mut *counts;
        for (map, n) in [(&mut counts.viewers, viewers), (&mut counts.relays, relays)] {
            if n == 0 {
                map.remove(channel.as_ref());
            } else {
                map.insert(channel.to_string(), n);
            }
        }
    }

    pub(super) fn remove_peer(&mut self, pid: PeerId, why: &str) {
        let Some(mut p) = self.peers.remove(&pid) else {
            return;
        };
        // Closing queues a DTLS close_notify; send it so the viewer learns at once.
        let mut wire = wire!(self);
        isolate::catch(PEER, &pid, || p.close(&mut wire));
        for a in &p.addrs {
            self.by_addr.remove(a);
        }
        self.by_ufrag.remove(&p.ufrag);
        self.by_session.remove(&p.session);
        self.shared
            .routes
            .remove(self.shared.index, &p.addrs, &p.ufrag);
        if let Some(d) = p.deadline {
            self.timers.remove(&(d, pid));
        }
        if p.ingest.is_some() && self.publishers.get(&p.channel) == Some(&pid) {
            self.publishers.remove(&p.channel);
            self.shared.feeds.set_codec(&p.channel, None);
        }
        self.relays -= usize::from(p.relay);
        if let Some(ch) = self.channels.get_mut(&p.channel) {
            ch.viewers.retain(|v| *v != pid);
            ch.relays -= usize::from(p.relay);
            ch.counts_dirty = true;
            if ch.viewers.is_empty() {
                self.channels.remove(&p.channel);
            }
        }
        self.set_count(&p.channel);
        let role = if p.ingest.is_some() {
            "WHIP publisher"
        } else {
            "WHEP viewer"
        };
        tracing::info!(channel = %p.channel, session = p.session, why, "{role} left");
    }

    /// Drops peers that went silent, and those that never finished ICE and
    /// DTLS.
    pub(super) fn reap_silent(&mut self) {
        let now = Instant::now();
        let gone: Vec<(PeerId, &'static str)> = self
            .peers
            .values()
            .filter_map(|p| {
                if !p.connected && now.duration_since(p.created) > HANDSHAKE_TIMEOUT {
                    Some((p.id, "no ICE and DTLS within 10 s"))
                } else if now.duration_since(p.last_rx) > PEER_SILENCE_TIMEOUT {
                    Some((p.id, "silent for 30 s"))
                } else {
                    None
                }
            })
            .collect();
        for (pid, why) in gone {
            self.remove_peer(pid, why);
        }
    }

    /// Every trace of a peer whose state machine panicked: it is not asked
    /// to close (its state may be broken) and may already be out of
    /// `peers`. Rare, so the indexes are scanned.
    pub(super) fn forget(&mut self, pid: PeerId, why: &str) {
        let p = self.peers.remove(&pid);
        let relay = p.as_ref().is_some_and(|p| p.relay);
        self.relays -= usize::from(relay);
        let mut addrs = Vec::new();
        self.by_addr.retain(|a, v| {
            if *v == pid {
                addrs.push(*a);
            }
            *v != pid
        });
        let mut ufrags = Vec::new();
        self.by_ufrag.retain(|u, v| {
            if *v == pid {
                ufrags.push(u.clone());
            }
            *v != pid
        });
        for u in &ufrags {
            self.shared.routes.remove(self.shared.index, &addrs, u);
        }
        self.by_session.retain(|_, v| *v != pid);
        self.timers.retain(|(_, v)| *v != pid);
        let feeds = &self.shared.feeds;
        self.publishers.retain(|channel, v| {
            if *v == pid {
                feeds.set_codec(channel, None);
            }
            *v != pid
        });
        let mut emptied = Vec::new();
        for (name, ch) in self.channels.iter_mut() {
            if ch.viewers.contains(&pid) {
                ch.viewers.retain(|v| *v != pid);
                ch.relays -= usize::from(relay);
                ch.counts_dirty = true;
                emptied.push(name.clone());
            }
        }
        for name in emptied {
            if self
                .channels
                .get(&name)
                .is_some_and(|c| c.viewers.is_empty())
            {
                self.channels.remove(&name);
            }
            self.set_count(&name);
        }
        // Dropping a broken peer may panic too.
        isolate::catch(PEER, &pid, move || drop(p));
        tracing::warn!(peer = pid, why, "WebRTC peer dropped");
    }
}
