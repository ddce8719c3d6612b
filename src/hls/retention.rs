//! Deleting recordings: the retention policy (`--retention-max-age-hours`,
//! `--retention-max-size-mb`) and the free-space floor (`--min-free-disk`,
//! see [`super::disk`]).
//!
//! A recording is deleted row first, then files: a crash in between leaves
//! a folder no row names, which nothing serves and the next start removes
//! ([`Recordings::remove_orphans`]); the other order would leave a row whose
//! recording is gone. Broadcasts in progress are never deleted.

use super::disk::{self, DISK_CHECK_EVERY};
use super::recorder::{sync_dir, unix_ms, Recordings};
use crate::db::BroadcastRow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// How often the retention policy runs (also after each broadcast).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

impl Recordings {
    /// Applies the retention policy every [`SWEEP_EVERY`] and after every
    /// broadcast, until shutdown.
    pub async fn sweep_forever(self: Arc<Self>, token: CancellationToken) {
        if self.cfg.retention_max_age.is_none() && self.cfg.retention_max_bytes.is_none() {
            return;
        }
        loop {
            self.sweep().await;
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(SWEEP_EVERY) => {}
                _ = self.sweep_now.notified() => {}
            }
        }
    }

    /// Deletes finished recordings, oldest first, past the max age or while
    /// all recordings together exceed the max size. Broadcasts in progress
    /// count towards the size but are never deleted.
    pub async fn sweep(&self) {
        let lock = match self.db.try_lock("retention").await {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                tracing::info!("retention: another process of this node is sweeping");
                return;
            }
            Err(e) => {
                tracing::warn!("retention: cannot take its lock: {e}");
                return;
            }
        };
        self.sweep_locked().await;
        lock.release().await;
    }

    async fn sweep_locked(&self) {
        let rows = match self.db.recorded_broadcasts().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("retention: cannot list broadcasts: {e}");
                return;
            }
        };
        let now = unix_ms(SystemTime::now());
        let mut total: u64 = rows.iter().map(|r| r.size_bytes.max(0) as u64).sum();
        for r in rows.iter().filter(|r| r.ended_at.is_some()) {
            let too_old = self
                .cfg
                .retention_max_age
                .is_some_and(|age| now - r.started_at > age.as_millis() as i64);
            let too_big = self.cfg.retention_max_bytes.is_some_and(|max| total > max);
            if !(too_old || too_big) {
                continue;
            }
            let reason = if too_old { "max-age" } else { "max-size" };
            if self.delete_recording(r, reason).await {
                total = total.saturating_sub(r.size_bytes.max(0) as u64);
            }
        }
    }

    /// Keeps free space above the floor, every [`DISK_CHECK_EVERY`] and
    /// whenever a recorder finds it reached, until shutdown.
    pub async fn watch_disk_forever(self: Arc<Self>, token: CancellationToken) {
        loop {
            self.enforce_floor().await;
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(DISK_CHECK_EVERY) => {}
                _ = self.disk.wake.notified() => {}
            }
        }
    }

    /// One round of the floor (see [`super::disk`]): prune the oldest
    /// finished recordings while free space is under the floor plus its
    /// margin; pause recording if it stays under the floor, resume once it
    /// is back above floor and margin.
    pub async fn enforce_floor(&self) {
        let d = self.disk.clone();
        let check = move || d.check();
        let Ok(Ok((mut space, floor))) = tokio::task::spawn_blocking(check.clone()).await else {
            return;
        };
        let resume_at = disk::resume_at(floor);
        if space.avail < resume_at {
            let rows = match self.db.recorded_broadcasts().await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("min-free-disk: cannot list recordings: {e}");
                    Vec::new()
                }
            };
            for r in rows.iter().filter(|r| r.ended_at.is_some()) {
                if !self.delete_recording(r, "min-free-disk").await {
                    continue;
                }
                match tokio::task::spawn_blocking(check.clone()).await {
                    Ok(Ok((s, _))) => space = s,
                    _ => break,
                }
                if space.avail >= resume_at {
                    break;
                }
            }
        }
        let mib = |b: u64| b >> 20;
        if space.avail < floor {
            if self.disk.set_paused(true) {
                tracing::warn!(
                    free_mib = mib(space.avail),
                    floor_mib = mib(floor),
                    event = "recording_paused",
                    "recording paused: free disk space is under --min-free-disk and no finished recording is left to delete; live streams go on"
                );
            }
        } else if space.avail >= resume_at && self.disk.set_paused(false) {
            tracing::info!(
                free_mib = mib(space.avail),
                floor_mib = mib(floor),
                event = "recording_resumed",
                "recording resumed: free disk space is back above --min-free-disk"
            );
        }
    }

    /// Deletes one finished recording, row first (see the module docs).
    /// Returns whether the row is gone.
    async fn delete_recording(&self, r: &BroadcastRow, reason: &'static str) -> bool {
        match self.delete(r, reason).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(
                    broadcast = r.id,
                    reason,
                    "cannot delete the recording's row: {e}"
                );
                false
            }
        }
    }

    /// Deletes a finished broadcast: its row, then its folder (see the
    /// module docs for the order). An error means the row is still there
    /// and nothing was removed; once the row is gone, a file that cannot
    /// be removed is logged and left for the next start.
    pub async fn delete(
        &self,
        r: &BroadcastRow,
        reason: &'static str,
    ) -> Result<(), crate::db::DbError> {
        self.db.delete_broadcast(r.id).await?;
        let dir = self.dir(r.id);
        let root = self.root.clone();
        let removed = tokio::task::spawn_blocking(move || {
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            sync_dir(&root)
        })
        .await;
        match removed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(
                broadcast = r.id,
                reason,
                "deleted the recording's row, but not all its files (removed at the next start): {e}"
            ),
            Err(e) => tracing::warn!(broadcast = r.id, "file deletion task failed: {e}"),
        }
        if let Some(store) = &self.archive {
            if let Err(e) = store.delete_prefix(&format!("recordings/{}", r.id)).await {
                tracing::warn!(
                    broadcast = r.id,
                    reason,
                    "deleted the recording's row, but not its copy in the object store: {e}"
                );
            }
        }
        tracing::info!(
            broadcast = r.id,
            channel = r.channel,
            size = r.size_bytes,
            reason,
            "deleted a recording"
        );
        Ok(())
    }

    /// Removes recording folders that no broadcast row names (left by a
    /// crash between a row's deletion and its files'). Only when the
    /// database answers: a folder is never removed on a guess.
    pub async fn remove_orphans(&self) {
        let root = self.root.clone();
        let names = tokio::task::spawn_blocking(move || -> Vec<i64> {
            let Ok(entries) = std::fs::read_dir(&root) else {
                return Vec::new();
            };
            entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .await
        .unwrap_or_default();
        for id in names {
            match self.db.broadcast(id).await {
                Ok(None) => {
                    let dir = self.dir(id);
                    match tokio::fs::remove_dir_all(&dir).await {
                        Ok(()) => tracing::info!(
                            broadcast = id,
                            "removed a recording folder without a row"
                        ),
                        Err(e) => {
                            tracing::warn!(broadcast = id, "cannot remove {}: {e}", dir.display())
                        }
                    }
                }
                Ok(Some(_)) => {}
                Err(e) => {
                    tracing::warn!("cannot check recording folders against the database: {e}");
                    return;
                }
            }
        }
    }
}
