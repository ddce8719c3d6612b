//! Embeds and sharing, at the HTTP level:
//! - `/embed/CHANNEL` may be framed by any site (`frame-ancestors *`, no
//!   `X-Frame-Options`); every other page keeps `frame-ancestors 'none'`
//!   and `X-Frame-Options: DENY`;
//! - oEmbed (`GET /api/oembed`, oembed.com) describes a channel's player:
//!   the fields the spec names, the channel's text escaped where it is HTML
//!   and plain in the JSON, sizes that fit the consumer's bounds at 16:9,
//!   the live thumbnail with its size, URLs on `--public-url` when set, and
//!   the spec's refusals (404 for a foreign link, 501 for XML);
//! - the channel page names its oEmbed answer for discovery;
//! - a past broadcast's link (`/c/CHANNEL?b=ID`) shares as that broadcast,
//!   and opens it in Chromium (`tests/e2e/replay_link.mjs`).
//!
//! The browser side (an embed on another site playing by itself, its chat,
//! a refused frame of the watch page) is in tests/web_app.rs.

mod common;

use common::{ffmpeg_publish_sized, http, signup, wait_for_live, HttpResponse, TestServer};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Every value of a response header (names are lower case).
fn header_values<'a>(r: &'a HttpResponse, name: &str) -> Vec<&'a str> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// `s` as a query-string value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn oembed(srv: &TestServer, query: &str) -> HttpResponse {
    http(srv.http, "GET", &format!("/api/oembed?{query}"), &[], b"").await
}

/// The oEmbed answer for `url`, which must be a 200 in JSON.
async fn oembed_ok(srv: &TestServer, url: &str, extra: &str) -> Value {
    let r = oembed(srv, &format!("url={}{extra}", enc(url))).await;
    assert_eq!(r.status, 200, "{url}{extra}: {}", r.text());
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        r.header("content-type")
    );
    r.json()
}

/// A JSON error with `status`.
fn assert_refused(r: &HttpResponse, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    assert!(
        r.json()["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: {}",
        r.text()
    );
}

/// The attributes of `html`, which must be exactly one empty `<iframe>`
/// element whose attribute values are double-quoted and hold no markup
/// (entities decoded in the map).
fn iframe_attributes(html: &str) -> BTreeMap<String, String> {
    let inner = html
        .strip_prefix("<iframe ")
        .and_then(|s| s.strip_suffix("></iframe>"))
        .unwrap_or_else(|| panic!("not one iframe element: {html}"));
    let mut attrs = BTreeMap::new();
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let end = rest.find(['=', ' ']).unwrap_or(rest.len());
        let name = &rest[..end];
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase()),
            "bad attribute name {name:?} in {html}"
        );
        rest = &rest[end..];
        let value = if let Some(after) = rest.strip_prefix("=\"") {
            let close = after
                .find('"')
                .unwrap_or_else(|| panic!("unclosed value in {html}"));
            let raw = &after[..close];
            assert!(
                !raw.contains(['<', '>']),
                "markup in an attribute value: {html}"
            );
            rest = &after[close + 1..];
            raw.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&amp;", "&")
        } else {
            String::new()
        };
        assert!(
            attrs.insert(name.to_string(), value).is_none(),
            "{name} twice in {html}"
        );
        rest = rest.trim_start();
    }
    attrs
}

/// Only the embed may be framed, and by any site.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_embed_may_be_framed_and_by_any_site() {
    let srv = TestServer::start().await;
    for path in ["/embed/demo", "/embed/demo?chat=1&muted=1", "/embed/nosuch"] {
        let r = http(srv.http, "GET", path, &[], b"").await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("text/html")),
            "{path}"
        );
        assert!(r.text().contains("id=\"app\""), "{path}: the app's page");
        assert_eq!(
            header_values(&r, "content-security-policy"),
            ["frame-ancestors *"],
            "{path}: {:?}",
            r.headers
        );
        assert_eq!(
            header_values(&r, "x-frame-options"),
            Vec::<&str>::new(),
            "{path}: X-Frame-Options would refuse every framing site"
        );
    }
    for path in [
        "/",
        "/c/demo",
        "/c/nosuch",
        "/login",
        "/dashboard",
        "/api/docs",
        "/api/channels/demo",
        "/api/oembed?url=http%3A%2F%2Fx%2Fc%2Fdemo",
        "/embed/demo/more",
        "/no/such/page",
    ] {
        let r = http(srv.http, "GET", path, &[], b"").await;
        assert_eq!(
            header_values(&r, "content-security-policy"),
            ["frame-ancestors 'none'"],
            "{path}: {:?}",
            r.headers
        );
        assert_eq!(header_values(&r, "x-frame-options"), ["DENY"], "{path}");
    }
    srv.stop().await;
}

