//! Recordings on disk: one folder per broadcast under
//! `<data-dir>/recordings/<id>/` with `init<N>.mp4`, `s<MSN>.m4s` and an
//! `index.m3u8` that is only ever appended to.
//!
//! The playlist: its header says `EXT-X-PLAYLIST-TYPE:VOD` from the first
//! byte, a segment's lines are appended when the segment completes, and
//! `EXT-X-ENDLIST` is appended at the end. The file is never rewritten, so
//! after the last append it is the finished VOD playlist. While the
//! broadcast is still going, `/vod/ID/index.m3u8` serves it with the type
//! changed to EVENT (a VOD playlist must not grow).
//!
//! Crash safety: every part (200 ms by default) is appended to its segment
//! file as soon as the segmenter makes it, so a `kill -9` loses at most the
//! part in progress. On the next start, [`Recordings::recover`] cuts each
//! unfinished segment file after its last complete fragment, appends the
//! segments the playlist does not list yet and `EXT-X-ENDLIST`, and closes
//! the DB row (see [`super::recovery`]).
//!
//! fsync policy: segment files and the playlist are `fdatasync`ed once per
//! segment (~2 s) on the writer thread, which bounds what a power cut (not
//! a process crash) can lose; the page cache already survives a killed
//! process. A new file's directory entry is only durable once its
//! directory is synced, so the folder is fsynced after each file is made
//! in it (init segments, each segment before the playlist names it, the
//! playlist itself), and `recordings/` after a broadcast's folder is made.
//!
//! Disk space: recordings keep the data folder above `--min-free-disk`
//! (see [`super::disk`]): the oldest finished ones are deleted, then
//! recording pauses, segment by segment, until there is room again.
//!
//! File I/O runs on one thread per recording, fed through a bounded queue:
//! a slow or full disk never stalls the live path. A write error (disk
//! full) stops that recording with an error log, a `recording_stopped`
//! event in the log and a counter; live viewing goes on.

use super::disk::Disk;
use super::segmenter::{Event, Init};
use super::HlsConfig;
use crate::db::{BroadcastRow, Db};
use crate::hub::Stream;
use bytes::Bytes;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::SystemTime;

/// Tries for the writes that close a broadcast's row, a pause apart; a row
/// still open after them is closed by the next start's recovery.
const FINISH_TRIES: u32 = 4;
const FINISH_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// Writer queue depth, in segmenter events: about 20 s of parts, headroom
/// for a disk that stalls for a while before we give up on the recording.
const QUEUE: usize = 512;
/// Recordings stopped by a write error since start (disk full...).
pub static RECORDINGS_FAILED: AtomicU64 = AtomicU64::new(0);

pub(super) fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Makes the entries of `dir` (files created, renamed or removed in it)
/// durable: fsync on the directory itself.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

pub struct Recordings {
    pub(super) db: Db,
    pub(super) root: PathBuf,
    pub(super) cfg: HlsConfig,
    pub(super) sweep_now: tokio::sync::Notify,
    pub(super) disk: Arc<Disk>,
    /// Where finished recordings are copied (see [`super::archive`]).
    pub(super) archive: Option<crate::store::Store>,
    pub(super) archive_now: tokio::sync::Notify,
}

