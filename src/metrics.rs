//! Process-wide counters, exported at `/metrics` in Prometheus text format.
//! Plain atomics: the hot path pays one relaxed add, nothing more.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

static READER_DROPS: AtomicU64 = AtomicU64::new(0);
static RTP_PACKETS_OUT: AtomicU64 = AtomicU64::new(0);
static RTP_BYTES_OUT: AtomicU64 = AtomicU64::new(0);
static UDP_SENDS: AtomicU64 = AtomicU64::new(0);
static UDP_DATAGRAMS: AtomicU64 = AtomicU64::new(0);
static UDP_DROPPED: AtomicU64 = AtomicU64::new(0);
static PLI_SENT: AtomicU64 = AtomicU64::new(0);
static RTMP_PUBLISHES: AtomicU64 = AtomicU64::new(0);
static RTMP_REJECTED: AtomicU64 = AtomicU64::new(0);

pub fn add_reader_drops(n: u64) {
    READER_DROPS.fetch_add(n, Ordering::Relaxed);
}

pub fn add_rtp_out(packets: u64, bytes: u64) {
    RTP_PACKETS_OUT.fetch_add(packets, Ordering::Relaxed);
    RTP_BYTES_OUT.fetch_add(bytes, Ordering::Relaxed);
}

/// One batched send: how many datagrams it carried, and whether it failed.
pub fn udp_send(datagrams: u64, failed: bool) {
    UDP_SENDS.fetch_add(1, Ordering::Relaxed);
    UDP_DATAGRAMS.fetch_add(datagrams, Ordering::Relaxed);
    if failed {
        UDP_DROPPED.fetch_add(datagrams, Ordering::Relaxed);
    }
}

/// Upper bounds (microseconds) of the forwarding-latency histogram buckets:
/// the target is a p99 under 2 ms, so resolution is finest there.
const LATENCY_BUCKETS_US: [u64; 9] = [50, 100, 250, 500, 1000, 2000, 5000, 10_000, 50_000];
static LATENCY_BUCKETS: [AtomicU64; 9] = [const { AtomicU64::new(0) }; 9];
static LATENCY_COUNT: AtomicU64 = AtomicU64::new(0);
static LATENCY_SUM_US: AtomicU64 = AtomicU64::new(0);

/// Server-added latency of one forwarded WHIP packet: from the socket read
/// to its copies leaving for every viewer.
pub fn forward_latency(d: std::time::Duration) {
    let us = d.as_micros() as u64;
    if let Some(i) = LATENCY_BUCKETS_US.iter().position(|b| us <= *b) {
        LATENCY_BUCKETS[i].fetch_add(1, Ordering::Relaxed);
    }
    LATENCY_COUNT.fetch_add(1, Ordering::Relaxed);
    LATENCY_SUM_US.fetch_add(us, Ordering::Relaxed);
}

fn latency_histogram(out: &mut String) {
    let name = "onair_forward_latency_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} WHIP packet in to copies out to every viewer.\n# TYPE {name} histogram"
    );
    let mut cumulative = 0;
    for (b, c) in LATENCY_BUCKETS_US.iter().zip(LATENCY_BUCKETS.iter()) {
        cumulative += c.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"{}\"}} {cumulative}",
            *b as f64 / 1e6
        );
    }
    let count = LATENCY_COUNT.load(Ordering::Relaxed);
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(
        out,
        "{name}_sum {}",
        LATENCY_SUM_US.load(Ordering::Relaxed) as f64 / 1e6
    );
    let _ = writeln!(out, "{name}_count {count}");
}

pub fn pli_sent() {
    PLI_SENT.fetch_add(1, Ordering::Relaxed);
}

pub fn rtmp_publish(accepted: bool) {
    if accepted {
        RTMP_PUBLISHES.fetch_add(1, Ordering::Relaxed);
    } else {
        RTMP_REJECTED.fetch_add(1, Ordering::Relaxed);
    }
}

fn counter(out: &mut String, name: &str, help: &str, v: &AtomicU64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
        v.load(Ordering::Relaxed)
    );
}

/// Renders the counters plus per-channel gauges supplied by the caller.
pub fn render(gauges: &[(String, String, f64)]) -> String {
    let mut out = String::new();
    counter(
        &mut out,
        "onair_reader_dropped_units_total",
        "Units discarded for readers that fell behind.",
        &READER_DROPS,
    );
    counter(
        &mut out,
        "onair_rtp_packets_out_total",
        "RTP packets handed to WebRTC viewers.",
        &RTP_PACKETS_OUT,
    );
    counter(
        &mut out,
        "onair_rtp_bytes_out_total",
        "RTP payload bytes handed to WebRTC viewers.",
        &RTP_BYTES_OUT,
    );
    counter(
        &mut out,
        "onair_rtmp_publishes_total",
        "Accepted RTMP publishes.",
        &RTMP_PUBLISHES,
    );
    counter(
        &mut out,
        "onair_rtmp_rejected_total",
        "Refused RTMP publishes (bad key or app).",
        &RTMP_REJECTED,
    );
    latency_histogram(&mut out);
    let mut last = "";
    for (name, labels, v) in gauges {
        if name != last {
            let _ = writeln!(out, "# TYPE {name} gauge");
            last = name;
        }
        let _ = writeln!(out, "{name}{{{labels}}} {v}");
    }
    out
}
