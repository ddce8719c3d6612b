//! The web app end to end: the real server on port 0, ffmpeg or the
//! browser itself publishing, and headless Chromium (playwright-core,
//! `tests/e2e/web_app.mjs`, and `web_social.mjs` for likes, slow mode,
//! moderation, the dashboard's lists and screen sharing) using the pages as
//! a person would.
//!
//! Needs the built app (`./scripts/setup.sh --test` builds `web/dist`, which
//! the binary embeds), `node`/`npm` and the Debian `chromium` package.
//! Screenshots land in target/screenshots/ (see `shots`).

mod common;

use common::node::{page_scenario, require_built_app, run_script, shots};
use common::{api, bearer, ffmpeg_publish, http, signup, wait_for_live, TestServer};
use serde_json::{json, Value};
use std::time::Duration;

/// One scenario at a time: each runs a server, ffmpeg and one or two
/// Chromiums, and on a small machine two at once make the first-frame times
/// (and the 4 s WebRTC deadline) measure the load rather than the app.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs one scenario of web_app.mjs and returns its JSON report.
async fn scenario(srv: &TestServer, args: &[&str]) -> Value {
    page_scenario("web_app.mjs", srv.http, args).await
}

fn num(v: &Value, path: &str) -> f64 {
    v.pointer(path)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{path} missing or not a number in {v}"))
}

async fn stream_key(srv: &TestServer, token: &str) -> String {
    let auth = bearer(token);
    let me = api(
        srv.http,
        "GET",
        "/api/me",
        &[("Authorization", auth.as_str())],
        None,
    )
    .await;
    me.json()["channel"]["stream_key"]
        .as_str()
        .expect("stream key")
        .to_string()
}

/// ffmpeg pushes `demo`; the directory lists it with its thumbnail; its
/// tile opens the watch page, which plays over WebRTC with sound. Then five
/// fresh loads of the watch page time page-load -> first WebRTC frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_lists_a_live_channel_and_the_watch_page_plays_webrtc_with_sound() {
    let _serial = SERIAL.lock().await;
    let srv = TestServer::start().await;
    let _ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 60);
    wait_for_live(srv.http, &srv.channel).await;
    let shots = shots();
    let r = scenario(&srv, &["directory", &srv.channel, &shots]).await;

    assert!(
        r["tileText"].as_str().unwrap_or_default().contains("demo"),
        "{r}"
    );
    assert!(
        r["tileText"].as_str().unwrap_or_default().contains("LIVE"),
        "{r}"
    );
    assert!(num(&r, "/thumbWidth") > 0.0, "thumbnail loaded: {r}");
    assert_eq!(r["playing"]["mode"], "webrtc", "{r}");
    assert!(num(&r, "/stats/framesDecoded") > 30.0, "{r}");
    assert_eq!(
        (num(&r, "/stats/frameWidth"), num(&r, "/stats/frameHeight")),
        (1280.0, 720.0),
        "{r}"
    );
    assert!(num(&r, "/stats/totalAudioEnergy") > 0.0, "sound: {r}");
    assert_eq!(r["muted"], false, "plays with sound: {r}");
    // The watch page's JavaScript, uncompressed, is under the 150 KB the
    // issue allows gzipped; hls.js is not among it while WebRTC plays.
    let scripts = r["scripts"].as_array().expect("scripts");
    assert!(!scripts.is_empty(), "{r}");
    let js: f64 = scripts.iter().map(|x| num(x, "/bytes")).sum();
    assert!(js < 150_000.0, "watch page JS {js} bytes: {r}");
    assert!(
        !scripts
            .iter()
            .any(|x| x["name"].as_str().unwrap_or_default().contains("hls")),
        "hls.js loads only on fallback: {r}"
    );
    let all = r["loads"].as_array().expect("loads");
    let mut loads: Vec<f64> = all.iter().filter_map(Value::as_f64).collect();
    // A load that fell back to HLS has no WebRTC first frame. On a busy
    // 2-core machine one may miss the 4 s deadline; most must not.
    assert!(
        loads.len() * 5 >= all.len() * 3,
        "most loads play over WebRTC: {r}"
    );
    loads.sort_by(f64::total_cmp);
    let median = loads[loads.len() / 2];
    eprintln!("page load -> first WebRTC frame: median {median} ms, all {all:?}");
    // The target is 1 s on loopback (docs/BENCHMARKS.md has the numbers);
    // this bound leaves room for a debug build on a busy machine.
    assert!(
        median < 3000.0,
        "median page load to first frame {median} ms"
    );
    srv.stop().await;
}

