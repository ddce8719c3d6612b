//! Chat rooms over WebSocket: history, fan-out, limits, moderation and
//! events, on SQLite and Postgres.

#[macro_use]
mod common;

use common::{
    api, api_as, signup, ws_connect, ws_next, ws_send, ws_until, Backend, HttpResponse, TestServer,
};
use serde_json::json;
use std::time::Duration;

both!(
    anyone_reads_signed_in_users_write,
    history_is_the_last_50_and_survives_restart,
    limits_length_rate_and_bad_frames,
    moderation_delete_ban_timeout_slow_mode,
    xss_payloads_are_stored_verbatim_as_json_strings,
    events_likes_and_live_state,
);

/// Posts `text` to `channel`'s chat over HTTP as the holder of `token`.
async fn say(a: std::net::SocketAddr, token: &str, channel: &str, text: &str) -> HttpResponse {
    let body = json!({ "text": text });
    api_as(
        a,
        token,
        "POST",
        &format!("/api/channels/{channel}/chat"),
        Some(&body),
    )
    .await
}

fn is_chat(v: &serde_json::Value) -> bool {
    v["type"] == "chat"
}

async fn anyone_reads_signed_in_users_write(b: Backend) {
    let Some(srv) = TestServer::on(b).await else {
        return;
    };
    let a = srv.http;
    let alice = signup(a, "alice").await;
    // Unknown channel: 404 before the upgrade.
    let r = common::http(a, "GET", "/ws/nochannel", &[], b"").await;
    assert_eq!(r.status, 404);
    let mut anon = ws_connect(a, "/ws/alice", &[]).await;
    // Backlog: no history, then the live state and viewer count.
    assert_eq!(ws_next(&mut anon).await, json!({"type": "offline"}));
    assert_eq!(
        ws_next(&mut anon).await,
        json!({"type": "viewers", "count": 0})
    );
    ws_send(&mut anon, &json!({"type": "chat", "text": "hi"})).await;
    let e = ws_next(&mut anon).await;
    assert_eq!(e, json!({"type": "error", "error": "sign in to chat"}));

    // ?token= signs in; so does the cookie from a same-origin page.
    let mut a1 = ws_connect(a, &format!("/ws/alice?token={alice}"), &[]).await;
    let bob = signup(a, "bob").await;
    let origin = format!("http://{a}");
    let mut b1 = ws_connect(
        a,
        "/ws/alice",
        &[
            ("Cookie", &format!("onair_session={bob}")),
            ("Origin", &origin),
        ],
    )
    .await;
    // A cross-site page's socket with bob's cookie is anonymous.
    let mut evil = ws_connect(
        a,
        "/ws/alice",
        &[
            ("Cookie", &format!("onair_session={bob}")),
            ("Origin", "http://evil.example"),
        ],
    )
    .await;
    ws_send(
        &mut a1,
        &json!({"type": "chat", "text": "hello from alice"}),
    )
    .await;
    for ws in [&mut anon, &mut a1, &mut b1, &mut evil] {
        let m = ws_until(ws, is_chat).await;
        assert_eq!(m["user"], "alice");
        assert_eq!(m["text"], "hello from alice");
        // Ids are strings: they pass 2^53, past a JavaScript number.
        let id = m["id"].as_str().unwrap();
        assert!(id.parse::<i64>().unwrap() > 0, "{m}");
        assert!(m["at"].as_str().unwrap().ends_with('Z'));
    }
    ws_send(&mut b1, &json!({"type": "chat", "text": "hi alice"})).await;
    let m = ws_until(&mut a1, is_chat).await;
    assert_eq!(m["user"], "bob");
    ws_send(&mut evil, &json!({"type": "chat", "text": "csrf"})).await;
    let e = ws_until(&mut evil, |v| v["type"] == "error").await;
    assert_eq!(e["error"], "sign in to chat");
    // Unknown types are ignored, as the contract allows.
    ws_send(&mut a1, &json!({"type": "typing"})).await;
    assert!(common::ws_quiet(&mut a1, Duration::from_millis(300)).await);
    // A bad token is refused outright.
    let r = common::http(
        a,
        "GET",
        "/ws/alice?token=bad",
        &[
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
        b"",
    )
    .await;
    assert_eq!(r.status, 401);
    srv.stop().await;
}

async fn history_is_the_last_50_and_survives_restart(b: Backend) {
    let Some(srv) = TestServer::on(b).await else {
        return;
    };
    let a = srv.http;
    // 55 messages from 11 users (5 each: inside the burst).
    let mut n = 0;
    for u in 0..11 {
        let t = signup(a, &format!("user{u}")).await;
        for _ in 0..5 {
            let r = say(a, &t, "demo", &format!("m{n}")).await;
            assert_eq!(r.status, 201, "{}", r.text());
            n += 1;
        }
    }
    let mut ws = ws_connect(a, "/ws/demo", &[]).await;
    let mut texts = Vec::new();
    for _ in 0..50 {
        let m = ws_next(&mut ws).await;
        assert_eq!(m["type"], "chat", "{m}");
        texts.push(m["text"].as_str().unwrap().to_string());
    }
    let want: Vec<String> = (5..55).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, want);
    assert_eq!(ws_next(&mut ws).await["type"], "offline");
    drop(ws);
    srv.stop().await;
    // A new server on the same database still has the history.
    srv_restart_history(b).await;
}

