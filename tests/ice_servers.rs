//! ICE servers reach clients in `GET /api/ice-servers` and as `Link`
//! headers on WHEP/WHIP answers; TURN credentials follow the coturn REST
//! scheme, checked here against openssl's HMAC-SHA1.

mod common;

use common::{http, TestServer};

fn openssl_hmac_sha1_b64(secret: &str, msg: &str) -> String {
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            &format!("printf %s '{msg}' | openssl dgst -sha1 -hmac '{secret}' -binary | base64"),
        ])
        .output()
        .expect("openssl");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_servers_with_time_limited_turn_credentials() {
    let srv = TestServer::start_with(|c| {
        c.ice_servers = vec![
            "stun:stun.example.net:3478".into(),
            "turn:turn.example.net:3478?transport=udp".into(),
        ];
        c.turn_secret = Some("s3cret".into());
    })
    .await;
    let v = http(srv.http, "GET", "/api/ice-servers", &[], b"")
        .await
        .json();
    let list = v["ice_servers"].as_array().expect("a list");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["urls"][0], "stun:stun.example.net:3478");
    assert!(
        list[0].get("username").is_none(),
        "STUN needs no credentials"
    );
    let user = list[1]["username"].as_str().unwrap();
    let (expiry, _) = user.split_once(':').expect("EXPIRY:USER");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!(
        expiry > now + 3600 && expiry <= now + 24 * 3600 + 5,
        "expiry {expiry} vs now {now}"
    );
    assert_eq!(
        list[1]["credential"].as_str().unwrap(),
        openssl_hmac_sha1_b64("s3cret", user)
    );

    let offer = include_str!("data/chrome_offer.sdp");
    let r = http(
        srv.http,
        "POST",
        "/whep/demo",
        &[("Content-Type", "application/sdp")],
        offer.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 201);
    let links: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("link"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(links.len(), 2, "{links:?}");
    assert!(links.iter().any(|l| l.starts_with(
        "<turn:turn.example.net:3478?transport=udp>; rel=\"ice-server\"; username=\""
    )));
    assert!(links.contains(&"<stun:stun.example.net:3478>; rel=\"ice-server\""));
    srv.stop().await;
}
