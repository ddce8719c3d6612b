//! What the servers of one site share through Redis (`--redis-url`): each
//! chat room is one Redis stream, so messages, deletions, slow-mode
//! changes and moderation events keep one order on every server, and the
//! limits a user could dodge by switching server (slow mode, the like
//! cooldown) are claims with an expiry there. Which server a channel is
//! live on is a lease (see `hub::lease`).
//!
//! A room's stream, `onair:chat:ROOM`, holds [`Entry`]s as one JSON field,
//! trimmed to about [`STREAM_ENTRIES`]. A server appends what happens in a
//! room and delivers to its own members only what it reads back from the
//! stream (see `chat::Rooms::run_bus`), its own posts included: one order
//! everywhere. Each server remembers, per open room, the last stream id it
//! applied, and reads on from there; after Redis comes back (even empty,
//! its new ids being later in time) nothing is read twice, and nothing
//! appended is skipped. Postgres stays the archive: a room opened is the
//! database's recent history merged with the stream's.
//!
//! While Redis cannot be reached, posting answers "chat unavailable"
//! rather than letting servers split; everything else goes on.

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::streams::{StreamMaxlen, StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, AsyncConnectionConfig, SetExpiry, SetOptions};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::sync::OnceCell;

/// Entries kept per room's stream (`XADD MAXLEN ~`): beyond a joiner's
/// history, so a server that lost Redis for a while finds what it missed.
pub const STREAM_ENTRIES: usize = 1000;
/// Any one command: connecting included, a Redis slower than this is
/// treated as down.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one read waits for new entries; rooms opened meanwhile are
/// read from the next one on.
pub const READ_BLOCK: Duration = Duration::from_millis(100);
/// Entries taken per read, over all rooms.
pub const READ_COUNT: usize = 512;
/// Largest entry accepted from the stream: a chat line is at most a few KB.
pub const MAX_ENTRY_BYTES: usize = 64 * 1024;

/// One thing that happened in a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Entry {
    /// A chat message: its id and the line members get.
    Message { id: i64, line: String },
    /// Message `id` was deleted.
    Delete { id: i64 },
    /// The room's slow mode is now `seconds` (0: off).
    SlowMode { seconds: i64 },
    /// Any other event (a ban, likes, now playing), delivered as it is.
    Event { line: String },
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis: no answer within {0:?}")]
    Timeout(Duration),
}

/// `redis://HOST[:PORT][/DB]`: the one form the site's servers share.
pub fn valid_url(url: &str) -> bool {
    url.starts_with("redis://") && redis::Client::open(url).is_ok()
}

fn key(room: &str) -> String {
    format!("onair:chat:{room}")
}

fn census_key(node: &str) -> String {
    format!("onair:census:{node}")
}

fn counter_key(key: &str) -> String {
    format!("onair:count:{key}")
}

fn wait_key(key: &str) -> String {
    format!("onair:wait:{key}")
}

fn lease_key(lease: &str) -> String {
    format!("onair:lease:{lease}")
}

/// The stream id after which entries are new: `ms-seq`.
pub fn id_now() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{ms}-0")
}

/// The site's Redis. Connects on first use, and again after a failure.
pub struct Bus {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
}

impl Bus {
    /// A bus on `url` (checked by [`valid_url`]); nothing is contacted yet,
    /// so a Redis that is down does not stop the server from starting.
    pub fn new(url: &str) -> Result<Bus, BusError> {
        Ok(Bus {
            client: redis::Client::open(url)?,
            conn: OnceCell::new(),
        })
    }

    async fn conn(&self) -> Result<ConnectionManager, BusError> {
        let make = || async {
            let cfg = ConnectionManagerConfig::new()
                .set_connection_timeout(COMMAND_TIMEOUT)
                .set_response_timeout(COMMAND_TIMEOUT)
                .set_number_of_retries(1);
            ConnectionManager::new_with_config(self.client.clone(), cfg).await
        };
        Ok(timed(self.conn.get_or_try_init(make)).await?.clone())
    }

