//! The two facts the driver needs from a datagram before any peer owns it:
//! is it STUN, and which of our ICE usernames does it name (RFC 8489 5, 14.3).

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const ATTR_USERNAME: u16 = 0x0006;
const HEADER_LEN: usize = 20;

/// STUN messages start with two zero bits and carry the magic cookie;
/// DTLS (20..=63) and RTP/RTCP (128..=191) never do (RFC 7983 7).
pub fn is_stun(b: &[u8]) -> bool {
    b.len() >= HEADER_LEN && b[0] < 2 && b[4..8] == MAGIC_COOKIE
}

/// The first half of USERNAME (`ours:theirs`): the ufrag we gave out.
pub fn local_ufrag(b: &[u8]) -> Option<&str> {
    if !is_stun(b) {
        return None;
    }
    let len = u16::from_be_bytes([b[2], b[3]]) as usize;
    let body = b.get(HEADER_LEN..HEADER_LEN + len)?;
    let mut i = 0;
    while i + 4 <= body.len() {
        let typ = u16::from_be_bytes([body[i], body[i + 1]]);
        let alen = u16::from_be_bytes([body[i + 2], body[i + 3]]) as usize;
        let value = body.get(i + 4..i + 4 + alen)?;
        if typ == ATTR_USERNAME {
            let s = std::str::from_utf8(value).ok()?;
            return s.split(':').next();
        }
        i += 4 + alen.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A bare binding request naming `username`, for tests of routing.
    pub(crate) fn binding_request(username: &str) -> Vec<u8> {
        let mut attr = vec![0x00, 0x06];
        attr.extend((username.len() as u16).to_be_bytes());
        attr.extend(username.as_bytes());
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend((attr.len() as u16).to_be_bytes());
        m.extend(MAGIC_COOKIE);
        m.extend([7u8; 12]);
        m.extend(attr);
        m
    }

    #[test]
    fn finds_our_ufrag() {
        let cases: &[(Vec<u8>, Option<&str>)] = &[
            (binding_request("abcd1234:remote"), Some("abcd1234")),
            (binding_request("x:y"), Some("x")),
            (
                vec![
                    0x80, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                ],
                None,
            ),
            (vec![22, 254, 253, 0, 0], None),
            (binding_request("abcd")[..22].to_vec(), None),
        ];
        for (msg, want) in cases {
            assert_eq!(local_ufrag(msg), *want);
        }
    }
}
