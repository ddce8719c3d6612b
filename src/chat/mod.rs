//! Chat: one room per channel, joined by WebSocket clients and by WHEP data
//! channels alike. A room keeps the last [`HISTORY`] messages in memory
//! (loaded from the database when it opens) so a joiner gets history and
//! live messages with nothing lost or doubled between the two. Every line a
//! member receives is a JSON object serialized once and shared by all.
//!
//! With `--redis-url`, the servers of a site share each room through its
//! Redis stream (see [`crate::bus`]): what happens in a room is appended
//! there, and every server, the one it happened on included, delivers it
//! to its members when it reads it back ([`Rooms::run_bus`]).

pub mod limits;
mod member;
mod message;
mod shared;
mod standing;

pub use limits::{FrameLimit, TokenBucket, BURST, REFILL_PER_SEC};
pub use message::{parse_rfc3339, rfc3339, rfc3339_ms, unix_secs, ClientMessage};
pub use standing::{SignOut, Standing, Standings};

use crate::bus::{Bus, Entry};
use crate::db::{Ban, ChatRow, Db, DbError, User};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot, OnceCell};
use tokio_util::sync::CancellationToken;

/// A JSON object, one per WebSocket text frame or data-channel message.
pub type Line = Arc<str>;

/// Messages sent to a joiner before live ones.
pub const HISTORY: usize = 50;
/// Longest message, in characters (Unicode scalar values).
pub const MAX_TEXT_CHARS: usize = 500;
/// Lines buffered per room for a slow member before it skips ahead. At the
/// issue's 20 messages/s that is 50 s of chat.
const ROOM_BUFFER: usize = 1024;
/// How often live/offline and viewer counts are checked and announced.
const EVENT_TICK: Duration = Duration::from_secs(1);
/// Stream entries read when a room opens: its history, and the deletions
/// among the newest of them.
const STREAM_HISTORY: usize = 4 * HISTORY;

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("sign in to chat")]
    NotSignedIn,
    #[error("your session has ended: sign in again to chat")]
    SignedOut,
    #[error("message is empty")]
    Empty,
    #[error("message is longer than {MAX_TEXT_CHARS} characters")]
    TooLong,
    #[error("slow down: at most {BURST} messages at once, then one a second")]
    RateLimited,
    #[error("slow mode: one message every {0} s")]
    SlowMode(i64),
    #[error("you are banned from this chat")]
    Banned,
    #[error("verify your email address to chat (this server requires it)")]
    Unverified,
    #[error("you are timed out for {0} more seconds")]
    TimedOut(i64),
    #[error("no channel named {0:?}")]
    NoSuchChannel(String),
    #[error("chat is unavailable right now; try again in a moment")]
    Unavailable,
    #[error("{0}")]
    BadMessage(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Answers the HTTP layer needs for viewer counts and live state without
/// depending on the SFU or the hub directly.
pub trait LiveState: Send + Sync + 'static {
    fn is_live(&self, channel: &str) -> bool;
    fn viewers(&self, channel: &str) -> usize;
}

#[derive(Clone)]
pub struct Rooms {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    live: Arc<dyn LiveState>,
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    buckets: Mutex<HashMap<i64, TokenBucket>>,
    /// Signed-in members, so sign-outs and role changes reach them.
    standings: Arc<Standings>,
    last_id: AtomicI64,
    /// This node's tag (see [`message_id`]).
    node_tag: AtomicI64,
    /// `--require-verified-email`: only verified accounts write.
    require_verified: std::sync::atomic::AtomicBool,
    /// To the task that stores messages (see [`Rooms::run_writer`]).
    writes: mpsc::Sender<Write>,
    writes_rx: Mutex<Option<mpsc::Receiver<Write>>>,
    /// The site's shared rooms, with `--redis-url`.
    bus: std::sync::OnceLock<Arc<Bus>>,
}

/// Work for the writer task.
enum Write {
    /// A row, and its room: the room stays open (the sweep keeps a room
    /// anyone holds) until the row is stored. Closed and reopened
    /// meanwhile, it would load a history from the database without it.
    Row { row: ChatRow, _room: Arc<Room> },
    /// Answered once everything sent before it is stored.
    Flush(oneshot::Sender<()>),
}

/// Messages waiting to be stored before `post` waits for the writer: at 20
/// messages a second, minutes of a stalled database.
const WRITE_QUEUE: usize = 4096;
/// Rows stored per transaction: one commit (one fsync) for a burst.
const WRITE_BATCH: usize = 256;