/// Restart check on a DB the test controls end to end.
async fn srv_restart_history(b: Backend) {
    let url = match b {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap().keep();
            format!("sqlite://{}", dir.join("onair.db").display())
        }
        Backend::Postgres => common::fresh_postgres_db().await.unwrap(),
    };
    for round in 0..2 {
        let u = url.clone();
        let dir = tempfile::tempdir().unwrap();
        let mut config = onair::config::Config::for_test(dir.path());
        config.database_url = u;
        let db = onair::db::Db::open(&config.database_url).await.unwrap();
        if round == 0 {
            db.create_channel("demo").await.unwrap();
        }
        let listeners = onair::Listeners::bind(&config).await.unwrap();
        let a = listeners.http_addr();
        let stop = tokio_util::sync::CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(onair::run(
            config,
            listeners,
            async move { s.cancelled().await },
        ));
        if round == 0 {
            let t = signup(a, "zed").await;
            let r = say(a, &t, "demo", "before restart").await;
            assert_eq!(r.status, 201);
        } else {
            let mut ws = ws_connect(a, "/ws/demo", &[]).await;
            let m = ws_next(&mut ws).await;
            assert_eq!(m["text"], "before restart", "{m}");
            assert_eq!(m["user"], "zed");
        }
        stop.cancel();
        task.await.unwrap().unwrap();
    }
}

async fn limits_length_rate_and_bad_frames(b: Backend) {
    let Some(srv) = TestServer::on(b).await else {
        return;
    };
    let a = srv.http;
    let t = signup(a, "carl").await;
    let mut ws = ws_connect(a, &format!("/ws/demo?token={t}"), &[]).await;
    ws_until(&mut ws, |v| v["type"] == "viewers").await;
    // 501 characters (multi-byte ones count as one): refused; 500: fine.
    ws_send(&mut ws, &json!({"type": "chat", "text": "é".repeat(501)})).await;
    let e = ws_next(&mut ws).await;
    assert_eq!(e["type"], "error");
    assert!(e["error"].as_str().unwrap().contains("500"), "{e}");
    ws_send(&mut ws, &json!({"type": "chat", "text": "é".repeat(500)})).await;
    assert_eq!(ws_next(&mut ws).await["type"], "chat");
    // Empty, malformed, wrong shape.
    ws_send(&mut ws, &json!({"type": "chat", "text": "   "})).await;
    assert_eq!(ws_next(&mut ws).await["type"], "error");
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        "{not json".into(),
    ))
    .await
    .unwrap();
    assert_eq!(ws_next(&mut ws).await["type"], "error");
    ws_send(&mut ws, &json!({"type": "chat"})).await;
    assert_eq!(ws_next(&mut ws).await["type"], "error");
    // Burst 5 (one used above), then 1/s.
    for i in 0..4 {
        ws_send(
            &mut ws,
            &json!({"type": "chat", "text": format!("burst {i}")}),
        )
        .await;
        assert_eq!(ws_next(&mut ws).await["type"], "chat", "burst {i}");
    }
    ws_send(&mut ws, &json!({"type": "chat", "text": "too fast"})).await;
    let e = ws_next(&mut ws).await;
    assert_eq!(e["type"], "error");
    assert!(e["error"].as_str().unwrap().contains("slow down"), "{e}");
    // Over HTTP the same limit is a 429.
    let r = say(a, &t, "demo", "x").await;
    assert_eq!(r.status, 429, "{}", r.text());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    ws_send(&mut ws, &json!({"type": "chat", "text": "after a second"})).await;
    assert_eq!(ws_next(&mut ws).await["text"], "after a second");
    // A frame over 8 KiB closes the socket.
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        "x".repeat(20_000).into(),
    ))
    .await
    .ok();
    use futures_util::StreamExt;
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                None
                | Some(Err(_))
                | Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) => break,
                _ => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "oversized frame closes the socket");
    // The HTTP route refuses an oversized message with 400.
    let dora = signup(a, "dora").await;
    let r = say(a, &dora, "demo", &"x".repeat(501)).await;
    assert_eq!(r.status, 400);
    srv.stop().await;
}

