//! The relay's own record of an allocation: what its client was granted
//! (permissions and channels, recorded as the requests that the `turn`
//! crate accepts pass by, so caps can be counted), its byte rates, and its
//! data plane: client to peer (from the read loop) and peer to client (from
//! the relayed socket), each through the peer restrictions, in buffers that
//! already exist, with no lock held across an await.

use crate::limits::Bucket;
use crate::peers::PeerPolicy;
use crate::stats::{add, Stats};
use crate::transport::Transport;
use crate::wire::{self, FromClient, HEADROOM};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// How long a permission lasts unless refreshed (RFC 8656 section 9).
const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// How long a channel binding lasts unless refreshed (RFC 8656 section 12):
/// the `channel_bind_timeout` the crate is given.
pub(crate) const CHANNEL_LIFETIME: Duration = turn::proto::lifetime::DEFAULT_LIFETIME;

/// An allocation's key: the listener (UDP or TCP, which share a port) and
/// the client's address on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Client {
    pub(crate) listener: usize,
    pub(crate) addr: SocketAddr,
}

/// Why a permission or channel was not granted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A cap, by its name.
    Cap(&'static str),
    /// The channel is bound to another peer, or the peer to another channel:
    /// the crate answers 400.
    Conflict,
}

#[derive(Default)]
struct Grants {
    /// Peer IP ([`crate::addr::canonical`]) -> when its permission lapses.
    permissions: HashMap<IpAddr, Instant>,
    /// Channel number -> its peer (as the client named it, so as the relayed
    /// socket sees it) and when the binding lapses.
    channels: HashMap<u16, (SocketAddr, Instant)>,
}

impl Grants {
    fn expire(&mut self, now: Instant) {
        self.permissions.retain(|_, until| *until > now);
        self.channels.retain(|_, (_, until)| *until > now);
    }

    fn permitted(&self, ip: IpAddr, now: Instant) -> bool {
        self.permissions.get(&ip).is_some_and(|until| *until > now)
    }

    fn channel(&self, number: u16, now: Instant) -> Option<SocketAddr> {
        match self.channels.get(&number) {
            Some((peer, until)) if *until > now => Some(*peer),
            _ => None,
        }
    }

    fn number_of(&self, peer: SocketAddr, now: Instant) -> Option<u16> {
        self.channels
            .iter()
            .find(|(_, (p, until))| *p == peer && *until > now)
            .map(|(n, _)| *n)
    }
}

/// How often an allocation held at its byte rate is reported (as a limit
/// hit, and in the log): a flood drops packets all the time.
const RATE_REPORT_EVERY: Duration = Duration::from_secs(1);

/// A byte rate, and when dropping over it was last reported.
struct Rate {
    bucket: Bucket,
    reported: Option<Instant>,
}

impl Rate {
    fn new(bytes_per_sec: u32) -> Mutex<Rate> {
        let rate = f64::from(bytes_per_sec);
        Mutex::new(Rate {
            bucket: Bucket::new(rate, rate),
            reported: None,
        })
    }
}

/// What [`Allocation::new`] needs from the relay.
pub(crate) struct Context {
    pub(crate) policy: Arc<PeerPolicy>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) on_limit: fn(&'static str),
    pub(crate) limits: crate::Limits,
}

pub(crate) struct Allocation {
    pub(crate) client: Client,
    /// [`crate::addr::host_of`] the client's address.
    pub(crate) host: IpAddr,
    /// The TURN username's user part (after `EXPIRY:`).
    pub(crate) user: String,
    /// Where the client's data goes back: the listener it came in on.
    listener: Transport,
    relay: Arc<UdpSocket>,
    relay_v4: bool,
    cx: Arc<Context>,
    grants: Mutex<Grants>,
    to_peers: Mutex<Rate>,
    to_client: Mutex<Rate>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The user part of a TURN REST API username, `EXPIRY:USER`.
pub(crate) fn user_part(username: &str) -> &str {
    username.split_once(':').map_or("", |(_, user)| user)
}

impl Allocation {
    pub(crate) fn new(
        client: Client,
        username: &str,
        listener: Transport,
        relay: Arc<UdpSocket>,
        cx: Arc<Context>,
    ) -> Allocation {
        let relay_v4 = relay.local_addr().is_ok_and(|a| a.is_ipv4());
        let rate = cx.limits.relay_bytes_per_sec;
        Allocation {
            client,
            host: crate::addr::host_of(client.addr.ip()),
            user: user_part(username).to_string(),
            listener,
            relay,
            relay_v4,
            grants: Mutex::default(),
            to_peers: Rate::new(rate),
            to_client: Rate::new(rate),
            cx,
        }
    }

