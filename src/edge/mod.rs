//! An edge's pulls (`--role edge`): each channel its WebRTC viewers watch
//! is pulled from the server it is live on (found in the live lease, see
//! [`crate::hub::lease`]) as a WHEP client, once however many watch here,
//! into this server's hub. Its GOP cache, fast start and continuity across
//! the publisher's reconnects then work here as on one server.
//!
//! A pull starts with the first viewer's offer and lasts while the channel
//! has viewers here, and `--pull-linger` after the last one leaves. It
//! follows the channel: when the origin goes silent (killed, cut off) or the
//! lease moves, the session ends, the relayed publish with it, and the
//! channel is looked up and pulled again.
//!
//! A channel published in VP8 (a browser without H.264) is not relayed: the
//! hub carries H.264. Its viewers are sent to the server it is live on
//! ([`Edge::ready`]), which forwards VP8 as it came.

mod client;

pub use client::NODE_TOKEN_HEADER;

use crate::bus::Bus;
use crate::hub::Hub;
use crate::sfu::Sfu;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Channels one edge pulls at once. Each needs a live channel that a
/// viewer asked for, so this is far above what a site runs, and bounds what
/// a client asking for many channels can make it hold.
pub const MAX_PULLS: usize = 1_000;
/// How often a pull checks its viewers and where its channel is live.
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// The wait before looking a channel up again, when it is not live
/// anywhere or the origin refused or failed.
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// How long a viewer's offer waits for a new pull to start, so that it is
/// answered with what the channel sends (and at once from the GOP cache).
const READY_WAIT: Duration = Duration::from_secs(2);
/// A VP8 channel is asked again this often, in case its publisher came
/// back in H.264.
const VP8_RETRY: Duration = Duration::from_secs(5);

pub struct Edge {
    hub: Arc<Hub>,
    bus: Arc<Bus>,
    sfu: Sfu,
    node: String,
    linger: Duration,
    http: reqwest::Client,
    pulls: Mutex<HashMap<String, CancellationToken>>,
    /// Pulled channels that cannot be relayed, and where their viewers go
    /// instead; an entry lives no longer than its pull.
    direct: Mutex<HashMap<String, String>>,
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Edge {
    pub fn new(
        hub: Arc<Hub>,
        bus: Arc<Bus>,
        sfu: Sfu,
        node: String,
        linger: Duration,
        tracker: TaskTracker,
        stop: CancellationToken,
    ) -> Arc<Edge> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a plain HTTP client builds");
        Arc::new(Edge {
            hub,
            bus,
            sfu,
            node,
            linger,
            http,
            pulls: Mutex::default(),
            direct: Mutex::default(),
            tracker,
            stop,
        })
    }

    /// Makes sure `channel` is pulled: a viewer is about to watch it here.
    /// False when the edge pulls [`MAX_PULLS`] channels already.
    pub fn want(self: &Arc<Self>, channel: &str) -> bool {
        let mut pulls = self.pulls.lock().expect("pulls poisoned");
        if pulls.contains_key(channel) {
            return true;
        }
        if pulls.len() >= MAX_PULLS {
            crate::metrics::limit_hit("edge_pulls");
            return false;
        }
        let stop = self.stop.child_token();
        pulls.insert(channel.to_string(), stop.clone());
        self.tracker
            .spawn(self.clone().follow(channel.to_string(), stop));
        true
    }