async fn moderation_delete_ban_timeout_slow_mode(b: Backend) {
    let Some(srv) = TestServer::on(b).await else {
        return;
    };
    let a = srv.http;
    let owner = signup(a, "olga").await;
    let pete = signup(a, "pete").await;
    let quin = signup(a, "quin").await;
    let mo = signup(a, "moe").await;
    let post = |t: String, text: &'static str| async move { say(a, &t, "olga", text).await };
    let mut watcher = ws_connect(a, "/ws/olga", &[]).await;
    ws_until(&mut watcher, |v| v["type"] == "viewers").await;
    let m = post(pete.clone(), "spam").await.json();
    let id = m["id"].as_str().unwrap().to_string();
    ws_until(&mut watcher, is_chat).await;
    // quin is not a moderator: cannot delete pete's message.
    let del = format!("/api/channels/olga/chat/{id}");
    let r = api_as(a, &quin, "DELETE", &del, None).await;
    assert_eq!(r.status, 403, "{}", r.text());
    // The owner can, and every member sees it go.
    let r = api_as(a, &owner, "DELETE", &del, None).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        ws_next(&mut watcher).await,
        json!({"type": "delete", "id": id})
    );
    let r = api_as(a, &owner, "DELETE", &del, None).await;
    assert_eq!(r.status, 404);
    // Gone from history.
    let h = api(a, "GET", "/api/channels/olga/chat", &[], None)
        .await
        .json();
    assert_eq!(h["items"], json!([]));
    // Authors delete their own; a global moderator deletes anyone's.
    let id2 = post(quin.clone(), "oops").await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = api_as(
        a,
        &quin,
        "DELETE",
        &format!("/api/channels/olga/chat/{id2}"),
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    let id3 = post(pete.clone(), "rude").await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = api_as(
        a,
        &mo,
        "DELETE",
        &format!("/api/channels/olga/chat/{id3}"),
        None,
    )
    .await;
    assert_eq!(r.status, 403, "moe is not a moderator yet");
    let moe_id = srv.db.credentials("moe").await.unwrap().unwrap().user.id;
    srv.db
        .set_role(moe_id, onair::db::Role::Moderator)
        .await
        .unwrap();
    let r = api_as(
        a,
        &mo,
        "DELETE",
        &format!("/api/channels/olga/chat/{id3}"),
        None,
    )
    .await;
    assert_eq!(r.status, 204);

    // Bans: only moderators; banned users cannot post.
    let bans = "/api/channels/olga/bans";
    let r = api_as(a, &quin, "POST", bans, Some(&json!({"username": "pete"}))).await;
    assert_eq!(r.status, 403);
    let r = api_as(a, &owner, "POST", bans, Some(&json!({"username": "olga"}))).await;
    assert_eq!(r.status, 400, "the owner cannot be banned");
    let r = api_as(a, &owner, "POST", bans, Some(&json!({"username": "pete"}))).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = post(pete.clone(), "let me in").await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("banned"));
    let mut pws = ws_connect(a, &format!("/ws/olga?token={pete}"), &[]).await;
    ws_until(&mut pws, |v| v["type"] == "viewers").await;
    ws_send(&mut pws, &json!({"type": "chat", "text": "ws too"})).await;
    assert!(ws_next(&mut pws).await["error"]
        .as_str()
        .unwrap()
        .contains("banned"));
    // Banned elsewhere? No: bans are per channel.
    let r = say(a, &pete, "demo", "free here").await;
    assert_eq!(r.status, 201);
    let r = api_as(a, &owner, "DELETE", "/api/channels/olga/bans/pete", None).await;
    assert_eq!(r.status, 204);
    assert_eq!(post(pete.clone(), "back").await.status, 201);
    // Time-out: refused now, allowed after it ends.
    let r = api_as(
        a,
        &mo,
        "POST",
        bans,
        Some(&json!({"username": "quin", "seconds": 2})),
    )
    .await;
    assert_eq!(r.status, 204);
    let r = post(quin.clone(), "hello?").await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("timed out"), "{}", r.text());
    let r = api_as(
        a,
        &mo,
        "POST",
        bans,
        Some(&json!({"username": "quin", "seconds": -5})),
    )
    .await;
    assert_eq!(r.status, 400);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(post(quin.clone(), "I'm back").await.status, 201);

    // Slow mode: one message per N s for everyone but moderators.
    let r = api_as(
        a,
        &quin,
        "POST",
        "/api/channels/olga/slow_mode",
        Some(&json!({"seconds": 30})),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = api_as(
        a,
        &mo,
        "POST",
        "/api/channels/olga/slow_mode",
        Some(&json!({"seconds": 30})),
    )
    .await;
    assert_eq!(r.status, 204);
    ws_until(&mut watcher, |v| v["type"] == "slow_mode").await;
    let r = post(quin.clone(), "again").await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.text().contains("slow mode"));
    assert_eq!(post(owner.clone(), "owner is exempt").await.status, 201);
    assert_eq!(post(owner.clone(), "twice").await.status, 201);
    let ch = api(a, "GET", "/api/channels/olga", &[], None).await.json();
    assert_eq!(ch["slow_mode_secs"], 30);
    srv.stop().await;
}

