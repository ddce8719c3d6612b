//! The sign-up policy: new accounts are viewers, who have no stream key
//! and whose channel refuses every ingest until an admin grants streaming
//! (which issues a key, and taking it back ends the live publish);
//! `--open-streaming` makes every new account a broadcaster;
//! `--registration invite` takes single-use, expiring invites an admin
//! made (optionally granting the broadcaster role), and `closed` takes
//! nobody. Accounts made before the policy keep streaming.

#[macro_use]
mod common;

use common::accounts::user_with_role;
use common::refusal::{assert_publish_refused, is_live, whip_offer};
use common::{
    api, api_as, api_post, ffmpeg_publish, login, password_of, wait_for_live, Backend, TestServer,
};
use onair::auth::Registration;
use onair::db::Role;
use serde_json::{json, Value};
use std::time::Duration;

both!(
    viewers_stream_once_an_admin_grants_it,
    invites_are_single_use_expire_and_grant_their_role,
);

const NOT_YET: &str = "may not stream yet";

fn register_body(user: &str, invite: Option<&str>) -> Value {
    let mut body = json!({"username": user, "password": password_of(user)});
    if let Some(i) = invite {
        body["invite"] = json!(i);
    }
    body
}

async fn set_role(srv: &TestServer, admin: &str, user: &str, role: &str) {
    let r = api_as(
        srv.http,
        admin,
        "PATCH",
        &format!("/api/users/{user}"),
        Some(&json!({"role": role})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

async fn key_of(srv: &TestServer, token: &str) -> Value {
    api_as(srv.http, token, "GET", "/api/me", None).await.json()["channel"]["stream_key"].clone()
}

async fn viewers_stream_once_an_admin_grants_it(b: Backend) {
    let Some(srv) = TestServer::on_with(b, |c| c.accounts.open_streaming = false).await else {
        return;
    };
    let a = srv.http;
    let admin = user_with_role(&srv, "root", Role::Admin).await;
    let r = api(a, "GET", "/api/auth/registration", &[], None).await;
    assert_eq!(
        r.json(),
        json!({"registration": "open", "open_streaming": false})
    );
    let r = api_post(a, "/api/auth/register", register_body("val", None)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["user"]["role"], "viewer");
    let val = login(a, "val", &password_of("val")).await;

    // A viewer's channel page exists; no key is shown or rotated.
    assert_eq!(
        api(a, "GET", "/api/channels/val", &[], None).await.status,
        200
    );
    assert!(key_of(&srv, &val).await.is_null());
    for method in ["GET", "POST"] {
        let r = api_as(a, &val, method, "/api/channels/val/key", None).await;
        assert_eq!(r.status, 403, "{method}: {}", r.text());
        assert!(r.text().contains(NOT_YET), "{}", r.text());
    }
    // Even the key the channel holds unseen is refused by every ingest.
    let hidden = srv.db.channel("val").await.unwrap().unwrap().stream_key;
    assert_publish_refused(&srv, "val", &hidden, NOT_YET).await;

    // Granted: a new key, which goes live; the hidden one never works.
    set_role(&srv, &admin, "val", "broadcaster").await;
    let key = key_of(&srv, &val).await;
    let key = key.as_str().expect("a key once streaming is granted");
    assert_ne!(key, hidden);
    let r = api_as(a, &val, "GET", "/api/channels/val/key", None).await;
    assert_eq!(r.json()["stream_key"], key);
    let mut ff = ffmpeg_publish(&srv.rtmp_url(key), 30);
    wait_for_live(a, "val").await;

    // Taken back: the live publish ends and the key goes.
    set_role(&srv, &admin, "val", "viewer").await;
    let start = std::time::Instant::now();
    while is_live(&srv, "val").await {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still live after streaming was taken away"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = ff.kill().await;
    assert!(key_of(&srv, &val).await.is_null());
    let r = whip_offer(srv.http, key).await;
    assert_eq!(r.status, 401, "the withdrawn key is unknown: {}", r.text());
    srv.stop().await;
}

async fn invites_are_single_use_expire_and_grant_their_role(b: Backend) {
    let Some(srv) = TestServer::on_with(b, |c| {
        c.accounts.open_streaming = false;
        c.accounts.registration = Registration::Invite;
        c.hooks.public_url = Some("https://tv.example.com".into());
    })
    .await
    else {
        return;
    };
    let a = srv.http;
    let admin = user_with_role(&srv, "root", Role::Admin).await;
    let invite = |body: Value| {
        let admin = admin.clone();
        async move { api_as(a, &admin, "POST", "/api/invites", Some(&body)).await }
    };

    let r = api_post(a, "/api/auth/register", register_body("ann", None)).await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("needs an invite"), "{}", r.text());
    let r = api_post(
        a,
        "/api/auth/register",
        register_body("ann", Some("made-up")),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(
        r.text().contains("invalid, used or expired"),
        "{}",
        r.text()
    );

    // A broadcaster's invite: its link is on the public URL, the token in
    // the fragment; it makes one streaming account, once.
    let r = invite(json!({"broadcaster": true})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let made = r.json();
    let token = made["token"].as_str().unwrap().to_string();
    assert_eq!(
        made["link"],
        format!("https://tv.example.com/register#invite={token}")
    );
    assert_eq!(made["invite"]["state"], "open");
    assert_eq!(made["invite"]["role"], "broadcaster");
    let r = api_post(a, "/api/auth/register", register_body("ann", Some(&token))).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["user"]["role"], "broadcaster");
    let ann = login(a, "ann", &password_of("ann")).await;
    assert!(key_of(&srv, &ann).await.is_string());
    let r = api_post(a, "/api/auth/register", register_body("bea", Some(&token))).await;
    assert_eq!(r.status, 403, "an invite works once");
    let list = api_as(a, &admin, "GET", "/api/invites", None).await.json();
    assert_eq!(list["items"][0]["used_by"], "ann", "{list}");
    assert_eq!(list["items"][0]["state"], "used", "{list}");
    assert_eq!(list["items"][0]["created_by"], "root", "{list}");

    // A plain invite makes a viewer.
    let r = invite(json!({})).await;
    let token = r.json()["token"].as_str().unwrap().to_string();
    let r = api_post(a, "/api/auth/register", register_body("bea", Some(&token))).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["user"]["role"], "viewer");

    // Two registrations racing for one invite: one account.
    let r = invite(json!({"hours": 1})).await;
    let token = r.json()["token"].as_str().unwrap().to_string();
    let (x, y) = tokio::join!(
        api_post(a, "/api/auth/register", register_body("cal", Some(&token))),
        api_post(a, "/api/auth/register", register_body("cam", Some(&token))),
    );
    let mut statuses = [x.status, y.status];
    statuses.sort();
    assert_eq!(statuses, [201, 403], "{} / {}", x.text(), y.text());

    // Withdrawn, and expired, invites open nothing.
    let r = invite(json!({})).await;
    let (token, id) = (
        r.json()["token"].as_str().unwrap().to_string(),
        r.json()["invite"]["id"].as_str().unwrap().to_string(),
    );
    let r = api_as(a, &admin, "DELETE", &format!("/api/invites/{id}"), None).await;
    assert_eq!(r.status, 204);
    let r = api_post(a, "/api/auth/register", register_body("dot", Some(&token))).await;
    assert_eq!(r.status, 403);
    let (expired, hash) = onair::auth::new_session_token();
    let root = srv.db.credentials("root").await.unwrap().unwrap().user.id;
    srv.db
        .create_invite(&hash, root, Role::Broadcaster, onair::chat::unix_secs() - 1)
        .await
        .unwrap()
        .unwrap();
    let r = api_post(
        a,
        "/api/auth/register",
        register_body("dot", Some(&expired)),
    )
    .await;
    assert_eq!(r.status, 403);
    let list = api_as(a, &admin, "GET", "/api/invites", None).await.json();
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["state"] == "expired"),
        "{list}"
    );

    // Only admins make invites; a lifetime past 30 days is refused.
    let r = api_as(a, &ann, "POST", "/api/invites", Some(&json!({}))).await;
    assert_eq!(r.status, 403);
    let r = invite(json!({"hours": 721})).await;
    assert_eq!(r.status, 400);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_streaming_makes_broadcasters_and_closed_takes_nobody() {
    let srv = TestServer::start_with(|c| c.accounts.open_streaming = true).await;
    let r = api_post(srv.http, "/api/auth/register", register_body("eve", None)).await;
    assert_eq!(r.json()["user"]["role"], "broadcaster");
    let eve = login(srv.http, "eve", &password_of("eve")).await;
    let key = key_of(&srv, &eve).await;
    let mut ff = ffmpeg_publish(&srv.rtmp_url(key.as_str().unwrap()), 3);
    wait_for_live(srv.http, "eve").await;
    let _ = ff.wait().await;
    srv.stop().await;

    let srv = TestServer::start_with(|c| c.accounts.registration = Registration::Closed).await;
    let admin = user_with_role(&srv, "root", Role::Admin).await;
    let r = api_as(srv.http, &admin, "POST", "/api/invites", Some(&json!({}))).await;
    let token = r.json()["token"].as_str().unwrap().to_string();
    for invite in [None, Some(token.as_str())] {
        let r = api_post(srv.http, "/api/auth/register", register_body("fay", invite)).await;
        assert_eq!(r.status, 403, "{}", r.text());
        assert!(r.text().contains("closed"), "{}", r.text());
    }
    let r = api(srv.http, "GET", "/api/auth/registration", &[], None).await;
    assert_eq!(r.json()["registration"], "closed");
    srv.stop().await;
}

/// A database from before the policy: its viewer accounts streamed, and
/// still do once the server has migrated it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_made_before_the_policy_keep_streaming() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("migrations");
    std::fs::create_dir(&old).unwrap();
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut names: Vec<_> = std::fs::read_dir(&all)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    for name in names.iter().take_while(|n| !n.starts_with("0008")) {
        std::fs::copy(all.join(name), old.join(name)).unwrap();
    }
    let url = format!("sqlite://{}", dir.path().join("onair.db").display());
    let pool = sqlx::SqlitePool::connect(&format!("{url}?mode=rwc"))
        .await
        .unwrap();
    sqlx::migrate::Migrator::new(old.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO users (id, username, password_hash, role, created_at) \
         VALUES (1, 'old', 'x', 'viewer', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let db = onair::db::Db::open(&url).await.unwrap();
    let user = db.credentials("old").await.unwrap().unwrap().user;
    assert_eq!(user.role, Role::Broadcaster);
}