    /// Whether `peer` is of the relayed address's family; when not, the
    /// crate answers 443 and grants nothing. (An IPv4-mapped peer counts as
    /// IPv6, as for the crate: a dual-stack relayed socket reaches it.)
    pub(crate) fn same_family(&self, peer: SocketAddr) -> bool {
        peer.is_ipv4() == self.relay_v4
    }

    /// Installs (or refreshes) permissions for `peers`, unless that would
    /// pass the cap.
    pub(crate) fn permit(&self, peers: &[SocketAddr]) -> Result<(), Refusal> {
        let now = Instant::now();
        let mut g = lock(&self.grants);
        g.expire(now);
        let mut new: Vec<IpAddr> = peers
            .iter()
            .map(|p| crate::addr::canonical(p.ip()))
            .filter(|ip| !g.permissions.contains_key(ip))
            .collect();
        new.sort();
        new.dedup();
        if g.permissions.len() + new.len() > self.cx.limits.max_permissions_per_allocation {
            return Err(Refusal::Cap("max_permissions_per_allocation"));
        }
        for p in peers {
            g.permissions
                .insert(crate::addr::canonical(p.ip()), now + PERMISSION_LIFETIME);
        }
        Ok(())
    }

    /// Binds (or refreshes) channel `number` to `peer`, which also installs
    /// or refreshes a permission for it (RFC 8656 section 12.2), unless a
    /// cap or a conflicting binding stands in the way.
    pub(crate) fn bind(&self, number: u16, peer: SocketAddr) -> Result<(), Refusal> {
        let now = Instant::now();
        let ip = crate::addr::canonical(peer.ip());
        let mut g = lock(&self.grants);
        g.expire(now);
        match (g.channel(number, now), g.number_of(peer, now)) {
            (Some(p), _) if p != peer => return Err(Refusal::Conflict),
            (_, Some(n)) if n != number => return Err(Refusal::Conflict),
            (None, _) if g.channels.len() >= self.cx.limits.max_channels_per_allocation => {
                return Err(Refusal::Cap("max_channels_per_allocation"));
            }
            _ => {}
        }
        if !g.permissions.contains_key(&ip)
            && g.permissions.len() >= self.cx.limits.max_permissions_per_allocation
        {
            return Err(Refusal::Cap("max_permissions_per_allocation"));
        }
        g.channels.insert(number, (peer, now + CHANNEL_LIFETIME));
        g.permissions.insert(ip, now + PERMISSION_LIFETIME);
        Ok(())
    }

    /// Takes `bytes` from `rate`, or counts the drop (and reports it, at
    /// most once every [`RATE_REPORT_EVERY`]).
    fn within(&self, rate: &Mutex<Rate>, bytes: usize) -> bool {
        let mut r = lock(rate);
        if r.bucket.take(bytes as f64) {
            return true;
        }
        let now = Instant::now();
        let report = r
            .reported
            .is_none_or(|at| now.duration_since(at) >= RATE_REPORT_EVERY);
        if report {
            r.reported = Some(now);
        }
        drop(r);
        add(&self.cx.stats.over_rate_packets, 1);
        add(&self.cx.stats.over_rate_bytes, bytes as u64);
        if report {
            tracing::debug!(client = %self.client.addr, "TURN allocation over its byte rate: dropping");
            (self.cx.on_limit)("max_relay_bytes_per_sec");
        }
        false
    }

