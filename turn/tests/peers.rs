//! Peer restrictions and caps of the relay, against a real relay on
//! loopback with a TURN client that sends exactly what it is told
//! (common/raw.rs): peers on loopback, in private ranges and on this host
//! get 403 Forbidden and nothing reaches them, whatever the client sends;
//! an allowed peer is relayed both ways; each cap refuses at its number
//! while another client carries on.

mod common;

use common::raw::{Listener, RawClient, Refused, Relayed};
use onair_turn::{Limits, TurnConfig, TurnRelay};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

const SECRET: &str = "peers-test-secret";
const FORBIDDEN: Refused = Refused {
    code: 403,
    authenticated: true,
};
const FULL: Refused = Refused {
    code: 508,
    authenticated: true,
};
const QUOTA: Refused = Refused {
    code: 486,
    authenticated: true,
};

async fn relay(on: &str, limits: Limits, allow: &[&str]) -> TurnRelay {
    let socket = tokio::net::UdpSocket::bind(on).await.unwrap();
    let ip = socket.local_addr().unwrap().ip();
    TurnRelay::with_sockets(
        TurnConfig {
            limits,
            allow_peers: allow.iter().map(|c| c.parse().unwrap()).collect(),
            ..TurnConfig::new(socket.local_addr().unwrap(), ip, SECRET.into())
        },
        socket,
        None,
    )
    .await
    .unwrap()
}