/// WebRTC cannot connect (the WHEP answer's candidates are rewritten to a
/// closed port): the page falls back to LL-HLS by itself, long before ICE
/// would report 'failed' (~15 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_webrtc_falls_back_to_ll_hls_within_seconds() {
    let _serial = SERIAL.lock().await;
    let srv = TestServer::start().await;
    let _ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 40);
    wait_for_live(srv.http, &srv.channel).await;
    let closed = {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind udp");
        s.local_addr().expect("addr").port()
    };
    let r = scenario(&srv, &["fallback", &srv.channel, &closed.to_string()]).await;
    assert!(
        num(&r, "/rewritten") > 0.0,
        "the answer had candidates: {r}"
    );
    assert_eq!(r["state"]["mode"], "hls", "{r}");
    let after = num(&r, "/playingAfterMs");
    assert!(after < 10_000.0, "HLS played {after} ms after load: {r}");
    assert!(num(&r, "/later/videoFrames") > 0.0, "{r}");
    assert!(
        num(&r, "/later/currentTime") > num(&r, "/state/currentTime"),
        "playback advances: {r}"
    );
    assert!(
        r["message"].to_string().contains("LL-HLS"),
        "the page says why: {r}"
    );
    srv.stop().await;
}

/// Two browser contexts signed in as two users chat; markup in a message is
/// shown as text; the owner deletes a message with the moderation tools.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_chat_and_markup_stays_text() {
    let _serial = SERIAL.lock().await;
    let srv = TestServer::start().await;
    signup(srv.http, "alice").await;
    signup(srv.http, "bob").await;
    let r = scenario(&srv, &["chat", "alice", "bob", &shots()]).await;
    assert_eq!(
        r["seen"],
        r#"<img src=x onerror="window.__xss=1"><script>window.__xss=2</script><b>bold</b>"#,
        "{r}"
    );
    assert_eq!(r["injected"]["xss"], Value::Null, "no script ran: {r}");
    assert_eq!(
        r["injected"]["imgs"], 0,
        "no element made from the text: {r}"
    );
    assert_eq!(r["deleted"], true, "{r}");
    assert_eq!(
        r["otherHasTools"], 0,
        "a viewer has no moderation tools: {r}"
    );
    srv.stop().await;
}

/// The dashboard reveals the stream key and rotates it; the old key stops
/// working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_rotates_the_stream_key() {
    let _serial = SERIAL.lock().await;
    let srv = TestServer::start().await;
    let token = signup(srv.http, "alice").await;
    let old = stream_key(&srv, &token).await;
    let r = scenario(&srv, &["rotate", "alice", &shots()]).await;
    assert!(
        !r["masked"].as_str().unwrap_or_default().contains(&old),
        "masked at first: {r}"
    );
    assert_eq!(r["before"], old.as_str(), "{r}");
    let new = stream_key(&srv, &token).await;
    assert_ne!(new, old);
    assert_eq!(r["after"], new.as_str(), "the page shows the new key: {r}");
    assert_eq!(
        r["reachedByTab"], true,
        "keyboard reaches the key controls: {r}"
    );
    assert_ne!(
        r["maskedAgain"],
        new.as_str(),
        "Enter on Hide masked it: {r}"
    );
    let old_auth = bearer(&old);
    let w = http(
        srv.http,
        "POST",
        "/whip",
        &[
            ("Authorization", old_auth.as_str()),
            ("Content-Type", "application/sdp"),
        ],
        b"v=0\r\n",
    )
    .await;
    assert_eq!(w.status, 401, "the old key is refused: {}", w.text());
    srv.stop().await;
}

/// The dashboard goes live with Chromium's fake camera over WHIP; a viewer
/// in a second browser decodes it over WebRTC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn going_live_from_the_browser_reaches_a_second_browser() {
    let _serial = SERIAL.lock().await;
    let srv = TestServer::start().await;
    signup(srv.http, "alice").await;
    let r = scenario(&srv, &["golive", "alice", &shots()]).await;
    assert_eq!(r["playing"]["mode"], "webrtc", "{r}");
    assert!(num(&r, "/stats/framesDecoded") > 10.0, "{r}");
    assert!(num(&r, "/stats/frameWidth") > 0.0, "{r}");
    assert_eq!(r["codec"], "video/H264", "published as H.264: {r}");
    assert!(
        r["health"]
            .as_str()
            .unwrap_or_default()
            .contains("Resolution"),
        "{r}"
    );
    srv.stop().await;
}

