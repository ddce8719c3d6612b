//! Accounts: register, login, logout, sessions, password change, roles,
//! soft delete, CSRF, login throttle and bad input, on SQLite and Postgres.

#[macro_use]
mod common;

use common::{
    api, api_as, api_post, assert_error, login, password_of, signup, Backend, TestServer,
};
use serde_json::json;

both!(
    register_login_me_logout,
    bad_registrations_get_clear_4xx,
    login_slows_the_guesser_not_the_owner,
    sessions_per_user_are_capped,
    cookie_requests_need_same_origin,
    expired_session_is_401,
    change_password,
    soft_delete_keeps_content_and_ends_login,
);

async fn register_login_me_logout(b: Backend) {
    let Some(srv) = TestServer::on(b).await else {
        return;
    };
    let a = srv.http;
    let r = api_post(
        a,
        "/api/auth/register",
        json!({"username": "alice", "password": password_of("alice"), "email": "a@example.com"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["user"]["username"], "alice");
    assert_eq!(r.json()["channel"]["name"], "alice");
    assert!(
        !r.text().contains("password"),
        "no hash in answers: {}",
        r.text()
    );

    let body = json!({"username": "alice", "password": password_of("alice")});
    let r = api(a, "POST", "/api/auth/login", &[], Some(&body)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let cookie = r.header("set-cookie").expect("session cookie").to_string();
    assert!(cookie.starts_with("onair_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    let token = r.json()["token"].as_str().unwrap().to_string();
    let cookie_pair = cookie.split(';').next().unwrap().to_string();
    assert_eq!(cookie_pair, format!("onair_session={token}"));

    let me = api_as(a, &token, "GET", "/api/me", None).await;
    assert_eq!(me.status, 200, "{}", me.text());
    let v = me.json();
    assert_eq!(v["user"]["username"], "alice");
    // The harness runs with --open-streaming (tests/signup_policy.rs
    // covers the default).
    assert_eq!(v["user"]["role"], "broadcaster");
    assert_eq!(v["channel"]["name"], "alice");
    let key = v["channel"]["stream_key"].as_str().unwrap().to_string();
    assert!(key.len() >= 22);
    // The key publishes on alice's channel (the RTMP/WHIP check).
    use onair::hub::Channels;
    assert_eq!(
        srv.db.channel_for_key(&key).await.unwrap().as_deref(),
        Some("alice")
    );

    // The cookie works as well as the token.
    let me2 = api(a, "GET", "/api/me", &[("Cookie", &cookie_pair)], None).await;
    assert_eq!(me2.status, 200, "{}", me2.text());

    // Without either: 401.
    assert_error(&api(a, "GET", "/api/me", &[], None).await, 401);

    let out = api_as(a, &token, "POST", "/api/auth/logout", None).await;
    assert_eq!(out.status, 204, "{}", out.text());
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_error(&api_as(a, &token, "GET", "/api/me", None).await, 401);
    srv.stop().await;
}

async fn bad_registrations_get_clear_4xx(b: Backend) {
    let Some(srv) = TestServer::on(b).await else {
        return;
    };
    let a = srv.http;
    let reg = |u: &str| json!({"username": u, "password": "long enough pw"});
    for reserved in [
        "api",
        "hls",
        "admin",
        "whep",
        "whip",
        "vod",
        "ws",
        "c",
        "login",
        "register",
        "dashboard",
    ] {
        let r = api(a, "POST", "/api/auth/register", &[], Some(&reg(reserved))).await;
        assert_error(&r, 400);
        assert!(r.text().contains("reserved"), "{reserved}: {}", r.text());
    }
    for invalid in [
        "",
        "Alice",
        "a b",
        "../x",
        "-x",
        "x/y",
        "é",
        &"a".repeat(33),
        "a'b",
        "<b>",
    ] {
        let r = api(a, "POST", "/api/auth/register", &[], Some(&reg(invalid))).await;
        assert_error(&r, 400);
    }
    // `demo` exists as a channel without an owner: the name is taken.
    assert_error(
        &api(a, "POST", "/api/auth/register", &[], Some(&reg("demo"))).await,
        409,
    );
    // Short password, bad email, wrong types.
    for bad in [
        json!({"username": "bob", "password": "short"}),
        json!({"username": "bob", "password": "long enough pw", "email": "not an email"}),
        json!({"username": 5, "password": "long enough pw"}),
    ] {
        let r = api(a, "POST", "/api/auth/register", &[], Some(&bad)).await;
        assert_error(&r, 400);
    }
    // An unknown field.
    let admin = json!({"username": "bob", "password": "long enough pw", "admin": true});
    let r = api(a, "POST", "/api/auth/register", &[], Some(&admin)).await;
    assert_error(&r, 400);
    assert!(r.text().contains("admin"), "names the field: {}", r.text());
    // Malformed JSON, no body, not JSON at all, and oversized.
    let big = format!(
        "{{\"username\":\"bob\",\"password\":\"{}\"}}",
        "x".repeat(100_000)
    );
    for (content_type, body, status) in [
        ("application/json", &b"{\"username\": \"bob\","[..], 400),
        ("application/json", b"", 400),
        ("text/plain", b"username=bob", 415),
        ("application/json", big.as_bytes(), 413),
    ] {
        let headers = [("Content-Type", content_type)];
        let r = common::http(a, "POST", "/api/auth/register", &headers, body).await;
        assert_error(&r, status);
    }
    // Duplicate.
    signup(a, "bob").await;
    let r = api(a, "POST", "/api/auth/register", &[], Some(&reg("bob"))).await;
    assert_error(&r, 409);
    srv.stop().await;
}

/// Wrong passwords slow down whoever types them, from their address, with
/// doubling delays; the owner signing in from their own address with the
/// right password is never refused because of them.
async fn login_slows_the_guesser_not_the_owner(b: Backend) {
    use common::accounts::{behind_proxy, login_from};
    use onair::auth::throttle::{FIRST_DELAY, FREE_USER_FAILURES};
    let Some(srv) = TestServer::on_with(b, behind_proxy).await else {
        return;
    };
    let a = srv.http;
    signup(a, "carol").await;
    signup(a, "dave").await;
    let (guesser, owner) = ("203.0.113.9", "198.51.100.20");
    let right = password_of("carol");
    // The free tries: each a plain 401, none refused.
    for i in 0..FREE_USER_FAILURES {
        let r = login_from(a, guesser, "carol", "wrong password").await;
        assert_error(&r, 401);
        assert_eq!(r.header("retry-after"), None, "free try {i} is not delayed");
    }
    // One more failure starts the first delay; while it runs even the
    // right password from the guesser's address is refused.
    let r = login_from(a, guesser, "carol", "wrong password").await;
    assert_error(&r, 401);
    let r = login_from(a, guesser, "carol", &right).await;
    assert_error(&r, 429);
    let first: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert_eq!(first, FIRST_DELAY.as_secs());
    // The owner, from their own address, right away.
    let r = login_from(a, owner, "carol", &right).await;
    assert_eq!(r.status, 200, "the owner is not locked out: {}", r.text());
    // Another account from the guesser's address is not slowed yet: the
    // host's own allowance is larger.
    let r = login_from(a, guesser, "dave", &password_of("dave")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // After the delay the guesser may try again; the next failure doubles it.
    tokio::time::sleep(FIRST_DELAY + std::time::Duration::from_millis(200)).await;
    let r = login_from(a, guesser, "carol", "wrong password").await;
    assert_error(&r, 401);
    let r = login_from(a, guesser, "carol", &right).await;
    assert_error(&r, 429);
    let second: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert_eq!(second, 2 * first, "delays double");
    // Unknown usernames answer like wrong passwords.
    let r = login_from(a, owner, "nobody", "whatever1").await;
    assert_error(&r, 401);
    assert_eq!(r.json()["error"], "wrong username or password");
    srv.stop().await;
}

/// A login past [`onair::auth::MAX_SESSIONS_PER_USER`] ends the oldest
/// session; the others and the new one work.
async fn sessions_per_user_are_capped(b: Backend) {
    use onair::auth::MAX_SESSIONS_PER_USER;
    let Some(srv) = TestServer::on(b).await else {
        return;
    };
    let a = srv.http;
    let first = signup(a, "sam").await;
    let user = srv.db.credentials("sam").await.unwrap().unwrap().user;
    // Seconds resolve session age: the first is the oldest by a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let mut tokens = Vec::new();
    for _ in 1..MAX_SESSIONS_PER_USER {
        tokens.push(login(a, "sam", &password_of("sam")).await);
    }
    assert_eq!(
        srv.db.session_count(user.id).await.unwrap(),
        MAX_SESSIONS_PER_USER
    );
    let r = api_as(a, &first, "GET", "/api/me", None).await;
    assert_eq!(r.status, 200, "at the cap nothing ended yet");
    let newest = login(a, "sam", &password_of("sam")).await;
    assert_eq!(
        srv.db.session_count(user.id).await.unwrap(),
        MAX_SESSIONS_PER_USER
    );
    let r = api_as(a, &first, "GET", "/api/me", None).await;
    assert_error(&r, 401);
    for t in [&tokens[0], tokens.last().unwrap(), &newest] {
        let r = api_as(a, t, "GET", "/api/me", None).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    srv.stop().await;
}

async fn cookie_requests_need_same_origin(b: Backend) {
    let Some(srv) = TestServer::on(b).await else {
        return;
    };
    let a = srv.http;
    let token = signup(a, "erin").await;
    let cookie = format!("onair_session={token}");
    let host = a.to_string();
    let same = format!("http://{host}");
    let path = "/api/channels/erin";
    let body = json!({"title": "hello"});
    // No Origin: refused.
    let r = api(a, "PATCH", path, &[("Cookie", &cookie)], Some(&body)).await;
    assert_error(&r, 403);
    // Another site: refused.
    let lookalike = format!("http://{host}.evil.example");
    for origin in ["http://evil.example", &lookalike] {
        let headers = [("Cookie", cookie.as_str()), ("Origin", origin)];
        let r = api(a, "PATCH", path, &headers, Some(&body)).await;
        assert_error(&r, 403);
    }
    // Same origin, by Origin, Referer or Sec-Fetch-Site: accepted.
    let referer = format!("{same}/dashboard");
    for (name, value) in [
        ("Origin", same.as_str()),
        ("Referer", &referer),
        ("Sec-Fetch-Site", "same-origin"),
    ] {
        let headers = [("Cookie", cookie.as_str()), (name, value)];
        let r = api(a, "PATCH", path, &headers, Some(&body)).await;
        assert_eq!(r.status, 200, "{name}: {}", r.text());
    }
    // Bearer needs no Origin.
    let r = api_as(a, &token, "PATCH", path, Some(&body)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Cookie reads need none either.
    let r = api(a, "GET", "/api/me", &[("Cookie", &cookie)], None).await;
    assert_eq!(r.status, 200);
    // Cross-site login and register are refused too (login CSRF).
    let r = api(
        a,
        "POST",
        "/api/auth/login",
        &[("Origin", "http://evil.example")],
        Some(&json!({"username": "erin", "password": password_of("erin")})),
    )
    .await;
    assert_error(&r, 403);
    srv.stop().await;
}

async fn expired_session_is_401(b: Backend) {
    let Some(srv) = TestServer::on(b).await else {
        return;
    };
    let a = srv.http;
    let token = signup(a, "frank").await;
    let ok = api_as(a, &token, "GET", "/api/me", None).await;
    assert_eq!(ok.status, 200);
    sqlx::query("UPDATE sessions SET expires_at = 0")
        .execute(srv.db.pool())
        .await
        .unwrap();
    let r = api_as(a, &token, "GET", "/api/me", None).await;
    assert_error(&r, 401);
    assert!(r.text().contains("expired"), "{}", r.text());
    // A made-up token, too.
    let r = api(
        a,
        "GET",
        "/api/me",
        &[("Authorization", "Bearer not-a-token")],
        None,
    )
    .await;
    assert_error(&r, 401);
    srv.stop().await;
}

async fn change_password(b: Backend) {
    let Some(srv) = TestServer::on(b).await else {
        return;
    };
    let a = srv.http;
    let t1 = signup(a, "gina").await;
    let t2 = login(a, "gina", &password_of("gina")).await;
    for (body, status) in [
        (
            json!({"old_password": "nope nope", "new_password": "brand new pw"}),
            403,
        ),
        (
            json!({"old_password": password_of("gina"), "new_password": "short"}),
            400,
        ),
    ] {
        let r = api_as(a, &t1, "POST", "/api/auth/password", Some(&body)).await;
        assert_error(&r, status);
    }
    let body = json!({"old_password": password_of("gina"), "new_password": "brand new pw"});
    let r = api_as(a, &t1, "POST", "/api/auth/password", Some(&body)).await;
    assert_eq!(r.status, 204, "{}", r.text());
    // This session stays; the other device signs in again.
    assert_eq!(api_as(a, &t1, "GET", "/api/me", None).await.status, 200);
    assert_eq!(api_as(a, &t2, "GET", "/api/me", None).await.status, 401);
    let old = api_post(
        a,
        "/api/auth/login",
        json!({"username": "gina", "password": password_of("gina")}),
    )
    .await;
    assert_error(&old, 401);
    login(a, "gina", "brand new pw").await;
    // The stored hash is argon2id.
    let creds = srv.db.credentials("gina").await.unwrap().unwrap();
    assert!(
        creds.password_hash.starts_with("$argon2id$"),
        "{}",
        creds.password_hash
    );
    srv.stop().await;
}

async fn soft_delete_keeps_content_and_ends_login(b: Backend) {
    let Some(srv) = TestServer::on(b).await else {
        return;
    };
    let a = srv.http;
    let token = signup(a, "hank").await;
    let r = api_as(
        a,
        &token,
        "POST",
        "/api/channels/hank/chat",
        Some(&json!({"text": "last words"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let key = api_as(a, &token, "GET", "/api/me", None).await.json()["channel"]["stream_key"]
        .as_str()
        .unwrap()
        .to_string();
    let r = api_as(a, &token, "DELETE", "/api/me", None).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_error(&api_as(a, &token, "GET", "/api/me", None).await, 401);
    let r = api_post(
        a,
        "/api/auth/login",
        json!({"username": "hank", "password": password_of("hank")}),
    )
    .await;
    assert_error(&r, 403);
    // The name stays taken; the channel and its chat stay readable.
    let r = api_post(
        a,
        "/api/auth/register",
        json!({"username": "hank", "password": "another pw1"}),
    )
    .await;
    assert_error(&r, 409);
    assert_eq!(
        api(a, "GET", "/api/channels/hank", &[], None).await.status,
        200
    );
    let hist = api(a, "GET", "/api/channels/hank/chat", &[], None)
        .await
        .json();
    assert_eq!(hist["items"][0]["text"], "last words");
    // The old stream key no longer publishes.
    use onair::hub::Channels;
    assert_eq!(srv.db.channel_for_key(&key).await.unwrap(), None);
    srv.stop().await;
}
