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
//! - [`raise_open_files`]: the file descriptors those caps need.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

// Shared with the TURN relay, which cannot depend on this crate.
pub use onair_turn::addr::{host_of, Cidr, CidrError};

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
        self.admit_from(ip, true)
    }

    /// Like [`admit`](Self::admit); with `cap_host` false only the global
    /// cap applies: for a trusted reverse proxy, whose one address stands
    /// for every client behind it.
    pub fn admit_from(self: &Arc<Self>, ip: IpAddr, cap_host: bool) -> Result<ConnPermit, Refused> {
        let host = host_of(ip);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.total >= self.limits.total {
            crate::metrics::connection_refused(self.name);
            return Err(Refused::Full);
        }
        let n = open.per_host.get(&host).copied().unwrap_or(0);
        if cap_host && n >= self.limits.per_host {
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

/// Open files the listeners' caps add up to, with room for the database,
/// recordings, pulls and the WebRTC sockets. A shell's default soft limit
/// (1 024) would make every cap above it fiction: accepts would fail with
/// EMFILE long before a gate refused anyone.
pub fn open_files_wanted() -> u64 {
    let caps = crate::http::listen::MAX_CONNECTIONS
        + crate::icecast::MAX_CONNECTIONS
        + crate::rtmp::MAX_CONNECTIONS
        + crate::sfu::tcp::MAX_CONNECTIONS;
    (caps as u64 + 4096).next_power_of_two()
}

/// Raises this process's soft open-file limit to `want`, or as far as the
/// hard limit allows (an unprivileged process may go up to it, never past
/// it). Returns the soft limit now in force. Go's runtime and nginx's
/// `worker_rlimit_nofile` do the same; systemd's unit sets both limits.
pub fn raise_open_files(want: u64) -> std::io::Result<u64> {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let target = want.min(l.rlim_max);
    if l.rlim_cur < target {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: l.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        return Ok(target);
    }
    Ok(l.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
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
        let host = |i: u16| IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, i));
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