/// Runs one scenario of web_social.mjs and returns its JSON report.
async fn social(srv: &TestServer, args: &[&str]) -> Value {
    page_scenario("web_social.mjs", srv.http, args).await
}

fn texts(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| x.as_str().unwrap_or_default().to_string())
        .collect()
}

/// A viewer likes a channel: the count goes up on their page and the
/// owner's; a second like at once is refused and the page says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn likes_count_up_and_the_rate_limit_shows() {
    let _serial = SERIAL.lock().await;
    let srv = TestServer::start().await;
    signup(srv.http, "alice").await;
    signup(srv.http, "bob").await;
    let r = social(&srv, &["likes", "alice", "bob"]).await;
    let before = num(&r, "/before");
    assert_eq!(num(&r, "/afterFirst"), before + 1.0, "{r}");
    assert_eq!(
        num(&r, "/ownerSees"),
        before + 1.0,
        "the owner's page follows: {r}"
    );
    assert!(
        r["refusedText"]
            .as_str()
            .unwrap_or_default()
            .contains("one like every 10 seconds"),
        "{r}"
    );
    assert_eq!(num(&r, "/afterSecond"), before + 1.0, "{r}");
    assert_eq!(num(&r, "/ownerAfterSecond"), before + 1.0, "{r}");
    let ch = api(srv.http, "GET", "/api/channels/alice", &[], None).await;
    assert_eq!(
        ch.json()["likes"],
        json!(before as i64 + 1),
        "{}",
        ch.text()
    );
    srv.stop().await;
}

/// The owner turns on slow mode; a viewer's second message at once is
/// refused with a visible reason and reaches nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_mode_refuses_a_quick_second_message() {
    let _serial = SERIAL.lock().await;
    let srv = TestServer::start().await;
    signup(srv.http, "alice").await;
    signup(srv.http, "bob").await;
    let r = social(&srv, &["slowmode", "alice", "bob"]).await;
    assert!(
        r["noticeText"]
            .as_str()
            .unwrap_or_default()
            .contains("30 s"),
        "the viewer is told: {r}"
    );
    assert!(
        texts(&r["refused"]).iter().any(|t| t.contains("slow mode")),
        "{r}"
    );
    let owner_saw = texts(&r["ownerSaw"]);
    assert!(owner_saw.contains(&"first message".to_string()), "{r}");
    assert!(
        !owner_saw.contains(&"second message".to_string()),
        "refused: {r}"
    );
    assert!(
        !texts(&r["viewerSaw"]).contains(&"second message".to_string()),
        "{r}"
    );
    let ch = api(srv.http, "GET", "/api/channels/alice", &[], None).await;
    assert_eq!(ch.json()["slow_mode_secs"], 30, "{}", ch.text());
    srv.stop().await;
}

/// The owner times a viewer out, then bans them, from their message; the
/// viewer reads why and what they send is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_out_and_banned_users_cannot_chat_and_see_why() {
    let _serial = SERIAL.lock().await;
    let srv = TestServer::start().await;
    signup(srv.http, "alice").await;
    signup(srv.http, "bob").await;
    let r = social(&srv, &["moderation", "alice", "bob"]).await;
    let has = |k: &str, s: &str| texts(&r[k]).iter().any(|t| t.contains(s));
    assert!(has("toldTimeout", "timed you out"), "{r}");
    assert!(has("refusedTimeout", "timed out for"), "{r}");
    assert!(has("toldBan", "banned you"), "{r}");
    assert!(has("refusedBan", "you are banned"), "{r}");
    let owner_saw = texts(&r["ownerSaw"]);
    assert!(owner_saw.contains(&"before any timeout".to_string()), "{r}");
    for refused in ["during the timeout", "after the ban"] {
        assert!(!owner_saw.contains(&refused.to_string()), "{refused}: {r}");
    }
    srv.stop().await;
}

