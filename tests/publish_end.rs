//! Ending a publisher ends it everywhere: a rotated key, a deleted account,
//! an owner or admin ending the stream, or a new publisher taking over
//! stops the old one on every path (RTMP or WHIP, to WebRTC and to HLS)
//! within 1 s, and viewers stay attached for whoever publishes next.

mod common;

use common::media::{clip, media};
use common::{api_as, signup, TestServer};
use onair_loadtest::whep::{watch, Received, ViewerOptions};
use onair_loadtest::whip::publish;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// How late the last packet of an ended publish may reach a viewer.
const ENDS_WITHIN: Duration = Duration::from_secs(1);

fn viewer(srv: &TestServer, channel: &str, secs: u64) -> JoinHandle<Received> {
    let (http, channel) = (srv.http, channel.to_string());
    tokio::spawn(async move {
        watch(
            http,
            &channel,
            Duration::from_secs(secs),
            ViewerOptions {
                record: false,
                ..Default::default()
            },
        )
        .await
        .expect("viewer")
    })
}

async fn key_of(srv: &TestServer, token: &str, channel: &str) -> String {
    let r = api_as(
        srv.http,
        token,
        "GET",
        &format!("/api/channels/{channel}/key"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["stream_key"].as_str().unwrap().to_string()
}

/// A WHIP publisher of `secs`, and its session's URL once it has one.
async fn whip(
    srv: &TestServer,
    key: &str,
    secs: u64,
) -> (JoinHandle<onair_loadtest::whip::Published>, String) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut opts = clip(key, &media(), secs);
    opts.on_session = Some(tx);
    let http = srv.http;
    let task = tokio::spawn(async move { publish(http, opts).await.expect("publisher ran") });
    (task, rx.await.expect("the WHIP offer was answered"))
}

/// Waits until the channel is live and its viewers have had video a while.
async fn live(srv: &TestServer, channel: &str) {
    common::wait_for_live(srv.http, channel).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

/// The server let go of a WHIP session within [`ENDS_WITHIN`] of `at`: its
/// URL no longer names a session.
async fn assert_session_gone(srv: &TestServer, session: &str, at: Instant, why: &str) {
    loop {
        let r = common::http(srv.http, "DELETE", session, &[], b"").await;
        if r.status == 404 {
            println!("WHIP session gone {:?} after {why}", at.elapsed());
            return;
        }
        assert!(
            at.elapsed() < ENDS_WITHIN,
            "the WHIP session outlived {why} by a second"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rotating_the_key_stops_a_live_whip_publisher_within_a_second() {
    let srv = TestServer::start().await;
    let token = signup(srv.http, "alice").await;
    let key = key_of(&srv, &token, "alice").await;
    // One viewer to time the end, one that stays for the next publisher.
    let timing = viewer(&srv, "alice", 8);
    let staying = viewer(&srv, "alice", 16);
    let (publisher, session) = whip(&srv, &key, 20).await;
    live(&srv, "alice").await;

    let r = api_as(srv.http, &token, "POST", "/api/channels/alice/key", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rotated_at = Instant::now();
    let new_key = r.json()["stream_key"].as_str().unwrap().to_string();
    assert_ne!(new_key, key);
    assert_session_gone(&srv, &session, rotated_at, "the key rotation").await;

    // HLS stops too: the playlist is kept for players (the next publish
    // continues it) but announces no next part.
    let start = Instant::now();
    loop {
        let r = common::get(srv.http, "/hls/alice/index.m3u8").await;
        if r.status != 200 || !r.text().contains("#EXT-X-PRELOAD-HINT") {
            break;
        }
        assert!(
            start.elapsed() < ENDS_WITHIN,
            "HLS still live after the rotation"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let got = timing.await.unwrap();
    let last = got.last_video_at.expect("video before the rotation");
    let after = last.saturating_duration_since(rotated_at);
    println!("last video {after:?} after the rotation");
    assert!(
        after < ENDS_WITHIN,
        "video went on for {after:?} after the key was rotated"
    );

    // The old key no longer publishes...
    let refused = publish(srv.http, clip(&key, &media(), 1)).await.unwrap();
    assert_eq!(refused.status, 401, "the old key still publishes");
    // ...and the viewer that stayed sees the next publisher.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut ff =
        common::ffmpeg_publish_sized(&srv.rtmp_url(&new_key), 20, "640x360", &["-bf", "0"]);
    let stayed = staying.await.unwrap();
    let resumed = stayed.last_video_at.expect("video");
    assert!(
        resumed > rotated_at + Duration::from_secs(3),
        "the staying viewer never saw the next publisher"
    );
    assert!(
        stayed.counters.longest_video_gap_ms >= 2000,
        "there was a gap between publishers"
    );
    let _ = ff.kill().await;
    publisher.abort();
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_the_account_stops_its_rtmp_publisher() {
    let srv = TestServer::start().await;
    let token = signup(srv.http, "bob").await;
    let key = key_of(&srv, &token, "bob").await;
    let timing = viewer(&srv, "bob", 8);
    let mut ff = common::ffmpeg_publish_sized(&srv.rtmp_url(&key), 30, "640x360", &["-bf", "0"]);
    common::wait_for_live(srv.http, "bob").await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let r = api_as(srv.http, &token, "DELETE", "/api/me", None).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let deleted_at = Instant::now();
    // The encoder is disconnected.
    let status = tokio::time::timeout(Duration::from_secs(3), ff.wait())
        .await
        .expect("ffmpeg was disconnected after the account was deleted");
    println!(
        "ffmpeg ended {:?} after the deletion: {status:?}",
        deleted_at.elapsed()
    );
    let got = timing.await.unwrap();
    let after = got
        .last_video_at
        .expect("video before the deletion")
        .saturating_duration_since(deleted_at);
    assert!(
        after < ENDS_WITHIN,
        "video went on for {after:?} after the account was deleted"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_ends_a_live_stream_on_every_path() {
    let srv = TestServer::start().await;
    let token = signup(srv.http, "carol").await;
    let key = key_of(&srv, &token, "carol").await;
    let admin = common::signup(srv.http, "boss").await;
    let id = srv.db.credentials("boss").await.unwrap().unwrap().user.id;
    srv.db.set_role(id, onair::db::Role::Admin).await.unwrap();
    let stranger = common::signup(srv.http, "mallory").await;
    let timing = viewer(&srv, "carol", 8);
    let (publisher, session) = whip(&srv, &key, 20).await;
    live(&srv, "carol").await;

    let r = api_as(
        srv.http,
        &stranger,
        "DELETE",
        "/api/channels/carol/live",
        None,
    )
    .await;
    assert_eq!(
        r.status,
        403,
        "a stranger cannot end someone's stream: {}",
        r.text()
    );
    let r = api_as(srv.http, &admin, "DELETE", "/api/channels/carol/live", None).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let ended_at = Instant::now();
    assert_session_gone(&srv, &session, ended_at, "the admin's end").await;
    let got = timing.await.unwrap();
    let after = got
        .last_video_at
        .expect("video before the end")
        .saturating_duration_since(ended_at);
    assert!(
        after < ENDS_WITHIN,
        "video went on for {after:?} after the admin ended it"
    );
    let r = api_as(srv.http, &admin, "DELETE", "/api/channels/carol/live", None).await;
    assert_eq!(r.status, 404, "nothing is live any more: {}", r.text());
    publisher.abort();
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_rtmp_publisher_takes_over_from_whip() {
    let srv = TestServer::start().await;
    let token = signup(srv.http, "dave").await;
    let key = key_of(&srv, &token, "dave").await;
    let staying = viewer(&srv, "dave", 14);
    let (publisher, session) = whip(&srv, &key, 30).await;
    live(&srv, "dave").await;
    let mut ff = common::ffmpeg_publish_sized(&srv.rtmp_url(&key), 30, "640x360", &["-bf", "0"]);
    // The takeover happens when ffmpeg has connected and published; the
    // WHIP session must be gone within a second of that.
    let start = Instant::now();
    loop {
        let r = common::http(srv.http, "DELETE", &session, &[], b"").await;
        if r.status == 404 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the WHIP publisher was never replaced"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let replaced = Instant::now();
    println!(
        "WHIP session replaced {:?} after ffmpeg started",
        replaced - start
    );
    let stayed = staying.await.unwrap();
    assert!(
        stayed.last_video_at.expect("video") > replaced + Duration::from_secs(3),
        "the viewer kept playing from the new publisher"
    );
    let _ = ff.kill().await;
    publisher.abort();
    srv.stop().await;
}
