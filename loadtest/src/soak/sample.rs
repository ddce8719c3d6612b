//! The soak's timeline: every `--sample-secs` the server's `/metrics` (and
//! `/proc/PID` with `--pid`) and the victim's counters, one JSON line a
//! sample; and the summary over the samples after the warm-up.

use crate::whep::Live;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Samples kept in memory: a 10 h run at one every 10 s. Past it the
/// timeline file still gets every sample; the summary uses the first ones.
pub const MAX_SAMPLES: usize = 3600;
/// A video gap a viewer notices as a freeze (the suite's victim bound).
pub const VICTIM_MAX_GAP_MS: u64 = 1000;
/// RSS may stray this much (percent) from its median after the warm-up
/// and still count as flat: allocator caches and the LL-HLS windows of
/// restarting channels move it by a few percent, a leak keeps going.
pub const RSS_BAND_PERCENT: f64 = 10.0;
/// Open files may grow this much between attacks, from the first half of
/// the run after the warm-up to the second, and still count as flat:
/// publishers restarting and HLS viewers reconnecting move a few.
pub const FD_SLACK: f64 = 16.0;

/// Every series of `name` in Prometheus text: (labels, value).
pub fn series<'a>(text: &'a str, name: &str) -> Vec<(&'a str, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, v) = l.rsplit_once(' ')?;
            let v: f64 = v.trim().parse().ok()?;
            let (n, labels) = match key.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (key, ""),
            };
            (n == name).then_some((labels, v))
        })
        .collect()
}

/// The sum over every series of `name` (0 when there is none; an empty
/// f64 sum is -0, which would print as such).
pub fn total(text: &str, name: &str) -> f64 {
    series(text, name).iter().map(|(_, v)| v).sum::<f64>() + 0.0
}

/// The sum over the series of `name` whose labels contain `label`.
pub fn total_with(text: &str, name: &str, label: &str) -> f64 {
    series(text, name)
        .iter()
        .filter(|(l, _)| l.contains(label))
        .map(|(_, v)| v)
        .sum::<f64>()
        + 0.0
}

/// A histogram's cumulative buckets: (upper bound in seconds, count).
pub fn buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
    let mut b: Vec<(f64, f64)> = series(text, &format!("{name}_bucket"))
        .into_iter()
        .filter_map(|(labels, v)| {
            let le = labels.strip_prefix("le=\"")?.trim_end_matches('"');
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, v))
        })
        .collect();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    b
}

/// The `q` quantile of the observations between two snapshots of the same
/// histogram, interpolated within its bucket as Prometheus'
/// `histogram_quantile` does; the last finite bound when it falls in
/// `+Inf`. `None` without observations.
pub fn quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Option<f64> {
    let delta: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, c)| {
            let b = before
                .iter()
                .find(|(l, _)| l == le)
                .map_or(0.0, |(_, c)| *c);
            (*le, (c - b).max(0.0))
        })
        .collect();
    let count = delta.last()?.1;
    if count <= 0.0 {
        return None;
    }
    let rank = q * count;
    let (mut lower, mut below) = (0.0, 0.0);
    for (le, c) in &delta {
        if *c >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            let inside = c - below;
            let frac = if inside > 0.0 {
                (rank - below) / inside
            } else {
                1.0
            };
            return Some(lower + (le - lower) * frac);
        }
        lower = *le;
        below = *c;
    }
    Some(lower)
}

/// Resident bytes, open fds and CPU seconds of `pid`, from /proc.
fn proc_stats(pid: u32) -> Option<(f64, f64, f64)> {
    let (cpu, rss) = crate::report::proc_usage(pid)?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as f64;
    Some((rss, fds, cpu))
}

fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// What the sampler remembers from the previous sample.
pub struct Sampler {
    http: SocketAddr,
    pid: Option<u32>,
    started: Instant,
    last_hist: Vec<(f64, f64)>,
    first_hist: Option<Vec<(f64, f64)>>,
    hist_now: Vec<(f64, f64)>,
    last_cpu: Option<(Instant, f64)>,
    last_decoded: u64,
    last_errors: u64,
    first_panics: Option<f64>,
    pub rows: Vec<Value>,
}