/// The dashboard: the RTMP URL has the port the server listens on and the
/// host the browser used; a recording shows published/hidden and toggles;
/// the schedule is created, edited and deleted, and the channel page
/// follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_manages_recordings_schedule_and_shows_the_real_rtmp_port() {
    let _serial = SERIAL.lock().await;
    let srv = TestServer::start().await;
    let token = signup(srv.http, "alice").await;
    let now_ms = onair::chat::unix_secs() * 1000;
    let row = srv
        .db
        .create_broadcast("alice", Some("Yesterday's show"), now_ms - 60_000, true)
        .await
        .unwrap();
    srv.db
        .finish_broadcast(row.id, now_ms, 60_000, 1000)
        .await
        .unwrap();
    let r = social(&srv, &["dashboard", "alice", &shots()]).await;
    let port = srv.rtmp.port();
    assert_eq!(
        r["rtmpUrl"],
        format!("rtmp://127.0.0.1:{port}/live").as_str(),
        "{r}"
    );
    assert_eq!(
        r["rtmpUrlAlt"],
        format!("rtmp://localhost:{port}/live").as_str(),
        "{r}"
    );
    assert_eq!(r["recordings"]["initial"], "published", "{r}");
    assert_eq!(
        r["recordings"]["afterReload"], "hidden",
        "the list says hidden before any click: {r}"
    );
    assert_eq!(r["recordings"]["afterPublish"], "published", "{r}");
    let auth = bearer(&token);
    let list = api(
        srv.http,
        "GET",
        "/api/channels/alice/broadcasts",
        &[("Authorization", auth.as_str())],
        None,
    )
    .await;
    assert_eq!(list.json()["items"][0]["hidden"], false, "{}", list.text());
    let text = |k: &str| r[k].as_str().unwrap_or_default().to_string();
    assert!(text("channelAfterAdd").contains("Launch party"), "{r}");
    assert!(
        text("dashboardAfterEdit").contains("Launch party, moved"),
        "{r}"
    );
    assert!(
        text("channelAfterEdit").contains("Launch party, moved"),
        "{r}"
    );
    assert_eq!(text("channelAfterDelete"), "", "{r}");
    let sched = api(srv.http, "GET", "/api/channels/alice/schedule", &[], None).await;
    assert_eq!(sched.json()["items"], json!([]), "{}", sched.text());
    srv.stop().await;
}

/// Going live with a screen share (Chromium's fake screen) reaches a
/// viewer in a second browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn going_live_with_a_screen_share_reaches_a_viewer() {
    let _serial = SERIAL.lock().await;
    let srv = TestServer::start().await;
    signup(srv.http, "alice").await;
    let r = social(&srv, &["screenshare", "alice"]).await;
    assert_eq!(
        r["source"]["displaySurface"], "monitor",
        "a screen, not the camera: {r}"
    );
    assert_eq!(r["playing"]["mode"], "webrtc", "{r}");
    assert!(num(&r, "/stats/framesDecoded") > 10.0, "{r}");
    assert!(num(&r, "/stats/frameWidth") > 0.0, "{r}");
    srv.stop().await;
}

