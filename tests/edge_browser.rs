//! Chromium's watch page on a full edge (`--role edge`, no room for a
//! viewer): its WHEP offer is answered 307 to the other edge, which it
//! follows and plays from, with picture and sound; the signed-in viewer's
//! chat on the page goes on under their name. A browser publishing VP8 to
//! the origin over WHIP (which edges do not relay: the hub carries H.264)
//! is watched in VP8, picture and sound, by a browser that asked an edge:
//! the edge sends it to the origin. Needs the built app (`web/dist`), `node`/`npm` and Debian's
//! `chromium`.

mod common;

use common::node::{require_built_app, run_script};
use common::redis::{site_node_with, Site};
use common::{ffmpeg_publish_sized, signup, wait_for_live, TestServer};
use onair::config::Role;
use std::time::Duration;

/// Browsers and three servers on 2 cores: one scenario at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn node(db: &str, redis: &str, role: Role, max_viewers: usize) -> TestServer {
    site_node_with(db, redis, |c| {
        c.role = role;
        c.max_viewers = max_viewers;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_page_plays_through_a_redirect_to_the_edge_with_room() {
    require_built_app();
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some(Site { redis, db }) = Site::start().await else {
        return;
    };
    let origin = node(&db, &redis.url(), Role::Origin, 20_000).await;
    let full = node(&db, &redis.url(), Role::Edge, 0).await;
    let roomy = node(&db, &redis.url(), Role::Edge, 20_000).await;
    let _ff = ffmpeg_publish_sized(&origin.rtmp_url(&origin.key), 120, "640x360", &["-bf", "0"]);
    wait_for_live(origin.http, "demo").await;
    signup(full.http, "alice").await;
    // Both edges in the census (put every second).
    tokio::time::sleep(Duration::from_millis(2_500)).await;

    let base = format!("http://{}", full.http);
    let r = run_script(
        "edge_watch.mjs",
        &[&base, "demo", "alice", "4"],
        Duration::from_secs(120),
    )
    .await;
    eprintln!("browser report: {r}");
    let whep = r["whep"].as_array().expect("whep responses");
    assert_eq!(whep.len(), 2, "{r}");
    assert_eq!(whep[0]["status"], 307, "{r}");
    assert_eq!(whep[0]["url"], format!("{base}/whep/demo"), "{r}");
    assert_eq!(whep[1]["status"], 201, "{r}");
    assert_eq!(
        whep[1]["url"],
        format!("http://{}/whep/demo", roomy.http),
        "{r}"
    );
    assert_eq!(
        whep[1]["ticket"], true,
        "the signed-in viewer's ticket: {r}"
    );
    let frames = r["stats"]["framesDecoded"].as_f64().unwrap_or(0.0);
    assert!(frames > 60.0, "frames decoded through the redirect: {r}");
    assert_eq!(r["stats"]["frameWidth"], 640, "{r}");
    assert!(
        r["stats"]["totalAudioEnergy"].as_f64().unwrap_or(0.0) > 0.0,
        "{r}"
    );
    assert_eq!(r["chat"]["who"], "alice", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vp8_browser_publish_plays_in_vp8_for_a_viewer_who_asked_an_edge() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some(Site { redis, db }) = Site::start().await else {
        return;
    };
    let origin = node(&db, &redis.url(), Role::Origin, 20_000).await;
    let edge = node(&db, &redis.url(), Role::Edge, 20_000).await;
    let origin_url = format!("http://{}", origin.http);
    let args = [origin_url.as_str(), origin.key.as_str(), "16", "VP8", "-"];
    let publisher = run_script("whip_publish.mjs", &args, Duration::from_secs(80));
    let viewer = async {
        wait_for_live(origin.http, "demo").await;
        // An offer that comes before the live lease reaches Redis is served
        // here (the channel looks offline); the pull it starts learns the
        // channel is VP8, and from then on offers are sent to the origin.
        let start = std::time::Instant::now();
        let sent = loop {
            let (_pc, offer) = common::scenario_clients::offer(false);
            let sent = common::http(
                edge.http,
                "POST",
                "/whep/demo",
                &[("Content-Type", "application/sdp")],
                offer.as_bytes(),
            )
            .await;
            if sent.status != 201 {
                break sent;
            }
            let session = sent.header("location").unwrap_or_default().to_string();
            let path = session.split_once(&edge.http.to_string()).unwrap().1;
            common::http(edge.http, "DELETE", path, &[], b"").await;
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "never sent to the origin"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(sent.status, 307, "{}", sent.text());
        let to_origin = format!("http://{}/whep/demo", origin.http);
        assert_eq!(sent.header("location"), Some(to_origin.as_str()));
        let edge_url = format!("http://{}", edge.http);
        run_script(
            "lossy_watch.mjs",
            &[&edge_url, "demo", "8", "-"],
            Duration::from_secs(70),
        )
        .await
    };
    let (published, watched) = tokio::join!(publisher, viewer);
    eprintln!("publisher: {published}\nviewer on the edge: {watched}");
    assert_eq!(published["status"], 201, "{published}");
    common::node::assert_watched_vp8(&watched);
}
