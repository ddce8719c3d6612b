//! The relay's data plane on the wire, sans I/O and without allocating:
//! what a client sends for a peer (ChannelData, RFC 8656 section 12.4, and
//! Send indications, section 11.4) and what goes back (ChannelData, or a
//! Data indication, section 11.5). The `turn` crate's own data path copies
//! every packet into new buffers several times; this one reads and writes
//! in place.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;

pub(crate) const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const SEND_INDICATION: u16 = 0x0016;
const DATA_INDICATION: u16 = 0x0017;
const ATTR_XOR_PEER_ADDRESS: u16 = 0x0012;
const ATTR_DATA: u16 = 0x0013;
const STUN_HEADER: usize = 20;
const CHANNEL_HEADER: usize = 4;
/// Channel numbers (RFC 5766 section 11; RFC 8656 narrowed it to
/// 0x4000-0x4FFF, and clients of either may be met).
pub(crate) const CHANNELS: std::ops::RangeInclusive<u16> = 0x4000..=0x7FFF;
/// Room to leave before a peer's datagram for the largest header put in
/// front of it: a Data indication with an IPv6 XOR-PEER-ADDRESS.
pub(crate) const HEADROOM: usize = STUN_HEADER + 4 + 20 + 4;

/// What a client sent for a peer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FromClient<'a> {
    Channel {
        number: u16,
        data: &'a [u8],
    },
    Send {
        peer: SocketAddr,
        data: &'a [u8],
    },
    /// ChannelData or a Send indication that does not parse: dropped.
    Malformed,
}

/// The data in `b`, or `None` when `b` is not ChannelData or a Send
/// indication (a request for the `turn` crate).
pub(crate) fn from_client(b: &[u8]) -> Option<FromClient<'_>> {
    let first = *b.first()?;
    if first >> 6 == 1 {
        return Some(channel_data(b).unwrap_or(FromClient::Malformed));
    }
    if b.len() < STUN_HEADER
        || b[4..8] != MAGIC_COOKIE
        || u16::from_be_bytes([b[0], b[1]]) != SEND_INDICATION
    {
        return None;
    }
    Some(send_indication(b).unwrap_or(FromClient::Malformed))
}

fn channel_data(b: &[u8]) -> Option<FromClient<'_>> {
    let number = u16::from_be_bytes([*b.first()?, *b.get(1)?]);
    let len = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]) as usize;
    let data = b.get(CHANNEL_HEADER..CHANNEL_HEADER + len)?;
    CHANNELS
        .contains(&number)
        .then_some(FromClient::Channel { number, data })
}

fn send_indication(b: &[u8]) -> Option<FromClient<'_>> {
    let end = STUN_HEADER + u16::from_be_bytes([b[2], b[3]]) as usize;
    let body = b.get(..end)?;
    let (mut peer, mut data) = (None, None);
    let mut at = STUN_HEADER;
    while at + 4 <= body.len() {
        let typ = u16::from_be_bytes([body[at], body[at + 1]]);
        let len = u16::from_be_bytes([body[at + 2], body[at + 3]]) as usize;
        let value = body.get(at + 4..at + 4 + len)?;
        match typ {
            ATTR_XOR_PEER_ADDRESS if peer.is_none() => peer = Some(xor_address(value, b)?),
            ATTR_DATA if data.is_none() => data = Some(value),
            _ => {}
        }
        at += 4 + len.next_multiple_of(4);
    }
    Some(FromClient::Send {
        peer: peer?,
        data: data?,
    })
}

/// The key an address is XORed with: the magic cookie, then (for IPv6)
/// the transaction ID (RFC 8489 section 14.2).
fn xor_key(header: &[u8]) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..4].copy_from_slice(&MAGIC_COOKIE);
    key[4..].copy_from_slice(&header[8..20]);
    key
}

