//! A TURN relay (RFC 5766, RFC 8656) for onair viewers behind strict NATs,
//! with the time-limited credentials of the TURN REST API
//! (draft-uberti-behave-turn-rest-00) that coturn's `use-auth-secret`
//! checks: username `EXPIRY:USER`, password
//! `base64(HMAC-SHA1(secret, username))`. The same secret works with coturn,
//! so operators can swap one for the other.
//!
//! The `turn` crate answers requests (Allocate, Refresh, CreatePermission,
//! ChannelBind); our read loops (`serve`) feed it, screen requests first
//! (`screen`), and relay data themselves (`allocation`, `wire`), since the
//! crate's data path copies every packet several times.
//!
//! Hardened for credentials anyone can get: peers on loopback, private
//! ranges and this host are refused ([`peers`]), and every count a client
//! can grow is capped ([`limits`]).

pub mod addr;
mod allocation;
mod auth;
mod guard;
pub mod limits;
pub mod peers;
mod relay;
mod screen;
mod serve;
mod stats;
mod tcp;
pub use tcp::{Stream as TurnStream, Upgrade};
mod transport;
mod wire;

pub use addr::Cidr;
pub use auth::{rest_password, RestAuthHandler};
pub use limits::Limits;
pub use peers::PeerPolicy;
pub use stats::Counters;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use turn::allocation::allocation_manager::{Manager, ManagerConfig};
use turn::relay::RelayAddressGenerator;

pub const DEFAULT_REALM: &str = "onair";
pub const DEFAULT_LISTEN: &str = "0.0.0.0:3478";
/// coturn's default relay range, so firewall rules carry over.
pub const DEFAULT_RELAY_PORTS: (u16, u16) = (49152, 65535);