impl Sampler {
    pub fn new(http: SocketAddr, pid: Option<u32>, started: Instant) -> Sampler {
        Sampler {
            http,
            pid,
            started,
            last_hist: Vec::new(),
            first_hist: None,
            hist_now: Vec::new(),
            last_cpu: None,
            last_decoded: 0,
            last_errors: 0,
            first_panics: None,
            rows: Vec::new(),
        }
    }

    /// Takes one sample; `attack` is what runs now, `calm` whether no
    /// attack has run for a few seconds, `attacks` how many have run and
    /// how many of those failed on the attacker's side.
    pub async fn sample(
        &mut self,
        victim: &Live,
        attack: Option<&str>,
        calm: bool,
        attacks: (u64, u64),
    ) -> Value {
        let now = Instant::now();
        let t = now.duration_since(self.started).as_secs_f64();
        let text = crate::http::try_http(self.http, "GET", "/metrics", &[], b"")
            .await
            .ok()
            .filter(|r| r.status == 200)
            .map(|r| r.text());
        let Some(m) = text else {
            let row = json!({"t": t, "error": "no /metrics", "attack": attack,
                "attacks_run": attacks.0, "attack_errors": attacks.1});
            self.keep(row.clone());
            return row;
        };
        let metric = |n: &str| crate::report::metric(&m, n);
        let (rss, fds, cpu) = match self.pid.and_then(proc_stats) {
            Some((r, f, c)) => (Some(r), Some(f), Some(c)),
            None => (
                metric("process_resident_memory_bytes"),
                metric("process_open_fds"),
                metric("process_cpu_seconds_total"),
            ),
        };
        let cpu_percent = match (cpu, self.last_cpu) {
            (Some(c), Some((at, c0))) => {
                Some((c - c0) / now.duration_since(at).as_secs_f64().max(1e-3) * 100.0)
            }
            _ => None,
        };
        if let Some(c) = cpu {
            self.last_cpu = Some((now, c));
        }
        let hist = buckets(&m, "onair_forward_latency_seconds");
        let p = |q| quantile(&self.last_hist, &hist, q).map(|s| s * 1000.0);
        let (fwd50, fwd99) = (p(0.5), p(0.99));
        let fwd_packets =
            hist.last().map_or(0.0, |l| l.1) - self.last_hist.last().map_or(0.0, |l| l.1);
        if self.first_hist.is_none() {
            self.first_hist = Some(hist.clone());
        }
        self.last_hist = hist.clone();
        self.hist_now = hist;
        let panics = total(&m, "onair_isolated_panics_total");
        self.first_panics.get_or_insert(panics);
        let decoded = victim.decoded.load(Ordering::Relaxed);
        let errors = victim.decode_errors.load(Ordering::Relaxed);
        let gap = victim.take_gap(now, 0).map(|d| d.as_millis() as u64);
        let row = json!({
            "t": (t * 10.0).round() / 10.0,
            "rss_mib": rss.map(|r| r / 1048576.0),
            "fds": fds,
            "cpu_percent": cpu_percent,
            "fwd_p50_ms": fwd50,
            "fwd_p99_ms": fwd99,
            "fwd_packets": fwd_packets,
            "panics": panics,
            "webrtc_viewers": total_with(&m, "onair_viewers", "protocol=\"webrtc\""),
            "hls_viewers": total_with(&m, "onair_viewers", "protocol=\"hls\""),
            "live_streams": metric("onair_live_streams"),
            "chat_sockets": metric("onair_chat_sockets"),
            "limit_hits": total(&m, "onair_limit_hits_total"),
            "refused": total(&m, "onair_connections_refused_total"),
            "ingest_dropped": total(&m, "onair_ingest_dropped_total"),
            "victim_frames": decoded - self.last_decoded.min(decoded),
            "victim_decode_errors": errors - self.last_errors.min(errors),
            "victim_gap_ms": gap,
            "attack": attack,
            "attacks_run": attacks.0,
            "attack_errors": attacks.1,
            "calm": calm,
            "load1": load_average(),
        });
        self.last_decoded = decoded;
        self.last_errors = errors;
        self.keep(row.clone());
        row
    }