/// oEmbed: the fields, the channel's text escaped in the HTML and plain in
/// the JSON, links by either page of the channel from any host, the sizes,
/// and the refusals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oembed_describes_the_player_of_a_channel() {
    let srv = TestServer::start().await;
    const TITLE: &str = r#"Live <"&'> now"#;
    srv.db
        .update_channel(
            "demo",
            &onair::db::ChannelPatch {
                title: Some(TITLE.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let origin = format!("http://{}", srv.http);
    let v = oembed_ok(&srv, "http://somewhere.example/c/demo", "").await;
    assert_eq!(v["version"], "1.0", "{v}");
    assert_eq!(v["type"], "video", "{v}");
    assert_eq!(v["provider_name"], "onair", "{v}");
    assert_eq!(v["provider_url"], origin.as_str(), "{v}");
    assert_eq!(v["title"], TITLE, "plain text in the JSON: {v}");
    assert_eq!(v["author_name"], "demo", "an operator's channel: {v}");
    assert_eq!(v["author_url"], format!("{origin}/c/demo").as_str(), "{v}");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(640), Some(360))
    );
    for absent in ["thumbnail_url", "thumbnail_width", "thumbnail_height"] {
        assert!(v.get(absent).is_none(), "offline: no {absent}: {v}");
    }
    let html = v["html"].as_str().expect("html");
    assert!(
        html.contains(r#"title="Live &lt;&quot;&amp;&#39;&gt; now""#),
        "the title escaped as an attribute: {html}"
    );
    let attrs = iframe_attributes(html);
    assert_eq!(attrs["src"], format!("{origin}/embed/demo"), "{html}");
    assert_eq!(
        (attrs["width"].as_str(), attrs["height"].as_str()),
        ("640", "360")
    );
    assert_eq!(attrs["title"], TITLE, "{html}");
    assert!(attrs["allow"].contains("autoplay"), "{html}");
    assert!(attrs.contains_key("allowfullscreen"), "{html}");

    // The embed's own link, https, a trailing slash, a fragment, JSON asked
    // for by name: the same player.
    for url in [
        "http://somewhere.example/embed/demo?muted=1&autoplay=1",
        "https://tv.example.com:8443/c/demo/",
        "http://127.0.0.1/c/demo#chat",
    ] {
        let w = oembed_ok(&srv, url, "&format=json").await;
        assert_eq!(w["html"], v["html"], "{url}");
    }

    // An account's channel: its owner, and its name for a title.
    signup(srv.http, "alice").await;
    let a = oembed_ok(&srv, "http://x/c/alice", "").await;
    assert_eq!(
        (a["author_name"].as_str(), a["title"].as_str()),
        (Some("alice"), Some("alice")),
        "{a}"
    );

    // Sizes: scaled down to the bounds, never up, always 16:9 (rounded
    // down, so the player fits).
    for (extra, want) in [
        ("&maxwidth=320", (320, 180)),
        ("&maxheight=100", (177, 100)),
        ("&maxwidth=400&maxheight=400", (400, 225)),
        ("&maxwidth=1920&maxheight=1080", (640, 360)),
    ] {
        let w = oembed_ok(&srv, "http://x/c/demo", extra).await;
        let got = (w["width"].as_u64().unwrap(), w["height"].as_u64().unwrap());
        assert_eq!(got, want, "{extra}");
        let attrs = iframe_attributes(w["html"].as_str().unwrap());
        assert_eq!(
            (attrs["width"].clone(), attrs["height"].clone()),
            (want.0.to_string(), want.1.to_string()),
            "{extra}"
        );
    }

    // Refusals: what is not a channel of this server is 404, a format
    // other than JSON 501 (oembed.com, "Errors"), a malformed request 400.
    for url in [
        "http://x/c/nosuch",
        "http://x/dashboard",
        "http://x/c/demo/extra",
        "http://x/api/channels/demo",
        "ftp://x/c/demo",
        "/c/demo",
        "demo",
    ] {
        assert_refused(&oembed(&srv, &format!("url={}", enc(url))).await, 404, url);
    }
    for format in ["xml", "XML", "yaml"] {
        let r = oembed(
            &srv,
            &format!("url={}&format={format}", enc("http://x/c/demo")),
        )
        .await;
        assert_refused(&r, 501, format);
    }
    for query in [
        String::new(),
        "maxwidth=100".to_string(),
        format!("url={}&maxwidth=0", enc("http://x/c/demo")),
        format!("url={}&maxheight=big", enc("http://x/c/demo")),
    ] {
        assert_refused(&oembed(&srv, &query).await, 400, &query);
    }
    srv.stop().await;

    // With --public-url, the links are on it, whatever host was asked.
    let srv =
        TestServer::start_with(|c| c.hooks.public_url = Some("https://tv.example.com/".into()))
            .await;
    let v = oembed_ok(&srv, "http://127.0.0.1/c/demo", "").await;
    assert_eq!(v["provider_url"], "https://tv.example.com", "{v}");
    assert_eq!(v["author_url"], "https://tv.example.com/c/demo", "{v}");
    let attrs = iframe_attributes(v["html"].as_str().unwrap());
    assert_eq!(attrs["src"], "https://tv.example.com/embed/demo", "{v}");
    srv.stop().await;
}

/// A live channel's answer has its thumbnail, with the picture's size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oembed_of_a_live_channel_has_its_thumbnail() {
    let srv = TestServer::start().await;
    let _ff = ffmpeg_publish_sized(&srv.rtmp_url(&srv.key), 40, "640x360", &["-bf", "0"]);
    wait_for_live(srv.http, "demo").await;
    let start = Instant::now();
    let jpeg = loop {
        let r = http(
            srv.http,
            "GET",
            "/api/channels/demo/thumbnail.jpg",
            &[],
            b"",
        )
        .await;
        if r.status == 200 {
            break r.body;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no thumbnail");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(jpeg.starts_with(&[0xff, 0xd8]), "a JPEG");
    let origin = format!("http://{}", srv.http);
    let v = oembed_ok(&srv, "http://x/embed/demo", "").await;
    assert_eq!(
        v["thumbnail_url"],
        format!("{origin}/api/channels/demo/thumbnail.jpg").as_str(),
        "{v}"
    );
    // ffmpeg's 640x360, which thumbnails keep (they are at most 640 wide).
    assert_eq!(
        (
            v["thumbnail_width"].as_u64(),
            v["thumbnail_height"].as_u64()
        ),
        (Some(640), Some(360)),
        "{v}"
    );
    srv.stop().await;
}

/// The channel page names its oEmbed answer, and that link answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_channel_page_links_its_oembed_answer() {
    let srv = TestServer::start().await;
    srv.db
        .update_channel(
            "demo",
            &onair::db::ChannelPatch {
                title: Some("Tea & <talk>".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let origin = format!("http://{}", srv.http);
    let page = http(srv.http, "GET", "/c/demo", &[], b"").await;
    assert_eq!(page.status, 200);
    let page = page.text();
    let href = format!(
        "{origin}/api/oembed?url={}",
        enc(&format!("{origin}/c/demo"))
    );
    let tag = format!(
        r#"<link rel="alternate" type="application/json+oembed" href="{}" title="Tea &amp; &lt;talk&gt;">"#,
        href.replace('&', "&amp;")
    );
    assert!(page.contains(&tag), "no {tag} in:\n{page}");
    assert!(
        page.find(&tag).unwrap() < page.find("</head>").expect("a head"),
        "in the head"
    );
    let path = href.strip_prefix(&origin).unwrap();
    let r = http(srv.http, "GET", path, &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["author_url"], format!("{origin}/c/demo").as_str());
    // An unknown channel's page (the app's own not-found) names nothing.
    let other = http(srv.http, "GET", "/c/nosuch", &[], b"").await.text();
    assert!(!other.contains("json+oembed"), "{other}");
    srv.stop().await;
}

/// A past broadcast has its own link, `/c/CHANNEL?b=ID`: its share tags
/// carry the broadcast's title, description and poster (not the channel's
/// live thumbnail, and no oEmbed player, which is live only), unless it is
/// hidden or another channel's; in Chromium the link plays that recording
/// and the share panel gives it while it plays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_past_broadcast_has_its_own_link() {
    common::node::require_built_app();
    let srv = TestServer::start().await;
    let mut ff = common::ffmpeg_publish(&srv.rtmp_url(&srv.key), 6);
    ff.wait().await.unwrap();
    let id = common::finished_broadcast(srv.http, "demo").await;
    let patch = |title: &str, published: bool| onair::db::BroadcastPatch {
        title: Some(title.into()),
        description: Some("From <the> archive".into()),
        published: Some(published),
    };
    srv.db
        .edit_broadcast(id, &patch("Friday & friends", true))
        .await
        .unwrap();
    let origin = format!("http://{}", srv.http);
    let path = format!("/c/demo?b={id}");
    let page = http(srv.http, "GET", &path, &[], b"").await.text();
    for tag in [
        r#"<meta property="og:title" content="Friday &amp; friends">"#.to_string(),
        r#"<meta property="og:description" content="From &lt;the&gt; archive">"#.to_string(),
        format!(r#"<meta property="og:url" content="{origin}/c/demo?b={id}">"#),
        format!(r#"<meta property="og:image" content="{origin}/vod/{id}/poster.jpg">"#),
    ] {
        assert!(page.contains(&tag), "no {tag} in:\n{page}");
    }
    assert!(!page.contains("json+oembed"), "{page}");
    let poster = http(srv.http, "GET", &format!("/vod/{id}/poster.jpg"), &[], b"").await;
    assert_eq!(poster.status, 200, "the tag's image exists");
    // Hidden, or named under another channel: the channel's own tags.
    srv.db
        .edit_broadcast(id, &patch("Friday & friends", false))
        .await
        .unwrap();
    let hidden = http(srv.http, "GET", &path, &[], b"").await.text();
    assert!(!hidden.contains("Friday"), "{hidden}");
    assert!(
        hidden.contains("/api/channels/demo/thumbnail.jpg"),
        "{hidden}"
    );
    srv.db
        .edit_broadcast(id, &patch("Friday & friends", true))
        .await
        .unwrap();
    srv.db.create_channel("other").await.unwrap();
    let elsewhere = http(srv.http, "GET", &format!("/c/other?b={id}"), &[], b"")
        .await
        .text();
    assert!(!elsewhere.contains("Friday"), "{elsewhere}");

    let dir = common::node::shots();
    let r = common::node::run_script(
        "replay_link.mjs",
        &[&origin, "demo", &id.to_string(), &dir],
        Duration::from_secs(120),
    )
    .await;
    assert!(
        r["played"].as_f64().unwrap() > 1.0,
        "the recording plays: {r}"
    );
    assert_eq!(r["current"], 1, "its tile is marked: {r}");
    assert_eq!(r["label"], "Link to this broadcast", "{r}");
    assert_eq!(r["link"], format!("{origin}/c/demo?b={id}").as_str(), "{r}");
    assert_eq!(r["afterLive"], "", "{r}");
    assert_eq!(r["afterTile"], format!("?b={id}").as_str(), "{r}");
    let (chat, stage) = (
        r["widths"]["chat"].as_f64().unwrap(),
        r["widths"]["stage"].as_f64().unwrap(),
    );
    assert!(chat >= stage - 1.0, "the chat spans the phone: {r}");

    // Further back than the list's first page (newer broadcasts without a
    // recording fill it): the link still plays it.
    let now_ms = onair::chat::unix_secs() * 1000;
    for i in 0..(onair::db::BROADCASTS_PAGE + 5) {
        let b = srv
            .db
            .create_broadcast("demo", Some("filler"), now_ms + i * 1000, false)
            .await
            .unwrap();
        srv.db
            .finish_broadcast(b.id, now_ms + i * 1000 + 500, 500, 0)
            .await
            .unwrap();
    }
    let far = common::node::run_script(
        "replay_link.mjs",
        &[&origin, "demo", &id.to_string(), "-", "far"],
        Duration::from_secs(90),
    )
    .await;
    assert!(far["played"].as_f64().unwrap() > 1.0, "{far}");
    assert_eq!(far["search"], format!("?b={id}").as_str(), "{far}");
    // An id with nothing to play: said so, and dropped from the address.
    let gone = common::node::run_script(
        "replay_link.mjs",
        &[&origin, "demo", "12345", "-", "gone"],
        Duration::from_secs(90),
    )
    .await;
    assert!(
        gone["note"].as_str().unwrap().contains("not available"),
        "{gone}"
    );
    assert_eq!(gone["search"], "", "{gone}");
    srv.stop().await;
}
