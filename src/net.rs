//! Who a client is, as every per-client limit sees it, and how many
//! connections each may hold.
//!
//! - [`host_of`]: one IPv4 address, or one IPv6 /64 (a single subscriber
//!   usually gets a whole /64, so per-address limits on full IPv6 addresses
//!   would be no limit at all).
//! - [`Cidr`] and [`TrustedProxies`]: `--trusted-proxies`; only behind them
//!   are `Forwarded` / `X-Forwarded-For` believed.
//! - [`ConnGate`]: a global and a per-host cap on open connections, with
//!   RAII permits, for every listener (HTTP, WebSocket, RTMP, ICE-TCP).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// The address a per-client limit applies to: an IPv4 address (IPv4-mapped
/// IPv6 included), or an IPv6 address's /64.
pub fn host_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// An address range, `10.0.0.0/8` or `2001:db8::/32`; a bare address is
/// its own /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

#[derive(Debug, thiserror::Error)]
#[error("bad CIDR {0:?}: expected ADDRESS/PREFIX, e.g. 10.0.0.0/8 or fd00::/8")]
pub struct CidrError(pub String);

impl std::str::FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let bad = || CidrError(s.to_string());
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client reached over an IPv6 socket is its IPv4 address.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Reverse proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn new(ranges: Vec<Cidr>) -> TrustedProxies {
        TrustedProxies(ranges)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client behind `peer` (the socket's address). Only when `peer` is
    /// a trusted proxy are the forwarded chains read, and then the
    /// rightmost address that is not itself a trusted proxy is the client:
    /// everything left of it was written by the client and proves nothing.
    /// `forwarded` are `Forwarded` header values (RFC 7239), `x_forwarded_for`
    /// the `X-Forwarded-For` ones, in header order; `Forwarded` wins when
    /// both are present.
    pub fn client<'a>(
        &self,
        peer: IpAddr,
        forwarded: impl IntoIterator<Item = &'a str>,
        x_forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut chain: Vec<Option<IpAddr>> = forwarded
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(forwarded_for)
            .collect();
        if chain.is_empty() {
            chain = x_forwarded_for
                .into_iter()
                .flat_map(|v| v.split(','))
                .map(|a| parse_node(a.trim()))
                .collect();
        }
        for hop in chain.iter().rev() {
            match hop {
                Some(ip) if self.trusts(*ip) => continue,
                Some(ip) => return *ip,
                // An obfuscated or unparsable hop: what is left of it cannot
                // be attributed, so the last trusted hop is the client.
                None => break,
            }
        }
        chain.iter().rev().map_while(|h| *h).last().unwrap_or(peer)
    }
}

/// The `for=` of one `Forwarded` element (RFC 7239 section 4).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("for")
            .then(|| parse_node(v.trim().trim_matches('"')))
            .flatten()
    })
}

/// A node: `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`,
/// `[2001:db8::1]:4711` or a bare IPv6 address.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    let (host, port) = s.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// Connection caps for one listener: `total` at once, `per_host` from one
/// [`host_of`] address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    pub total: usize,
    pub per_host: usize,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Full,
    HostFull,
}

/// Counts open connections against [`ConnLimits`]. Admission hands out a
/// [`ConnPermit`] that gives its place back when dropped, however the
/// connection ends (a panic included).
#[derive(Debug)]
pub struct ConnGate {
    name: &'static str,
    limits: ConnLimits,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    /// Only hosts with open connections: at most `limits.total` entries.
    per_host: HashMap<IpAddr, usize>,
}

#[derive(Debug)]
pub struct ConnPermit {
    gate: Arc<ConnGate>,
    host: IpAddr,
}

impl ConnGate {
    pub fn new(name: &'static str, limits: ConnLimits) -> Arc<ConnGate> {
        Arc::new(ConnGate {
            name,
            limits,
            open: Mutex::default(),
        })
    }

    pub fn limits(&self) -> ConnLimits {
        self.limits
    }

    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnPermit, Refused> {
        let host = host_of(ip);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.total >= self.limits.total {
            crate::metrics::connection_refused(self.name);
            return Err(Refused::Full);
        }
        let n = open.per_host.get(&host).copied().unwrap_or(0);
        if n >= self.limits.per_host {
            crate::metrics::connection_refused(self.name);
            return Err(Refused::HostFull);
        }
        open.total += 1;
        open.per_host.insert(host, n + 1);
        Ok(ConnPermit {
            gate: self.clone(),
            host,
        })
    }

