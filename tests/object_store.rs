//! `--object-store s3://...` against a real S3-compatible server (moto's
//! server mode, started here): profile pictures are written to the
//! bucket, under the URL's prefix and nowhere on local disk, replaced and
//! removed there; while the bucket is unreachable an upload is a 503 that
//! changes nothing, and the server keeps answering. A finished recording
//! is copied to the bucket and served from it once this node has no copy
//! of its own (as any other node would), downloads included, and deleting
//! the broadcast removes it there. An edge of a site, which records
//! nothing itself, serves the origin's recordings byte for byte from the
//! bucket.

mod common;
mod hls_util;

use common::s3::S3Server;
use common::{api_as, ffmpeg_publish, finished_broadcast, signup, TestServer};
use image::ImageFormat;
use onair::store::StoreUrl;
use onair_loadtest::http::http;
use std::io::Cursor;
use std::time::{Duration, Instant};

const BUCKET: &str = "onair-test";

fn png(side: u32, shade: u8) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(side, side, image::Rgb([shade, 90, 200]));
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .unwrap();
    out
}

/// moto with the test bucket, and a server storing under `prefix` there.
async fn on_bucket(prefix: &str) -> Option<(S3Server, TestServer)> {
    let s3 = S3Server::start().await?;
    let store = bucket(&s3, prefix).await;
    let srv = TestServer::start_with(move |c| c.object_store = store).await;
    Some((s3, srv))
}

