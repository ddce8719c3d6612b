//! An HTTP-FLV viewer (node-media-server's and others' low-latency
//! playback): one long GET whose body is the live FLV stream. It counts
//! bytes and reads the send-time stamps in the AVC NAL units it carries.
//! A stamp split across two reads is missed; the rest are plenty.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Viewers per source address: onair takes 16 HTTP-FLV readers from one
/// address (`flv::MAX_READERS_PER_HOST`), so a crowd spreads as a real
/// audience does.
pub const VIEWERS_PER_ADDRESS: usize = 16;

#[derive(Debug, Default, Clone)]
pub struct FlvResult {
    pub connected_after: Option<Duration>,
    pub first_byte_after: Option<Duration>,
    pub bytes: u64,
    pub stalls: u64,
    pub longest_gap_ms: u64,
    pub latency_us: Vec<u32>,
    pub error: Option<String>,
}

/// Viewer `i` of a crowd, from its own address (see
/// [`VIEWERS_PER_ADDRESS`]).
pub async fn watch(
    http: SocketAddr,
    path: &str,
    i: usize,
    dur: Duration,
    measure_from: Option<Instant>,
) -> FlvResult {
    let started = Instant::now();
    let deadline = started + dur;
    let mut out = FlvResult::default();
    let r: Result<anyhow::Result<()>, _> = tokio::time::timeout_at(deadline.into(), async {
        let from = crate::http::spread_ip(i, VIEWERS_PER_ADDRESS);
        let mut s = crate::http::connect_from(Some(from), http).await?;
        out.connected_after = Some(started.elapsed());
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: {http}\r\nUser-Agent: onair-loadtest\r\n\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut n = crate::http::stream_head(&mut s, &mut buf).await?;
        out.first_byte_after = Some(started.elapsed());
        let mut last: Option<Instant> = None;
        loop {
            let data = &buf[..n];
            let now = Instant::now();
            out.bytes += data.len() as u64;
            let measuring = measure_from.is_none_or(|t| now >= t);
            if let Some(t) = last.filter(|_| measuring) {
                let gap = now.duration_since(t).as_millis() as u64;
                out.longest_gap_ms = out.longest_gap_ms.max(gap);
                out.stalls += u64::from(gap > crate::hls::STALL_MS);
            }
            last = Some(now);
            if measuring {
                let now_us = crate::stamp::now_us();
                for sent in crate::stamp::find_all(data) {
                    if out.latency_us.len() < crate::whep::MAX_LATENCY_SAMPLES {
                        let d = now_us.saturating_sub(sent).min(u64::from(u32::MAX));
                        out.latency_us.push(d as u32);
                    }
                }
            }
            n = s.read(&mut buf).await?;
            anyhow::ensure!(n > 0, "the server closed the stream");
        }
    })
    .await;
    if let Ok(Err(e)) = r {
        out.error = Some(e.to_string());
    }
    out
}
