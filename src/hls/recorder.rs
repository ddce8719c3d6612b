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
//! the DB row. fsync policy: segment files and the playlist are
//! `fdatasync`ed once per segment (~2 s) on the writer thread, which bounds
//! what a power cut (not a process crash) can lose; the page cache already
//! survives a killed process.
//!
//! File I/O runs on one thread per recording, fed through a bounded queue:
//! a slow or full disk never stalls the live path. A write error (disk
//! full) stops that recording with an error log, a `recording_stopped`
//! event in the log and a counter; live viewing goes on.

use super::fmp4::{self, AUDIO_TRACK_ID, VIDEO_TRACK_ID};
use super::segmenter::Event;
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
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// Writer queue depth, in segmenter events: about 20 s of parts, headroom
/// for a disk that stalls for a while before we give up on the recording.
const QUEUE: usize = 512;
/// How often the retention policy runs (also after each broadcast).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Recordings stopped by a write error since start (disk full...).
pub static RECORDINGS_FAILED: AtomicU64 = AtomicU64::new(0);

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub struct Recordings {
    db: Db,
    root: PathBuf,
    cfg: HlsConfig,
    sweep_now: tokio::sync::Notify,
}

impl Recordings {
    pub fn new(db: Db, root: PathBuf, cfg: HlsConfig) -> Self {
        Recordings {
            db,
            root,
            cfg,
            sweep_now: tokio::sync::Notify::new(),
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
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
        let row = match self
            .db
            .create_broadcast(&channel, title.as_deref(), started, on)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(
                    channel,
                    "cannot create the broadcast row, not recording: {e}"
                );
                return None;
            }
        };
        let dir = self.dir(row.id);
        if on {
            if let Err(e) = std::fs::create_dir_all(&dir).and_then(|_| {
                let mut f = File::create(dir.join("index.m3u8"))?;
                f.write_all(vod_header(self.cfg.segmenter().target_duration).as_bytes())?;
                f.sync_data()
            }) {
                tracing::error!(
                    channel,
                    broadcast = row.id,
                    event = "recording_stopped",
                    "recording not started: cannot write {}: {e}",
                    dir.display()
                );
                RECORDINGS_FAILED.fetch_add(1, Ordering::Relaxed);
                let _ = self.db.finish_broadcast(row.id, started, 0, 0).await;
                return None;
            }
        }
        let (tx, rx) = sync_channel(QUEUE);
        let writer = Writer {
            db: self.db.clone(),
            rt: tokio::runtime::Handle::current(),
            row: row.clone(),
            dir: dir.clone(),
            on,
            failed: false,
            playlist: None,
            segment: None,
            last_map: None,
            first: true,
            duration: 0.0,
            size: 0,
        };
        let done = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("rec-{}", row.id))
            .spawn(move || {
                writer.run(rx);
                let _ = done.0.send(());
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

    /// Finalizes broadcasts a previous run left open (crash, kill -9).
    pub async fn recover(&self) {
        let rows = match self.db.unfinished_broadcasts().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("cannot list unfinished broadcasts: {e}");
                return;
            }
        };
        for row in rows {
            let dir = self.dir(row.id);
            let td = self.cfg.segmenter().target_duration;
            let r = tokio::task::spawn_blocking(move || recover_dir(&dir, td)).await;
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
            let ended = row.started_at + duration_ms;
            match self
                .db
                .finish_broadcast(row.id, ended, duration_ms, size as i64)
                .await
            {
                Ok(()) => tracing::info!(
                    broadcast = row.id,
                    channel = row.channel,
                    duration_ms,
                    "finalized a broadcast left open by a crash"
                ),
                Err(e) => tracing::error!(broadcast = row.id, "cannot finalize: {e}"),
            }
        }
    }

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
            let dir = self.dir(r.id);
            if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(
                        broadcast = r.id,
                        "retention: cannot delete {}: {e}",
                        dir.display()
                    );
                    continue;
                }
            }
            if let Err(e) = self.db.delete_broadcast(r.id).await {
                tracing::warn!(broadcast = r.id, "retention: cannot delete the row: {e}");
                continue;
            }
            total = total.saturating_sub(r.size_bytes.max(0) as u64);
            tracing::info!(
                broadcast = r.id,
                channel = r.channel,
                reason = if too_old { "max-age" } else { "max-size" },
                "retention: deleted a recording"
            );
        }
    }

    /// The playlist to serve for broadcast `row`, or `None` when nothing was
    /// recorded. An unfinished one is served as EVENT (see the module docs).
    pub async fn playlist(&self, row: &BroadcastRow) -> Option<Bytes> {
        let text = tokio::fs::read_to_string(self.dir(row.id).join("index.m3u8"))
            .await
            .ok()?;
        if text.contains("#EXT-X-ENDLIST") {
            Some(Bytes::from(text))
        } else {
            Some(Bytes::from(text.replacen(
                "#EXT-X-PLAYLIST-TYPE:VOD",
                "#EXT-X-PLAYLIST-TYPE:EVENT",
                1,
            )))
        }
    }
}

