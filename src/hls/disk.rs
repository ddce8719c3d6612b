//! The data folder's free-space floor, `--min-free-disk`: recordings never
//! take the disk below it.
//!
//! - Every [`DISK_CHECK_EVERY`] (and at once when a recorder finds the
//!   floor reached), free space is read with `statvfs`. Once it is under
//!   the floor plus an eighth of it, the oldest finished recordings are
//!   deleted (row first, then files) until it is back above that.
//! - If nothing is left to delete and free space is under the floor,
//!   recording pauses: recorders skip whole segments (the recording gets a
//!   gap marked EXT-X-DISCONTINUITY) and the stream's dashboard health
//!   shows a warning; the log says so once. Recording resumes when free
//!   space is back above the floor plus an eighth of it (the margin keeps
//!   a disk that hovers at the floor from flapping). Live LL-HLS is served
//!   from memory and goes on either way.
//! - Each recorder also reads free space before every part it writes, so
//!   between two checks a recording overshoots the floor by at most one
//!   part.
//! - The database (SQLite's file, its WAL and temporary files) lives in the
//!   same folder and writes rows of a few KB; the floor never goes below
//!   [`DB_RESERVE`], so the database always keeps room to write.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often free space is checked: at 10 Mbit/s a recording writes
/// 1.25 MB a second, far less than the margin above the floor.
pub const DISK_CHECK_EVERY: Duration = Duration::from_secs(1);
/// The default floor: 5 % of the filesystem...
pub const DEFAULT_FLOOR_PERCENT: f64 = 5.0;
/// ...or 1 GiB, whichever is smaller.
pub const DEFAULT_FLOOR_MAX: u64 = 1 << 30;
/// The floor is never lower than this: SQLite checkpoints its WAL at 1000
/// pages (4 MiB at the default page size), so 16 MiB leaves the database
/// room for its WAL four times over, and for its temporary files.
pub const DB_RESERVE: u64 = 16 << 20;

/// `--min-free-disk`: a share of the filesystem or a size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MinFreeDisk {
    Percent(f64),
    Bytes(u64),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad --min-free-disk {0:?}: expected a percentage (5%) or a size (2GiB, 500MB, 1073741824)"
)]
pub struct BadMinFreeDisk(pub String);

impl FromStr for MinFreeDisk {
    type Err = BadMinFreeDisk;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadMinFreeDisk(s.to_string());
        let t = s.trim();
        if let Some(p) = t.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            return if (0.0..=100.0).contains(&p) {
                Ok(MinFreeDisk::Percent(p))
            } else {
                Err(bad())
            };
        }
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: f64 = num.parse().map_err(|_| bad())?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            "t" | "tb" => 1_000_000_000_000,
            "tib" => 1 << 40,
            _ => return Err(bad()),
        };
        let bytes = n * mult as f64;
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
            return Err(bad());
        }
        Ok(MinFreeDisk::Bytes(bytes as u64))
    }
}

