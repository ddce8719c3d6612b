//! `--public-ip` (NAT 1:1): answers announce that address, on the one
//! WebRTC port every peer shares.

mod common;

use common::{http, TestServer};

/// The answer's component-1 candidates of one transport, as (address, port).
fn candidates_of(answer: &str, transport: &str) -> Vec<(String, u16)> {
    answer
        .lines()
        .filter_map(|l| l.trim().strip_prefix("a=candidate:"))
        .map(|c| c.split_whitespace().collect::<Vec<_>>())
        // rtc repeats each candidate for component 2 (RTCP); with rtcp-mux
        // only component 1 is used.
        .filter(|f| f[1] == "1" && f[2].eq_ignore_ascii_case(transport))
        .map(|f| (f[4].to_string(), f[5].parse().unwrap()))
        .collect()
}

fn candidates(answer: &str) -> Vec<(String, u16)> {
    candidates_of(answer, "udp")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_ip_is_the_address_announced() {
    let srv = TestServer::start_with(|c| c.public_ips = vec!["203.0.113.7".parse().unwrap()]).await;
    let offer = include_str!("data/chrome_offer.sdp");
    let mut ports = Vec::new();
    for _ in 0..2 {
        let r = http(
            srv.http,
            "POST",
            "/whep/demo",
            &[("Content-Type", "application/sdp")],
            offer.as_bytes(),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let c = candidates(&r.text());
        assert_eq!(c.len(), 1, "only the public address: {c:?}");
        assert_eq!(c[0].0, "203.0.113.7");
        // ICE-TCP, for networks without UDP: the same address and port.
        assert_eq!(candidates_of(&r.text(), "tcp"), c, "{}", r.text());
        assert!(r.text().contains("tcptype passive"), "{}", r.text());
        ports.push(c[0].1);
    }
    assert_eq!(ports[0], ports[1], "every peer shares one UDP port");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_public_ip_every_host_address_is_announced() {
    let srv = TestServer::start().await;
    let offer = include_str!("data/chrome_offer.sdp");
    let r = http(
        srv.http,
        "POST",
        "/whep/demo",
        &[("Content-Type", "application/sdp")],
        offer.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let c = candidates(&r.text());
    assert!(c.iter().any(|(ip, _)| ip == "127.0.0.1"), "{c:?}");
    assert!(
        c.iter().any(|(ip, _)| ip != "127.0.0.1"),
        "a non-loopback host address too: {c:?}"
    );
    assert!(c.windows(2).all(|w| w[0].1 == w[1].1), "one port: {c:?}");
    srv.stop().await;
}