impl Recordings {
    /// Recordings under `root`, kept above the free-space floor of the
    /// filesystem that holds `data_dir`, and copied to `archive` once
    /// finished.
    pub fn new(
        db: Db,
        root: PathBuf,
        data_dir: PathBuf,
        cfg: HlsConfig,
        archive: Option<crate::store::Store>,
    ) -> Self {
        let disk = Arc::new(Disk::new(data_dir, cfg.min_free_disk));
        Recordings {
            db,
            root,
            cfg,
            sweep_now: tokio::sync::Notify::new(),
            disk,
            archive,
            archive_now: tokio::sync::Notify::new(),
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The free-space floor and whether it paused recording.
    pub fn disk(&self) -> &Arc<Disk> {
        &self.disk
    }

    /// The folder of broadcast `id` (which need not exist).
    pub fn dir(&self, id: i64) -> PathBuf {
        self.root.join(id.to_string())
    }

    /// Starts recording `stream`, or returns `None` when recording is off
    /// (server flag, or the channel's setting) or the folder cannot be
    /// made. A broadcast row is written either way while the DB works.
    pub async fn start(self: &Arc<Self>, stream: &Arc<Stream>) -> Option<Recording> {
        let channel = stream.channel().to_string();
        let on = self.cfg.recording
            && match self.db.channel_recording(&channel).await {
                Ok(on) => on,
                Err(e) => {
                    tracing::warn!(channel, "cannot read the channel's recording setting: {e}");
                    true
                }
            };
        let started = unix_ms(stream.started_at());
        // The title at the time: later edits do not rename past broadcasts.
        let title = match self.db.channel_info(&channel).await {
            Ok(info) => info.map(|i| i.title).filter(|t| !t.is_empty()),
            Err(e) => {
                tracing::warn!(channel, "cannot read the channel's title: {e}");
                None
            }
        };
        // The row's id is minted here: recording starts whether or not the
        // database answers now (a locked SQLite, a Postgres restarting),
        // and the writer stores the row once it does.
        let row = crate::db::new_broadcast(&channel, title.as_deref(), started, on);
        let stored = match self.db.insert_broadcast(&row).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(
                    channel,
                    broadcast = row.id,
                    "the broadcast row is not stored yet, recording anyway: {e}"
                );
                false
            }
        };
        let dir = self.dir(row.id);
        if on {
            let made = std::fs::create_dir_all(&self.root)
                .and_then(|_| std::fs::create_dir(&dir))
                .and_then(|_| {
                    let mut f = File::create(dir.join("index.m3u8"))?;
                    f.write_all(vod_header(self.cfg.segmenter().target_duration).as_bytes())?;
                    f.sync_data()?;
                    sync_dir(&dir)?;
                    sync_dir(&self.root)
                });
            if let Err(e) = made {
                tracing::error!(
                    channel,
                    broadcast = row.id,
                    event = "recording_stopped",
                    "recording not started: cannot write {}: {e}",
                    dir.display()
                );
                RECORDINGS_FAILED.fetch_add(1, Ordering::Relaxed);
                if stored || self.db.insert_broadcast(&row).await.is_ok() {
                    let _ = self.db.finish_broadcast(row.id, started, 0, 0).await;
                }
                return None;
            }
        }
        let (tx, rx) = sync_channel(QUEUE);
        let writer = Writer {
            db: self.db.clone(),
            rt: tokio::runtime::Handle::current(),
            row: row.clone(),
            stored,
            dir: dir.clone(),
            on,
            failed: false,
            disk: self.disk.clone(),
            playlist: None,
            segment: None,
            skipping: false,
            gap: false,
            unwritten_init: None,
            last_map: None,
            first: true,
            duration: 0.0,
            size: 0,
        };
        let done = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("rec-{}", row.id))
            .spawn(move || {
                let _ = done.0.send(writer.run(rx));
            });
        if let Err(e) = thread {
            tracing::error!(channel, "cannot start the recorder thread: {e}");
            return None;
        }
        tracing::info!(
            channel,
            broadcast = row.id,
            recording = on,
            "broadcast started"
        );
        Some(Recording {
            id: row.id,
            channel,
            dir,
            on,
            tx: Some(tx),
            done: Some(done.1),
            stopped: false,
            recordings: self.clone(),
        })
    }

    /// Finalizes broadcasts a previous run left open (crash, kill -9);
    /// returns each one finalized, with what it kept.
    pub async fn recover(&self) -> Vec<(BroadcastRow, Finished)> {
        let mut done = Vec::new();
        let rows = match self.db.unfinished_broadcasts().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("cannot list unfinished broadcasts: {e}");
                return done;
            }
        };
        for row in rows {
            let dir = self.dir(row.id);
            let td = self.cfg.segmenter().target_duration;
            let r =
                tokio::task::spawn_blocking(move || super::recovery::recover_dir(&dir, td)).await;
            let (duration, size) = match r {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => {
                    tracing::warn!(broadcast = row.id, "recovery of the recording failed: {e}");
                    (row.duration_ms as f64 / 1000.0, row.size_bytes as u64)
                }
                Err(e) => {
                    tracing::warn!(broadcast = row.id, "recovery task failed: {e}");
                    continue;
                }
            };
            let duration_ms = (duration * 1000.0).round() as i64;
            let ended = row.started_at.saturating_add(duration_ms);
            match self
                .db
                .finish_broadcast(row.id, ended, duration_ms, size as i64)
                .await
            {
                Ok(()) => {
                    tracing::info!(
                        broadcast = row.id,
                        channel = row.channel,
                        duration_ms,
                        "finalized a broadcast left open by a crash"
                    );
                    let recorded = row.recorded && size > 0;
                    let f = Finished {
                        duration_ms,
                        size: size as i64,
                        recorded,
                    };
                    done.push((row, f));
                }
                Err(e) => tracing::error!(broadcast = row.id, "cannot finalize: {e}"),
            }
        }
        done
    }

    /// The playlist to serve for broadcast `row`, or `None` when nothing was
    /// recorded. An unfinished one is served as EVENT (see the module docs).
    pub async fn playlist(
        &self,
        row: &BroadcastRow,
    ) -> Result<Option<Bytes>, crate::store::StoreError> {
        let Some(bytes) = self.read(row.id, "index.m3u8").await? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&bytes);
        if text.contains("#EXT-X-ENDLIST") {
            Ok(Some(bytes))
        } else {
            Ok(Some(Bytes::from(text.replacen(
                "#EXT-X-PLAYLIST-TYPE:VOD",
                "#EXT-X-PLAYLIST-TYPE:EVENT",
                1,
            ))))
        }
    }
}

