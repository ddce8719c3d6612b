//! Peer restrictions: where a relay may send. Anyone who can read
//! `GET /api/ice-servers` holds credentials, so without these a TURN client
//! could reach what only the host (or its network) should: services on
//! loopback, the private network behind it, a cloud's metadata service.
//! RFC 8656 lets a server refuse such peers with 403 Forbidden
//! (sections 9.2 and 11.2), as coturn does for loopback and multicast by
//! default and for private ranges with `denied-peer-ip`.
//!
//! Refused unless an operator's `--allow-peer` range covers them: the
//! ranges in [`FORBIDDEN`], IPv4 ones also in their IPv4-mapped, NAT64 and
//! 6to4 forms, and every address of this host. An exact address:port of a
//! service the relay exists for (onair's own WebRTC candidates, when the
//! relay runs inside `onair serve`) stays reachable, and nothing else on
//! those hosts does.

use crate::addr::{canonical, Cidr};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Cidr {
    Cidr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), prefix)
}

const fn v6(first: u16, second: u16, third: u16, prefix: u8) -> Cidr {
    Cidr::new(
        IpAddr::V6(Ipv6Addr::new(first, second, third, 0, 0, 0, 0, 0)),
        prefix,
    )
}

/// Ranges no peer may be in, and why.
pub const FORBIDDEN: &[(Cidr, &str)] = &[
    (
        v4(0, 0, 0, 0, 8),
        "\"this network\" (Linux delivers 0.x.x.x locally)",
    ),
    (v4(10, 0, 0, 0, 8), "private (RFC 1918)"),
    (v4(100, 64, 0, 0, 10), "carrier-grade NAT space (RFC 6598)"),
    (v4(127, 0, 0, 0, 8), "loopback"),
    (
        v4(169, 254, 0, 0, 16),
        "link-local (where cloud metadata services answer)",
    ),
    (v4(172, 16, 0, 0, 12), "private (RFC 1918)"),
    (v4(192, 0, 0, 0, 24), "IETF protocol assignments (RFC 6890)"),
    (v4(192, 168, 0, 0, 16), "private (RFC 1918)"),
    (
        v4(198, 18, 0, 0, 15),
        "benchmarking (RFC 2544), often internal",
    ),
    (v4(224, 0, 0, 0, 4), "multicast"),
    (v4(240, 0, 0, 0, 4), "reserved, and broadcast"),
    (v6(0, 0, 0, 128), "unspecified"),
    (Cidr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 128), "loopback"),
    (v6(0, 0, 0, 96), "IPv4-compatible (deprecated, RFC 4291)"),
    (v6(0x64, 0xff9b, 1, 48), "local-use NAT64 (RFC 8215)"),
    (v6(0x100, 0, 0, 64), "discard-only (RFC 6666)"),
    (v6(0xfc00, 0, 0, 7), "unique local (RFC 4193)"),
    (v6(0xfe80, 0, 0, 10), "link-local"),
    (v6(0xfec0, 0, 0, 10), "site-local (deprecated)"),
    (v6(0xff00, 0, 0, 8), "multicast"),
];

/// The IPv4 address an IPv6 one reaches through a translator: NAT64's
/// well-known prefix 64:ff9b::/96 (RFC 6052) or 6to4's 2002::/16
/// (RFC 3056). IPv4-mapped addresses are [`canonical`]'s.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let join = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(join(hi, lo)),
        [0x2002, hi, lo, ..] => Some(join(hi, lo)),
        _ => None,
    }
}

fn forbidden_range(ip: IpAddr) -> Option<&'static str> {
    FORBIDDEN
        .iter()
        .find(|(range, _)| range.contains(ip))
        .map(|(_, why)| *why)
}

/// Who a relay may send to and hear from.
#[derive(Debug, Clone, Default)]
pub struct PeerPolicy {
    /// Operators' exceptions: anything in them is allowed.
    allow: Vec<Cidr>,
    /// Exact services the relay is for, reachable whatever their address.
    services: Vec<SocketAddr>,
    /// This host's addresses.
    own: Vec<IpAddr>,
}

impl PeerPolicy {
    pub fn new(allow: Vec<Cidr>, services: &[SocketAddr], own: &[IpAddr]) -> PeerPolicy {
        let mut own: Vec<IpAddr> = own.iter().copied().map(canonical).collect();
        own.sort();
        own.dedup();
        PeerPolicy {
            allow,
            services: services
                .iter()
                .map(|s| SocketAddr::new(canonical(s.ip()), s.port()))
                .collect(),
            own,
        }
    }

