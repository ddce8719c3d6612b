//! SRTP and SRTCP (RFC 3711) for a viewer peer, keyed from DTLS (RFC 5764),
//! with the two profiles WebRTC peers offer: `AEAD_AES_128_GCM` (RFC 7714)
//! and `AES_CM_128_HMAC_SHA1_80` (RFC 3711). Sans-I/O and allocation-free
//! per packet: packets are sealed and opened in place in the caller's buffer.
//!
//! # Using it
//!
//! 1. After the DTLS handshake, export [`Profile::exporter_len`] bytes with the
//!    label [`EXPORTER_LABEL`] and no context, and split them with
//!    [`keys_from_exporter`] for our DTLS role (the server, for a viewer). That
//!    gives our sending key and the peer's sending key.
//! 2. Build one [`Outbound`] from the first and one [`Inbound`] from the second.
//!    They hold the session keys and pre-expanded key schedules (the RFC 3711
//!    4.3 key derivation runs once, here) and are read-only afterwards, so
//!    protecting takes `&self`.
//! 3. Keep one [`SendStream`] per SSRC we send (audio, video, RTX) and one
//!    [`RecvStream`] per SSRC the peer sends from. These hold the RFC 3711
//!    index state: the rollover counter and highest index for RTP, the SRTCP
//!    index, and the replay windows. They are the caller's to store, next to
//!    the rest of the per-viewer state; the functions check that the packet's
//!    SSRC is the stream's. The peer chooses its SSRCs, so bound how many
//!    `RecvStream`s one peer may have. For an SSRC not seen before, unprotect
//!    with a fresh `RecvStream::new(ssrc)` and keep it only if that succeeds.
//!
//! # Buffers
//!
//! - [`Outbound::protect_rtp`]: `buf[..len]` holds the whole RTP packet, header
//!   (with any CSRCs and extension) then payload; `buf` must have
//!   [`Profile::rtp_overhead`] more bytes after it (10 or 16). Returns the
//!   sealed length, `len + rtp_overhead`.
//! - [`Outbound::protect_rtcp`]: `buf[..len]` holds the (compound) RTCP packet;
//!   [`Profile::rtcp_overhead`] more bytes must follow (14 or 20).
//! - [`Inbound::unprotect_rtp`] / [`Inbound::unprotect_rtcp`]: the whole datagram
//!   in, the plaintext packet left at the front of the same buffer and its
//!   length returned. After an error the buffer's contents are unspecified.
//!
//! # The index contract (why resending is safe)
//!
//! SRTP's keystream and GCM nonce depend only on the key, the SSRC and the
//! 48-bit packet index (rollover counter and sequence number). The same
//! index must never carry two different plaintexts: that would reveal their
//! XOR and, for GCM, the authentication key.
//!
//! - [`SendStream`] estimates each packet's index from its sequence number
//!   relative to the highest index sent so far (RFC 3711 3.3.1, Appendix A).
//!   The rollover counter only grows: a packet at most 2^15 sequence numbers
//!   ahead of the highest is new (the counter advances when the sequence
//!   wraps), one at most 2^15 behind is a resend of the index it had then.
//! - So a NACK resend or a fast-start packet that goes out again with the same
//!   SSRC and sequence number gets its original index. The caller must make it
//!   the same packet: the same header and payload bytes. Then the sealed
//!   bytes are identical to the first sending, which reveals nothing.
//! - The caller must never put different content under a sequence number
//!   already sent on that SSRC, and never send one more than 2^15 behind the
//!   highest (it would be taken as the next rollover). Per-viewer sequence
//!   numbers that go up by one per new packet, and resends from a history far
//!   shorter than 2^15 packets, satisfy both.
//! - The SRTCP index is explicit (31 bits, RFC 3711 3.4): every
//!   `protect_rtcp` uses the next one. Both index spaces refuse to wrap
//!   ([`SrtpError::Exhausted`]); at WebRTC packet rates that is centuries.
//!
//! # Receiving
//!
//! `unprotect_*` estimates the index the same way from the highest index
//! received, checks the replay window ([`REPLAY_WINDOW`] packets, RFC 3711
//! 3.3.2) before anything else, authenticates, decrypts, and only then
//! updates the stream's state: a forged or replayed packet changes nothing.
//!
//! # Costs
//!
//! Measured by `cargo bench --bench srtp` (docs/BENCHMARKS.md, "SRTP");
//! the sizes are pinned by a test in `tests.rs`.

pub(crate) mod fuzz;
mod index;
mod kdf;
mod transform;

#[cfg(test)]
mod interop_tests;
#[cfg(test)]
mod tests;

pub use index::{RecvStream, SendStream, REPLAY_WINDOW};
pub use transform::{Inbound, Outbound};

/// The DTLS exporter label for SRTP keying material (RFC 5764 4.2).
pub const EXPORTER_LABEL: &str = "EXTRACTOR-dtls_srtp";

/// Master key length of both profiles (AES-128).
pub const MASTER_KEY_LEN: usize = 16;

