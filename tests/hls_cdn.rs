//! LL-HLS through the cache of docs/nginx-hls-cache.conf, run as it is with
//! nginx from apt (only ports, the cache path and the upstream replaced), in
//! front of a real onair child fed by ffmpeg over RTMP:
//! - a crowd of players following the live edge with blocking reloads costs
//!   the origin about one request per playlist update and per part, while
//!   hls.js in headless Chromium plays through the same cache;
//! - after the origin restarts, what the cache serves is the new stream's,
//!   byte for byte, never the old one's under a reused name.

mod common;
mod hls_util;

use common::child::{free_addr, ChildServer};
use common::nginx::{self, doc, swap};
use common::{ffmpeg_publish, get, metric};
use hls_util::parse;
use onair_loadtest::http::try_http;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::process::Child;

const PLAYERS: usize = 20;
const FOLLOW: Duration = Duration::from_secs(8);

/// docs/nginx-hls-cache.conf in front of `origin`, listening on `front`.
fn start_cache(dir: &Path, front: SocketAddr, origin: SocketAddr) -> Child {
    let text = doc("nginx-hls-cache.conf");
    let text = swap(&text, "listen 8090;", &format!("listen {front};"));
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

/// What one player asked for: every URL, in order.
#[derive(Default)]
struct Asked {
    playlists: Vec<String>,
    media: Vec<String>,
}

/// A player as hls.js plays LL-HLS: the playlist once, then a blocking
/// reload for the part after the last one it has, and each new part.
async fn player(front: SocketAddr) -> Asked {
    let mut asked = Asked::default();
    let mut have: HashSet<String> = HashSet::new();
    let mut path = "/hls/demo/index.m3u8".to_string();
    let start = Instant::now();
    while start.elapsed() < FOLLOW {
        let r = get(front, &path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        asked.playlists.push(path.clone());
        let p = parse(&r.text());
        let edge = p.segments.last().expect("a segment");
        for part in p.segments.iter().flat_map(|s| &s.parts) {
            // A player joins at the edge: only the newest parts are fetched.
            if have.insert(part.uri.clone()) && asked.playlists.len() > 1 {
                let media = format!("/hls/demo/{}", part.uri);
                let m = get(front, &media).await;
                assert_eq!(m.status, 200, "{media}");
                assert_eq!(&m.body[4..8], b"moof", "{media}");
                asked.media.push(media);
            }
        }
        let (msn, part) = match edge.uri {
            Some(_) => (edge.msn + 1, 0),
            None => (edge.msn, edge.parts.len()),
        };
        path = format!("/hls/demo/index.m3u8?_HLS_msn={msn}&_HLS_part={part}");
    }
    asked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_behind_the_cache_costs_the_origin_one_request_per_part() {
    let mut srv = ChildServer::start("demo").await;
    let nginx_dir = tempfile::tempdir().unwrap();
    let front = free_addr();
    let mut cache = start_cache(nginx_dir.path(), front, srv.http);
    let rtmp = format!("rtmp://{}/live/{}", srv.rtmp, srv.key);
    let ff = ffmpeg_publish(&rtmp, 120);
    let first = playlist(front, nginx_dir.path()).await;
    let old_stream = stream_of(&first);

    let playlists_before = metric(srv.http, "onair_hls_playlist_requests_total").await;
    let media_before = metric(srv.http, "onair_hls_media_requests_total").await;
    let crowd: Vec<_> = (0..PLAYERS).map(|_| tokio::spawn(player(front))).collect();
    let hlsjs = tokio::spawn(async move {
        let url = format!("http://{front}/hls/demo/index.m3u8");
        let secs = FOLLOW.as_secs().to_string();
        common::node::run_script("hls_watch.mjs", &[&url, &secs], FOLLOW * 8).await
    });
    let mut asked = Asked::default();
    for p in crowd {
        let a = p.await.expect("a player ran");
        asked.playlists.extend(a.playlists);
        asked.media.extend(a.media);
    }
    let hlsjs = hlsjs.await.expect("hls.js ran");
    eprintln!(
        "hls.js through the cache: {} frames, latency {}",
        hlsjs["framesDecoded"], hlsjs["latencyMedian"]
    );
    assert!(
        hlsjs["fatalErrors"].as_array().unwrap().is_empty(),
        "{hlsjs}"
    );
    assert_eq!(hlsjs["canBlockReload"], true, "{hlsjs}");
    assert!(
        hlsjs["framesDecoded"].as_f64().unwrap_or(0.0) >= 100.0,
        "{hlsjs}"
    );
    // What hls.js asked the cache for counts with the crowd's.
    for path in hlsjs["requested"].as_array().expect("hls.js's requests") {
        let path = path.as_str().unwrap().to_string();
        match path.split('?').next().unwrap().ends_with(".m3u8") {
            true => asked.playlists.push(path),
            false => asked.media.push(path),
        }
    }
    let origin_playlists =
        metric(srv.http, "onair_hls_playlist_requests_total").await - playlists_before;
    let origin_media = metric(srv.http, "onair_hls_media_requests_total").await - media_before;
    let distinct_playlists = asked.playlists.iter().collect::<HashSet<_>>().len();
    let distinct_media = asked.media.iter().collect::<HashSet<_>>().len();
    eprintln!(
        "{PLAYERS} players: {} playlist requests ({distinct_playlists} distinct) and {} media \
         requests ({distinct_media} distinct) reached the cache; the origin answered \
         {origin_playlists} and {origin_media}",
        asked.playlists.len(),
        asked.media.len(),
    );
    // Every player followed the edge: a blocking reload per part, 8 s of
    // parts of at most 0.5 s.
    assert!(
        asked.playlists.len() >= PLAYERS * 12,
        "the players made only {} playlist requests",
        asked.playlists.len()
    );
    assert!(asked.media.len() >= PLAYERS * 10);
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
