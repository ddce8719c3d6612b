//! The two SRTP transforms, in place: AES-CM + HMAC-SHA1-80 (RFC 3711 4.1.1,
//! 4.2.1, 3.4) and AEAD_AES_128_GCM (RFC 7714 8 and 9), for RTP and RTCP.
//! Keys are derived and expanded once, in `Outbound::new`/`Inbound::new`;
//! per packet there is no allocation, no lock and no key setup.

use super::index::{RecvStream, SendStream, MAX_SRTCP_INDEX};
use super::kdf::{self, aes_ctr};
use super::{MasterKey, Profile, SrtpError};
use aes::cipher::KeyInit;
use aes::Aes128Enc;
use hmac::{Hmac, Mac};
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_128_GCM};
use sha1::Sha1;

/// The `_80` profile's tag: HMAC-SHA1 truncated to 80 bits (RFC 3711 5.2).
const CM_TAG_LEN: usize = 10;
/// GCM's tag: the full 16 bytes (RFC 7714 14.2: `SRTP_AEAD_AES_128_GCM` has
/// a 16-octet authentication tag).
const GCM_TAG_LEN: usize = 16;
/// The SRTCP E flag: the packet's payload is encrypted (RFC 3711 3.4).
const E_FLAG: u32 = 1 << 31;
/// The SRTCP index word: E flag and 31-bit index.
const E_INDEX_LEN: usize = 4;
/// What SRTCP leaves in the clear: the first RTCP header and its sender's
/// SSRC (RFC 3711 3.4).
const RTCP_CLEAR_LEN: usize = 8;
/// RTP's fixed header (RFC 3550 5.1).
const RTP_FIXED_LEN: usize = 12;

/// One packet kind's (RTP or RTCP) session keys, expanded for use.
// Made once per session and never moved after: the size gap costs nothing,
// while a box would cost a pointer chase per packet.
#[allow(clippy::large_enum_variant)]
enum Keys {
    Cm {
        aes: Aes128Enc,
        salt: [u8; 14],
        /// Keyed HMAC with the inner and outer pads already hashed: each
        /// packet clones it and hashes only its own bytes.
        mac: Hmac<Sha1>,
    },
    Gcm {
        aead: LessSafeKey,
        salt: [u8; 12],
    },
}

impl Keys {
    fn cm(key: &[u8; 16], salt: &[u8], auth_key: &[u8; 20]) -> Self {
        let mut s = [0u8; 14];
        s.copy_from_slice(salt);
        Keys::Cm {
            aes: Aes128Enc::new(key.into()),
            salt: s,
            mac: <Hmac<Sha1> as hmac::KeyInit>::new_from_slice(auth_key)
                .expect("HMAC takes a key of any length"),
        }
    }

    fn gcm(key: &[u8; 16], salt: &[u8]) -> Self {
        let mut s = [0u8; 12];
        s.copy_from_slice(salt);
        Keys::Gcm {
            aead: LessSafeKey::new(
                UnboundKey::new(&AES_128_GCM, key).expect("AES-128 takes a 16-byte key"),
            ),
            salt: s,
        }
    }

    /// Session keys for one packet kind, from the master key (RFC 3711 4.3.2
    /// labels). Session keys are as long as the master key; salts as the
    /// profile's; the HMAC-SHA1 key is 160 bits (RFC 3711 8.2).
    fn derive(master: &MasterKey, labels: [u8; 3]) -> Self {
        let [encryption, auth, salt] = labels;
        let prf = kdf::master_cipher(&master.key);
        let mut key = [0u8; 16];
        kdf::derive(&prf, &master.salt, encryption, &mut key);
        let mut session_salt = [0u8; 14];
        let session_salt = &mut session_salt[..master.profile.master_salt_len()];
        kdf::derive(&prf, &master.salt, salt, session_salt);
        match master.profile {
            Profile::Aes128CmHmacSha1_80 => {
                let mut auth_key = [0u8; 20];
                kdf::derive(&prf, &master.salt, auth, &mut auth_key);
                Keys::cm(&key, session_salt, &auth_key)
            }
            Profile::AeadAes128Gcm => Keys::gcm(&key, session_salt),
        }
    }
}