pub(super) fn vod_header(target_duration: u32) -> String {
    format!(
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:{target_duration}\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MEDIA-SEQUENCE:0\n"
    )
}

enum Command {
    Events(Vec<Event>),
    Finish,
}

/// A broadcast as it ended.
#[derive(Debug, Clone, Copy)]
pub struct Finished {
    pub duration_ms: i64,
    pub size: i64,
    /// A replayable recording was kept (recording was on and something
    /// was written).
    pub recorded: bool,
}

/// The live side's handle on one broadcast's recording.
pub struct Recording {
    pub id: i64,
    channel: String,
    dir: PathBuf,
    on: bool,
    tx: Option<SyncSender<Command>>,
    done: Option<tokio::sync::oneshot::Receiver<Finished>>,
    stopped: bool,
    recordings: Arc<Recordings>,
}

impl Recording {
    /// Recording is on for this broadcast but paused for lack of disk
    /// space (see [`super::disk`]).
    pub fn paused(&self) -> bool {
        self.on && !self.stopped && self.recordings.disk.paused()
    }

    /// Where the poster goes, when recording (and not paused for space).
    pub fn poster_path(&self) -> Option<PathBuf> {
        (self.on && !self.paused()).then(|| self.dir.join("poster.jpg"))
    }

    /// Hands segmenter events to the writer thread; never blocks.
    pub fn write(&mut self, events: &[Event]) {
        if !self.on || self.stopped {
            return;
        }
        let Some(tx) = &self.tx else { return };
        match tx.try_send(Command::Events(events.to_vec())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.stopped = true;
                RECORDINGS_FAILED.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    channel = self.channel,
                    broadcast = self.id,
                    event = "recording_stopped",
                    "recording stopped: the disk is too slow (writer queue full); live viewing goes on"
                );
            }
            Err(TrySendError::Disconnected(_)) => self.stopped = true,
        }
    }

    /// Ends the broadcast: the playlist gets EXT-X-ENDLIST, the row its
    /// end. Returns what was recorded (`None` if the writer thread died).
    pub async fn finish(mut self) -> Option<Finished> {
        if let Some(tx) = self.tx.take() {
            // A full queue: block on the blocking pool, not here.
            let _ = tokio::task::spawn_blocking(move || tx.send(Command::Finish)).await;
        }
        let finished = match self.done.take() {
            Some(done) => done.await.ok(),
            None => None,
        };
        self.recordings.sweep_now.notify_one();
        finished
    }
}

struct OpenSegment {
    file: File,
    name: String,
    init_id: u32,
    discontinuity: bool,
}

/// Runs on the recording's own thread.
struct Writer {
    db: Db,
    rt: tokio::runtime::Handle,
    row: BroadcastRow,
    /// The row is in the database; until it is, each segment tries again.
    stored: bool,
    dir: PathBuf,
    on: bool,
    failed: bool,
    disk: Arc<Disk>,
    playlist: Option<File>,
    segment: Option<OpenSegment>,
    /// The segment in progress is not recorded (no room on disk).
    skipping: bool,
    /// Segments were skipped: the next recorded one follows a gap.
    gap: bool,
    /// The newest init segment, while it waits for room on disk.
    unwritten_init: Option<Arc<Init>>,
    last_map: Option<u32>,
    first: bool,
    duration: f64,
    size: u64,
}

