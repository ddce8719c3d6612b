//! Webhooks: signed JSON POSTs to the operator's own services when a
//! publish is about to be admitted (they may refuse it), when a stream
//! starts and ends, when a recording is ready, and when a broadcast reaches
//! a new viewer peak.
//!
//! Admission is asked inline, bounded by `--webhook-timeout`. Every other
//! event goes through a queue in the database: each receiver has its own
//! delivery task, so a slow or dead receiver delays only its own events, and
//! nothing on the media path ever waits for one. Deliveries are at least
//! once: a receiver drops repeats by the event's `id`.

mod deliver;
pub mod sign;

use crate::db::Db;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Every event, in the order of a broadcast's life.
pub const EVENTS: [&str; 5] = [
    "publish",
    "publish.started",
    "publish.ended",
    "recording.ready",
    "viewer.peak",
];

/// Default for `--webhook-timeout`: how long a publish waits for its
/// admission answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default for `--webhook-peak-interval`.
pub const DEFAULT_PEAK_INTERVAL: Duration = Duration::from_secs(30);
/// Deliveries waiting per receiver, in rows. Past it the oldest go: a
/// receiver that is down for days must not fill the database.
pub const MAX_QUEUED_PER_RECEIVER: i64 = 10_000;
/// Events waiting to be written to the queue. The writer only waits for the
/// database, so this is only reached when the database itself stalls.
pub const MAX_PENDING_EVENTS: usize = 1024;
/// Admission requests in flight at once. Only holders of a valid stream
/// key reach this; past it a publish is treated as a timed-out hook.
pub const MAX_ADMISSIONS_IN_FLIGHT: usize = 64;
/// Bytes read of an admission answer.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024;
/// Characters of a hook's refusal reason passed on to the publisher.
pub const MAX_REASON_CHARS: usize = 200;

#[derive(Debug, Clone, Default, clap::Args, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct HookArgs {
    /// POST signed JSON events to this URL (repeatable).
    #[arg(
        long = "webhook",
        env = "ONAIR_WEBHOOK",
        value_delimiter = ',',
        global = true
    )]
    pub webhook: Vec<String>,
    /// The HMAC-SHA256 key for `onair-signature` (required with --webhook).
    #[arg(long, env = "ONAIR_WEBHOOK_SECRET", global = true)]
    pub webhook_secret: Option<String>,
    /// Events to send, comma-separated (default: all): publish,
    /// publish.started, publish.ended, recording.ready, viewer.peak.
    #[arg(
        long,
        env = "ONAIR_WEBHOOK_EVENTS",
        value_delimiter = ',',
        global = true
    )]
    pub webhook_events: Vec<String>,
    /// How long a publish waits for the `publish` hook: `2s`, `500ms`.
    #[arg(long, env = "ONAIR_WEBHOOK_TIMEOUT", value_parser = parse_duration, global = true, default_value = "2s")]
    #[serde(with = "crate::config::duration")]
    pub webhook_timeout: Option<Duration>,
    /// When the `publish` hook does not answer in time: `open` admits the
    /// publisher, `closed` refuses it.
    #[arg(long, env = "ONAIR_WEBHOOK_FAIL", value_parser = ["open", "closed"], global = true, default_value = "open")]
    pub webhook_fail: Option<String>,
    /// The least time between two `viewer.peak` events of one broadcast.
    #[arg(long, env = "ONAIR_WEBHOOK_PEAK_INTERVAL", value_parser = parse_duration, global = true, default_value = "30s")]
    #[serde(with = "crate::config::duration")]
    pub webhook_peak_interval: Option<Duration>,
    /// The server's public base URL (`https://tv.example.com`), for the
    /// absolute links in `recording.ready`; without it they are paths.
    #[arg(long, env = "ONAIR_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
}