/// One direction's session: RTP and RTCP keys.
struct Session {
    profile: Profile,
    rtp: Keys,
    rtcp: Keys,
}

impl Session {
    fn new(master: &MasterKey) -> Self {
        use super::kdf::*;
        Session {
            profile: master.profile,
            rtp: Keys::derive(master, [RTP_ENCRYPTION, RTP_AUTH, RTP_SALT]),
            rtcp: Keys::derive(master, [RTCP_ENCRYPTION, RTCP_AUTH, RTCP_SALT]),
        }
    }
}

/// Our sending direction's keys: seals RTP and RTCP. Read-only once built.
pub struct Outbound(Session);

/// The peer's sending direction's keys: opens its SRTP and SRTCP.
pub struct Inbound(Session);

impl Outbound {
    /// Derives the session keys from our master key (see
    /// [`super::keys_from_exporter`]).
    pub fn new(ours: &MasterKey) -> Self {
        Outbound(Session::new(ours))
    }

    pub fn profile(&self) -> Profile {
        self.0.profile
    }

    /// Seals the RTP packet in `buf[..len]` in place and returns the SRTP
    /// packet's length, `len + profile().rtp_overhead()`; `buf` must be that
    /// long. `stream` is the packet's SSRC's (checked). A sequence number
    /// already sent gets its original index (see the module's index
    /// contract).
    pub fn protect_rtp(
        &self,
        stream: &mut SendStream,
        buf: &mut [u8],
        len: usize,
    ) -> Result<usize, SrtpError> {
        let sealed = len + self.0.profile.rtp_overhead();
        if buf.len() < sealed {
            return Err(SrtpError::NoRoom);
        }
        let header = rtp_header_len(&buf[..len])?;
        let (seq, ssrc) = rtp_seq_ssrc(buf);
        let index = stream.rtp_index(ssrc, seq)?;
        match &self.0.rtp {
            Keys::Cm { aes, salt, mac } => {
                let iv = cm_iv(salt, ssrc, index);
                aes_ctr(aes, &iv, &mut buf[header..len]);
                // RFC 3711 4.2: the tag covers the packet and then the ROC.
                let mut m = mac.clone();
                m.update(&buf[..len]);
                m.update(&roc(index).to_be_bytes());
                buf[len..sealed].copy_from_slice(&m.finalize().into_bytes()[..CM_TAG_LEN]);
            }
            Keys::Gcm { aead, salt } => {
                let (head, body) = buf.split_at_mut(header);
                let tag = aead
                    .seal_in_place_separate_tag(
                        gcm_rtp_nonce(salt, ssrc, index),
                        Aad::from(&*head),
                        &mut body[..len - header],
                    )
                    .map_err(|_| SrtpError::Malformed)?;
                buf[len..sealed].copy_from_slice(tag.as_ref());
            }
        }
        Ok(sealed)
    }

