//! LL-HLS through the cache of docs/nginx-hls-cache.conf, run as it is with
//! nginx from apt (only ports, the cache path and the upstream replaced), in
//! front of a real onair child fed by ffmpeg over RTMP:
//! - a crowd of hls.js players (headless Chromium, tests/e2e/hls_crowd.mjs)
//!   following the live edge with blocking reloads costs the origin about
//!   one request per playlist update and per part;
//! - after the origin restarts, what the cache serves is the new stream's,
//!   byte for byte, never the old one's under a reused name.

mod common;
mod hls_util;

use common::child::{free_addr, ChildServer};
use common::nginx::{self, doc, swap};
use common::{ffmpeg_publish, ffmpeg_publish_sized, get, metric};
use hls_util::parse;
use onair_loadtest::http::try_http;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::process::Child;

const PLAYERS: usize = 20;
const FOLLOW: Duration = Duration::from_secs(8);

/// docs/nginx-hls-cache.conf in front of `origin`, listening on each of
/// `fronts` (one cache).
fn start_cache(dir: &Path, fronts: &[SocketAddr], origin: SocketAddr) -> Child {
    let text = doc("nginx-hls-cache.conf");
    let listen: Vec<String> = fronts.iter().map(|f| format!("listen {f};")).collect();
    let text = swap(&text, "listen 8090;", &listen.join("\n    "));
    let text = swap(
        &text,
        "server 127.0.0.1:8080;",
        &format!("server {origin};"),
    );
    let cache = dir.join("cache");
    let text = swap(&text, "/var/cache/nginx/onair-hls", cache.to_str().unwrap());
    nginx::spawn(dir, &nginx::config(dir, &text))
}

