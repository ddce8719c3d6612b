//! One RTMP connection's protocol, as `onair::rtmp::Session` runs it for a
//! socket: the handshake, our chunk reader, the AMF checks, rml_rtmp's
//! message decoding and `ServerSession`, our handling of the events it
//! raises, and the FLV tags down to the hub. Nothing may panic, and what
//! the session holds stays under its bound after every read.
//!
//! Input: one flags byte, then what the client sends. Flags bit 0 clear:
//! a valid handshake is sent first and the rest is the chunk stream (the
//! seeds are captured ffmpeg publishes after their handshake); set: the
//! input is the whole connection, handshake included. Bits 1-3 pick the
//! size of the reads the input is cut into. A stream key starting with
//! `x` is refused; any other is accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use onair::hub::Hub;
use onair::rtmp::{Session, Step, MAX_MEDIA_MESSAGE};
use std::time::Instant;

const READS: [usize; 8] = [1, 3, 17, 128, 1000, 4096, 65536, 1 << 20];

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut input = Vec::with_capacity(3073 + rest.len());
    if flags & 1 == 0 {
        // C0, a C1 without a Flash digest (the original handshake), C2.
        input.push(3);
        input.resize(3073, 0);
    }
    input.extend_from_slice(rest);
    let read = READS[usize::from(flags >> 1) % READS.len()];
    let peer = "192.0.2.1:1935".parse().unwrap();
    let mut session = Session::new(peer, Hub::new(), Instant::now());
    for piece in input.chunks(read) {
        let mut step = session.input(piece);
        loop {
            match step {
                Ok(Step::Read) => break,
                Ok(Step::Close) | Err(_) => return,
                Ok(Step::Authorize { key }) => {
                    let verdict = if key.starts_with('x') {
                        Err("refused".to_string())
                    } else {
                        Ok("fuzz".to_string())
                    };
                    step = session.authorize(verdict);
                }
            }
        }
        session.clear_output();
        // Twice the largest message, plus one read not yet looked at.
        assert!(session.in_flight() <= 2 * MAX_MEDIA_MESSAGE as usize + read);
    }
});
