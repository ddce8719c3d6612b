//! Limits a stranger could dodge by spreading requests over the servers of
//! a site (`--redis-url`) hold across them: wrong passwords for one account
//! from one address, half on each of two servers, are throttled on both as
//! if all had gone to one.

mod common;

use common::redis::two_servers;
use common::{api, password_of, signup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_spread_over_two_servers_are_throttled_on_both() {
    let Some((_redis, a, b)) = two_servers().await else {
        return;
    };
    signup(a.http, "alice").await;
    let login = |addr, password: &str| {
        let body = serde_json::json!({"username": "alice", "password": password});
        async move { api(addr, "POST", "/api/auth/login", &[], Some(&body)).await }
    };
    // Five free tries for one name from one address (FREE_USER_FAILURES),
    // then a wait: the sixth wrong one starts it, wherever it went.
    for i in 0..onair::auth::throttle::FREE_USER_FAILURES + 1 {
        let srv = if i % 2 == 0 { a.http } else { b.http };
        let r = login(srv, "wrong").await;
        assert_eq!(r.status, 401, "try {i}: {}", r.text());
    }
    for srv in [a.http, b.http] {
        let r = login(srv, &password_of("alice")).await;
        assert_eq!(r.status, 429, "{srv}: {}", r.text());
        assert!(r.header("retry-after").is_some());
    }
    // The wait over (one second), the right password works on either.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let r = login(b.http, &password_of("alice")).await;
    assert_eq!(r.status, 200, "{}", r.text());
}
