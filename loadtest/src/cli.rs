//! The command line: one subcommand per scenario. [`run`] parses, runs and
//! returns the JSON report, so the tests drive exactly what people run.

use crate::report::Probe;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "onair-loadtest",
    about = "Load generator for onair (loopback only; every run is bounded)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Subcommand)]
pub enum Scenario {
    /// N real WebRTC viewers (ICE, DTLS, SRTP) of one channel over WHEP.
    Whep {
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        crowd: CrowdArgs,
        #[command(flatten)]
        source: SourceArgs,
        /// One viewer in this many decrypts its media (and takes part in
        /// latency and decode checks); the others count it from the clear
        /// RTP headers and send a browser's feedback themselves, so one
        /// core can drive thousands. 1: every viewer decrypts.
        #[arg(long, default_value_t = 1)]
        decrypt_every: usize,
    },
    /// N LL-HLS viewers doing blocking playlist reloads and part fetches
    /// (plain HLS servers: playlist polling and whole segments).
    Hls {
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        crowd: CrowdArgs,
        /// Playlist path on --http (default /hls/CHANNEL/index.m3u8), to
        /// watch other servers too.
        #[arg(long)]
        playlist: Option<String>,
        #[command(flatten)]
        source: SourceArgs,
    },
    /// N HTTP-FLV viewers (other servers' low-latency playback, for
    /// comparisons: onair itself serves WebRTC and LL-HLS).
    Flv {
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        crowd: CrowdArgs,
        /// Stream path on --http, e.g. /live/test.flv.
        #[arg(long)]
        path: String,
        #[command(flatten)]
        source: SourceArgs,
    },
    /// N plain Icecast listeners (radio apps, VLC): one long GET each on
    /// `--icecast`, from 127.0.0.2 on (200 per address).
    Listen {
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        crowd: CrowdArgs,
        /// Mount path (default /CHANNEL).
        #[arg(long)]
        path: Option<String>,
        #[command(flatten)]
        source: SourceArgs,
    },
    /// N WebSocket chat clients; enough signed-in writers for R messages/s.
    Chat {
        #[command(flatten)]
        run: RunArgs,
        #[arg(long, default_value_t = 50)]
        clients: usize,
        /// Messages per second, over all writers.
        #[arg(long, default_value_t = 5.0)]
        rate: f64,
    },
    /// Everything at once for a long, bounded run: publishers that restart,
    /// WebRTC and LL-HLS viewers, chat, attacks in rotation, a victim; the
    /// server's memory, descriptors and latency sampled throughout.
    Soak(crate::soak::SoakArgs),
    /// A synthetic publisher: an openh264 test pattern with send-time stamps.
    Publish {
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        source: SourceArgs,
    },
}

/// What every scenario takes.
#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    /// The server's HTTP address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// Servers of a site to spread viewers and chat clients over, round
    /// robin (repeat the flag); without it, all go to --http. The
    /// publisher goes to --http.
    #[arg(long = "node")]
    pub nodes: Vec<SocketAddr>,
    #[arg(long, default_value = "demo")]
    pub channel: String,
    /// Measurement window, after every client has joined.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// The server's PID: CPU and memory from /proc.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Read CPU and memory from this server's /metrics instead (the default
    /// without --pid is --http's).
    #[arg(long)]
    pub metrics: Option<SocketAddr>,
    /// Also write the report here as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No table on stdout (the JSON report only).
    #[arg(long)]
    pub quiet: bool,
}

/// How many viewers join, and how fast.
#[derive(Args, Clone, Debug)]
pub struct CrowdArgs {
    #[arg(long, default_value_t = 10)]
    pub viewers: usize,
    /// Pause between joins, so offers do not all land at once.
    #[arg(long, default_value_t = 20)]
    pub ramp_ms: u64,
}

/// The synthetic publisher, for `publish` and alongside viewers.
#[derive(Args, Clone, Debug, Default)]
pub struct SourceArgs {
    /// Publish the pattern over RTMP to this URL (rtmp://HOST:PORT/live/KEY).
    #[arg(long)]
    pub rtmp: Option<String>,
    /// Publish the pattern over WHIP (to --http) with this stream key.
    /// Keys are URL-safe base64, so one in 64 starts with '-'.
    #[arg(long, allow_hyphen_values = true)]
    pub whip_key: Option<String>,
    /// Pattern size, WIDTHxHEIGHT.
    #[arg(long, default_value = "640x360")]
    pub size: String,
    #[arg(long, default_value_t = 600)]
    pub kbps: u32,
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// Publish an MP3 tone (ffmpeg makes it once) with the Icecast source
    /// protocol to `--icecast`, as CHANNEL:KEY; repeat for several streams.
    #[arg(long, allow_hyphen_values = true)]
    pub icecast_source: Vec<String>,
    /// The server's Icecast port, for Icecast sources and listeners
    /// (default 127.0.0.1:8000).
    #[arg(long)]
    pub icecast: Option<SocketAddr>,
    /// MP3 bitrate of the Icecast sources.
    #[arg(long, default_value_t = 128)]
    pub icecast_kbps: u32,
    /// One WebRTC viewer per Icecast source, so the server makes its Opus
    /// form too (decode + two encodes per stream).
    #[arg(long)]
    pub icecast_webrtc: bool,
}

