//! Signing out reaches open chat connections: after a logout, a password
//! change, an account deletion or a moderator's demotion, a chat WebSocket
//! or WHEP data channel signed in with the ended session can no longer post
//! (it gets an error line within 1 s and stays connected, read-only), and a
//! demoted moderator loses the moderator's exemptions and moderation rights
//! at once.

mod common;

use common::accounts::user_with_role;
use common::webrtc_client::{watch, ViewerOptions};
use common::{api_as, login, password_of, signup, ws_connect, ws_send, ws_wait, TestServer, Ws};
use onair::db::Role;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The bound the issue sets: a revocation takes effect within this.
const TAKES_EFFECT: Duration = Duration::from_secs(1);

/// A chat WebSocket on `demo` signed in with `token`, past its backlog.
async fn chat_as(srv: &TestServer, token: &str) -> Ws {
    let mut ws = ws_connect(srv.http, &format!("/ws/demo?token={token}"), &[]).await;
    ws_wait(&mut ws, Duration::from_secs(5), |v| v["type"] == "viewers")
        .await
        .expect("backlog ends with the viewer count");
    ws
}

async fn say(ws: &mut Ws, text: &str) {
    ws_send(ws, &json!({"type": "chat", "text": text})).await;
}

fn is_chat(text: &'static str) -> impl FnMut(&Value) -> bool {
    move |v| v["type"] == "chat" && v["text"] == text
}

fn is_error(v: &Value) -> bool {
    v["type"] == "error"
}