    /// Seals the (compound) RTCP packet in `buf[..len]` in place with the
    /// stream's next SRTCP index, encrypted (E flag set), and returns the
    /// SRTCP packet's length, `len + profile().rtcp_overhead()`.
    pub fn protect_rtcp(
        &self,
        stream: &mut SendStream,
        buf: &mut [u8],
        len: usize,
    ) -> Result<usize, SrtpError> {
        let sealed = len + self.0.profile.rtcp_overhead();
        if buf.len() < sealed {
            return Err(SrtpError::NoRoom);
        }
        let ssrc = rtcp_ssrc(&buf[..len])?;
        let index = stream.rtcp_index(ssrc)?;
        let e_index = (E_FLAG | index).to_be_bytes();
        match &self.0.rtcp {
            Keys::Cm { aes, salt, mac } => {
                // RFC 3711 3.4: header | encrypted | E+index | tag, the tag
                // over everything before it.
                let iv = cm_iv(salt, ssrc, u64::from(index));
                aes_ctr(aes, &iv, &mut buf[RTCP_CLEAR_LEN..len]);
                buf[len..len + E_INDEX_LEN].copy_from_slice(&e_index);
                let mut m = mac.clone();
                m.update(&buf[..len + E_INDEX_LEN]);
                buf[len + E_INDEX_LEN..sealed]
                    .copy_from_slice(&m.finalize().into_bytes()[..CM_TAG_LEN]);
            }
            Keys::Gcm { aead, salt } => {
                // RFC 7714 9.2 and 17: header | ciphertext | tag | E+index,
                // with the header and the E+index word as associated data.
                let aad = rtcp_gcm_aad(&buf[..RTCP_CLEAR_LEN], e_index);
                let tag = aead
                    .seal_in_place_separate_tag(
                        gcm_rtcp_nonce(salt, ssrc, index),
                        Aad::from(aad),
                        &mut buf[RTCP_CLEAR_LEN..len],
                    )
                    .map_err(|_| SrtpError::Malformed)?;
                buf[len..len + GCM_TAG_LEN].copy_from_slice(tag.as_ref());
                buf[len + GCM_TAG_LEN..sealed].copy_from_slice(&e_index);
            }
        }
        Ok(sealed)
    }
}

impl Inbound {
    /// Derives the session keys from the peer's master key (see
    /// [`super::keys_from_exporter`]).
    pub fn new(theirs: &MasterKey) -> Self {
        Inbound(Session::new(theirs))
    }

    pub fn profile(&self) -> Profile {
        self.0.profile
    }

    /// Opens the SRTP packet `buf` in place: on success the RTP packet is
    /// `buf[..n]` for the returned `n`, and the stream has recorded its
    /// index. A replay, a packet older than the window, or one that does not
    /// authenticate is refused and changes nothing.
    pub fn unprotect_rtp(
        &self,
        stream: &mut RecvStream,
        buf: &mut [u8],
    ) -> Result<usize, SrtpError> {
        let tag_len = self.0.profile.rtp_overhead();
        let header = rtp_header_len(buf)?;
        let end = buf
            .len()
            .checked_sub(tag_len)
            .filter(|&end| end >= header)
            .ok_or(SrtpError::Malformed)?;
        let (seq, ssrc) = rtp_seq_ssrc(buf);
        let index = stream.rtp_index(ssrc, seq)?;
        match &self.0.rtp {
            Keys::Cm { aes, salt, mac } => {
                let mut m = mac.clone();
                m.update(&buf[..end]);
                m.update(&roc(index).to_be_bytes());
                m.verify_truncated_left(&buf[end..])
                    .map_err(|_| SrtpError::Auth)?;
                let iv = cm_iv(salt, ssrc, index);
                aes_ctr(aes, &iv, &mut buf[header..end]);
            }
            Keys::Gcm { aead, salt } => {
                let (head, body) = buf.split_at_mut(header);
                aead.open_in_place(gcm_rtp_nonce(salt, ssrc, index), Aad::from(&*head), body)
                    .map_err(|_| SrtpError::Auth)?;
            }
        }
        stream.rtp.accept(index);
        Ok(end)
    }

