//! HLS has no sessions, so its viewers are estimated: a viewer is a client
//! (address and user agent) that fetched a channel's live playlist within
//! the last [`WINDOW`]. Every player reloads the playlist at least once per
//! target duration, so a watching client is never missed; clients behind
//! one NAT with the same browser count once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longer than any player's reload interval (a target duration, 2 s here).
pub const WINDOW: Duration = Duration::from_secs(10);
/// Clients remembered per channel: bounds what a flood of fake user
/// agents can make the map hold.
const MAX_CLIENTS: usize = 100_000;

#[derive(Default)]
pub struct HlsViewers {
    channels: Mutex<HashMap<String, HashMap<u64, Instant>>>,
}

impl HlsViewers {
    pub fn seen(&self, channel: &str, client: u64) {
        let now = Instant::now();
        let mut map = self.channels.lock().expect("hls viewers poisoned");
        let clients = map.entry(channel.to_string()).or_default();
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&client) {
            clients.retain(|_, t| now.duration_since(*t) < WINDOW);
            if clients.len() >= MAX_CLIENTS {
                return;
            }
        }
        clients.insert(client, now);
    }

    pub fn count(&self, channel: &str) -> usize {
        let now = Instant::now();
        let mut map = self.channels.lock().expect("hls viewers poisoned");
        let Some(clients) = map.get_mut(channel) else {
            return 0;
        };
        clients.retain(|_, t| now.duration_since(*t) < WINDOW);
        let n = clients.len();
        if n == 0 {
            map.remove(channel);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_distinct_recent_clients() {
        let v = HlsViewers::default();
        v.seen("a", 1);
        v.seen("a", 1);
        v.seen("a", 2);
        v.seen("b", 1);
        assert_eq!(v.count("a"), 2);
        assert_eq!(v.count("b"), 1);
        assert_eq!(v.count("c"), 0);
    }
}