struct Room {
    name: String,
    tx: broadcast::Sender<Line>,
    loaded: OnceCell<()>,
    members: AtomicUsize,
    state: Mutex<RoomState>,
    /// With a bus: the last stream id applied, once the room is loaded.
    cursor: Mutex<Option<String>>,
}

#[derive(Default)]
struct RoomState {
    history: VecDeque<(i64, Line)>,
    owner_id: Option<i64>,
    slow_mode_secs: i64,
    last_post: HashMap<i64, Instant>,
    announced_live: Option<bool>,
    announced_viewers: Option<usize>,
}

/// One participant: a WebSocket or a WHEP data channel. Send [`backlog`]
/// first, then every line [`recv`] yields; pass what the client sends to
/// [`handle`]. Dropping it leaves the room.
///
/// [`backlog`]: Member::take_backlog
/// [`recv`]: Member::recv
/// [`handle`]: Member::handle
pub struct Member {
    rooms: Rooms,
    room: Arc<Room>,
    /// `None` for an anonymous (read-only) member.
    standing: Option<Standing>,
    backlog: Vec<Line>,
    events: broadcast::Receiver<Line>,
}

fn json_line(v: serde_json::Value) -> Line {
    Arc::from(v.to_string())
}

pub fn error_line(message: &str) -> Line {
    json_line(serde_json::json!({"type": "error", "error": message}))
}

/// A chat message as members, the history and the data channel see it.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ChatMessage {
    #[serde(rename = "type")]
    pub kind: ChatKind,
    #[serde(with = "crate::db::json_id")]
    #[schema(value_type = String)]
    pub id: i64,
    /// The author's username.
    pub user: String,
    /// Plain text, never markup.
    #[schema(max_length = 500)]
    pub text: String,
    #[schema(format = DateTime)]
    pub at: String,
}

#[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChatKind {
    Chat,
}

fn chat_line(m: &ChatRow) -> Line {
    let message = ChatMessage {
        kind: ChatKind::Chat,
        id: m.id,
        user: m.username.clone(),
        text: m.text.clone(),
        at: rfc3339_ms(m.at_ms),
    };
    Arc::from(serde_json::to_string(&message).unwrap_or_default())
}