    /// Opens the SRTCP packet `buf` in place, encrypted or not (E flag):
    /// on success the RTCP packet is `buf[..n]` for the returned `n`.
    /// Replays and forgeries are refused and change nothing.
    pub fn unprotect_rtcp(
        &self,
        stream: &mut RecvStream,
        buf: &mut [u8],
    ) -> Result<usize, SrtpError> {
        let n = buf.len();
        if n < RTCP_CLEAR_LEN + self.0.profile.rtcp_overhead() {
            return Err(SrtpError::Malformed);
        }
        let ssrc = rtcp_ssrc(buf)?;
        match &self.0.rtcp {
            Keys::Cm { aes, salt, mac } => {
                let tag_at = n - CM_TAG_LEN;
                let end = tag_at - E_INDEX_LEN;
                let word = be32(&buf[end..tag_at]);
                let index = word & MAX_SRTCP_INDEX;
                let checked = stream.rtcp_index(ssrc, index)?;
                let mut m = mac.clone();
                m.update(&buf[..tag_at]);
                m.verify_truncated_left(&buf[tag_at..])
                    .map_err(|_| SrtpError::Auth)?;
                if word & E_FLAG != 0 {
                    let iv = cm_iv(salt, ssrc, u64::from(index));
                    aes_ctr(aes, &iv, &mut buf[RTCP_CLEAR_LEN..end]);
                }
                stream.rtcp.accept(checked);
                Ok(end)
            }
            Keys::Gcm { aead, salt } => {
                let word_at = n - E_INDEX_LEN;
                let end = word_at - GCM_TAG_LEN;
                let word = be32(&buf[word_at..]);
                let index = word & MAX_SRTCP_INDEX;
                let checked = stream.rtcp_index(ssrc, index)?;
                let tag = Tag::try_from(&buf[end..word_at]).map_err(|_| SrtpError::Malformed)?;
                let nonce = gcm_rtcp_nonce(salt, ssrc, index);
                let opened = if word & E_FLAG != 0 {
                    let aad = rtcp_gcm_aad(&buf[..RTCP_CLEAR_LEN], word.to_be_bytes());
                    aead.open_in_place_separate_tag(
                        nonce,
                        Aad::from(aad),
                        tag,
                        &mut buf[RTCP_CLEAR_LEN..end],
                        0..,
                    )
                    .map(|_| ())
                } else {
                    // Not encrypted (RFC 7714 9.3): the whole packet and the
                    // E+index word are the associated data. Moving the word
                    // over the tag (saved above) makes them one slice.
                    buf.copy_within(word_at.., end);
                    aead.open_in_place_separate_tag(
                        nonce,
                        Aad::from(&buf[..end + E_INDEX_LEN]),
                        tag,
                        &mut [],
                        0..,
                    )
                    .map(|_| ())
                };
                opened.map_err(|_| SrtpError::Auth)?;
                stream.rtcp.accept(checked);
                Ok(end)
            }
        }
    }
}

