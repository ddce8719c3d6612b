//! Hostile TURN clients against the built-in relay (`onair serve --turn`),
//! with the credentials any page gets from `GET /api/ice-servers`. Each
//! attack runs while a victim channel is watched over WebRTC and passes
//! only if the victim kept playing (tests/common/victim.rs):
//!
//! - asking to relay to loopback, private, CGNAT, link-local, ULA and this
//!   host's addresses: 403 to every CreatePermission and ChannelBind, and
//!   nothing reaches the listeners there, however the data is sent;
//! - pushing against every cap (permissions and channels per allocation,
//!   allocations per user and per host): refused at the cap, and a
//!   well-behaved client still allocates and relays;
//! - flooding through its allocation: what passes the byte rate arrives,
//!   the excess is dropped and counted.
//!
//! The same client relays to a peer `--turn-allow-peer` covers, so the
//! refusals are not a relay that relays nothing.

mod common;
#[path = "../turn/tests/common/mod.rs"]
mod turn_client;

use common::ice::{turn_entry, TurnEntry};
use common::victim::Victim;
use common::TestServer;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use turn_client::raw::{Listener, RawClient, Refused};

const SECRET: &str = "hostile-turn-secret";
/// The peer the tests' servers let the relay reach (`--turn-allow-peer`),
/// so each attack can show the attacker's client does relay.
const ALLOWED: &str = "127.0.0.2";
const FORBIDDEN: Refused = Refused {
    code: 403,
    authenticated: true,
};
/// How long each victim is measured; the attacks fill it.
const VICTIM_SECS: u64 = 8;

/// One attack at a time: each measures its own victim on a 2-core machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn server(allow: &str) -> TestServer {
    let allow = allow.parse().unwrap();
    TestServer::start_with(|c| {
        c.turn = Some("127.0.0.1:0".parse().unwrap());
        c.turn_secret = Some(SECRET.into());
        c.turn_allow_peers = vec![allow];
    })
    .await
}

async fn attacker(entry: &TurnEntry, local: &str) -> RawClient {
    RawClient::new(
        local.parse().unwrap(),
        entry.server.parse().unwrap(),
        &entry.username,
        &entry.credential,
    )
    .await
    .expect("bind the client socket")
}

/// Credentials the server would hand to `user`.
fn minted(server: &str, user: &str) -> TurnEntry {
    let username = format!("{}:{user}", turn_client::now_unix() + 600);
    TurnEntry {
        server: server.into(),
        credential: onair_turn::rest_password(SECRET, &username),
        username,
    }
}

