//! One publisher per channel across the servers of a site (`--redis-url`).
//!
//! A channel's live state is a lease in Redis, `live:CHANNEL`, held by
//! `NODE STREAM` for [`LEASE_TTL`] and renewed every [`LEASE_EVERY`] by
//! the server the publisher reached. A new publish anywhere takes the lease
//! (the newest publisher wins, as on one server: an encoder reconnecting
//! through another server is never locked out by its own stale session),
//! and the server that held it ends its publish at its next renewal. A
//! server that dies stops renewing, and its lease lapses.
//!
//! Redis unreachable ends nothing: publishing goes on where it is, and the
//! lease is taken again when Redis answers (even restarted empty).
//!
//! A server with `--node-url` also keeps `node:NODE` = its URL, so the
//! others can send a channel's viewers to it ([`where_live`]).

use super::Hub;
use crate::bus::Bus;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a lease outlives its last renewal: a server's death frees its
/// channels this long after.
pub const LEASE_TTL: Duration = Duration::from_secs(3);
/// How often live channels' leases are taken or renewed: how long two
/// publishers of one key may both be live.
pub const LEASE_EVERY: Duration = Duration::from_millis(250);

/// Holds the leases of this server's live channels until `stop`, then
/// gives them up.
pub async fn hold(hub: Arc<Hub>, bus: Arc<Bus>, node: String, stop: CancellationToken) {
    let mut held: HashMap<String, u64> = HashMap::new();
    let mut tick = tokio::time::interval(LEASE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        // A relayed stream's lease is its origin's.
        let live: Vec<_> = hub
            .live()
            .into_iter()
            .filter(|s| s.source() != super::Source::Relay)
            .collect();
        for stream in &live {
            let channel = stream.channel();
            let me = format!("{node} {}", stream.id());
            let lease = format!("live:{channel}");
            if held.get(channel) != Some(&stream.id()) {
                match bus.take(&lease, &me, LEASE_TTL).await {
                    Ok(()) => {
                        held.insert(channel.to_string(), stream.id());
                    }
                    Err(e) => log_down(&e),
                }
                continue;
            }
            match bus.renew(&lease, &me, LEASE_TTL).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!(
                        channel,
                        "published again through another server: this publish ends"
                    );
                    held.remove(channel);
                    hub.end(stream);
                }
                Err(e) => log_down(&e),
            }
        }
        let gone: Vec<(String, u64)> = held
            .iter()
            .filter(|(c, id)| !live.iter().any(|s| s.channel() == *c && s.id() == **id))
            .map(|(c, id)| (c.clone(), *id))
            .collect();
        for (channel, id) in gone {
            held.remove(&channel);
            if let Err(e) = bus
                .release(&format!("live:{channel}"), &format!("{node} {id}"))
                .await
            {
                log_down(&e);
            }
        }
    }
    for (channel, id) in held {
        let _ = bus
            .release(&format!("live:{channel}"), &format!("{node} {id}"))
            .await;
    }
}

/// How long a server's advertised URL outlives its last refresh.
pub const NODE_TTL: Duration = Duration::from_secs(10);
/// How often it is refreshed.
pub const NODE_EVERY: Duration = Duration::from_secs(3);

/// Keeps this server's URL where the others find it, until `stop`.
pub async fn advertise(bus: Arc<Bus>, node: String, url: String, stop: CancellationToken) {
    let lease = format!("node:{node}");
    loop {
        if let Err(e) = bus.take(&lease, &url, NODE_TTL).await {
            log_down(&e);
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(NODE_EVERY) => {}
        }
    }
    let _ = bus.release(&lease, &url).await;
}

/// The URL of the server `channel` is live on, when that is another
/// server than `node` and it advertises one. `None` too when Redis does
/// not answer: the caller serves the request itself.
pub async fn where_live(bus: &Bus, node: &str, channel: &str) -> Option<String> {
    live_at(bus, node, channel).await.ok().flatten()
}

/// [`where_live`], telling Redis not answering apart from the channel not
/// being live elsewhere.
pub async fn live_at(
    bus: &Bus,
    node: &str,
    channel: &str,
) -> Result<Option<String>, crate::bus::BusError> {
    let Some(holder) = bus.holder(&format!("live:{channel}")).await? else {
        return Ok(None);
    };
    match holder.split_once(' ') {
        Some((owner, _stream)) if owner != node => bus.holder(&format!("node:{owner}")).await,
        _ => Ok(None),
    }
}

static DOWN: crate::logs::Budget = crate::logs::Budget::new(6);

fn log_down(e: &crate::bus::BusError) {
    crate::log_limited!(DOWN, tracing::Level::WARN, "live lease: {e}");
}
