//! A hostile RTMP client: the plain handshake (RTMP 1.0 section 5.2), then
//! chunks built by hand (section 5.3) that no encoder would send: garbage,
//! a message declared 16 MiB long and trickled, partial messages
//! interleaved on many chunk streams, an absurd chunk size, or nothing at
//! all. Each attack runs until the server closes the connection or the
//! time is up, paced so it costs the load tool little.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bytes an attack writes per second at most: enough to cross every
/// per-connection bound the server has (a few MiB) within seconds.
pub const PACE_BYTES_PER_SEC: usize = 4 << 20;
/// One write.
const PIECE: usize = 16 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum RtmpAttack {
    /// Random bytes right after the handshake.
    Garbage,
    /// A video message declared 0xFFFFFF bytes long, sent in 128-byte
    /// chunks that never end.
    Oversized,
    /// Partial 1 MiB messages started on 300 chunk streams at once, each
    /// fed a chunk in turn.
    Interleaved,
    /// Set Chunk Size to 2^31 - 1, then one huge chunk.
    HugeChunkSize,
    /// Handshake, then silence: never connect, never publish.
    Idle,
}

impl RtmpAttack {
    pub const ALL: [RtmpAttack; 5] = [
        RtmpAttack::Garbage,
        RtmpAttack::Oversized,
        RtmpAttack::Interleaved,
        RtmpAttack::HugeChunkSize,
        RtmpAttack::Idle,
    ];
}

/// How one attack connection ended.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Outcome {
    /// When the server closed it, after the handshake; `None`: still open
    /// when the attack's time was up.
    pub closed_after_ms: Option<u64>,
    pub bytes: u64,
    pub error: Option<String>,
}

/// The handshake with zeroed C1 (the server echoes, it does not check).
async fn handshake(from: Option<IpAddr>, to: SocketAddr) -> anyhow::Result<TcpStream> {
    let mut s = tokio::time::timeout(Duration::from_secs(5), crate::http::connect_from(from, to))
        .await
        .map_err(|_| anyhow::anyhow!("connect timed out"))??;
    let mut c0c1 = vec![3u8];
    c0c1.resize(1 + 1536, 0);
    s.write_all(&c0c1).await?;
    let mut s0s1s2 = vec![0u8; 1 + 2 * 1536];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut s0s1s2))
        .await
        .map_err(|_| anyhow::anyhow!("no S0 S1 S2 within 5 s"))??;
    s.write_all(&s0s1s2[1..1537]).await?;
    Ok(s)
}

/// A chunk basic header (section 5.3.1.1) for `fmt` and chunk stream `csid`.
fn basic_header(out: &mut Vec<u8>, fmt: u8, csid: u32) {
    match csid {
        2..=63 => out.push(fmt << 6 | csid as u8),
        64..=319 => out.extend_from_slice(&[fmt << 6, (csid - 64) as u8]),
        _ => {
            let c = csid - 64;
            out.extend_from_slice(&[fmt << 6 | 1, c as u8, (c >> 8) as u8]);
        }
    }
}

/// A type 0 chunk header: timestamp 0, `len`, `type_id`, message stream 1.
fn header0(out: &mut Vec<u8>, csid: u32, len: u32, type_id: u8) {
    basic_header(out, 0, csid);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(type_id);
    out.extend_from_slice(&1u32.to_le_bytes());
}

/// Pseudo-random filler (xorshift): garbage that does not compress.
fn fill(out: &mut Vec<u8>, n: usize, seed: &mut u64) {
    for _ in 0..n {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        out.push(*seed as u8);
    }
}

/// The byte stream of `attack`, piece by piece.
struct Script {
    attack: RtmpAttack,
    step: u64,
    chunks: u64,
    seed: u64,
}

