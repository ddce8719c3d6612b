//! Address vocabulary shared by the relay and the main server (which
//! re-exports it from `onair::net`): client hosts and CIDR ranges.

use std::net::{IpAddr, Ipv6Addr};

/// `ip` with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) turned back
/// into the IPv4 address it is: a dual-stack socket shows IPv4 clients that
/// way, and sends to such an address reach IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The address a per-client limit applies to: an IPv4 address (IPv4-mapped
/// IPv6 included), or an IPv6 address's /64 (a single subscriber usually
/// gets a whole /64, so per-address limits on full IPv6 addresses would be
/// no limit at all).
pub fn host_of(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
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
    /// `addr/prefix`; a prefix longer than the address is clamped to it.
    pub const fn new(addr: IpAddr, prefix: u8) -> Cidr {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        Cidr {
            addr,
            prefix: if prefix > max { max } else { prefix },
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client reached over an IPv6 socket is its IPv4 address.
        match (self.addr, canonical(ip)) {
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
        assert_eq!(Cidr::new(ip("10.0.0.0"), 40).to_string(), "10.0.0.0/32");
    }
}