    /// Relays what the client sent for a peer, if it may go there.
    pub(crate) async fn relay_to_peer(&self, data: FromClient<'_>) {
        let now = Instant::now();
        let (peer, data) = {
            let g = lock(&self.grants);
            let (peer, data) = match data {
                FromClient::Channel { number, data } => match g.channel(number, now) {
                    Some(peer) => (peer, data),
                    None => {
                        add(&self.cx.stats.unpermitted_packets, 1);
                        return;
                    }
                },
                FromClient::Send { peer, data } => (peer, data),
                FromClient::Malformed => return,
            };
            if !self.cx.policy.permits(peer) {
                add(&self.cx.stats.forbidden_packets, 1);
                return;
            }
            if !g.permitted(crate::addr::canonical(peer.ip()), now) {
                add(&self.cx.stats.unpermitted_packets, 1);
                return;
            }
            (peer, data)
        };
        if !self.within(&self.to_peers, data.len()) {
            return;
        }
        match self.relay.send_to(data, peer).await {
            Ok(_) => {
                add(&self.cx.stats.to_peers, 1);
                add(&self.cx.stats.to_peers_bytes, data.len() as u64);
            }
            Err(e) => tracing::debug!(%peer, "TURN relay send failed: {e}"),
        }
    }

    /// Relays the `len` bytes a peer sent, at `buf[HEADROOM..]`, to the
    /// client, framed in place (`buf` has room for the frame's padding).
    pub(crate) async fn relay_to_client(&self, buf: &mut [u8], len: usize, from: SocketAddr) {
        if !self.cx.policy.permits(from) {
            add(&self.cx.stats.forbidden_packets, 1);
            return;
        }
        let now = Instant::now();
        let channel = {
            let g = lock(&self.grants);
            if !g.permitted(crate::addr::canonical(from.ip()), now) {
                add(&self.cx.stats.unpermitted_packets, 1);
                return;
            }
            g.number_of(from, now)
        };
        if !self.within(&self.to_client, len) {
            return;
        }
        let frame = match channel {
            Some(number) => wire::channel_frame(buf, HEADROOM, len, number),
            None => wire::data_indication(buf, HEADROOM, len, from, rand::random()),
        };
        match self.listener.send_to(&buf[frame], self.client.addr).await {
            Ok(_) => {
                add(&self.cx.stats.to_clients, 1);
                add(&self.cx.stats.to_clients_bytes, len as u64);
            }
            Err(e) => {
                tracing::debug!(client = %self.client.addr, "TURN send to client failed: {e}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn allocation(limits: crate::Limits) -> Allocation {
        let relay = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let listener = Transport::Udp(Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap()));
        let cx = Arc::new(Context {
            policy: Arc::new(PeerPolicy::default()),
            stats: Arc::default(),
            on_limit: |_| {},
            limits,
        });
        let client = Client {
            listener: 0,
            addr: "192.0.2.1:5000".parse().unwrap(),
        };
        Allocation::new(client, "123:viewer@192.0.2.1", listener, relay, cx)
    }

    fn peer(i: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::from([198, 51, 100, i as u8]), 1000 + i)
    }

    #[tokio::test]
    async fn permissions_and_channels_stop_at_their_caps() {
        let a = allocation(crate::Limits {
            max_permissions_per_allocation: 3,
            max_channels_per_allocation: 2,
            ..Default::default()
        })
        .await;
        assert_eq!(a.user, "viewer@192.0.2.1");
        assert_eq!(a.permit(&[peer(1), peer(2)]), Ok(()));
        // Refreshing is free; a fourth address is one too many.
        assert_eq!(a.permit(&[peer(1), peer(2)]), Ok(()));
        assert_eq!(
            a.permit(&[peer(3), peer(4)]),
            Err(Refusal::Cap("max_permissions_per_allocation"))
        );
        assert_eq!(a.permit(&[peer(3)]), Ok(()));
        assert_eq!(a.bind(0x4000, peer(1)), Ok(()));
        assert_eq!(a.bind(0x4000, peer(1)), Ok(()), "a refresh");
        assert_eq!(a.bind(0x4000, peer(2)), Err(Refusal::Conflict));
        assert_eq!(a.bind(0x4001, peer(1)), Err(Refusal::Conflict));
        // A channel to a new address needs a permission too: none left.
        assert_eq!(
            a.bind(0x4001, peer(9)),
            Err(Refusal::Cap("max_permissions_per_allocation"))
        );
        assert_eq!(a.bind(0x4001, peer(2)), Ok(()));
        assert_eq!(
            a.bind(0x4002, peer(3)),
            Err(Refusal::Cap("max_channels_per_allocation"))
        );
        assert!(a.same_family(peer(1)));
        assert!(!a.same_family("[2001:db8::1]:9".parse().unwrap()));
    }
}