impl Script {
    fn next(&mut self) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(PIECE + 64);
        let step = self.step;
        self.step += 1;
        match self.attack {
            RtmpAttack::Idle => return None,
            RtmpAttack::Garbage => fill(&mut out, PIECE, &mut self.seed),
            RtmpAttack::Oversized => {
                if step == 0 {
                    header0(&mut out, 6, 0xFF_FFFF, 9);
                    fill(&mut out, 128, &mut self.seed);
                }
                while out.len() < PIECE {
                    basic_header(&mut out, 3, 6);
                    fill(&mut out, 128, &mut self.seed);
                }
            }
            RtmpAttack::Interleaved => {
                // 300 chunk streams (one-, two- and three-byte ids), each
                // with a 1 MiB message begun, then a chunk for each in turn.
                const STREAMS: u64 = 300;
                while out.len() < PIECE {
                    let n = self.chunks;
                    self.chunks += 1;
                    let csid = 3 + (n % STREAMS) as u32 * 3;
                    if n < STREAMS {
                        header0(&mut out, csid, 1 << 20, 9);
                    } else {
                        basic_header(&mut out, 3, csid);
                    }
                    fill(&mut out, 128, &mut self.seed);
                }
            }
            RtmpAttack::HugeChunkSize => {
                if step == 0 {
                    // Set Chunk Size (type 1) on the control stream.
                    basic_header(&mut out, 0, 2);
                    out.extend_from_slice(&[0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0]);
                    out.extend_from_slice(&0x7FFF_FFFFu32.to_be_bytes());
                    header0(&mut out, 6, 0xFF_FFFF, 9);
                }
                fill(&mut out, PIECE, &mut self.seed);
            }
        }
        Some(out)
    }
}

/// Runs `attack` on one connection from `from` for at most `dur`.
pub async fn attack(
    from: Option<IpAddr>,
    to: SocketAddr,
    attack: RtmpAttack,
    dur: Duration,
) -> Outcome {
    let mut out = Outcome::default();
    let s = match handshake(from, to).await {
        Ok(s) => s,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + dur;
    let (mut r, mut w) = s.into_split();
    // The server's answers are read and dropped; its close ends the attack.
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(_) => {}
            }
        }
    });
    let mut script = Script {
        attack,
        step: 0,
        chunks: 0,
        seed: (0x9E37_79B9_7F4A_7C15 ^ started.elapsed().as_nanos() as u64) | 1,
    };
    let piece_every = Duration::from_secs_f64(PIECE as f64 / PACE_BYTES_PER_SEC as f64);
    let mut next = tokio::time::Instant::now();
    while tokio::time::Instant::now() < deadline && !reader.is_finished() {
        match script.next() {
            Some(bytes) => {
                let wrote = tokio::time::timeout_at(deadline, w.write_all(&bytes)).await;
                match wrote {
                    Ok(Ok(())) => out.bytes += bytes.len() as u64,
                    // A write refused by a closed connection: the reader
                    // sees the close too.
                    Ok(Err(_)) => break,
                    Err(_) => break,
                }
                next += piece_every;
                tokio::time::sleep_until(next.min(deadline)).await;
            }
            None => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let closed = tokio::time::timeout(Duration::from_millis(200), async {
        while !reader.is_finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .is_ok();
    if closed {
        if let Ok(at) = reader.await {
            out.closed_after_ms = Some(at.duration_since(started).as_millis() as u64);
        }
    } else {
        reader.abort();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_headers_follow_the_spec() {
        let mut h = Vec::new();
        basic_header(&mut h, 3, 6);
        basic_header(&mut h, 0, 64);
        basic_header(&mut h, 0, 400);
        assert_eq!(h, [0xC6, 0x00, 0x00, 0x01, 0x50, 0x01]);
        let mut h = Vec::new();
        header0(&mut h, 6, 0xFF_FFFF, 9);
        assert_eq!(h, [6, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0]);
        let mut s = Script {
            attack: RtmpAttack::Interleaved,
            step: 0,
            chunks: 0,
            seed: 1,
        };
        let first = s.next().unwrap();
        assert!(first.len() >= PIECE);
        assert!(Script {
            attack: RtmpAttack::Idle,
            step: 0,
            chunks: 0,
            seed: 1
        }
        .next()
        .is_none());
    }
}
