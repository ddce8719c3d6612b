//! `onair-turn`: the relay on its own, for a host apart from the server.

use clap::Parser;
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Parser)]
#[command(
    name = "onair-turn",
    version,
    about = "TURN relay with TURN REST API credentials"
)]
struct Args {
    /// Address to listen on, UDP and TCP.
    #[arg(long, env = "ONAIR_TURN", default_value = onair_turn::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Address relayed candidates announce (the host's public IP).
    #[arg(long, env = "ONAIR_PUBLIC_IP")]
    public_ip: IpAddr,
    /// The secret shared with `onair serve --turn-secret` (or coturn's
    /// `static-auth-secret`).
    #[arg(long, env = "ONAIR_TURN_SECRET")]
    turn_secret: String,
    #[arg(long, env = "ONAIR_TURN_REALM", default_value = onair_turn::DEFAULT_REALM)]
    realm: String,
    /// Relay port range, `MIN-MAX`.
    #[arg(long, env = "ONAIR_TURN_RELAY_PORTS", default_value = "49152-65535", value_parser = parse_range)]
    relay_ports: (u16, u16),
    /// Allocations open at once, in total.
    #[arg(long, default_value_t = onair_turn::Limits::default().max_allocations)]
    max_allocations: usize,
    /// Allocations open at once from one client IP (IPv6: one /64).
    #[arg(long, default_value_t = onair_turn::Limits::default().max_allocations_per_ip)]
    max_allocations_per_ip: usize,
    /// Allocations open at once under one username's user part (after
    /// `EXPIRY:`).
    #[arg(long, default_value_t = onair_turn::Limits::default().max_allocations_per_user)]
    max_allocations_per_user: usize,
    /// Permissions (peer addresses) one allocation holds at once.
    #[arg(long, default_value_t = onair_turn::Limits::default().max_permissions_per_allocation)]
    max_permissions: usize,
    /// Channels one allocation binds at once.
    #[arg(long, default_value_t = onair_turn::Limits::default().max_channels_per_allocation)]
    max_channels: usize,
    /// Bytes one allocation relays per second each way; more is dropped.
    #[arg(long, default_value_t = onair_turn::Limits::default().relay_bytes_per_sec)]
    max_relay_bytes_per_sec: u32,
    /// TURN-over-TCP connections open at once.
    #[arg(long, default_value_t = onair_turn::Limits::default().max_tcp_connections)]
    max_tcp_connections: usize,
    /// Unauthenticated requests let through per second (all clients).
    #[arg(long, default_value_t = onair_turn::Limits::default().challenges_per_sec)]
    challenges_per_sec: u32,
    /// Nonces stored at once; when full, the older half is forgotten.
    #[arg(long, default_value_t = onair_turn::Limits::default().max_nonces)]
    max_nonces: usize,
    /// Peer ranges (CIDR) to relay to despite the restrictions on loopback,
    /// private, link-local and this host's addresses. Repeat or
    /// comma-separate.
    #[arg(long, env = "ONAIR_TURN_ALLOW_PEER", value_delimiter = ',')]
    allow_peer: Vec<onair_turn::Cidr>,
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s.split_once('-').ok_or("expected MIN-MAX")?;
    let a: u16 = a.trim().parse().map_err(|e| format!("{e}"))?;
    let b: u16 = b.trim().parse().map_err(|e| format!("{e}"))?;
    if a == 0 || b < a {
        return Err(format!("{a}-{b} is not a port range"));
    }
    Ok((a, b))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs on stderr: stdout carries only the relay's URL.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let a = Args::parse();
    let relay = onair_turn::TurnRelay::start(onair_turn::TurnConfig {
        relay_ports: a.relay_ports,
        realm: a.realm,
        limits: onair_turn::Limits {
            max_allocations: a.max_allocations,
            max_allocations_per_ip: a.max_allocations_per_ip,
            max_allocations_per_user: a.max_allocations_per_user,
            max_permissions_per_allocation: a.max_permissions,
            max_channels_per_allocation: a.max_channels,
            relay_bytes_per_sec: a.max_relay_bytes_per_sec,
            max_tcp_connections: a.max_tcp_connections,
            challenges_per_sec: a.challenges_per_sec,
            max_nonces: a.max_nonces,
        },
        allow_peers: a.allow_peer,
        ..onair_turn::TurnConfig::new(a.listen, a.public_ip, a.turn_secret)
    })
    .await?;
    for url in relay.urls() {
        println!("{url}");
    }
    tokio::signal::ctrl_c().await?;
    relay.close().await;
    Ok(())
}