    /// Open connections, in all and from `ip`'s host.
    pub fn open(&self, ip: IpAddr) -> (usize, usize) {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        (
            open.total,
            open.per_host.get(&host_of(ip)).copied().unwrap_or(0),
        )
    }

    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_host.get_mut(&self.host) {
            *n -= 1;
            if *n == 0 {
                open.per_host.remove(&self.host);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_ipv6_host_is_its_slash_64() {
        assert_eq!(host_of(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(host_of(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(host_of(ip("192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn cidrs_parse_and_match() {
        let cases: &[(&str, &str, bool)] = &[
            ("10.0.0.0/8", "10.255.1.2", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("10.0.0.0/8", "::ffff:10.1.1.1", true),
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("fd00::/8", "fd12::1", true),
            ("fd00::/8", "fe80::1", false),
            ("::/0", "2001:db8::1", true),
            ("::/0", "192.0.2.1", false),
        ];
        for (cidr, addr, want) in cases {
            let c: Cidr = cidr.parse().unwrap();
            assert_eq!(c.contains(ip(addr)), *want, "{cidr} contains {addr}");
        }
        for bad in ["10.0.0.0/33", "fd00::/129", "nonsense", "10.0.0.0/x", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?} must not parse");
        }
    }

    #[test]
    fn forwarding_headers_count_only_behind_a_trusted_proxy() {
        let none = TrustedProxies::default();
        let proxies = TrustedProxies::new(vec!["127.0.0.0/8".parse().unwrap()]);
        // Proxies, socket peer, Forwarded values, X-Forwarded-For values, client.
        type Case<'a> = (
            &'a TrustedProxies,
            &'a str,
            &'a [&'a str],
            &'a [&'a str],
            &'a str,
        );
        let cases: &[Case] = &[
            // No trusted proxies: the socket is the client whatever it says.
            (&none, "127.0.0.1", &[], &["198.51.100.1"], "127.0.0.1"),
            // From a proxy: the rightmost untrusted hop.
            (
                &proxies,
                "127.0.0.1",
                &[],
                &["198.51.100.1"],
                "198.51.100.1",
            ),
            (
                &proxies,
                "127.0.0.1",
                &[],
                &["6.6.6.6, 198.51.100.1, 127.0.0.5"],
                "198.51.100.1",
            ),
            // Repeated headers are one list.
            (
                &proxies,
                "127.0.0.1",
                &[],
                &["6.6.6.6", "198.51.100.2"],
                "198.51.100.2",
            ),
            // Not from a proxy: ignored.
            (&proxies, "192.0.2.4", &[], &["198.51.100.1"], "192.0.2.4"),
            // Forwarded wins, with ports and brackets.
            (
                &proxies,
                "127.0.0.1",
                &["for=6.6.6.6, for=\"[2001:db8::7]:4711\";proto=https"],
                &["198.51.100.1"],
                "2001:db8::7",
            ),
            (
                &proxies,
                "127.0.0.1",
                &["for=198.51.100.9:1234"],
                &[],
                "198.51.100.9",
            ),
            // An unknown hop ends the chain at the last trusted hop.
            (&proxies, "127.0.0.1", &["for=unknown"], &[], "127.0.0.1"),
            (&proxies, "127.0.0.1", &[], &["garbage"], "127.0.0.1"),
            // Every hop trusted: the leftmost.
            (
                &proxies,
                "127.0.0.1",
                &[],
                &["127.0.0.9, 127.0.0.8"],
                "127.0.0.9",
            ),
        ];
        for (p, peer, fwd, xff, want) in cases {
            let got = p.client(ip(peer), fwd.iter().copied(), xff.iter().copied());
            assert_eq!(got, ip(want), "peer {peer}, Forwarded {fwd:?}, XFF {xff:?}");
        }
    }

    #[test]
    fn a_gate_caps_hosts_and_gives_places_back() {
        let gate = ConnGate::new(
            "test",
            ConnLimits {
                total: 10,
                per_host: 3,
            },
        );
        let host = |i: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, i));
        let held: Vec<ConnPermit> = (0..3).map(|i| gate.admit(host(i)).unwrap()).collect();
        assert_eq!(gate.admit(host(99)).unwrap_err(), Refused::HostFull);
        let others: Vec<ConnPermit> = (0..7)
            .map(|i| gate.admit(ip(&format!("192.0.2.{i}"))).unwrap())
            .collect();
        assert_eq!(gate.admit(ip("198.51.100.1")).unwrap_err(), Refused::Full);
        drop(held);
        drop(others);
        assert_eq!(gate.open(host(1)), (0, 0));
        assert!(gate.open.lock().unwrap().per_host.is_empty());
    }
}
