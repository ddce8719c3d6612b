//! Limits a stranger could dodge by spreading requests over the servers of
//! a site (`--redis-url`) hold across them: wrong passwords for one account
//! from one address, half on each of two servers, are throttled on both as
//! if all had gone to one. Guessing the node token that lets a server pull
//! from another is rate-limited like any offer.

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

/// An offer claiming to be a server of the site with the wrong node token
/// is 403 and counts against the address's offer rate, so the token
/// cannot be guessed at speed; the right token is neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_node_token_is_forbidden_and_rate_limited() {
    use common::http;
    use onair::edge::NODE_TOKEN_HEADER;
    let Some((redis, a, _b)) = two_servers().await else {
        return;
    };
    let (_pc, offer) = common::scenario_clients::offer(false);
    let post = |token: String| {
        let offer = offer.clone();
        async move {
            http(
                a.http,
                "POST",
                "/whep/demo",
                &[
                    ("Content-Type", "application/sdp"),
                    (NODE_TOKEN_HEADER, token.as_str()),
                ],
                offer.as_bytes(),
            )
            .await
        }
    };
    let mut forbidden = 0;
    let refused = loop {
        let r = post(format!("guess {forbidden}")).await;
        if r.status != 403 {
            break r;
        }
        forbidden += 1;
        assert!(forbidden <= 100, "100 wrong tokens, none refused");
    };
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert!(
        (10..=onair::http::auth::SIGNALING_BURST as usize + 5).contains(&forbidden),
        "{forbidden} guesses before 429"
    );
    // The site's own token, from Redis as every server reads it.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let token: String = redis::cmd("GET")
        .arg("onair:node-token")
        .query_async(&mut conn)
        .await
        .unwrap();
    // Served as a relay, though the address is over its offer rate.
    let r = post(token).await;
    assert_eq!(r.status, 201, "the right token: {}", r.text());
    let series = |s: &'static str| common::metric_or_zero(a.http, s);
    assert_eq!(
        series("onair_webrtc_relay_sessions{channel=\"demo\"}").await,
        1.0
    );
    assert_eq!(
        series("onair_viewers{channel=\"demo\",protocol=\"webrtc\"}").await,
        0.0,
        "a relay is not a viewer"
    );
}

/// Offers and registrations from one address spread over two servers get
/// no more than one server allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_and_registrations_spread_over_two_servers_share_one_limit() {
    let Some((_redis, a, b)) = two_servers().await else {
        return;
    };
    // Offers: a burst of 20 per address (then 5 a second). Bodies that are
    // not offers are refused after the limit is checked, which is all
    // that is counted here.
    let mut limited = Vec::new();
    for i in 0..30 {
        let srv = if i % 2 == 0 { a.http } else { b.http };
        let r = common::http(
            srv,
            "POST",
            "/whep/demo",
            &[("Content-Type", "application/sdp")],
            b"not an offer",
        )
        .await;
        limited.push(r.status == 429);
    }
    let passed = limited.iter().filter(|l| !**l).count();
    assert!(
        (20..=22).contains(&passed),
        "{passed} of 30 offers passed the limit of 20 (a few may refill meanwhile)"
    );
    assert!(
        limited[28] && limited[29],
        "both servers refuse past the limit"
    );

    // Registrations: the hourly limit per address, counted across both.
    let per_hour = onair::auth::AccountLimits::default().register_per_hour;
    let mut statuses = Vec::new();
    for i in 0..per_hour + 2 {
        let srv = if i % 2 == 0 { a.http } else { b.http };
        let name = format!("user{i}");
        let body = serde_json::json!({"username": name, "password": common::password_of(&name)});
        statuses.push(
            common::api(srv, "POST", "/api/auth/register", &[], Some(&body))
                .await
                .status,
        );
    }
    let made = statuses.iter().filter(|s| **s == 201).count();
    assert_eq!(made, per_hour as usize, "{statuses:?}");
    assert_eq!(&statuses[statuses.len() - 2..], &[429, 429], "{statuses:?}");
}
