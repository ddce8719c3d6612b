//! Helpers for account and chat tests that need clients at several
//! addresses. All test traffic is on loopback, so the server trusts
//! loopback as a reverse proxy and each client names its address in
//! `X-Forwarded-For`.

use super::{api, HttpResponse, TestServer};
use onair::config::Config;
use std::net::SocketAddr;

/// Config change: loopback is a trusted proxy (`--trusted-proxies
/// 127.0.0.0/8`).
pub fn behind_proxy(c: &mut Config) {
    c.trusted_proxies = onair::net::TrustedProxies::new(vec!["127.0.0.0/8".parse().expect("CIDR")]);
}

pub fn xff(ip: &str) -> (&'static str, &str) {
    ("X-Forwarded-For", ip)
}

/// A JSON request from client address `ip` (behind [`behind_proxy`]).
pub async fn api_from(
    addr: SocketAddr,
    ip: &str,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: Option<&serde_json::Value>,
) -> HttpResponse {
    let mut h = vec![xff(ip)];
    h.extend_from_slice(extra);
    api(addr, method, path, &h, body).await
}

pub async fn login_from(addr: SocketAddr, ip: &str, user: &str, password: &str) -> HttpResponse {
    let body = serde_json::json!({"username": user, "password": password});
    api_from(addr, ip, "POST", "/api/auth/login", &[], Some(&body)).await
}

/// Registers `user` from `ip` and signs in from there; the Bearer token.
pub async fn signup_from(addr: SocketAddr, ip: &str, user: &str) -> String {
    let pw = super::password_of(user);
    let body = serde_json::json!({"username": user, "password": pw});
    let r = api_from(addr, ip, "POST", "/api/auth/register", &[], Some(&body)).await;
    assert_eq!(r.status, 201, "register {user}: {}", r.text());
    let r = login_from(addr, ip, user, &pw).await;
    assert_eq!(r.status, 200, "login {user}: {}", r.text());
    r.json()["token"].as_str().expect("token").to_string()
}

/// Creates `name` with `role` straight in the database (as the admin CLI
/// does) and signs in; the Bearer token.
pub async fn user_with_role(srv: &TestServer, name: &str, role: onair::db::Role) -> String {
    let hash = onair::auth::hash_password(&super::password_of(name)).expect("hash");
    srv.db
        .create_user(name, &hash, None, role, false)
        .await
        .expect("create user");
    super::login(srv.http, name, &super::password_of(name)).await
}

/// This process's resident memory (the in-process server's included).
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS");
    kib * 1024
}