/// Hard caps so a typo cannot turn a load run into a flood.
pub const MAX_CLIENTS: usize = 5000;
pub const MAX_SECONDS: u64 = 600;
pub const MAX_CHAT_RATE: f64 = 500.0;
/// Icecast sources one run may start (each sends about 16 KB/s).
pub const MAX_SOURCES: usize = 100;

impl RunArgs {
    pub fn check(&self, clients: usize) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.http.ip().is_loopback() && self.nodes.iter().all(|n| n.ip().is_loopback()),
            "load goes to loopback only"
        );
        if let Some(m) = self.metrics {
            anyhow::ensure!(m.ip().is_loopback(), "load goes to loopback only");
        }
        anyhow::ensure!(
            clients <= MAX_CLIENTS && self.seconds <= MAX_SECONDS,
            "at most {MAX_CLIENTS} clients for {MAX_SECONDS} s"
        );
        Ok(())
    }

    /// The server client `i` goes to.
    pub fn node(&self, i: usize) -> SocketAddr {
        if self.nodes.is_empty() {
            self.http
        } else {
            self.nodes[i % self.nodes.len()]
        }
    }

    pub fn probe(&self) -> Probe {
        match (self.pid, self.metrics) {
            (Some(p), _) => Probe::Pid(p),
            (None, Some(m)) => Probe::Metrics(m),
            (None, None) => Probe::Metrics(self.http),
        }
    }
}

impl SourceArgs {
    pub fn icecast_addr(&self) -> SocketAddr {
        self.icecast
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8000)))
    }

    pub fn is_set(&self) -> bool {
        self.rtmp.is_some() || self.whip_key.is_some() || !self.icecast_source.is_empty()
    }

    pub fn dimensions(&self) -> anyhow::Result<(usize, usize)> {
        let (w, h) = self
            .size
            .split_once('x')
            .ok_or_else(|| anyhow::anyhow!("--size is WIDTHxHEIGHT"))?;
        Ok((w.parse()?, h.parse()?))
    }

    /// Starts publishing for `dur` (encoding the pattern first).
    pub async fn start(
        &self,
        http: SocketAddr,
        dur: Duration,
    ) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<serde_json::Value>>> {
        if let Some(url) = &self.rtmp {
            let (addr, _, _) = crate::rtmp::parse_url(url)?;
            anyhow::ensure!(addr.ip().is_loopback(), "load goes to loopback only");
        }
        if !self.icecast_source.is_empty() {
            return self.start_icecast(http, dur).await;
        }
        let (width, height) = self.dimensions()?;
        let o = crate::pattern::PatternOptions {
            width,
            height,
            fps: self.fps,
            kbps: self.kbps,
            frames: self.fps as usize * 2,
        };
        let frames = tokio::task::spawn_blocking(move || crate::pattern::encode(&o)).await??;
        let me = self.clone();
        Ok(tokio::spawn(async move {
            let secs = dur.as_secs_f64().max(1e-3);
            if let Some(url) = &me.rtmp {
                let s = crate::rtmp::publish(url, &frames, me.fps, dur).await?;
                Ok(serde_json::json!({
                    "protocol": "rtmp",
                    "connect_ms": s.connect_ms,
                    "frames": s.frames,
                    "mbps": s.bytes as f64 * 8.0 / secs / 1e6,
                }))
            } else {
                let key = me.whip_key.clone().unwrap_or_default();
                let video = frames
                    .iter()
                    .map(|f| bytes::Bytes::from(f.annexb.clone()))
                    .collect();
                let p = crate::whip::publish(
                    http,
                    crate::whip::PublishOptions {
                        key,
                        video,
                        fps: me.fps,
                        audio: Vec::new(),
                        duration: dur,
                        stamp: true,
                        raw: None,
                        on_session: None,
                    },
                )
                .await?;
                anyhow::ensure!(p.status == 201, "WHIP answered {}: {}", p.status, p.error);
                Ok(serde_json::json!({
                    "protocol": "whip",
                    "connect_ms": p.connected_after.map(|d| d.as_secs_f64() * 1000.0),
                    "frames": p.video_frames,
                    "mbps": p.bytes as f64 * 8.0 / secs / 1e6,
                    "keyframe_requests": p.keyframe_requests,
                }))
            }
        }))
    }
}

