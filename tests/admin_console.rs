//! The admin console's API against the real server: finding users (a name
//! with `_` is not a wildcard), mailing one a reset link through a real
//! SMTP server (aiosmtpd), site-wide chat bans, suspending an account (every way in shuts, and
//! opens again when lifted), and the audit log that every moderator and
//! admin action writes: who, what, to what, when, newest first, in pages,
//! for admins only.

#[macro_use]
mod common;

use common::accounts::user_with_role;
use common::refusal::{assert_publish_refused, is_live};
use common::smtp::Smtp;
use common::{
    api, api_as, ffmpeg_publish, password_of, signup, wait_for_live, ws_connect, ws_send, ws_until,
    Backend, TestServer,
};
use onair::db::Role;
use serde_json::{json, Value};

both!(
    moderator_and_admin_actions_are_audited,
    admins_find_users_and_mail_resets,
    suspension_shuts_every_way_in_until_lifted,
    site_bans_reach_every_channel_until_lifted,
);

/// A server with an admin, root, and two accounts, alice and bob: their
/// tokens.
async fn cast(b: Backend) -> Option<(TestServer, String, String, String)> {
    let srv = TestServer::on(b).await?;
    let root = user_with_role(&srv, "root", Role::Admin).await;
    let alice = signup(srv.http, "alice").await;
    let bob = signup(srv.http, "bob").await;
    Some((srv, root, alice, bob))
}

async fn call(srv: &TestServer, token: &str, method: &str, path: &str, body: Value) -> u16 {
    let body = (!body.is_null()).then_some(body);
    let r = api_as(srv.http, token, method, path, body.as_ref()).await;
    assert!(r.status < 300, "{method} {path}: {} {}", r.status, r.text());
    r.status
}

