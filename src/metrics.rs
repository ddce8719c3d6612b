//! Process-wide counters, exported at `/metrics` in Prometheus text format.
//! Plain atomics: the hot path pays one relaxed add, nothing more.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

static READER_DROPS: AtomicU64 = AtomicU64::new(0);
static RTP_PACKETS_OUT: AtomicU64 = AtomicU64::new(0);
static RTP_BYTES_OUT: AtomicU64 = AtomicU64::new(0);
static UDP_SENDS: AtomicU64 = AtomicU64::new(0);
static UDP_DATAGRAMS: AtomicU64 = AtomicU64::new(0);
static UDP_DROPPED: AtomicU64 = AtomicU64::new(0);
static PLI_SENT: AtomicU64 = AtomicU64::new(0);
static RTMP_PUBLISHES: AtomicU64 = AtomicU64::new(0);
static RTMP_REJECTED: AtomicU64 = AtomicU64::new(0);
static HLS_PLAYLIST_REQUESTS: AtomicU64 = AtomicU64::new(0);
static HLS_MEDIA_REQUESTS: AtomicU64 = AtomicU64::new(0);
static CHAT_MESSAGES: AtomicU64 = AtomicU64::new(0);
static RECORDINGS_ARCHIVED: AtomicU64 = AtomicU64::new(0);
static RECORDING_ARCHIVE_FAILURES: AtomicU64 = AtomicU64::new(0);
static NACKS_RECEIVED: AtomicU64 = AtomicU64::new(0);
static TWCC_FEEDBACK: AtomicU64 = AtomicU64::new(0);
static PATH_CHANGES: AtomicU64 = AtomicU64::new(0);
static RETRANSMITTED: AtomicU64 = AtomicU64::new(0);
static PLI_RECEIVED: AtomicU64 = AtomicU64::new(0);
static QUALITY_DOWN: AtomicU64 = AtomicU64::new(0);
static QUALITY_UP: AtomicU64 = AtomicU64::new(0);
static RTMP_BUFFERED: AtomicI64 = AtomicI64::new(0);

/// Counters with one label, for events that are rare enough that a map
/// behind a mutex costs nothing: panics, refused connections, limits hit.
struct Labeled {
    name: &'static str,
    label: &'static str,
    help: &'static str,
    values: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

impl Labeled {
    const fn new(name: &'static str, label: &'static str, help: &'static str) -> Labeled {
        Labeled {
            name,
            label,
            help,
            values: std::sync::Mutex::new(std::collections::BTreeMap::new()),
        }
    }

    fn add(&self, value: &'static str, n: u64) {
        let mut v = self.values.lock().unwrap_or_else(|e| e.into_inner());
        *v.entry(value).or_default() += n;
    }

    fn get(&self, value: &str) -> u64 {
        let v = self.values.lock().unwrap_or_else(|e| e.into_inner());
        v.get(value).copied().unwrap_or(0)
    }

    fn render(&self, out: &mut String) {
        let (name, label) = (self.name, self.label);
        let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} counter", self.help);
        let v = self.values.lock().unwrap_or_else(|e| e.into_inner());
        for (value, n) in v.iter() {
            // No label name: the value is the whole label set.
            if label.is_empty() {
                let _ = writeln!(out, "{name}{{{value}}} {n}");
            } else {
                let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
            }
        }
    }
}

static ISOLATED_PANICS: Labeled = Labeled::new(
    "onair_isolated_panics_total",
    "component",
    "Panics contained to the one peer, connection or request they happened in.",
);
static CONNECTIONS_REFUSED: Labeled = Labeled::new(
    "onair_connections_refused_total",
    "listener",
    "Connections refused at a listener's global or per-address cap.",
);
static LIMIT_HITS: Labeled = Labeled::new(
    "onair_limit_hits_total",
    "limit",
    "Times a client reached a named limit (a buffer, queue or rate) and was cut off or slowed.",
);

