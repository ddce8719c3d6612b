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