/// With `--public-url`, a channel's page carries OpenGraph tags on it (a
/// shared link shows the title, description and live thumbnail; the
/// owner's text escaped, never markup), and the dashboard gives encoders
/// its host, whatever host the page was opened by.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_url_is_in_share_tags_and_the_encoder_settings() {
    require_built_app();
    let _serial = SERIAL.lock().await;
    let srv = TestServer::start_with(|c| {
        c.hooks.public_url = Some("https://tv.example.com/".into());
    })
    .await;
    srv.db
        .update_channel(
            "demo",
            &onair::db::ChannelPatch {
                title: Some("<script>alert(1)</script> & \"friends\"".into()),
                description: Some("Live <b>now</b>".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let r = http(srv.http, "GET", "/c/demo", &[], b"").await;
    assert_eq!(r.status, 200);
    let page = r.text();
    for tag in [
        r#"<meta property="og:title" content="&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;friends&quot;">"#,
        r#"<meta property="og:description" content="Live &lt;b&gt;now&lt;/b&gt;">"#,
        r#"<meta property="og:url" content="https://tv.example.com/c/demo">"#,
        r#"<meta property="og:image" content="https://tv.example.com/api/channels/demo/thumbnail.jpg">"#,
        r#"<meta name="twitter:card" content="summary_large_image">"#,
    ] {
        assert!(page.contains(tag), "no {tag} in:\n{page}");
    }
    assert!(!page.contains("<script>alert"), "{page}");
    let head_end = page.find("</head>").expect("a head");
    assert!(
        page.find("og:title").unwrap() < head_end,
        "tags in the head"
    );
    // The app itself still loads: the same page, scripts included.
    assert!(page.contains("<script"), "{page}");
    let other = http(srv.http, "GET", "/c/nosuchchannel", &[], b"").await;
    assert_eq!(other.status, 200, "the app shows its own not-found");
    assert!(!other.text().contains("og:title"));

    let token = signup(srv.http, "alice").await;
    let me = api(
        srv.http,
        "GET",
        "/api/me",
        &[("Authorization", &bearer(&token))],
        None,
    )
    .await
    .json();
    assert_eq!(
        me["channel"]["public_url"], "https://tv.example.com",
        "{me}"
    );
    let r = social(&srv, &["ingest", "alice"]).await;
    let port = srv.rtmp.port();
    assert_eq!(
        r["rtmpUrl"],
        format!("rtmp://tv.example.com:{port}/live").as_str(),
        "{r}"
    );
    assert_eq!(r["whipUrl"], "https://tv.example.com/whip", "{r}");
    assert_eq!(r["icecastHost"], "tv.example.com", "{r}");
    srv.stop().await;
}

/// The API reference at /api/docs, drawn by the app from /api/openapi.json:
/// every operation with its path and summary, a `$ref` link that lands on
/// its schema, the document's text kept as text (a summary made of markup
/// makes no element and runs nothing), and no sideways scrolling on a phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_docs_page_shows_every_operation_and_keeps_markup_as_text() {
    require_built_app();
    let _serial = SERIAL.lock().await;
    let srv = TestServer::start().await;
    let page = http(srv.http, "GET", "/api/docs", &[], b"").await;
    assert_eq!(page.status, 200, "the app's page: {}", page.text());
    assert!(page.text().contains("id=\"app\""), "{}", page.text());
    let doc = api(srv.http, "GET", "/api/openapi.json", &[], None)
        .await
        .json();
    const MARKUP: &str =
        r#"<img src=x onerror="window.__xss=1"><script>window.__xss=2</script><b>bold</b>"#;
    let base = format!("http://{}", srv.http);
    let shots = shots();
    let r = run_script(
        "api_docs.mjs",
        &[&base, MARKUP, &shots],
        Duration::from_secs(150),
    )
    .await;
    eprintln!("api_docs: {r}");

    // (a) Every path x method of the document, once, with its path and
    // summary; the script gave the first one MARKUP for a summary.
    let patched = (
        r["patched"]["method"].as_str().expect("patched method"),
        r["patched"]["path"].as_str().expect("patched path"),
    );
    let shown = r["shown"].as_array().expect("shown");
    const METHODS: &[&str] = &[
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    let mut expected = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            expected += 1;
            let summary = if (method.as_str(), path.as_str()) == patched {
                Some(MARKUP)
            } else {
                op["summary"].as_str()
            };
            let on_page: Vec<&Value> = shown
                .iter()
                .filter(|s| s["method"] == method.as_str() && s["path"] == path.as_str())
                .collect();
            assert_eq!(on_page.len(), 1, "{method} {path} once on the page: {r}");
            assert_eq!(on_page[0]["pathText"], path.as_str(), "{r}");
            assert_eq!(
                on_page[0]["summary"].as_str(),
                summary,
                "{method} {path}: {r}"
            );
        }
    }
    assert!(expected > 10, "the document has its operations: {doc}");
    assert_eq!(shown.len(), expected, "no other operations: {r}");
    assert_eq!(
        r["tocLinks"], expected,
        "the contents link every operation: {r}"
    );
    let mut names: Vec<&str> = doc["components"]["schemas"]
        .as_object()
        .expect("schemas")
        .keys()
        .map(String::as_str)
        .collect();
    let sections: Vec<&str> = r["schemas"]
        .as_array()
        .expect("schema sections")
        .iter()
        .map(|s| s["name"].as_str().unwrap_or_default())
        .collect();
    let mut sorted = sections.clone();
    sorted.sort_unstable();
    names.sort_unstable();
    assert_eq!(sorted, names, "a section for every schema: {r}");

    // (b) The `$ref` link landed on its schema, scrolled to the top.
    let link = &r["link"];
    assert_eq!(link["hash"], link["href"], "{r}");
    assert_eq!(link["targetSchema"], link["ref"], "{r}");
    let top = num(link, "/targetTop");
    assert!(
        (-2.0..num(link, "/viewportHeight") / 2.0).contains(&top),
        "the schema's section is in view: {r}"
    );
    assert!(
        num(link, "/scrollAfter") > num(link, "/scrollBefore"),
        "{r}"
    );

    // (c) The markup stayed text: shown literally, no script ran, no
    // element came of it.
    let injected = &r["injected"];
    assert_eq!(injected["intro"], MARKUP, "{r}");
    assert_eq!(injected["xss"], Value::Null, "no script ran: {r}");
    assert_eq!(injected["imgs"], 0, "no element made from the text: {r}");
    assert_eq!(
        injected["scripts"], injected["scriptsAtLoad"],
        "no script element added: {r}"
    );
    const COMPONENT_TAGS: &[&str] = &[
        "a", "article", "code", "dd", "details", "div", "dl", "dt", "h1", "h2", "h3", "h4", "li",
        "nav", "ol", "p", "pre", "section", "span", "summary", "table", "tbody", "td", "th",
        "thead", "tr", "ul",
    ];
    for tag in injected["tags"].as_array().expect("tags") {
        let tag = tag.as_str().unwrap_or_default();
        assert!(
            COMPONENT_TAGS.contains(&tag),
            "<{tag}> is not one the page makes: {r}"
        );
    }

    // (d) A 390 px wide phone scrolls only down.
    let o = &r["overflow"];
    let width = num(o, "/clientWidth");
    assert_eq!(width, 390.0, "{r}");
    assert!(
        num(o, "/scrollWidth") <= width && num(o, "/bodyScrollWidth") <= width,
        "the page is wider than the phone: {o}"
    );
    srv.stop().await;
}