static INGEST_DROPPED: Labeled = Labeled::new(
    "onair_ingest_dropped_total",
    "reason",
    "Publisher packets or access units dropped as malformed, incomplete or over a limit.",
);

static SRTP_PROFILES: Labeled = Labeled::new(
    "onair_webrtc_srtp_sessions_total",
    "profile",
    "WebRTC viewers connected on the lean session, by the SRTP profile DTLS chose.",
);

/// A lean viewer connected with `profile`.
pub fn srtp_profile(profile: crate::sfu::srtp::Profile) {
    SRTP_PROFILES.add(
        match profile {
            crate::sfu::srtp::Profile::AeadAes128Gcm => "aead_aes_128_gcm",
            crate::sfu::srtp::Profile::Aes128CmHmacSha1_80 => "aes_cm_128_hmac_sha1_80",
        },
        1,
    );
}

/// A publisher's packet or access unit dropped, and why.
pub fn ingest_dropped(reason: &'static str) {
    INGEST_DROPPED.add(reason, 1);
}

pub fn ingest_drops(reason: &str) -> u64 {
    INGEST_DROPPED.get(reason)
}

static WEBHOOK_ADMISSIONS: Labeled = Labeled::new(
    "onair_webhook_admissions_total",
    "result",
    "Answers to the publish webhook: allowed, refused, or unanswered and then admitted or refused by --webhook-fail.",
);
static WEBHOOK_DELIVERIES: Labeled = Labeled::new(
    "onair_webhook_deliveries_total",
    "result",
    "Webhook delivery attempts and losses: delivered, failed_attempt (retried later), rejected (a 4xx), given_up, dropped_*.",
);

pub fn webhook_admission(result: &'static str) {
    WEBHOOK_ADMISSIONS.add(result, 1);
}

pub fn webhook_delivery(result: &'static str) {
    WEBHOOK_DELIVERIES.add(result, 1);
}

pub fn webhook_deliveries(result: &str) -> u64 {
    WEBHOOK_DELIVERIES.get(result)
}

static ACME_ORDERS: Labeled = Labeled::new(
    "onair_acme_orders_total",
    "result",
    "Certificate orders to the ACME CA: issued or failed (retried later).",
);

pub fn acme_order(issued: bool) {
    ACME_ORDERS.add(if issued { "issued" } else { "failed" }, 1);
}

/// When the served TLS certificate expires (Unix seconds); 0 without one.
static TLS_NOT_AFTER: AtomicI64 = AtomicI64::new(0);

pub fn set_tls_not_after(unix_secs: i64) {
    TLS_NOT_AFTER.store(unix_secs, Ordering::Relaxed);
}

static PUBLISHES: Labeled = Labeled::new(
    "onair_publishes_total",
    "",
    "Publish attempts by protocol (rtmp, whip, icecast) and result: accepted, or rejected (a wrong key, the publish webhook, bad arguments).",
);

/// A publish attempt over `protocol`, admitted or not.
pub fn publish(protocol: &'static str, accepted: bool) {
    let labels = match (protocol, accepted) {
        ("rtmp", true) => r#"protocol="rtmp",result="accepted""#,
        ("rtmp", false) => r#"protocol="rtmp",result="rejected""#,
        ("whip", true) => r#"protocol="whip",result="accepted""#,
        ("whip", false) => r#"protocol="whip",result="rejected""#,
        ("icecast", true) => r#"protocol="icecast",result="accepted""#,
        ("icecast", false) => r#"protocol="icecast",result="rejected""#,
        (_, true) => r#"protocol="other",result="accepted""#,
        (_, false) => r#"protocol="other",result="rejected""#,
    };
    PUBLISHES.add(labels, 1);
}

/// Per WebRTC driver (each shard, and the ingest), summed when read.
static VIEWERS_WAITING: [AtomicU64; crate::sfu::shard::MAX_SHARDS + 1] =
    [const { AtomicU64::new(0) }; crate::sfu::shard::MAX_SHARDS + 1];