impl SourceArgs {
    /// Every `--icecast-source` at once, each with a WebRTC viewer when
    /// `--icecast-webrtc`.
    async fn start_icecast(
        &self,
        http: SocketAddr,
        dur: Duration,
    ) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<serde_json::Value>>> {
        anyhow::ensure!(
            self.icecast_addr().ip().is_loopback(),
            "load goes to loopback only"
        );
        anyhow::ensure!(
            self.icecast_source.len() <= MAX_SOURCES,
            "at most {MAX_SOURCES} Icecast sources"
        );
        let mut sources = Vec::new();
        for s in &self.icecast_source {
            let (channel, key) = s
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("--icecast-source is CHANNEL:KEY"))?;
            sources.push((channel.to_string(), key.to_string()));
        }
        let frames = std::sync::Arc::new(crate::icecast::mp3_clip(self.icecast_kbps, 10).await?);
        let (addr, webrtc) = (self.icecast_addr(), self.icecast_webrtc);
        let streams = sources.len();
        Ok(tokio::spawn(async move {
            let mut tasks = Vec::new();
            for (channel, key) in sources {
                let frames = frames.clone();
                tasks.push(tokio::spawn(async move {
                    let viewer = webrtc.then(|| {
                        let ch = channel.clone();
                        tokio::spawn(async move {
                            // Joins once the source is live, leaves with it.
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            let opts = crate::whep::ViewerOptions {
                                record: false,
                                ..Default::default()
                            };
                            crate::whep::watch(
                                http,
                                &ch,
                                dur.saturating_sub(Duration::from_secs(2)),
                                opts,
                            )
                            .await
                        })
                    });
                    let stats = crate::icecast::source(addr, &channel, &key, &frames, dur).await;
                    let audio = match viewer {
                        Some(v) => v
                            .await
                            .ok()
                            .and_then(Result::ok)
                            .map(|r| r.counters.audio_packets),
                        None => None,
                    };
                    (stats, audio)
                }));
            }
            let secs = dur.as_secs_f64().max(1e-3);
            let (mut frames_sent, mut bytes, mut errors, mut audio) =
                (0, 0, Vec::new(), Vec::new());
            for t in tasks {
                let (stats, packets) = t.await?;
                match stats {
                    Ok(s) => {
                        frames_sent += s.frames;
                        bytes += s.bytes;
                    }
                    Err(e) => errors.push(e.to_string()),
                }
                audio.extend(packets);
            }
            anyhow::ensure!(errors.is_empty(), "Icecast source failed: {}", errors[0]);
            Ok(serde_json::json!({
                "protocol": "icecast",
                "streams": streams,
                "frames": frames_sent,
                "mbps": bytes as f64 * 8.0 / secs / 1e6,
                "webrtc_audio_packets": audio,
            }))
        }))
    }
}

/// Parses `args` (without the program name), runs the scenario, prints the
/// table unless `--quiet`, writes `--json`, and returns the report.
pub async fn run<I, T>(args: I) -> anyhow::Result<serde_json::Value>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::try_parse_from(
        std::iter::once("onair-loadtest".into()).chain(args.into_iter().map(Into::into)),
    )?;
    if let Scenario::Soak(args) = &cli.scenario {
        let summary = crate::soak::run(args).await?;
        if !args.quiet {
            crate::soak::print_summary(&summary);
        }
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_vec_pretty(&summary)?)?;
        }
        return Ok(summary);
    }
    let (report, run) = match cli.scenario {
        Scenario::Soak(_) => unreachable!("handled above"),
        Scenario::Whep {
            run,
            crowd,
            source,
            decrypt_every,
        } => (
            crate::scenario::whep(&run, &crowd, &source, decrypt_every).await?,
            run,
        ),
        Scenario::Hls {
            run,
            crowd,
            playlist,
            source,
        } => (
            crate::scenario::hls(&run, &crowd, &playlist, &source).await?,
            run,
        ),
        Scenario::Flv {
            run,
            crowd,
            path,
            source,
        } => (
            crate::scenario::flv(&run, &crowd, &path, &source).await?,
            run,
        ),
        Scenario::Listen {
            run,
            crowd,
            path,
            source,
        } => (
            crate::scenario::listen(&run, &crowd, &path, &source).await?,
            run,
        ),
        Scenario::Chat { run, clients, rate } => {
            (crate::scenario::chat(&run, clients, rate).await?, run)
        }
        Scenario::Publish { run, source } => (crate::scenario::publish(&run, &source).await?, run),
    };
    if !run.quiet {
        crate::report::print_table(&report);
    }
    if let Some(path) = &run.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_key_may_start_with_a_hyphen() {
        let cli = Cli::try_parse_from([
            "onair-loadtest",
            "whep",
            "--whip-key",
            "-l553jo357c515zUzKfnnP_xGHOchyxc",
        ])
        .expect("a key with a leading '-' is a value, not a flag");
        let Scenario::Whep { source, .. } = cli.scenario else {
            panic!("parsed as another scenario");
        };
        assert_eq!(
            source.whip_key.as_deref(),
            Some("-l553jo357c515zUzKfnnP_xGHOchyxc")
        );
    }
}
