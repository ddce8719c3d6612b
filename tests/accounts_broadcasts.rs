//! Past broadcasts: the owner publishes or hides each one and edits its
//! title and description; nobody else can. On SQLite and Postgres.

#[macro_use]
mod common;

use common::{api, bearer, signup, Backend, TestServer};
use serde_json::json;

both!(owner_edits_publishes_and_hides_broadcasts);

async fn owner_edits_publishes_and_hides_broadcasts(b: Backend) {
    let Some(srv) = TestServer::on(b).await else {
        return;
    };
    let a = srv.http;
    let alice = signup(a, "alice").await;
    let bob = signup(a, "bob").await;
    let now_ms = onair::chat::unix_secs() * 1000;
    let row = srv
        .db
        .create_broadcast("alice", None, now_ms, true)
        .await
        .unwrap();
    let path = format!("/api/channels/alice/broadcasts/{}", row.id);
    let edit = json!({"title": "Finale <b>!</b>", "description": "'; DROP TABLE broadcasts; --", "published": false});
    let r = api(
        a,
        "PATCH",
        &path,
        &[("Authorization", &bearer(&bob))],
        Some(&edit),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = api(a, "PATCH", &path, &[], Some(&edit)).await;
    assert_eq!(r.status, 401);
    let r = api(
        a,
        "PATCH",
        &path,
        &[("Authorization", &bearer(&alice))],
        Some(&edit),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["title"], "Finale <b>!</b>");
    assert_eq!(v["description"], "'; DROP TABLE broadcasts; --");
    assert_eq!(v["published"], false);
    // Visibility: the owner (and admins) only.
    let alice_user = srv.db.credentials("alice").await.unwrap().unwrap().user;
    let bob_user = srv.db.credentials("bob").await.unwrap().unwrap().user;
    assert!(srv
        .db
        .broadcast_visible(row.id, Some(&alice_user))
        .await
        .unwrap());
    assert!(!srv
        .db
        .broadcast_visible(row.id, Some(&bob_user))
        .await
        .unwrap());
    assert!(!srv.db.broadcast_visible(row.id, None).await.unwrap());
    // ... and the HTTP API agrees: the list and the VOD hide it from
    // everyone but its owner.
    let listed = |r: &common::HttpResponse| {
        r.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == json!(row.id.to_string()))
    };
    let list = "/api/channels/alice/broadcasts";
    assert!(
        !listed(&api(a, "GET", list, &[], None).await),
        "hidden from anonymous viewers"
    );
    assert!(
        !listed(&api(a, "GET", list, &[("Authorization", &bearer(&bob))], None).await),
        "hidden from bob"
    );
    assert!(
        listed(&api(a, "GET", list, &[("Authorization", &bearer(&alice))], None).await),
        "alice sees her own"
    );
    // The owner's list says which ones are hidden (the dashboard shows it).
    let hidden_flag = |r: &common::HttpResponse| {
        r.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == json!(row.id.to_string()))
            .map(|i| i["hidden"].clone())
    };
    let owner_list = api(a, "GET", list, &[("Authorization", &bearer(&alice))], None).await;
    assert_eq!(
        hidden_flag(&owner_list),
        Some(json!(true)),
        "{}",
        owner_list.text()
    );
    let vod = format!("/vod/{}/index.m3u8", row.id);
    assert_eq!(api(a, "GET", &vod, &[], None).await.status, 404);
    assert_eq!(
        api(a, "GET", &vod, &[("Authorization", &bearer(&bob))], None)
            .await
            .status,
        404
    );
    assert!(srv
        .db
        .hidden_broadcasts("alice")
        .await
        .unwrap()
        .contains(&row.id));
    let r = api(
        a,
        "PATCH",
        &path,
        &[("Authorization", &bearer(&alice))],
        Some(&json!({"published": true})),
    )
    .await;
    assert_eq!(r.json()["published"], true);
    assert_eq!(r.json()["title"], "Finale <b>!</b>");
    assert!(srv.db.broadcast_visible(row.id, None).await.unwrap());
    assert!(
        listed(&api(a, "GET", list, &[], None).await),
        "published: listed for all"
    );
    let owner_list = api(a, "GET", list, &[("Authorization", &bearer(&alice))], None).await;
    assert_eq!(
        hidden_flag(&owner_list),
        Some(json!(false)),
        "{}",
        owner_list.text()
    );
    let public_list = api(a, "GET", list, &[], None).await;
    assert_eq!(
        hidden_flag(&public_list),
        Some(json!(false)),
        "{}",
        public_list.text()
    );
    // Not through another channel's path; bad ids and fields.
    let r = api(
        a,
        "PATCH",
        &format!("/api/channels/bob/broadcasts/{}", row.id),
        &[("Authorization", &bearer(&bob))],
        Some(&json!({"published": false})),
    )
    .await;
    assert_eq!(r.status, 404);
    let r = api(
        a,
        "PATCH",
        "/api/channels/alice/broadcasts/xyz",
        &[("Authorization", &bearer(&alice))],
        Some(&json!({})),
    )
    .await;
    assert_eq!(r.status, 404);
    let r = api(
        a,
        "PATCH",
        &path,
        &[("Authorization", &bearer(&alice))],
        Some(&json!({"hidden": true})),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = api(
        a,
        "PATCH",
        &path,
        &[("Authorization", &bearer(&alice))],
        Some(&json!({"title": "x".repeat(141)})),
    )
    .await;
    assert_eq!(r.status, 400);
    srv.stop().await;
}
