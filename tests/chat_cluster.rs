//! Two servers of one site, on one Postgres database and one Redis
//! (`--redis-url`, a real redis-server started here): a chat room is one
//! room across them.
//! - Messages posted on both at once reach the sockets of both in one
//!   order, with the same ids, and a joiner on either gets that history.
//! - A deletion, a slow-mode change and a ban made on one server apply on
//!   the other; slow mode and the like cooldown hold across servers.
//! - With Redis down, posting answers "chat unavailable" (503) on both;
//!   once Redis is back (restarted empty), messages flow again, none lost
//!   or doubled.
//! - A user's posting rate holds across servers: posts alternated between
//!   two get what one server would allow, not twice that.
//! - On an origin and two edges, a post on one edge reaches the other
//!   edge's socket and a WebRTC viewer's chat data channel on the origin,
//!   with the same ids in the same order.

mod common;

use common::redis::two_servers;
use common::{api, api_as, signup, ws_connect, ws_next, ws_until, Ws};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A reader of `room` on `addr`, past its backlog (which it returns).
async fn reader(addr: SocketAddr, room: &str) -> (Ws, Vec<Value>) {
    let mut ws = ws_connect(addr, &format!("/ws/{room}"), &[]).await;
    let mut backlog = Vec::new();
    loop {
        let v = ws_next(&mut ws).await;
        if v["type"] == "viewers" {
            return (ws, backlog);
        }
        backlog.push(v);
    }
}

async fn post(addr: SocketAddr, token: &str, room: &str, text: &str) -> common::HttpResponse {
    let path = format!("/api/channels/{room}/chat");
    api_as(addr, token, "POST", &path, Some(&json!({ "text": text }))).await
}

/// The next `n` chat messages on `ws` (other events skipped).
async fn chats(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    while out.len() < n {
        out.push(ws_until(ws, |v| v["type"] == "chat").await);
    }
    out
}

