//! `onair-loadtest`: drives an onair server on loopback with real peers and
//! reports what viewers saw and what the server spent. Every run is bounded
//! in count and time and stops by itself.

use clap::{Parser, Subcommand};
use onair_loadtest::whep::{watch, Counters, ViewerOptions};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "onair-loadtest",
    about = "Load generator for onair (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// N real WebRTC viewers (ICE, DTLS, SRTP) of one channel over WHEP.
    Whep {
        /// The server's HTTP address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        #[arg(long, default_value = "demo")]
        channel: String,
        #[arg(long, default_value_t = 10)]
        viewers: usize,
        /// Measurement window, after every viewer has joined.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Pause between joins, so offers do not all land at once.
        #[arg(long, default_value_t = 20)]
        ramp_ms: u64,
        /// The server's PID, to read its CPU and memory from /proc.
        #[arg(long)]
        pid: Option<u32>,
        /// Write the report here as JSON too.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
    },
}

/// Hard caps so a typo cannot turn a load run into a flood.
const MAX_VIEWERS: usize = 5000;
const MAX_SECONDS: u64 = 600;
/// Time after the last join before measuring, so joins do not count.
const WARMUP: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, Default)]
struct ProcSample {
    cpu_ticks: u64,
    rss_kib: u64,
}

fn proc_sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: utime is the 12th and
    // stime the 13th of those (proc(5)).
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let cpu_ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    Some(ProcSample { cpu_ticks, rss_kib })
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().scenario {
        Scenario::Whep {
            http,
            channel,
            viewers,
            seconds,
            ramp_ms,
            pid,
            json,
        } => {
            anyhow::ensure!(http.ip().is_loopback(), "load goes to loopback only");
            anyhow::ensure!(
                viewers <= MAX_VIEWERS && seconds <= MAX_SECONDS,
                "at most {MAX_VIEWERS} viewers for {MAX_SECONDS} s"
            );
            let before = pid.and_then(proc_sample);
            let ramp = Duration::from_millis(ramp_ms) * viewers as u32;
            let total = ramp + WARMUP + Duration::from_secs(seconds) + Duration::from_secs(1);
            let started = Instant::now();
            let mut tasks = Vec::new();
            for i in 0..viewers {
                let channel = channel.clone();
                // Each viewer lives until the same end time, whenever it joined.
                let dur = total.saturating_sub(Duration::from_millis(ramp_ms) * i as u32);
                tasks.push(tokio::spawn(async move {
                    watch(
                        http,
                        &channel,
                        dur,
                        ViewerOptions {
                            record: false,
                            ..Default::default()
                        },
                    )
                    .await
                }));
                tokio::time::sleep(Duration::from_millis(ramp_ms)).await;
                if (i + 1) % 50 == 0 {
                    eprintln!(
                        "{} viewers started ({:.1} s)",
                        i + 1,
                        started.elapsed().as_secs_f64()
                    );
                }
            }
            tokio::time::sleep(WARMUP).await;
            let t0 = (Instant::now(), pid.and_then(proc_sample));
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            let t1 = (Instant::now(), pid.and_then(proc_sample));
            let mut joins = Vec::new();
            let mut firsts = Vec::new();
            let mut sum = Counters::default();
            let mut connected = 0;
            let mut errors = Vec::new();
            for t in tasks {
                match t.await? {
                    Ok(r) => {
                        if let Some(j) = r.connected_after {
                            connected += 1;
                            joins.push(j.as_secs_f64() * 1000.0);
                        }
                        if let Some(f) = r.first_video_after {
                            firsts.push(f.as_secs_f64() * 1000.0);
                        }
                        let c = r.counters;
                        sum.video_packets += c.video_packets;
                        sum.audio_packets += c.audio_packets;
                        sum.bytes += c.bytes;
                        sum.lost += c.lost;
                        sum.longest_video_gap_ms =
                            sum.longest_video_gap_ms.max(c.longest_video_gap_ms);
                    }
                    Err(e) => errors.push(e.to_string()),
                }
            }
            let wall = t1.0.duration_since(t0.0).as_secs_f64();
            let server = match (before, t0.1, t1.1) {
                (Some(b), Some(a), Some(z)) => {
                    let cpu_pct = (z.cpu_ticks - a.cpu_ticks) as f64 / clock_ticks() / wall * 100.0;
                    Some(serde_json::json!({
                        "cpu_percent_of_one_core": cpu_pct,
                        "cpu_percent_per_viewer": cpu_pct / connected.max(1) as f64,
                        "rss_kib": z.rss_kib,
                        "rss_kib_per_viewer": (z.rss_kib as f64 - b.rss_kib as f64) / connected.max(1) as f64,
                    }))
                }
                _ => None,
            };
            let lifetime = total.as_secs_f64();
            let packets = sum.video_packets + sum.audio_packets;
            let report = serde_json::json!({
                "scenario": "whep",
                "viewers": viewers,
                "connected": connected,
                "errors": errors.len(),
                "first_error": errors.first(),
                "join_ms_p50": percentile(&mut joins.clone(), 0.5),
                "join_ms_p99": percentile(&mut joins, 0.99),
                "first_frame_ms_p50": percentile(&mut firsts.clone(), 0.5),
                "first_frame_ms_p99": percentile(&mut firsts, 0.99),
                "mbps_per_viewer": sum.bytes as f64 * 8.0 / lifetime / 1e6 / connected.max(1) as f64,
                "loss_percent": sum.lost as f64 * 100.0 / (packets + sum.lost).max(1) as f64,
                "longest_freeze_ms": sum.longest_video_gap_ms,
                "server": server,
            });
            println!("{}", serde_json::to_string_pretty(&report)?);
            if let Some(path) = json {
                std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
            }
        }
    }
    Ok(())
}
