//! Icecast clients: a source (an MP3 clip made once by ffmpeg, looped and
//! sent at real time with `PUT`, as ffmpeg's `icecast://` output and BUTT
//! do) and a plain listener (a long `GET` with `Icy-MetaData: 1`, as VLC
//! and radio apps do), which counts bytes and gaps.

use bytes::Bytes;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Listeners per source address. The server takes at most 256 connections
/// from one address; a crowd spreads over 127.0.0.2, .3, ... (all
/// loopback on Linux), as real listeners come from many addresses.
pub const LISTENERS_PER_ADDRESS: usize = 200;
/// A gap between two reads a listener's player would not ride out
/// silently: most buffer a few seconds, but this is what the tool reports.
pub const STALL_MS: u64 = 1000;

/// An MP3 clip (`secs` of a 440 Hz stereo tone at 44.1 kHz, `kbps`) cut
/// into frames. Needs ffmpeg (libmp3lame), as the rest of the tests do.
pub async fn mp3_clip(kbps: u32, secs: u32) -> anyhow::Result<Vec<Bytes>> {
    let out = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi"])
        .args(["-i", "sine=frequency=440:sample_rate=44100", "-ac", "2"])
        .args(["-t", &secs.to_string(), "-c:a", "libmp3lame"])
        .args(["-b:a", &format!("{kbps}k"), "-write_xing", "0"])
        .args(["-id3v2_version", "0", "-f", "mp3", "pipe:1"])
        .output()
        .await?;
    anyhow::ensure!(out.status.success(), "ffmpeg could not make the MP3 clip");
    let frames = split_mp3(&out.stdout);
    anyhow::ensure!(frames.len() > 10, "no MP3 frames from ffmpeg");
    Ok(frames)
}

/// MPEG-1 layer III frames at 44.1 kHz (what [`mp3_clip`] makes): the
/// length is 144 * bitrate / rate + padding (ISO/IEC 11172-3 2.4.3.1).
fn split_mp3(mut data: &[u8]) -> Vec<Bytes> {
    const KBPS: [usize; 15] = [
        0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    ];
    let mut frames = Vec::new();
    while data.len() >= 4 {
        let h = &data[..4];
        let ok = h[0] == 0xff && h[1] & 0xfe == 0xfa && (h[2] >> 2) & 3 == 0;
        let kbps = KBPS.get(usize::from(h[2] >> 4)).copied().unwrap_or(0);
        if !ok || kbps == 0 {
            data = &data[1..];
            continue;
        }
        let len = 144_000 * kbps / 44_100 + usize::from((h[2] >> 1) & 1);
        let Some(frame) = data.get(..len) else { break };
        frames.push(Bytes::copy_from_slice(frame));
        data = &data[len..];
    }
    frames
}

/// Seconds of audio in one frame of [`mp3_clip`].
pub const FRAME_SECS: f64 = 1152.0 / 44_100.0;

#[derive(Debug, Default, Clone)]
pub struct SourceStats {
    pub connect_ms: Option<f64>,
    pub frames: u64,
    pub bytes: u64,
}

/// Publishes `channel` with `key` for `dur`: `PUT` with `Expect:
/// 100-continue`, then `frames` looped at real time.
pub async fn source(
    addr: SocketAddr,
    channel: &str,
    key: &str,
    frames: &[Bytes],
    dur: Duration,
) -> anyhow::Result<SourceStats> {
    use base64::Engine;
    let started = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("source:{key}"));
    let head = format!(
        "PUT /{channel} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: onair-loadtest\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: audio/mpeg\r\nIce-Public: 0\r\nExpect: 100-continue\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await?;
    let mut answer = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut answer)).await??;
    let line = String::from_utf8_lossy(&answer[..n]);
    anyhow::ensure!(
        line.starts_with("HTTP/1.1 100") || line.starts_with("HTTP/1.0 200"),
        "the server answered {}",
        line.lines().next().unwrap_or_default()
    );
    let mut stats = SourceStats {
        connect_ms: Some(started.elapsed().as_secs_f64() * 1000.0),
        ..Default::default()
    };
    let begin = Instant::now();
    let mut i = 0usize;
    while begin.elapsed() < dur {
        // Every frame that is due, then sleep until the next one is.
        let due = (begin.elapsed().as_secs_f64() / FRAME_SECS) as u64 + 1;
        while stats.frames < due {
            let f = &frames[i % frames.len()];
            s.write_all(f).await?;
            stats.frames += 1;
            stats.bytes += f.len() as u64;
            i += 1;
        }
        let next = begin + Duration::from_secs_f64(stats.frames as f64 * FRAME_SECS);
        tokio::time::sleep_until(next.into()).await;
    }
    Ok(stats)
}

#[derive(Debug, Default, Clone)]
pub struct ListenResult {
    pub first_byte_after: Option<Duration>,
    pub bytes: u64,
    pub stalls: u64,
    pub longest_gap_ms: u64,
    pub error: Option<String>,
}

/// The address listener `i` connects from (see [`LISTENERS_PER_ADDRESS`]).
pub fn listener_ip(i: usize) -> IpAddr {
    crate::http::spread_ip(i, LISTENERS_PER_ADDRESS)
}

/// One plain listener of `path` for `dur`, from [`listener_ip`]`(i)`.
pub async fn listen(
    addr: SocketAddr,
    path: &str,
    i: usize,
    dur: Duration,
    measure_from: Option<Instant>,
) -> ListenResult {
    let started = Instant::now();
    let mut out = ListenResult::default();
    let r: Result<anyhow::Result<()>, _> = tokio::time::timeout_at((started + dur).into(), async {
        let mut s = crate::http::connect_from(Some(listener_ip(i)), addr).await?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: onair-loadtest\r\nIcy-MetaData: 1\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await?;
        let mut buf = vec![0u8; 16 * 1024];
        let mut got = crate::http::stream_head(&mut s, &mut buf).await?;
        out.first_byte_after = Some(started.elapsed());
        let mut last: Option<Instant> = None;
        loop {
            let now = Instant::now();
            out.bytes += got as u64;
            if let Some(t) = last.filter(|_| measure_from.is_none_or(|m| now >= m)) {
                let gap = now.duration_since(t).as_millis() as u64;
                out.longest_gap_ms = out.longest_gap_ms.max(gap);
                out.stalls += u64::from(gap > STALL_MS);
            }
            last = Some(now);
            got = s.read(&mut buf).await?;
            anyhow::ensure!(got > 0, "the server closed the stream");
        }
    })
    .await;
    if let Ok(Err(e)) = r {
        out.error = Some(e.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn listener_addresses_spread_below_the_per_address_cap() {
        assert_eq!(listener_ip(0), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(listener_ip(199), listener_ip(0));
        assert_eq!(listener_ip(200), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)));
        assert_eq!(
            listener_ip(5000 - 1),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 26))
        );
    }

    #[test]
    fn mp3_frames_are_cut_at_their_length() {
        let mut data = vec![0x00, 0x11];
        for pad in [0u8, 2, 0] {
            let mut f = vec![0xff, 0xfb, 0x90 | pad, 0x00];
            f.resize(417 + usize::from(pad / 2), 0x55);
            data.extend_from_slice(&f);
        }
        let frames = split_mp3(&data);
        assert_eq!(
            frames.iter().map(|f| f.len()).collect::<Vec<_>>(),
            [417, 418, 417]
        );
    }
}
