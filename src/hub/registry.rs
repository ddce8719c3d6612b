use super::stream::{Source, Stream};
use crate::media::Unit;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

type Slot = watch::Sender<Option<Arc<Stream>>>;

/// Channel name -> its live stream, if any. Consumers watch a channel rather
/// than a stream, so they follow it across publisher reconnects and can wait
/// for it while it is offline.
#[derive(Default)]
pub struct Hub {
    slots: Mutex<HashMap<String, Slot>>,
    next_id: AtomicU64,
    /// Slots for channels nobody publishes or watches any more are dropped
    /// when the map grows past this (then set to twice what is left): a
    /// viewer of a channel that never goes live leaves its slot behind.
    prune_at: AtomicUsize,
}

/// The map is pruned no earlier than at this size.
const PRUNE_FLOOR: usize = 1024;

impl Hub {
    pub fn new() -> Arc<Self> {
        Arc::new(Hub::default())
    }

    /// Makes a new stream the channel's live one. A publisher already there
    /// is replaced: its stream closes, and its ingest connection should end
    /// when it sees [`Stream::closed`]. Encoders that reconnect are never
    /// locked out by their own stale session.
    pub fn publish(self: &Arc<Self>, channel: &str) -> Publisher {
        self.publish_from(channel, Source::Rtmp)
    }

    /// [`publish`](Self::publish), naming the ingest protocol: egress
    /// paths that can take the source's own form (WHIP's RTP) use it.
    pub fn publish_from(self: &Arc<Self>, channel: &str, source: Source) -> Publisher {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let stream = Arc::new(Stream::new(id, channel.to_string(), source));
        let old = {
            let mut slots = self.slots.lock().expect("hub poisoned");
            let slot = slots
                .entry(channel.to_string())
                .or_insert_with(|| watch::channel(None).0);
            slot.send_replace(Some(stream.clone()))
        };
        if let Some(old) = old {
            tracing::info!(channel, old = old.id(), new = id, "publisher replaced");
            old.close();
        }
        Publisher {
            hub: self.clone(),
            stream,
        }
    }

    /// Follows a channel: `None` while offline, the live stream otherwise.
    /// The slot is kept while anyone watches, even with no publisher.
    pub fn watch(&self, channel: &str) -> watch::Receiver<Option<Arc<Stream>>> {
        let mut slots = self.slots.lock().expect("hub poisoned");
        if slots.len() >= self.prune_at.load(Ordering::Relaxed).max(PRUNE_FLOOR) {
            slots.retain(|_, s| s.borrow().is_some() || s.receiver_count() > 0);
            self.prune_at.store(slots.len() * 2, Ordering::Relaxed);
        }
        slots
            .entry(channel.to_string())
            .or_insert_with(|| watch::channel(None).0)
            .subscribe()
    }

    /// The channel's live stream, if any.
    pub fn stream(&self, channel: &str) -> Option<Arc<Stream>> {
        let slots = self.slots.lock().expect("hub poisoned");
        slots.get(channel).and_then(|s| s.borrow().clone())
    }

    /// Every live stream.
    pub fn live(&self) -> Vec<Arc<Stream>> {
        let slots = self.slots.lock().expect("hub poisoned");
        slots.values().filter_map(|s| s.borrow().clone()).collect()
    }

    /// Ends whatever is live on `channel` (a rotated key, an admin's kick).
    pub fn kick(&self, channel: &str) {
        let old = {
            let slots = self.slots.lock().expect("hub poisoned");
            slots.get(channel).and_then(|s| s.send_replace(None))
        };
        if let Some(old) = old {
            old.close();
        }
    }

    /// Ends `stream` if it is still its channel's live one (a publisher
    /// that has replaced it stays).
    pub fn end(&self, stream: &Arc<Stream>) {
        self.unpublish(stream);
    }

    /// Channels the hub holds a slot for (live or watched, plus any not yet
    /// pruned).
    pub fn slots(&self) -> usize {
        self.slots.lock().expect("hub poisoned").len()
    }

    fn unpublish(&self, stream: &Arc<Stream>) {
        let mut slots = self.slots.lock().expect("hub poisoned");
        if let Some(slot) = slots.get(stream.channel()) {
            let current = slot.borrow().as_ref().map(|s| s.id());
            if current == Some(stream.id()) {
                slot.send_replace(None);
            }
            // Forget channels nobody watches, so the map stays as small as
            // the set of live or watched channels.
            if slot.borrow().is_none() && slot.receiver_count() == 0 {
                slots.remove(stream.channel());
            }
        }
        drop(slots);
        stream.close();
    }
}

/// The right to write to one stream. Dropping it ends the stream.
pub struct Publisher {
    hub: Arc<Hub>,
    stream: Arc<Stream>,
}

impl Publisher {
    pub fn write(&self, unit: Unit) {
        self.stream.write(unit)
    }

    pub fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.hub.unpublish(&self.stream);
    }
}
