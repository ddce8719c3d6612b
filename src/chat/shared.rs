//! A room shared by the servers of a site (`--redis-url`): what happens in
//! it goes to its Redis stream, and every server, the one it happened on
//! included, applies it when it reads it back, so all members see one
//! order with the same ids.

use super::*;

/// Wait before reading the bus again after Redis failed.
const BUS_RETRY: Duration = Duration::from_millis(500);
/// Log lines about Redis being down, a minute.
static BUS_DOWN: crate::logs::Budget = crate::logs::Budget::new(6);

impl Rooms {
    /// Appends `entry` to the room's stream, from which every server
    /// applies it; without a bus, or when Redis cannot take it, applies it
    /// here only.
    pub(super) async fn share(&self, channel: &str, entry: Entry) {
        if let Some(bus) = self.bus() {
            match bus.publish(channel, &entry).await {
                Ok(()) => return,
                Err(e) => tracing::warn!(channel, "chat: applied on this server only: {e}"),
            }
        }
        self.apply(channel, None, entry);
    }

    /// [`Rooms::share`] from code that cannot wait.
    pub(super) fn share_soon(&self, channel: &str, entry: Entry) {
        if self.bus().is_none() {
            self.apply(channel, None, entry);
            return;
        }
        let (rooms, channel) = (self.clone(), channel.to_string());
        tokio::spawn(async move { rooms.share(&channel, entry).await });
    }

    /// What happened in `channel`'s room, for its members here (if it is
    /// open here); `at` is the entry's stream id, read from the bus.
    pub(super) fn apply(&self, channel: &str, at: Option<String>, entry: Entry) {
        let Some(room) = self.open_room(channel) else {
            return;
        };
        if let Some(at) = at {
            *room.cursor.lock().expect("room poisoned") = Some(at);
        }
        let mut st = room.state.lock().expect("room poisoned");
        match entry {
            Entry::Message { id, line } => {
                add_message(&room, &mut st, id, Line::from(line), Order::Arrival)
            }
            Entry::Delete { id } => {
                st.history.retain(|(i, _)| *i != id);
                let _ = room.tx.send(json_line(
                    serde_json::json!({"type": "delete", "id": id.to_string()}),
                ));
            }
            Entry::SlowMode { seconds } => {
                st.slow_mode_secs = seconds;
                let _ = room.tx.send(json_line(
                    serde_json::json!({"type": "slow_mode", "seconds": seconds}),
                ));
            }
            Entry::Event { line } => {
                let _ = room.tx.send(Line::from(line));
            }
        }
    }

    /// Reads every open room's stream and applies what it finds, until
    /// `stop`. Start it once with the bus set.
    pub async fn run_bus(self, stop: CancellationToken) {
        let Some(bus) = self.bus().cloned() else {
            return;
        };
        let mut conn = None;
        loop {
            if stop.is_cancelled() {
                return;
            }
            let rooms: Vec<(String, String)> = {
                let map = self.inner.rooms.lock().expect("rooms poisoned");
                map.values()
                    .filter_map(|r| Some((r.name.clone(), r.cursor.lock().ok()?.clone()?)))
                    .collect()
            };
            if rooms.is_empty() {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(crate::bus::READ_BLOCK) => continue,
                }
            }
            if conn.is_none() {
                match bus.reader().await {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        crate::log_limited!(BUS_DOWN, tracing::Level::WARN, "chat: redis: {e}");
                        tokio::time::sleep(BUS_RETRY).await;
                        continue;
                    }
                }
            }
            let c = conn.as_mut().expect("connected above");
            let read = tokio::select! {
                _ = stop.cancelled() => return,
                r = Bus::read(c, &rooms) => r,
            };
            match read {
                Ok(entries) => {
                    for (room, at, entry) in entries {
                        match entry {
                            Some(e) => self.apply(&room, Some(at), e),
                            None => {
                                if let Some(r) = self.open_room(&room) {
                                    *r.cursor.lock().expect("room poisoned") = Some(at);
                                }
                            }
                        }
                    }
                }
                Err(e) => {
                    crate::log_limited!(BUS_DOWN, tracing::Level::WARN, "chat: redis: {e}");
                    conn = None;
                    tokio::time::sleep(BUS_RETRY).await;
                }
            }
        }
    }
}

pub(super) fn unavailable(e: crate::bus::BusError) -> ChatError {
    crate::log_limited!(BUS_DOWN, tracing::Level::WARN, "chat: redis: {e}");
    ChatError::Unavailable
}
