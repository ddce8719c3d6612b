//! A minimal RTMP publisher on rml_rtmp's client session: handshake,
//! connect, publish, then FLV/AVC video tags paced in real time. Video
//! only; every frame carries a send-time stamp (see [`crate::stamp`]).

use crate::pattern::Frame;
use crate::stamp;
use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a publisher sent.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct PublishStats {
    pub connect_ms: Option<f64>,
    pub frames: u64,
    pub bytes: u64,
}

/// `rtmp://host:port/app/key` split into its address, app and key.
pub fn parse_url(url: &str) -> anyhow::Result<(std::net::SocketAddr, String, String)> {
    let rest = url
        .strip_prefix("rtmp://")
        .ok_or_else(|| anyhow::anyhow!("not an rtmp:// URL: {url}"))?;
    let (host, path) = rest
        .split_once('/')
        .ok_or_else(|| anyhow::anyhow!("no app in {url}"))?;
    let (app, key) = path
        .split_once('/')
        .ok_or_else(|| anyhow::anyhow!("no stream key in {url}"))?;
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:1935")
    };
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&host)?
        .next()
        .ok_or_else(|| anyhow::anyhow!("cannot resolve {host}"))?;
    Ok((addr, app.to_string(), key.to_string()))
}

fn err(e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow::anyhow!("rtmp: {e:?}")
}

/// The AVCDecoderConfigurationRecord for the SPS and PPS of `key`.
fn avc_config(key: &Frame) -> anyhow::Result<Vec<u8>> {
    let nals = stamp::split_annexb(&key.annexb);
    let sps = nals
        .iter()
        .find(|n| n[0] & 0x1f == 7)
        .ok_or_else(|| anyhow::anyhow!("keyframe without SPS"))?;
    let pps = nals
        .iter()
        .find(|n| n[0] & 0x1f == 8)
        .ok_or_else(|| anyhow::anyhow!("keyframe without PPS"))?;
    anyhow::ensure!(sps.len() >= 4, "short SPS");
    let mut c = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
    c.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    c.extend_from_slice(sps);
    c.push(1);
    c.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    c.extend_from_slice(pps);
    Ok(c)
}

/// An FLV video tag body: frame type and codec, AVC packet type, zero
/// composition time, then `payload`.
fn video_tag(key: bool, avc_packet_type: u8, payload: &[u8]) -> Bytes {
    let mut t = Vec::with_capacity(payload.len() + 5);
    t.push(if key { 0x17 } else { 0x27 });
    t.extend_from_slice(&[avc_packet_type, 0, 0, 0]);
    t.extend_from_slice(payload);
    Bytes::from(t)
}