    /// Why `peer` is refused, or `None` when it may be relayed to. Cheap
    /// (a few dozen comparisons, no allocation): it runs for every packet.
    pub fn refusal(&self, peer: SocketAddr) -> Option<&'static str> {
        let ip = canonical(peer.ip());
        if self.allow.iter().any(|range| range.contains(ip)) {
            return None;
        }
        if self
            .services
            .iter()
            .any(|s| s.ip() == ip && s.port() == peer.port())
        {
            return None;
        }
        let inner = match ip {
            IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        for ip in std::iter::once(ip).chain(inner) {
            if let Some(why) = forbidden_range(ip) {
                return Some(why);
            }
            if self.own.contains(&ip) {
                return Some("an address of this host");
            }
        }
        None
    }

    pub fn permits(&self, peer: SocketAddr) -> bool {
        self.refusal(peer).is_none()
    }
}

/// This host's addresses, as its interfaces list them now, and `extra`
/// (a public address the host is reached at through NAT 1:1).
pub fn own_addresses(extra: &[IpAddr]) -> Vec<IpAddr> {
    let mut own: Vec<IpAddr> = match if_addrs::get_if_addrs() {
        Ok(interfaces) => interfaces.iter().map(|i| i.ip()).collect(),
        Err(e) => {
            tracing::warn!("cannot list this host's addresses for TURN peer checks: {e}");
            Vec::new()
        }
    };
    own.extend(extra.iter().filter(|ip| !ip.is_unspecified()));
    own
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_and_special_peers_are_refused_in_every_form() {
        let own = [
            "203.0.113.7".parse().unwrap(),
            "2001:db8::7".parse().unwrap(),
        ];
        let p = PeerPolicy::new(Vec::new(), &[sa("203.0.113.7:8189")], &own);
        let cases: &[(&str, bool)] = &[
            ("127.0.0.1:9", false),
            ("127.8.9.10:9", false),
            ("10.1.2.3:9", false),
            ("172.16.0.1:9", false),
            ("172.31.255.255:9", false),
            ("172.32.0.1:9", true),
            ("192.168.1.1:9", false),
            ("100.64.0.1:9", false),
            ("100.127.255.255:9", false),
            ("100.128.0.1:9", true),
            ("169.254.169.254:80", false),
            ("224.0.0.251:5353", false),
            ("255.255.255.255:9", false),
            ("0.0.0.0:9", false),
            ("0.1.2.3:9", false),
            ("8.8.8.8:53", true),
            ("[::1]:9", false),
            ("[::]:9", false),
            ("[fd00::1]:9", false),
            ("[fc12::1]:9", false),
            ("[fe80::1]:9", false),
            ("[ff02::1]:9", false),
            ("[2606:4700::1111]:53", true),
            // IPv4-mapped, NAT64 and 6to4 forms of refused IPv4 addresses.
            ("[::ffff:127.0.0.1]:9", false),
            ("[::ffff:10.0.0.1]:9", false),
            ("[::ffff:8.8.8.8]:53", true),
            ("[64:ff9b::7f00:1]:9", false),
            ("[64:ff9b::808:808]:53", true),
            ("[2002:c0a8:101::1]:9", false),
            ("[::127.0.0.1]:9", false),
            // This host: only the service's exact address and port.
            ("203.0.113.7:8189", true),
            ("203.0.113.7:22", false),
            ("[::ffff:203.0.113.7]:8189", true),
            ("[::ffff:203.0.113.7]:22", false),
            ("[2001:db8::7]:8189", false),
            ("[64:ff9b::cb00:7107]:22", false),
        ];
        for (peer, ok) in cases {
            assert_eq!(
                p.permits(sa(peer)),
                *ok,
                "{peer}: {:?}",
                p.refusal(sa(peer))
            );
        }
    }

    #[test]
    fn allowed_ranges_win() {
        let p = PeerPolicy::new(
            vec!["127.0.0.1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()],
            &[],
            &["10.0.0.5".parse().unwrap()],
        );
        assert!(p.permits(sa("127.0.0.1:9")));
        assert!(p.permits(sa("[::ffff:127.0.0.1]:9")));
        assert!(!p.permits(sa("127.0.0.2:9")));
        assert!(p.permits(sa("10.0.0.5:22")));
        assert!(!p.permits(sa("192.168.0.1:9")));
    }

    #[test]
    fn the_host_knows_its_own_addresses() {
        let own = own_addresses(&["198.51.100.1".parse().unwrap()]);
        assert!(own.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)), "{own:?}");
        assert!(own.contains(&"198.51.100.1".parse().unwrap()));
    }
}