impl serde::Serialize for MinFreeDisk {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MinFreeDisk::Percent(p) => s.serialize_str(&format!("{p}%")),
            MinFreeDisk::Bytes(b) => s.serialize_str(&b.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for MinFreeDisk {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The floor in bytes on a filesystem of `total` bytes (`None`: the
/// default, 5 % or 1 GiB, whichever is smaller).
pub fn floor(spec: Option<MinFreeDisk>, total: u64) -> u64 {
    let share = |p: f64| (total as f64 * p / 100.0) as u64;
    let f = match spec {
        None => share(DEFAULT_FLOOR_PERCENT).min(DEFAULT_FLOOR_MAX),
        Some(MinFreeDisk::Percent(p)) => share(p),
        Some(MinFreeDisk::Bytes(b)) => b,
    };
    f.max(DB_RESERVE)
}

/// Where recording resumes (and pruning aims): an eighth above the floor.
pub fn resume_at(floor: u64) -> u64 {
    floor.saturating_add(floor / 8)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Bytes an unprivileged process may still write.
    pub avail: u64,
    pub total: u64,
}

/// Free space of the filesystem holding `path`.
pub fn space(path: &Path) -> std::io::Result<Space> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly
    // sized, writable statvfs the call fills in.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let frsize = st.f_frsize as u64;
    Ok(Space {
        avail: (st.f_bavail as u64).saturating_mul(frsize),
        total: (st.f_blocks as u64).saturating_mul(frsize),
    })
}

/// The floor's state, shared by the recorders and the task that enforces
/// it.
pub struct Disk {
    path: PathBuf,
    spec: Option<MinFreeDisk>,
    paused: AtomicBool,
    /// Wakes the enforcing task (a recorder found the floor reached).
    pub(super) wake: tokio::sync::Notify,
}

impl Disk {
    pub fn new(path: PathBuf, spec: Option<MinFreeDisk>) -> Disk {
        Disk {
            path,
            spec,
            paused: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// (free space, floor) now.
    pub fn check(&self) -> std::io::Result<(Space, u64)> {
        let s = space(&self.path)?;
        Ok((s, floor(self.spec, s.total)))
    }

    /// Recording is paused for lack of space.
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// Sets the pause; returns whether it changed.
    pub(super) fn set_paused(&self, paused: bool) -> bool {
        self.paused.swap(paused, Ordering::Relaxed) != paused
    }

    /// Whether a recorder may write a part now: not paused, and free space
    /// at or above the floor. An unreadable filesystem does not stop
    /// recording (a write error would). Below the floor, the enforcing
    /// task is woken to make room.
    pub fn room(&self) -> bool {
        if self.paused() {
            return false;
        }
        match self.check() {
            Ok((s, floor)) if s.avail < floor => {
                self.wake.notify_one();
                false
            }
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_values_parse() {
        let ok = [
            ("5%", MinFreeDisk::Percent(5.0)),
            ("0.5 %", MinFreeDisk::Percent(0.5)),
            ("100%", MinFreeDisk::Percent(100.0)),
            ("2GiB", MinFreeDisk::Bytes(2 << 30)),
            ("1.5GiB", MinFreeDisk::Bytes(3 << 29)),
            ("500MB", MinFreeDisk::Bytes(500_000_000)),
            ("64mib", MinFreeDisk::Bytes(64 << 20)),
            ("1073741824", MinFreeDisk::Bytes(1 << 30)),
            ("0", MinFreeDisk::Bytes(0)),
        ];
        for (s, want) in ok {
            assert_eq!(s.parse::<MinFreeDisk>(), Ok(want), "{s}");
        }
        for s in [
            "",
            "%",
            "-1%",
            "101%",
            "5 parsecs",
            "1e3GB",
            "GiB",
            "-5GiB",
            "1.2.3MB",
        ] {
            assert!(s.parse::<MinFreeDisk>().is_err(), "{s}");
        }
    }

    #[test]
    fn the_default_floor_is_5_percent_or_1_gib_and_never_below_the_db_reserve() {
        let gib = 1u64 << 30;
        assert_eq!(floor(None, 10 * gib), gib / 2);
        assert_eq!(floor(None, 100 * gib), gib);
        assert_eq!(floor(None, 100 << 20), DB_RESERVE);
        assert_eq!(floor(Some(MinFreeDisk::Percent(10.0)), 10 * gib), gib);
        assert_eq!(floor(Some(MinFreeDisk::Bytes(0)), 10 * gib), DB_RESERVE);
        assert_eq!(resume_at(8 * gib), 9 * gib);
    }

    #[test]
    fn statvfs_reads_the_data_folder() {
        let dir = tempfile::tempdir().unwrap();
        let s = space(dir.path()).unwrap();
        assert!(s.total > 0 && s.avail <= s.total, "{s:?}");
        assert!(space(&dir.path().join("missing")).is_err());
    }
}
