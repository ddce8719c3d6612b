//! `/api/openapi.json` stays true to the server:
//! - every route in `src/http` (but the web app's pages and ACME's
//!   challenge) is documented, and every documented operation is routed;
//! - in a scenario that reaches every operation's success (a real ffmpeg
//!   publishing over RTMP, WebRTC offers from webrtc-rs, mail through a real
//!   SMTP server), every answer's status is documented for its operation,
//!   its content type is one documented for that status, and a JSON body
//!   validates against the documented schema, made strict: a field the
//!   schema does not name fails it.

mod common;

use common::accounts::user_with_role;
use common::openapi::{documented_operations, routes_in_source, strict, tagged, Body, Checker};
use common::smtp::{token_in, Smtp};
use common::{ffmpeg_publish, password_of, signup, wait_for_live, ws_connect, TestServer};
use onair::db::Role;
use onair_loadtest::http::{http, HttpResponse};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn every_route_is_documented_and_every_documented_operation_is_routed() {
    let doc = onair::http::openapi_document();
    assert_eq!(doc["openapi"], "3.1.0");
    let routed: BTreeSet<_> = routes_in_source().into_iter().collect();
    assert!(
        routed.len() >= 40,
        "the parser finds the routes: {routed:?}"
    );
    let documented = documented_operations(&doc);
    for (method, path) in &routed {
        assert!(
            documented.contains(&(method.clone(), path.clone())),
            "{} {path} is routed but not in /api/openapi.json",
            method.to_uppercase()
        );
    }
    for (method, path) in &documented {
        assert!(
            routed.contains(&(method.clone(), path.clone())),
            "{} {path} is documented but not routed",
            method.to_uppercase()
        );
    }
    let mut ids = BTreeSet::new();
    for (method, path) in &documented {
        let op = &doc["paths"][path][method];
        assert!(
            op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{method} {path} has no summary"
        );
        let id = op["operationId"].as_str().unwrap_or("");
        assert!(ids.insert(id.to_string()), "operationId {id:?} twice");
        for (code, response) in op["responses"].as_object().unwrap() {
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "{method} {path} {code} has no description"
            );
        }
        for param in path.split('/').filter(|s| s.starts_with('{')) {
            let name = param.trim_matches(|c| c == '{' || c == '}');
            assert!(
                op["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path")),
                "{method} {path}: path parameter {name} is not documented"
            );
        }
    }
}

/// The check itself can fail: an undocumented field, a missing required
/// one, a wrong type or a malformed date is refused, through `$ref`,
/// `allOf` (flattened rows) and nullable `oneOf`.
#[test]
fn strict_schemas_refuse_what_the_document_does_not_say() {
    let doc = onair::http::openapi_document();
    let valid = |name: &str, v: Value| {
        let schema = strict(
            &doc,
            &json!({"$ref": format!("#/components/schemas/{name}")}),
        );
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&schema)
            .unwrap()
            .is_valid(&v)
    };
    assert!(valid("ErrorBody", json!({"error": "x"})));
    assert!(!valid("ErrorBody", json!({"error": "x", "detail": 1})));
    assert!(!valid("ErrorBody", json!({})));
    let item = json!({"id": "1", "channel": "a", "title": null, "started_at": 1, "ended_at": null,
        "duration_ms": 0, "size_bytes": 0, "recorded": true, "live": true, "hidden": false,
        "playlist": null, "poster": null, "download": null});
    assert!(valid("BroadcastItem", item.clone()));
    let mut extra = item.clone();
    extra["secret"] = json!("x");
    assert!(!valid("BroadcastItem", extra));
    let mut wrong = item.clone();
    wrong["recorded"] = json!("yes");
    assert!(!valid("BroadcastItem", wrong));
    // Ids are strings: a number past 2^53 would not survive a browser.
    let mut numeric = item;
    numeric["id"] = json!(1);
    assert!(!valid("BroadcastItem", numeric));
    let scheduled = json!({"id": "1", "channel": "a", "title": "t",
        "starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-01T01:00:00Z"});
    assert!(valid("ScheduledView", scheduled.clone()));
    let mut bad_time = scheduled.clone();
    bad_time["starts_at"] = json!("tomorrow");
    assert!(!valid("ScheduledView", bad_time));
    let mut nested = scheduled;
    nested["extra"] = json!(1);
    let mut page = json!({"items": [], "next_cursor": null});
    assert!(valid("ChannelPage", page.clone()));
    page["items"] = json!([{"name": "a", "title": "", "description": "", "tags": [], "likes": 0,
        "slow_mode_secs": 0, "live": false, "viewers": 0, "next_broadcast": nested}]);
    assert!(!valid("ChannelPage", page));
}

/// A streaming answer's status and headers only (HTTP-FLV lasts as long as
/// the broadcast).
async fn head_of_stream(addr: SocketAddr, path: &str) -> HttpResponse {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .expect("a head within 10 s")
            .unwrap();
        assert!(n > 0, "closed before the head");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: Vec::new(),
    }
}