/// The test bucket on `s3`, under `prefix`.
async fn bucket(s3: &S3Server, prefix: &str) -> StoreUrl {
    s3.create_bucket(BUCKET).await;
    // Any credentials do for moto; the server reads the usual variables.
    std::env::set_var("AWS_ACCESS_KEY_ID", "onair-test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "onair-test-secret");
    let url = format!(
        "s3://{BUCKET}/{prefix}?endpoint={}&region=us-east-1",
        s3.endpoint()
    );
    StoreUrl::parse(&url).unwrap()
}

/// Waits for `folder`'s copy to the bucket to be complete.
async fn archived(folder: &std::path::Path) {
    let start = Instant::now();
    while !folder.join(".archived").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} not copied to the bucket",
            folder.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avatars_live_in_the_bucket() {
    let Some((s3, srv)) = on_bucket("site-a").await else {
        return;
    };
    let a = srv.http;
    let token = signup(a, "gus").await;
    let put = |body: Vec<u8>| {
        let token = token.clone();
        async move {
            let auth = common::bearer(&token);
            http(
                a,
                "PUT",
                "/api/me/avatar",
                &[("Authorization", auth.as_str())],
                &body,
            )
            .await
        }
    };

    let r = put(png(120, 10)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let keys = s3.keys(BUCKET, "").await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys.iter()
            .all(|k| k.starts_with("site-a/avatars/") && k.ends_with(".png")),
        "{keys:?}"
    );
    assert!(
        !srv.dir.path().join("avatars").exists(),
        "nothing on local disk"
    );
    let got = http(a, "GET", "/avatars/gus/64", &[], b"").await;
    assert_eq!(got.header("content-type"), Some("image/png"));
    let first = got.body;

    // A new picture replaces the old objects.
    assert_eq!(put(png(90, 250)).await.status, 200);
    let replaced = s3.keys(BUCKET, "").await;
    assert_eq!(replaced.len(), 2, "{replaced:?}");
    assert!(replaced.iter().all(|k| !keys.contains(k)), "{replaced:?}");
    let second = http(a, "GET", "/avatars/gus/64", &[], b"").await.body;
    assert_ne!(second, first);

    // Removal empties the bucket.
    let r = api_as(a, &token, "DELETE", "/api/me/avatar", None).await;
    assert_eq!(r.status, 204);
    assert!(s3.keys(BUCKET, "").await.is_empty());
    assert_eq!(put(png(70, 128)).await.status, 200);
    let kept = http(a, "GET", "/avatars/gus/256", &[], b"").await;
    let me_before = api_as(a, &token, "GET", "/api/me", None).await.json();

    // The bucket goes away: uploads and reads of stored pictures are 503s
    // in words, the account still points at its picture, and the rest of
    // the site answers.
    s3.stop().await;
    let r = put(png(60, 30)).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("unavailable"));
    let r = http(a, "GET", "/avatars/gus/256", &[], b"").await;
    assert_eq!(r.status, 503);
    let me_after = api_as(a, &token, "GET", "/api/me", None).await.json();
    assert_eq!(me_after["avatar"], me_before["avatar"]);
    assert_eq!(kept.status, 200);
    let r = http(a, "GET", "/avatars/nobody/64", &[], b"").await;
    assert_eq!(r.status, 200, "a generated picture needs no store");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_recordings_are_served_from_the_bucket() {
    let Some((s3, srv)) = on_bucket("site-b").await else {
        return;
    };
    let a = srv.http;
    let mut ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 5);
    let _ = ff.wait().await;
    let id = finished_broadcast(a, &srv.channel).await;

    // The copy: every file of the folder, the playlist last, then the mark.
    let folder = srv.dir.path().join("recordings").join(id.to_string());
    let prefix = format!("site-b/recordings/{id}/");
    archived(&folder).await;
    let mut local: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .collect();
    local.sort();
    let mut stored: Vec<String> = s3
        .keys(BUCKET, &prefix)
        .await
        .iter()
        .map(|k| k.strip_prefix(&prefix).unwrap().to_string())
        .collect();
    stored.sort();
    assert_eq!(stored, local);
    assert!(local.contains(&"index.m3u8".to_string()), "{local:?}");
    assert!(
        local.iter().filter(|n| n.ends_with(".m4s")).count() >= 2,
        "{local:?}"
    );
    let local_bytes: Vec<(String, Vec<u8>)> = local
        .iter()
        .map(|n| (n.clone(), std::fs::read(folder.join(n)).unwrap()))
        .collect();

    // The MP4 a download is: the init segment, then the segments in
    // playlist order (one section: one init).
    let playlist_text = std::fs::read_to_string(folder.join("index.m3u8")).unwrap();
    let order: Vec<&str> = playlist_text
        .lines()
        .filter_map(|l| {
            l.strip_prefix("#EXT-X-MAP:URI=\"")
                .and_then(|u| u.strip_suffix('"'))
                .or((!l.starts_with('#') && !l.is_empty()).then_some(l))
        })
        .collect();
    assert_eq!(
        order.iter().filter(|n| n.starts_with("init")).count(),
        1,
        "{order:?}"
    );
    let mp4: Vec<u8> = order
        .iter()
        .flat_map(|n| std::fs::read(folder.join(n)).unwrap())
        .collect();

    // This node loses its copy (as a node that never had one): the
    // recording plays from the bucket, byte for byte.
    std::fs::remove_dir_all(&folder).unwrap();
    let playlist = http(a, "GET", &format!("/vod/{id}/index.m3u8"), &[], b"").await;
    assert_eq!(playlist.status, 200, "{}", playlist.text());
    assert!(playlist.text().contains("#EXT-X-ENDLIST"));
    for (name, bytes) in &local_bytes {
        let r = http(a, "GET", &format!("/vod/{id}/{name}"), &[], b"").await;
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        assert!(&r.body == bytes, "{name}: other bytes than were recorded");
    }
    let (streams, duration) = hls_util::ffprobe(&format!("http://{a}/vod/{id}/index.m3u8")).await;
    assert!(
        streams.iter().any(|s| s.0 == "video" && s.1 == "h264"),
        "{streams:?}"
    );
    assert!(duration.unwrap_or(0.0) >= 3.0, "{duration:?}");

    // The download too, whole and in a range that spans files.
    let download = format!("/vod/{id}/download.mp4");
    let whole = http(a, "GET", &download, &[], b"").await;
    assert_eq!(whole.status, 200, "{}", whole.text());
    assert!(whole.body[..] == mp4[..], "the download differs");
    let (first, last) = (mp4.len() / 3, 2 * mp4.len() / 3);
    let range = format!("bytes={first}-{last}");
    let part = http(a, "GET", &download, &[("Range", range.as_str())], b"").await;
    assert_eq!(part.status, 206);
    assert!(part.body[..] == mp4[first..=last], "the range differs");

    // Deleting the broadcast removes the bucket's copy too.
    let token = signup(a, "ops").await;
    let uid = srv.db.credentials("ops").await.unwrap().unwrap().user.id;
    srv.db.set_role(uid, onair::db::Role::Admin).await.unwrap();
    let path = format!("/api/channels/{}/broadcasts/{id}", srv.channel);
    let r = api_as(a, &token, "DELETE", &path, None).await;
    assert!(r.status == 200 || r.status == 204, "{}", r.text());
    assert_eq!(s3.keys(BUCKET, &prefix).await, Vec::<String>::new());
    let r = http(a, "GET", &format!("/vod/{id}/index.m3u8"), &[], b"").await;
    assert_eq!(r.status, 404);
    srv.stop().await;
    s3.stop().await;
}