async fn moderator_and_admin_actions_are_audited(b: Backend) {
    let Some((srv, root, alice, bob)) = cast(b).await else {
        return;
    };
    let a = srv.http;

    // The owner moderates her chat.
    let r = api_as(
        a,
        &bob,
        "POST",
        "/api/channels/alice/chat",
        Some(&json!({"text": "spam"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].to_string();
    let id = id.trim_matches('"');
    call(
        &srv,
        &alice,
        "DELETE",
        &format!("/api/channels/alice/chat/{id}"),
        Value::Null,
    )
    .await;
    let ban = |seconds: Option<i64>| json!({"username": "bob", "seconds": seconds});
    call(
        &srv,
        &alice,
        "POST",
        "/api/channels/alice/bans",
        ban(Some(60)),
    )
    .await;
    call(&srv, &alice, "POST", "/api/channels/alice/bans", ban(None)).await;
    call(
        &srv,
        &alice,
        "DELETE",
        "/api/channels/alice/bans/bob",
        Value::Null,
    )
    .await;
    call(
        &srv,
        &alice,
        "POST",
        "/api/channels/alice/slow_mode",
        json!({"seconds": 5}),
    )
    .await;
    // An author deleting their own message is no moderation.
    let r = api_as(
        a,
        &alice,
        "POST",
        "/api/channels/alice/chat",
        Some(&json!({"text": "oops"})),
    )
    .await;
    let own = r.json()["id"].to_string();
    call(
        &srv,
        &alice,
        "DELETE",
        &format!("/api/channels/alice/chat/{}", own.trim_matches('"')),
        Value::Null,
    )
    .await;

    // An admin ends alice's stream, and manages roles, categories, invites
    // and accounts.
    let key = api_as(a, &alice, "GET", "/api/me", None).await.json()["channel"]["stream_key"]
        .as_str()
        .unwrap()
        .to_string();
    let mut ff = ffmpeg_publish(&srv.rtmp_url(&key), 30);
    wait_for_live(a, "alice").await;
    call(
        &srv,
        &root,
        "DELETE",
        "/api/channels/alice/live",
        Value::Null,
    )
    .await;
    let _ = ff.kill().await;
    let r = api_as(a, &root, "POST", "/api/channels/alice/key", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["stream_key"].is_null(), "not the admin's to see");
    call(
        &srv,
        &root,
        "PATCH",
        "/api/users/bob",
        json!({"role": "moderator"}),
    )
    .await;
    call(
        &srv,
        &root,
        "PUT",
        "/api/categories/music",
        json!({"name": "Music"}),
    )
    .await;
    call(&srv, &root, "DELETE", "/api/categories/music", Value::Null).await;
    let r = api_as(
        a,
        &root,
        "POST",
        "/api/invites",
        Some(&json!({"hours": 24})),
    )
    .await;
    let invite = r.json()["invite"]["id"].as_str().unwrap().to_string();
    call(
        &srv,
        &root,
        "DELETE",
        &format!("/api/invites/{invite}"),
        Value::Null,
    )
    .await;
    call(&srv, &root, "DELETE", "/api/users/bob", Value::Null).await;

    let log = api_as(a, &root, "GET", "/api/audit", None).await;
    assert_eq!(log.status, 200, "{}", log.text());
    let items = log.json()["items"].as_array().unwrap().clone();
    let seen: Vec<(String, String, String, String)> = items
        .iter()
        .map(|e| {
            let f = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (f("actor"), f("action"), f("target"), f("detail"))
        })
        .collect();
    let want = [
        ("root", "user.delete", "bob", ""),
        ("root", "invite.withdraw", invite.as_str(), ""),
        ("root", "invite.create", invite.as_str(), "viewer, 24 h"),
        ("root", "category.delete", "music", ""),
        ("root", "category.put", "music", "Music"),
        ("root", "user.role", "bob", "broadcaster -> moderator"),
        ("root", "stream.rotate_key", "alice", ""),
        ("root", "stream.end", "alice", ""),
        ("alice", "chat.slow_mode", "alice", "5 s"),
        ("alice", "chat.unban", "alice", "bob"),
        ("alice", "chat.ban", "alice", "bob"),
        ("alice", "chat.timeout", "alice", "bob for 60 s"),
    ];
    let want: Vec<(String, String, String, String)> = want
        .iter()
        .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
        .collect();
    assert_eq!(seen[..want.len()], want[..], "{seen:#?}");
    assert_eq!(
        seen.len(),
        want.len() + 1,
        "and the deletion of bob's message: {seen:#?}"
    );
    let (actor, action, target, detail) = &seen[want.len()];
    assert_eq!(
        (actor.as_str(), action.as_str(), target.as_str()),
        ("alice", "chat.delete", "alice")
    );
    assert!(detail.ends_with("by bob"), "{detail}");
    assert!(items
        .iter()
        .all(|e| e["at"].as_str().is_some_and(|t| t.ends_with('Z'))));

    // In pages, with the same entries.
    let first = api_as(a, &root, "GET", "/api/audit?limit=5", None)
        .await
        .json();
    assert_eq!(first["items"].as_array().unwrap().len(), 5);
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let rest = api_as(
        a,
        &root,
        "GET",
        &format!("/api/audit?limit=50&cursor={cursor}"),
        None,
    )
    .await
    .json();
    assert_eq!(rest["items"].as_array().unwrap().len(), items.len() - 5);
    assert_eq!(rest["items"][0], items[5]);
    assert!(rest["next_cursor"].is_null());

    // Admins only.
    let r = api_as(a, &alice, "GET", "/api/audit", None).await;
    assert_eq!(r.status, 403);
    srv.stop().await;
}

async fn admins_find_users_and_mail_resets(b: Backend) {
    let Some(mut smtp) = Smtp::start().await else {
        return;
    };
    let url = format!("smtp://127.0.0.1:{}", smtp.port);
    let Some(srv) = TestServer::on_with(b, move |c| c.mail.smtp_url = Some(url)).await else {
        return;
    };
    let a = srv.http;
    let root = user_with_role(&srv, "root", Role::Admin).await;
    for name in ["a_b", "axb", "abc", "zed"] {
        signup(a, name).await;
    }
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_string())
            .collect()
    };
    let r = api_as(a, &root, "GET", "/api/users?q=a_", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        names(&r.json()),
        ["a_b"],
        "`_` is a character, not a wildcard"
    );
    let r = api_as(a, &root, "GET", "/api/users?q=a&limit=2", None)
        .await
        .json();
    assert_eq!(names(&r), ["a_b", "abc"]);
    let cursor = r["next_cursor"].as_str().unwrap().to_string();
    let r = api_as(
        a,
        &root,
        "GET",
        &format!("/api/users?q=a&limit=2&cursor={cursor}"),
        None,
    )
    .await
    .json();
    assert_eq!(names(&r), ["axb"]);
    assert!(r["next_cursor"].is_null());
    let r = api_as(a, &root, "GET", "/api/users?q=%25", None).await;
    assert_eq!(r.status, 400, "only name characters");
    let zed = signup(a, "zee").await;
    let r = api_as(a, &zed, "GET", "/api/users", None).await;
    assert_eq!(r.status, 403);

    // A reset link: only to an account with an address, by mail.
    let r = api_as(a, &root, "POST", "/api/users/zed/password-reset", None).await;
    assert_eq!(r.status, 409, "{}", r.text());
    let body = json!({"username": "mel", "password": common::password_of("mel"), "email": "mel@example.com"});
    let r = api_as(a, &root, "POST", "/api/auth/register", Some(&body)).await;
    assert_eq!(r.status, 201);
    let _verify = smtp.next_mail().await;
    let r = api_as(a, &root, "POST", "/api/users/mel/password-reset", None).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let mail = smtp.next_mail().await;
    assert!(
        mail.contains("To: mel@example.com") && mail.contains("Reset your onair password"),
        "{mail}"
    );
    let log = api_as(a, &root, "GET", "/api/audit", None).await.json();
    assert_eq!(log["items"][0]["action"], "user.password_reset");
    assert_eq!(log["items"][0]["target"], "mel");
    srv.stop().await;
    smtp.child.kill().await.ok();
}

async fn suspension_shuts_every_way_in_until_lifted(b: Backend) {
    let Some((srv, root, alice, _bob)) = cast(b).await else {
        return;
    };
    let a = srv.http;
    let key = api_as(a, &alice, "GET", "/api/me", None).await.json()["channel"]["stream_key"]
        .as_str()
        .unwrap()
        .to_string();
    let mut ff = ffmpeg_publish(&srv.rtmp_url(&key), 60);
    wait_for_live(a, "alice").await;
    let mut ws = ws_connect(a, &format!("/ws/alice?token={alice}"), &[]).await;

    let suspend = |on: bool| json!({"suspended": on});
    let r = api_as(a, &root, "PATCH", "/api/users/root", Some(&suspend(true))).await;
    assert_eq!(r.status, 400, "not oneself");
    let r = api_as(a, &root, "PATCH", "/api/users/alice", Some(&suspend(true))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["suspended"], true);

    // Live publish ended; sessions over; the open socket writes no more;
    // no sign-in; every ingest refuses the key, saying why.
    let start = std::time::Instant::now();
    while is_live(&srv, "alice").await {
        assert!(
            start.elapsed().as_secs() < 10,
            "still live after the suspension"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let _ = ff.kill().await;
    assert_eq!(api_as(a, &alice, "GET", "/api/me", None).await.status, 401);
    ws_send(&mut ws, &json!({"type": "chat", "text": "still here?"})).await;
    let e = ws_until(&mut ws, |v| v["type"] == "error").await;
    assert!(e["error"].as_str().is_some(), "{e}");
    let login = json!({"username": "alice", "password": password_of("alice")});
    let r = api(a, "POST", "/api/auth/login", &[], Some(&login)).await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("suspended"), "{}", r.text());
    assert_publish_refused(&srv, "alice", &key, "suspended").await;

    // Lifted: she signs in and streams with the same key.
    let r = api_as(a, &root, "PATCH", "/api/users/alice", Some(&suspend(false))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = api(a, "POST", "/api/auth/login", &[], Some(&login)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut ff = ffmpeg_publish(&srv.rtmp_url(&key), 3);
    wait_for_live(a, "alice").await;
    let _ = ff.wait().await;
    let log = api_as(a, &root, "GET", "/api/audit?limit=2", None)
        .await
        .json();
    assert_eq!(log["items"][0]["action"], "user.unsuspend");
    assert_eq!(log["items"][1]["action"], "user.suspend");
    srv.stop().await;
}

async fn site_bans_reach_every_channel_until_lifted(b: Backend) {
    let Some((srv, root, alice, bob)) = cast(b).await else {
        return;
    };
    let a = srv.http;
    user_with_role(&srv, "mod", Role::Moderator).await;
    let say = |channel: &'static str| {
        let bob = bob.clone();
        async move {
            let path = format!("/api/channels/{channel}/chat");
            api_as(a, &bob, "POST", &path, Some(&json!({"text": "hi"}))).await
        }
    };
    assert_eq!(say("alice").await.status, 201);

    let r = api_as(
        a,
        &alice,
        "POST",
        "/api/bans",
        Some(&json!({"username": "bob"})),
    )
    .await;
    assert_eq!(r.status, 403, "admins only");
    let r = api_as(
        a,
        &root,
        "POST",
        "/api/bans",
        Some(&json!({"username": "mod"})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = api_as(
        a,
        &root,
        "POST",
        "/api/bans",
        Some(&json!({"username": "bob"})),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text());
    // Every channel, his own included.
    for channel in ["alice", "bob"] {
        let r = say(channel).await;
        assert_eq!(r.status, 403, "{channel}: {}", r.text());
        assert!(r.text().contains("banned"), "{}", r.text());
    }
    let list = api_as(a, &root, "GET", "/api/bans", None).await.json();
    assert_eq!(list, json!({"items": [{"username": "bob", "until": null}]}));

    // A time-out replaces it, and says how long.
    let body = json!({"username": "bob", "seconds": 600});
    let r = api_as(a, &root, "POST", "/api/bans", Some(&body)).await;
    assert_eq!(r.status, 204);
    let r = say("alice").await;
    assert_eq!(r.status, 403);
    let list = api_as(a, &root, "GET", "/api/bans", None).await.json();
    assert!(
        list["items"][0]["until"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{list}"
    );

    let r = api_as(a, &root, "DELETE", "/api/bans/bob", None).await;
    assert_eq!(r.status, 204);
    assert_eq!(say("bob").await.status, 201);
    let list = api_as(a, &root, "GET", "/api/bans", None).await.json();
    assert_eq!(list["items"], json!([]));
    let log = api_as(a, &root, "GET", "/api/audit?limit=3", None)
        .await
        .json();
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["site.unban", "site.timeout", "site.ban"]);
    srv.stop().await;
}