/// `ws` is told its session ended within [`TAKES_EFFECT`] of `since`, and
/// what it posts afterwards never reaches `other`.
async fn assert_signed_out(ws: &mut Ws, other: &mut Ws, since: Instant, what: &str) {
    let e = ws_wait(ws, TAKES_EFFECT, is_error)
        .await
        .unwrap_or_else(|| panic!("{what}: no error line within {TAKES_EFFECT:?}"));
    assert!(
        since.elapsed() <= TAKES_EFFECT,
        "{what}: told after {:?}",
        since.elapsed()
    );
    assert!(
        e["error"].as_str().unwrap().contains("session has ended"),
        "{what}: {e}"
    );
    say(ws, "posted after sign-out").await;
    let e = ws_wait(ws, Duration::from_secs(2), is_error)
        .await
        .unwrap_or_else(|| panic!("{what}: a post after sign-out is answered with an error"));
    assert!(
        e["error"].as_str().unwrap().contains("session has ended"),
        "{e}"
    );
    assert!(
        ws_wait(
            other,
            Duration::from_secs(1),
            is_chat("posted after sign-out")
        )
        .await
        .is_none(),
        "{what}: a signed-out socket's post reached the room"
    );
    // Still connected, as a reader.
    say(other, "still reading?").await;
    ws_wait(ws, Duration::from_secs(2), is_chat("still reading?"))
        .await
        .unwrap_or_else(|| panic!("{what}: the signed-out socket stays a reader"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_signs_out_the_sockets_of_that_session() {
    let srv = TestServer::start().await;
    let alice = signup(srv.http, "alice").await;
    let bob = signup(srv.http, "bob").await;
    let mut wa = chat_as(&srv, &alice).await;
    let mut wb = chat_as(&srv, &bob).await;
    say(&mut wa, "hello").await;
    ws_wait(&mut wb, Duration::from_secs(2), is_chat("hello"))
        .await
        .expect("alice may post while signed in");
    let t0 = Instant::now();
    let r = api_as(srv.http, &alice, "POST", "/api/auth/logout", None).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_signed_out(&mut wa, &mut wb, t0, "logout").await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_signs_out_the_other_sessions_sockets() {
    let srv = TestServer::start().await;
    let old = signup(srv.http, "alice").await;
    let current = login(srv.http, "alice", &password_of("alice")).await;
    let bob = signup(srv.http, "bob").await;
    let mut w_old = chat_as(&srv, &old).await;
    let mut w_current = chat_as(&srv, &current).await;
    let mut wb = chat_as(&srv, &bob).await;
    let t0 = Instant::now();
    let r = api_as(
        srv.http,
        &current,
        "POST",
        "/api/auth/password",
        Some(&json!({"old_password": password_of("alice"), "new_password": "a new password 2"})),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_signed_out(&mut w_old, &mut wb, t0, "password change").await;
    // The session that changed the password keeps writing.
    say(&mut w_current, "kept").await;
    ws_wait(&mut wb, Duration::from_secs(2), is_chat("kept"))
        .await
        .expect("the session that changed the password still posts");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_account_signs_out_its_sockets() {
    let srv = TestServer::start().await;
    let alice = signup(srv.http, "alice").await;
    let bob = signup(srv.http, "bob").await;
    let mut wa = chat_as(&srv, &alice).await;
    let mut wb = chat_as(&srv, &bob).await;
    let t0 = Instant::now();
    let r = api_as(srv.http, &alice, "DELETE", "/api/me", None).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_signed_out(&mut wa, &mut wb, t0, "account deletion").await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_moderator_loses_moderation_at_once() {
    let srv = TestServer::start().await;
    let a = srv.http;
    let admin = user_with_role(&srv, "boss", Role::Admin).await;
    let mo = user_with_role(&srv, "mo", Role::Moderator).await;
    let bob = signup(a, "bob").await;
    let r = api_as(
        a,
        &admin,
        "POST",
        "/api/channels/demo/slow_mode",
        Some(&json!({"seconds": 60})),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let mut wm = chat_as(&srv, &mo).await;
    let mut wb = chat_as(&srv, &bob).await;
    // A moderator is exempt from slow mode and may ban.
    say(&mut wm, "m1").await;
    say(&mut wm, "m2").await;
    for m in ["m1", "m2"] {
        ws_wait(&mut wb, Duration::from_secs(2), is_chat(m))
            .await
            .unwrap_or_else(|| panic!("moderator's {m} delivered despite slow mode"));
    }
    let ban = json!({"username": "bob", "seconds": 1});
    let r = api_as(a, &mo, "POST", "/api/channels/demo/bans", Some(&ban)).await;
    assert_eq!(r.status, 204, "a moderator may time out: {}", r.text());
    let r = api_as(a, &mo, "DELETE", "/api/channels/demo/bans/bob", None).await;
    assert_eq!(r.status, 204, "{}", r.text());

    let t0 = Instant::now();
    let r = api_as(
        a,
        &admin,
        "PATCH",
        "/api/users/mo",
        Some(&json!({"role": "viewer"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The open socket is now held to slow mode like anyone...
    say(&mut wm, "m3").await;
    let e = ws_wait(&mut wm, TAKES_EFFECT, is_error)
        .await
        .expect("the demoted moderator's next post is refused");
    assert!(t0.elapsed() <= TAKES_EFFECT, "{:?}", t0.elapsed());
    assert!(e["error"].as_str().unwrap().contains("slow mode"), "{e}");
    assert!(
        ws_wait(&mut wb, Duration::from_secs(1), is_chat("m3"))
            .await
            .is_none(),
        "a demoted moderator's post skipped slow mode"
    );
    // ...and moderation over HTTP is refused.
    let r = api_as(a, &mo, "POST", "/api/channels/demo/bans", Some(&ban)).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = api_as(
        a,
        &mo,
        "POST",
        "/api/channels/demo/slow_mode",
        Some(&json!({"seconds": 0})),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    srv.stop().await;
}

/// The same over a WHEP `chat` data channel: the viewer signed in with a
/// Bearer token posts on open, is signed out by a logout right after, and
/// what it posts 1 s after opening (well within 1 s of the logout) is
/// refused; the video session and the room stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_signs_out_a_whep_data_channel() {
    let srv = TestServer::start().await;
    let alice = signup(srv.http, "alice").await;
    let bob = signup(srv.http, "bob").await;
    let mut wb = chat_as(&srv, &bob).await;
    let opts = ViewerOptions {
        token: Some(alice.clone()),
        chat_message: Some(r#"{"type":"chat","text":"dc before"}"#.into()),
        chat_later: vec![(TAKES_EFFECT, r#"{"type":"chat","text":"dc after"}"#.into())],
        ..Default::default()
    };
    let viewer = tokio::spawn(watch(srv.http, "demo", Duration::from_secs(5), opts));
    ws_wait(&mut wb, Duration::from_secs(10), is_chat("dc before"))
        .await
        .expect("the data channel posts while signed in");
    let t0 = Instant::now();
    let r = api_as(srv.http, &alice, "POST", "/api/auth/logout", None).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let logged_out_after = t0.elapsed();
    assert!(
        ws_wait(&mut wb, Duration::from_secs(3), is_chat("dc after"))
            .await
            .is_none(),
        "a data channel's post after its logout reached the room"
    );
    say(&mut wb, "to the reader").await;
    let got = viewer.await.unwrap().expect("viewer ran");
    let lines: Vec<Value> = got
        .chat
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let ended: Vec<&Value> = lines
        .iter()
        .filter(|v| is_error(v))
        .filter(|v| v["error"].as_str().unwrap().contains("session has ended"))
        .collect();
    assert!(
        ended.len() >= 2,
        "told on sign-out and on the refused post (logout took {logged_out_after:?}): {lines:?}"
    );
    assert!(
        lines.iter().any(is_chat("to the reader")),
        "the signed-out data channel still reads the room: {lines:?}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_one_session_from_another_signs_out_only_its_sockets() {
    let srv = TestServer::start().await;
    let laptop = signup(srv.http, "alice").await;
    let phone = login(srv.http, "alice", &password_of("alice")).await;
    let bob = signup(srv.http, "bob").await;
    let mut on_laptop = chat_as(&srv, &laptop).await;
    let mut on_phone = chat_as(&srv, &phone).await;
    let mut wb = chat_as(&srv, &bob).await;
    let list = api_as(srv.http, &laptop, "GET", "/api/me/sessions", None).await;
    assert_eq!(list.status, 200, "{}", list.text());
    let items = list.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(
        items.iter().filter(|i| i["current"] == true).count(),
        1,
        "{items:?}"
    );
    let phone_id = items.iter().find(|i| i["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let t0 = Instant::now();
    let path = format!("/api/me/sessions/{phone_id}");
    let r = api_as(srv.http, &laptop, "DELETE", &path, None).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_signed_out(&mut on_phone, &mut wb, t0, "session ended from another").await;
    let r = api_as(srv.http, &phone, "GET", "/api/me", None).await;
    assert_eq!(r.status, 401);
    // The laptop was not signed out.
    say(&mut on_laptop, "laptop still writes").await;
    ws_wait(
        &mut wb,
        Duration::from_secs(2),
        is_chat("laptop still writes"),
    )
    .await
    .expect("the session that ended the other one still posts");
    // Another user's session is not this user's to end.
    let r = api_as(srv.http, &bob, "DELETE", &path, None).await;
    assert_eq!(r.status, 404, "{}", r.text());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_everywhere_signs_out_every_socket_and_clears_the_cookie() {
    let srv = TestServer::start().await;
    let laptop = signup(srv.http, "alice").await;
    let phone = login(srv.http, "alice", &password_of("alice")).await;
    let bob = signup(srv.http, "bob").await;
    let mut on_laptop = chat_as(&srv, &laptop).await;
    let mut on_phone = chat_as(&srv, &phone).await;
    let mut wb = chat_as(&srv, &bob).await;
    let t0 = Instant::now();
    let r = api_as(srv.http, &laptop, "POST", "/api/auth/logout-all", None).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let cookie = r.header("set-cookie").unwrap_or("");
    assert!(cookie.contains("Max-Age=0"), "{cookie}");
    assert_signed_out(&mut on_laptop, &mut wb, t0, "everywhere, this socket").await;
    // The phone was told at the same moment (its line has waited meanwhile);
    // what it posts now is refused too.
    let e = ws_wait(&mut on_phone, TAKES_EFFECT, is_error)
        .await
        .expect("the other socket is told its session ended");
    assert!(
        e["error"].as_str().unwrap().contains("session has ended"),
        "{e}"
    );
    say(&mut on_phone, "phone after everywhere").await;
    let e = ws_wait(&mut on_phone, Duration::from_secs(2), is_error)
        .await
        .expect("a post after signing out everywhere is refused");
    assert!(
        e["error"].as_str().unwrap().contains("session has ended"),
        "{e}"
    );
    for token in [&laptop, &phone] {
        let r = api_as(srv.http, token, "GET", "/api/me", None).await;
        assert_eq!(r.status, 401);
    }
    srv.stop().await;
}
