//! Who is live and how many watch, across the servers of a site
//! (`--redis-url`).
//!
//! Every [`CENSUS_EVERY`] each server puts its entry, `census:NODE` (the
//! channels live on it and their viewers, kept [`CENSUS_TTL`]), and reads
//! everyone's. The sums answer, on every server, the chat's live/offline
//! and viewer events, the channel pages and the directory. A server that
//! dies drops out when its entry expires; never a shared counter that a
//! dead server would leave counting.
//!
//! Without Redis (or while it does not answer) each server knows only its
//! own channels.

use crate::bus::Bus;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often entries are put and read.
pub const CENSUS_EVERY: Duration = Duration::from_secs(1);
/// How long an entry outlives its server's last report.
pub const CENSUS_TTL: Duration = Duration::from_secs(3);
/// Channels read from one server's entry: far more than one server serves
/// live at once.
pub const MAX_CHANNELS_PER_ENTRY: usize = 10_000;

/// Servers whose entries are read: far more than one site runs.
pub const MAX_NODES: usize = 1_000;

/// One server's census entry.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Report {
    /// Its live channels (published there or pulled) and their viewers there.
    pub channels: HashMap<String, usize>,
    /// Its `--node-url`, where viewers may be sent.
    pub url: Option<String>,
    /// Its `--role`: viewers are sent to edges and to `all` servers, never
    /// to an origin, whose core is the ingest's.
    pub role: crate::config::Role,
    /// The WebRTC viewers it serves, and how many it takes.
    pub viewers: usize,
    pub max_viewers: usize,
}

impl Report {
    fn has_room(&self) -> bool {
        self.viewers < self.max_viewers
    }
}

/// The site's live channels and their viewers, as last read.
#[derive(Default)]
pub struct Census {
    /// `None`: not known (no bus, or Redis did not answer last time).
    view: Mutex<Option<HashMap<String, usize>>>,
    /// Every server's entry, as last read.
    nodes: Mutex<Vec<Report>>,
}

impl Census {
    /// The site's viewers of `channel`, if it is live somewhere as last
    /// read.
    pub fn viewers(&self, channel: &str) -> Option<usize> {
        self.view
            .lock()
            .expect("census poisoned")
            .as_ref()?
            .get(channel)
            .copied()
    }

    /// Whether `channel` is live on some server as last read; `None` when
    /// that is not known.
    pub fn live(&self, channel: &str) -> Option<bool> {
        let view = self.view.lock().expect("census poisoned");
        Some(view.as_ref()?.contains_key(channel))
    }

    /// Another server with room for a WebRTC viewer of `channel`, as last
    /// read: one that has the channel already (its pull or its publish
    /// serves one more viewer at no cost to the origin), then the least
    /// loaded. `None` when every server is full.
    pub fn room_elsewhere(&self, channel: &str, me: &str) -> Option<String> {
        let nodes = self.nodes.lock().expect("census poisoned");
        nodes
            .iter()
            .filter(|n| n.role != crate::config::Role::Origin && n.has_room())
            .filter(|n| n.url.as_deref().is_some_and(|u| u != me))
            .min_by_key(|n| {
                let has = n.channels.contains_key(channel);
                // Load as a share of what it takes, in parts per million.
                let load = n.viewers as u128 * 1_000_000 / n.max_viewers.max(1) as u128;
                (!has, load)
            })
            .and_then(|n| n.url.clone())
    }

    fn set(&self, view: Option<HashMap<String, usize>>, nodes: Vec<Report>) {
        *self.view.lock().expect("census poisoned") = view;
        *self.nodes.lock().expect("census poisoned") = nodes;
    }
}

/// Puts this server's entry and reads the site's, until `stop`. `local`
/// is what this server has: its live channels, their viewers here, and
/// its room for more.
pub async fn run(
    census: Arc<Census>,
    bus: Arc<Bus>,
    node: String,
    local: impl Fn() -> Report + Send + 'static,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(CENSUS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let mine = serde_json::to_string(&local()).expect("a map serializes");
        match bus.census(&node, &mine, CENSUS_TTL).await {
            Ok(entries) => {
                let nodes = read(&entries);
                census.set(Some(sum(&nodes)), nodes);
            }
            Err(e) => {
                crate::log_limited!(DOWN, tracing::Level::WARN, "census: {e}");
                census.set(None, Vec::new());
            }
        }
    }
}

/// The servers' entries that read; one that does not is skipped.
fn read(entries: &[String]) -> Vec<Report> {
    entries
        .iter()
        .take(MAX_NODES)
        .filter_map(|e| serde_json::from_str::<Report>(e).ok())
        .map(|mut r| {
            if r.channels.len() > MAX_CHANNELS_PER_ENTRY {
                r.channels = r
                    .channels
                    .into_iter()
                    .take(MAX_CHANNELS_PER_ENTRY)
                    .collect();
            }
            r
        })
        .collect()
}

/// The servers' viewers of each channel, added up.
fn sum(nodes: &[Report]) -> HashMap<String, usize> {
    let mut total: HashMap<String, usize> = HashMap::new();
    for one in nodes {
        for (channel, n) in &one.channels {
            let t = total.entry(channel.clone()).or_default();
            *t = t.saturating_add(*n);
        }
    }
    total
}

static DOWN: crate::logs::Budget = crate::logs::Budget::new(6);

#[cfg(test)]
mod tests {
    #[test]
    fn entries_add_up_and_junk_is_skipped() {
        let nodes = super::read(&[
            r#"{"channels":{"a":3,"b":0}}"#.into(),
            r#"{"channels":{"a":2}}"#.into(),
            "not json".into(),
            r#"{"channels":{"a":-1}}"#.into(),
        ]);
        let t = super::sum(&nodes);
        assert_eq!(t.get("a"), Some(&5));
        assert_eq!(t.get("b"), Some(&0));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn viewers_go_where_the_channel_is_then_to_the_least_loaded() {
        let census = super::Census::default();
        let node = |url: &str, channels: &[&str], viewers, max_viewers| super::Report {
            channels: channels.iter().map(|c| (c.to_string(), 1)).collect(),
            url: Some(url.into()),
            role: crate::config::Role::Edge,
            viewers,
            max_viewers,
        };
        census.set(
            None,
            vec![
                node("http://me", &["demo"], 0, 10),
                node("http://full", &["demo"], 10, 10),
                node("http://busy", &[], 8, 10),
                node("http://idle", &[], 1, 10),
                node("http://pulling", &["demo"], 9, 10),
                super::Report {
                    role: crate::config::Role::Origin,
                    ..node("http://origin", &["demo", "other"], 0, 10)
                },
            ],
        );
        let pick = |ch| census.room_elsewhere(ch, "http://me");
        assert_eq!(pick("demo").as_deref(), Some("http://pulling"));
        assert_eq!(pick("other").as_deref(), Some("http://idle"));
        census.set(None, vec![node("http://full", &["demo"], 10, 10)]);
        assert_eq!(pick("demo"), None);
    }
}