/// This host's first non-loopback IPv4 address (where the SFU announces a
/// candidate too).
fn own_ipv4() -> IpAddr {
    onair_turn::peers::own_addresses(&[])
        .into_iter()
        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
        .expect("a non-loopback IPv4 address")
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The client relays to the allowed peer: the refusals are the policy's.
async fn relays_to_allowed(c: &mut RawClient) {
    let peer = Listener::bind(&format!("{ALLOWED}:0")).await;
    c.create_permission(&[peer.addr])
        .await
        .expect("the allowed peer");
    c.send_indication(peer.addr, b"allowed").await.unwrap();
    assert_eq!(peer.drain(Duration::from_millis(500)).await, (1, 7));
}

#[tokio::test(flavor = "multi_thread")]
async fn turn_client_asking_for_loopback_private_and_own_peers() {
    let _one = SERIAL.lock().await;
    let srv = server(&format!("{ALLOWED}/32")).await;
    let entry = turn_entry(&srv).await;
    let victim = Victim::start(&srv, VICTIM_SECS).await;
    let until = Instant::now() + Duration::from_secs(VICTIM_SECS - 1);

    let mut c = attacker(&entry, "127.0.0.1:0").await;
    c.allocate().await.expect("the page's credentials allocate");
    let loopback = Listener::bind("127.0.0.1:0").await;
    let v6 = Listener::bind("[::1]:0").await;
    let own_ip = own_ipv4();
    let webrtc_port = srv.udp.port();
    let own = loop {
        let l = Listener::bind(&format!("{own_ip}:0")).await;
        if l.addr.port() != webrtc_port {
            break l;
        }
    };
    let peers = [
        loopback.addr,
        sa("10.0.0.1:9"),
        sa("10.255.0.7:22"),
        sa("192.168.1.1:9"),
        sa("100.64.0.1:9"),
        v6.addr,
        sa("[fd00::1]:9"),
        sa("169.254.169.254:80"),
        sa("169.254.0.1:9"),
        own.addr,
        SocketAddr::new("::ffff:127.0.0.1".parse().unwrap(), loopback.addr.port()),
    ];
    let mut rounds = 0;
    let mut refused = 0;
    while Instant::now() < until {
        for (i, peer) in peers.iter().enumerate() {
            let number = 0x4000 + i as u16;
            assert_eq!(
                c.create_permission(&[*peer]).await,
                Err(FORBIDDEN),
                "{peer}"
            );
            assert_eq!(
                c.channel_bind(number, *peer).await,
                Err(FORBIDDEN),
                "{peer}"
            );
            refused += 2;
            for _ in 0..20 {
                c.send_indication(*peer, b"send indication").await.unwrap();
                c.channel_data(number, b"channel data").await.unwrap();
            }
        }
        rounds += 1;
    }
    // The exception is the SFU's own candidates, exactly.
    c.create_permission(&[SocketAddr::new(own_ip, webrtc_port)])
        .await
        .expect("the SFU's candidate");
    c.create_permission(&[srv.udp])
        .await
        .expect("the SFU's loopback candidate");
    relays_to_allowed(&mut c).await;

    for l in [&loopback, &v6, &own] {
        assert_eq!(
            l.drain(Duration::from_secs(1)).await,
            (0, 0),
            "{} got data",
            l.addr
        );
    }
    // Counted (the counter is the process's: other tests' refusals, and
    // answers to retransmissions, may add to it).
    let hits = common::metric(
        srv.http,
        "onair_limit_hits_total{limit=\"turn_forbidden_peer\"}",
    )
    .await;
    assert!(hits >= refused as f64, "{hits} counted, {refused} refused");
    eprintln!("{rounds} rounds, {refused} requests refused with 403");
    victim
        .finish()
        .await
        .assert_kept_playing("TURN client asking for loopback, private and own peers");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_client_relays_to_a_peer_turn_allow_peer_covers() {
    let _one = SERIAL.lock().await;
    let srv = server("127.0.0.1/32").await;
    let entry = turn_entry(&srv).await;
    let mut c = attacker(&entry, "127.0.0.1:0").await;
    let relayed = c.allocate().await.unwrap();
    let loopback = Listener::bind("127.0.0.1:0").await;
    c.create_permission(&[loopback.addr])
        .await
        .expect("allowed");
    c.channel_bind(0x4000, loopback.addr)
        .await
        .expect("allowed");
    c.send_indication(loopback.addr, b"send indication")
        .await
        .unwrap();
    c.channel_data(0x4000, b"channel data").await.unwrap();
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    for _ in 0..2 {
        let (n, from) =
            tokio::time::timeout(Duration::from_secs(5), loopback.socket.recv_from(&mut buf))
                .await
                .expect("relayed in time")
                .unwrap();
        assert_eq!(from, relayed);
        got.push(buf[..n].to_vec());
    }
    got.sort();
    assert_eq!(got, [b"channel data".to_vec(), b"send indication".to_vec()]);
    // Only what the range covers.
    assert_eq!(
        c.create_permission(&[sa("10.0.0.1:9")]).await,
        Err(FORBIDDEN)
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn turn_client_pushing_against_every_cap() {
    let _one = SERIAL.lock().await;
    let srv = server(&format!("{ALLOWED}/32")).await;
    let entry = turn_entry(&srv).await;
    let limits = onair_turn::Limits::default();
    let victim = Victim::start(&srv, VICTIM_SECS).await;

    // Permissions: one per address, public documentation addresses
    // (nothing is sent to them).
    let mut c = attacker(&entry, "127.0.0.1:0").await;
    c.allocate().await.unwrap();
    let public = |i: usize| SocketAddr::new(IpAddr::from([198, 51, 100, i as u8]), 9);
    for i in 1..=limits.max_permissions_per_allocation {
        c.create_permission(&[public(i)])
            .await
            .unwrap_or_else(|e| panic!("permission {i}: {e:?}"));
    }
    let over = limits.max_permissions_per_allocation + 1;
    assert_eq!(
        c.create_permission(&[public(over)])
            .await
            .map_err(|e| e.code),
        Err(508)
    );
    // Channels: one per address:port.
    for i in 0..limits.max_channels_per_allocation {
        let peer = SocketAddr::new(public(1).ip(), 1000 + i as u16);
        c.channel_bind(0x4000 + i as u16, peer)
            .await
            .unwrap_or_else(|e| panic!("channel {i}: {e:?}"));
    }
    let peer = SocketAddr::new(public(1).ip(), 2000);
    assert_eq!(
        c.channel_bind(0x7000, peer).await.map_err(|e| e.code),
        Err(508)
    );

    // Allocations per user: the page's credentials from many hosts.
    let mut held = vec![c];
    let mut refused_user = None;
    for i in 0..limits.max_allocations_per_user + 1 {
        let mut c = attacker(&entry, &format!("127.0.1.{}:0", i + 1)).await;
        match c.allocate().await {
            Ok(_) => held.push(c),
            Err(e) => {
                refused_user = Some((held.len(), e));
                break;
            }
        }
    }
    assert_eq!(
        refused_user,
        Some((
            limits.max_allocations_per_user,
            Refused {
                code: 486,
                authenticated: true
            }
        )),
        "refused at the user's cap"
    );
    // Allocations per host: other users' credentials from one address.
    let mut refused_host = None;
    for i in 0..limits.max_allocations_per_ip + 1 {
        let mut c = attacker(&minted(&entry.server, &format!("u{i}")), "127.0.2.1:0").await;
        match c.allocate().await {
            Ok(_) => held.push(c),
            Err(e) => {
                refused_host = Some((i, e.code));
                break;
            }
        }
    }
    assert_eq!(
        refused_host,
        Some((limits.max_allocations_per_ip, 486)),
        "refused at the host's cap"
    );

    // A well-behaved client still allocates and relays.
    let mut good = attacker(&minted(&entry.server, "viewer@127.0.3.1"), "127.0.3.1:0").await;
    good.allocate().await.expect("a good client allocates");
    relays_to_allowed(&mut good).await;
    for name in [
        "max_permissions_per_allocation",
        "max_channels_per_allocation",
        "max_allocations_per_user",
        "max_allocations_per_host",
    ] {
        let hits = common::metric(
            srv.http,
            &format!("onair_limit_hits_total{{limit=\"{name}\"}}"),
        )
        .await;
        assert!(hits >= 1.0, "{name} counted");
    }
    for mut c in held {
        let _ = c.release().await;
    }
    victim
        .finish()
        .await
        .assert_kept_playing("TURN client pushing against every cap");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn turn_client_flooding_through_its_allocation() {
    let _one = SERIAL.lock().await;
    let srv = server(&format!("{ALLOWED}/32")).await;
    let entry = turn_entry(&srv).await;
    let rate = f64::from(onair_turn::Limits::default().relay_bytes_per_sec);
    let victim = Victim::start(&srv, VICTIM_SECS).await;

    let mut c = attacker(&entry, "127.0.0.1:0").await;
    c.allocate().await.unwrap();
    let target = Listener::bind(&format!("{ALLOWED}:0")).await;
    c.channel_bind(0x4000, target.addr).await.unwrap();
    let received = tokio::spawn(async move {
        let got = target.drain(Duration::from_secs(VICTIM_SECS - 1)).await;
        (target, got)
    });
    // Twice the rate for 4 s, paced in 10 ms slices.
    let payload = [0xA5u8; 1200];
    let per_slice = (2.0 * rate / 100.0 / payload.len() as f64) as usize;
    let start = Instant::now();
    let mut sent = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    while start.elapsed() < Duration::from_secs(4) {
        tick.tick().await;
        for _ in 0..per_slice {
            c.channel_data(0x4000, &payload).await.unwrap();
            sent += payload.len();
        }
    }
    let flood = start.elapsed().as_secs_f64();
    let most = rate * (1.5 + flood);
    let (target, (_, bytes)) = received.await.unwrap();
    let hits = common::metric(
        srv.http,
        "onair_limit_hits_total{limit=\"max_relay_bytes_per_sec\"}",
    )
    .await;
    eprintln!(
        "sent {:.1} MB in {flood:.1} s, {:.1} MB arrived (at most {:.1} MB), {hits} episodes over the rate",
        sent as f64 / 1e6,
        bytes as f64 / 1e6,
        most / 1e6
    );
    assert!(
        sent as f64 > most,
        "the test sent only {sent} bytes: no flood"
    );
    assert!(
        bytes as f64 <= most,
        "{bytes} bytes arrived, at most {most}"
    );
    assert!(
        bytes as f64 >= rate * flood / 2.0,
        "the rate itself passes: {bytes}"
    );
    assert!(hits >= 1.0, "the drops are counted");

    // Another client has its own allowance.
    let mut good = attacker(&minted(&entry.server, "viewer@127.0.3.1"), "127.0.3.1:0").await;
    good.allocate().await.unwrap();
    good.channel_bind(0x4000, target.addr).await.unwrap();
    for _ in 0..10 {
        good.channel_data(0x4000, &payload).await.unwrap();
    }
    assert_eq!(target.drain(Duration::from_millis(500)).await, (10, 12000));
    victim
        .finish()
        .await
        .assert_kept_playing("TURN client flooding through its allocation");
    srv.stop().await;
}