/// The two SRTP protection profiles a WebRTC peer negotiates in DTLS's
/// `use_srtp` extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// `SRTP_AES128_CM_HMAC_SHA1_80` (RFC 5764 4.1.2): AES counter mode and an
    /// 80-bit truncated HMAC-SHA1 tag.
    Aes128CmHmacSha1_80,
    /// `SRTP_AEAD_AES_128_GCM` (RFC 7714 14.2): AES-GCM with a 16-byte tag.
    AeadAes128Gcm,
}

impl Profile {
    /// The profile for a DTLS `SRTPProtectionProfile` value, if we support it.
    pub const fn from_dtls_id(id: u16) -> Option<Self> {
        match id {
            0x0001 => Some(Self::Aes128CmHmacSha1_80),
            0x0007 => Some(Self::AeadAes128Gcm),
            _ => None,
        }
    }

    /// The DTLS `SRTPProtectionProfile` value.
    pub const fn dtls_id(self) -> u16 {
        match self {
            Self::Aes128CmHmacSha1_80 => 0x0001,
            Self::AeadAes128Gcm => 0x0007,
        }
    }

    /// Master (and session) salt length: 112 bits for AES-CM (RFC 3711 8.2),
    /// 96 bits for GCM (RFC 7714 12).
    pub const fn master_salt_len(self) -> usize {
        match self {
            Self::Aes128CmHmacSha1_80 => 14,
            Self::AeadAes128Gcm => 12,
        }
    }

    /// How many bytes to ask the DTLS exporter for (RFC 5764 4.2): a key and a
    /// salt for each direction.
    pub const fn exporter_len(self) -> usize {
        2 * (MASTER_KEY_LEN + self.master_salt_len())
    }

    /// Bytes SRTP adds to an RTP packet: the tag (no MKI, RFC 7714 8 and 9.1;
    /// RFC 5764 4.1.2 profiles carry none either).
    pub const fn rtp_overhead(self) -> usize {
        match self {
            Self::Aes128CmHmacSha1_80 => 10,
            Self::AeadAes128Gcm => 16,
        }
    }

    /// Bytes SRTCP adds to an RTCP packet: the E flag and SRTCP index word,
    /// and the tag.
    pub const fn rtcp_overhead(self) -> usize {
        4 + self.rtp_overhead()
    }
}

/// Our side of the DTLS handshake, which decides which half of the exported
/// keying material is ours to send with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Client,
    /// What a viewer's server is: the browser's offer says `actpass`, and our
    /// answer says `passive`.
    Server,
}

/// One direction's master key and salt.
#[derive(Clone)]
pub struct MasterKey {
    profile: Profile,
    key: [u8; MASTER_KEY_LEN],
    /// The first `profile.master_salt_len()` bytes are the salt; the rest is 0.
    salt: [u8; 14],
}

impl MasterKey {
    pub fn new(profile: Profile, key: &[u8], salt: &[u8]) -> Result<Self, SrtpError> {
        if key.len() != MASTER_KEY_LEN || salt.len() != profile.master_salt_len() {
            return Err(SrtpError::KeyLength);
        }
        let mut k = MasterKey {
            profile,
            key: [0; MASTER_KEY_LEN],
            salt: [0; 14],
        };
        k.key.copy_from_slice(key);
        k.salt[..salt.len()].copy_from_slice(salt);
        Ok(k)
    }

    pub fn profile(&self) -> Profile {
        self.profile
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

/// Splits DTLS-SRTP keying material into `(ours, theirs)`: the master key
/// we send with (build an [`Outbound`]) and the one the peer sends with
/// (build an [`Inbound`]).
///
/// RFC 5764 4.2: the exporter's output is `client_write_key |
/// server_write_key | client_write_salt | server_write_salt`; the DTLS
/// server sends with the server's half.
pub fn keys_from_exporter(
    profile: Profile,
    role: Role,
    material: &[u8],
) -> Result<(MasterKey, MasterKey), SrtpError> {
    if material.len() != profile.exporter_len() {
        return Err(SrtpError::KeyLength);
    }
    let (keys, salts) = material.split_at(2 * MASTER_KEY_LEN);
    let (client_key, server_key) = keys.split_at(MASTER_KEY_LEN);
    let (client_salt, server_salt) = salts.split_at(profile.master_salt_len());
    let client = MasterKey::new(profile, client_key, client_salt)?;
    let server = MasterKey::new(profile, server_key, server_salt)?;
    Ok(match role {
        Role::Server => (server, client),
        Role::Client => (client, server),
    })
}

/// Why a packet was not protected or unprotected. None of these change a
/// stream's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    #[error("SRTP key or salt of the wrong length")]
    KeyLength,
    #[error("not an RTP or RTCP packet of version 2, or too short")]
    Malformed,
    #[error("no room after the packet for the SRTP trailer")]
    NoRoom,
    #[error("the packet's SSRC is not the stream's")]
    WrongSsrc,
    #[error("SRTP authentication failed")]
    Auth,
    /// Received: already received, or older than the replay window. Sent: a
    /// sequence number that would fall before the stream's first packet.
    #[error("replayed, or older than the replay window")]
    Replay,
    #[error("SRTP index space exhausted (would reuse an index): rekey")]
    Exhausted,
}
