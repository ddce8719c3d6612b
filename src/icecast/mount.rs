//! A channel's Icecast mount: the source's own bytes, fanned out to plain
//! listeners through one bounded ring ([`tokio::sync::broadcast`]). A
//! listener that falls behind the ring is told how much it missed and
//! carries on from the oldest chunk still there: it skips, and neither the
//! source nor the other listeners wait for it.

use super::demux::Format;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

/// Chunks the ring holds. A chunk is about [`CHUNK_TICKS`] of audio, so a
/// listener may be some six seconds behind the source before it skips;
/// the ring's memory is this many chunks per mount, however many listen.
pub const LISTENER_QUEUE_CHUNKS: usize = 64;
/// Audio gathered into one chunk before it is sent: 100 ms keeps the
/// wake-ups per listener at ten a second (a thousand listeners, ten
/// thousand writes a second), and adds nothing a radio player notices
/// next to its own seconds of buffer.
pub const CHUNK_TICKS: i64 = crate::media::CLOCK_RATE / 10;
/// A chunk is sent once this big whatever its duration, which bounds the
/// ring's memory to [`LISTENER_QUEUE_CHUNKS`] times this per mount
/// (4 MiB) even for a source at the byte-rate cap.
pub const MAX_CHUNK_BYTES: usize = 64 * 1024;

/// What a listener is sent before the first chunk: the Ogg stream's
/// header pages (empty for MP3 and ADTS, which start at any frame).
#[derive(Debug, Default, Clone)]
pub struct StreamHeader(pub Vec<Bytes>);

pub struct Mount {
    pub channel: String,
    pub format: Format,
    /// The publish this mount belongs to ([`crate::hub::Stream::id`]).
    pub stream_id: u64,
    pub name: String,
    pub description: String,
    chunks: broadcast::Sender<Bytes>,
    header: Mutex<StreamHeader>,
    /// The title listeners' ICY blocks carry (empty: none yet).
    now_playing: watch::Sender<Arc<str>>,
    listeners: AtomicUsize,
    /// Cancelled when the source leaves or is replaced: listeners hold the
    /// mount (and so its ring's sender), so they cannot wait for the ring
    /// to close.
    ended: CancellationToken,
}

impl Mount {
    pub fn ended(&self) -> &CancellationToken {
        &self.ended
    }

    pub fn subscribe(&self) -> (StreamHeader, broadcast::Receiver<Bytes>) {
        // Subscribing and reading the header under the lock the source
        // changes the header under: a listener gets a new chain's header
        // pages once, either with the header or in the ring, never both
        // and never neither.
        let h = self.header.lock().expect("mount poisoned");
        (h.clone(), self.chunks.subscribe())
    }

    pub fn send(&self, chunk: Bytes) {
        // No receiver is not an error: nobody listens.
        let _ = self.chunks.send(chunk);
    }

    /// A header page: it replaces (`first`) or extends the header new
    /// listeners get, and goes to the current ones in order.
    pub fn header_page(&self, page: Bytes, first: bool) {
        let mut h = self.header.lock().expect("mount poisoned");
        if first {
            h.0.clear();
        }
        h.0.push(page.clone());
        let _ = self.chunks.send(page);
    }

    pub fn now_playing(&self) -> watch::Receiver<Arc<str>> {
        self.now_playing.subscribe()
    }

    pub fn set_now_playing(&self, title: &str) {
        self.now_playing.send_replace(Arc::from(title));
    }

    pub fn listeners(&self) -> usize {
        self.listeners.load(Ordering::Relaxed)
    }

    /// Counts a listener for as long as the guard lives.
    pub fn listen(self: &Arc<Self>) -> ListenerGuard {
        self.listeners.fetch_add(1, Ordering::Relaxed);
        ListenerGuard(self.clone())
    }
}

pub struct ListenerGuard(Arc<Mount>);

impl Drop for ListenerGuard {
    fn drop(&mut self) {
        self.0.listeners.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Channel -> its mount, while an Icecast source is on the air. At most
/// one entry per channel with a connected source, so bounded by the
/// source connection cap.
#[derive(Default)]
pub struct Mounts {
    map: Mutex<HashMap<String, Arc<Mount>>>,
    /// Woken when a mount opens, for listeners waiting out a source's
    /// reconnect.
    changed: tokio::sync::Notify,
}

impl Mounts {
    /// A fresh mount for a new source, replacing the channel's old one
    /// (whose listeners move over when they see it closed).
    pub fn open(
        &self,
        channel: &str,
        format: Format,
        stream_id: u64,
        name: String,
        description: String,
    ) -> Arc<Mount> {
        let mount = Arc::new(Mount {
            channel: channel.to_string(),
            format,
            stream_id,
            name,
            description,
            chunks: broadcast::channel(LISTENER_QUEUE_CHUNKS).0,
            header: Mutex::default(),
            now_playing: watch::channel(Arc::from("")).0,
            listeners: AtomicUsize::new(0),
            ended: CancellationToken::new(),
        });
        let old = self
            .map
            .lock()
            .expect("mounts poisoned")
            .insert(channel.to_string(), mount.clone());
        if let Some(old) = old {
            old.ended.cancel();
        }
        self.changed.notify_waiters();
        mount
    }

    /// Ends `mount`, and removes it if it is still the channel's (a source
    /// that was replaced leaves its successor alone).
    pub fn close(&self, mount: &Arc<Mount>) {
        let mut map = self.map.lock().expect("mounts poisoned");
        if map
            .get(&mount.channel)
            .is_some_and(|m| Arc::ptr_eq(m, mount))
        {
            map.remove(&mount.channel);
        }
        mount.ended.cancel();
    }

    pub fn get(&self, channel: &str) -> Option<Arc<Mount>> {
        self.map
            .lock()
            .expect("mounts poisoned")
            .get(channel)
            .cloned()
    }

    /// Waits until a mount is opened (any channel) or `limit` passes.
    pub async fn changed(&self, limit: std::time::Duration) {
        let _ = tokio::time::timeout(limit, self.changed.notified()).await;
    }

    pub fn listeners(&self, channel: &str) -> usize {
        self.get(channel).map_or(0, |m| m.listeners())
    }

    pub fn all_listeners(&self) -> Vec<(String, usize)> {
        let map = self.map.lock().expect("mounts poisoned");
        map.values()
            .map(|m| (m.channel.clone(), m.listeners()))
            .collect()
    }
}