    /// Waits (up to [`READY_WAIT`]) for a channel live elsewhere to be
    /// relayed here. `Some(url)` when its viewers must go to `url` instead:
    /// the channel cannot be relayed.
    pub async fn ready(&self, channel: &str) -> Option<String> {
        if self.hub.stream(channel).is_some() {
            return None;
        }
        if let Some(url) = self.direct_url(channel) {
            return Some(url);
        }
        // Not live anywhere: nothing to wait for.
        let live = crate::hub::lease::live_at(&self.bus, &self.node, channel).await;
        if !matches!(live, Ok(Some(_))) {
            return None;
        }
        let start = Instant::now();
        while start.elapsed() < READY_WAIT {
            if let Some(url) = self.direct_url(channel) {
                return Some(url);
            }
            if self.hub.stream(channel).is_some() {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        None
    }

    fn direct_url(&self, channel: &str) -> Option<String> {
        self.direct
            .lock()
            .expect("direct poisoned")
            .get(channel)
            .cloned()
    }

    /// The channels pulled now.
    pub fn pulling(&self) -> usize {
        self.pulls.lock().expect("pulls poisoned").len()
    }

    /// Pulls `channel` while it has viewers here (and the linger after),
    /// from wherever it is live.
    async fn follow(self: Arc<Self>, channel: String, stop: CancellationToken) {
        let mut idle_since: Option<Instant> = None;
        loop {
            if stop.is_cancelled() || self.idle_too_long(&channel, &mut idle_since) {
                break;
            }
            let origin = crate::hub::lease::where_live(&self.bus, &self.node, &channel).await;
            let token = match origin {
                Some(_) => self.bus.node_token().await.ok(),
                None => None,
            };
            let (Some(url), Some(token)) = (origin, token) else {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(RETRY_AFTER) => continue,
                }
            };
            let session = stop.child_token();
            let origin = client::Origin {
                url: &url,
                token: &token,
            };
            let (result, ()) = tokio::join!(
                async {
                    let r = client::pull(&self.http, &self.hub, &channel, origin, &session).await;
                    session.cancel();
                    r
                },
                self.watch(&channel, &url, &session, &mut idle_since),
            );
            if let Err(client::PullError::Vp8) = result {
                tracing::info!(channel, "published in VP8: its viewers here go to {url}");
                self.direct
                    .lock()
                    .expect("direct poisoned")
                    .insert(channel.clone(), url.clone());
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(VP8_RETRY) => {}
                }
                continue;
            }
            // Relayed, or tried to: no longer a channel to send away.
            self.direct
                .lock()
                .expect("direct poisoned")
                .remove(&channel);
            if let Err(e) = result {
                crate::log_limited!(
                    PULL_FAILED,
                    tracing::Level::WARN,
                    "pulling {channel} from {url}: {e}"
                );
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(RETRY_AFTER) => {}
                }
            }
        }
        self.direct
            .lock()
            .expect("direct poisoned")
            .remove(&channel);
        self.pulls.lock().expect("pulls poisoned").remove(&channel);
        tracing::info!(channel, "no viewers here any more: pull ended");
    }

    /// Ends `session` when the channel has had no viewers here for the
    /// linger, or is no longer live at `url`; returns when it ends.
    async fn watch(
        &self,
        channel: &str,
        url: &str,
        session: &CancellationToken,
        idle_since: &mut Option<Instant>,
    ) {
        let mut tick = tokio::time::interval(CHECK_EVERY);
        let mut unleased_since: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = session.cancelled() => return,
                _ = tick.tick() => {}
            }
            if self.idle_too_long(channel, idle_since) {
                return session.cancel();
            }
            match crate::hub::lease::live_at(&self.bus, &self.node, channel).await {
                Ok(Some(there)) if there == url => unleased_since = None,
                // Moved: a publish through another origin took over.
                Ok(Some(_)) => return session.cancel(),
                // Ended, or Redis restarted empty and the origin has not
                // taken its lease again yet (it does within a renewal):
                // only a lease missing longer than it lives means the end.
                Ok(None) => {
                    let since = *unleased_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= crate::hub::lease::LEASE_TTL {
                        return session.cancel();
                    }
                }
                // Redis not answering ends nothing: playback goes on.
                Err(_) => {}
            }
        }
    }

    fn idle_too_long(&self, channel: &str, idle_since: &mut Option<Instant>) -> bool {
        if self.sfu.viewers(channel) > 0 {
            *idle_since = None;
            return false;
        }
        idle_since.get_or_insert_with(Instant::now).elapsed() >= self.linger
    }
}

static PULL_FAILED: crate::logs::Budget = crate::logs::Budget::new(6);
