//! SRTP key derivation (RFC 3711 4.3), which RFC 7714 (section 11) keeps for
//! AES-GCM: session keys and salts from the master key and salt through the
//! AES-CM pseudo-random function, once per context.

use aes::cipher::{InnerIvInit, KeyInit, StreamCipher, StreamCipherCoreWrapper};
use aes::Aes128Enc;
use ctr::flavors::Ctr128BE;
use ctr::CtrCore;

/// Key derivation labels (RFC 3711 4.3.2).
pub(super) const RTP_ENCRYPTION: u8 = 0x00;
pub(super) const RTP_AUTH: u8 = 0x01;
pub(super) const RTP_SALT: u8 = 0x02;
pub(super) const RTCP_ENCRYPTION: u8 = 0x03;
pub(super) const RTCP_AUTH: u8 = 0x04;
pub(super) const RTCP_SALT: u8 = 0x05;

/// XORs `data` with the AES-128 counter-mode keystream from `iv` (RFC 3711
/// 4.1.1). RFC 3711 counts in the block's last 16 bits; a 128-bit
/// big-endian counter is the same for fewer than 2^16 blocks, which every
/// packet and every key is. The key schedule is borrowed, not copied.
pub(super) fn aes_ctr(aes: &Aes128Enc, iv: &[u8; 16], data: &mut [u8]) {
    let core = CtrCore::<&Aes128Enc, Ctr128BE>::inner_iv_init(aes, iv.into());
    StreamCipherCoreWrapper::from_core(core).apply_keystream(data);
}

/// The master key's key schedule, for [`derive`].
pub(super) fn master_cipher(master_key: &[u8; 16]) -> Aes128Enc {
    Aes128Enc::new(master_key.into())
}

/// Fills `out` with `PRF_n(k_master, x)` for `label` (RFC 3711 4.3.1 and
/// 4.3.3): the AES-CM keystream for IV `x * 2^16`, where `x` is the master
/// salt XOR `label || r`, right-aligned (the label lands on the salt's
/// eighth byte). The key derivation rate is 0 in DTLS-SRTP (RFC 5764 4.2),
/// so `r` is 0.
///
/// `master_salt` is 14 bytes; GCM's 12-byte master salt comes padded on the
/// right with zeros, as libsrtp and browsers apply it (the libsrtp GCM
/// known-answer test in `tests.rs` pins this).
pub(super) fn derive(master: &Aes128Enc, master_salt: &[u8; 14], label: u8, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(master_salt);
    iv[7] ^= label;
    out.fill(0);
    aes_ctr(master, &iv, out);
}
