//! The SRTP protection profiles a DTLS ClientHello offers (RFC 5764 4.1.1,
//! the `use_srtp` extension), read before the handshake starts so the
//! server can prefer AES-GCM (RFC 7714) whenever the client offers it:
//! rtc-dtls answers with the client's first profile it supports, and
//! Chromium lists AES-CM first.
//!
//! Only the first record of the first datagram is read, with every length
//! checked against what is there (RFC 6347 4.1 record, 4.2.2 handshake
//! header; RFC 5246 7.4.1.2 ClientHello).

/// `SRTP_AEAD_AES_128_GCM`.
pub const AEAD_AES_128_GCM: u16 = 0x0007;
/// The `use_srtp` extension's type.
const USE_SRTP: u16 = 14;
/// A ClientHello lists a handful of profiles; more is not a client we serve.
const MAX_PROFILES: usize = 16;

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| usize::from(b[0]))
    }

    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }

    /// A vector with a length prefix of `width` bytes.
    fn vec(&mut self, width: usize) -> Option<&'a [u8]> {
        let n = match width {
            1 => self.u8()?,
            2 => self.u16()?,
            _ => return None,
        };
        self.take(n)
    }
}

/// The profiles the datagram's ClientHello offers, in its order; `None`
/// when it is not a ClientHello or the extension is not in its first
/// fragment.
pub fn offered_profiles(datagram: &[u8]) -> Option<Vec<u16>> {
    let mut r = Reader { b: datagram };
    // Record header: content type 22 (handshake), version, epoch,
    // sequence number, length.
    let header = r.take(13)?;
    if header[0] != 22 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([header[11], header[12]]));
    let mut r = Reader { b: r.take(len)? };
    // Handshake header: type 1 (ClientHello), length, message_seq,
    // fragment_offset, fragment_length.
    if r.u8()? != 1 {
        return None;
    }
    let _length = r.u24()?;
    let _seq = r.u16()?;
    if r.u24()? != 0 {
        return None;
    }
    let fragment = r.u24()?;
    let mut r = Reader {
        b: r.take(fragment)?,
    };
    r.take(2 + 32)?; // client_version, random
    r.vec(1)?; // session_id
    r.vec(1)?; // cookie
    r.vec(2)?; // cipher_suites
    r.vec(1)?; // compression_methods
    let mut ext = Reader { b: r.vec(2)? };
    while !ext.b.is_empty() {
        let typ = ext.u16()?;
        let data = ext.vec(2)?;
        if typ as u16 != USE_SRTP {
            continue;
        }
        let mut d = Reader { b: data };
        let list = d.vec(2)?;
        if list.len() % 2 != 0 || list.len() / 2 > MAX_PROFILES {
            return None;
        }
        return Some(
            list.chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `SRTP_AES128_CM_HMAC_SHA1_80`.
    const AES_CM_128_HMAC_SHA1_80: u16 = 0x0001;

    /// A minimal ClientHello record with `extensions`.
    fn hello(extensions: &[u8]) -> Vec<u8> {
        let mut body = vec![0xfe, 0xfd];
        body.extend_from_slice(&[7; 32]);
        body.extend_from_slice(&[0, 0]); // session id, cookie
        body.extend_from_slice(&[0, 2, 0xc0, 0x2b]); // one cipher suite
        body.extend_from_slice(&[1, 0]); // null compression
        body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
        body.extend_from_slice(extensions);
        let n = body.len() as u32;
        let mut hs = vec![1];
        hs.extend_from_slice(&n.to_be_bytes()[1..]);
        hs.extend_from_slice(&[0, 0, 0, 0, 0]);
        hs.extend_from_slice(&n.to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        let mut rec = vec![22, 0xfe, 0xff, 0, 0, 0, 0, 0, 0, 0, 0];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    fn use_srtp(profiles: &[u16]) -> Vec<u8> {
        let mut d = ((profiles.len() * 2) as u16).to_be_bytes().to_vec();
        for p in profiles {
            d.extend_from_slice(&p.to_be_bytes());
        }
        d.push(0); // no MKI
        let mut e = USE_SRTP.to_be_bytes().to_vec();
        e.extend_from_slice(&(d.len() as u16).to_be_bytes());
        e.extend_from_slice(&d);
        e
    }

    #[test]
    fn reads_the_profiles_and_nothing_else() {
        let mut other = vec![0, 23, 0, 0]; // extended_master_secret
        other.extend(use_srtp(&[1, 7, 8]));
        let cases: Vec<(Vec<u8>, Option<Vec<u16>>)> = vec![
            (hello(&other), Some(vec![1, 7, 8])),
            (
                hello(&use_srtp(&[AEAD_AES_128_GCM])),
                Some(vec![AEAD_AES_128_GCM]),
            ),
            (
                hello(&use_srtp(&[AES_CM_128_HMAC_SHA1_80])),
                Some(vec![AES_CM_128_HMAC_SHA1_80]),
            ),
            (hello(&[0, 23, 0, 0]), None),
            (hello(&[]), None),
            (vec![23, 0xfe, 0xfd], None),
            (Vec::new(), None),
        ];
        for (d, want) in &cases {
            assert_eq!(offered_profiles(d), *want, "{d:02x?}");
        }
        // Every truncation of a good hello is refused without a panic.
        let good = hello(&other);
        for n in 0..good.len() {
            assert_eq!(offered_profiles(&good[..n]), None, "cut at {n}");
        }
    }
}