/// Connected WebRTC viewers of one driver waiting more than 2 s for a
/// picture.
pub fn set_viewers_waiting_for_picture(driver: u8, n: usize) {
    if let Some(slot) = VIEWERS_WAITING.get(usize::from(driver)) {
        slot.store(n as u64, Ordering::Relaxed);
    }
}

/// A panic contained by [`crate::isolate`].
pub fn isolated_panic(component: &'static str) {
    ISOLATED_PANICS.add(component, 1);
}

pub fn isolated_panics(component: &str) -> u64 {
    ISOLATED_PANICS.get(component)
}

/// A connection refused by a [`crate::net::ConnGate`].
pub fn connection_refused(listener: &'static str) {
    CONNECTIONS_REFUSED.add(listener, 1);
}

/// A client reached the named limit (its constant's name, in snake case).
pub fn limit_hit(limit: &'static str) {
    LIMIT_HITS.add(limit, 1);
}

/// `n` items (datagrams, say) cut off at once by `limit`.
pub fn limit_hits_add(limit: &'static str, n: u64) {
    LIMIT_HITS.add(limit, n);
}

pub fn limit_hits(limit: &str) -> u64 {
    LIMIT_HITS.get(limit)
}

/// Packets a WebRTC viewer asked to have retransmitted (NACK).
pub fn nacks_received(packets: u64) {
    NACKS_RECEIVED.fetch_add(packets, Ordering::Relaxed);
}

pub fn twcc_feedback_received() {
    TWCC_FEEDBACK.fetch_add(1, Ordering::Relaxed);
}

/// A lean viewer's media moved to another of its proven paths.
pub fn webrtc_path_change() {
    PATH_CHANGES.fetch_add(1, Ordering::Relaxed);
}

/// Video packets resent to WebRTC viewers for their NACKs.
pub fn retransmitted(packets: u64) {
    RETRANSMITTED.fetch_add(packets, Ordering::Relaxed);
}

/// A keyframe request (PLI or FIR) from a WebRTC viewer.
pub fn pli_received() {
    PLI_RECEIVED.fetch_add(1, Ordering::Relaxed);
}

/// A viewer moved between full, keyframes-only and audio-only.
pub fn quality_change(up: bool) {
    if up {
        QUALITY_UP.fetch_add(1, Ordering::Relaxed);
    } else {
        QUALITY_DOWN.fetch_add(1, Ordering::Relaxed);
    }
}

/// One live HLS request: a playlist (blocking or not) or a media file.
pub fn hls_request(playlist: bool) {
    if playlist {
        HLS_PLAYLIST_REQUESTS.fetch_add(1, Ordering::Relaxed);
    } else {
        HLS_MEDIA_REQUESTS.fetch_add(1, Ordering::Relaxed);
    }
}

/// A finished recording copied whole to the object store.
pub fn recording_archived() {
    RECORDINGS_ARCHIVED.fetch_add(1, Ordering::Relaxed);
}

/// A copy to the object store that failed (it is tried again).
pub fn recording_archive_failed() {
    RECORDING_ARCHIVE_FAILURES.fetch_add(1, Ordering::Relaxed);
}

/// One chat message accepted (over WebSocket or a WHEP data channel).
pub fn chat_message() {
    CHAT_MESSAGES.fetch_add(1, Ordering::Relaxed);
}

pub fn add_reader_drops(n: u64) {
    READER_DROPS.fetch_add(n, Ordering::Relaxed);
}

pub fn add_rtp_out(packets: u64, bytes: u64) {
    RTP_PACKETS_OUT.fetch_add(packets, Ordering::Relaxed);
    RTP_BYTES_OUT.fetch_add(bytes, Ordering::Relaxed);
}