/// A client of `relay` from `local` with REST API credentials for `user`.
async fn client(relay: &TurnRelay, local: &str, user: &str) -> RawClient {
    let username = format!("{}:{user}", common::now_unix() + 600);
    let password = onair_turn::rest_password(SECRET, &username);
    RawClient::new(
        local.parse().unwrap(),
        relay.local_addr(),
        &username,
        &password,
    )
    .await
    .expect("bind the client socket")
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// This host's first non-loopback IPv4 address, for a listener on it.
fn own_ipv4() -> Option<IpAddr> {
    onair_turn::peers::own_addresses(&[])
        .into_iter()
        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
}

/// Asks for each of `peers` every way a client can, and sends to each:
/// every request must get an authenticated 403.
async fn attack(c: &mut RawClient, peers: &[SocketAddr]) {
    for (i, peer) in peers.iter().enumerate() {
        let number = 0x4000 + i as u16;
        assert_eq!(
            c.create_permission(&[*peer]).await,
            Err(FORBIDDEN),
            "CreatePermission {peer}"
        );
        assert_eq!(
            c.channel_bind(number, *peer).await,
            Err(FORBIDDEN),
            "ChannelBind {peer}"
        );
        for _ in 0..3 {
            c.send_indication(*peer, b"send indication").await.unwrap();
            c.channel_data(number, b"channel data").await.unwrap();
        }
    }
}

#[tokio::test]
async fn loopback_private_and_own_peers_are_refused_over_ipv4() {
    let relay = relay("127.0.0.1:0", Limits::default(), &[]).await;
    let mut c = client(&relay, "127.0.0.1:0", "attacker").await;
    c.allocate().await.expect("valid credentials allocate");

    let loopback = Listener::bind("127.0.0.1:0").await;
    let own_ip = own_ipv4().expect("a non-loopback IPv4 address to listen on");
    let own = Listener::bind(&format!("{own_ip}:0")).await;
    let v6 = Listener::bind("[::1]:0").await;
    let peers = [
        loopback.addr,
        sa("127.0.0.53:53"),
        sa("10.0.0.1:9"),
        sa("172.16.0.1:9"),
        sa("192.168.1.1:9"),
        sa("100.64.0.1:9"),
        sa("169.254.169.254:80"),
        sa("224.0.0.251:5353"),
        sa("0.0.0.0:9"),
        own.addr,
        v6.addr,
        sa("[fd00::1]:9"),
        sa("[fe80::1]:9"),
        SocketAddr::new("::ffff:127.0.0.1".parse().unwrap(), loopback.addr.port()),
        sa("[64:ff9b::a00:1]:9"),
    ];
    attack(&mut c, &peers).await;
    // One refused peer refuses the whole request (RFC 8656 9.2).
    assert_eq!(
        c.create_permission(&[sa("198.51.100.1:9"), loopback.addr])
            .await,
        Err(FORBIDDEN)
    );
    for l in [&loopback, &own, &v6] {
        assert_eq!(
            l.drain(Duration::from_secs(1)).await,
            (0, 0),
            "{} got data",
            l.addr
        );
    }
    let s = relay.stats();
    assert_eq!(s.forbidden_requests, 2 * peers.len() as u64 + 1, "{s:?}");
    assert_eq!(s.to_peers, 0, "{s:?}");
    relay.close().await;
}

#[tokio::test]
async fn loopback_and_private_peers_are_refused_over_ipv6() {
    let relay = relay("[::1]:0", Limits::default(), &[]).await;
    let mut c = client(&relay, "[::1]:0", "attacker").await;
    c.allocate().await.expect("valid credentials allocate");
    let v6 = Listener::bind("[::1]:0").await;
    let v4 = Listener::bind("127.0.0.1:0").await;
    let peers = [
        v6.addr,
        sa("[fd00::1]:9"),
        sa("[fd12:3456::1]:9"),
        sa("[fe80::1]:9"),
        sa("[ff02::1]:9"),
        sa("[::]:9"),
        SocketAddr::new("::ffff:127.0.0.1".parse().unwrap(), v4.addr.port()),
        sa("[::ffff:10.0.0.1]:9"),
        sa("[64:ff9b::7f00:1]:9"),
        sa("[2002:c0a8:101::1]:9"),
        v4.addr,
    ];
    attack(&mut c, &peers).await;
    for l in [&v6, &v4] {
        assert_eq!(
            l.drain(Duration::from_secs(1)).await,
            (0, 0),
            "{} got data",
            l.addr
        );
    }
    assert_eq!(relay.stats().to_peers, 0);
    relay.close().await;
}

#[tokio::test]
async fn an_allowed_peer_is_relayed_both_ways_and_nothing_beside_it() {
    let relay = relay("127.0.0.1:0", Limits::default(), &["127.0.0.1/32"]).await;
    let mut c = client(&relay, "127.0.0.1:0", "viewer").await;
    let relayed = c.allocate().await.unwrap();
    let peer = Listener::bind("127.0.0.1:0").await;
    let beside = Listener::bind("127.0.0.2:0").await;
    let mut buf = [0u8; 100];

    c.create_permission(&[peer.addr])
        .await
        .expect("an allowed peer");
    c.send_indication(peer.addr, b"by indication")
        .await
        .unwrap();
    let (n, from) = peer.socket.recv_from(&mut buf).await.unwrap();
    assert_eq!((&buf[..n], from), (&b"by indication"[..], relayed));
    peer.socket
        .send_to(b"indicated back", relayed)
        .await
        .unwrap();
    assert_eq!(
        c.relayed(Duration::from_secs(5)).await,
        Some(Relayed::Indication(peer.addr, b"indicated back".to_vec()))
    );

    c.channel_bind(0x4001, peer.addr)
        .await
        .expect("an allowed peer");
    c.channel_data(0x4001, b"by channel").await.unwrap();
    let (n, _) = peer.socket.recv_from(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"by channel");
    peer.socket
        .send_to(b"channelled back", relayed)
        .await
        .unwrap();
    assert_eq!(
        c.relayed(Duration::from_secs(5)).await,
        Some(Relayed::Channel(0x4001, b"channelled back".to_vec()))
    );

    // The range is the operator's, no wider; and an unbound channel, or a
    // peer with no permission, gets nothing through.
    assert_eq!(c.create_permission(&[beside.addr]).await, Err(FORBIDDEN));
    c.send_indication(beside.addr, b"beside").await.unwrap();
    c.channel_data(0x4002, b"unbound").await.unwrap();
    assert_eq!(beside.drain(Duration::from_millis(500)).await, (0, 0));
    assert_eq!(peer.drain(Duration::from_millis(500)).await, (0, 0));
    // Channel numbers outside the range: 400.
    assert_eq!(
        c.channel_bind(0x3fff, peer.addr).await,
        Err(Refused {
            code: 400,
            authenticated: true
        })
    );
    let s = relay.stats();
    assert_eq!((s.to_peers, s.to_clients), (2, 2), "{s:?}");
    relay.close().await;
}

fn small_caps() -> Limits {
    Limits {
        max_allocations_per_ip: 3,
        max_allocations_per_user: 2,
        max_permissions_per_allocation: 4,
        max_channels_per_allocation: 2,
        ..Limits::default()
    }
}

#[tokio::test]
async fn allocations_stop_at_the_user_and_host_quotas() {
    let relay = relay("127.0.0.1:0", small_caps(), &[]).await;
    // One user's credentials from many hosts.
    let mut held = Vec::new();
    for host in ["127.0.0.11", "127.0.0.12"] {
        let mut c = client(&relay, &format!("{host}:0"), "shared").await;
        c.allocate()
            .await
            .unwrap_or_else(|e| panic!("{host}: {e:?}"));
        held.push(c);
    }
    let mut third = client(&relay, "127.0.0.13:0", "shared").await;
    assert_eq!(third.allocate().await, Err(QUOTA), "the user's third");
    let mut other = client(&relay, "127.0.0.13:0", "someone-else").await;
    other.allocate().await.expect("another user from that host");
    // Freeing one makes room for one.
    held[0].release().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    third.allocate().await.expect("room again");

    // One host with many users' credentials: refused before credentials
    // are even checked.
    for user in ["a", "b", "c"] {
        let mut c = client(&relay, "127.0.0.21:0", user).await;
        c.allocate()
            .await
            .unwrap_or_else(|e| panic!("{user}: {e:?}"));
        held.push(c);
    }
    let mut fourth = client(&relay, "127.0.0.21:0", "d").await;
    assert_eq!(fourth.allocate().await.map_err(|e| e.code), Err(486));
    let mut elsewhere = client(&relay, "127.0.0.22:0", "d").await;
    elsewhere
        .allocate()
        .await
        .expect("that user from another host");
    assert_eq!(relay.stats().user_cap_hits, 1);
    assert_eq!(relay.allocations(), 7);
    relay.close().await;
}

#[tokio::test]
async fn permissions_and_channels_stop_at_their_caps() {
    let relay = relay("127.0.0.1:0", small_caps(), &["127.0.0.0/8"]).await;
    let mut c = client(&relay, "127.0.0.1:0", "greedy").await;
    c.allocate().await.unwrap();
    let peer = |i: u8| SocketAddr::new(IpAddr::from([127, 0, 0, 30 + i]), 9);
    for i in 1..=4 {
        c.create_permission(&[peer(i)]).await.unwrap();
    }
    assert_eq!(c.create_permission(&[peer(5)]).await, Err(FULL));
    assert_eq!(c.create_permission(&[peer(1), peer(6)]).await, Err(FULL));
    c.create_permission(&[peer(1), peer(2)])
        .await
        .expect("refreshes are free");
    c.channel_bind(0x4000, peer(1)).await.unwrap();
    c.channel_bind(0x4001, peer(2)).await.unwrap();
    assert_eq!(c.channel_bind(0x4002, peer(3)).await, Err(FULL));
    c.channel_bind(0x4000, peer(1)).await.expect("a refresh");
    // A channel to a new address needs a permission as well: none left.
    let mut d = client(&relay, "127.0.0.2:0", "greedy-too").await;
    d.allocate().await.unwrap();
    for i in 1..=4 {
        d.create_permission(&[peer(i)]).await.unwrap();
    }
    assert_eq!(d.channel_bind(0x4000, peer(5)).await, Err(FULL));
    let s = relay.stats();
    assert_eq!((s.permission_cap_hits, s.channel_cap_hits), (3, 1), "{s:?}");

    // A well-behaved client is unaffected.
    let mut good = client(&relay, "127.0.0.3:0", "good").await;
    good.allocate().await.unwrap();
    let listener = Listener::bind("127.0.0.1:0").await;
    good.channel_bind(0x4000, listener.addr).await.unwrap();
    good.channel_data(0x4000, b"fine").await.unwrap();
    assert_eq!(listener.drain(Duration::from_millis(500)).await, (1, 4));
    relay.close().await;
}

#[tokio::test]
async fn the_byte_rate_drops_the_excess_each_way() {
    const RATE: u32 = 100_000;
    let relay = relay(
        "127.0.0.1:0",
        Limits {
            relay_bytes_per_sec: RATE,
            ..Limits::default()
        },
        &["127.0.0.1/32"],
    )
    .await;
    let mut c = client(&relay, "127.0.0.1:0", "flooder").await;
    let relayed = c.allocate().await.unwrap();
    let target = Listener::bind("127.0.0.1:0").await;
    c.channel_bind(0x4000, target.addr).await.unwrap();
    let payload = [0x55u8; 1000];
    // 1 MB as fast as it goes: ten times what a second allows.
    let start = Instant::now();
    let receive = tokio::spawn(async move {
        let got = target.drain(Duration::from_secs(2)).await;
        (target, got)
    });
    for _ in 0..1000 {
        c.channel_data(0x4000, &payload).await.unwrap();
    }
    // A second's burst, the rate while sending, and half a second for
    // what was still queued to the relay.
    let most = RATE as f64 * (1.5 + start.elapsed().as_secs_f64());
    let (target, (_, bytes)) = receive.await.unwrap();
    eprintln!(
        "client to peer: {bytes} bytes arrived in {:?} (at most {most})",
        start.elapsed()
    );
    assert!(
        bytes > 0 && bytes as f64 <= most,
        "{bytes} bytes, at most {most}"
    );
    let s = relay.stats();
    assert!(s.over_rate_packets > 0, "{s:?}");

    // And the other way: a peer flooding the relayed address.
    let start = Instant::now();
    for _ in 0..1000 {
        target.socket.send_to(&payload, relayed).await.unwrap();
    }
    let most = RATE as f64 * (1.5 + start.elapsed().as_secs_f64());
    let mut arrived = 0;
    while let Some(Relayed::Channel(_, data)) = c.relayed(Duration::from_secs(1)).await {
        arrived += data.len();
    }
    eprintln!(
        "peer to client: {arrived} bytes arrived in {:?} (at most {most})",
        start.elapsed()
    );
    assert!(
        arrived > 0 && arrived as f64 <= most,
        "{arrived} bytes, at most {most}"
    );

    // Another client has its own allowance.
    let mut good = client(&relay, "127.0.0.2:0", "good").await;
    good.allocate().await.unwrap();
    good.channel_bind(0x4000, target.addr).await.unwrap();
    for _ in 0..10 {
        good.channel_data(0x4000, &payload[..100]).await.unwrap();
    }
    assert_eq!(target.drain(Duration::from_millis(500)).await, (10, 1000));
    relay.close().await;
}

#[tokio::test]
async fn the_exception_for_a_service_is_its_address_and_port_alone() {
    let own_ip = own_ipv4().expect("a non-loopback IPv4 address to listen on");
    let service = Listener::bind(&format!("{own_ip}:0")).await;
    let other = Listener::bind(&format!("{own_ip}:0")).await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let relay = TurnRelay::with_sockets(
        TurnConfig {
            services: vec![service.addr],
            ..TurnConfig::new(
                socket.local_addr().unwrap(),
                "127.0.0.1".parse().unwrap(),
                SECRET.into(),
            )
        },
        socket,
        None,
    )
    .await
    .unwrap();
    let mut c = client(&relay, "127.0.0.1:0", "viewer").await;
    let relayed = c.allocate().await.unwrap();
    c.create_permission(&[service.addr])
        .await
        .expect("the service");
    c.channel_bind(0x4000, service.addr)
        .await
        .expect("the service");
    // The permission is for the address; only the service's port is
    // reachable through it, either way.
    assert_eq!(c.create_permission(&[other.addr]).await, Err(FORBIDDEN));
    assert_eq!(c.channel_bind(0x4001, other.addr).await, Err(FORBIDDEN));
    c.send_indication(other.addr, b"not for you").await.unwrap();
    other.socket.send_to(b"nor this", relayed).await.unwrap();
    c.channel_data(0x4000, b"for the service").await.unwrap();
    service
        .socket
        .send_to(b"from the service", relayed)
        .await
        .unwrap();
    assert_eq!(service.drain(Duration::from_millis(500)).await, (1, 15));
    assert_eq!(other.drain(Duration::from_millis(100)).await, (0, 0));
    assert_eq!(
        c.relayed(Duration::from_secs(2)).await,
        Some(Relayed::Channel(0x4000, b"from the service".to_vec()))
    );
    assert_eq!(c.relayed(Duration::from_millis(500)).await, None);
    let s = relay.stats();
    assert_eq!(s.forbidden_packets, 2, "{s:?}");
    relay.close().await;
}