impl Writer {
    fn run(mut self, rx: Receiver<Command>) -> Finished {
        while let Ok(cmd) = rx.recv() {
            match cmd {
                Command::Events(events) => {
                    if self.on && !self.failed {
                        for e in &events {
                            if let Err(err) = self.event(e) {
                                self.fail(err);
                                break;
                            }
                        }
                    }
                }
                Command::Finish => break,
            }
        }
        self.finish()
    }

    fn fail(&mut self, e: std::io::Error) {
        self.failed = true;
        RECORDINGS_FAILED.fetch_add(1, Ordering::Relaxed);
        let full = e.raw_os_error() == Some(28); // ENOSPC
        tracing::error!(
            channel = self.row.channel,
            broadcast = self.row.id,
            event = "recording_stopped",
            disk_full = full,
            "recording stopped: {}: {e}; live viewing goes on",
            if full { "disk full" } else { "write failed" }
        );
        // The unfinished segment is not in the playlist: remove it, which
        // also frees room for the playlist's EXT-X-ENDLIST, so what was
        // recorded stays a valid, playable VOD.
        if let Some(seg) = self.segment.take() {
            drop(seg.file);
            let _ = std::fs::remove_file(self.dir.join(&seg.name));
        }
    }

    fn event(&mut self, e: &Event) -> std::io::Result<()> {
        match e {
            Event::Init(init) => {
                self.unwritten_init = Some(init.clone());
                if self.disk.room() {
                    self.write_init()?;
                }
            }
            Event::SegmentStart {
                msn,
                init_id,
                discontinuity,
                ..
            } => {
                if !self.disk.room() {
                    self.skip_segment();
                    return Ok(());
                }
                if self
                    .unwritten_init
                    .as_ref()
                    .is_some_and(|i| i.id == *init_id)
                {
                    self.write_init()?;
                }
                let name = format!("s{msn}.m4s");
                let file = OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .write(true)
                    .open(self.dir.join(&name))?;
                self.segment = Some(OpenSegment {
                    file,
                    name,
                    init_id: *init_id,
                    discontinuity: (*discontinuity || std::mem::take(&mut self.gap)) && !self.first,
                });
                self.first = false;
            }
            Event::Part(p) => {
                if self.skipping {
                    return Ok(());
                }
                if !self.disk.room() {
                    // Free space fell under the floor during the segment:
                    // drop it whole (it is not in the playlist yet).
                    if let Some(seg) = self.segment.take() {
                        drop(seg.file);
                        let _ = std::fs::remove_file(self.dir.join(&seg.name));
                    }
                    self.skip_segment();
                    return Ok(());
                }
                if let Some(seg) = self.segment.as_mut() {
                    seg.file.write_all(&p.bytes)?;
                    self.size += p.bytes.len() as u64;
                }
            }
            Event::SegmentEnd { duration, .. } => {
                if std::mem::take(&mut self.skipping) {
                    return Ok(());
                }
                let Some(seg) = self.segment.take() else {
                    return Ok(());
                };
                seg.file.sync_data()?;
                // The segment's entry is durable before the playlist names it.
                sync_dir(&self.dir)?;
                let mut lines = String::new();
                if seg.discontinuity {
                    lines.push_str("#EXT-X-DISCONTINUITY\n");
                }
                if self.last_map != Some(seg.init_id) {
                    lines.push_str(&format!("#EXT-X-MAP:URI=\"init{}.mp4\"\n", seg.init_id));
                    self.last_map = Some(seg.init_id);
                }
                lines.push_str(&format!("#EXTINF:{duration:.5},\n{}\n", seg.name));
                self.append(&lines)?;
                self.duration += duration;
                self.store_row();
                let (id, d, s) = (self.row.id, self.duration_ms(), self.size as i64);
                let db = self.db.clone();
                // Progress in the row is informative; a failure is not fatal.
                if let Err(e) = self.block_on(db.update_broadcast(id, d, s)) {
                    tracing::warn!(broadcast = id, "cannot update the broadcast row: {e}");
                }
            }
        }
        Ok(())
    }

    /// Leaves the segment in progress out of the recording: the next one
    /// recorded carries EXT-X-DISCONTINUITY.
    fn skip_segment(&mut self) {
        self.skipping = true;
        self.gap = true;
    }

    fn write_init(&mut self) -> std::io::Result<()> {
        let Some(init) = self.unwritten_init.take() else {
            return Ok(());
        };
        let mut f = File::create(self.dir.join(format!("init{}.mp4", init.id)))?;
        f.write_all(&init.bytes)?;
        f.sync_data()?;
        sync_dir(&self.dir)?;
        self.size += init.bytes.len() as u64;
        Ok(())
    }