pub(crate) fn xor_address(v: &[u8], header: &[u8]) -> Option<SocketAddr> {
    let port = u16::from_be_bytes([*v.get(2)?, *v.get(3)?]) ^ 0x2112;
    let key = xor_key(header);
    let ip = match (v.get(1)?, v.len()) {
        (1, 8) => {
            let mut a = [0u8; 4];
            for (i, b) in a.iter_mut().enumerate() {
                *b = v[4 + i] ^ key[i];
            }
            IpAddr::V4(Ipv4Addr::from(a))
        }
        (2, 20) => {
            let mut a = [0u8; 16];
            for (i, b) in a.iter_mut().enumerate() {
                *b = v[4 + i] ^ key[i];
            }
            IpAddr::V6(Ipv6Addr::from(a))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Puts a ChannelData header for the `len` bytes at `buf[at..]` in front
/// of them; the frame is the returned range. (Over UDP no padding is needed;
/// the TCP writer pads.)
pub(crate) fn channel_frame(buf: &mut [u8], at: usize, len: usize, number: u16) -> Range<usize> {
    let start = at - CHANNEL_HEADER;
    buf[start..start + 2].copy_from_slice(&number.to_be_bytes());
    buf[start + 2..at].copy_from_slice(&(len as u16).to_be_bytes());
    start..at + len
}

/// Puts a Data indication's header from `peer` in front of the `len` bytes
/// at `buf[at..]` (`at` at least [`HEADROOM`]) and pads them (`buf` has 3
/// bytes to spare after them); the frame is the returned range.
pub(crate) fn data_indication(
    buf: &mut [u8],
    at: usize,
    len: usize,
    peer: SocketAddr,
    transaction: [u8; 12],
) -> Range<usize> {
    let address_len = if peer.is_ipv4() { 8 } else { 20 };
    let header = STUN_HEADER + 4 + address_len + 4;
    let padded = len.next_multiple_of(4);
    buf[at + len..at + padded].fill(0);
    let start = at - header;
    let h = &mut buf[start..at];
    h[0..2].copy_from_slice(&DATA_INDICATION.to_be_bytes());
    h[2..4].copy_from_slice(&((header - STUN_HEADER + padded) as u16).to_be_bytes());
    h[4..8].copy_from_slice(&MAGIC_COOKIE);
    h[8..20].copy_from_slice(&transaction);
    let key = xor_key(h);
    let a = &mut h[STUN_HEADER..];
    a[0..2].copy_from_slice(&ATTR_XOR_PEER_ADDRESS.to_be_bytes());
    a[2..4].copy_from_slice(&(address_len as u16).to_be_bytes());
    a[4] = 0;
    a[5] = if peer.is_ipv4() { 1 } else { 2 };
    a[6..8].copy_from_slice(&(peer.port() ^ 0x2112).to_be_bytes());
    match peer.ip() {
        IpAddr::V4(ip) => {
            for (i, b) in ip.octets().iter().enumerate() {
                a[8 + i] = b ^ key[i];
            }
        }
        IpAddr::V6(ip) => {
            for (i, b) in ip.octets().iter().enumerate() {
                a[8 + i] = b ^ key[i];
            }
        }
    }
    let d = &mut a[4 + address_len..];
    d[0..2].copy_from_slice(&ATTR_DATA.to_be_bytes());
    d[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    start..at + padded
}

#[cfg(test)]
mod tests {
    use super::*;
    use stun::agent::TransactionId;
    use stun::message::{Getter, Message, MessageType, CLASS_INDICATION, METHOD_DATA, METHOD_SEND};
    use turn::proto::data::Data;
    use turn::proto::peeraddr::PeerAddress;

    fn send_indication_bytes(peer: SocketAddr, data: &[u8]) -> Vec<u8> {
        let mut m = Message::new();
        m.build(&[
            Box::new(TransactionId::new()),
            Box::new(MessageType::new(METHOD_SEND, CLASS_INDICATION)),
            Box::new(PeerAddress {
                ip: peer.ip(),
                port: peer.port(),
            }),
            Box::new(Data(data.to_vec())),
        ])
        .unwrap();
        m.raw
    }

    #[test]
    fn client_data_parses_and_everything_else_is_left_alone() {
        for peer in ["198.51.100.7:5000", "[2001:db8::9]:443"] {
            let peer: SocketAddr = peer.parse().unwrap();
            let m = send_indication_bytes(peer, b"hello");
            assert_eq!(
                from_client(&m),
                Some(FromClient::Send {
                    peer,
                    data: b"hello"
                })
            );
            // Truncated anywhere: malformed, never a panic.
            for cut in 20..m.len() {
                assert_eq!(from_client(&m[..cut]), Some(FromClient::Malformed), "{cut}");
            }
        }
        let mut cd = vec![0x40, 0x01, 0x00, 0x03, 1, 2, 3, 0];
        assert_eq!(
            from_client(&cd),
            Some(FromClient::Channel {
                number: 0x4001,
                data: &[1, 2, 3]
            })
        );
        cd[3] = 9;
        assert_eq!(from_client(&cd), Some(FromClient::Malformed));
        assert_eq!(from_client(&[0x7f]), Some(FromClient::Malformed));
        assert_eq!(from_client(&[]), None);
        // A Binding request, an Allocate: for the crate.
        let mut req = vec![0, 1, 0, 0];
        req.extend_from_slice(&MAGIC_COOKIE);
        req.extend_from_slice(&[0; 12]);
        assert_eq!(from_client(&req), None);
        req[1] = 3;
        assert_eq!(from_client(&req), None);
    }

    #[test]
    fn data_indications_decode_with_the_stun_crate() {
        for peer in ["198.51.100.7:5000", "[2001:db8::9]:443"] {
            let peer: SocketAddr = peer.parse().unwrap();
            for len in [0, 1, 5, 8, 1500] {
                let mut buf = vec![0xEEu8; HEADROOM + 1500 + 3];
                let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
                buf[HEADROOM..HEADROOM + len].copy_from_slice(&payload);
                let frame = data_indication(&mut buf, HEADROOM, len, peer, [7; 12]);
                let mut m = Message::new();
                m.raw = buf[frame].to_vec();
                m.decode().unwrap();
                assert_eq!(m.typ, MessageType::new(METHOD_DATA, CLASS_INDICATION));
                let mut got = PeerAddress::default();
                got.get_from(&m).unwrap();
                assert_eq!(SocketAddr::new(got.ip, got.port), peer);
                let mut data = Data::default();
                data.get_from(&m).unwrap();
                assert_eq!(data.0, payload);
            }
        }
        let mut buf = [0u8; 12];
        buf[4..7].copy_from_slice(&[9, 8, 7]);
        let frame = channel_frame(&mut buf, 4, 3, 0x4002);
        assert_eq!(&buf[frame], &[0x40, 0x02, 0, 3, 9, 8, 7]);
    }
}