/// Embeds and sharing in Chromium (`tests/e2e/embed.mjs`): the watch
/// page's Share panel copies the channel's link and embed code; on another
/// site (a different origin and site from the server's), the embed with
/// `?muted=1&autoplay=1&chat=1` says the channel is offline, then plays by
/// itself, muted, when ffmpeg goes live, without a click, and shows a chat
/// message posted through the API; the copied embed code (no options) waits
/// for its Play button; a frame of `/c/CHANNEL` is refused by the browser;
/// on a phone a 360x640 embed fills its frame with the chat under the
/// player and no sideways scrolling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embed_on_another_site_plays_by_itself_with_chat_and_the_watch_page_refuses_frames() {
    require_built_app();
    let _serial = SERIAL.lock().await;
    let srv = TestServer::start().await;
    let token = signup(srv.http, "carol").await;
    let marker = srv.dir.path().join("embed-is-offline");
    let marker_arg = marker.display().to_string();
    let base = format!("http://{}", srv.http);
    let shots = shots();
    let args = [base.as_str(), &srv.channel, &token, &marker_arg, &shots];
    let script = run_script("embed.mjs", &args, Duration::from_secs(180));
    // The embeds said "offline" (the script wrote the marker): go live.
    let publish = async {
        let start = std::time::Instant::now();
        while !marker.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(170),
                "the script never saw the channel offline"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // 640x360 leaves CPU for three players in one browser.
        common::ffmpeg_publish_sized(&srv.rtmp_url(&srv.key), 120, "640x360", &["-bf", "0"])
    };
    let (r, _ff) = tokio::join!(script, publish);
    eprintln!("embed: {r}");
    let page = format!("{base}/c/demo");

    // Share: the link and the embed code, copied as shown.
    let share = &r["share"];
    assert_eq!(share["expanded"], "true", "{share}");
    assert_eq!(share["link"], page.as_str(), "{share}");
    assert_eq!(share["clipboardLink"], share["link"], "{share}");
    assert_eq!(share["clipboardCode"], share["code"], "{share}");
    let oembed = api(
        srv.http,
        "GET",
        &format!("/api/oembed?url={base}%2Fc%2Fdemo"),
        &[],
        None,
    )
    .await
    .json();
    assert_eq!(share["code"], oembed["html"], "the oEmbed answer's iframe");
    assert!(
        num(share, "/smallestTarget") >= 24.0,
        "targets of at least 24 px: {share}"
    );
    let phone = &share["overflow"]["phone"];
    assert!(
        num(phone, "/scrollWidth") <= num(phone, "/clientWidth"),
        "no sideways scrolling on a phone: {share}"
    );
    assert_eq!(share["closedByEscape"], true, "{share}");

    // The embed on another site: offline, then playing with no click.
    let site = &r["site"];
    assert!(
        site["offlineText"]
            .as_str()
            .unwrap_or_default()
            .contains("demo is offline"),
        "{site}"
    );
    assert_eq!(site["playing"]["mode"], "webrtc", "{site}");
    assert_eq!(site["playing"]["muted"], true, "?muted=1: {site}");
    assert_eq!(site["later"]["paused"], false, "{site}");
    assert!(
        num(site, "/later/videoFrames") > num(site, "/playing/videoFrames"),
        "frames keep coming: {site}"
    );
    assert!(
        num(site, "/later/currentTime") > num(site, "/playing/currentTime"),
        "{site}"
    );
    assert!(num(site, "/stats/framesDecoded") > 10.0, "{site}");
    assert_eq!(num(site, "/stats/frameWidth"), 640.0, "{site}");
    assert_eq!(site["unmuteShown"], true, "muted: an Unmute button: {site}");
    // The copied code waits for its Play button, then plays with sound.
    assert_eq!(site["copiedBefore"]["status"], "idle", "{site}");
    assert_eq!(site["copiedBefore"]["videoFrames"], 0, "{site}");
    assert_eq!(site["copiedPlaying"]["status"], "playing", "{site}");
    assert_eq!(site["copiedPlaying"]["muted"], false, "{site}");
    assert_eq!(site["copiedUnmuteShown"], false, "with sound: {site}");
    // The chat: the API's message as text, read-only, links to the page.
    let chat = &site["chat"];
    assert!(
        texts(&chat["shown"]).contains(&chat["sent"].as_str().unwrap().to_string()),
        "{chat}"
    );
    assert!(
        texts(&chat["users"]).contains(&"carol".to_string()),
        "{chat}"
    );
    assert_eq!(chat["bold"], 0, "markup stays text: {chat}");
    assert_eq!(chat["inputs"], 0, "read-only: {chat}");
    for link in [&chat["link"], &site["watchLink"]] {
        assert_eq!(link["href"], page.as_str(), "{site}");
        assert_eq!(link["target"], "_blank", "{site}");
        assert!(
            link["rel"]
                .as_str()
                .unwrap_or_default()
                .contains("noopener"),
            "{site}"
        );
    }
    // The watch page refused the other site's frame.
    let framed = &site["framed"];
    assert_eq!(framed["hasApp"], false, "the app ran in a frame: {framed}");
    assert!(
        !framed["url"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&base),
        "the frame loaded the page: {framed}"
    );
    assert!(
        texts(&framed["refusals"])
            .iter()
            .any(|l| l.contains("frame-ancestors 'none'")),
        "refused for its frame-ancestors: {framed}"
    );

    // A phone: the 360x640 embed filled, chat under the player.
    let layout = &r["phone"]["layout"];
    assert_eq!(r["phone"]["playing"]["status"], "playing", "{r}");
    assert_eq!(
        (num(layout, "/root/width"), num(layout, "/root/height")),
        (360.0, 640.0),
        "{layout}"
    );
    assert_eq!(num(layout, "/clientWidth"), 360.0, "{layout}");
    assert!(
        num(layout, "/scrollWidth") <= 360.0 && num(layout, "/bodyScrollWidth") <= 360.0,
        "sideways scrolling: {layout}"
    );
    assert_eq!(num(layout, "/stage/width"), 360.0, "{layout}");
    assert!(
        num(layout, "/stage/height") >= 180.0,
        "a 16:9 player: {layout}"
    );
    assert!(
        num(layout, "/chat/y") >= num(layout, "/stage/bottom") - 1.0
            && num(layout, "/chat/bottom") <= 641.0
            && num(layout, "/chat/height") >= 200.0,
        "the chat under the player, filling the rest: {layout}"
    );
    assert!(num(layout, "/messages") >= 1.0, "{layout}");
    srv.stop().await;
}