fn vod_header(target_duration: u32) -> String {
    format!(
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:{target_duration}\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MEDIA-SEQUENCE:0\n"
    )
}

enum Command {
    Events(Vec<Event>),
    Finish,
}

/// The live side's handle on one broadcast's recording.
pub struct Recording {
    pub id: i64,
    channel: String,
    dir: PathBuf,
    on: bool,
    tx: Option<SyncSender<Command>>,
    done: Option<tokio::sync::oneshot::Receiver<()>>,
    stopped: bool,
    recordings: Arc<Recordings>,
}

impl Recording {
    /// Where the poster goes, when recording.
    pub fn poster_path(&self) -> Option<PathBuf> {
        self.on.then(|| self.dir.join("poster.jpg"))
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

    /// Ends the broadcast: the playlist gets EXT-X-ENDLIST, the row its end.
    pub async fn finish(mut self) {
        if let Some(tx) = self.tx.take() {
            // A full queue: block on the blocking pool, not here.
            let _ = tokio::task::spawn_blocking(move || tx.send(Command::Finish)).await;
        }
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
        self.recordings.sweep_now.notify_one();
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
    dir: PathBuf,
    on: bool,
    failed: bool,
    playlist: Option<File>,
    segment: Option<OpenSegment>,
    last_map: Option<u32>,
    first: bool,
    duration: f64,
    size: u64,
}

impl Writer {
    fn run(mut self, rx: Receiver<Command>) {
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
        self.finish();
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
                let path = self.dir.join(format!("init{}.mp4", init.id));
                let mut f = File::create(&path)?;
                f.write_all(&init.bytes)?;
                f.sync_data()?;
                self.size += init.bytes.len() as u64;
            }
            Event::SegmentStart {
                msn,
                init_id,
                discontinuity,
                ..
            } => {
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
                    discontinuity: *discontinuity && !self.first,
                });
                self.first = false;
            }
            Event::Part(p) => {
                if let Some(seg) = self.segment.as_mut() {
                    seg.file.write_all(&p.bytes)?;
                    self.size += p.bytes.len() as u64;
                }
            }
            Event::SegmentEnd { duration, .. } => {
                let Some(seg) = self.segment.take() else {
                    return Ok(());
                };
                seg.file.sync_data()?;
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

    fn finish(mut self) {
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
        if let Err(e) = self.block_on(self.db.finish_broadcast(id, ended, d, s)) {
            tracing::error!(broadcast = id, "cannot finish the broadcast row: {e}");
        }
        tracing::info!(
            channel = self.row.channel,
            broadcast = id,
            duration_ms = d,
            size = s,
            "broadcast ended"
        );
    }
}

/// Crash recovery of one folder: returns (duration in seconds, bytes).
fn recover_dir(dir: &Path, target_duration: u32) -> std::io::Result<(f64, u64)> {
    let playlist_path = dir.join("index.m3u8");
    let mut text = match std::fs::read_to_string(&playlist_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0.0, 0)),
        Err(e) => return Err(e),
    };
    if text.is_empty() {
        text = vod_header(target_duration);
        std::fs::write(&playlist_path, &text)?;
    }
    // A torn last line (crash in the middle of an append) is dropped by
    // appending a newline; parsers skip the stray fragment only if it is
    // a full line, so cut it instead.
    if !text.ends_with('\n') {
        let keep = text.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let f = OpenOptions::new().write(true).open(&playlist_path)?;
        f.set_len(keep as u64)?;
        text.truncate(keep);
    }
    let listed: std::collections::HashSet<&str> =
        text.lines().filter(|l| l.ends_with(".m4s")).collect();
    let mut duration: f64 = text
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .filter_map(|l| {
            l.trim_end_matches(',')
                .split(',')
                .next()?
                .parse::<f64>()
                .ok()
        })
        .sum();
    let last_map: Option<u32> = text
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\"init"))
        .filter_map(|l| l.strip_suffix(".mp4\"")?.parse().ok())
        .next_back();
    let mut segs: Vec<u64> = Vec::new();
    let mut inits: Vec<u32> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(n) = name.strip_prefix('s').and_then(|n| n.strip_suffix(".m4s")) {
            if let Ok(msn) = n.parse() {
                if !listed.contains(name.as_str()) {
                    segs.push(msn);
                }
            }
        } else if let Some(n) = name
            .strip_prefix("init")
            .and_then(|n| n.strip_suffix(".mp4"))
        {
            if let Ok(id) = n.parse() {
                inits.push(id);
            }
        }
    }
    segs.sort_unstable();
    let init_id = inits.iter().copied().max();
    let (track, timescale) = match init_id {
        Some(id) => primary_track(&std::fs::read(dir.join(format!("init{id}.mp4")))?),
        None => (VIDEO_TRACK_ID, crate::media::CLOCK_RATE as u32),
    };
    let mut lines = String::new();
    let mut map = last_map;
    for msn in segs {
        let path = dir.join(format!("s{msn}.m4s"));
        let data = std::fs::read(&path)?;
        let scan = fmp4::scan_fragments(&data, track);
        if scan.fragments == 0 {
            std::fs::remove_file(&path)?;
            continue;
        }
        if scan.complete_len < data.len() {
            OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len(scan.complete_len as u64)?;
        }
        let d = scan.duration as f64 / timescale.max(1) as f64;
        if let Some(id) = init_id {
            if map != Some(id) {
                if map.is_some() {
                    lines.push_str("#EXT-X-DISCONTINUITY\n");
                }
                lines.push_str(&format!("#EXT-X-MAP:URI=\"init{id}.mp4\"\n"));
                map = Some(id);
            }
        }
        lines.push_str(&format!("#EXTINF:{d:.5},\ns{msn}.m4s\n"));
        duration += d;
    }
    lines.push_str("#EXT-X-ENDLIST\n");
    let mut f = OpenOptions::new().append(true).open(&playlist_path)?;
    f.write_all(lines.as_bytes())?;
    f.sync_data()?;
    let mut size = 0;
    for entry in std::fs::read_dir(dir)? {
        size += entry?.metadata()?.len();
    }
    Ok((duration, size))
}

/// The track whose durations make the timeline (video when there is one),
/// and its timescale, read from an init segment we wrote: the video track's
/// `mdhd` comes first, the audio one (timescale = sample rate) last.
fn primary_track(init: &[u8]) -> (u32, u32) {
    let has_video = init.windows(4).any(|w| w == b"avc1");
    let timescales: Vec<u32> = init
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"mdhd")
        .filter_map(|(i, _)| {
            // size+type, then version/flags, creation, modification, timescale
            let at = i + 4 + 4 + 8;
            Some(u32::from_be_bytes(init.get(at..at + 4)?.try_into().ok()?))
        })
        .collect();
    if has_video {
        (VIDEO_TRACK_ID, crate::media::CLOCK_RATE as u32)
    } else {
        (AUDIO_TRACK_ID, timescales.last().copied().unwrap_or(48_000))
    }
}
