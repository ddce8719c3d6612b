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

/// The site's live channels and their viewers, as last read.
#[derive(Default)]
pub struct Census {
    /// `None`: not known (no bus, or Redis did not answer last time).
    view: Mutex<Option<HashMap<String, usize>>>,
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

    fn set(&self, view: Option<HashMap<String, usize>>) {
        *self.view.lock().expect("census poisoned") = view;
    }
}

/// Puts this server's entry and reads the site's, until `stop`. `local`
/// is what this server has: its live channels and their viewers here.
pub async fn run(
    census: Arc<Census>,
    bus: Arc<Bus>,
    node: String,
    local: impl Fn() -> HashMap<String, usize> + Send + 'static,
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
            Ok(entries) => census.set(Some(sum(&entries))),
            Err(e) => {
                crate::log_limited!(DOWN, tracing::Level::WARN, "census: {e}");
                census.set(None);
            }
        }
    }
}

/// The servers' entries added up; an entry that does not read is skipped.
fn sum(entries: &[String]) -> HashMap<String, usize> {
    let mut total: HashMap<String, usize> = HashMap::new();
    for e in entries {
        let Ok(one) = serde_json::from_str::<HashMap<String, usize>>(e) else {
            continue;
        };
        for (channel, n) in one.into_iter().take(MAX_CHANNELS_PER_ENTRY) {
            let t = total.entry(channel).or_default();
            *t = t.saturating_add(n);
        }
    }
    total
}

static DOWN: crate::logs::Budget = crate::logs::Budget::new(6);

#[cfg(test)]
mod tests {
    #[test]
    fn entries_add_up_and_junk_is_skipped() {
        let t = super::sum(&[
            r#"{"a":3,"b":0}"#.into(),
            r#"{"a":2}"#.into(),
            "not json".into(),
            r#"{"a":-1}"#.into(),
        ]);
        assert_eq!(t.get("a"), Some(&5));
        assert_eq!(t.get("b"), Some(&0));
        assert_eq!(t.len(), 2);
    }
}