    /// Appends `entry` to `room`'s stream.
    pub async fn publish(&self, room: &str, entry: &Entry) -> Result<(), BusError> {
        let json = serde_json::to_string(entry).expect("an entry serializes");
        let mut c = self.conn().await?;
        let _: String = timed(c.xadd_maxlen(
            key(room),
            StreamMaxlen::Approx(STREAM_ENTRIES),
            "*",
            &[("e", json)],
        ))
        .await?;
        Ok(())
    }

    /// The last `count` entries of `room`, oldest first, and the id to read
    /// on from (`0-0` for an empty stream: anything appended is new).
    pub async fn recent(&self, room: &str, count: usize) -> Result<(Vec<Entry>, String), BusError> {
        let mut c = self.conn().await?;
        let reply: StreamRangeReply = timed(c.xrevrange_count(key(room), "+", "-", count)).await?;
        let last = reply
            .ids
            .first()
            .map_or_else(|| "0-0".to_string(), |e| e.id.clone());
        let entries = reply
            .ids
            .iter()
            .rev()
            .filter_map(|e| decode(&e.map))
            .collect();
        Ok((entries, last))
    }

    /// Claims `what` for `ttl` unless someone holds it already: true when
    /// this call got it.
    pub async fn claim(&self, what: &str, ttl: Duration) -> Result<bool, BusError> {
        let mut c = self.conn().await?;
        let opts = SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(SetExpiry::PX(ttl.as_millis().max(1) as u64));
        let got: Option<String> =
            timed(c.set_options(format!("onair:claim:{what}"), 1, opts)).await?;
        Ok(got.is_some())
    }

    /// Makes `holder` the holder of `lease` for `ttl`, whoever held it.
    pub async fn take(&self, lease: &str, holder: &str, ttl: Duration) -> Result<(), BusError> {
        let mut c = self.conn().await?;
        let opts = SetOptions::default().with_expiration(SetExpiry::PX(ttl.as_millis() as u64));
        let _: Option<String> = timed(c.set_options(lease_key(lease), holder, opts)).await?;
        Ok(())
    }

    /// Extends `holder`'s `lease` by `ttl`. False when someone else holds
    /// it now; a lease nobody holds (expired, or Redis restarted empty) is
    /// taken again, so an outage never ends what it interrupted.
    pub async fn renew(&self, lease: &str, holder: &str, ttl: Duration) -> Result<bool, BusError> {
        const RENEW: &str = "local v = redis.call('GET', KEYS[1]) \
            if v == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end \
            if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end \
            return 0";
        let mut c = self.conn().await?;
        let script = redis::Script::new(RENEW);
        let mut call = script.key(lease_key(lease));
        call.arg(holder).arg(ttl.as_millis() as u64);
        let kept: i64 = timed(call.invoke_async(&mut c)).await?;
        Ok(kept == 1)
    }

    /// Gives `lease` up, if `holder` still holds it.
    pub async fn release(&self, lease: &str, holder: &str) -> Result<(), BusError> {
        const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
            return redis.call('DEL', KEYS[1]) end return 0";
        let mut c = self.conn().await?;
        let script = redis::Script::new(RELEASE);
        let mut call = script.key(lease_key(lease));
        call.arg(holder);
        let _: i64 = timed(call.invoke_async(&mut c)).await?;
        Ok(())
    }

    /// The site's node token: what a server shows another when it pulls a
    /// channel as a WHEP client, so that one serves it as a server, not as
    /// a viewer (not counted, not rate-limited, not refused when full).
    /// The first server to ask makes it (as random as a stream key); whoever can
    /// read Redis is trusted with the site already.
    pub async fn node_token(&self) -> Result<String, BusError> {
        const KEY: &str = "onair:node-token";
        let mut c = self.conn().await?;
        let fresh = crate::db::new_stream_key();
        let opts = SetOptions::default().conditional_set(redis::ExistenceCheck::NX);
        let _: Option<String> = timed(c.set_options(KEY, &fresh, opts)).await?;
        let token: Option<String> = timed(c.get(KEY)).await?;
        // Gone between the two calls only if Redis restarted empty then.
        Ok(token.unwrap_or(fresh))
    }

