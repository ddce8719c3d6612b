//! What every scenario reports: percentiles, the server's CPU and memory
//! (from /proc for a local PID, or from its /metrics), a table for people
//! and JSON for scripts.

use std::net::SocketAddr;
use std::time::Instant;

/// The `p` quantile (0..=1) of `v`, nearest rank; `None` when empty.
pub fn percentile(v: &[f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    Some(s[((s.len() - 1) as f64 * p).round() as usize])
}

/// Microsecond samples to milliseconds.
pub fn us_to_ms(v: &[u32]) -> Vec<f64> {
    v.iter().map(|&u| f64::from(u) / 1000.0).collect()
}

/// p50 and p99 of `v` as JSON numbers (null when there are no samples).
pub fn p50_p99(v: &[f64]) -> (serde_json::Value, serde_json::Value) {
    (percentile(v, 0.5).into(), percentile(v, 0.99).into())
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    cpu_seconds: f64,
    rss_bytes: f64,
}

/// Where the server's CPU and memory come from.
#[derive(Debug, Clone)]
pub enum Probe {
    Pid(u32),
    Metrics(SocketAddr),
    None,
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

/// CPU seconds (user + system) and resident bytes of `pid`, from /proc.
pub fn proc_usage(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: utime is the 12th and
    // stime the 13th of those (proc(5)).
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    Some((ticks as f64 / clock_ticks(), rss_kib * 1024.0))
}

/// CPU seconds (user + system) of `pid`'s threads, summed by thread name
/// (a WebRTC shard's thread is `webrtc-shard-N`; tokio's workers share one
/// name).
pub fn thread_cpu(pid: u32) -> std::collections::BTreeMap<String, f64> {
    let mut by_name = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    let hz = clock_ticks();
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        let (Some((head, rest)), Some(open)) = (stat.rsplit_once(')'), stat.find('(')) else {
            continue;
        };
        let name = head[open + 1..].to_string();
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|i| f.get(*i)?.parse::<u64>().ok())
            .sum();
        *by_name.entry(name).or_insert(0.0) += ticks as f64 / hz;
    }
    by_name
}

/// The value of an unlabelled metric in Prometheus text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok()).flatten()
    })
}

impl Probe {
    async fn sample(&self) -> Option<Sample> {
        let at = Instant::now();
        let (cpu_seconds, rss_bytes) = match self {
            Probe::Pid(pid) => proc_usage(*pid)?,
            Probe::Metrics(addr) => {
                let r = crate::http::try_http(*addr, "GET", "/metrics", &[], b"")
                    .await
                    .ok()?;
                let t = r.text();
                (
                    metric(&t, "process_cpu_seconds_total")?,
                    metric(&t, "process_resident_memory_bytes")?,
                )
            }
            Probe::None => return None,
        };
        Some(Sample {
            at,
            cpu_seconds,
            rss_bytes,
        })
    }
}

/// Server usage over a measurement window.
pub struct ServerWindow {
    probe: Probe,
    before_load: Option<Sample>,
    start: Option<Sample>,
    /// This process's own CPU at the window's start: the load generator
    /// shares the machine, so its cost is reported beside the server's.
    own_start: Option<(Instant, f64)>,
    /// The server's CPU by thread name at the window's start (local PID).
    threads_start: std::collections::BTreeMap<String, f64>,
    /// Where the server's latency histograms are read, and their text at
    /// the window's start.
    histograms: Option<(SocketAddr, String)>,
}

/// The server's latency histograms a window reports, by the name it gives
/// each.
const HISTOGRAMS: [(&str, &str); 2] = [
    ("whip_packet_forwarding_ms", "onair_forward_latency_seconds"),
    ("frame_delivery_ms", "onair_frame_delivery_seconds"),
];

async fn metrics_text(addr: SocketAddr) -> String {
    crate::http::try_http(addr, "GET", "/metrics", &[], b"")
        .await
        .map(|r| r.text())
        .unwrap_or_default()
}

/// p50, p99 and count of each of [`HISTOGRAMS`] between two scrapes, in
/// milliseconds (interpolated in the bucket, as Prometheus does).
fn latency_between(before: &str, after: &str) -> serde_json::Value {
    use crate::soak::sample::{buckets, quantile};
    let mut out = serde_json::Map::new();
    for (key, name) in HISTOGRAMS {
        let (b, a) = (buckets(before, name), buckets(after, name));
        let count = a.last().map_or(0.0, |x| x.1) - b.last().map_or(0.0, |x| x.1);
        let ms = |q| quantile(&b, &a, q).map(|s| s * 1000.0);
        out.insert(
            key.into(),
            serde_json::json!({ "p50": ms(0.5), "p99": ms(0.99), "count": count }),
        );
    }
    out.into()
}

fn own_cpu() -> Option<(Instant, f64)> {
    proc_usage(std::process::id()).map(|(cpu, _)| (Instant::now(), cpu))
}

impl ServerWindow {
    /// Takes the idle baseline (memory before any client connects).
    pub async fn baseline(probe: Probe) -> ServerWindow {
        let before_load = probe.sample().await;
        ServerWindow {
            probe,
            before_load,
            start: None,
            own_start: None,
            threads_start: Default::default(),
            histograms: None,
        }
    }