/// `2s`, `1.5s`, `500ms`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        (s, 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v * scale <= 3600.0 => {
            Ok(Duration::from_secs_f64(v * scale))
        }
        _ => Err(format!(
            "`{s}` is not a duration like 2s or 500ms (at most an hour)"
        )),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookConfigError {
    #[error("--webhook needs --webhook-secret: receivers could not tell our calls from forgeries")]
    NoSecret,
    #[error("--webhook `{0}` is not an http:// or https:// URL")]
    BadUrl(String),
    #[error("--webhook-events: unknown event `{0}` (known: {known})", known = EVENTS.join(", "))]
    UnknownEvent(String),
    #[error("--webhook-fail must be `open` or `closed`, not `{0}`")]
    BadFail(String),
}

#[derive(Debug, Clone)]
pub struct HookConfig {
    pub urls: Vec<String>,
    pub secret: Vec<u8>,
    /// Indexes into [`EVENTS`].
    pub events: Vec<&'static str>,
    pub timeout: Duration,
    pub fail_open: bool,
    pub peak_interval: Duration,
    pub public_url: Option<String>,
}

impl Default for HookConfig {
    fn default() -> Self {
        HookConfig {
            urls: Vec::new(),
            secret: Vec::new(),
            events: EVENTS.to_vec(),
            timeout: DEFAULT_TIMEOUT,
            fail_open: true,
            peak_interval: DEFAULT_PEAK_INTERVAL,
            public_url: None,
        }
    }
}

impl HookArgs {
    /// `self` (flags) over `file` (the TOML file's keys).
    pub fn resolve(&self, file: &HookArgs) -> Result<HookConfig, HookConfigError> {
        let urls = if self.webhook.is_empty() {
            file.webhook.clone()
        } else {
            self.webhook.clone()
        };
        let urls: Vec<String> = urls.into_iter().filter(|u| !u.trim().is_empty()).collect();
        for u in &urls {
            let ok = reqwest::Url::parse(u)
                .map(|p| matches!(p.scheme(), "http" | "https") && p.host().is_some())
                .unwrap_or(false);
            if !ok {
                return Err(HookConfigError::BadUrl(u.clone()));
            }
        }
        let secret = self
            .webhook_secret
            .clone()
            .or_else(|| file.webhook_secret.clone())
            .unwrap_or_default();
        if !urls.is_empty() && secret.is_empty() {
            return Err(HookConfigError::NoSecret);
        }
        let named = if self.webhook_events.is_empty() {
            &file.webhook_events
        } else {
            &self.webhook_events
        };
        let events = if named.is_empty() {
            EVENTS.to_vec()
        } else {
            let mut events = Vec::new();
            for n in named {
                let n = n.trim();
                match EVENTS.iter().find(|e| **e == n) {
                    Some(e) if !events.contains(e) => events.push(*e),
                    Some(_) => {}
                    None => return Err(HookConfigError::UnknownEvent(n.to_string())),
                }
            }
            events
        };
        let fail = self.webhook_fail.as_ref().or(file.webhook_fail.as_ref());
        let fail_open = match fail.map(String::as_str) {
            None | Some("open") => true,
            Some("closed") => false,
            Some(other) => return Err(HookConfigError::BadFail(other.to_string())),
        };
        Ok(HookConfig {
            urls,
            secret: secret.into_bytes(),
            events,
            timeout: self
                .webhook_timeout
                .or(file.webhook_timeout)
                .unwrap_or(DEFAULT_TIMEOUT),
            fail_open,
            peak_interval: self
                .webhook_peak_interval
                .or(file.webhook_peak_interval)
                .unwrap_or(DEFAULT_PEAK_INTERVAL),
            public_url: self
                .public_url
                .clone()
                .or_else(|| file.public_url.clone())
                .map(|u| u.trim_end_matches('/').to_string()),
        })
    }
}

/// Who is asking to publish.
#[derive(Debug, Clone)]
pub struct Admission<'a> {
    pub channel: &'a str,
    /// `rtmp`, `whip` or `icecast`.
    pub protocol: &'static str,
    pub remote: IpAddr,
}

/// An event on its way to the queue.
struct Pending {
    id: i64,
    event: &'static str,
    body: String,
}

/// A live broadcast, as far as `viewer.peak` is concerned.
struct Live {
    channel: String,
    broadcast: Option<i64>,
    peak: usize,
    sent: usize,
    last_sent: tokio::time::Instant,
}

/// Where viewer counts come from: the same total the chat shows.
type Audience = dyn crate::chat::LiveState;