    /// Adds one to the counter `key`, which is forgotten `ttl` after its
    /// last count; the count.
    pub async fn bump(&self, key: &str, ttl: Duration) -> Result<u64, BusError> {
        const BUMP: &str = "local n = redis.call('INCR', KEYS[1]) \
            redis.call('PEXPIRE', KEYS[1], ARGV[1]) return n";
        let mut c = self.conn().await?;
        let script = redis::Script::new(BUMP);
        let mut call = script.key(counter_key(key));
        call.arg(ttl.as_millis().max(1) as u64);
        timed(call.invoke_async(&mut c)).await
    }

    /// Takes one token from `key`'s bucket (`burst` at once, then one every
    /// `every`), kept in Redis on Redis's clock, so the servers of a site
    /// share one bucket: `None` when taken, else how long until one is
    /// there (nothing is taken then). The bucket expires once full again.
    pub async fn take_token(
        &self,
        key: &str,
        burst: u32,
        every: Duration,
    ) -> Result<Option<Duration>, BusError> {
        const TAKE: &str = "local burst = tonumber(ARGV[1]) \
            local every = tonumber(ARGV[2]) \
            local t = redis.call('TIME') \
            local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) \
            local b = redis.call('HMGET', KEYS[1], 'tokens', 'at') \
            local tokens = tonumber(b[1]) or burst \
            local at = tonumber(b[2]) or now \
            tokens = math.min(burst, tokens + math.max(0, now - at) / every) \
            local wait = 0 \
            if tokens >= 1 then tokens = tokens - 1 \
            else wait = math.ceil((1 - tokens) * every) end \
            redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now) \
            redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * every) + 1000) \
            return wait";
        let mut c = self.conn().await?;
        let script = redis::Script::new(TAKE);
        let mut call = script.key(format!("onair:bucket:{key}"));
        call.arg(burst.max(1))
            .arg(every.as_secs_f64().max(0.001) * 1000.0);
        let wait: u64 = timed(call.invoke_async(&mut c)).await?;
        Ok((wait > 0).then(|| Duration::from_millis(wait)))
    }

    /// Makes `key` wait `wait` (see [`Bus::waiting`]).
    pub async fn hold_off(&self, key: &str, wait: Duration) -> Result<(), BusError> {
        let mut c = self.conn().await?;
        let opts =
            SetOptions::default().with_expiration(SetExpiry::PX(wait.as_millis().max(1) as u64));
        let _: Option<String> = timed(c.set_options(wait_key(key), 1, opts)).await?;
        Ok(())
    }

    /// The longest wait left among `keys`.
    pub async fn waiting(&self, keys: &[String]) -> Result<Duration, BusError> {
        let mut c = self.conn().await?;
        let mut pipe = redis::pipe();
        for k in keys {
            pipe.pttl(wait_key(k));
        }
        let left: Vec<i64> = timed(pipe.query_async(&mut c)).await?;
        Ok(Duration::from_millis(
            left.into_iter().max().unwrap_or(0).max(0) as u64,
        ))
    }

    /// Forgets the counters and waits of `keys`.
    pub async fn forget(&self, keys: &[String]) -> Result<(), BusError> {
        let mut c = self.conn().await?;
        let all: Vec<String> = keys
            .iter()
            .flat_map(|k| [counter_key(k), wait_key(k)])
            .collect();
        let _: i64 = timed(c.del(all)).await?;
        Ok(())
    }

