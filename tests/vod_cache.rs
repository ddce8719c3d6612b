//! Caching of recordings: a published one may be kept by shared caches
//! (`Cache-Control: public`); a hidden one, which only its owner (and
//! admins) may see, is never served `public`: `private, no-store` on its
//! playlist, init segment, segments and poster alike.

mod common;

use common::{api, bearer, signup, TestServer};
use serde_json::json;

const FILES: [&str; 4] = ["index.m3u8", "init0.mp4", "s0.m4s", "poster.jpg"];

/// A finished broadcast of `alice` with files on disk (their bytes do not
/// matter here, only how they are served).
async fn recorded_broadcast(srv: &TestServer, ended: bool) -> i64 {
    let now_ms = onair::chat::unix_secs() * 1000;
    let row = srv
        .db
        .create_broadcast("alice", None, now_ms, true)
        .await
        .unwrap();
    if ended {
        srv.db
            .finish_broadcast(row.id, now_ms + 2000, 2000, 100)
            .await
            .unwrap();
    }
    let dir = srv.dir.path().join("recordings").join(row.id.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    let mut playlist = String::from(
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n\
         #EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-MAP:URI=\"init0.mp4\"\n#EXTINF:2.00000,\ns0.m4s\n",
    );
    if ended {
        playlist.push_str("#EXT-X-ENDLIST\n");
    }
    std::fs::write(dir.join("index.m3u8"), playlist).unwrap();
    for f in &FILES[1..] {
        std::fs::write(dir.join(f), b"media").unwrap();
    }
    row.id
}

async fn publish(srv: &TestServer, owner: &str, id: i64, published: bool) {
    let r = api(
        srv.http,
        "PATCH",
        &format!("/api/channels/alice/broadcasts/{id}"),
        &[("Authorization", &bearer(owner))],
        Some(&json!({ "published": published })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_recordings_are_never_cached_publicly() {
    let srv = TestServer::start().await;
    let alice = signup(srv.http, "alice").await;
    let bob = signup(srv.http, "bob").await;
    let finished = recorded_broadcast(&srv, true).await;
    let in_progress = recorded_broadcast(&srv, false).await;

    // Published (the default): public, for anyone, every file.
    for f in FILES {
        let r = api(srv.http, "GET", &format!("/vod/{finished}/{f}"), &[], None).await;
        assert_eq!(r.status, 200, "{f}: {}", r.text());
        let cc = r.header("cache-control").unwrap_or_default();
        assert!(cc.starts_with("public"), "published {f}: {cc}");
    }

    // Hidden: strangers and other users get 404; the owner gets every file,
    // never `public`.
    for id in [finished, in_progress] {
        publish(&srv, &alice, id, false).await;
        for f in FILES {
            let path = format!("/vod/{id}/{f}");
            for who in [None, Some(&bob)] {
                let auth = who.map(|t| bearer(t));
                let h: Vec<(&str, &str)> =
                    auth.iter().map(|a| ("Authorization", a.as_str())).collect();
                let r = api(srv.http, "GET", &path, &h, None).await;
                assert_eq!(r.status, 404, "{path} for {who:?}");
                let cc = r.header("cache-control").unwrap_or_default();
                assert!(!cc.contains("public"), "{path}: {cc}");
            }
            let r = api(
                srv.http,
                "GET",
                &path,
                &[("Authorization", &bearer(&alice))],
                None,
            )
            .await;
            assert_eq!(r.status, 200, "owner {path}: {}", r.text());
            assert_eq!(
                r.header("cache-control"),
                Some("private, no-store"),
                "hidden {path}"
            );
        }
    }

    // Published again: public again.
    publish(&srv, &alice, finished, true).await;
    let r = api(
        srv.http,
        "GET",
        &format!("/vod/{finished}/s0.m4s"),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("cache-control")
        .is_some_and(|c| c.starts_with("public")));
}