/// The live playlist through `addr`, once it lists a complete segment.
async fn playlist(addr: SocketAddr, nginx_dir: &Path) -> String {
    let start = Instant::now();
    loop {
        // nginx may not listen yet.
        let r = try_http(addr, "GET", "/hls/demo/index.m3u8", &[], b"").await;
        let said = match &r {
            Ok(r)
                if r.status == 200 && parse(&r.text()).segments.iter().any(|s| s.uri.is_some()) =>
            {
                return r.text()
            }
            Ok(r) => format!("{}: {}", r.status, r.text()),
            Err(e) => e.to_string(),
        };
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no playlist through {addr} ({said})\n{}",
            nginx::log(nginx_dir)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The stream id the playlist names its media under.
fn stream_of(text: &str) -> String {
    let p = parse(text);
    let uri = p.segments[0].map.clone().expect("a map");
    uri.split_once('/').expect("STREAM/NAME").0.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_behind_the_cache_costs_the_origin_one_request_per_part() {
    let mut srv = ChildServer::start("demo").await;
    let nginx_dir = tempfile::tempdir().unwrap();
    // One port per player: Chromium holds at most six connections to a
    // host and port, and each player keeps a blocking reload open.
    let fronts: Vec<SocketAddr> = (0..PLAYERS).map(|_| free_addr()).collect();
    let front = fronts[0];
    let mut cache = start_cache(nginx_dir.path(), &fronts, srv.http);
    let rtmp = format!("rtmp://{}/live/{}", srv.rtmp, srv.key);
    // Small pictures: twenty decoders share the machine with the servers.
    let ff = ffmpeg_publish_sized(&rtmp, 120, "320x180", &[]);
    let first = playlist(front, nginx_dir.path()).await;
    let old_stream = stream_of(&first);

    let playlists_before = metric(srv.http, "onair_hls_playlist_requests_total").await;
    let media_before = metric(srv.http, "onair_hls_media_requests_total").await;
    let urls: Vec<String> = fronts
        .iter()
        .map(|f| format!("http://{f}/hls/demo/index.m3u8"))
        .collect();
    let secs = FOLLOW.as_secs().to_string();
    let args: Vec<&str> = std::iter::once(secs.as_str())
        .chain(urls.iter().map(String::as_str))
        .collect();
    let crowd = common::node::run_script("hls_crowd.mjs", &args, FOLLOW * 10).await;
    let players = crowd["players"].as_array().expect("the players' reports");
    assert_eq!(players.len(), PLAYERS, "{crowd}");
    for (i, p) in players.iter().enumerate() {
        assert!(
            p["fatalErrors"].as_array().unwrap().is_empty(),
            "player {i}: {p}"
        );
        assert_eq!(p["canBlockReload"], true, "player {i}: {p}");
        assert!(
            p["framesDecoded"].as_f64().unwrap_or(0.0) >= 60.0,
            "player {i}: {p}"
        );
    }
    // Requests and distinct URLs, playlists and media apart.
    let (mut playlists, mut media) = ((0, 0), (0, 0));
    for (path, n) in crowd["requested"].as_object().expect("the requests") {
        let count = if path.split('?').next().unwrap().ends_with(".m3u8") {
            &mut playlists
        } else {
            &mut media
        };
        count.0 += n.as_u64().unwrap() as usize;
        count.1 += 1;
    }
    let (playlists, distinct_playlists) = playlists;
    let (media, distinct_media) = media;
    let origin_playlists =
        metric(srv.http, "onair_hls_playlist_requests_total").await - playlists_before;
    let origin_media = metric(srv.http, "onair_hls_media_requests_total").await - media_before;
    eprintln!(
        "{PLAYERS} players: {} playlist requests ({distinct_playlists} distinct) and {} media \
         requests ({distinct_media} distinct) reached the cache; the origin answered \
         {origin_playlists} and {origin_media}",
        playlists, media,
    );
    // Every player followed the edge with blocking reloads: 8 s of parts
    // of at most 0.5 s.
    assert!(
        playlists >= PLAYERS * 12,
        "the players made only {playlists} playlist requests"
    );
    assert!(
        media >= PLAYERS * 10,
        "the players made only {media} media requests"
    );
    // The origin: about one request per distinct URL, whatever the crowd.
    // A key is asked again when a slow player reaches it after its second
    // of life, hence the margin, which is still far below one per player.
    assert!(
        origin_playlists <= 1.5 * distinct_playlists as f64 + 4.0,
        "the origin answered {origin_playlists} playlist requests for {distinct_playlists} \
         distinct ones"
    );
    assert!(
        origin_media <= 1.2 * distinct_media as f64 + 4.0,
        "the origin answered {origin_media} media requests for {distinct_media} distinct ones"
    );

    // The origin restarts, and its numbering with it. The cache still holds
    // the old stream's parts, under the old stream's folder; the new
    // playlist names none of them.
    drop(ff);
    srv.child.start_kill().unwrap();
    let _ = srv.child.wait().await;
    srv.restart("second.log").await;
    let _ff = ffmpeg_publish(&rtmp, 60);
    let start = Instant::now();
    let text = loop {
        let text = playlist(front, nginx_dir.path()).await;
        if stream_of(&text) != old_stream {
            break text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the cache kept the old stream's playlist:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let p = parse(&text);
    let mut names: Vec<String> = p.segments.iter().filter_map(|s| s.uri.clone()).collect();
    names.extend(
        p.segments
            .iter()
            .flat_map(|s| &s.parts)
            .map(|p| p.uri.clone()),
    );
    names.push(p.segments[0].map.clone().unwrap());
    for name in &names {
        let path = format!("/hls/demo/{name}");
        let through = get(front, &path).await;
        let direct = get(srv.http, &path).await;
        assert_eq!((through.status, direct.status), (200, 200), "{path}");
        assert!(
            through.body == direct.body,
            "{path}: the cache answered other bytes than the origin"
        );
    }
    // The old stream's names are gone at the origin, and their absence is
    // not cached.
    let old = format!("/hls/demo/{old_stream}/s0.0.m4s");
    let r = get(srv.http, &old).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("cache-control"), Some("no-store"));

    assert!(
        cache.try_wait().unwrap().is_none(),
        "nginx exited:\n{}",
        nginx::log(nginx_dir.path())
    );
    srv.stop().await;
}
