//! Live publishes hold their stream key for as long as they last. A key
//! rotated, or an account deleted, ends the publish that used the old key,
//! wherever the change was made: the API in this process kicks at once, and
//! this check catches the rest (`onair channel rotate-key`, `onair user
//! delete`, another process sharing the database) within
//! [`KEY_CHECK_EVERY`].

use super::Hub;
use crate::db::Db;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often live publishers' keys are compared with the database. One
/// query per live channel each time.
pub const KEY_CHECK_EVERY: Duration = Duration::from_secs(2);

/// What a stream remembers of its key: enough to compare, nothing to leak.
pub fn fingerprint(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Runs [`check`] every [`KEY_CHECK_EVERY`] until `stop`.
pub async fn guard(hub: Arc<Hub>, db: Db, stop: CancellationToken) {
    let mut tick = tokio::time::interval(KEY_CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                check(&hub, &db).await;
            }
        }
    }
}

/// Ends every live stream whose channel is gone or whose key is no longer
/// the one it was published with. A database that does not answer ends
/// nothing: playback goes on, and the next check tries again.
pub async fn check(hub: &Hub, db: &Db) -> usize {
    let mut ended = 0;
    for stream in hub.live() {
        let Some(held) = stream.held_key() else {
            continue;
        };
        let still = match db.channel(stream.channel()).await {
            Ok(Some(row)) => fingerprint(&row.stream_key) == *held,
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(channel = stream.channel(), "stream key check failed: {e}");
                return ended;
            }
        };
        if !still {
            tracing::info!(
                channel = stream.channel(),
                "stream key rotated or channel gone; live publish ended"
            );
            hub.end(&stream);
            ended += 1;
        }
    }
    ended
}