async fn xss_payloads_are_stored_verbatim_as_json_strings(b: Backend) {
    let Some(srv) = TestServer::on(b).await else {
        return;
    };
    let a = srv.http;
    let t = signup(a, "xavier").await;
    let payloads = [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(document.cookie)>",
        "\"><svg/onload=alert(1)>",
        "</script><script>alert('x')</script>",
    ];
    let mut ws = ws_connect(a, &format!("/ws/demo?token={t}"), &[]).await;
    ws_until(&mut ws, |v| v["type"] == "viewers").await;
    for p in payloads {
        ws_send(&mut ws, &json!({"type": "chat", "text": p})).await;
        let m = ws_next(&mut ws).await;
        assert_eq!(m["text"], p, "verbatim, no HTML escaping or stripping");
    }
    let r = api(a, "GET", "/api/channels/demo/chat", &[], None).await;
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let v = r.json();
    let got: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(got, payloads);
    // On the wire the payload is a JSON string: escaped quotes, no raw markup
    // outside a string.
    assert!(
        r.text().contains(r#""text":"\"><svg/onload=alert(1)>""#),
        "{}",
        r.text()
    );
    // Stored verbatim in the database (written just after delivery).
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = srv.db.recent_chat("demo", 10).await.unwrap();
        if rows.len() == payloads.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stored: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    assert_eq!(stored, payloads);
    // Titles too.
    let r = api_as(
        a,
        &t,
        "PATCH",
        "/api/channels/xavier",
        Some(&json!({"title": payloads[1]})),
    )
    .await;
    assert_eq!(r.json()["title"], payloads[1]);
    srv.stop().await;
}

async fn events_likes_and_live_state(b: Backend) {
    let Some(srv) = TestServer::on(b).await else {
        return;
    };
    let a = srv.http;
    let t = signup(a, "lily").await;
    let u = signup(a, "liam").await;
    let mut ws = ws_connect(a, "/ws/lily", &[]).await;
    ws_until(&mut ws, |v| v["type"] == "viewers").await;
    let r = api_as(a, &u, "POST", "/api/channels/lily/like", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["likes"], 1);
    assert_eq!(ws_next(&mut ws).await, json!({"type": "likes", "count": 1}));
    // One like per 10 s per user.
    let r = api_as(a, &u, "POST", "/api/channels/lily/like", None).await;
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    let r = api_as(a, &t, "POST", "/api/channels/lily/like", None).await;
    assert_eq!(r.json()["likes"], 2);
    // Anonymous likes are refused.
    let r = api(a, "POST", "/api/channels/lily/like", &[], None).await;
    assert_eq!(r.status, 401);
    let ch = api(a, "GET", "/api/channels/lily", &[], None).await.json();
    assert_eq!(ch["likes"], 2);

    // Going live and offline are announced (a publisher on the hub stands
    // in for an encoder here; tests/accounts_channels.rs uses ffmpeg).
    srv_publish_and_end(&srv, &mut ws, "lily").await;
    srv.stop().await;
}

async fn srv_publish_and_end(srv: &TestServer, ws: &mut common::Ws, channel: &str) {
    let key = srv.db.channel(channel).await.unwrap().unwrap().stream_key;
    let mut ff = common::ffmpeg_publish(&srv.rtmp_url(&key), 30);
    // ffmpeg takes a few seconds to start on a busy machine.
    let state = |v: &serde_json::Value| v["type"] == "live" || v["type"] == "offline";
    let live = common::ws_wait(ws, Duration::from_secs(40), state).await;
    assert_eq!(live.expect("live within 40 s")["type"], "live");
    ff.kill().await.ok();
    let off = common::ws_wait(ws, Duration::from_secs(15), state).await;
    assert_eq!(off.expect("offline within 15 s")["type"], "offline");
}