    /// Runs a DB call from this (non-runtime) thread. If the runtime is
    /// already gone (the process is exiting abnormally), the row is left
    /// for the next start's recovery instead of panicking the thread.
    fn block_on<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, crate::db::DbError>>,
    ) -> Result<T, String> {
        let rt = self.rt.clone();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || rt.block_on(f))) {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err("the runtime is shutting down".into()),
        }
    }

    /// [`Self::block_on`] for the writes that close a broadcast, which
    /// must not be lost to a moment of contention (SQLite answering "database
    /// is locked" after its 5 s busy wait, on a machine whose disk is
    /// saturated): they are idempotent, so they are tried again. The
    /// recorder's own thread waits; nothing else does.
    fn retrying<T, F: std::future::Future<Output = Result<T, crate::db::DbError>>>(
        &self,
        mut op: impl FnMut() -> F,
    ) -> Result<T, String> {
        let mut tries = 1;
        loop {
            match self.block_on(op()) {
                Ok(v) => return Ok(v),
                Err(e) if tries >= FINISH_TRIES => return Err(e),
                Err(e) => {
                    tracing::warn!(
                        broadcast = self.row.id,
                        tries,
                        "closing the broadcast row failed, trying again: {e}"
                    );
                    tries += 1;
                    std::thread::sleep(FINISH_RETRY_PAUSE);
                }
            }
        }
    }

    /// Stores the broadcast's row if it is not yet: one try (the next
    /// segment tries again).
    fn store_row(&mut self) {
        if self.stored {
            return;
        }
        let (db, row) = (self.db.clone(), self.row.clone());
        match self.block_on(async move { db.insert_broadcast(&row).await }) {
            Ok(()) => {
                self.stored = true;
                tracing::info!(broadcast = self.row.id, "the broadcast row is stored");
            }
            Err(e) => tracing::warn!(broadcast = self.row.id, "the broadcast row waits: {e}"),
        }
    }

    fn duration_ms(&self) -> i64 {
        (self.duration * 1000.0).round() as i64
    }

    fn append(&mut self, text: &str) -> std::io::Result<()> {
        if self.playlist.is_none() {
            self.playlist = Some(
                OpenOptions::new()
                    .append(true)
                    .open(self.dir.join("index.m3u8"))?,
            );
        }
        let f = self.playlist.as_mut().expect("opened above");
        f.write_all(text.as_bytes())?;
        f.sync_data()
    }

    fn finish(mut self) -> Finished {
        if self.on && !self.failed {
            if let Err(e) = self.append("#EXT-X-ENDLIST\n") {
                self.fail(e);
            }
        } else if self.on {
            // After a failure, close the playlist if the disk still takes
            // a few bytes; a later start's recovery does it otherwise.
            let _ = self.append("#EXT-X-ENDLIST\n");
        }
        let (id, d, s) = (self.row.id, self.duration_ms(), self.size as i64);
        let ended = unix_ms(SystemTime::now());
        let db = self.db.clone();
        if !self.stored {
            let row = self.row.clone();
            match self.retrying(|| db.insert_broadcast(&row)) {
                Ok(()) => self.stored = true,
                // Its folder stays until the next start, which removes
                // folders no row names.
                Err(e) => tracing::error!(broadcast = id, "cannot store the broadcast row: {e}"),
            }
        }
        if let Err(e) = self.retrying(|| db.finish_broadcast(id, ended, d, s)) {
            tracing::error!(broadcast = id, "cannot finish the broadcast row: {e}");
        }
        let mut recorded = self.on;
        if self.on && s == 0 {
            // Nothing was ever written (a publisher that sent no picture):
            // a past broadcast with no recording, not an empty VOD.
            let db = self.db.clone();
            match self.retrying(|| db.unrecord_broadcast(id)) {
                Ok(()) => {
                    recorded = false;
                    let _ = std::fs::remove_dir_all(&self.dir);
                }
                Err(e) => tracing::error!(broadcast = id, "cannot update the broadcast row: {e}"),
            }
        }
        tracing::info!(
            channel = self.row.channel,
            broadcast = id,
            duration_ms = d,
            size = s,
            "broadcast ended"
        );
        Finished {
            duration_ms: d,
            size: s,
            recorded: recorded && s > 0,
        }
    }
}