pub struct Hooks {
    cfg: HookConfig,
    client: reqwest::Client,
    pending: mpsc::Sender<Pending>,
    /// Taken by the queue writer when it starts; events emitted before
    /// then (recovered broadcasts) wait in the channel.
    pending_rx: Mutex<Option<mpsc::Receiver<Pending>>>,
    admissions: Semaphore,
    live: Mutex<HashMap<u64, Live>>,
    /// One per receiver URL: new work is queued for it.
    wake: Vec<Notify>,
    seq: AtomicU64,
    /// `--require-verified-email`: publishers are admitted only to channels
    /// whose owner has verified an address (read from here).
    rules: std::sync::OnceLock<crate::auth::PublishRules>,
}

impl Hooks {
    /// No receivers: every event is dropped and every publish admitted.
    pub fn none() -> Arc<Hooks> {
        Hooks::new(HookConfig::default())
    }

    pub fn new(cfg: HookConfig) -> Arc<Hooks> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("onair/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(deliver::CONNECT_TIMEOUT)
            .build()
            .expect("a client with no custom TLS settings builds");
        let wake = cfg.urls.iter().map(|_| Notify::new()).collect();
        let (tx, rx) = mpsc::channel(MAX_PENDING_EVENTS);
        Arc::new(Hooks {
            cfg,
            client,
            pending: tx,
            pending_rx: Mutex::new(Some(rx)),
            admissions: Semaphore::new(MAX_ADMISSIONS_IN_FLIGHT),
            live: Mutex::new(HashMap::new()),
            wake,
            seq: AtomicU64::new(0),
            rules: std::sync::OnceLock::new(),
        })
    }

    fn wants(&self, event: &str) -> bool {
        !self.cfg.urls.is_empty() && self.cfg.events.contains(&event)
    }