/// A recording in the bucket that no broadcast row names (a deletion cut
/// short after its row went) is removed by the sweep; one with a row stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_recordings_without_a_row_are_swept() {
    let Some(s3) = S3Server::start().await else {
        return;
    };
    s3.create_bucket(BUCKET).await;
    std::env::set_var("AWS_ACCESS_KEY_ID", "onair-test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "onair-test-secret");
    let url = format!(
        "s3://{BUCKET}/site-c?endpoint={}&region=us-east-1",
        s3.endpoint()
    );
    let store = onair::store::Store::open(&StoreUrl::parse(&url).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = onair::db::Db::open(&format!("sqlite://{}", dir.path().join("x.db").display()))
        .await
        .unwrap();
    db.create_channel("demo").await.unwrap();
    let kept = db
        .create_broadcast("demo", Some("kept"), 1_700_000_000_000, true)
        .await
        .unwrap();
    let orphan = kept.id + 1_000;
    for (id, name) in [
        (kept.id, "s0.m4s"),
        (orphan, "s0.m4s"),
        (orphan, "index.m3u8"),
    ] {
        store
            .put(
                &format!("recordings/{id}/{name}"),
                bytes::Bytes::from_static(b"x"),
            )
            .await
            .unwrap();
    }
    let recordings = onair::hls::recorder::Recordings::new(
        db,
        dir.path().join("recordings"),
        dir.path().to_path_buf(),
        onair::hls::HlsConfig::default(),
        Some(store.clone()),
    );
    assert_eq!(recordings.remove_stored_orphans(&store).await, 1);
    assert_eq!(
        s3.keys(BUCKET, "site-c/recordings/").await,
        vec![format!("site-c/recordings/{}/s0.m4s", kept.id)]
    );
    s3.stop().await;
}

/// An edge records nothing, yet `/vod/ID` there plays the origin's
/// recording: every file byte for byte what the origin serves, from the
/// bucket they share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_serves_the_origins_recordings_from_the_bucket() {
    use common::redis::{site_node_with, Site};
    use onair::config::Role;
    let Some(Site { redis, db }) = Site::start().await else {
        return;
    };
    let Some(s3) = S3Server::start().await else {
        return;
    };
    let (store, redis_url) = (bucket(&s3, "site-e").await, redis.url());
    let node = |role: Role| {
        let store = store.clone();
        site_node_with(&db, &redis_url, move |c| {
            c.role = role;
            c.object_store = store;
        })
    };
    let origin = node(Role::Origin).await;
    let edge = node(Role::Edge).await;
    let mut ff = ffmpeg_publish(&origin.rtmp_url(&origin.key), 5);
    let _ = ff.wait().await;
    let id = finished_broadcast(origin.http, &origin.channel).await;
    archived(&origin.dir.path().join("recordings").join(id.to_string())).await;

    let vod = |addr, name: &str| {
        let path = format!("/vod/{id}/{name}");
        async move { http(addr, "GET", &path, &[], b"").await }
    };
    let playlist = vod(edge.http, "index.m3u8").await;
    assert_eq!(playlist.status, 200, "{}", playlist.text());
    assert_eq!(playlist.body, vod(origin.http, "index.m3u8").await.body);
    let files: Vec<String> = playlist
        .text()
        .lines()
        .filter_map(|l| {
            l.strip_prefix("#EXT-X-MAP:URI=\"")
                .and_then(|u| u.strip_suffix('"'))
                .or((!l.starts_with('#') && !l.is_empty()).then_some(l))
                .map(str::to_string)
        })
        .collect();
    assert!(files.len() >= 3, "{files:?}");
    for name in files.iter().map(String::as_str).chain(["download.mp4"]) {
        let (at_edge, at_origin) = (vod(edge.http, name).await, vod(origin.http, name).await);
        assert_eq!(at_edge.status, 200, "{name}: {}", at_edge.text());
        assert_eq!(at_origin.status, 200, "{name}: {}", at_origin.text());
        assert!(
            at_edge.body == at_origin.body,
            "{name}: other bytes on the edge"
        );
    }
    assert!(
        !edge
            .dir
            .path()
            .join("recordings")
            .join(id.to_string())
            .exists(),
        "the edge keeps no copy"
    );
    edge.stop().await;
    origin.stop().await;
    s3.stop().await;
}
