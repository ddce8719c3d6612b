use super::stream::Stream;
use crate::media::Unit;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Units a reader may have waiting before it counts as too slow: about six
/// seconds of 30 fps video plus 48 kHz AAC. Past that the reader's queue is
/// emptied and it resumes at the next keyframe, so memory per reader stays
/// bounded whatever the consumer does.
pub const READER_QUEUE_CAP: usize = 512;
/// Bytes of payload a reader may have waiting: six seconds of a 40 Mbit/s
/// (4K) stream. Units are shared between readers, but a slow reader keeps
/// alive whatever it has not read; without this, a publisher sending huge
/// units would let one stalled reader pin gigabytes.
pub const READER_QUEUE_BYTES: usize = 32 << 20;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReaderStats {
    /// Units discarded because this reader fell behind.
    pub dropped: u64,
    /// How many times it fell behind.
    pub overflows: u64,
}

#[derive(Default)]
pub(super) struct Queue {
    pub(super) units: VecDeque<Arc<Unit>>,
    /// Payload bytes in `units`.
    pub(super) bytes: usize,
    /// Set after an overflow: everything is discarded until the next keyframe.
    pub(super) skipping: bool,
    pub(super) closed: bool,
    pub(super) stats: ReaderStats,
}

impl Queue {
    fn pop(&mut self) -> Option<Arc<Unit>> {
        let u = self.units.pop_front()?;
        self.bytes = self.bytes.saturating_sub(u.payload.len());
        Some(u)
    }
}

pub(super) struct Shared {
    pub(super) name: &'static str,
    /// This reader's bound on waiting payload bytes: [`READER_QUEUE_BYTES`]
    /// unless its egress asked for less.
    pub(super) max_bytes: usize,
    /// Counted in `onair_limit_hits_total` each time this reader overflows,
    /// when its egress named one: the moment it happens, since a stalled
    /// consumer may never read again to notice.
    pub(super) limit: Option<&'static str>,
    pub(super) queue: Mutex<Queue>,
    pub(super) notify: Notify,
}

impl Shared {
    pub(super) fn new(name: &'static str, max_bytes: usize, limit: Option<&'static str>) -> Self {
        Shared {
            name,
            max_bytes,
            limit,
            queue: Mutex::new(Queue::default()),
            notify: Notify::new(),
        }
    }

    /// Called by the publisher with the stream's lock held; never blocks.
    /// Returns the number of units discarded by this push, for the
    /// stream's aggregated warning.
    pub(super) fn push(&self, unit: &Arc<Unit>, primary_keyframe: bool) -> u64 {
        let mut q = self.queue.lock().expect("reader queue poisoned");
        let mut discarded = 0;
        if q.skipping {
            if !primary_keyframe {
                q.stats.dropped += 1;
                return 1;
            }
            q.skipping = false;
        }
        let size = unit.payload.len();
        if q.units.len() >= READER_QUEUE_CAP || q.bytes + size > self.max_bytes {
            discarded = q.units.len() as u64;
            q.units.clear();
            q.bytes = 0;
            q.stats.overflows += 1;
            if let Some(limit) = self.limit {
                crate::metrics::limit_hit(limit);
            }
            if !primary_keyframe {
                q.skipping = true;
                q.stats.dropped += discarded + 1;
                drop(q);
                return discarded + 1;
            }
            q.stats.dropped += discarded;
        }
        q.units.push_back(unit.clone());
        q.bytes += size;
        drop(q);
        self.notify.notify_one();
        discarded
    }

    pub(super) fn close(&self) {
        self.queue.lock().expect("reader queue poisoned").closed = true;
        self.notify.notify_one();
    }
}

/// A consumer of one [`Stream`]. Dropping it unsubscribes.
pub struct Reader {
    pub(super) shared: Arc<Shared>,
    pub(super) stream: Arc<Stream>,
}

impl Reader {
    /// The next unit, or `None` once the publisher has gone and the queue is
    /// drained.
    pub async fn recv(&mut self) -> Option<Arc<Unit>> {
        loop {
            let notified = self.shared.notify.notified();
            {
                let mut q = self.shared.queue.lock().expect("reader queue poisoned");
                if let Some(u) = q.pop() {
                    return Some(u);
                }
                if q.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// A unit if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Arc<Unit>> {
        self.shared
            .queue
            .lock()
            .expect("reader queue poisoned")
            .pop()
    }

    pub fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }

    pub fn stats(&self) -> ReaderStats {
        self.shared
            .queue
            .lock()
            .expect("reader queue poisoned")
            .stats
    }

    pub fn name(&self) -> &'static str {
        self.shared.name
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stream.unsubscribe(&self.shared);
    }
}