    /// Forgets the counters and waits of every key starting with `prefix`
    /// (which must hold no glob characters).
    pub async fn forget_prefix(&self, prefix: &str) -> Result<(), BusError> {
        let mut c = self.conn().await?;
        for pattern in [
            counter_key(&format!("{prefix}*")),
            wait_key(&format!("{prefix}*")),
        ] {
            let mut cursor = 0u64;
            loop {
                let (next, keys): (u64, Vec<String>) = timed(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut c),
                )
                .await?;
                if !keys.is_empty() {
                    let _: i64 = timed(c.del(keys)).await?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(())
    }

    /// Who holds `lease`, if anyone.
    pub async fn holder(&self, lease: &str) -> Result<Option<String>, BusError> {
        let mut c = self.conn().await?;
        timed(c.get(lease_key(lease))).await
    }

    /// Puts `node`'s census entry (kept `ttl`) and returns every server's
    /// that has not expired. Servers whose entry expired are forgotten.
    pub async fn census(
        &self,
        node: &str,
        entry: &str,
        ttl: Duration,
    ) -> Result<Vec<String>, BusError> {
        const NODES: &str = "onair:census";
        let mut c = self.conn().await?;
        let opts = SetOptions::default().with_expiration(SetExpiry::PX(ttl.as_millis() as u64));
        let _: Option<String> = timed(c.set_options(census_key(node), entry, opts)).await?;
        let _: i64 = timed(c.sadd(NODES, node)).await?;
        let nodes: Vec<String> = timed(c.smembers(NODES)).await?;
        let keys: Vec<String> = nodes.iter().map(|n| census_key(n)).collect();
        let entries: Vec<Option<String>> =
            timed(redis::cmd("MGET").arg(&keys).query_async(&mut c)).await?;
        let mut out = Vec::with_capacity(entries.len());
        for (n, e) in nodes.iter().zip(entries) {
            match e {
                Some(e) => out.push(e),
                None => {
                    let _: i64 = timed(c.srem(NODES, n)).await?;
                }
            }
        }
        Ok(out)
    }

    /// A connection of its own for [`Bus::read`], whose blocking reads would
    /// hold up any command queued behind them.
    pub async fn reader(&self) -> Result<MultiplexedConnection, BusError> {
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(COMMAND_TIMEOUT)
            .set_response_timeout(COMMAND_TIMEOUT + READ_BLOCK);
        timed(
            self.client
                .get_multiplexed_async_connection_with_config(&cfg),
        )
        .await
    }

    /// Entries after each room's id, waiting up to [`READ_BLOCK`] for any:
    /// `(room, stream id, entry)` in each room's order. An entry that does
    /// not decode is skipped (its id still moves the room on).
    pub async fn read(
        conn: &mut MultiplexedConnection,
        rooms: &[(String, String)],
    ) -> Result<Vec<(String, String, Option<Entry>)>, BusError> {
        let keys: Vec<String> = rooms.iter().map(|(r, _)| key(r)).collect();
        let ids: Vec<&str> = rooms.iter().map(|(_, id)| id.as_str()).collect();
        let opts = StreamReadOptions::default()
            .block(READ_BLOCK.as_millis() as usize)
            .count(READ_COUNT);
        let reply: Option<StreamReadReply> = conn.xread_options(&keys, &ids, &opts).await?;
        let mut out = Vec::new();
        for stream in reply.map(|r| r.keys).unwrap_or_default() {
            let Some(room) = stream.key.strip_prefix("onair:chat:") else {
                continue;
            };
            for e in stream.ids {
                out.push((room.to_string(), e.id.clone(), decode(&e.map)));
            }
        }
        Ok(out)
    }
}

fn decode(map: &std::collections::HashMap<String, redis::Value>) -> Option<Entry> {
    let raw: String = redis::from_redis_value(map.get("e")?).ok()?;
    if raw.len() > MAX_ENTRY_BYTES {
        return None;
    }
    serde_json::from_str(&raw).ok()
}

async fn timed<T, E: Into<BusError>>(
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, BusError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, f).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(BusError::Timeout(COMMAND_TIMEOUT)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_urls_are_checked() {
        for e in [
            Entry::Message {
                id: 7,
                line: "{\"type\":\"chat\"}".into(),
            },
            Entry::Delete { id: 7 },
            Entry::SlowMode { seconds: 30 },
            Entry::Event { line: "{}".into() },
        ] {
            let json = serde_json::to_string(&e).unwrap();
            assert_eq!(serde_json::from_str::<Entry>(&json).unwrap(), e);
        }
        assert!(serde_json::from_str::<Entry>("{\"k\":\"nope\"}").is_err());
        assert!(valid_url("redis://127.0.0.1:6379"));
        assert!(valid_url("redis://cache.internal/2"));
        for bad in ["http://x", "rediss://x", "redis", ""] {
            assert!(!valid_url(bad), "{bad}");
        }
    }
}
