//! What a soak keeps count of and reports: the load's tallies, each attack
//! family's log, the summary's JSON parts and the summary for people.

use super::sample;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Counters the load's clients keep, for the summary.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) broadcasts_started: AtomicU64,
    pub(super) broadcasts_ended: AtomicU64,
    pub(super) publish_errors: AtomicU64,
    pub(super) webrtc_sessions: AtomicU64,
    pub(super) webrtc_with_video: AtomicU64,
    pub(super) webrtc_errors: AtomicU64,
    pub(super) hls_sessions: AtomicU64,
    pub(super) hls_with_parts: AtomicU64,
    pub(super) hls_errors: AtomicU64,
    pub(super) chat_sent: AtomicU64,
    pub(super) chat_received: AtomicU64,
    pub(super) chat_rejected: AtomicU64,
    pub(super) spam_sent: AtomicU64,
    pub(super) spam_rejected: AtomicU64,
    pub(super) first_error: Mutex<Option<String>>,
    /// Each LL-HLS session's first error, numbers masked, by how many
    /// sessions met it: what the `hls_errors` were.
    pub(super) hls_first_errors: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    pub(super) fn hls_error(&self, e: &str) {
        let mut kind = String::new();
        for c in e.chars() {
            if c.is_ascii_digit() {
                if !kind.ends_with('N') {
                    kind.push('N');
                }
            } else {
                kind.push(c);
            }
        }
        let mut m = self
            .hls_first_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // Kinds are few; a flood of distinct ones is itself the finding.
        if m.len() < 32 || m.contains_key(&kind) {
            *m.entry(kind).or_default() += 1;
        }
    }

    pub(super) fn error(&self, what: &str, e: impl std::fmt::Display) {
        let mut f = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(format!("{what}: {e}"));
        }
    }
}

/// Per attack family: runs, its results (first and last), and what the
/// victim saw while it ran.
#[derive(Default)]
pub(super) struct AttackLog {
    pub(super) runs: u64,
    pub(super) first: Value,
    pub(super) last: Value,
    pub(super) victim_frames: u64,
    pub(super) victim_errors: u64,
    pub(super) victim_secs: f64,
    pub(super) victim_longest_gap_ms: u64,
}

/// Each attack family's runs, results and what the victim saw meanwhile.
pub(super) fn attacks(logs: &BTreeMap<&'static str, AttackLog>) -> Value {
    let map: serde_json::Map<String, Value> = logs
        .iter()
        .map(|(name, l)| {
            (
                name.to_string(),
                json!({
                    "runs": l.runs,
                    "first": l.first,
                    "last": l.last,
                    "victim": format!(
                        "victim decoded {} frames in {:.1} s ({:.1} fps), {} decode errors, longest video gap {} ms",
                        l.victim_frames, l.victim_secs,
                        l.victim_frames as f64 / l.victim_secs.max(1e-3),
                        l.victim_errors, l.victim_longest_gap_ms
                    ),
                    "victim_longest_gap_ms": l.victim_longest_gap_ms,
                    "victim_decode_errors": l.victim_errors,
                }),
            )
        })
        .collect();
    Value::Object(map)
}

/// What the load's clients counted.
pub(super) fn load(tally: &Tally) -> Value {
    let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
    json!({
        "broadcasts_started": n(&tally.broadcasts_started),
        "broadcasts_ended": n(&tally.broadcasts_ended),
        "publish_errors": n(&tally.publish_errors),
        "webrtc_sessions": n(&tally.webrtc_sessions),
        "webrtc_with_video": n(&tally.webrtc_with_video),
        "webrtc_errors": n(&tally.webrtc_errors),
        "hls_sessions": n(&tally.hls_sessions),
        "hls_with_parts": n(&tally.hls_with_parts),
        "hls_errors": n(&tally.hls_errors),
        "hls_first_errors": tally.hls_first_errors.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        "chat_sent": n(&tally.chat_sent),
        "chat_received": n(&tally.chat_received),
        "chat_rejected": n(&tally.chat_rejected),
        "spam_sent": n(&tally.spam_sent),
        "spam_rejected": n(&tally.spam_rejected),
        "first_error": tally.first_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
    })
}

pub(super) fn fmt(v: &Value) -> String {
    v.as_f64().map_or("-".into(), |x| format!("{x:.1}"))
}

/// The summary for people: the verdict, then the figures.
pub fn print_summary(s: &Value) {
    println!(
        "soak {} ({} min): verdict {}",
        s["run"], s["minutes"], s["verdict"]
    );
    println!(
        "  RSS after warm-up ({} s): {}..{} MiB, median {} MiB, spread {} % of the median, \
         drift {} %, band {} % (flat: within ±{} % of the median)",
        s["warmup_secs"],
        fmt(&s["rss_mib_min"]),
        fmt(&s["rss_mib_max"]),
        fmt(&s["rss_mib_median"]),
        fmt(&s["rss_spread_percent"]),
        fmt(&s["rss_drift_percent"]),
        fmt(&s["rss_band_percent"]),
        sample::RSS_BAND_PERCENT
    );
    println!(
        "  fds after warm-up: {}..{} (between attacks {}..{}, growth {})",
        s["fds_min"], s["fds_max"], s["fds_calm_min"], s["fds_calm_max"], s["fds_calm_growth"]
    );
    println!(
        "  forwarding latency p50 {} ms, p99 {} ms over {} packets; worst sample p99 {} ms",
        fmt(&s["fwd_p50_ms"]),
        fmt(&s["fwd_p99_ms"]),
        s["fwd_packets"],
        fmt(&s["fwd_p99_ms_worst_sample"])
    );
    println!(
        "  panics {}; victim {} frames ({} fps), {} decode errors, longest gap {} ms, {} samples over 1 s",
        s["panics"],
        s["victim_frames"],
        fmt(&s["victim_fps"]),
        s["victim_decode_errors"],
        s["victim_longest_gap_ms"],
        s["victim_samples_over_1s_gap"]
    );
    println!(
        "  attacks: {} run, {} failed on the attacker's side",
        s["attacks_run"], s["attack_errors"]
    );
    println!("  load: {}", s["load"]);
    if let Some(a) = s["attacks"].as_object() {
        for (name, v) in a {
            println!(
                "  {name} x{}: {}; last: {}",
                v["runs"], v["victim"], v["last"]
            );
        }
    }
}
