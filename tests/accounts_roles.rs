//! Accounts, continued: the admin CLI and roles, and SQL metacharacters
//! in every field, on SQLite and Postgres.

#[macro_use]
mod common;

use common::{api, assert_error, bearer, login, signup, Backend, TestServer};
use serde_json::json;

both!(admin_cli_and_roles, sql_metacharacters_are_data,);

async fn admin_cli_and_roles(b: Backend) {
    let Some((srv, url)) = TestServer::on_with_url(b).await else {
        return;
    };
    let a = srv.http;
    // `onair user create` bootstraps an admin and prints their stream key.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_onair"))
        .args([
            "user",
            "create",
            "boss",
            "--role",
            "admin",
            "--password-stdin",
            "--database-url",
            &url,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"boss password 1\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap();
    assert!(key.trim().len() >= 22, "{key:?}");
    // A reserved name is refused by the CLI too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_onair"))
        .args([
            "user",
            "create",
            "admin",
            "--role",
            "admin",
            "--password-stdin",
            "--database-url",
            &url,
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());

    let boss = login(a, "boss", "boss password 1").await;
    let me = api(
        a,
        "GET",
        "/api/me",
        &[("Authorization", &bearer(&boss))],
        None,
    )
    .await
    .json();
    assert_eq!(me["user"]["role"], "admin");
    let ivy = signup(a, "ivy").await;
    signup(a, "jack").await;
    // Only an admin changes roles.
    let r = api(
        a,
        "PATCH",
        "/api/users/jack",
        &[("Authorization", &bearer(&ivy))],
        Some(&json!({"role": "admin"})),
    )
    .await;
    assert_error(&r, 403);
    let r = api(
        a,
        "PATCH",
        "/api/users/jack",
        &[("Authorization", &bearer(&boss))],
        Some(&json!({"role": "superuser"})),
    )
    .await;
    assert_error(&r, 400);
    let r = api(
        a,
        "PATCH",
        "/api/users/jack",
        &[("Authorization", &bearer(&boss))],
        Some(&json!({"role": "moderator"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["role"], "moderator");
    let r = api(
        a,
        "PATCH",
        "/api/users/nobody",
        &[("Authorization", &bearer(&boss))],
        Some(&json!({"role": "moderator"})),
    )
    .await;
    assert_error(&r, 404);
    // An admin soft-deletes a user; a user cannot delete another.
    let r = api(
        a,
        "DELETE",
        "/api/users/boss",
        &[("Authorization", &bearer(&ivy))],
        None,
    )
    .await;
    assert_error(&r, 403);
    let r = api(
        a,
        "DELETE",
        "/api/users/ivy",
        &[("Authorization", &bearer(&boss))],
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    assert_error(
        &api(
            a,
            "GET",
            "/api/me",
            &[("Authorization", &bearer(&ivy))],
            None,
        )
        .await,
        401,
    );
    srv.stop().await;
}

const NASTY: &[&str] = &[
    "'; DROP TABLE users; --",
    "\" OR 1=1 --",
    "Robert'); DELETE FROM channels WHERE ('a'='a",
    "%_\\'\\\"",
    "$1 $2 ?1 :name",
    "\u{0}nul",
];

async fn sql_metacharacters_are_data(b: Backend) {
    let Some(srv) = TestServer::on(b).await else {
        return;
    };
    let a = srv.http;
    // Usernames are a closed charset: metacharacters are refused, not run.
    for n in NASTY {
        let r = api(
            a,
            "POST",
            "/api/auth/register",
            &[],
            Some(&json!({"username": n, "password": "long enough pw"})),
        )
        .await;
        assert_error(&r, 400);
        let r = api(
            a,
            "POST",
            "/api/auth/login",
            &[],
            Some(&json!({"username": n, "password": n})),
        )
        .await;
        assert!(r.status == 401 || r.status == 400, "{}", r.text());
        let r = api(
            a,
            "GET",
            &format!("/api/channels/{}", urlencode(n)),
            &[],
            None,
        )
        .await;
        assert_error(&r, 404);
    }
    // Passwords and free text keep every byte.
    let pw = "'; DROP TABLE users; -- \" OR 1=1";
    let r = api(
        a,
        "POST",
        "/api/auth/register",
        &[],
        Some(&json!({"username": "kate", "password": pw, "email": "o'hara+x@example.com"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let token = login(a, "kate", pw).await;
    let auth = bearer(&token);
    for n in NASTY.iter().filter(|n| !n.contains('\u{0}')) {
        let body = json!({"title": n, "description": n, "tags": [n]});
        let r = api(
            a,
            "PATCH",
            "/api/channels/kate",
            &[("Authorization", &auth)],
            Some(&body),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let v = api(a, "GET", "/api/channels/kate", &[], None).await.json();
        assert_eq!(v["title"], *n);
        assert_eq!(v["description"], *n);
        assert_eq!(v["tags"][0], *n);
        let r = api(
            a,
            "POST",
            "/api/channels/kate/chat",
            &[("Authorization", &auth)],
            Some(&json!({"text": n})),
        )
        .await;
        assert!(r.status == 201 || r.status == 429, "{}", r.text());
        let r = api(
            a,
            "GET",
            &format!("/api/channels?category={}", urlencode(n)),
            &[],
            None,
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["items"], json!([]));
        let r = api(
            a,
            "GET",
            &format!("/api/channels?cursor={}", urlencode(n)),
            &[],
            None,
        )
        .await;
        assert_error(&r, 400);
    }
    // A NUL in text is refused cleanly (Postgres cannot store it).
    let r = api(
        a,
        "PATCH",
        "/api/channels/kate",
        &[("Authorization", &auth)],
        Some(&json!({"title": "a\u{0}b"})),
    )
    .await;
    assert_error(&r, 400);
    let me = api(a, "GET", "/api/me", &[("Authorization", &auth)], None)
        .await
        .json();
    assert_eq!(me["user"]["email"], "o'hara+x@example.com");
    // Every table is still there.
    assert_eq!(
        api(a, "GET", "/api/channels/demo", &[], None).await.status,
        200
    );
    assert_eq!(
        srv.db
            .credentials("kate")
            .await
            .unwrap()
            .unwrap()
            .user
            .username,
        "kate"
    );
    srv.stop().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
