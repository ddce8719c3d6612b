//! Recordings as one MP4 (`/vod/ID/download.mp4`) and their deletion, with
//! real peers: ffmpeg publishes over RTMP, ffprobe reads the download over
//! HTTP (it seeks with Range requests), byte ranges are checked against
//! the files on disk, and the owner deletes the broadcast.

mod common;
mod hls_util;

use common::{api, bearer, ffmpeg_publish, signup, wait_for_live, HttpResponse, TestServer};
use hls_util::ffprobe;
use serde_json::json;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

async fn get_as(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    range: Option<&str>,
) -> HttpResponse {
    let auth = token.map(bearer);
    let mut h: Vec<(&str, &str)> = Vec::new();
    if let Some(a) = &auth {
        h.push(("Authorization", a));
    }
    if let Some(r) = range {
        h.push(("Range", r));
    }
    api(addr, "GET", path, &h, None).await
}

async fn delete_as(addr: SocketAddr, path: &str, token: Option<&str>) -> HttpResponse {
    let auth = token.map(bearer);
    let h: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    api(addr, "DELETE", path, &h, None).await
}

/// The newest broadcast of `channel` as its owner sees it.
async fn newest(srv: &TestServer, channel: &str, token: &str) -> serde_json::Value {
    let r = get_as(
        srv.http,
        &format!("/api/channels/{channel}/broadcasts"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["items"][0].clone()
}

/// The recording's files in playlist order, read straight from disk: what
/// the download must be the concatenation of.
fn files_on_disk(dir: &Path) -> Vec<PathBuf> {
    let playlist = std::fs::read_to_string(dir.join("index.m3u8")).unwrap();
    let mut out = Vec::new();
    for line in playlist.lines() {
        if let Some(rest) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
            out.push(dir.join(rest.trim_end_matches('"')));
        } else if !line.starts_with('#') && !line.is_empty() {
            out.push(dir.join(line));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_ranges_visibility_and_delete() {
    let srv = TestServer::start().await;
    let a = srv.http;
    let alice = signup(a, "alice").await;
    let bob = signup(a, "bob").await;
    let key = srv.db.channel("alice").await.unwrap().unwrap().stream_key;
    let mut ff = ffmpeg_publish(&srv.rtmp_url(&key), 6);
    wait_for_live(a, "alice").await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // While live: no download yet, and no deleting.
    let live = newest(&srv, "alice", &alice).await;
    assert_eq!(live["live"], true, "{live}");
    assert!(live["download"].is_null(), "{live}");
    let id = common::json_id(&live["id"]);
    let dl = format!("/vod/{id}/download.mp4");
    let item = format!("/api/channels/alice/broadcasts/{id}");
    let r = get_as(a, &dl, None, None).await;
    assert_eq!(r.status, 409, "{}", r.text());
    let r = delete_as(a, &item, Some(&alice)).await;
    assert_eq!(r.status, 409, "{}", r.text());

    ff.wait().await.expect("ffmpeg ran");
    let start = Instant::now();
    let done = loop {
        let b = newest(&srv, "alice", &alice).await;
        if !b["ended_at"].is_null() {
            break b;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "never ended: {b}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(done["download"], dl);
    let duration_s = done["duration_ms"].as_f64().unwrap() / 1000.0;

    // The whole file: exactly the init segment and every segment, in order.
    let dir = srv.dir.path().join("recordings").join(id.to_string());
    let parts = files_on_disk(&dir);
    assert!(parts.len() >= 3, "{parts:?}");
    let expected: Vec<u8> = parts
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect();
    let full = get_as(a, &dl, None, None).await;
    assert_eq!(full.status, 200, "{}", full.text());
    let total = expected.len();
    assert_eq!(
        full.header("content-length"),
        Some(total.to_string().as_str())
    );
    assert!(
        full.body == expected,
        "the download is not init + segments ({} vs {total} bytes)",
        full.body.len()
    );
    assert_eq!(full.header("content-type"), Some("video/mp4"));
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    let cd = full
        .header("content-disposition")
        .unwrap_or_default()
        .to_string();
    assert!(
        cd.starts_with("attachment; filename=\"alice-20") && cd.ends_with(".mp4\""),
        "{cd}"
    );
    assert!(full
        .header("cache-control")
        .unwrap_or_default()
        .starts_with("public"));
    assert_eq!(full.header("onair-sections"), Some("1"));

    // ffprobe reads it over HTTP: H.264 and AAC, as long as the recording.
    let (streams, dur) = ffprobe(&format!("http://{a}{dl}")).await;
    assert!(
        streams.contains(&("video".into(), "h264".into(), 1280, 720)),
        "{streams:?}"
    );
    assert!(
        streams.iter().any(|s| s.0 == "audio" && s.1 == "aac"),
        "{streams:?}"
    );
    let dur = dur.expect("a duration");
    assert!(
        (dur - duration_s).abs() < 0.5,
        "ffprobe {dur} s vs recording {duration_s} s"
    );

    // A browser opening the link plays it in a plain <video>, with sound
    // (Chromium seeks with its own range requests).
    let r = common::node::run_script(
        "mp4_play.mjs",
        &[&format!("http://{a}{dl}"), "4"],
        Duration::from_secs(60),
    )
    .await;
    println!("Chromium <video>: {r}");
    assert!(r["error"].is_null(), "{r}");
    assert_eq!(
        (r["width"].as_u64(), r["height"].as_u64()),
        (Some(1280), Some(720)),
        "{r}"
    );
    assert!(
        (r["duration"].as_f64().unwrap_or(0.0) - duration_s).abs() < 0.5,
        "{r}"
    );
    assert!(r["currentTime"].as_f64().unwrap_or(0.0) > 2.0, "{r}");
    assert!(r["framesDecoded"].as_u64().unwrap_or(0) > 30, "{r}");
    assert!(r["peakRms"].as_f64().unwrap_or(0.0) > 0.005, "{r}");

    // Ranges, checked against the full download: inside one file, across
    // the init/segment boundary, open-ended and a suffix.
    let init_len = std::fs::metadata(&parts[0]).unwrap().len() as usize;
    let cases = [
        (1000, 50_999),
        (init_len - 10, init_len + 9),
        (total - 7, total - 1),
        (0, 0),
    ];
    for (first, last) in cases {
        let r = get_as(a, &dl, None, Some(&format!("bytes={first}-{last}"))).await;
        assert_eq!(r.status, 206, "{first}-{last}: {}", r.text());
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {first}-{last}/{total}").as_str())
        );
        assert_eq!(
            r.header("content-length"),
            Some((last - first + 1).to_string().as_str())
        );
        assert!(
            r.body == full.body[first..=last],
            "bytes {first}-{last} differ"
        );
    }
    let r = get_as(a, &dl, None, Some(&format!("bytes={}-", total - 100))).await;
    assert_eq!(r.status, 206);
    assert!(r.body == full.body[total - 100..]);
    let r = get_as(a, &dl, None, Some("bytes=-300")).await;
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes {}-{}/{total}", total - 300, total - 1).as_str())
    );
    assert!(r.body == full.body[total - 300..]);
    // Past the end: 416 with the size.
    for bad in [
        format!("bytes={total}-"),
        format!("bytes={}-{}", total + 5, total + 10),
        "bytes=-0".into(),
    ] {
        let r = get_as(a, &dl, None, Some(&bad)).await;
        assert_eq!(r.status, 416, "{bad}: {}", r.text());
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes */{total}").as_str())
        );
    }
    // A stale If-Range gets the whole (new) file, not a piece of it.
    let etag = full.header("etag").expect("an ETag").to_string();
    let r = api(
        a,
        "GET",
        &dl,
        &[("Range", "bytes=0-9"), ("If-Range", "\"other\"")],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), total);
    let r = api(
        a,
        "GET",
        &dl,
        &[("Range", "bytes=0-9"), ("If-Range", &etag)],
        None,
    )
    .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body.len(), 10);

    // Hidden: strangers see nothing (never a public cache); the owner gets
    // it privately.
    let r = api(
        a,
        "PATCH",
        &item,
        &[("Authorization", &bearer(&alice))],
        Some(&json!({"published": false})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    for who in [None, Some(bob.as_str())] {
        let r = get_as(a, &dl, who, None).await;
        assert_eq!(r.status, 404, "hidden download for {who:?}");
        assert!(!r
            .header("cache-control")
            .unwrap_or_default()
            .contains("public"));
        let r = get_as(a, &dl, who, Some("bytes=0-9")).await;
        assert_eq!(r.status, 404, "hidden range for {who:?}");
    }
    let r = get_as(a, &dl, Some(&alice), None).await;
    assert_eq!(r.status, 200);
    assert!(r.body == full.body);
    assert_eq!(r.header("cache-control"), Some("private, no-store"));
    let r = get_as(a, &dl, Some(&alice), Some("bytes=5-9")).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("cache-control"), Some("private, no-store"));

    // A recording whose codec changed midway: one MP4 per section.
    sections(&srv, &alice, &parts).await;

    // Delete: not by a stranger or anonymously; by the owner, then the
    // files are gone and nothing serves it.
    let r = delete_as(a, &item, Some(&bob)).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = delete_as(a, &item, None).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(dir.exists());
    let r = delete_as(a, &item, Some(&alice)).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(!dir.exists(), "the recording's folder is gone");
    assert!(
        srv.db.broadcast(id).await.unwrap().is_none(),
        "the row is gone"
    );
    for path in [format!("/vod/{id}/index.m3u8"), dl.clone()] {
        let r = get_as(a, &path, Some(&alice), None).await;
        assert_eq!(r.status, 404, "{path}");
    }
    let r = delete_as(a, &item, Some(&alice)).await;
    assert_eq!(r.status, 404);
    let r = delete_as(a, "/api/channels/alice/broadcasts/12345", Some(&alice)).await;
    assert_eq!(r.status, 404);
    let r = delete_as(a, "/api/channels/alice/broadcasts/x", Some(&alice)).await;
    assert_eq!(r.status, 404);
    srv.stop().await;
}

/// A second broadcast of `alice` made from the first one's files, with a
/// new init segment halfway (as after an encoder's resolution change):
/// each section downloads as its own MP4 that ffprobe reads.
async fn sections(srv: &TestServer, alice: &str, parts: &[PathBuf]) {
    let a = srv.http;
    let now_ms = onair::chat::unix_secs() * 1000;
    let row = srv
        .db
        .create_broadcast("alice", None, now_ms, true)
        .await
        .unwrap();
    srv.db
        .finish_broadcast(row.id, now_ms + 6000, 6000, 1)
        .await
        .unwrap();
    let dir = srv.dir.path().join("recordings").join(row.id.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&parts[0], dir.join("init0.mp4")).unwrap();
    std::fs::copy(&parts[0], dir.join("init1.mp4")).unwrap();
    let segs: Vec<&PathBuf> = parts[1..].iter().collect();
    let half = segs.len() / 2;
    let mut playlist = String::from(
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-MAP:URI=\"init0.mp4\"\n",
    );
    let mut sizes = [std::fs::metadata(&parts[0]).unwrap().len(); 2];
    for (i, s) in segs.iter().enumerate() {
        let name = s.file_name().unwrap().to_str().unwrap();
        std::fs::copy(s, dir.join(name)).unwrap();
        if i == half {
            playlist.push_str("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init1.mp4\"\n");
        }
        playlist.push_str(&format!("#EXTINF:2.0,\n{name}\n"));
        sizes[usize::from(i >= half)] += std::fs::metadata(s).unwrap().len();
    }
    playlist.push_str("#EXT-X-ENDLIST\n");
    std::fs::write(dir.join("index.m3u8"), playlist).unwrap();

    let dl = format!("/vod/{}/download.mp4", row.id);
    for (n, q) in [(1, ""), (1, "?section=1"), (2, "?section=2")] {
        let r = get_as(a, &format!("{dl}{q}"), Some(alice), None).await;
        assert_eq!(r.status, 200, "section {n}: {}", r.text());
        assert_eq!(r.header("onair-sections"), Some("2"));
        assert_eq!(r.body.len() as u64, sizes[n - 1], "section {n}");
        let cd = r.header("content-disposition").unwrap_or_default();
        assert!(cd.ends_with(&format!("-part{n}.mp4\"")), "{cd}");
        let (streams, _) = ffprobe(&format!("http://{a}{dl}{q}")).await;
        assert!(
            streams.iter().any(|s| s.1 == "h264"),
            "section {n}: {streams:?}"
        );
    }
    for bad in ["?section=3", "?section=0", "?section=x"] {
        let r = get_as(a, &format!("{dl}{bad}"), Some(alice), None).await;
        assert!([400, 404].contains(&r.status), "{bad}: {}", r.status);
    }
    let r = delete_as(
        a,
        &format!("/api/channels/alice/broadcasts/{}", row.id),
        Some(alice),
    )
    .await;
    assert_eq!(r.status, 204);
    assert!(!dir.exists());
}