fn ids(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_room_across_two_servers() {
    let Some((mut redis, a, b)) = two_servers().await else {
        return;
    };
    let (a, b) = (a.http, b.http);
    let cara = signup(a, "cara").await;
    let dan = signup(b, "dan").await;
    let (mut on_a, _) = reader(a, "cara").await;
    let (mut on_b, _) = reader(b, "cara").await;

    // Posted on both servers at once: one order, the same ids, everywhere.
    let posts = (0..4).map(|i| {
        let (cara, dan) = (cara.clone(), dan.clone());
        async move {
            let (ta, tb) = (format!("a{i}"), format!("b{i}"));
            let (x, y) = tokio::join!(post(a, &cara, "cara", &ta), post(b, &dan, "cara", &tb));
            assert_eq!(
                (x.status, y.status),
                (201, 201),
                "{} {}",
                x.text(),
                y.text()
            );
        }
    });
    futures_util::future::join_all(posts).await;
    let seen_a = chats(&mut on_a, 8).await;
    let seen_b = chats(&mut on_b, 8).await;
    assert_eq!(ids(&seen_a), ids(&seen_b));
    let texts: std::collections::HashSet<&str> =
        seen_a.iter().map(|v| v["text"].as_str().unwrap()).collect();
    assert_eq!(texts.len(), 8, "{seen_a:?}");

    // A message posted on a reaches b's socket at once.
    let t = Instant::now();
    assert_eq!(post(a, &cara, "cara", "ping").await.status, 201);
    let got = ws_until(&mut on_b, |v| v["type"] == "chat").await;
    let took = t.elapsed();
    eprintln!("a post on a reached b's socket {took:?} after it was sent");
    assert_eq!(got["text"], "ping");
    assert!(took < Duration::from_secs(1), "{took:?}");
    let ping = got["id"].as_str().unwrap().to_string();
    assert_eq!(chats(&mut on_a, 1).await[0]["id"], ping.as_str());

    // A joiner on either server gets the same history.
    let (_, hist_a) = reader(a, "cara").await;
    let (_, hist_b) = reader(b, "cara").await;
    let hist_a: Vec<Value> = hist_a.into_iter().filter(|v| v["type"] == "chat").collect();
    let hist_b: Vec<Value> = hist_b.into_iter().filter(|v| v["type"] == "chat").collect();
    assert_eq!(ids(&hist_a), ids(&hist_b));
    let mut expected = ids(&seen_a);
    expected.push(ping.clone());
    assert_eq!(ids(&hist_a), expected);

    // Deleted on b (by the owner): gone on a too.
    let r = api_as(
        b,
        &cara,
        "DELETE",
        &format!("/api/channels/cara/chat/{ping}"),
        None,
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let del = ws_until(&mut on_a, |v| v["type"] == "delete").await;
    assert_eq!(del["id"], ping.as_str());
    let (_, hist) = reader(a, "cara").await;
    assert!(!hist.iter().any(|v| v["id"] == ping.as_str()), "{hist:?}");

    // Slow mode set on a: announced on b, and one interval across both.
    let r = api_as(
        a,
        &cara,
        "POST",
        "/api/channels/cara/slow_mode",
        Some(&json!({"seconds": 30})),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let slow = ws_until(&mut on_b, |v| v["type"] == "slow_mode").await;
    assert_eq!(slow["seconds"], 30);
    assert_eq!(post(a, &dan, "cara", "first").await.status, 201);
    for ws in [&mut on_a, &mut on_b] {
        assert_eq!(chats(ws, 1).await[0]["text"], "first");
    }
    let r = post(b, &dan, "cara", "second, through the other server").await;
    assert_eq!(r.status, 429, "{}", r.text());
    let r = api_as(
        b,
        &cara,
        "POST",
        "/api/channels/cara/slow_mode",
        Some(&json!({"seconds": 0})),
    )
    .await;
    assert_eq!(r.status, 204);
    ws_until(&mut on_a, |v| v["type"] == "slow_mode" && v["seconds"] == 0).await;

    // A ban on b: announced on a, and dan cannot post there.
    let r = api_as(
        b,
        &cara,
        "POST",
        "/api/channels/cara/bans",
        Some(&json!({"username": "dan"})),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let ban = ws_until(&mut on_a, |v| v["type"] == "ban").await;
    assert_eq!(ban["user"], "dan");
    assert_eq!(post(a, &dan, "cara", "banned?").await.status, 403);

    // The like cooldown holds across servers.
    let r = api_as(a, &dan, "POST", "/api/channels/cara/like", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = api_as(b, &dan, "POST", "/api/channels/cara/like", None).await;
    assert_eq!(r.status, 429, "{}", r.text());

    // Redis goes down: posting is refused on both, saying why; reading
    // goes on.
    let eve = signup(a, "eve").await;
    redis.stop().await;
    for node in [a, b] {
        let r = post(node, &eve, "cara", "while redis is down").await;
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(r.text().contains("chat is unavailable"), "{}", r.text());
    }
    assert_eq!(
        api(a, "GET", "/api/channels/cara/chat", &[], None)
            .await
            .status,
        200
    );

    // Back, empty: messages flow again, each delivered once.
    redis.restart().await;
    let start = Instant::now();
    let mut sent = Vec::new();
    while sent.is_empty() {
        let r = post(b, &eve, "cara", "after").await;
        if r.status == 201 {
            sent.push(r.json()["id"].as_str().unwrap().to_string());
        } else {
            assert!(start.elapsed() < Duration::from_secs(15), "{}", r.text());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for text in ["again on a", "again on b"] {
        let node = if text.ends_with('a') { a } else { b };
        let r = post(node, &cara, "cara", text).await;
        assert_eq!(r.status, 201, "{}", r.text());
        sent.push(r.json()["id"].as_str().unwrap().to_string());
    }
    for ws in [&mut on_a, &mut on_b] {
        let got = chats(ws, 3).await;
        let mut got_ids = ids(&got);
        got_ids.sort();
        let mut want = sent.clone();
        want.sort();
        assert_eq!(got_ids, want, "{got:?}");
        // Nothing more: no message came twice.
        let more = tokio::time::timeout(
            Duration::from_millis(500),
            ws_until(ws, |v| v["type"] == "chat"),
        )
        .await;
        assert!(more.is_err(), "a message came twice: {more:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_on_an_edge_reaches_the_other_edge_and_a_data_channel_on_the_origin() {
    use common::redis::{site_node_with, Site};
    use common::webrtc_client::{watch, ViewerOptions};
    use onair::config::Role;
    let Some(Site { redis, db }) = Site::start().await else {
        return;
    };
    let redis_url = redis.url();
    let node = |role: Role| site_node_with(&db, &redis_url, move |c| c.role = role);
    let origin = node(Role::Origin).await;
    let a = node(Role::Edge).await;
    let b = node(Role::Edge).await;
    let cara = signup(a.http, "cara").await;
    let (mut on_b, _) = reader(b.http, "cara").await;
    let viewer = tokio::spawn(watch(
        origin.http,
        "cara",
        Duration::from_secs(6),
        ViewerOptions::default(),
    ));
    // The first posts come before the data channel is open: they wait for
    // it. The later ones show the live path.
    let mut sent = Vec::new();
    // One every 600 ms: within the posting rate (five at once, then one a
    // second).
    for i in 0..7 {
        let at = Instant::now();
        let r = post(a.http, &cara, "cara", &format!("p{i}")).await;
        assert_eq!(r.status, 201, "{}", r.text());
        sent.push((r.json()["id"].as_str().unwrap().to_string(), at));
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    let sent_ids: Vec<String> = sent.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids(&chats(&mut on_b, 7).await), sent_ids, "edge B's socket");
    let got = viewer.await.unwrap().expect("the origin's viewer ran");
    let heard: Vec<(Value, Instant)> = got
        .chat
        .iter()
        .zip(&got.chat_at)
        .map(|(l, at)| (serde_json::from_str::<Value>(l).expect("JSON line"), *at))
        .filter(|(v, _)| v["type"] == "chat")
        .collect();
    let heard_ids: Vec<String> = heard
        .iter()
        .map(|(v, _)| v["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(heard_ids, sent_ids, "the origin's data channel");
    let late: Vec<Duration> = sent[4..]
        .iter()
        .zip(&heard[4..])
        .map(|((_, posted), (_, at))| at.duration_since(*posted))
        .collect();
    eprintln!("posts on edge A reached a data channel on the origin after {late:?}");
    assert!(late.iter().all(|d| *d < Duration::from_secs(1)), "{late:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_spread_over_two_servers_get_one_servers_rate() {
    use onair::chat::BURST;
    let Some((_redis, a, b)) = two_servers().await else {
        return;
    };
    let (a, b) = (a.http, b.http);
    let eve = signup(a, "eve").await;
    // Twenty posts in two seconds, alternating: each server's own bucket
    // (five at once, then one a second) takes six or seven of its ten, 12
    // or more in all; the site's one bucket takes what one server would:
    // five, and one a second after.
    let mut statuses = Vec::new();
    for i in 0..20 {
        let srv = if i % 2 == 0 { a } else { b };
        statuses.push(post(srv, &eve, "eve", &format!("m{i}")).await.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let passed = statuses.iter().filter(|s| **s == 201).count() as u32;
    assert!((BURST..=BURST + 3).contains(&passed), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 429),
        "{statuses:?}"
    );
}