    /// Starts the queue writer, one delivery task per receiver and the
    /// viewer-peak watch. Deliveries left from a previous run go out first;
    /// those for receivers no longer configured are dropped.
    pub async fn start(
        self: &Arc<Self>,
        db: Db,
        audience: Arc<Audience>,
        token: CancellationToken,
        tracker: &TaskTracker,
    ) {
        if self.cfg.urls.is_empty() {
            return;
        }
        match db.webhook_forget_others(&self.cfg.urls).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                dropped = n,
                "webhooks: dropped queued deliveries for receivers no longer configured"
            ),
            Err(e) => tracing::error!("webhooks: cannot read the queue: {e}"),
        }
        let Some(rx) = self.pending_rx.lock().expect("hooks poisoned").take() else {
            return;
        };
        tracker.spawn(deliver::store(self.clone(), db.clone(), rx, token.clone()));
        for i in 0..self.cfg.urls.len() {
            tracker.spawn(deliver::deliver(self.clone(), db.clone(), i, token.clone()));
        }
        if self.cfg.events.contains(&"viewer.peak") {
            tracker.spawn(watch_peaks(self.clone(), audience, token));
        }
        tracing::info!(
            receivers = self.cfg.urls.len(),
            events = self.cfg.events.join(","),
            "webhooks on"
        );
    }

    /// The server's own publish rules, checked before any receiver is
    /// asked.
    pub fn set_rules(&self, rules: crate::auth::PublishRules) {
        let _ = self.rules.set(rules);
    }

    /// Whether this server's own rules admit this publisher, then asks
    /// every receiver of `publish`. `Err` holds the reason to give it.
    pub async fn admit(&self, who: Admission<'_>) -> Result<(), String> {
        if let Some(rules) = self.rules.get() {
            rules.check(who.channel, who.protocol, who.remote).await?;
        }
        if !self.wants("publish") {
            return Ok(());
        }
        let Ok(_permit) = self.admissions.try_acquire() else {
            crate::metrics::limit_hit("webhook_admissions");
            return self.unanswered(&who, "too many admissions waiting");
        };
        let (id, body) = self.event(
            "publish",
            json!({
                "channel": who.channel,
                "protocol": who.protocol,
                "remote_addr": who.remote.to_string(),
            }),
        );
        let asks = self
            .cfg
            .urls
            .iter()
            .map(|url| deliver::ask(self, url, id, &body, self.cfg.timeout));
        for answer in futures_util::future::join_all(asks).await {
            match answer {
                deliver::Answer::Allow => {}
                deliver::Answer::Refuse(why) => {
                    crate::metrics::webhook_admission("refused");
                    tracing::info!(channel = who.channel, protocol = who.protocol,
                        remote = %who.remote, "publish refused by webhook: {why}");
                    return Err(why);
                }
                deliver::Answer::Unanswered(e) => return self.unanswered(&who, &e),
            }
        }
        crate::metrics::webhook_admission("allowed");
        Ok(())
    }

    fn unanswered(&self, who: &Admission<'_>, e: &str) -> Result<(), String> {
        if self.cfg.fail_open {
            crate::metrics::webhook_admission("unanswered_admitted");
            tracing::warn!(
                channel = who.channel,
                protocol = who.protocol,
                "publish webhook did not answer ({e}); admitting (--webhook-fail open)"
            );
            Ok(())
        } else {
            crate::metrics::webhook_admission("unanswered_refused");
            tracing::warn!(
                channel = who.channel,
                protocol = who.protocol,
                "publish webhook did not answer ({e}); refusing (--webhook-fail closed)"
            );
            Err("the publish webhook did not answer".into())
        }
    }

    /// The event's id and its JSON body: `id`, `event`, `time` (unix ms),
    /// then the event's own fields.
    fn event(&self, name: &'static str, fields: Value) -> (i64, String) {
        let now = unix_ms();
        // Ids grow with time (like broadcast ids) and never repeat within
        // a run; the random low bits keep two runs in one millisecond apart.
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) & 0xff;
        let id = (now << 12) | ((seq as i64) << 4) | (rand::random::<u8>() as i64 & 0xf);
        let mut body = json!({ "id": id.to_string(), "event": name, "time": now });
        if let (Some(b), Value::Object(f)) = (body.as_object_mut(), fields) {
            b.extend(f);
        }
        (id, body.to_string())
    }

    /// Queues a non-admission event for every receiver of it; never waits.
    fn emit(&self, name: &'static str, fields: Value) {
        if !self.wants(name) {
            return;
        }
        let (id, body) = self.event(name, fields);
        if self
            .pending
            .try_send(Pending {
                id,
                event: name,
                body,
            })
            .is_err()
        {
            crate::metrics::webhook_delivery("dropped_backlog");
            tracing::error!(
                event = name,
                "webhooks: event dropped: the queue writer is behind"
            );
        }
    }

    /// A stream went live (its broadcast row made, if the database works).
    pub fn publish_started(
        &self,
        stream: u64,
        channel: &str,
        protocol: &str,
        broadcast: Option<i64>,
    ) {
        if self.cfg.urls.is_empty() {
            return;
        }
        self.live.lock().expect("hooks poisoned").insert(
            stream,
            Live {
                channel: channel.to_string(),
                broadcast,
                peak: 0,
                sent: 0,
                last_sent: tokio::time::Instant::now(),
            },
        );
        self.emit(
            "publish.started",
            json!({
                "channel": channel,
                "protocol": protocol,
                "broadcast": broadcast.map(|b| b.to_string()),
            }),
        );
    }

    /// The stream ended; with its recording's figures when it had one.
    /// `stream` is `None` for a broadcast a crash cut off, finalized at the
    /// next start (its viewer peak is unknown).
    pub fn publish_ended(
        &self,
        stream: Option<u64>,
        channel: &str,
        broadcast: Option<i64>,
        finished: Option<crate::hls::recorder::Finished>,
    ) {
        if self.cfg.urls.is_empty() {
            return;
        }
        let peak = stream.map(|id| {
            self.live
                .lock()
                .expect("hooks poisoned")
                .remove(&id)
                .map_or(0, |l| l.peak)
        });
        self.emit(
            "publish.ended",
            json!({
                "channel": channel,
                "broadcast": broadcast.map(|b| b.to_string()),
                "duration_ms": finished.map(|f| f.duration_ms),
                "peak_viewers": peak,
            }),
        );
        let (Some(id), Some(f)) = (broadcast, finished) else {
            return;
        };
        if !f.recorded {
            return;
        }
        let base = self.cfg.public_url.as_deref().unwrap_or("");
        self.emit(
            "recording.ready",
            json!({
                "channel": channel,
                "broadcast": id.to_string(),
                "duration_ms": f.duration_ms,
                "size_bytes": f.size,
                "vod_url": format!("{base}/vod/{id}/index.m3u8"),
                "download_url": format!("{base}/vod/{id}/download.mp4"),
            }),
        );
    }

    fn url(&self, i: usize) -> &str {
        &self.cfg.urls[i]
    }
}