    fn keep(&mut self, row: Value) {
        if self.rows.len() < MAX_SAMPLES {
            self.rows.push(row);
        }
    }

    /// Forwarding latency over the whole run (ms).
    pub fn run_latency(&self) -> (Option<f64>, Option<f64>, f64) {
        let first = self.first_hist.clone().unwrap_or_default();
        let count = self.hist_now.last().map_or(0.0, |l| l.1) - first.last().map_or(0.0, |l| l.1);
        (
            quantile(&first, &self.hist_now, 0.5).map(|s| s * 1000.0),
            quantile(&first, &self.hist_now, 0.99).map(|s| s * 1000.0),
            count,
        )
    }

    pub fn first_panics(&self) -> f64 {
        self.first_panics.unwrap_or(0.0)
    }
}

fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

fn min_max(v: &[f64]) -> (Option<f64>, Option<f64>) {
    (
        v.iter().copied().reduce(f64::min),
        v.iter().copied().reduce(f64::max),
    )
}

/// The verdict over `rows` (samples) after `warmup_secs`.
pub fn summarize(rows: &[Value], warmup_secs: f64, first_panics: f64) -> Value {
    let after: Vec<&Value> = rows
        .iter()
        .filter(|r| r["t"].as_f64().unwrap_or(0.0) >= warmup_secs && r["error"].is_null())
        .collect();
    let col = |rows: &[&Value], k: &str| -> Vec<f64> {
        rows.iter().filter_map(|r| r[k].as_f64()).collect()
    };
    let rss = col(&after, "rss_mib");
    let (rss_min, rss_max) = min_max(&rss);
    let rss_ref = rss.first().copied();
    let rss_median = median(&rss);
    let band = rss_median.map(|m| {
        rss.iter()
            .map(|x| (x - m).abs() / m * 100.0)
            .fold(0.0, f64::max)
    });
    let spread = match (rss_min, rss_max, rss_median) {
        (Some(lo), Some(hi), Some(m)) => Some((hi - lo) / m * 100.0),
        _ => None,
    };
    let drift = match (rss_ref, rss.last()) {
        (Some(a), Some(b)) => Some((b - a) / a * 100.0),
        _ => None,
    };
    let fds = col(&after, "fds");
    let (fd_min, fd_max) = min_max(&fds);
    // Between attacks only: a flood holds hundreds of sockets by design.
    let calm: Vec<&Value> = after
        .iter()
        .copied()
        .filter(|r| r["calm"].as_bool() == Some(true))
        .collect();
    let half = calm.len() / 2;
    let (_, calm_first_max) = min_max(&col(&calm[..half], "fds"));
    let (_, calm_second_max) = min_max(&col(&calm[half..], "fds"));
    let (calm_min, calm_max) = min_max(&col(&calm, "fds"));
    let fd_growth = match (calm_first_max, calm_second_max) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let fds_flat = match (fd_growth, calm_first_max) {
        (Some(g), Some(a)) => g <= FD_SLACK.max(a * 0.1),
        _ => false,
    };
    let panics_now = rows
        .iter()
        .filter_map(|r| r["panics"].as_f64())
        .fold(first_panics, f64::max);
    let panics = panics_now - first_panics;
    let all_ok: Vec<&Value> = rows.iter().filter(|r| r["error"].is_null()).collect();
    let frames: f64 = col(&all_ok, "victim_frames").iter().sum();
    let errors: f64 = col(&all_ok, "victim_decode_errors").iter().sum();
    let gaps: Vec<f64> = col(&all_ok, "victim_gap_ms");
    let longest_gap = gaps.iter().copied().fold(0.0, f64::max);
    let frozen = gaps
        .iter()
        .filter(|g| **g > VICTIM_MAX_GAP_MS as f64)
        .count();
    let secs = match (all_ok.first(), all_ok.last()) {
        (Some(a), Some(b)) => b["t"].as_f64().unwrap_or(0.0) - a["t"].as_f64().unwrap_or(0.0),
        _ => 0.0,
    };
    let p99s = col(&after, "fwd_p99_ms");
    let rss_flat = band.is_some_and(|b| b <= RSS_BAND_PERCENT);
    let victim_ok = errors == 0.0 && frozen == 0 && frames > 0.0;
    json!({
        "samples": rows.len(),
        "samples_after_warmup": after.len(),
        "warmup_secs": warmup_secs,
        "rss_mib_min": rss_min,
        "rss_mib_max": rss_max,
        "rss_mib_median": rss_median,
        "rss_spread_percent": spread,
        "rss_mib_first": rss_ref,
        "rss_mib_last": rss.last(),
        "rss_drift_percent": drift,
        "rss_band_percent": band,
        "fds_min": fd_min,
        "fds_max": fd_max,
        "fds_calm_min": calm_min,
        "fds_calm_max": calm_max,
        "fds_calm_growth": fd_growth,
        "fwd_p99_ms_worst_sample": p99s.iter().copied().reduce(f64::max),
        "panics": panics,
        "victim_frames": frames,
        "victim_fps": if secs > 0.0 { frames / secs } else { 0.0 },
        "victim_decode_errors": errors,
        "victim_longest_gap_ms": longest_gap,
        "victim_samples_over_1s_gap": frozen,
        "verdict": {
            "rss_flat": rss_flat,
            "fds_flat": fds_flat,
            "zero_panics": panics == 0.0,
            "victim_kept_playing": victim_ok,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_deltas_give_quantiles() {
        let t0 = "h_bucket{le=\"0.001\"} 10\nh_bucket{le=\"0.002\"} 10\nh_bucket{le=\"+Inf\"} 10\n";
        let t1 =
            "h_bucket{le=\"0.001\"} 60\nh_bucket{le=\"0.002\"} 110\nh_bucket{le=\"+Inf\"} 110\n";
        let (a, b) = (buckets(t0, "h"), buckets(t1, "h"));
        assert_eq!(b.len(), 3);
        // 100 new: 50 under 1 ms, 50 between 1 and 2 ms.
        let p50 = quantile(&a, &b, 0.5).unwrap();
        assert!((p50 - 0.001).abs() < 1e-9, "{p50}");
        let p99 = quantile(&a, &b, 0.99).unwrap();
        assert!(p99 > 0.0019 && p99 <= 0.002, "{p99}");
        assert_eq!(quantile(&b, &b, 0.5), None);
        let t = "x{a=\"1\"} 2\nx{a=\"2\"} 3\nx 4\nxy 9\n";
        assert_eq!(total(t, "x"), 9.0);
        assert_eq!(total_with(t, "x", "a=\"2\""), 3.0);
    }

    #[test]
    fn the_verdict_sees_growth() {
        let row = |t: f64, rss: f64, fds: f64| {
            json!({"t": t, "rss_mib": rss, "fds": fds, "calm": true, "panics": 0.0,
                   "victim_frames": 300.0, "victim_decode_errors": 0.0, "victim_gap_ms": 50.0})
        };
        let flat: Vec<Value> = (0..20)
            .map(|i| row(i as f64 * 10.0, 100.0 + (i % 3) as f64, 50.0))
            .collect();
        let s = summarize(&flat, 30.0, 0.0);
        assert_eq!(s["verdict"]["rss_flat"], true, "{s:#}");
        assert_eq!(s["verdict"]["fds_flat"], true, "{s:#}");
        assert_eq!(s["verdict"]["victim_kept_playing"], true, "{s:#}");
        let leaking: Vec<Value> = (0..20)
            .map(|i| {
                row(
                    i as f64 * 10.0,
                    100.0 + i as f64 * 2.0,
                    50.0 + i as f64 * 5.0,
                )
            })
            .collect();
        let s = summarize(&leaking, 30.0, 0.0);
        assert_eq!(s["verdict"]["rss_flat"], false, "{s:#}");
        assert_eq!(s["verdict"]["fds_flat"], false, "{s:#}");
    }
}
