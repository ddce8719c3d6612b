//! The dashboard's data: `GET /api/channels/NAME/health` while ffmpeg
//! publishes (owner only), and the embedded web app's routes (pages get
//! index.html, hashed assets are immutable, the API is never shadowed).

mod common;

use common::{api, assert_error, bearer, ffmpeg_publish, http, signup, wait_for_live, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_sees_live_health_others_do_not() {
    let srv = TestServer::start().await;
    let alice = signup(srv.http, "alice").await;
    let bob = signup(srv.http, "bob").await;
    let auth = bearer(&alice);
    let h = [("Authorization", auth.as_str())];

    let r = api(srv.http, "GET", "/api/channels/alice/health", &h, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["live"], false, "{}", r.text());

    let me = api(srv.http, "GET", "/api/me", &h, None).await.json();
    let key = me["channel"]["stream_key"]
        .as_str()
        .expect("key")
        .to_string();
    let _ff = ffmpeg_publish(&srv.rtmp_url(&key), 20);
    wait_for_live(srv.http, "alice").await;
    // Let a few keyframes (one a second) arrive.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;

    let r = api(srv.http, "GET", "/api/channels/alice/health", &h, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["live"], true, "{v}");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(1280), Some(720)),
        "{v}"
    );
    assert_eq!(v["bframes"], false, "{v}");
    assert!(
        v["audio_codec"].as_str().is_some_and(|c| !c.is_empty()),
        "{v}"
    );
    let fps = v["avg_fps"].as_f64().expect("avg_fps");
    assert!((10.0..=40.0).contains(&fps), "fps of a 30 fps source: {v}");
    let gop = v["avg_keyframe_interval_secs"]
        .as_f64()
        .expect("keyframe interval");
    assert!((0.5..=2.0).contains(&gop), "keyframe every second: {v}");
    assert!(
        v["avg_bitrate_bps"].as_f64().unwrap_or(0.0) > 10_000.0,
        "{v}"
    );
    assert_eq!(v["viewers"]["webrtc"], 0, "{v}");

    let other = bearer(&bob);
    let r = api(
        srv.http,
        "GET",
        "/api/channels/alice/health",
        &[("Authorization", other.as_str())],
        None,
    )
    .await;
    assert_error(&r, 403);
    let r = api(srv.http, "GET", "/api/channels/alice/health", &[], None).await;
    assert_error(&r, 401);
    let r = api(srv.http, "GET", "/api/channels/nobody/health", &h, None).await;
    assert_error(&r, 404);
    srv.stop().await;
}

#[tokio::test]
async fn web_app_routes_do_not_shadow_the_api() {
    let srv = TestServer::start().await;
    for page in ["/", "/c/demo", "/login", "/register", "/dashboard"] {
        let r = http(srv.http, "GET", page, &[], b"").await;
        assert_eq!(r.status, 200, "{page}");
        assert_eq!(
            r.header("content-type"),
            Some("text/html; charset=utf-8"),
            "{page}"
        );
        assert_eq!(r.header("cache-control"), Some("no-cache"), "{page}");
        assert!(r.text().contains("<html"), "{page}: {}", r.text());
    }
    // Hashed assets named by the page are immutable and typed.
    let index = http(srv.http, "GET", "/", &[], b"").await.text();
    if let Some(start) = index.find("/assets/") {
        let end = index[start..]
            .find('"')
            .map(|e| start + e)
            .expect("quoted asset");
        let path = &index[start..end];
        let r = http(srv.http, "GET", path, &[], b"").await;
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.header("cache-control")
                .unwrap_or_default()
                .contains("immutable"),
            "{path}"
        );
        let ct = r.header("content-type").unwrap_or_default();
        assert!(
            ct.starts_with("text/javascript") || ct.starts_with("text/css"),
            "{path}: {ct}"
        );
    }
    // Unknown paths stay JSON 404s; API, HLS and WHEP routes answer as before.
    for path in [
        "/nope",
        "/c",
        "/c/demo/extra",
        "/assets/missing.js",
        "/api/nope",
    ] {
        let r = http(srv.http, "GET", path, &[], b"").await;
        assert_error(&r, 404);
    }
    let r = http(srv.http, "GET", "/api/channels", &[], b"").await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap_or_default()
        .starts_with("application/json"));
    let r = http(srv.http, "GET", "/healthz", &[], b"").await;
    assert_eq!(r.text(), "ok\n");
    srv.stop().await;
}