/// Samples every live broadcast's audience once a second; a broadcast's
/// new high is sent at most once per `--webhook-peak-interval`, so a
/// climbing count makes a few events, not one per viewer.
async fn watch_peaks(hooks: Arc<Hooks>, audience: Arc<Audience>, token: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = tokio::time::Instant::now();
        let mut due = Vec::new();
        {
            let mut live = hooks.live.lock().expect("hooks poisoned");
            for l in live.values_mut() {
                l.peak = l.peak.max(audience.viewers(&l.channel));
                if l.peak > l.sent && now.duration_since(l.last_sent) >= hooks.cfg.peak_interval {
                    l.sent = l.peak;
                    l.last_sent = now;
                    due.push((l.channel.clone(), l.broadcast, l.peak));
                }
            }
        }
        for (channel, broadcast, viewers) in due {
            hooks.emit(
                "viewer.peak",
                json!({
                    "channel": channel,
                    "broadcast": broadcast.map(|b| b.to_string()),
                    "viewers": viewers,
                }),
            );
        }
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_seconds_or_milliseconds() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        for bad in ["", "0", "-1s", "fast", "2h", "NaNs", "7200"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn webhooks_need_a_secret_real_urls_and_known_events() {
        let args = |urls: &[&str], secret: Option<&str>, events: &[&str]| HookArgs {
            webhook: urls.iter().map(|s| s.to_string()).collect(),
            webhook_secret: secret.map(str::to_string),
            webhook_events: events.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let none = HookArgs::default();
        let c = args(&[], None, &[]).resolve(&none).unwrap();
        assert!(c.urls.is_empty());
        assert_eq!(
            args(&["http://h/x"], None, &[]).resolve(&none).unwrap_err(),
            HookConfigError::NoSecret
        );
        assert!(matches!(
            args(&["ftp://h/x"], Some("k"), &[]).resolve(&none),
            Err(HookConfigError::BadUrl(_))
        ));
        assert!(matches!(
            args(&["http://h/x"], Some("k"), &["publish", "nope"]).resolve(&none),
            Err(HookConfigError::UnknownEvent(e)) if e == "nope"
        ));
        let c = args(&["http://h/x"], Some("k"), &["recording.ready", "publish"])
            .resolve(&none)
            .unwrap();
        assert_eq!(c.events, ["recording.ready", "publish"]);
        assert!(c.fail_open);
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        let file = HookArgs {
            webhook: vec!["https://file/hook".into()],
            webhook_secret: Some("f".into()),
            webhook_fail: Some("closed".into()),
            public_url: Some("https://tv.example/".into()),
            ..Default::default()
        };
        let c = args(&[], None, &[]).resolve(&file).unwrap();
        assert_eq!(c.urls, ["https://file/hook"]);
        assert!(!c.fail_open);
        assert_eq!(c.public_url.as_deref(), Some("https://tv.example"));
        assert_eq!(c.events, EVENTS);
    }

    #[test]
    fn event_bodies_carry_id_name_time_and_fields_and_ids_grow() {
        let h = Hooks::none();
        let (a, body) = h.event("publish.ended", json!({"channel": "c", "peak_viewers": 3}));
        let (b, _) = h.event("publish.ended", json!({}));
        assert!(b > a);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["id"], a.to_string());
        assert_eq!(v["event"], "publish.ended");
        assert_eq!(v["channel"], "c");
        assert_eq!(v["peak_viewers"], 3);
        assert!(v["time"].as_i64().unwrap() > 1_700_000_000_000);
    }
}
