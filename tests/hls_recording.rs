//! Recordings: every broadcast becomes a DB row and a VOD playlist on disk
//! that ffprobe plays; audio-only streams; per-server/per-channel switches;
//! retention.

mod common;
mod hls_util;

use common::{ffmpeg_publish, get, TestServer};
use hls_util::{
    assert_ffmpeg_decodes, check_rules, cross_origin_playlist, ffprobe, parse, wait_for_playlist,
};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

fn ffmpeg_audio_only(url: &str, secs: u32) -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &secs.to_string()])
        .args([
            "-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-f", "flv", url,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg")
}

/// Where broadcast `id`'s recording lives on disk.
fn recording_dir(srv: &TestServer, id: i64) -> std::path::PathBuf {
    srv.dir.path().join("recordings").join(id.to_string())
}

async fn broadcasts(srv: &TestServer, query: &str) -> serde_json::Value {
    let r = get(srv.http, &format!("/api/channels/demo/broadcasts{query}")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Waits until the newest broadcast has ended; returns it.
async fn wait_ended(srv: &TestServer, count: usize) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let b = broadcasts(srv, "").await;
        let items = b["items"].as_array().unwrap().clone();
        if items.len() >= count && items.iter().all(|i| !i["ended_at"].is_null()) {
            return items[0].clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "broadcast never ended: {b}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_is_recorded_and_replays() {
    let srv = TestServer::start().await;
    let patch = onair::db::ChannelPatch {
        title: Some("Evening show".into()),
        ..Default::default()
    };
    srv.db.update_channel("demo", &patch).await.unwrap();
    let mut ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 7);
    wait_for_playlist(srv.http, "demo").await;
    // While live: the row has no end, the recording is served as EVENT.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let live = broadcasts(&srv, "").await;
    let item = &live["items"][0];
    assert!(item["ended_at"].is_null(), "{live}");
    assert_eq!(item["live"], true);
    let id = common::json_id(&item["id"]);
    let r = get(srv.http, &format!("/vod/{id}/index.m3u8")).await;
    assert_eq!(r.status, 200);
    let p = parse(&r.text());
    assert_eq!(p.playlist_type.as_deref(), Some("EVENT"), "{}", r.text());
    assert!(!p.endlist);

    ff.wait().await.expect("ffmpeg ran");
    let item = wait_ended(&srv, 1).await;
    eprintln!("broadcast: {item}");
    assert_eq!(common::json_id(&item["id"]), id);
    assert_eq!(item["channel"], "demo");
    assert_eq!(item["title"], "Evening show", "the title at the time");
    let duration = item["duration_ms"].as_i64().unwrap();
    assert!((5500..=7600).contains(&duration), "duration_ms {duration}");
    assert!(item["size_bytes"].as_i64().unwrap() > 100_000, "{item}");
    assert!(item["ended_at"].as_i64().unwrap() >= item["started_at"].as_i64().unwrap());
    assert_eq!(item["playlist"], format!("/vod/{id}/index.m3u8"));

    let r = cross_origin_playlist(srv.http, &format!("/vod/{id}/index.m3u8")).await;
    let text = r.text();
    let p = parse(&text);
    check_rules(&p);
    assert_eq!(p.playlist_type.as_deref(), Some("VOD"), "{text}");
    assert!(p.endlist, "{text}");
    let sum: f64 = p.segments.iter().filter_map(|s| s.duration).sum();
    assert!(
        (sum * 1000.0 - duration as f64).abs() < 50.0,
        "playlist {sum} s vs row {duration} ms"
    );
    // Every segment and init it names is there.
    for s in &p.segments {
        let r = get(srv.http, &format!("/vod/{id}/{}", s.uri.as_ref().unwrap())).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("video/mp4"));
    }
    let (streams, dur) = ffprobe(&format!("http://{}/vod/{id}/index.m3u8", srv.http)).await;
    assert!(
        streams.contains(&("video".into(), "h264".into(), 1280, 720)),
        "{streams:?}"
    );
    assert!(streams.iter().any(|s| s.1 == "aac"), "{streams:?}");
    let dur = dur.expect("VOD duration");
    assert!(
        (dur - sum).abs() < 0.5,
        "ffprobe duration {dur} vs playlist {sum}"
    );
    // Seeking: ffmpeg decodes 1 s from the middle.
    let url = format!("http://{}/vod/{id}/index.m3u8", srv.http);
    assert_ffmpeg_decodes(&url, Some("3"), Some("1")).await;
    // The poster.
    let r = get(srv.http, &format!("/vod/{id}/poster.jpg")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert_eq!(&r.body[..2], &[0xff, 0xd8]);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_only_stream_plays_live_and_recorded() {
    let srv = TestServer::start().await;
    let mut ff = ffmpeg_audio_only(&srv.rtmp_url(&srv.key), 7);
    let text = wait_for_playlist(srv.http, "demo").await;
    let p = parse(&text);
    check_rules(&p);
    assert!(
        p.segments[0].parts[0].independent,
        "audio parts are independent: {text}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let r = get(srv.http, "/hls/demo/index.m3u8").await;
    let p = parse(&r.text());
    check_rules(&p);
    let seg = p
        .segments
        .iter()
        .find(|s| s.uri.is_some())
        .expect("a complete segment");
    let r = get(
        srv.http,
        &format!("/hls/demo/{}", seg.uri.as_ref().unwrap()),
    )
    .await;
    assert_eq!(r.header("content-type"), Some("audio/mp4"));
    let (streams, _) = ffprobe(&format!("http://{}/hls/demo/index.m3u8", srv.http)).await;
    assert_eq!(streams.len(), 1, "{streams:?}");
    assert_eq!(
        (streams[0].0.as_str(), streams[0].1.as_str()),
        ("audio", "aac")
    );
    ff.wait().await.unwrap();
    let item = wait_ended(&srv, 1).await;
    let id = common::json_id(&item["id"]);
    let (streams, dur) = ffprobe(&format!("http://{}/vod/{id}/index.m3u8", srv.http)).await;
    assert_eq!(streams.len(), 1, "{streams:?}");
    let dur = dur.unwrap();
    assert!((5.5..=7.6).contains(&dur), "audio VOD lasts {dur}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_switches_and_retention() {
    // Two broadcasts, newest first, one per page.
    let srv = TestServer::start().await;
    for _ in 0..2 {
        let mut ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 3);
        ff.wait().await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    wait_ended(&srv, 2).await;
    let page1 = broadcasts(&srv, "?limit=1").await;
    let cursor = page1["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let page2 = broadcasts(&srv, &format!("?limit=1&cursor={cursor}")).await;
    assert!(page2["next_cursor"].is_null(), "{page2}");
    let (a, b) = (
        common::json_id(&page1["items"][0]["id"]),
        common::json_id(&page2["items"][0]["id"]),
    );
    assert!(a > b, "newest first");
    assert!(page1["items"][0]["started_at"].as_i64() > page2["items"][0]["started_at"].as_i64());

    // The channel's switch off: a row, no recording.
    srv.db.set_channel_recording("demo", false).await.unwrap();
    let mut ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 3);
    ff.wait().await.unwrap();
    let item = wait_ended(&srv, 3).await;
    assert_eq!(item["recorded"], false, "{item}");
    assert!(item["playlist"].is_null());
    let id = common::json_id(&item["id"]);
    let r = get(srv.http, &format!("/vod/{id}/index.m3u8")).await;
    assert_eq!(r.status, 404);
    assert!(!recording_dir(&srv, id).exists());
    srv.stop().await;

    // Retention by size: with a 1 MB cap, older recordings go.
    let srv = TestServer::start_with(|c| c.hls.retention_max_bytes = Some(1 << 20)).await;
    let mut ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 6);
    wait_for_playlist(srv.http, "demo").await;
    // While live it is kept, whatever its size.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let live = broadcasts(&srv, "").await;
    let item = &live["items"][0];
    let id = common::json_id(&item["id"]);
    assert!(item["size_bytes"].as_i64().unwrap() > 1 << 20, "{item}");
    assert!(recording_dir(&srv, id).exists());
    ff.wait().await.unwrap();
    let start = Instant::now();
    // The row goes first, then the folder (a crash between leaves only a
    // folder, which the next start removes).
    loop {
        let b = broadcasts(&srv, "").await;
        if b["items"].as_array().unwrap().is_empty() && !recording_dir(&srv, id).exists() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "not deleted: {b}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    srv.stop().await;

    // Retention by age: recordings older than the max age go, oldest first.
    let srv =
        TestServer::start_with(|c| c.hls.retention_max_age = Some(Duration::from_secs(1))).await;
    let mut ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 3);
    ff.wait().await.unwrap();
    let start = Instant::now();
    loop {
        let b = broadcasts(&srv, "").await;
        let items = b["items"].as_array().unwrap();
        // Deleted once it has ended (a live one is never deleted).
        if items.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "not deleted: {b}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    srv.stop().await;

    // Recording off for the whole server.
    let srv = TestServer::start_with(|c| c.hls.recording = false).await;
    let mut ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 3);
    wait_for_playlist(srv.http, "demo").await;
    ff.wait().await.unwrap();
    let item = wait_ended(&srv, 1).await;
    assert_eq!(item["recorded"], false);
    srv.stop().await;
}

/// A recording folder no broadcast row names (a crash between deleting a
/// row and its files) is removed at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphaned_recording_folders_are_removed_at_start() {
    let mut kept = None;
    let srv = TestServer::start_with(|c| {
        let rec = c.data_dir.join("recordings");
        std::fs::create_dir_all(rec.join("4242")).unwrap();
        std::fs::write(rec.join("4242").join("s0.m4s"), b"orphan").unwrap();
        kept = Some(rec);
    })
    .await;
    let rec = kept.unwrap();
    let start = Instant::now();
    while rec.join("4242").exists() {
        assert!(start.elapsed() < Duration::from_secs(10), "orphan kept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    srv.stop().await;
}

/// A broadcast that ends while another writer holds SQLite's lock past its
/// 5 s busy wait ("database is locked") still gets its row closed: the
/// closing write is tried again rather than lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_ending_while_the_database_is_locked_is_still_closed() {
    use sqlx::Connection;
    let srv = TestServer::start().await;
    let mut ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 4);
    common::wait_for_live(srv.http, &srv.channel).await;
    // The lock goes on once the broadcast's row exists: this test is about
    // closing a row, not about creating one.
    let start = Instant::now();
    while broadcasts(&srv, "").await["items"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no broadcast row"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = format!("sqlite://{}", srv.dir.path().join("onair.db").display());
    let mut writer = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut writer)
        .await
        .unwrap();
    ff.wait().await.unwrap();
    // Longer than two busy waits: the recorder may be inside one (a
    // progress update) when the publish ends.
    tokio::time::sleep(Duration::from_secs(14)).await;
    sqlx::query("COMMIT").execute(&mut writer).await.unwrap();
    let b = wait_ended(&srv, 1).await;
    assert!(b["duration_ms"].as_i64().unwrap() >= 2000, "{b}");
    srv.stop().await;
}

/// The database cannot take a write when a broadcast starts (SQLite held
/// locked by another writer for 8 s, past its 5 s busy wait): the broadcast
/// is recorded all the same, and its row is stored once the database
/// answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_starting_while_the_database_is_locked_is_recorded() {
    let srv = TestServer::start().await;
    // Answered once the server has finished starting (its own writes).
    assert_eq!(get(srv.http, "/healthz").await.status, 200);
    let url = format!("sqlite://{}", srv.dir.path().join("onair.db").display());
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    let mut lock = pool.acquire().await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let mut ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 16);
    tokio::time::sleep(Duration::from_secs(8)).await;
    sqlx::query("COMMIT").execute(&mut *lock).await.unwrap();
    drop(lock);
    ff.wait().await.unwrap();
    let id = common::finished_broadcast(srv.http, "demo").await;
    let row = srv.db.broadcast(id).await.unwrap().unwrap();
    assert!(row.recorded, "{row:?}");
    assert!(row.duration_ms >= 10_000, "most of the 16 s: {row:?}");
    let playlist = get(srv.http, &format!("/vod/{id}/index.m3u8")).await;
    assert_eq!(playlist.status, 200);
    assert!(
        playlist.text().contains("#EXT-X-ENDLIST"),
        "{}",
        playlist.text()
    );
    srv.stop().await;
}