#[derive(Debug, Clone)]
pub struct TurnConfig {
    /// Address clients reach the relay on: UDP, and TCP on the same port.
    pub listen: SocketAddr,
    /// The address relayed candidates announce: the host's public IP.
    pub public_ip: IpAddr,
    /// The UDP port range relayed candidates are bound in (inclusive).
    pub relay_ports: (u16, u16),
    pub realm: String,
    pub secret: String,
    pub limits: Limits,
    /// Peer ranges relayed to despite the restrictions (`--allow-peer`).
    pub allow_peers: Vec<Cidr>,
    /// Exact address:ports the relay is for, reachable even on this host
    /// or in a private range: `onair serve`'s WebRTC candidates.
    pub services: Vec<SocketAddr>,
    /// Told the name of each limit a client reaches (onair counts them in
    /// `onair_limit_hits_total`): `turn_forbidden_peer`, or a constant of
    /// [`limits`] in snake case. Called per refused request, and at most
    /// once a second per allocation dropping over its byte rate.
    pub on_limit: fn(&'static str),
}

impl TurnConfig {
    /// A relay on `listen` announcing `public_ip`, with the default ports,
    /// realm and limits, and no exceptions to the peer restrictions.
    pub fn new(listen: SocketAddr, public_ip: IpAddr, secret: String) -> TurnConfig {
        TurnConfig {
            listen,
            public_ip,
            relay_ports: DEFAULT_RELAY_PORTS,
            realm: DEFAULT_REALM.into(),
            secret,
            limits: Limits::default(),
            allow_peers: Vec::new(),
            services: Vec::new(),
            on_limit: |_| {},
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error("TURN needs a shared secret (--turn-secret)")]
    NoSecret,
    #[error("bad TURN relay port range {0}-{1}")]
    BadPortRange(u16, u16),
    #[error("cannot bind the TURN listener on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("TURN server: {0}")]
    Server(#[from] turn::Error),
}

/// A running relay; [`TurnRelay::close`] stops it and frees its allocations.
pub struct TurnRelay {
    loops: Vec<tokio::task::JoinHandle<()>>,
    stop: CancellationToken,
    /// Dropped without `close`, the loops still stop (and free their
    /// allocations), as the crate's `Server` did.
    _stop_on_drop: tokio_util::sync::DropGuard,
    local_addr: SocketAddr,
    tcp: Option<SocketAddr>,
    stop_tcp: Option<CancellationToken>,
    /// TURN over TLS, if it runs.
    tls: Option<SocketAddr>,
    stop_tls: Option<CancellationToken>,
    public_ip: IpAddr,
    guard: Arc<guard::State>,
    nonces: Arc<serve::Nonces>,
}

impl TurnRelay {
    /// Binds UDP and TCP on `config.listen` and starts.
    pub async fn start(config: TurnConfig) -> Result<TurnRelay, TurnError> {
        let (udp, tcp) = bind(config.listen).await?;
        Self::with_sockets(config, udp, Some(tcp)).await
    }

    /// Starts on already-bound sockets (port 0 in tests).
    pub async fn with_sockets(
        config: TurnConfig,
        socket: UdpSocket,
        tcp: Option<TcpListener>,
    ) -> Result<TurnRelay, TurnError> {
        Self::with_listeners(config, socket, tcp, None).await
    }

    /// [`with_sockets`](Self::with_sockets), plus TURN over TLS (`turns:`)
    /// on `tls`: connections there are upgraded before TURN is spoken.
    pub async fn with_listeners(
        config: TurnConfig,
        socket: UdpSocket,
        tcp: Option<TcpListener>,
        tls: Option<(TcpListener, tcp::Upgrade)>,
    ) -> Result<TurnRelay, TurnError> {
        if config.secret.is_empty() {
            return Err(TurnError::NoSecret);
        }
        let (min_port, max_port) = config.relay_ports;
        if min_port == 0 || max_port < min_port {
            return Err(TurnError::BadPortRange(min_port, max_port));
        }
        let local_addr = socket
            .local_addr()
            .map_err(|e| TurnError::Bind(config.listen, e))?;
        relay::enlarge_buffers(socket2::SockRef::from(&socket));
        let guard = guard::State::new(config.limits.clone(), config.on_limit);
        let own = peers::own_addresses(&[config.public_ip, local_addr.ip()]);
        let policy = Arc::new(PeerPolicy::new(
            config.allow_peers.clone(),
            &config.services,
            &own,
        ));
        let relay_ports = |fresh: relay::Fresh| -> Box<dyn RelayAddressGenerator + Send + Sync> {
            Box::new(relay::RelayPorts {
                relay_ip: config.public_ip,
                bind_ip: relay_bind_ip(config.public_ip),
                min_port,
                max_port,
                fresh,
            })
        };
        // Checked before the TCP listener starts, so a bad range leaks nothing.
        relay_ports(relay::Fresh::default()).validate()?;
        let socket = Arc::new(socket);
        let mut listeners = vec![(
            transport::Transport::Udp(socket.clone()),
            transport::Receiver::Udp(socket),
        )];
        let mut stop_tcp = None;
        let mut stop_tls = None;
        let tcp = match tcp {
            Some(listener) => {
                let addr = listener
                    .local_addr()
                    .map_err(|e| TurnError::Bind(config.listen, e))?;
                let (mux, incoming) =
                    tcp::TcpMux::start(listener, config.limits.max_tcp_connections, None)
                        .map_err(|e| TurnError::Bind(addr, e))?;
                stop_tcp = Some(mux.stop.clone());
                listeners.push((
                    transport::Transport::Tcp(Arc::new(mux)),
                    transport::Receiver::Tcp(incoming),
                ));
                Some(addr)
            }
            None => None,
        };
        let tls = match tls {
            Some((listener, upgrade)) => {
                let addr = listener
                    .local_addr()
                    .map_err(|e| TurnError::Bind(config.listen, e))?;
                // Its own cap, so plain TCP clients cannot crowd out TLS.
                let (mux, incoming) =
                    tcp::TcpMux::start(listener, config.limits.max_tcp_connections, Some(upgrade))
                        .map_err(|e| TurnError::Bind(addr, e))?;
                stop_tls = Some(mux.stop.clone());
                listeners.push((
                    transport::Transport::Tcp(Arc::new(mux)),
                    transport::Receiver::Tcp(incoming),
                ));
                Some(addr)
            }
            None => None,
        };
        let stop = CancellationToken::new();
        let nonces = Arc::new(serve::Nonces::new(
            config.limits.max_nonces,
            listeners.len(),
        ));
        serve::spawn_sweeper(nonces.clone(), stop.clone());
        let shared = Arc::new(serve::Shared {
            nonces: nonces.clone(),
            guard: guard.clone(),
            auth: Arc::new(RestAuthHandler::new(config.secret.clone())),
            policy: policy.clone(),
            context: Arc::new(allocation::Context {
                policy: policy.clone(),
                stats: guard.stats.clone(),
                on_limit: config.on_limit,
                limits: config.limits.clone(),
            }),
            realm: config.realm.clone(),
            stop: stop.clone(),
        });
        let loops = listeners
            .into_iter()
            .enumerate()
            .map(|(index, (transport, receiver))| {
                let fresh = relay::Fresh::default();
                let manager = Arc::new(Manager::new(ManagerConfig {
                    relay_addr_generator: relay_ports(fresh.clone()),
                    alloc_close_notify: Some(guard.close_notify(index)),
                }));
                let listener = serve::Listener {
                    index,
                    transport,
                    receiver,
                    fresh,
                };
                tokio::spawn(serve::read_loop(listener, manager, shared.clone()))
            })
            .collect();
        tracing::info!(
            listen = %local_addr,
            public_ip = %config.public_ip,
            tcp = ?tcp,
            tls = ?tls,
            relay_ports = ?config.relay_ports,
            "TURN relay listening"
        );
        Ok(TurnRelay {
            loops,
            _stop_on_drop: stop.clone().drop_guard(),
            stop,
            local_addr,
            tcp,
            stop_tcp,
            tls,
            stop_tls,
            public_ip: config.public_ip,
            guard,
            nonces,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address the relay announces.
    pub fn public_ip(&self) -> IpAddr {
        self.public_ip
    }

    /// Where TURN over TLS listens, if it does. Its `turns:` URL needs the
    /// certificate's host name, which the caller knows.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls
    }

    /// The URLs clients use: the public IP with the listening port(s), UDP
    /// first.
    pub fn urls(&self) -> Vec<String> {
        let mut urls = vec![format!(
            "turn:{}?transport=udp",
            SocketAddr::new(self.public_ip, self.local_addr.port())
        )];
        if let Some(tcp) = self.tcp {
            urls.push(format!(
                "turn:{}?transport=tcp",
                SocketAddr::new(self.public_ip, tcp.port())
            ));
        }
        urls
    }

    /// Allocations currently open.
    pub fn allocations(&self) -> usize {
        self.guard.allocations()
    }

    /// What the relay relayed and refused so far.
    pub fn stats(&self) -> Counters {
        self.guard.stats.snapshot()
    }

    /// Nonces stored (issued to clients and not yet forgotten): at most
    /// [`Limits::max_nonces`].
    pub async fn stored_nonces(&self) -> usize {
        self.nonces.len().await
    }

    pub async fn close(self) {
        self.stop.cancel();
        for l in self.loops {
            if let Err(e) = l.await {
                tracing::warn!("TURN read loop failed: {e}");
            }
        }
        for stop in [self.stop_tcp, self.stop_tls].into_iter().flatten() {
            stop.cancel();
        }
    }
}

/// UDP on `addr`, and TCP on the same port (the UDP one's, when `addr` has
/// port 0).
pub async fn bind(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), TurnError> {
    // Port 0: the kernel picks the UDP port, and a TCP connection made
    // meanwhile may hold the same number; another pick is as good.
    let tries = if addr.port() == 0 { 16 } else { 1 };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|e| TurnError::Bind(addr, e))?;
        let port = udp
            .local_addr()
            .map_err(|e| TurnError::Bind(addr, e))?
            .port();
        let tcp_addr = SocketAddr::new(addr.ip(), port);
        match TcpListener::bind(tcp_addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempt < tries => continue,
            Err(e) => return Err(TurnError::Bind(tcp_addr, e)),
        }
    }
}

/// Where relayed sockets bind: on the public IP itself when it is one of this
/// host's addresses, so peers see the relayed address they were told about
/// (else a peer's STUN answer maps to another address and the browser calls
/// the pair peer-reflexive); behind NAT 1:1, on every address.
fn relay_bind_ip(public_ip: IpAddr) -> IpAddr {
    if std::net::UdpSocket::bind((public_ip, 0)).is_ok() {
        public_ip
    } else if public_ip.is_ipv6() {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    }
}

/// The `stun` crate the `turn` crate's messages are built with.
pub use stun;
/// The `turn` crate (its client is handy for tests and probes).
pub use turn;
/// The `webrtc-util` crate the `turn` crate's sockets implement `Conn` of.
pub use util as webrtc_util;