/// The RTP header's length (RFC 3550 5.1 and 5.3.1): the fixed part, the
/// CSRCs, and the header extension if the X bit is set. It must be version
/// 2 and fit in `packet`.
fn rtp_header_len(packet: &[u8]) -> Result<usize, SrtpError> {
    let first = *packet.first().ok_or(SrtpError::Malformed)?;
    if packet.len() < RTP_FIXED_LEN || first >> 6 != 2 {
        return Err(SrtpError::Malformed);
    }
    let mut len = RTP_FIXED_LEN + 4 * usize::from(first & 0x0f);
    if first & 0x10 != 0 {
        let words = packet.get(len + 2..len + 4).ok_or(SrtpError::Malformed)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    if len > packet.len() {
        return Err(SrtpError::Malformed);
    }
    Ok(len)
}

/// Sequence number and SSRC of an RTP packet at least 12 bytes long.
fn rtp_seq_ssrc(packet: &[u8]) -> (u16, u32) {
    (
        u16::from_be_bytes([packet[2], packet[3]]),
        be32(&packet[8..12]),
    )
}

/// The sender's SSRC of an RTCP packet: version 2 and at least the 8 bytes
/// SRTCP leaves in the clear.
fn rtcp_ssrc(packet: &[u8]) -> Result<u32, SrtpError> {
    if packet.len() < RTCP_CLEAR_LEN || packet[0] >> 6 != 2 {
        return Err(SrtpError::Malformed);
    }
    Ok(be32(&packet[4..8]))
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The rollover counter part of a packet index.
fn roc(index: u64) -> u32 {
    (index >> 16) as u32
}

/// AES-CM's IV (RFC 3711 4.1.1): `(k_s * 2^16) XOR (SSRC * 2^64) XOR
/// (i * 2^16)`, the SRTP packet index or the SRTCP index as `i`.
pub(super) fn cm_iv(salt: &[u8; 14], ssrc: u32, index: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[4..8].copy_from_slice(&ssrc.to_be_bytes());
    iv[8..14].copy_from_slice(&index.to_be_bytes()[2..]);
    for (b, s) in iv.iter_mut().zip(salt) {
        *b ^= s;
    }
    iv
}

/// GCM's SRTP IV (RFC 7714 8.1): `00 00 | SSRC | ROC | SEQ`, XOR the salt.
/// ROC and SEQ together are the 48-bit index.
fn gcm_rtp_nonce(salt: &[u8; 12], ssrc: u32, index: u64) -> Nonce {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[6..12].copy_from_slice(&index.to_be_bytes()[2..]);
    for (b, s) in iv.iter_mut().zip(salt) {
        *b ^= s;
    }
    Nonce::assume_unique_for_key(iv)
}

/// GCM's SRTCP IV (RFC 7714 9.1): `00 00 | SSRC | 00 00 | 0 | SRTCP index`,
/// XOR the salt.
fn gcm_rtcp_nonce(salt: &[u8; 12], ssrc: u32, index: u32) -> Nonce {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[8..12].copy_from_slice(&(index & MAX_SRTCP_INDEX).to_be_bytes());
    for (b, s) in iv.iter_mut().zip(salt) {
        *b ^= s;
    }
    Nonce::assume_unique_for_key(iv)
}

/// GCM's SRTCP associated data for an encrypted packet (RFC 7714 9.2): the
/// 8 clear bytes and the E+index word.
fn rtcp_gcm_aad(clear: &[u8], e_index: [u8; 4]) -> [u8; RTCP_CLEAR_LEN + E_INDEX_LEN] {
    let mut aad = [0u8; RTCP_CLEAR_LEN + E_INDEX_LEN];
    aad[..RTCP_CLEAR_LEN].copy_from_slice(clear);
    aad[RTCP_CLEAR_LEN..].copy_from_slice(&e_index);
    aad
}

#[cfg(test)]
impl Outbound {
    /// A context from session keys, skipping the key derivation: RFC 7714's
    /// vectors (section 16 and 17) give session keys, the same for RTP and
    /// RTCP.
    pub(super) fn from_session_keys(profile: Profile, key: &[u8; 16], salt: &[u8]) -> Self {
        Outbound(Session::from_session_keys(profile, key, salt))
    }
}

#[cfg(test)]
impl Inbound {
    pub(super) fn from_session_keys(profile: Profile, key: &[u8; 16], salt: &[u8]) -> Self {
        Inbound(Session::from_session_keys(profile, key, salt))
    }
}

#[cfg(test)]
impl Session {
    fn from_session_keys(profile: Profile, key: &[u8; 16], salt: &[u8]) -> Self {
        assert_eq!(profile, Profile::AeadAes128Gcm, "the RFC vectors are GCM's");
        Session {
            profile,
            rtp: Keys::gcm(key, salt),
            rtcp: Keys::gcm(key, salt),
        }
    }
}

/// Sizes of what a viewer holds, for the docs and a test that pins them.
#[cfg(test)]
pub(super) fn sizes() -> [(&'static str, usize); 5] {
    use std::mem::size_of;
    [
        ("Outbound", size_of::<Outbound>()),
        ("Inbound", size_of::<Inbound>()),
        (
            "  of which AES key schedule (aes, CM)",
            size_of::<Aes128Enc>(),
        ),
        ("  of which keyed HMAC-SHA1 (CM)", size_of::<Hmac<Sha1>>()),
        (
            "  of which ring AES-GCM key (GCM)",
            size_of::<LessSafeKey>(),
        ),
    ]
}
