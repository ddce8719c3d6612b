//! Channels: stream keys (view, rotate, authorization), settings,
//! categories, the directory with cursors and live state, likes and the
//! schedule; on SQLite and Postgres.

#[macro_use]
mod common;

use common::{api, api_as, signup, Backend, TestServer};
use serde_json::json;
use std::time::Duration;

both!(
    stream_key_is_the_owners_alone,
    settings_and_categories,
    directory_pages_with_cursors_and_filters,
    schedule_crud_and_authorization,
);

async fn make_admin(srv: &TestServer, name: &str) {
    let id = srv.db.credentials(name).await.unwrap().unwrap().user.id;
    srv.db.set_role(id, onair::db::Role::Admin).await.unwrap();
}

async fn stream_key_is_the_owners_alone(b: Backend) {
    let Some(srv) = TestServer::on(b).await else {
        return;
    };
    let a = srv.http;
    let alice = signup(a, "alice").await;
    let bob = signup(a, "bob").await;
    let k = api_as(a, &alice, "GET", "/api/channels/alice/key", None).await;
    assert_eq!(k.status, 200, "{}", k.text());
    let key = k.json()["stream_key"].as_str().unwrap().to_string();
    // B cannot read or rotate A's key; an admin cannot read it either.
    for method in ["GET", "POST"] {
        let r = api_as(a, &bob, method, "/api/channels/alice/key", None).await;
        assert_eq!(r.status, 403, "{method}: {}", r.text());
        assert!(!r.text().contains(&key));
        let r = api(a, method, "/api/channels/alice/key", &[], None).await;
        assert_eq!(r.status, 401);
    }
    make_admin(&srv, "bob").await;
    let r = api_as(a, &bob, "GET", "/api/channels/alice/key", None).await;
    assert_eq!(r.status, 403);
    // The public channel view never shows it.
    let v = api(a, "GET", "/api/channels/alice", &[], None).await;
    assert!(!v.text().contains(&key));
    let dir = api(a, "GET", "/api/channels", &[], None).await;
    assert!(!dir.text().contains(&key));
    // Rotation: a new key, the old one dead.
    let r = api_as(a, &alice, "POST", "/api/channels/alice/key", None).await;
    assert_eq!(r.status, 200);
    let key2 = r.json()["stream_key"].as_str().unwrap().to_string();
    assert_ne!(key, key2);
    use onair::hub::Channels;
    assert_eq!(srv.db.channel_for_key(&key).await.unwrap(), None);
    assert_eq!(
        srv.db.channel_for_key(&key2).await.unwrap().as_deref(),
        Some("alice")
    );
    let me = api_as(a, &alice, "GET", "/api/me", None).await.json();
    assert_eq!(me["channel"]["stream_key"], key2.as_str());
    // Unknown channel: 404.
    let r = api_as(a, &alice, "GET", "/api/channels/nobody/key", None).await;
    assert_eq!(r.status, 404);

    if b == Backend::Sqlite {
        // Rotating ends a live publish (RTMP with ffmpeg).
        let mut ff = common::ffmpeg_publish(&srv.rtmp_url(&key2), 60);
        common::wait_for_live(a, "alice").await;
        let ch = api(a, "GET", "/api/channels/alice", &[], None).await.json();
        assert_eq!(ch["live"], true);
        assert!(ch["started_at"].as_str().unwrap().ends_with('Z'));
        let live = api(a, "GET", "/api/channels?live=true", &[], None)
            .await
            .json();
        assert_eq!(live["items"][0]["name"], "alice");
        let r = api_as(a, &alice, "POST", "/api/channels/alice/key", None).await;
        assert_eq!(r.status, 200);
        let start = std::time::Instant::now();
        loop {
            let ch = api(a, "GET", "/api/channels/alice", &[], None).await.json();
            if ch["live"] == false {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "rotation ends the publish"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // ffmpeg's connection is closed too, and reconnecting with the old key fails.
        let _ = tokio::time::timeout(Duration::from_secs(10), ff.wait()).await;
        ff.kill().await.ok();
    }
    srv.stop().await;
}

async fn settings_and_categories(b: Backend) {
    let Some(srv) = TestServer::on(b).await else {
        return;
    };
    let a = srv.http;
    let alice = signup(a, "alice").await;
    let bob = signup(a, "bob").await;
    let cats = api(a, "GET", "/api/categories", &[], None).await.json();
    let slugs: Vec<&str> = cats["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["slug"].as_str().unwrap())
        .collect();
    assert!(
        slugs.contains(&"games") && slugs.contains(&"music"),
        "{cats}"
    );
    let edit = json!({"title": "Speedruns", "description": "any%\nline two", "category": "games", "tags": ["speedrun", "retro", "retro"]});
    // B cannot edit A's channel.
    let r = api_as(a, &bob, "PATCH", "/api/channels/alice", Some(&edit)).await;
    assert_eq!(r.status, 403);
    let r = api_as(a, &alice, "PATCH", "/api/channels/alice", Some(&edit)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["title"], "Speedruns");
    assert_eq!(v["category"], "games");
    assert_eq!(v["tags"], json!(["speedrun", "retro"]));
    assert_eq!(v["live"], false);
    assert_eq!(v["viewers"], 0);
    assert_eq!(v["owner"], "alice");
    // Bad input.
    for bad in [
        json!({"category": "no-such"}),
        json!({"title": "x".repeat(141)}),
        json!({"tags": (0..11).map(|i| i.to_string()).collect::<Vec<_>>()}),
        json!({"tags": [""]}),
        json!({"slow_mode_secs": 100000}),
        json!({"owner": "bob"}),
        json!({"title": 5}),
    ] {
        let r = api_as(a, &alice, "PATCH", "/api/channels/alice", Some(&bad)).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(r.json()["error"].is_string());
    }
    // null clears the category.
    let r = api_as(
        a,
        &alice,
        "PATCH",
        "/api/channels/alice",
        Some(&json!({"category": null})),
    )
    .await;
    assert_eq!(r.json()["category"], serde_json::Value::Null);
    assert_eq!(r.json()["title"], "Speedruns");
    // Categories: admins only.
    let r = api_as(
        a,
        &bob,
        "PUT",
        "/api/categories/science",
        Some(&json!({"name": "Science"})),
    )
    .await;
    assert_eq!(r.status, 403);
    make_admin(&srv, "bob").await;
    let r = api_as(
        a,
        &bob,
        "PUT",
        "/api/categories/science",
        Some(&json!({"name": "Science & Tech"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = api_as(
        a,
        &bob,
        "PUT",
        "/api/categories/Bad Slug",
        Some(&json!({"name": "x"})),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = api_as(
        a,
        &alice,
        "PATCH",
        "/api/channels/alice",
        Some(&json!({"category": "science"})),
    )
    .await;
    assert_eq!(r.status, 200);
    let cats = api(a, "GET", "/api/categories", &[], None).await.json();
    assert!(cats["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "Science & Tech"));
    // An admin edits any channel; deleting a category uncategorises channels.
    let r = api_as(a, &alice, "DELETE", "/api/categories/science", None).await;
    assert_eq!(r.status, 403);
    let r = api_as(a, &bob, "DELETE", "/api/categories/science", None).await;
    assert_eq!(r.status, 204);
    let r = api_as(a, &bob, "DELETE", "/api/categories/science", None).await;
    assert_eq!(r.status, 404);
    let v = api(a, "GET", "/api/channels/alice", &[], None).await.json();
    assert_eq!(v["category"], serde_json::Value::Null);
    srv.stop().await;
}

async fn directory_pages_with_cursors_and_filters(b: Backend) {
    let Some(srv) = TestServer::on(b).await else {
        return;
    };
    let a = srv.http;
    let names = ["ann", "ben", "cat", "dan", "eve"];
    for n in names {
        let t = signup(a, n).await;
        if n == "ben" || n == "dan" {
            let r = api_as(
                a,
                &t,
                "PATCH",
                &format!("/api/channels/{n}"),
                Some(&json!({"category": "music"})),
            )
            .await;
            assert_eq!(r.status, 200);
        }
    }
    // All channels (demo too), two a page.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            Some(c) => format!("/api/channels?limit=2&cursor={c}"),
            None => "/api/channels?limit=2".to_string(),
        };
        let v = api(a, "GET", &path, &[], None).await.json();
        let items = v["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        for i in items {
            seen.push(i["name"].as_str().unwrap().to_string());
            assert_eq!(i["live"], false);
            assert!(i["viewers"].is_number() && i["likes"].is_number());
        }
        cursor = v["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, vec!["ann", "ben", "cat", "dan", "demo", "eve"]);
    let v = api(a, "GET", "/api/channels?category=music", &[], None)
        .await
        .json();
    let got: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec!["ben", "dan"]);
    assert_eq!(v["next_cursor"], serde_json::Value::Null);
    let v = api(a, "GET", "/api/channels?live=true", &[], None)
        .await
        .json();
    assert_eq!(v, json!({"items": [], "next_cursor": null}));
    let v = api(a, "GET", "/api/channels?live=false&limit=100", &[], None)
        .await
        .json();
    assert_eq!(v["items"].as_array().unwrap().len(), 6);
    for bad in [
        "/api/channels?limit=0",
        "/api/channels?limit=1000",
        "/api/channels?live=maybe",
        "/api/channels?limit=x",
    ] {
        let r = api(a, "GET", bad, &[], None).await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.json()["error"].is_string());
    }
    srv.stop().await;
}

async fn schedule_crud_and_authorization(b: Backend) {
    let Some(srv) = TestServer::on(b).await else {
        return;
    };
    let a = srv.http;
    let alice = signup(a, "alice").await;
    let bob = signup(a, "bob").await;
    let now = onair::chat::unix_secs();
    let t = |s: i64| onair::chat::rfc3339(now + s);
    let body = json!({"title": "Launch party", "starts_at": t(3600), "ends_at": t(7200)});
    let r = api_as(a, &bob, "POST", "/api/channels/alice/schedule", Some(&body)).await;
    assert_eq!(r.status, 403);
    let r = api_as(
        a,
        &alice,
        "POST",
        "/api/channels/alice/schedule",
        Some(&body),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let item = r.json();
    let id = common::json_id(&item["id"]);
    assert_eq!(item["starts_at"], t(3600));
    let r = api_as(
        a,
        &alice,
        "POST",
        "/api/channels/alice/schedule",
        Some(&json!({"title": "Earlier", "starts_at": t(60), "ends_at": t(120)})),
    )
    .await;
    assert_eq!(r.status, 201);
    // Listed on the channel (soonest first) and in the directory.
    let v = api(a, "GET", "/api/channels/alice/schedule", &[], None)
        .await
        .json();
    let titles: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, vec!["Earlier", "Launch party"]);
    let ch = api(a, "GET", "/api/channels/alice", &[], None).await.json();
    assert_eq!(ch["schedule"].as_array().unwrap().len(), 2);
    let dir = api(a, "GET", "/api/channels", &[], None).await.json();
    let entry = dir["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "alice")
        .unwrap()
        .clone();
    assert_eq!(entry["next_broadcast"]["title"], "Earlier");
    // B cannot edit or delete A's broadcasts.
    let path = format!("/api/channels/alice/schedule/{id}");
    let r = api_as(a, &bob, "PATCH", &path, Some(&json!({"title": "hijacked"}))).await;
    assert_eq!(r.status, 403);
    let r = api_as(a, &bob, "DELETE", &path, None).await;
    assert_eq!(r.status, 403);
    // Nor reach them through his own channel's path.
    let r = api_as(
        a,
        &bob,
        "DELETE",
        &format!("/api/channels/bob/schedule/{id}"),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    let r = api_as(
        a,
        &alice,
        "PATCH",
        &path,
        Some(&json!({"title": "Launch party!", "ends_at": t(9000)})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["title"], "Launch party!");
    assert_eq!(r.json()["ends_at"], t(9000));
    // Bad input.
    for bad in [
        json!({"title": "x", "starts_at": t(100), "ends_at": t(50)}),
        json!({"title": "x", "starts_at": t(-7200), "ends_at": t(-3600)}),
        json!({"title": "x", "starts_at": "tomorrow", "ends_at": t(50)}),
        json!({"title": "", "starts_at": t(10), "ends_at": t(50)}),
        json!({"title": "x", "starts_at": t(10), "ends_at": t(10 + 8 * 24 * 3600)}),
        json!({"title": "x", "starts_at": t(10)}),
        json!({"title": "x", "starts_at": t(10), "ends_at": t(50), "extra": 1}),
    ] {
        let r = api_as(
            a,
            &alice,
            "POST",
            "/api/channels/alice/schedule",
            Some(&bad),
        )
        .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    let r = api_as(
        a,
        &alice,
        "PATCH",
        "/api/channels/alice/schedule/notanumber",
        Some(&json!({"title": "x"})),
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].is_string());
    let r = api_as(a, &alice, "DELETE", &path, None).await;
    assert_eq!(r.status, 204);
    let v = api(a, "GET", "/api/channels/alice/schedule", &[], None)
        .await
        .json();
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    srv.stop().await;
}