/// A message's id: the time in microseconds, times [`crate::db::MAX_NODES`],
/// plus the node's tag. Ids grow with time on each node and across them
/// (so history sorts by id), two nodes never mint the same one, and every
/// one is above the plain-microsecond ids of before. `last` is the node's
/// previous id: within one microsecond the next one steps past it.
pub fn message_id(micros: i64, tag: i64, last: i64) -> i64 {
    let n = crate::db::MAX_NODES;
    (micros * n + tag).max(last + n)
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

impl Rooms {
    pub fn new(db: Db, live: Arc<dyn LiveState>) -> Rooms {
        let (writes, writes_rx) = mpsc::channel(WRITE_QUEUE);
        Rooms {
            inner: Arc::new(Inner {
                db,
                live,
                rooms: Mutex::new(HashMap::new()),
                buckets: Mutex::new(HashMap::new()),
                standings: Arc::default(),
                last_id: AtomicI64::new(0),
                node_tag: AtomicI64::new(0),
                require_verified: std::sync::atomic::AtomicBool::new(false),
                writes,
                writes_rx: Mutex::new(Some(writes_rx)),
                bus: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Shares the rooms with the other servers of the site through `bus`;
    /// set before the first member joins, with [`Rooms::run_bus`] running.
    pub fn set_bus(&self, bus: Arc<Bus>) {
        let _ = self.inner.bus.set(bus);
    }

    /// The site's bus, with `--redis-url`.
    pub fn bus(&self) -> Option<&Arc<Bus>> {
        self.inner.bus.get()
    }

    /// The tag of this node among those sharing the database
    /// ([`Db::node_tag`]); set before the first message.
    pub fn set_node_tag(&self, tag: i64) {
        self.inner.node_tag.store(tag, Ordering::Relaxed);
    }

    /// Only accounts with a verified email address may write.
    pub fn require_verified_email(&self, on: bool) {
        self.inner.require_verified.store(on, Ordering::Relaxed);
    }

    /// Whether `user` may write under `--require-verified-email`. A socket
    /// keeps the user it joined as, so an address verified since then is
    /// read again (only unverified writers pay the query).
    async fn verified_enough(&self, user: &User) -> Result<(), ChatError> {
        if !self.inner.require_verified.load(Ordering::Relaxed) || user.email_verified {
            return Ok(());
        }
        match self.inner.db.user_by_id(user.id).await? {
            Some(u) if u.email_verified => Ok(()),
            _ => Err(ChatError::Unverified),
        }
    }

    fn room(&self, channel: &str) -> Arc<Room> {
        let mut rooms = self.inner.rooms.lock().expect("rooms poisoned");
        rooms
            .entry(channel.to_string())
            .or_insert_with(|| {
                Arc::new(Room {
                    name: channel.to_string(),
                    tx: broadcast::channel(ROOM_BUFFER).0,
                    loaded: OnceCell::new(),
                    members: AtomicUsize::new(0),
                    state: Mutex::new(RoomState::default()),
                    cursor: Mutex::new(None),
                })
            })
            .clone()
    }

    /// The room of an existing channel, with its history loaded.
    async fn open(&self, channel: &str) -> Result<Arc<Room>, ChatError> {
        if !crate::db::valid_channel_name(channel) {
            return Err(ChatError::NoSuchChannel(channel.to_string()));
        }
        let room = self.room(channel);
        room.loaded
            .get_or_try_init(|| async {
                let info = self
                    .inner
                    .db
                    .channel_info(channel)
                    .await?
                    .ok_or_else(|| ChatError::NoSuchChannel(channel.to_string()))?;
                let recent = self.inner.db.recent_chat(channel, HISTORY as i64).await?;
                // The stream has what the database may not have yet (rows
                // still queued on another server), and the deletions.
                let shared = match self.bus() {
                    Some(bus) => Some(match bus.recent(channel, STREAM_HISTORY).await {
                        Ok(got) => got,
                        Err(e) => {
                            tracing::warn!(channel, "chat: the shared history is unavailable: {e}");
                            (Vec::new(), crate::bus::id_now())
                        }
                    }),
                    None => None,
                };
                let mut st = room.state.lock().expect("room poisoned");
                st.owner_id = info.owner_id;
                st.slow_mode_secs = info.slow_mode_secs;
                // Messages posted while loading are already in; keep order.
                let mut merged: Vec<(i64, Line)> =
                    recent.iter().map(|m| (m.id, chat_line(m))).collect();
                merged.extend(st.history.drain(..));
                merged.sort_by_key(|(id, _)| *id);
                merged.dedup_by_key(|(id, _)| *id);
                if let Some((entries, cursor)) = shared {
                    // The stream's order is the room's order; the database
                    // adds what is older than the stream holds.
                    let mut streamed = Vec::new();
                    let mut deleted = Vec::new();
                    for e in entries {
                        match e {
                            Entry::Message { id, line } => streamed.push((id, Line::from(line))),
                            Entry::Delete { id } => deleted.push(id),
                            Entry::SlowMode { .. } | Entry::Event { .. } => {}
                        }
                    }
                    merged.retain(|(id, _)| !streamed.iter().any(|(s, _)| s == id));
                    merged.extend(streamed);
                    merged.retain(|(id, _)| !deleted.contains(id));
                    *room.cursor.lock().expect("room poisoned") = Some(cursor);
                }
                st.history = merged.into_iter().collect();
                while st.history.len() > HISTORY {
                    st.history.pop_front();
                }
                Ok::<(), ChatError>(())
            })
            .await?;
        Ok(room)
    }

    /// Open signed-in members: the account code reports sign-outs and role
    /// changes here.
    pub fn standings(&self) -> &Standings {
        &self.inner.standings
    }

    /// Joins `channel`'s room. Anyone may read; a member signed in (`user`
    /// and the hash of the session token that proved it) may also write
    /// through [`Member::handle`], for as long as that session lasts.
    pub async fn join(
        &self,
        channel: &str,
        signed_in: Option<(User, String)>,
    ) -> Result<Member, ChatError> {
        let room = self.open(channel).await?;
        let standing = match signed_in {
            Some((user, session)) => {
                let standing = self.inner.standings.seat(user, session.clone());
                // A sign-out between the caller's check and the seat being
                // taken would be missed: look again now that it would not.
                match self.inner.db.session_user(&session).await? {
                    Some(now) => standing.refresh(now),
                    None => standing.revoke(),
                }
                Some(standing)
            }
            None => None,
        };
        let live = self.inner.live.is_live(channel);
        let viewers = self.inner.live.viewers(channel);
        // Subscribing and copying the history under one lock: a message is
        // either in the history or on the receiver, never both or neither.
        let (mut backlog, events) = {
            let mut st = room.state.lock().expect("room poisoned");
            // What this member is told now is the baseline for changes.
            st.announced_live.get_or_insert(live);
            st.announced_viewers.get_or_insert(viewers);
            let backlog: Vec<Line> = st.history.iter().map(|(_, l)| l.clone()).collect();
            (backlog, room.tx.subscribe())
        };
        backlog.push(json_line(
            serde_json::json!({"type": if live { "live" } else { "offline" }}),
        ));
        backlog.push(json_line(
            serde_json::json!({"type": "viewers", "count": viewers}),
        ));
        room.members.fetch_add(1, Ordering::Relaxed);
        Ok(Member {
            rooms: self.clone(),
            room,
            standing,
            backlog,
            events,
        })
    }

    /// Posts a message as `user`, after the limits and bans; returns the
    /// line every member (the sender included) receives.
    pub async fn post(&self, channel: &str, user: &User, text: &str) -> Result<Line, ChatError> {
        if text.trim().is_empty() {
            return Err(ChatError::Empty);
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(ChatError::TooLong);
        }
        if text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(ChatError::BadMessage(
                "message has control characters".into(),
            ));
        }
        self.verified_enough(user).await?;
        let room = self.open(channel).await?;
        let (is_owner, slow) = {
            let st = room.state.lock().expect("room poisoned");
            (st.owner_id == Some(user.id), st.slow_mode_secs)
        };
        // A site-wide ban reaches every channel, its owner's own too.
        if !user.role.moderates_everywhere() {
            match self.inner.db.ban(crate::db::SITE, user.id).await? {
                Some(Ban::Banned) => return Err(ChatError::Banned),
                Some(Ban::Until(t)) => return Err(ChatError::TimedOut(t - unix_secs())),
                None => {}
            }
        }
        let privileged = is_owner || user.role.moderates_everywhere();
        if !privileged {
            match self.inner.db.ban(channel, user.id).await? {
                Some(Ban::Banned) => return Err(ChatError::Banned),
                Some(Ban::Until(t)) => return Err(ChatError::TimedOut(t - unix_secs())),
                None => {}
            }
            if slow > 0 {
                if let Some(bus) = self.bus() {
                    // One interval whichever server the user posts through.
                    let what = format!("slow:{channel}:{}", user.id);
                    match bus.claim(&what, Duration::from_secs(slow as u64)).await {
                        Ok(true) => {}
                        Ok(false) => return Err(ChatError::SlowMode(slow)),
                        Err(e) => return Err(shared::unavailable(e)),
                    }
                } else {
                    let st = room.state.lock().expect("room poisoned");
                    if let Some(last) = st.last_post.get(&user.id) {
                        if last.elapsed() < Duration::from_secs(slow as u64) {
                            return Err(ChatError::SlowMode(slow));
                        }
                    }
                }
            }
        }
        {
            let now = Instant::now();
            let mut buckets = self.inner.buckets.lock().expect("buckets poisoned");
            if buckets.len() > 100_000 {
                buckets.retain(|_, b| !b.is_full(now));
            }
            let bucket = buckets
                .entry(user.id)
                .or_insert_with(|| TokenBucket::new(now));
            if !bucket.take(now) {
                return Err(ChatError::RateLimited);
            }
        }
        if let Some(bus) = self.bus() {
            // The same bucket in Redis, whichever servers the user posts
            // through.
            let every = Duration::from_secs_f64(1.0 / REFILL_PER_SEC);
            let key = format!("chat:{}", user.id);
            let wait = bus
                .take_token(&key, BURST, every)
                .await
                .map_err(shared::unavailable)?;
            if wait.is_some() {
                return Err(ChatError::RateLimited);
            }
        }
        let micros = now_micros();
        let id = loop {
            let last = self.inner.last_id.load(Ordering::Relaxed);
            let id = message_id(micros, self.inner.node_tag.load(Ordering::Relaxed), last);
            if self
                .inner
                .last_id
                .compare_exchange(last, id, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                break id;
            }
        };
        let row = ChatRow {
            id,
            channel: channel.to_string(),
            user_id: user.id,
            username: user.username.clone(),
            text: text.to_string(),
            at_ms: micros / 1000,
        };
        let line = chat_line(&row);
        if let Some(bus) = self.bus() {
            let entry = Entry::Message {
                id,
                line: line.to_string(),
            };
            bus.publish(channel, &entry)
                .await
                .map_err(shared::unavailable)?;
        }
        // Members get the message now; the database gets it a moment later
        // from the writer, so a slow commit (an fsync, a far Postgres) is
        // not in the delivery path. Without a writer, store it here.
        let write = Write::Row {
            row,
            _room: room.clone(),
        };
        if let Err(mpsc::error::SendError(Write::Row { row, .. })) =
            self.inner.writes.send(write).await
        {
            self.inner.db.insert_chat(&row).await?;
        }
        crate::metrics::chat_message();
        let mut st = room.state.lock().expect("room poisoned");
        st.last_post.insert(user.id, Instant::now());
        if self.bus().is_none() {
            add_message(&room, &mut st, id, line.clone(), Order::Id);
        }
        Ok(line)
    }

    /// Waits until every message posted so far is in the database.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.inner.writes.send(Write::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Stores posted messages in batches until `stop`, then stores what is
    /// left and returns. Start it once, beside [`run_events`](Self::run_events).
    pub async fn run_writer(self, stop: CancellationToken) {
        let Some(mut rx) = self.inner.writes_rx.lock().expect("rooms poisoned").take() else {
            return;
        };
        let mut batch = Vec::with_capacity(WRITE_BATCH);
        loop {
            let n = tokio::select! {
                n = rx.recv_many(&mut batch, WRITE_BATCH) => n,
                _ = stop.cancelled() => {
                    rx.close();
                    while let Some(w) = rx.recv().await {
                        batch.push(w);
                    }
                    self.store(&mut batch).await;
                    return;
                }
            };
            if n == 0 {
                return;
            }
            self.store(&mut batch).await;
        }
    }

    async fn store(&self, batch: &mut Vec<Write>) {
        let rows: Vec<ChatRow> = batch
            .iter()
            .filter_map(|w| match w {
                Write::Row { row, .. } => Some(row.clone()),
                Write::Flush(_) => None,
            })
            .collect();
        if !rows.is_empty() {
            if let Err(e) = self.inner.db.insert_chat_batch(&rows).await {
                tracing::error!(lost = rows.len(), "chat messages not stored: {e}");
            }
        }
        for w in batch.drain(..) {
            if let Write::Flush(done) = w {
                let _ = done.send(());
            }
        }
    }

    /// Deletes a message; every member gets `{"type":"delete","id":"N"}`.
    /// False if there was no such message.
    pub async fn delete(&self, channel: &str, id: i64) -> Result<bool, ChatError> {
        // Open, so the deletion reaches its members here without a bus.
        self.open(channel).await?;
        self.flush().await;
        if !self.inner.db.delete_chat(channel, id).await? {
            return Ok(false);
        }
        self.share(channel, Entry::Delete { id }).await;
        Ok(true)
    }

    /// Sends a server event to every member of `channel`, on every server.
    pub fn announce(&self, channel: &str, event: serde_json::Value) {
        self.share_soon(
            channel,
            Entry::Event {
                line: event.to_string(),
            },
        );
    }

    /// `channel`'s room if it is open, without opening it.
    fn open_room(&self, channel: &str) -> Option<Arc<Room>> {
        let rooms = self.inner.rooms.lock().expect("rooms poisoned");
        rooms.get(channel).cloned()
    }

    /// Applies a new slow-mode interval (already stored by the caller), on
    /// every server.
    pub fn set_slow_mode(&self, channel: &str, secs: i64) {
        self.share_soon(channel, Entry::SlowMode { seconds: secs });
    }

    /// Members currently in `channel`'s room.
    pub fn members(&self, channel: &str) -> usize {
        self.inner
            .rooms
            .lock()
            .expect("rooms poisoned")
            .get(channel)
            .map_or(0, |r| r.members.load(Ordering::Relaxed))
    }

    /// Closes the rooms nobody is in and nothing holds (a post in flight, a
    /// row not yet stored); returns the others.
    fn close_empty(&self) -> Vec<Arc<Room>> {
        let mut map = self.inner.rooms.lock().expect("rooms poisoned");
        map.retain(|_, r| r.members.load(Ordering::Relaxed) > 0 || Arc::strong_count(r) > 1);
        map.values().cloned().collect()
    }

    /// Announces live/offline and viewer counts as they change, and closes
    /// rooms nobody is in. Runs until `stop`.
    pub async fn run_events(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(EVENT_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            for room in self.close_empty() {
                let live = self.inner.live.is_live(&room.name);
                let viewers = self.inner.live.viewers(&room.name);
                let mut st = room.state.lock().expect("room poisoned");
                if st.announced_live != Some(live) {
                    if st.announced_live.is_some() {
                        let _ = room.tx.send(json_line(
                            serde_json::json!({"type": if live { "live" } else { "offline" }}),
                        ));
                    }
                    st.announced_live = Some(live);
                }
                if st.announced_viewers != Some(viewers) {
                    if st.announced_viewers.is_some() {
                        let _ = room.tx.send(json_line(
                            serde_json::json!({"type": "viewers", "count": viewers}),
                        ));
                    }
                    st.announced_viewers = Some(viewers);
                }
            }
        }
    }
}

/// Where a message goes in the history.
enum Order {
    /// By id: posts on this server can finish out of order.
    Id,
    /// Last: the stream's order, which every server shares (ids from two
    /// servers' clocks need not follow it).
    Arrival,
}

/// Adds message `id` to the room's history and sends it to its members,
/// unless the history has it already (read twice from the stream, or
/// loaded from the database too).
fn add_message(room: &Room, st: &mut RoomState, id: i64, line: Line, order: Order) {
    if st.history.iter().any(|(i, _)| *i == id) {
        return;
    }
    let pos = match order {
        Order::Id => st.history.partition_point(|(i, _)| *i < id),
        Order::Arrival => st.history.len(),
    };
    st.history.insert(pos, (id, line.clone()));
    while st.history.len() > HISTORY {
        st.history.pop_front();
    }
    let _ = room.tx.send(line);
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_of_two_nodes_never_meet_and_grow() {
        let n = crate::db::MAX_NODES;
        let t = 1_780_000_000_000_000; // microseconds, in 2026
        let (mut a, mut b) = (0, 0);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            // Both nodes in the same microsecond, many times over.
            let (na, nb) = (super::message_id(t, 0, a), super::message_id(t, 1, b));
            assert!(na > a && nb > b);
            assert_eq!((na % n, nb % n), (0, 1));
            assert!(seen.insert(na) && seen.insert(nb));
            (a, b) = (na, nb);
        }
        assert!(super::message_id(t, 1023, 0) > t, "above the old ids");
        assert!(super::message_id(t + 1, 0, 0) > super::message_id(t, 1023, 0));
    }

    use super::*;
    use crate::db::Role;

    struct Offline;
    impl LiveState for Offline {
        fn is_live(&self, _: &str) -> bool {
            false
        }
        fn viewers(&self, _: &str) -> usize {
            0
        }
    }

    fn is_open(rooms: &Rooms, channel: &str) -> bool {
        let map = rooms.inner.rooms.lock().unwrap();
        map.contains_key(channel)
    }

    /// Posting over HTTP holds no membership, so the sweep may close the
    /// room between two posts; one closed while its last rows were still
    /// queued for the writer reopened with a history from the database
    /// that lacked them, for good.
    #[tokio::test]
    async fn a_room_stays_open_until_its_messages_are_stored() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        let (user, _) = db
            .create_user("ann", "x", None, Role::Broadcaster, false)
            .await
            .unwrap();
        let rooms = Rooms::new(db, Arc::new(Offline));
        rooms.post("ann", &user, "first").await.unwrap();
        // The writer has not run: the row is only queued.
        rooms.close_empty();
        assert!(is_open(&rooms, "ann"), "closed with a row not stored");

        let stop = CancellationToken::new();
        let writer = tokio::spawn(rooms.clone().run_writer(stop.clone()));
        rooms.flush().await;
        rooms.close_empty();
        assert!(!is_open(&rooms, "ann"), "an empty, stored room closes");
        let room = rooms.open("ann").await.unwrap();
        let history: Vec<i64> = room
            .state
            .lock()
            .unwrap()
            .history
            .iter()
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(history.len(), 1, "reopened with the stored message");
        stop.cancel();
        writer.await.unwrap();
    }
}
