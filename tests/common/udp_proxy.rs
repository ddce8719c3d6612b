//! A UDP relay between one WebRTC viewer and the server's media port that
//! drops server-to-viewer RTP: at random (loss) or over a rate (a link that
//! cannot carry the stream), or holds it in a deep queue drained at the
//! rate (a link that buffers instead of dropping). STUN, DTLS and RTCP pass
//! untouched, so only media suffers, as on a congested last mile. The
//! viewer is pointed at it by rewriting the candidates in the WHEP answer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::net::UdpSocket;

#[derive(Debug, Clone, Copy)]
pub struct Impairment {
    /// Share of server-to-viewer RTP packets dropped at random, 0..1.
    pub loss: f64,
    /// Server-to-viewer bits per second allowed through (policed, with a
    /// 100 ms burst); `None` for no limit.
    pub rate_bps: Option<f64>,
    /// Impair the other direction instead: a publisher's packets to the
    /// server.
    pub upstream: bool,
    /// With `rate_bps`: RTP over the rate waits in a FIFO drained at the
    /// rate, dropped only once it would wait longer than this.
    pub queue: Option<std::time::Duration>,
}

impl Impairment {
    pub fn loss(loss: f64) -> Self {
        Impairment {
            loss,
            rate_bps: None,
            upstream: false,
            queue: None,
        }
    }
}

#[derive(Default, Debug)]
pub struct ProxyStats {
    pub forwarded: AtomicU64,
    pub dropped: AtomicU64,
}

pub struct UdpProxy {
    pub addr: SocketAddr,
    pub stats: Arc<ProxyStats>,
    /// The relay's server-side socket: what the server sees as the peer.
    back: Arc<UdpSocket>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for UdpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// RTP, not RTCP (RFC 5761 4: RTCP packet types 200-207 share the port).
fn is_rtp(d: &[u8]) -> bool {
    d.len() >= 12 && d[0] >> 6 == 2 && !(200..=207).contains(&d[1])
}

impl UdpProxy {
    pub async fn start(server: SocketAddr, imp: Impairment) -> UdpProxy {
        let front = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        back.connect(server).await.unwrap();
        let back_out = back.clone();
        let addr = front.local_addr().unwrap();
        let stats = Arc::new(ProxyStats::default());
        let s = stats.clone();
        let front = Arc::new(front);
        // The queued link: packets leave in order, each at its departure.
        let (queued, mut departures) =
            tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>, SocketAddr)>();
        let out = front.clone();
        let drain = tokio::spawn(async move {
            while let Some((at, d, to)) = departures.recv().await {
                tokio::time::sleep_until(at.into()).await;
                let _ = out.send_to(&d, to).await;
            }
        });
        let task = tokio::spawn(async move {
            let _drain = DropAbort(drain);
            let mut free_at = Instant::now();
            let mut client: Option<SocketAddr> = None;
            let (mut a, mut b) = (vec![0u8; 2048], vec![0u8; 2048]);
            // A fixed seed: the same run drops the same packets.
            let mut rng = 0x9e37_79b9_7f4a_7c15u64;
            let burst = imp.rate_bps.map(|r| r / 8.0 / 10.0).unwrap_or(0.0);
            let mut tokens = burst;
            let mut last = Instant::now();
            loop {
                tokio::select! {
                    r = front.recv_from(&mut a) => {
                        let Ok((n, from)) = r else { return };
                        client = Some(from);
                        if imp.upstream && is_rtp(&a[..n]) {
                            rng ^= rng << 13;
                            rng ^= rng >> 7;
                            rng ^= rng << 17;
                            if ((rng >> 11) as f64 / (1u64 << 53) as f64) < imp.loss {
                                s.dropped.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                            s.forwarded.fetch_add(1, Ordering::Relaxed);
                        }
                        let _ = back.send(&a[..n]).await;
                    }
                    r = back.recv(&mut b) => {
                        let Ok(n) = r else { return };
                        let Some(to) = client else { continue };
                        let mut drop = false;
                        if let (Some(depth), Some(rate), false, true) =
                            (imp.queue, imp.rate_bps, imp.upstream, is_rtp(&b[..n]))
                        {
                            let now = Instant::now();
                            let start = free_at.max(now);
                            if start.duration_since(now) > depth {
                                s.dropped.fetch_add(1, Ordering::Relaxed);
                            } else {
                                free_at = start + std::time::Duration::from_secs_f64(n as f64 * 8.0 / rate);
                                s.forwarded.fetch_add(1, Ordering::Relaxed);
                                let _ = queued.send((free_at, b[..n].to_vec(), to));
                            }
                            continue;
                        }
                        if !imp.upstream && is_rtp(&b[..n]) {
                            rng ^= rng << 13;
                            rng ^= rng >> 7;
                            rng ^= rng << 17;
                            drop = ((rng >> 11) as f64 / (1u64 << 53) as f64) < imp.loss;
                            if let Some(rate) = imp.rate_bps {
                                let now = Instant::now();
                                tokens = (tokens + now.duration_since(last).as_secs_f64() * rate / 8.0).min(burst);
                                last = now;
                                if !drop && tokens >= n as f64 {
                                    tokens -= n as f64;
                                } else {
                                    drop = true;
                                }
                            }
                        }
                        if drop {
                            s.dropped.fetch_add(1, Ordering::Relaxed);
                        } else {
                            s.forwarded.fetch_add(1, Ordering::Relaxed);
                            let _ = front.send_to(&b[..n], to).await;
                        }
                    }
                }
            }
        });
        UdpProxy {
            addr,
            stats,
            back: back_out,
            task,
        }
    }

    /// Sends datagrams to the server as if the peer had sent them: from
    /// the address its real packets come from.
    pub async fn inject(&self, datagrams: &[Vec<u8>]) {
        for d in datagrams {
            let _ = self.back.send(d).await;
        }
    }
}

/// Aborts a task when dropped.
struct DropAbort(tokio::task::JoinHandle<()>);

impl Drop for DropAbort {
    fn drop(&mut self) {
        self.0.abort();
    }
}
