//! The watch page in headless Chromium (`tests/e2e/watch_page.mjs`), on a
//! desktop (1280x800) and a phone (390x844):
//! - on the phone the chat input is in view without scrolling, and the
//!   player stays at the top while the chat and then the page scroll;
//! - moderation buttons are at least 24 px square (WCAG 2.2, 2.5.8);
//! - a chat message whose id is past 2^53 (no JavaScript number holds it)
//!   is deleted from the page: the server gets the exact id, and every page
//!   drops the message on the `delete` event;
//! - switching channels at once (/c/a, then /c/b) shows only b, however
//!   late a's answers come, and a's fetches are cancelled.
//!
//! Needs the built app (`web/dist`), `node`/`npm` and Debian's `chromium`.
//! Screenshots land in target/screenshots/ (see `shots`).

mod common;

use common::node::{page_scenario, shots};
use common::{api_as, signup, TestServer};
use onair::db::ChatRow;
use serde_json::{json, Value};

/// One scenario at a time: each runs a server and Chromium pages, which a
/// small machine runs one set at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// 2^53 + 1: the first integer a JavaScript number cannot hold (it reads as
/// 2^53, another message's id for all the page could tell).
const BIG_ID: i64 = (1 << 53) + 1;

fn num(v: &Value, path: &str) -> f64 {
    v.pointer(path)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{path} missing or not a number in {v}"))
}

/// Stores `text` by `user` in `channel`'s history, as if said earlier.
async fn said(srv: &TestServer, channel: &str, user: &str, id: i64, text: &str) {
    let user_id = srv.db.credentials(user).await.unwrap().unwrap().user.id;
    let row = ChatRow {
        id,
        channel: channel.into(),
        user_id,
        username: user.into(),
        text: text.into(),
        at_ms: id / 1000,
    };
    srv.db.insert_chat(&row).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_layout_button_sizes_and_a_big_id_deleted_from_the_page() {
    let _serial = SERIAL.lock().await;
    let srv = TestServer::start().await;
    signup(srv.http, "alice").await;
    signup(srv.http, "bob").await;
    // Enough history that the chat's list scrolls on both screens.
    let start = 1_700_000_000_000_000;
    for i in 0..40 {
        said(&srv, "alice", "bob", start + i, &format!("message {i}")).await;
    }
    said(&srv, "alice", "bob", BIG_ID, "a message with a big id").await;
    let id = BIG_ID.to_string();
    let dir = shots();
    let r = page_scenario(
        "watch_page.mjs",
        srv.http,
        &["layout", "alice", "bob", &id, &dir],
    )
    .await;

    for size in ["desktop", "phone"] {
        let at = |p: &str| num(&r, &format!("/{size}/{p}"));
        assert!(at("loaded/buttons") >= 3.0, "{size}: {r}");
        assert!(at("loaded/minButtonWidth") >= 24.0, "{size}: {r}");
        assert!(at("loaded/minButtonHeight") >= 24.0, "{size}: {r}");
        // The chat input, and its button, in view at load, without scrolling.
        let height = at("loaded/viewport/height");
        assert_eq!(at("loaded/scrollY"), 0.0, "{size}: {r}");
        assert!(at("loaded/input/top") >= 0.0, "{size}: {r}");
        assert!(at("loaded/input/bottom") <= height, "{size}: {r}");
        assert!(at("loaded/send/bottom") <= height, "{size}: {r}");
        // The chat's list scrolled, the page did not.
        assert!(at("chatScrolledBy") > 0.0, "{size}: the chat scrolls: {r}");
        assert_eq!(at("chatScrolled/scrollY"), 0.0, "{size}: {r}");
    }
    // The phone: player on top, chat under it to the bottom of the screen.
    let phone = |p: &str| num(&r, &format!("/phone/{p}"));
    assert!(
        phone("loaded/input/bottom") > phone("loaded/viewport/height") - 80.0,
        "the chat fills the screen: {r}"
    );
    assert!(
        phone("loaded/messages/top") >= phone("loaded/video/bottom"),
        "{r}"
    );
    // Scrolled to the channel's details, the player is still on top.
    assert!(phone("pageScrolled/scrollY") > 0.0, "the page scrolls: {r}");
    assert_eq!(phone("pageScrolled/stage/top"), 0.0, "{r}");
    assert!(phone("pageScrolled/video/top") >= 0.0, "{r}");
    assert!(phone("pageScrolled/video/height") > 150.0, "{r}");

    assert_eq!(r["deleteStatus"], 204, "{r}");
    assert_eq!(
        r["deletePaths"],
        json!([format!("/api/channels/alice/chat/{id}")]),
        "{r}"
    );
    assert_eq!(r["goneForModerator"], true, "{r}");
    assert_eq!(r["goneForViewer"], true, "{r}");
    assert!(srv
        .db
        .chat_message("alice", BIG_ID)
        .await
        .unwrap()
        .is_none());
    assert!(srv
        .db
        .chat_message("alice", start + 39)
        .await
        .unwrap()
        .is_some());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_channels_shows_only_the_new_one_and_cancels_the_old_fetches() {
    let _serial = SERIAL.lock().await;
    let srv = TestServer::start().await;
    for name in ["anna", "bert"] {
        let token = signup(srv.http, name).await;
        let body = json!({"title": format!("{name} title")});
        let r = api_as(
            srv.http,
            &token,
            "PATCH",
            &format!("/api/channels/{name}"),
            Some(&body),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let start = 1_700_000_000_000_000;
    said(&srv, "anna", "anna", start, "said on anna").await;
    said(&srv, "bert", "bert", start + 1, "said on bert").await;
    let r = page_scenario("watch_page.mjs", srv.http, &["switch", "anna", "bert"]).await;

    assert_eq!(r["path"], "/c/bert", "{r}");
    assert_eq!(r["title"], "bert title", "{r}");
    assert_eq!(r["messages"], json!(["said on bert"]), "{r}");
    // a's details were asked for, and that fetch was called off.
    let held: Vec<&str> = r["heldUrls"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(held.contains(&"/api/channels/anna"), "{r}");
    let aborted = r["failed"].as_array().unwrap().iter().any(|f| {
        f["path"] == "/api/channels/anna" && f["error"].as_str().unwrap().contains("ABORTED")
    });
    assert!(aborted, "a's fetch is cancelled: {r}");
    assert!(
        !r["finished"]
            .as_array()
            .unwrap()
            .contains(&json!("/api/channels/anna")),
        "{r}"
    );
    srv.stop().await;
}