/// Annex B to AVCC (4-byte lengths), with a stamp before the first slice.
fn avcc_stamped(annexb: &[u8], us: u64) -> Vec<u8> {
    let stamped = stamp::stamp_annexb(annexb, us);
    let mut out = Vec::with_capacity(stamped.len());
    for nal in stamp::split_annexb(&stamped) {
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

struct Conn {
    sock: TcpStream,
    session: ClientSession,
    buf: Vec<u8>,
}

impl Conn {
    async fn send(&mut self, r: ClientSessionResult) -> anyhow::Result<()> {
        if let ClientSessionResult::OutboundResponse(p) = r {
            self.sock.write_all(&p.bytes).await?;
        }
        Ok(())
    }

    /// Reads once and answers what needs answering; returns the events.
    async fn pump(&mut self) -> anyhow::Result<Vec<ClientSessionEvent>> {
        let n = self.sock.read(&mut self.buf).await?;
        anyhow::ensure!(n > 0, "server closed the connection");
        let input = self.buf[..n].to_vec();
        self.feed(&input).await
    }

    async fn feed(&mut self, input: &[u8]) -> anyhow::Result<Vec<ClientSessionEvent>> {
        let mut events = Vec::new();
        for r in self.session.handle_input(input).map_err(err)? {
            match r {
                ClientSessionResult::RaisedEvent(e) => events.push(e),
                other => self.send(other).await?,
            }
        }
        Ok(events)
    }

    async fn until(
        &mut self,
        what: &str,
        mut f: impl FnMut(&ClientSessionEvent) -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let limit = Instant::now() + Duration::from_secs(10);
        loop {
            let events = tokio::time::timeout_at(limit.into(), self.pump())
                .await
                .map_err(|_| anyhow::anyhow!("rtmp: no {what} within 10 s"))??;
            for e in &events {
                if f(e)? {
                    return Ok(());
                }
            }
        }
    }
}

/// Publishes `frames` (looped) at `fps` to `url` for `dur`.
pub async fn publish(
    url: &str,
    frames: &[Frame],
    fps: u32,
    dur: Duration,
) -> anyhow::Result<PublishStats> {
    let fps_ = u64::from(fps.max(1));
    publish_timed(url, frames, fps, dur, |i| (i * 1000 / fps_) as u32).await
}

/// Like [`publish`], with the RTMP timestamp of frame `i` (milliseconds)
/// from `timestamp`: for publishers whose clock stalls, repeats or jumps.
/// Frames are still sent at `fps` in real time.
pub async fn publish_timed(
    url: &str,
    frames: &[Frame],
    fps: u32,
    dur: Duration,
    timestamp: impl Fn(u64) -> u32,
) -> anyhow::Result<PublishStats> {
    anyhow::ensure!(!frames.is_empty(), "no frames to publish");
    let (addr, app, key) = parse_url(url)?;
    let started = Instant::now();
    let mut sock = TcpStream::connect(addr).await?;
    sock.set_nodelay(true)?;
    let mut hs = Handshake::new(PeerType::Client);
    sock.write_all(&hs.generate_outbound_p0_and_p1().map_err(err)?)
        .await?;
    let mut buf = vec![0u8; 64 * 1024];
    let leftover = loop {
        let n = tokio::time::timeout(Duration::from_secs(10), sock.read(&mut buf)).await??;
        anyhow::ensure!(n > 0, "server closed the connection during the handshake");
        match hs.process_bytes(&buf[..n]).map_err(err)? {
            HandshakeProcessResult::InProgress { response_bytes } => {
                sock.write_all(&response_bytes).await?;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                sock.write_all(&response_bytes).await?;
                break remaining_bytes;
            }
        }
    };
    let mut config = ClientSessionConfig::new();
    config.tc_url = Some(format!("rtmp://{addr}/{app}"));
    let (session, initial) = ClientSession::new(config).map_err(err)?;
    let mut c = Conn { sock, session, buf };
    for r in initial {
        c.send(r).await?;
    }
    if !leftover.is_empty() {
        c.feed(&leftover).await?;
    }
    let r = c.session.request_connection(app).map_err(err)?;
    c.send(r).await?;
    c.until("connect answer", |e| match e {
        ClientSessionEvent::ConnectionRequestAccepted => Ok(true),
        ClientSessionEvent::ConnectionRequestRejected { description } => {
            anyhow::bail!("connect refused: {description}")
        }
        _ => Ok(false),
    })
    .await?;
    let r = c
        .session
        .request_publishing(key, PublishRequestType::Live)
        .map_err(err)?;
    c.send(r).await?;
    c.until("publish answer", |e| match e {
        ClientSessionEvent::PublishRequestAccepted => Ok(true),
        ClientSessionEvent::UnhandleableOnStatusCode { code } => {
            anyhow::bail!("publish refused: {code}")
        }
        _ => Ok(false),
    })
    .await?;
    let mut stats = PublishStats {
        connect_ms: Some(started.elapsed().as_secs_f64() * 1000.0),
        ..Default::default()
    };
    let config = avc_config(&frames[0])?;
    let r = c
        .session
        .publish_video_data(video_tag(true, 0, &config), RtmpTimestamp::new(0), false)
        .map_err(err)?;
    c.send(r).await?;

    let frame_every = Duration::from_secs(1) / fps.max(1);
    let t0 = tokio::time::Instant::now();
    let end = t0 + dur;
    let mut i: u64 = 0;
    loop {
        let due = t0 + frame_every * i as u32;
        if due >= end {
            break;
        }
        // Keep reading (acks, pings) while waiting for the next frame.
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            r = c.sock.read(&mut c.buf) => {
                let n = r?;
                anyhow::ensure!(n > 0, "server closed the connection");
                let input = c.buf[..n].to_vec();
                c.feed(&input).await?;
                continue;
            }
        }
        let f = &frames[(i as usize) % frames.len()];
        let body = avcc_stamped(&f.annexb, stamp::now_us());
        let ts = RtmpTimestamp::new(timestamp(i));
        let r = c
            .session
            .publish_video_data(video_tag(f.key, 1, &body), ts, false)
            .map_err(err)?;
        if let ClientSessionResult::OutboundResponse(p) = &r {
            stats.bytes += p.bytes.len() as u64;
        }
        c.send(r).await?;
        stats.frames += 1;
        i += 1;
    }
    if let Ok(rs) = c.session.stop_publishing() {
        for r in rs {
            let _ = c.send(r).await;
        }
    }
    let _ = c.sock.shutdown().await;
    Ok(stats)
}
