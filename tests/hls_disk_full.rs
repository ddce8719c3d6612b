//! A disk that fills up, on a real 64 MiB tmpfs holding the data folder
//! (database included), with the default `--min-free-disk` (5 % or 1 GiB,
//! never under 16 MiB: here 16 MiB):
//! - under the floor plus its margin, the oldest finished recording is
//!   deleted, row and folder together;
//! - under the floor with nothing left to delete, recording pauses, the
//!   dashboard health says so, the database still takes writes;
//! - with room again, recording resumes after a marked gap;
//! - live viewers (a decoding WebRTC viewer and an LL-HLS player) keep
//!   playing throughout, and what was recorded stays a playable VOD.
//!
//! Mounting needs root (CAP_SYS_ADMIN). Without it the test is skipped
//! with a note, except under `CI=true`, where that is a failure.

mod common;
mod hls_util;

use common::victim::Victim;
use common::{api, bearer, ffmpeg_publish_sized, get, signup, wait_for, TestServer};
use hls_util::{assert_ffmpeg_decodes, parse};
use onair::hls::disk::{self, space};
use onair::hls::recorder::RECORDINGS_FAILED;
use onair::hls::RECORDING_PAUSED_WARNING;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs(dir))
    }

    /// A tmpfs, or `None` (skip) where mounting is not allowed; under CI a
    /// missing capability fails the test instead.
    fn mount_or_skip(size: &str) -> Option<Tmpfs> {
        match Tmpfs::mount(size) {
            Ok(fs) => Some(fs),
            Err(e) => {
                let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
                assert!(!ci, "CI=true: cannot mount a tmpfs ({e}); CI runs as root");
                eprintln!("SKIPPED: cannot mount a tmpfs here ({e}); run as root");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

/// A file that takes the free space of the tmpfs down to `avail` bytes.
struct Ballast(PathBuf);

impl Ballast {
    fn leave(&self, avail: u64) {
        let now = space(self.0.parent().unwrap()).unwrap().avail;
        if now > avail {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.0)
                .unwrap();
            let chunk = vec![0x5au8; 1 << 16];
            let mut left = now - avail;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                f.write_all(&chunk[..n]).unwrap();
                left -= n as u64;
            }
            f.sync_all().unwrap();
        }
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

async fn health_warnings(srv: &TestServer, admin: &str) -> Vec<String> {
    let r = api(
        srv.http,
        "GET",
        "/api/channels/victim/health",
        &[("Authorization", &bearer(admin))],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(|s| Some(s.as_str()?.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

async fn broadcast_row(srv: &TestServer, id: i64) -> Option<onair::db::BroadcastRow> {
    srv.db.broadcast(id).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_floor_prunes_then_pauses_recording_and_live_goes_on() {
    let Some(fs) = Tmpfs::mount_or_skip("64m") else {
        return;
    };
    let data = fs.0.path().to_path_buf();
    let srv = TestServer::start_with(|c| {
        c.data_dir = data.clone();
        c.database_url = format!("sqlite://{}", data.join("onair.db").display());
    })
    .await;
    let failed_before = RECORDINGS_FAILED.load(Ordering::Relaxed);
    let rec = data.join("recordings");
    let total = space(&data).unwrap().total;
    let floor = disk::floor(None, total);
    let resume_at = disk::resume_at(floor);
    assert_eq!(
        floor,
        disk::DB_RESERVE,
        "the default floor on a 64 MiB disk"
    );
    let admin = signup(srv.http, "operator").await;
    let admin_id = srv
        .db
        .credentials("operator")
        .await
        .unwrap()
        .unwrap()
        .user
        .id;
    srv.db
        .set_role(admin_id, onair::db::Role::Admin)
        .await
        .unwrap();

    // An old, finished recording.
    let mut ff = ffmpeg_publish_sized(&srv.rtmp_url(&srv.key), 4, "640x360", &["-bf", "0"]);
    let _ = ff.wait().await;
    let mut old = None;
    wait_for("the old broadcast to end", Duration::from_secs(20), || {
        old = futures_lite_block(srv.db.broadcasts("demo", None, 1));
        old.as_ref()
            .and_then(|r| r.first())
            .is_some_and(|b| b.ended_at.is_some())
    })
    .await;
    let old = old.unwrap().remove(0);
    let old_dir = rec.join(old.id.to_string());
    assert!(
        files(&old_dir).iter().any(|f| f.ends_with(".m4s")),
        "{:?}",
        files(&old_dir)
    );
    eprintln!("old recording {}: {} bytes", old.id, old.size_bytes);

    // The victim goes live (recorded too), with an LL-HLS player beside its
    // WebRTC viewer.
    let victim = Victim::start(&srv, 24).await;
    let measure_from = Instant::now();
    let addr = srv.http;
    let hls_viewer = tokio::spawn(async move {
        onair_loadtest::hls::watch(
            addr,
            "/hls/victim/index.m3u8",
            Duration::from_secs(24),
            "hls-victim".into(),
            Some(measure_from),
        )
        .await
    });
    let ballast = Ballast(data.join("ballast"));

    // 1. Just under the floor's margin: the old recording goes, row and
    //    folder; recording goes on.
    ballast.leave(resume_at - (64 << 10));
    let t = Instant::now();
    while broadcast_row(&srv, old.id).await.is_some() || old_dir.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "old recording not pruned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("pruned the old recording after {:?}", t.elapsed());
    let broadcasts = srv.db.broadcasts("victim", None, 1).await.unwrap();
    let live_id = broadcasts[0].id;
    let live_dir = rec.join(live_id.to_string());
    assert!(health_warnings(&srv, &admin).await.is_empty());

    // 2. Under the floor, nothing left to delete: recording pauses, the
    //    dashboard says so, the database still takes writes.
    ballast.leave(floor - (1 << 20));
    let t = Instant::now();
    while !health_warnings(&srv, &admin)
        .await
        .iter()
        .any(|w| w == RECORDING_PAUSED_WARNING)
    {
        assert!(t.elapsed() < Duration::from_secs(5), "no pause warning");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("paused after {:?}", t.elapsed());
    let r = api(
        srv.http,
        "POST",
        "/api/auth/register",
        &[],
        Some(&serde_json::json!({"username": "carol", "password": common::password_of("carol")})),
    )
    .await;
    assert_eq!(
        r.status,
        201,
        "the database writes while paused: {}",
        r.text()
    );
    // Let the segment in progress end, then nothing new is recorded.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let segs = |d: &Path| files(d).into_iter().filter(|f| f.ends_with(".m4s")).count();
    let during = segs(&live_dir);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(segs(&live_dir), during, "no segment recorded while paused");
    assert!(space(&data).unwrap().avail >= floor - (1 << 20) - (512 << 10));

    // 3. Room again: recording resumes.
    std::fs::remove_file(&ballast.0).unwrap();
    let t = Instant::now();
    while !health_warnings(&srv, &admin).await.is_empty() || segs(&live_dir) <= during {
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "recording did not resume"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("resumed after {:?}", t.elapsed());

    // The victim played through all of it, over WebRTC and LL-HLS.
    let report = victim.finish().await;
    report.assert_kept_playing("disk filled to the floor while recording");
    let hls = hls_viewer.await.unwrap();
    println!(
        "LL-HLS victim: {} parts, {} errors, {} stalls, longest gap {} ms",
        hls.parts, hls.errors, hls.stalls, hls.longest_gap_ms
    );
    assert_eq!(hls.errors, 0, "{:?}", hls.first_error);
    assert_eq!(hls.stalls, 0, "LL-HLS victim stalled: {hls:?}");
    assert_eq!(
        RECORDINGS_FAILED.load(Ordering::Relaxed),
        failed_before,
        "no write error: the floor kept recording away from a full disk"
    );

    // What was recorded is a closed VOD with a marked gap, every segment
    // there and decodable.
    wait_for(
        "the victim's broadcast to end",
        Duration::from_secs(20),
        || {
            futures_lite_block(srv.db.broadcast(live_id))
                .flatten()
                .is_some_and(|b| b.ended_at.is_some())
        },
    )
    .await;
    let r = get(srv.http, &format!("/vod/{live_id}/index.m3u8")).await;
    assert_eq!(r.status, 200);
    let p = parse(&r.text());
    assert!(p.endlist, "{}", r.text());
    assert!(
        p.segments.iter().skip(1).any(|s| s.discontinuity),
        "the gap is marked: {}",
        r.text()
    );
    for s in &p.segments {
        assert!(live_dir.join(s.uri.as_ref().unwrap()).exists(), "{s:?}");
    }
    assert_ffmpeg_decodes(
        &format!("http://{}/vod/{live_id}/index.m3u8", srv.http),
        None,
        None,
    )
    .await;
    // Pruned means gone everywhere, and nothing is left behind.
    assert!(
        get(srv.http, &format!("/vod/{}/index.m3u8", old.id))
            .await
            .status
            == 404
    );
    let dirs = files(&rec);
    assert_eq!(dirs, vec![live_id.to_string()], "{dirs:?}");
    srv.stop().await;
    drop(fs);
}

/// Runs a DB future to completion from a synchronous `wait_for` closure.
fn futures_lite_block<T>(
    f: impl std::future::Future<Output = Result<T, onair::db::DbError>>,
) -> Option<T> {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f)).ok()
}
