//! Finished recordings in the object store (`--object-store`), so any node
//! serves them.
//!
//! The origin records into its data directory as before: every part is
//! synced as it is written, so `kill -9` still loses at most one. Once a
//! broadcast has ended, its files are copied to `recordings/ID/NAME` in the
//! store, media first and the playlist last, and a mark in the folder says
//! the copy is whole. One task does the copying, for broadcasts as they end
//! and, at start and every [`RETRY_EVERY`], for any folder without its mark
//! (a crash or an unreachable bucket cut a copy short).
//!
//! Reading ([`Recordings::read`]) takes the local file first and the
//! store's when this node has none: the recording node serves from disk,
//! any other from the bucket. When the store is the data directory itself
//! (the default `file://`), the files already are where the store keeps
//! them, and nothing is copied.

use super::recorder::Recordings;
use super::request::{parse_file, File};
use crate::store::{Store, StoreError};
use bytes::Bytes;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// In a recording's folder: its copy in the store is whole.
pub const ARCHIVED_MARK: &str = ".archived";
/// How often folders without the mark are tried again.
pub const RETRY_EVERY: Duration = Duration::from_secs(60);
/// How often the store is searched for recordings no row names (and at
/// start): orphans come only from a deletion cut short.
pub const ORPHAN_SWEEP_EVERY: Duration = Duration::from_secs(60 * 60);

/// The store's key for file `name` of broadcast `id`.
pub fn key(id: i64, name: &str) -> String {
    format!("recordings/{id}/{name}")
}

/// The recording's files to copy, the playlist last (a reader that finds
/// the playlist finds everything it names). Only names a recording is made
/// of: temporary files and the mark stay behind.
fn files_to_copy(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| {
            matches!(
                parse_file(n),
                Some(File::Init(_) | File::Segment(_) | File::Poster)
            )
        })
        .collect();
    names.sort();
    if dir.join("index.m3u8").exists() {
        names.push("index.m3u8".into());
    }
    Ok(names)
}

impl Recordings {
    /// The store recordings are copied to; `None` when they stay where they
    /// are recorded.
    pub fn archive(&self) -> Option<&Store> {
        self.archive.as_ref()
    }

    /// File `name` of broadcast `id`: this node's copy, else the store's.
    pub async fn read(&self, id: i64, name: &str) -> Result<Option<Bytes>, StoreError> {
        match tokio::fs::read(self.dir(id).join(name)).await {
            Ok(b) => return Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        match &self.archive {
            Some(store) => store.get(&key(id, name)).await,
            None => Ok(None),
        }
    }

    /// Copies broadcast `id`'s folder to the store and marks it. Returns
    /// the number of files copied.
    async fn copy_to_store(&self, store: &Store, id: i64) -> Result<usize, StoreError> {
        let dir = self.dir(id);
        let listed = dir.clone();
        let names = tokio::task::spawn_blocking(move || files_to_copy(&listed))
            .await
            .map_err(std::io::Error::other)??;
        for name in &names {
            let bytes = tokio::fs::read(dir.join(name)).await?;
            store.put(&key(id, name), Bytes::from(bytes)).await?;
        }
        tokio::fs::write(dir.join(ARCHIVED_MARK), b"").await?;
        Ok(names.len())
    }

    /// Asks the archiver to look for finished recordings now.
    pub(super) fn archive_soon(&self) {
        self.archive_now.notify_one();
    }

    /// Copies every finished recording of this node that has no mark, now,
    /// at each [`Recordings::archive_soon`] and every [`RETRY_EVERY`].
    pub async fn archive_forever(self: Arc<Self>, token: CancellationToken) {
        let Some(store) = self.archive.clone() else {
            return;
        };
        let mut swept: Option<std::time::Instant> = None;
        loop {
            self.archive_pending(&store, &token).await;
            if swept.is_none_or(|t| t.elapsed() >= ORPHAN_SWEEP_EVERY) {
                swept = Some(std::time::Instant::now());
                self.remove_stored_orphans(&store).await;
            }
            tokio::select! {
                _ = token.cancelled() => return,
                _ = self.archive_now.notified() => {}
                _ = tokio::time::sleep(RETRY_EVERY) => {}
            }
        }
    }

    /// Removes from the store every recording no broadcast row names: a
    /// deletion cut short after its row went (a crash, the bucket
    /// unreachable), or a copy still running when its broadcast was
    /// deleted. Any node may remove any such recording: without a row,
    /// nothing serves it.
    pub async fn remove_stored_orphans(&self, store: &Store) -> usize {
        let names = match store.list_dirs("recordings").await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("archive: cannot list the stored recordings: {e}");
                return 0;
            }
        };
        let mut removed = 0;
        for id in names.iter().filter_map(|n| n.parse::<i64>().ok()) {
            match self.db.broadcast(id).await {
                Ok(None) => match store.delete_prefix(&format!("recordings/{id}")).await {
                    Ok(()) => {
                        removed += 1;
                        tracing::info!(broadcast = id, "removed a stored recording without a row");
                    }
                    Err(e) => {
                        tracing::warn!(broadcast = id, "cannot remove a stored recording: {e}")
                    }
                },
                Ok(Some(_)) => {}
                Err(e) => {
                    tracing::warn!("archive: cannot read the broadcasts: {e}");
                    return removed;
                }
            }
        }
        removed
    }

    async fn archive_pending(&self, store: &Store, token: &CancellationToken) {
        let root = self.root.clone();
        let ids = tokio::task::spawn_blocking(move || -> Vec<i64> {
            let Ok(entries) = std::fs::read_dir(&root) else {
                return Vec::new();
            };
            entries
                .filter_map(|e| {
                    let e = e.ok()?;
                    let id = e.file_name().to_str()?.parse().ok()?;
                    (!e.path().join(ARCHIVED_MARK).exists()).then_some(id)
                })
                .collect()
        })
        .await
        .unwrap_or_default();
        for id in ids {
            if token.is_cancelled() {
                return;
            }
            // Only what has ended: a live recording still grows.
            match self.db.broadcast(id).await {
                Ok(Some(row)) if row.ended_at.is_some() => {}
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!("archive: cannot read the broadcasts: {e}");
                    return;
                }
            }
            match self.copy_to_store(store, id).await {
                Ok(n) => {
                    crate::metrics::recording_archived();
                    tracing::info!(
                        broadcast = id,
                        files = n,
                        "recording copied to the object store"
                    )
                }
                Err(e) => {
                    crate::metrics::recording_archive_failed();
                    tracing::warn!(
                        broadcast = id,
                        "cannot copy the recording to the object store (tried again later): {e}"
                    );
                    // The store is likely down: the others can wait too.
                    return;
                }
            }
        }
    }
}