    /// Also reports the server's latency histograms over the window, read
    /// from `addr`'s /metrics.
    pub fn with_latency_from(mut self, addr: SocketAddr) -> ServerWindow {
        self.histograms = Some((addr, String::new()));
        self
    }

    pub async fn start(&mut self) {
        self.start = self.probe.sample().await;
        self.own_start = own_cpu();
        if let Probe::Pid(pid) = self.probe {
            self.threads_start = thread_cpu(pid);
        }
        if let Some((addr, text)) = &mut self.histograms {
            *text = metrics_text(*addr).await;
        }
    }

    /// CPU over the window and memory now; see [`per_client`].
    pub async fn finish(&self) -> serde_json::Value {
        let (Some(b), Some(a), Some(z)) = (self.before_load, self.start, self.probe.sample().await)
        else {
            return serde_json::Value::Null;
        };
        let wall = z.at.duration_since(a.at).as_secs_f64().max(1e-3);
        let cpu = (z.cpu_seconds - a.cpu_seconds) / wall * 100.0;
        let own = match (self.own_start, own_cpu()) {
            (Some((t0, c0)), Some((t1, c1))) => {
                Some((c1 - c0) / t1.duration_since(t0).as_secs_f64().max(1e-3) * 100.0)
            }
            _ => None,
        };
        // Where the server's CPU went, by thread name: shards' balance.
        let threads: serde_json::Map<String, serde_json::Value> = match self.probe {
            Probe::Pid(pid) => thread_cpu(pid)
                .into_iter()
                .filter_map(|(name, c)| {
                    let used = c - self.threads_start.get(&name).copied().unwrap_or(0.0);
                    let pct = used / wall * 100.0;
                    (pct >= 0.5).then(|| (name, pct.into()))
                })
                .collect(),
            _ => Default::default(),
        };
        let latency = match &self.histograms {
            Some((addr, before)) => latency_between(before, &metrics_text(*addr).await),
            None => serde_json::Value::Null,
        };
        serde_json::json!({
            "latency": latency,
            "threads_cpu_percent_of_one_core": threads,
            "load_generator_cpu_percent_of_one_core": own,
            "source": match self.probe { Probe::Pid(p) => format!("/proc/{p}"), Probe::Metrics(a) => format!("http://{a}/metrics"), Probe::None => String::new() },
            "cpu_percent_of_one_core": cpu,
            "rss_mib": z.rss_bytes / 1048576.0,
            "rss_growth_kib": (z.rss_bytes - b.rss_bytes) / 1024.0,
        })
    }
}

/// Divides the server's CPU and memory growth by the clients that actually
/// connected (known only after the window closes).
pub fn per_client(server: &mut serde_json::Value, clients: usize) {
    let n = clients.max(1) as f64;
    if let Some(cpu) = server["cpu_percent_of_one_core"].as_f64() {
        server["cpu_percent_per_client"] = (cpu / n).into();
    }
    if let Some(rss) = server["rss_growth_kib"].as_f64() {
        server["rss_kib_per_client"] = (rss / n).into();
    }
}

/// Prints `report` as a two-column table (nested objects flattened).
pub fn print_table(report: &serde_json::Value) {
    fn walk(prefix: &str, v: &serde_json::Value, rows: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, rows);
                }
            }
            serde_json::Value::Number(n) => {
                let s = match n.as_f64() {
                    Some(f) if n.is_f64() => format!("{f:.2}"),
                    _ => n.to_string(),
                };
                rows.push((prefix.to_string(), s));
            }
            serde_json::Value::Null => rows.push((prefix.to_string(), "-".into())),
            serde_json::Value::String(s) => rows.push((prefix.to_string(), s.clone())),
            other => rows.push((prefix.to_string(), other.to_string())),
        }
    }
    let mut rows = Vec::new();
    walk("", report, &mut rows);
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    println!("{:-<1$}", "", w + 24);
    for (k, v) in rows {
        println!("{k:<w$}  {v}");
    }
    println!("{:-<1$}", "", w + 24);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_metric_lookup() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(51.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&[], 0.5), None);
        let t = "# HELP x\nprocess_cpu_seconds_total 1.5\nfoo{a=\"b\"} 2\n";
        assert_eq!(metric(t, "process_cpu_seconds_total"), Some(1.5));
        assert_eq!(metric(t, "foo"), None);
    }

    #[test]
    fn latency_is_taken_over_the_window_alone() {
        let h = |n: &str, a: u32, b: u32| {
            format!(
                "{n}_bucket{{le=\"0.001\"}} {a}\n{n}_bucket{{le=\"0.005\"}} {b}\n{n}_bucket{{le=\"+Inf\"}} {b}\n"
            )
        };
        let before = h("onair_frame_delivery_seconds", 100, 100);
        // In the window: 50 within 1 ms, 50 between 1 and 5 ms.
        let after = h("onair_frame_delivery_seconds", 150, 200);
        let got = latency_between(&before, &after);
        let fd = &got["frame_delivery_ms"];
        assert_eq!(fd["count"], 100.0);
        assert!((fd["p50"].as_f64().unwrap() - 1.0).abs() < 1e-9, "{fd}");
        assert!((fd["p99"].as_f64().unwrap() - 4.92).abs() < 1e-9, "{fd}");
        // A histogram the server does not have reports no figures.
        assert!(got["whip_packet_forwarding_ms"]["p99"].is_null());
    }
}
