//! `/api/openapi.json` stays true to the server in a scenario that reaches
//! every operation's success (a real ffmpeg publishing over RTMP, WebRTC
//! offers from webrtc-rs; the operations that send mail have their own
//! scenario, in tests/accounts_openapi_mail.rs): every answer's
//! status is documented for its operation, its content type is one
//! documented for that status, and a JSON body validates against the
//! documented schema, made strict: a field the schema does not name fails
//! it. The document's own checks: tests/openapi_document.rs.

mod common;

use common::accounts::user_with_role;
use common::openapi::{tagged, Body, Checker};
use common::scenario_clients::{head_of_stream, offer, playlist_files};
use common::{ffmpeg_publish, password_of, signup, wait_for_live, ws_connect, TestServer};
use onair::db::Role;
use onair_loadtest::http::http;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_matches_its_documented_schema() {
    let srv = TestServer::start().await;
    let a = srv.http;
    let doc = http(a, "GET", "/api/openapi.json", &[], b"").await.json();
    assert_eq!(doc, onair::http::openapi_document(), "served as generated");
    let mut c = Checker::new(doc);

    // Accounts.
    let r = c
        .call(
            a,
            "GET",
            ("/api/openapi.json", "/api/openapi.json"),
            &[],
            Body::None,
        )
        .await;
    assert_eq!(r.status, 200);
    let reg = ("/api/auth/register", "/api/auth/register");
    let alice_pw = password_of("alice");
    let r = c
        .call(
            a,
            "POST",
            reg,
            &[],
            Body::Json(json!({"username": "alice", "password": alice_pw})),
        )
        .await;
    assert_eq!(r.status, 201);
    let r = c
        .call(
            a,
            "POST",
            reg,
            &[],
            Body::Json(json!({"username": "alice", "password": alice_pw})),
        )
        .await;
    assert_eq!(r.status, 409);
    let r = c
        .call(
            a,
            "POST",
            reg,
            &[],
            Body::Json(json!({"username": "x", "password": "p", "extra": 1})),
        )
        .await;
    assert_eq!(r.status, 400);
    let login = ("/api/auth/login", "/api/auth/login");
    let r = c
        .call(
            a,
            "POST",
            login,
            &[],
            Body::Json(json!({"username": "alice", "password": "wrong-password"})),
        )
        .await;
    assert_eq!(r.status, 401);
    let r = c
        .call(
            a,
            "POST",
            login,
            &[],
            Body::Json(json!({"username": "alice", "password": alice_pw})),
        )
        .await;
    assert_eq!(r.status, 200);
    let alice = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    let alice = [("Authorization", alice.as_str())];
    let bob_token = signup(a, "bob").await;
    let bob = format!("Bearer {bob_token}");
    let bob = [("Authorization", bob.as_str())];
    let admin_token = user_with_role(&srv, "root", Role::Admin).await;
    let admin = format!("Bearer {admin_token}");
    let admin = [("Authorization", admin.as_str())];

    let me = ("/api/me", "/api/me");
    assert_eq!(c.call(a, "GET", me, &[], Body::None).await.status, 401);
    let r = c.call(a, "GET", me, &alice, Body::None).await;
    assert_eq!(r.status, 200);
    let alice_key = r.json()["channel"]["stream_key"]
        .as_str()
        .unwrap()
        .to_string();
    let r = c
        .call(
            a,
            "GET",
            ("/api/ice-servers", "/api/ice-servers"),
            &[],
            Body::None,
        )
        .await;
    assert_eq!(r.status, 200);
    let r = c
        .call(a, "GET", ("/healthz", "/healthz"), &[], Body::None)
        .await;
    assert_eq!(r.status, 200);

    // Channels and categories.
    let cat = ("/api/categories/{slug}", "/api/categories/music");
    let body = || Body::Json(json!({"name": "Music"}));
    assert_eq!(c.call(a, "PUT", cat, &alice, body()).await.status, 403);
    assert_eq!(c.call(a, "PUT", cat, &admin, body()).await.status, 200);
    let r = c
        .call(
            a,
            "GET",
            ("/api/categories", "/api/categories"),
            &[],
            Body::None,
        )
        .await;
    assert_eq!(r.status, 200);
    let r = c
        .call(
            a,
            "GET",
            ("/api/channels", "/api/channels?limit=0"),
            &[],
            Body::None,
        )
        .await;
    assert_eq!(r.status, 400);
    let ch = ("/api/channels/{name}", "/api/channels/alice");
    let edit = json!({"title": "Live <b>now</b>", "tags": ["a", "b"], "category": "music", "slow_mode_secs": 0});
    assert_eq!(
        c.call(a, "PATCH", ch, &bob, Body::Json(edit.clone()))
            .await
            .status,
        403
    );
    assert_eq!(
        c.call(a, "PATCH", ch, &alice, Body::Json(edit))
            .await
            .status,
        200
    );
    let gone = ("/api/channels/{name}", "/api/channels/nobody");
    assert_eq!(c.call(a, "GET", gone, &[], Body::None).await.status, 404);
    let oembed = |q: &'static str| ("/api/oembed", q);
    let r = c
        .call(
            a,
            "GET",
            oembed("/api/oembed?url=http%3A%2F%2Ftv.example%2Fc%2Falice&maxwidth=320"),
            &[],
            Body::None,
        )
        .await;
    assert_eq!((r.status, r.json()["width"].clone()), (200, json!(320)));
    let r = c
        .call(
            a,
            "GET",
            oembed("/api/oembed?url=http%3A%2F%2Ftv.example%2Fc%2Fnobody"),
            &[],
            Body::None,
        )
        .await;
    assert_eq!(r.status, 404);
    let r = c
        .call(
            a,
            "GET",
            oembed("/api/oembed?url=http%3A%2F%2Ftv.example%2Fc%2Falice&format=xml"),
            &[],
            Body::None,
        )
        .await;
    assert_eq!(r.status, 501);
    let key = ("/api/channels/{name}/key", "/api/channels/alice/key");
    assert_eq!(c.call(a, "GET", key, &bob, Body::None).await.status, 403);
    assert_eq!(c.call(a, "GET", key, &alice, Body::None).await.status, 200);
    let like = ("/api/channels/{name}/like", "/api/channels/alice/like");
    assert_eq!(c.call(a, "POST", like, &bob, Body::None).await.status, 200);
    assert_eq!(c.call(a, "POST", like, &bob, Body::None).await.status, 429);

    // The schedule.
    let sched = (
        "/api/channels/{name}/schedule",
        "/api/channels/alice/schedule",
    );
    let when = json!({"title": "Next", "starts_at": "2099-01-01T18:00:00Z", "ends_at": "2099-01-01T19:00:00Z"});
    let r = c.call(a, "POST", sched, &alice, Body::Json(when)).await;
    assert_eq!(r.status, 201);
    let id = common::json_id(&r.json()["id"]);
    assert_eq!(c.call(a, "GET", sched, &[], Body::None).await.status, 200);
    assert_eq!(c.call(a, "GET", ch, &[], Body::None).await.status, 200);
    let r = c
        .call(
            a,
            "GET",
            ("/api/channels", "/api/channels"),
            &[],
            Body::None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(
        r.json()["items"][0]["next_broadcast"].is_object(),
        "{}",
        r.text()
    );
    let one = format!("/api/channels/alice/schedule/{id}");
    let one = ("/api/channels/{name}/schedule/{id}", one.as_str());
    let r = c
        .call(
            a,
            "PATCH",
            one,
            &alice,
            Body::Json(json!({"title": "Later"})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        c.call(a, "DELETE", one, &alice, Body::None).await.status,
        204
    );
    assert_eq!(
        c.call(a, "DELETE", one, &alice, Body::None).await.status,
        404
    );

    // Chat and moderation.
    let chat = ("/api/channels/{name}/chat", "/api/channels/alice/chat");
    let r = c
        .call(
            a,
            "POST",
            chat,
            &bob,
            Body::Json(json!({"text": "<i>hi</i>"})),
        )
        .await;
    assert_eq!(r.status, 201);
    let msg = common::json_id(&r.json()["id"]);
    let r = c.call(a, "GET", chat, &[], Body::None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["items"][0]["text"], "<i>hi</i>");
    let del = format!("/api/channels/alice/chat/{msg}");
    let del = ("/api/channels/{name}/chat/{id}", del.as_str());
    assert_eq!(
        c.call(a, "DELETE", del, &alice, Body::None).await.status,
        204
    );
    let bans = ("/api/channels/{name}/bans", "/api/channels/alice/bans");
    let r = c
        .call(
            a,
            "POST",
            bans,
            &alice,
            Body::Json(json!({"username": "bob"})),
        )
        .await;
    assert_eq!(r.status, 204);
    let r = c
        .call(a, "POST", chat, &bob, Body::Json(json!({"text": "again"})))
        .await;
    assert_eq!(r.status, 403);
    let unban = (
        "/api/channels/{name}/bans/{username}",
        "/api/channels/alice/bans/bob",
    );
    assert_eq!(
        c.call(a, "DELETE", unban, &alice, Body::None).await.status,
        204
    );
    let slow = (
        "/api/channels/{name}/slow_mode",
        "/api/channels/alice/slow_mode",
    );
    let r = c
        .call(a, "POST", slow, &alice, Body::Json(json!({"seconds": 2})))
        .await;
    assert_eq!(r.status, 204);
    let ws = ("/ws/{channel}", "/ws/alice");
    assert_eq!(c.call(a, "GET", ws, &[], Body::None).await.status, 400);
    let _socket = ws_connect(a, "/ws/alice", &[]).await;
    // The upgrade itself (the client checked the 101).
    c.seen
        .entry(("get".into(), "/ws/{channel}".into()))
        .or_default()
        .insert(101);

    // Live: health, thumbnail, LL-HLS, HTTP-FLV, WHEP.
    let health = ("/api/channels/{name}/health", "/api/channels/alice/health");
    let r = c.call(a, "GET", health, &alice, Body::None).await;
    assert_eq!((r.status, r.json()["live"].clone()), (200, json!(false)));
    let end_live = ("/api/channels/{name}/live", "/api/channels/alice/live");
    assert_eq!(
        c.call(a, "DELETE", end_live, &alice, Body::None)
            .await
            .status,
        404
    );
    let mut ff = ffmpeg_publish(&srv.rtmp_url(&alice_key), 60);
    wait_for_live(a, "alice").await;
    let thumb = (
        "/api/channels/{channel}/thumbnail.jpg",
        "/api/channels/alice/thumbnail.jpg",
    );
    let start = Instant::now();
    loop {
        let r = c.call(a, "GET", thumb, &[], Body::None).await;
        if r.status == 200 {
            assert!(r.body.starts_with(&[0xff, 0xd8]), "a JPEG");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "no thumbnail");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let r = c.call(a, "GET", health, &alice, Body::None).await;
    assert_eq!((r.status, r.json()["live"].clone()), (200, json!(true)));
    // Live: the oEmbed answer has the thumbnail and its size.
    let r = c
        .call(
            a,
            "GET",
            oembed("/api/oembed?url=http%3A%2F%2Ftv.example%2Fembed%2Falice"),
            &[],
            Body::None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.json()["thumbnail_width"].is_u64(), "{}", r.text());

    let hls = "/hls/{channel}/{file}";
    let start = Instant::now();
    let playlist = loop {
        let r = c
            .call(a, "GET", (hls, "/hls/alice/index.m3u8"), &[], Body::None)
            .await;
        let files = if r.status == 200 {
            playlist_files(&r.text())
        } else {
            Vec::new()
        };
        if files.iter().any(|f| f.ends_with(".m4s")) {
            break files;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no segment");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let media = "/hls/{channel}/{stream}/{file}";
    for f in playlist.iter().take(3) {
        let path = format!("/hls/alice/{f}");
        assert_eq!(
            c.call(a, "GET", (media, &path), &[], Body::None)
                .await
                .status,
            200,
            "{path}"
        );
    }
    let bad = (hls, "/hls/alice/index.m3u8?_HLS_part=1");
    assert_eq!(c.call(a, "GET", bad, &[], Body::None).await.status, 400);
    assert_eq!(
        c.call(a, "GET", (hls, "/hls/alice/x.txt"), &[], Body::None)
            .await
            .status,
        404
    );
    let r = head_of_stream(a, "/flv/alice.flv").await;
    c.check("GET", "/flv/{file}", &r, false);
    assert_eq!(r.status, 200);
    let r = c
        .call(
            a,
            "GET",
            ("/flv/{file}", "/flv/nobody.flv"),
            &[],
            Body::None,
        )
        .await;
    assert_eq!(r.status, 404);

    let (_viewer, sdp) = offer(false);
    let whep = ("/whep/{channel}", "/whep/alice");
    let r = c
        .call(
            a,
            "POST",
            whep,
            &[],
            Body::Raw("text/plain", sdp.as_bytes()),
        )
        .await;
    assert_eq!(r.status, 415);
    let r = c
        .call(
            a,
            "POST",
            whep,
            &[],
            Body::Raw("application/sdp", sdp.as_bytes()),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let session = r.header("location").unwrap().to_string();
    let etag = r.header("etag").unwrap().to_string();
    let s = ("/whep/{channel}/{session}", session.as_str());
    let frag = b"a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n";
    let trickle = "application/trickle-ice-sdpfrag";
    let r = c
        .call(
            a,
            "PATCH",
            s,
            &[("If-Match", "\"other\"")],
            Body::Raw(trickle, frag),
        )
        .await;
    assert_eq!(r.status, 412);
    let r = c
        .call(
            a,
            "PATCH",
            s,
            &[("If-Match", "*")],
            Body::Raw(trickle, frag),
        )
        .await;
    assert_eq!(r.status, 422);
    let r = c
        .call(
            a,
            "PATCH",
            s,
            &[("If-Match", &etag)],
            Body::Raw(trickle, frag),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(c.call(a, "DELETE", s, &[], Body::None).await.status, 200);
    assert_eq!(c.call(a, "DELETE", s, &[], Body::None).await.status, 404);

    // WHIP, on bob's channel.
    let bob_key = http(a, "GET", "/api/channels/bob/key", &bob, b"")
        .await
        .json()["stream_key"]
        .as_str()
        .unwrap()
        .to_string();
    let (_publisher, sdp) = offer(true);
    let whip = ("/whip", "/whip");
    let r = c
        .call(
            a,
            "POST",
            whip,
            &[],
            Body::Raw("application/sdp", sdp.as_bytes()),
        )
        .await;
    assert_eq!(r.status, 401);
    let auth = format!("Bearer {bob_key}");
    let r = c
        .call(
            a,
            "POST",
            whip,
            &[("Authorization", &auth)],
            Body::Raw("application/sdp", sdp.as_bytes()),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let session = r.header("location").unwrap().to_string();
    let s = ("/whip/{session}", session.as_str());
    let r = c.call(a, "PATCH", s, &[], Body::Raw(trickle, frag)).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(c.call(a, "DELETE", s, &[], Body::None).await.status, 200);

    // The broadcast, live and then past.
    let list = (
        "/api/channels/{channel}/broadcasts",
        "/api/channels/alice/broadcasts",
    );
    let r = c.call(a, "GET", list, &[], Body::None).await;
    assert_eq!(r.status, 200);
    let id = common::json_id(&r.json()["items"][0]["id"]);
    let one = format!("/api/channels/alice/broadcasts/{id}");
    let one = ("/api/channels/{channel}/broadcasts/{id}", one.as_str());
    assert_eq!(
        c.call(a, "DELETE", one, &alice, Body::None).await.status,
        409
    );
    let dl = format!("/vod/{id}/download.mp4");
    let dl = ("/vod/{id}/download.mp4", dl.as_str());
    assert_eq!(c.call(a, "GET", dl, &[], Body::None).await.status, 409);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        c.call(a, "DELETE", end_live, &alice, Body::None)
            .await
            .status,
        204
    );
    let _ = ff.kill().await;
    let start = Instant::now();
    loop {
        let r = c.call(a, "GET", list, &[], Body::None).await;
        if r.json()["items"][0]["download"].is_string() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "never ended: {}",
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let r = c
        .call(
            a,
            "PATCH",
            one,
            &alice,
            Body::Json(json!({"title": "Recorded", "published": true})),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = c.call(a, "GET", one, &[], Body::None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["title"], "Recorded");
    let other = format!("/api/channels/bob/broadcasts/{id}");
    let other = ("/api/channels/{channel}/broadcasts/{id}", other.as_str());
    assert_eq!(c.call(a, "GET", other, &[], Body::None).await.status, 404);
    let vod = "/vod/{id}/{file}";
    let index = format!("/vod/{id}/index.m3u8");
    let r = c.call(a, "GET", (vod, &index), &[], Body::None).await;
    assert_eq!(r.status, 200);
    for f in playlist_files(&r.text()).iter().take(2) {
        let path = format!("/vod/{id}/{f}");
        assert_eq!(
            c.call(a, "GET", (vod, &path), &[], Body::None).await.status,
            200,
            "{path}"
        );
    }
    let poster = format!("/vod/{id}/poster.jpg");
    let r = c.call(a, "GET", (vod, &poster), &[], Body::None).await;
    assert!(matches!(r.status, 200 | 404), "{}", r.status);
    assert_eq!(c.call(a, "GET", dl, &[], Body::None).await.status, 200);
    let r = c
        .call(a, "GET", dl, &[("Range", "bytes=0-99")], Body::None)
        .await;
    assert_eq!((r.status, r.body.len()), (206, 100));
    let r = c
        .call(a, "GET", dl, &[("Range", "bytes=999999999-")], Body::None)
        .await;
    assert_eq!(r.status, 416);
    assert_eq!(
        c.call(a, "DELETE", one, &alice, Body::None).await.status,
        204
    );
    let r = c
        .call(a, "GET", ("/metrics", "/metrics"), &[], Body::None)
        .await;
    assert_eq!(r.status, 200);

    // The sign-up policy and invites.
    let policy = ("/api/auth/registration", "/api/auth/registration");
    let r = c.call(a, "GET", policy, &[], Body::None).await;
    assert_eq!(r.status, 200);
    let invites = ("/api/invites", "/api/invites");
    let body = || Body::Json(json!({"broadcaster": true, "hours": 2}));
    assert_eq!(c.call(a, "POST", invites, &bob, body()).await.status, 403);
    let r = c
        .call(a, "POST", invites, &admin, Body::Json(json!({"hours": 0})))
        .await;
    assert_eq!(r.status, 400);
    let r = c.call(a, "POST", invites, &admin, body()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let invite = r.json()["token"].as_str().unwrap().to_string();
    let dana = json!({"username": "dana", "password": password_of("dana"), "invite": invite});
    let r = c.call(a, "POST", reg, &[], Body::Json(dana.clone())).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let dana = json!({"username": "dane", "password": password_of("dane"), "invite": invite});
    let r = c.call(a, "POST", reg, &[], Body::Json(dana)).await;
    assert_eq!(r.status, 403, "an invite works once");
    let r = c.call(a, "GET", invites, &admin, Body::None).await;
    assert_eq!(r.status, 200);
    let r = c.call(a, "POST", invites, &admin, body()).await;
    let id = r.json()["invite"]["id"].as_str().unwrap().to_string();
    let one = ("/api/invites/{id}", format!("/api/invites/{id}"));
    let one = (one.0, one.1.as_str());
    assert_eq!(
        c.call(a, "DELETE", one, &admin, Body::None).await.status,
        204
    );
    assert_eq!(
        c.call(a, "DELETE", one, &admin, Body::None).await.status,
        404
    );

    // The admin console: users, a reset link, the audit log.
    let users = ("/api/users", "/api/users?q=bo&limit=5");
    let r = c.call(a, "GET", users, &admin, Body::None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(c.call(a, "GET", users, &bob, Body::None).await.status, 403);
    let bans = ("/api/bans", "/api/bans");
    let body = Body::Json(json!({"username": "bob", "seconds": 60}));
    assert_eq!(c.call(a, "POST", bans, &admin, body).await.status, 204);
    let r = c.call(a, "GET", bans, &admin, Body::None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let unban = ("/api/bans/{username}", "/api/bans/bob");
    assert_eq!(
        c.call(a, "DELETE", unban, &admin, Body::None).await.status,
        204
    );
    let audit = ("/api/audit", "/api/audit?limit=3");
    let r = c.call(a, "GET", audit, &admin, Body::None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["items"][0]["action"], "site.unban");

    // The account's end, and admin actions on others.
    let pw = ("/api/auth/password", "/api/auth/password");
    let body = json!({"old_password": password_of("bob"), "new_password": "bobs-new-password"});
    assert_eq!(
        c.call(a, "POST", pw, &bob, Body::Json(body)).await.status,
        204
    );
    let user = ("/api/users/{username}", "/api/users/bob");
    let r = c
        .call(
            a,
            "PATCH",
            user,
            &admin,
            Body::Json(json!({"role": "moderator"})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        c.call(
            a,
            "PATCH",
            user,
            &alice,
            Body::Json(json!({"role": "admin"}))
        )
        .await
        .status,
        403
    );
    assert_eq!(
        c.call(a, "DELETE", user, &admin, Body::None).await.status,
        204
    );
    assert_eq!(
        c.call(a, "DELETE", user, &admin, Body::None).await.status,
        404
    );
    let cat_gone = ("/api/categories/{slug}", "/api/categories/music");
    assert_eq!(
        c.call(a, "DELETE", cat_gone, &admin, Body::None)
            .await
            .status,
        204
    );
    let key_post = ("/api/channels/{name}/key", "/api/channels/alice/key");
    assert_eq!(
        c.call(a, "POST", key_post, &alice, Body::None).await.status,
        200
    );
    let out = ("/api/auth/logout", "/api/auth/logout");
    assert_eq!(c.call(a, "POST", out, &admin, Body::None).await.status, 204);
    assert_eq!(
        c.call(a, "DELETE", me, &alice, Body::None).await.status,
        204
    );
    assert_eq!(c.call(a, "GET", me, &alice, Body::None).await.status, 401);

    // Sessions: two devices, one ended from the other, then everywhere.
    let first = signup(a, "dave").await;
    let second = common::login(a, "dave", &password_of("dave")).await;
    let (first, second) = (format!("Bearer {first}"), format!("Bearer {second}"));
    let (first, second) = (
        [("Authorization", first.as_str())],
        [("Authorization", second.as_str())],
    );
    let list = ("/api/me/sessions", "/api/me/sessions");
    let r = c.call(a, "GET", list, &second, Body::None).await;
    assert_eq!(r.status, 200);
    let items = r.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2, "{items:?}");
    let other = items.iter().find(|i| i["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let one = format!("/api/me/sessions/{other}");
    let one = ("/api/me/sessions/{id}", one.as_str());
    assert_eq!(
        c.call(a, "DELETE", one, &second, Body::None).await.status,
        204
    );
    assert_eq!(
        c.call(a, "DELETE", one, &second, Body::None).await.status,
        404
    );
    assert_eq!(c.call(a, "GET", me, &first, Body::None).await.status, 401);
    let all = ("/api/auth/logout-all", "/api/auth/logout-all");
    assert_eq!(
        c.call(a, "POST", all, &second, Body::None).await.status,
        204
    );
    assert_eq!(
        c.call(a, "GET", list, &second, Body::None).await.status,
        401
    );

    // The sign-in providers' operations need a provider: tests/oidc.rs;
    // the profile pictures' need pictures: tests/avatars.rs; mail's an SMTP
    // server: tests/accounts_openapi_mail.rs.
    let unreached = c.unreached(|op| {
        !["providers", "avatars", "mail"]
            .iter()
            .any(|t| tagged(op, t))
    });
    assert!(
        unreached.is_empty(),
        "never answered with success in the scenario: {unreached:?}"
    );
    srv.stop().await;
}
