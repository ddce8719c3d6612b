//! The relay's nonce store is bounded whatever clients send: a flood of
//! requests that each make the `turn` crate issue (and store) a nonce, both
//! unauthenticated Allocates (401) and ones with a made-up nonce (438),
//! leaves at most `max_nonces` stored; afterwards a client with valid REST
//! API credentials still allocates, and one whose nonce was forgotten in the
//! flood gets a new one and carries on relaying.

mod common;

use common::client;
use onair_turn::webrtc_util::Conn;
use onair_turn::{Limits, TurnConfig, TurnRelay};
use std::collections::HashSet;
use std::time::Duration;
use tokio::net::UdpSocket;

const SECRET: &str = "nonce-test-secret";
const MAX_NONCES: usize = 500;

fn attr(m: &mut Vec<u8>, typ: u16, value: &[u8]) {
    m.extend_from_slice(&typ.to_be_bytes());
    m.extend_from_slice(&(value.len() as u16).to_be_bytes());
    m.extend_from_slice(value);
    m.resize(m.len().next_multiple_of(4), 0);
}

/// An Allocate request, with MESSAGE-INTEGRITY (all zeros: the nonce is
/// checked first) and this NONCE if `nonce` is given.
fn allocate_request(id: u32, nonce: Option<&[u8]>) -> Vec<u8> {
    let mut m = vec![0x00, 0x03, 0, 0, 0x21, 0x12, 0xA4, 0x42];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x5A; 8]);
    attr(&mut m, 0x0019, &[17, 0, 0, 0]); // REQUESTED-TRANSPORT: UDP
    if let Some(nonce) = nonce {
        attr(&mut m, 0x0006, b"0:flood"); // USERNAME
        attr(&mut m, 0x0014, b"onair"); // REALM
        attr(&mut m, 0x0015, nonce);
        attr(&mut m, 0x0008, &[0; 20]); // MESSAGE-INTEGRITY
    }
    let len = (m.len() - 20) as u16;
    m[2..4].copy_from_slice(&len.to_be_bytes());
    m
}

/// The (error code, NONCE) of an error response.
fn challenge(m: &[u8]) -> Option<(u16, Vec<u8>)> {
    if m.len() < 20 || m[0..2] != [0x01, 0x13] {
        return None;
    }
    let (mut code, mut nonce) = (None, None);
    let mut at = 20;
    while at + 4 <= m.len() {
        let typ = u16::from_be_bytes([m[at], m[at + 1]]);
        let len = u16::from_be_bytes([m[at + 2], m[at + 3]]) as usize;
        let value = m.get(at + 4..at + 4 + len)?;
        match typ {
            0x0009 => code = Some(u16::from(value[2]) * 100 + u16::from(value[3])),
            0x0015 => nonce = Some(value.to_vec()),
            _ => {}
        }
        at += 4 + len.next_multiple_of(4);
    }
    Some((code?, nonce?))
}

/// Sends `data` through `relay` to `peer` (which makes the client ask for a
/// permission, with its nonce) and checks it arrives from the relayed
/// address.
async fn relays(relay: &impl Conn, peer: &UdpSocket, data: &[u8]) {
    let peer_addr = peer.local_addr().unwrap();
    tokio::time::timeout(Duration::from_secs(10), relay.send_to(data, peer_addr))
        .await
        .expect("permission in time")
        .expect("permission granted");
    let mut buf = [0u8; 100];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), peer.recv_from(&mut buf))
        .await
        .expect("relayed data arrives")
        .unwrap();
    assert_eq!(&buf[..n], data);
    assert_eq!(from, relay.local_addr().unwrap(), "sent from the relay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_flood_leaves_the_nonce_store_bounded() {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let relay = TurnRelay::with_sockets(
        TurnConfig {
            relay_ports: (50300, 50399),
            limits: Limits {
                // The rate limit out of the way: the store's bound alone holds.
                challenges_per_sec: 1_000_000,
                max_nonces: MAX_NONCES,
                ..Limits::default()
            },
            // The peers here listen on loopback.
            allow_peers: vec!["127.0.0.1".parse().unwrap()],
            ..TurnConfig::new(
                "127.0.0.1:0".parse().unwrap(),
                "127.0.0.1".parse().unwrap(),
                SECRET.into(),
            )
        },
        socket,
        None,
    )
    .await
    .unwrap();
    let server = relay.local_addr();
    let user = common::viewer_user();
    let password = onair_turn::rest_password(SECRET, &user);

    // A client that allocated before the flood; its nonce will be forgotten.
    let early = client(server, &user, &password).await;
    let early_relay = tokio::time::timeout(Duration::from_secs(10), early.allocate())
        .await
        .expect("allocates in time")
        .expect("valid credentials allocate");
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    relays(&early_relay, &peer, b"before").await;
    assert!(relay.stored_nonces().await >= 1);

    let flood = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut issued = HashSet::new();
    let (mut unauthorized, mut stale, mut most) = (0, 0, 0);
    let mut buf = [0u8; 1500];
    let mut id = 0u32;
    for round in 0..40 {
        for _ in 0..250 {
            id += 1;
            // Half without credentials, half with a nonce never issued.
            let made_up = format!("made-up-{id}");
            let nonce = (id % 2 == 0).then_some(made_up.as_bytes());
            flood
                .send_to(&allocate_request(id, nonce), server)
                .await
                .unwrap();
        }
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(200), flood.recv(&mut buf)).await
        {
            if let Some((code, nonce)) = challenge(&buf[..n]) {
                match code {
                    401 => unauthorized += 1,
                    438 => stale += 1,
                    _ => panic!("error {code} to a flood request"),
                }
                issued.insert(nonce);
            }
        }
        let stored = relay.stored_nonces().await;
        most = most.max(stored);
        assert!(
            stored <= MAX_NONCES,
            "{stored} nonces stored after round {round} (cap {MAX_NONCES})"
        );
    }
    eprintln!(
        "{} nonces issued ({unauthorized} x 401, {stale} x 438), at most {most} stored",
        issued.len()
    );
    // The crate did issue a nonce per request: without the bound, the store
    // would hold them all.
    assert!(
        issued.len() >= 10 * MAX_NONCES,
        "only {} nonces issued",
        issued.len()
    );
    assert!(unauthorized > 0 && stale > 0, "both kinds answered");
    assert!(most > MAX_NONCES / 2, "the store filled up ({most})");

    // A new client still gets in.
    let late = client(server, &user, &password).await;
    let late_relay = tokio::time::timeout(Duration::from_secs(10), late.allocate())
        .await
        .expect("allocates in time")
        .expect("valid credentials allocate after the flood");
    relays(&late_relay, &peer, b"after").await;
    // The early one's nonce is gone (438), it takes the new one and relays.
    let peer2 = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    relays(&early_relay, &peer2, b"still").await;
    assert_eq!(relay.allocations(), 2);

    let _ = late_relay.close().await;
    let _ = early_relay.close().await;
    let _ = late.close().await;
    let _ = early.close().await;
    relay.close().await;
}