/// A WebRTC offer from webrtc-rs: receive-only with a data channel, as a
/// WHEP viewer makes; or sending H.264 and Opus, as a WHIP publisher does.
fn offer(publish: bool) -> (rtc::peer_connection::RTCPeerConnection, String) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = socket.local_addr().unwrap();
    let mut pc = onair_loadtest::whep::peer_connection("42e01f", Default::default()).expect("peer");
    let kinds = [
        (RtpCodecKind::Audio, MIME_TYPE_OPUS, 48_000, 2),
        (RtpCodecKind::Video, MIME_TYPE_H264, 90_000, 0),
    ];
    for (i, (kind, mime, clock_rate, channels)) in kinds.into_iter().enumerate() {
        if !publish {
            let recv = RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            };
            pc.add_transceiver_from_kind(kind, Some(recv))
                .expect("transceiver");
            continue;
        }
        let codec = RTCRtpCodec {
            mime_type: mime.into(),
            clock_rate,
            channels,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![],
        };
        let encoding = RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(1000 + i as u32),
                ..Default::default()
            },
            codec,
            ..Default::default()
        };
        let label = format!("track{i}");
        pc.add_track(MediaStreamTrack::new(
            "openapi".into(),
            label.clone(),
            label,
            kind,
            vec![encoding],
        ))
        .expect("track");
    }
    if !publish {
        pc.create_data_channel("chat", None).expect("data channel");
    }
    let sdp = onair_loadtest::whep::offer_with_host_candidate(&mut pc, local).expect("offer");
    (pc, sdp)
}

/// Lines of a playlist naming files (`URI="..."` attributes and plain
/// lines), in order.
fn playlist_files(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(i) = line.find("URI=\"") {
            let rest = &line[i + 5..];
            out.push(rest[..rest.find('"').unwrap()].to_string());
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            out.push(line.trim().to_string());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_matches_its_documented_schema() {
    let Some(mut smtp) = Smtp::start().await else {
        return;
    };
    let url = format!("smtp://127.0.0.1:{}", smtp.port);
    let srv = TestServer::start_with(move |c| c.mail.smtp_url = Some(url)).await;
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
    for f in playlist.iter().take(3) {
        let path = format!("/hls/alice/{f}");
        assert_eq!(
            c.call(a, "GET", (hls, &path), &[], Body::None).await.status,
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

    // Mail: verification and reset through the SMTP server.
    let carol = json!({"username": "carol", "password": password_of("carol"), "email": "carol@example.com"});
    assert_eq!(
        c.call(a, "POST", reg, &[], Body::Json(carol)).await.status,
        201
    );
    let _first = smtp.next_mail().await;
    let carol_token = common::login(a, "carol", &password_of("carol")).await;
    let carol = format!("Bearer {carol_token}");
    let carol = [("Authorization", carol.as_str())];
    let send = ("/api/auth/email/send", "/api/auth/email/send");
    assert_eq!(
        c.call(a, "POST", send, &carol, Body::None).await.status,
        202
    );
    let token = token_in(&smtp.next_mail().await);
    let verify = ("/api/auth/email/verify", "/api/auth/email/verify");
    let r = c
        .call(a, "POST", verify, &[], Body::Json(json!({"token": token})))
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        c.call(a, "POST", send, &carol, Body::None).await.status,
        409
    );
    let change = ("/api/me/email", "/api/me/email");
    let body = json!({"email": "carol@example.com", "password": password_of("carol")});
    let r = c.call(a, "POST", change, &carol, Body::Json(body)).await;
    assert_eq!(r.status, 409, "already the verified address");
    let body = json!({"email": "carol@example.net", "password": "not hers"});
    let r = c.call(a, "POST", change, &carol, Body::Json(body)).await;
    assert_eq!(r.status, 403);
    let body = json!({"email": "carol@example.net", "password": password_of("carol")});
    let r = c.call(a, "POST", change, &carol, Body::Json(body)).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let mails = [smtp.next_mail().await, smtp.next_mail().await];
    let link = mails
        .iter()
        .find(|m| m.contains("Confirm your new email"))
        .expect("the confirmation mail");
    let r = c
        .call(
            a,
            "POST",
            verify,
            &[],
            Body::Json(json!({"token": token_in(link)})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let reset = ("/api/auth/password/reset", "/api/auth/password/reset");
    let r = c
        .call(
            a,
            "POST",
            reset,
            &[],
            Body::Json(json!({"username": "carol"})),
        )
        .await;
    assert_eq!(r.status, 202);
    let token = token_in(&smtp.next_mail().await);
    let confirm = (
        "/api/auth/password/reset/confirm",
        "/api/auth/password/reset/confirm",
    );
    let body = json!({"token": token, "new_password": "a-new-password"});
    assert_eq!(
        c.call(a, "POST", confirm, &[], Body::Json(body.clone()))
            .await
            .status,
        204
    );
    assert_eq!(
        c.call(a, "POST", confirm, &[], Body::Json(body))
            .await
            .status,
        400
    );

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
    let users = ("/api/users", "/api/users?q=ca&limit=5");
    let r = c.call(a, "GET", users, &admin, Body::None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(c.call(a, "GET", users, &bob, Body::None).await.status, 403);
    let reset_link = (
        "/api/users/{username}/password-reset",
        "/api/users/carol/password-reset",
    );
    let r = c.call(a, "POST", reset_link, &admin, Body::None).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let _reset_mail = smtp.next_mail().await;
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
    // The reset ended carol's sessions.
    assert_eq!(c.call(a, "POST", out, &carol, Body::None).await.status, 401);
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
    // the profile pictures' need pictures: tests/avatars.rs.
    let unreached = c.unreached(|op| !tagged(op, "providers") && !tagged(op, "avatars"));
    assert!(
        unreached.is_empty(),
        "never answered with success in the scenario: {unreached:?}"
    );
    srv.stop().await;
}