/// One batched send: how many datagrams it carried, and whether it failed.
pub fn udp_send(calls: u64, datagrams: u64, dropped: u64) {
    UDP_SENDS.fetch_add(calls, Ordering::Relaxed);
    UDP_DATAGRAMS.fetch_add(datagrams, Ordering::Relaxed);
    UDP_DROPPED.fetch_add(dropped, Ordering::Relaxed);
}

/// Upper bounds (microseconds) of the latency histograms' buckets: the
/// targets are a p99 under 1 ms (a WHIP packet) and 5 ms (an access
/// unit), so resolution is finest there.
const LATENCY_BUCKETS_US: [u64; 11] = [
    50, 100, 250, 500, 1000, 2000, 3000, 5000, 10_000, 20_000, 50_000,
];

/// A latency histogram in Prometheus' form.
struct Histogram {
    name: &'static str,
    help: &'static str,
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    const fn new(name: &'static str, help: &'static str) -> Self {
        Histogram {
            name,
            help,
            buckets: [const { AtomicU64::new(0) }; LATENCY_BUCKETS_US.len()],
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }

    fn observe(&self, d: std::time::Duration) {
        let us = d.as_micros() as u64;
        if let Some(i) = LATENCY_BUCKETS_US.iter().position(|b| us <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String) {
        let name = self.name;
        let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} histogram", self.help);
        let mut cumulative = 0;
        for (b, c) in LATENCY_BUCKETS_US.iter().zip(self.buckets.iter()) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{}\"}} {cumulative}",
                *b as f64 / 1e6
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

static FORWARD_LATENCY: Histogram = Histogram::new(
    "onair_forward_latency_seconds",
    "WHIP packet in to copies out to every viewer.",
);
static FRAME_DELIVERY: Histogram = Histogram::new(
    "onair_frame_delivery_seconds",
    "Video access unit taken from the hub to its last packet handed to the kernel for every viewer of a shard.",
);

/// Server-added latency of one forwarded WHIP packet: from the socket read
/// to its copies leaving for every viewer.
pub fn forward_latency(d: std::time::Duration) {
    FORWARD_LATENCY.observe(d);
}

/// One video access unit of hub media (an RTMP publish), from its
/// egress taking it from the hub to every viewer's last packet of it
/// handed to the kernel, in one shard.
pub fn frame_delivery(d: std::time::Duration) {
    FRAME_DELIVERY.observe(d);
}

pub fn pli_sent() {
    PLI_SENT.fetch_add(1, Ordering::Relaxed);
}

/// Bytes RTMP connections took in and hold in messages not yet complete.
pub fn rtmp_buffered(delta: i64) {
    RTMP_BUFFERED.fetch_add(delta, Ordering::Relaxed);
}

pub fn rtmp_publish(accepted: bool) {
    publish("rtmp", accepted);
    if accepted {
        RTMP_PUBLISHES.fetch_add(1, Ordering::Relaxed);
    } else {
        RTMP_REJECTED.fetch_add(1, Ordering::Relaxed);
    }
}

/// CPU seconds and resident bytes of this process, from /proc: the
/// standard `process_*` metrics, so a load tool or Prometheus can read the
/// server's cost without access to its PID.
fn process_usage() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // utime and stime are the 12th and 13th fields after the command name.
    let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    // USER_HZ is 100 on every Linux architecture this builds for.
    Some((ticks as f64 / 100.0, rss_kib * 1024.0))
}

fn counter(out: &mut String, name: &str, help: &str, v: &AtomicU64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
        v.load(Ordering::Relaxed)
    );
}

static START_TIME: std::sync::OnceLock<f64> = std::sync::OnceLock::new();

/// Notes the process start (called once, early, by the server).
pub fn mark_start() {
    START_TIME.get_or_init(unix_now_f64);
}

fn unix_now_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The families the caller passes to [`render`], with their HELP. Each is
/// described even with no sample (no channel live), so dashboards and
/// alerts find every name.
const CALLER_FAMILIES: &[(&str, &str)] = &[
    ("onair_viewers", "Viewers now, by channel and protocol (webrtc, hls: an estimate from requests, icecast, flv)."),
    ("onair_webrtc_relay_sessions", "WHEP sessions relaying each channel to other servers of the site (edges pulling it); not counted as viewers."),
    ("onair_webrtc_shard_sessions", "WHEP sessions (viewers and relays) each WebRTC fan-out shard serves now (--webrtc-shards)."),
    ("onair_edge_pulls", "Channels this server pulls from the server they are live on, for its own viewers (--role edge)."),
    ("onair_ingest_bytes_total", "Bytes received from each live channel's publisher."),
    ("onair_ingest_video_frames_total", "Video frames received from each live channel's publisher."),
    ("onair_stream_readers", "Readers attached to each live stream in the hub (WebRTC, the segmenter, FLV and Icecast players)."),
    ("onair_live_streams", "Channels live now."),
    ("onair_db_pool_connections", "Database connections open."),
    ("onair_db_pool_idle", "Database connections open and idle."),
    ("onair_password_hash_slots", "Password hashes that may run at once (one per core)."),
    ("onair_password_hashes_running", "Password hashes running now."),
    ("onair_password_hashes_peak", "Most password hashes that ran at once since start."),
    ("onair_password_hashes_waiting", "Sign-ins and registrations waiting for a hash slot."),
    ("onair_chat_sockets", "Chat WebSockets open."),
];

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
    let _ = writeln!(
        out,
        "# HELP onair_rtmp_buffered_bytes Bytes RTMP connections hold in messages not yet complete.\n# TYPE onair_rtmp_buffered_bytes gauge\nonair_rtmp_buffered_bytes {}",
        RTMP_BUFFERED.load(Ordering::Relaxed)
    );
    counter(
        &mut out,
        "onair_udp_sends_total",
        "UDP send system calls (sendmmsg, each carrying GSO runs) for WebRTC.",
        &UDP_SENDS,
    );
    counter(
        &mut out,
        "onair_udp_datagrams_total",
        "UDP datagrams sent to WebRTC peers.",
        &UDP_DATAGRAMS,
    );
    counter(
        &mut out,
        "onair_udp_dropped_datagrams_total",
        "UDP datagrams whose send failed.",
        &UDP_DROPPED,
    );
    counter(
        &mut out,
        "onair_nack_received_packets_total",
        "Packets WebRTC viewers asked to have retransmitted (NACK).",
        &NACKS_RECEIVED,
    );
    counter(
        &mut out,
        "onair_twcc_feedback_received_total",
        "Transport-wide congestion control feedback packets from WebRTC viewers.",
        &TWCC_FEEDBACK,
    );
    counter(
        &mut out,
        "onair_webrtc_path_changes_total",
        "Times a WebRTC viewer's media moved to another proven path (a new nomination, a NAT rebinding, a switch to a relay).",
        &PATH_CHANGES,
    );
    counter(
        &mut out,
        "onair_rtp_retransmitted_total",
        "Video packets resent to WebRTC viewers for their NACKs, from the channel's buffer.",
        &RETRANSMITTED,
    );
    counter(
        &mut out,
        "onair_pli_received_total",
        "Keyframe requests (PLI/FIR) from WebRTC viewers.",
        &PLI_RECEIVED,
    );
    counter(
        &mut out,
        "onair_viewer_downgrades_total",
        "Viewers stepped down (to keyframes only, or audio only) for loss or a growing queue.",
        &QUALITY_DOWN,
    );
    counter(
        &mut out,
        "onair_viewer_upgrades_total",
        "Viewers stepped back up after a good stretch.",
        &QUALITY_UP,
    );
    counter(
        &mut out,
        "onair_pli_sent_total",
        "Keyframe requests (PLI) sent to WHIP publishers.",
        &PLI_SENT,
    );
    counter(
        &mut out,
        "onair_hls_playlist_requests_total",
        "Live HLS playlist requests, blocking reloads included.",
        &HLS_PLAYLIST_REQUESTS,
    );
    counter(
        &mut out,
        "onair_hls_media_requests_total",
        "Live HLS init, segment and part requests.",
        &HLS_MEDIA_REQUESTS,
    );
    counter(
        &mut out,
        "onair_recordings_archived_total",
        "Finished recordings copied whole to the object store.",
        &RECORDINGS_ARCHIVED,
    );
    counter(
        &mut out,
        "onair_recording_archive_failures_total",
        "Copies of a recording to the object store that failed (each is tried again).",
        &RECORDING_ARCHIVE_FAILURES,
    );
    counter(
        &mut out,
        "onair_chat_messages_total",
        "Chat messages accepted.",
        &CHAT_MESSAGES,
    );
    if let Some((cpu, rss)) = process_usage() {
        let _ = writeln!(
            out,
            "# HELP process_cpu_seconds_total User and system CPU time.\n\
             # TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {cpu}\n\
             # HELP process_resident_memory_bytes Resident memory.\n\
             # TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {rss}"
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        let _ = writeln!(
            out,
            "# HELP process_open_fds Open file descriptors.\n\
             # TYPE process_open_fds gauge\nprocess_open_fds {}",
            fds.count()
        );
    }
    let _ = writeln!(
        out,
        "# HELP onair_viewers_waiting_for_picture Connected WebRTC viewers that have waited over 2 s for a keyframe.\n\
         # TYPE onair_viewers_waiting_for_picture gauge\nonair_viewers_waiting_for_picture {}",
        VIEWERS_WAITING
            .iter()
            .map(|v| v.load(Ordering::Relaxed))
            .sum::<u64>()
    );
    // Described always, sampled only with a certificate: an expiry alert
    // must not fire on a server without TLS.
    let _ = writeln!(
        out,
        "# HELP onair_tls_certificate_not_after_seconds When the served TLS certificate expires (Unix time).\n\
         # TYPE onair_tls_certificate_not_after_seconds gauge"
    );
    let not_after = TLS_NOT_AFTER.load(Ordering::Relaxed);
    if not_after > 0 {
        let _ = writeln!(out, "onair_tls_certificate_not_after_seconds {not_after}");
    }
    FORWARD_LATENCY.render(&mut out);
    FRAME_DELIVERY.render(&mut out);
    for l in [
        &ISOLATED_PANICS,
        &CONNECTIONS_REFUSED,
        &LIMIT_HITS,
        &INGEST_DROPPED,
        &WEBHOOK_ADMISSIONS,
        &WEBHOOK_DELIVERIES,
        &ACME_ORDERS,
        &PUBLISHES,
        &SRTP_PROFILES,
    ] {
        l.render(&mut out);
    }
    let _ = writeln!(
        out,
        "# HELP onair_build_info The running build; its value is always 1.\n\
         # TYPE onair_build_info gauge\nonair_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    let started = START_TIME.get_or_init(unix_now_f64);
    let _ = writeln!(
        out,
        "# HELP process_start_time_seconds When the process started (Unix time).\n\
         # TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {started:.3}"
    );
    let others = gauges
        .iter()
        .map(|(n, _, _)| n.as_str())
        .filter(|n| CALLER_FAMILIES.iter().all(|(f, _)| f != n));
    let mut families: Vec<(&str, &str)> = CALLER_FAMILIES.to_vec();
    for n in others {
        if families.iter().all(|(f, _)| *f != n) {
            families.push((n, "An onair gauge."));
        }
    }
    for (name, help) in families {
        // Totals passed in by the caller (per-channel ingest) are
        // counters: Prometheus' rate() gives bitrate and fps from them.
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (_, labels, v) in gauges.iter().filter(|(n, _, _)| n == name) {
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {v}");
            } else {
                let _ = writeln!(out, "{name}{{{labels}}} {v}");
            }
        }
    }
    out
}
