//! Wiring: bind (or accept already-bound) listeners, start every component,
//! and stop them in order on shutdown.

use crate::config::Config;
use crate::db::Db;
use crate::http::{self, AppState};
use crate::hub::Hub;
use crate::sfu::{self, Sfu, WebrtcSockets};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long in-flight work may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Everything the server listens on, bound before [`run`] so tests can use
/// port 0 and read the real ports.
pub struct Listeners {
    pub http: TcpListener,
    pub rtmp: TcpListener,
    /// Icecast sources and plain listeners.
    pub icecast: TcpListener,
    pub webrtc: WebrtcSockets,
    /// The built-in TURN relay's UDP socket and TCP listener, with `--turn`.
    pub turn: Option<(tokio::net::UdpSocket, TcpListener)>,
    /// Its TLS listener (`turns:`).
    pub turns: Option<TcpListener>,
    /// HTTPS, with TLS on.
    pub https: Option<TcpListener>,
    /// RTMPS, with `--rtmps`.
    pub rtmps: Option<TcpListener>,
    /// `/metrics` alone, with `--metrics-listen`.
    pub metrics: Option<TcpListener>,
}

impl Listeners {
    pub async fn bind(config: &Config) -> std::io::Result<Listeners> {
        let http = TcpListener::bind(config.http).await?;
        let rtmp = TcpListener::bind(config.rtmp).await?;
        let icecast = TcpListener::bind(config.icecast).await?;
        let webrtc = sfu::bind(config.webrtc_udp, &config.public_ips)?;
        let turn = match config.turn {
            Some(addr) => Some(
                onair_turn::bind(addr)
                    .await
                    .map_err(std::io::Error::other)?,
            ),
            None => None,
        };
        let turns = match config.turns {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        let https = match config.tls.source {
            Some(_) => Some(TcpListener::bind(config.tls.https).await?),
            None => None,
        };
        let rtmps = match config.tls.rtmps {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        let metrics = match config.metrics_listen {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        Ok(Listeners {
            metrics,
            http,
            rtmp,
            icecast,
            webrtc,
            turn,
            turns,
            https,
            rtmps,
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().expect("bound socket has an address")
    }

    pub fn rtmp_addr(&self) -> SocketAddr {
        self.rtmp.local_addr().expect("bound socket has an address")
    }

    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn rtmps_addr(&self) -> Option<SocketAddr> {
        self.rtmps.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn icecast_addr(&self) -> SocketAddr {
        self.icecast
            .local_addr()
            .expect("bound socket has an address")
    }
}

/// Runs the server until `shutdown` completes.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    crate::isolate::install_hook();
    crate::metrics::mark_start();
    let wanted = crate::net::open_files_wanted();
    match crate::net::raise_open_files(wanted) {
        Ok(n) if n < wanted => tracing::warn!(
            open_files = n,
            wanted,
            "the hard open-file limit is below what the connection caps need; \
             raise it (systemd: LimitNOFILE, docker: ulimits nofile)"
        ),
        Ok(n) => tracing::debug!(open_files = n, "open-file limit"),
        Err(e) => tracing::warn!("cannot read or raise the open-file limit: {e}"),
    }
    let engines = crate::isolate::Engines::new();
    let node = crate::node::identity(config.node_id.as_deref(), &config.data_dir)?;
    let db = Db::open(&config.database_url).await?.for_node(&node);
    // Not fatal: the rows stay unowned until a start that can write.
    match db.claim_unowned_broadcasts().await {
        Ok(0) => {}
        Ok(claimed) => {
            tracing::info!(
                node,
                claimed,
                "broadcasts from before node ids are this node's"
            )
        }
        Err(e) => tracing::warn!(node, "cannot take the broadcasts from before node ids: {e}"),
    }
    let hub = Hub::new();
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();

    tracing::info!(
        http = %listeners.http_addr(),
        rtmp = %listeners.rtmp_addr(),
        https = ?listeners.https_addr(),
        rtmps = ?listeners.rtmps_addr(),
        icecast = %listeners.icecast_addr(),
        webrtc = ?listeners.webrtc.candidates,
        data_dir = %config.data_dir.display(),
        node = %db.node_id(),
        "onair listening"
    );

    let rtmps_port = listeners.rtmps_addr().map(|a| a.port());
    let mut ice_urls = config.ice_servers.clone();
    let tls = match &config.tls.source {
        Some(source) => Some(crate::tls::Tls::start(
            source,
            &config.data_dir,
            token.clone(),
            &tracker,
        )?),
        None => None,
    };
    let turn_relay = match listeners.turn {
        Some((udp, tcp)) => {
            let turns = match (listeners.turns, &tls) {
                (Some(l), Some(tls)) => Some((l, turns_upgrade(tls))),
                _ => None,
            };
            let relay = start_turn(&config, udp, tcp, turns, &listeners.webrtc.candidates).await?;
            ice_urls.extend(relay.urls());
            if let Some(addr) = relay.tls_addr() {
                let host = turns_host(&config).unwrap_or_else(|| relay.public_ip().to_string());
                ice_urls.push(format!("turns:{host}:{}?transport=tcp", addr.port()));
            }
            Some(relay)
        }
        None => None,
    };
    let sfu = Sfu::start(
        listeners.webrtc,
        hub.clone(),
        token.clone(),
        &tracker,
        engines.clone(),
        crate::sfu::SfuOptions {
            max_viewers: config.max_viewers,
            fault_injection: config.fault_injection,
            engine: config.webrtc_engine,
            shards: config.webrtc_shards,
        },
    )?;
    let rtmp_port = listeners.rtmp.local_addr()?.port();
    let hooks = crate::hooks::Hooks::new(config.hooks.clone());
    hooks.set_rules(crate::auth::PublishRules::new(
        db.clone(),
        config.accounts.require_verified_email,
    ));
    let channels = Arc::new(db.clone());
    // An edge takes no ingest: its listeners are closed, so an encoder
    // pointed at it fails at once rather than publishing where nothing
    // records it.
    let ingest = config.role != crate::config::Role::Edge;
    if ingest {
        tracker.spawn(crate::rtmp::serve(
            listeners.rtmp,
            None,
            hub.clone(),
            channels.clone(),
            hooks.clone(),
            token.clone(),
            config.fault_injection,
        ));
    } else {
        drop(listeners.rtmp);
    }
    if let (true, Some(listener), Some(tls)) = (ingest, listeners.rtmps, &tls) {
        tracker.spawn(crate::rtmp::serve(
            listener,
            Some(tls.plain.clone()),
            hub.clone(),
            channels,
            hooks.clone(),
            token.clone(),
            config.fault_injection,
        ));
    }

    let store = crate::store::Store::open(&config.object_store)?;
    // A file store in the data directory already holds the recordings
    // where they are made: nothing to copy.
    let same_dir = |root: &std::path::Path| {
        root == config.data_dir
            || matches!((root.canonicalize(), config.data_dir.canonicalize()), (Ok(a), Ok(b)) if a == b)
    };
    let archive = match store.local_root() {
        Some(root) if same_dir(root) => None,
        _ => Some(store.clone()),
    };
    let recordings = Arc::new(crate::hls::recorder::Recordings::new(
        db.clone(),
        config.data_dir.join("recordings"),
        config.data_dir.clone(),
        config.hls.clone(),
        archive,
    ));
    let hls = crate::hls::Hls::start(
        config.hls.clone(),
        hub.clone(),
        recordings,
        hooks.clone(),
        token.clone(),
        &tracker,
    )
    .await;
    // Plain listeners count as viewers in the chat's events.
    let mounts = Arc::new(crate::icecast::mount::Mounts::default());
    let flv = crate::flv::Flv::new(token.clone());
    let hub_live = Arc::new(http::HubLive {
        hub: hub.clone(),
        sfu: sfu.clone(),
        hls: hls.clone(),
        icecast: mounts.clone(),
        flv: flv.clone(),
        census: Arc::default(),
    });
    let live: Arc<dyn crate::chat::LiveState> = hub_live.clone();
    let rooms = crate::chat::Rooms::new(db.clone(), live.clone());
    rooms.set_node_tag(db.node_tag().await?);
    rooms.require_verified_email(config.accounts.require_verified_email);
    let mut edge = None;
    if let Some(url) = &config.redis_url {
        let bus = Arc::new(crate::bus::Bus::new(url)?);
        if config.role == crate::config::Role::Edge {
            edge = Some(crate::edge::Edge::new(
                hub.clone(),
                bus.clone(),
                sfu.clone(),
                db.node_id().to_string(),
                config.pull_linger,
                tracker.clone(),
                token.clone(),
            ));
        }
        rooms.set_bus(bus.clone());
        tracker.spawn(rooms.clone().run_bus(token.clone()));
        tracker.spawn(crate::hub::lease::hold(
            hub.clone(),
            bus.clone(),
            db.node_id().to_string(),
            token.clone(),
        ));
        let site = hub_live.clone();
        let (url, max_viewers, role) = (config.node_url.clone(), config.max_viewers, config.role);
        tracker.spawn(crate::hub::census::run(
            hub_live.census.clone(),
            bus.clone(),
            db.node_id().to_string(),
            move || crate::hub::census::Report {
                channels: site.local(),
                url: url.clone(),
                role,
                viewers: site.sfu.all_viewers().iter().map(|(_, n)| n).sum(),
                max_viewers,
            },
            token.clone(),
        ));
        if let Some(url) = &config.node_url {
            tracker.spawn(crate::hub::lease::advertise(
                bus,
                db.node_id().to_string(),
                url.clone(),
                token.clone(),
            ));
        }
    }
    hooks
        .start(db.clone(), live.clone(), token.clone(), &tracker)
        .await;
    tracker.spawn(rooms.clone().run_events(token.clone()));
    let icecast = crate::icecast::Icecast::new(
        hub.clone(),
        db.clone(),
        rooms.clone(),
        hooks.clone(),
        mounts,
        listeners.icecast.local_addr()?.port(),
    );
    if ingest {
        tracker.spawn(icecast.clone().serve(listeners.icecast, token.clone()));
    } else {
        drop(listeners.icecast);
    }
    tracker.spawn(rooms.clone().run_writer(token.clone()));
    tracker.spawn(crate::hub::keys::guard(
        hub.clone(),
        db.clone(),
        token.clone(),
    ));
    if config.mail.smtp_url.is_some() && config.hooks.public_url.is_none() {
        tracing::warn!("mail carries codes to type in, not links: set --public-url for links");
    }
    let state = AppState {
        db: db.clone(),
        hub: hub.clone(),
        sfu,
        rooms,
        limits: Arc::new(http::Limits::new(config.offer_rate, config.accounts)),
        mailer: crate::auth::Mailer::new(&config.mail)?.map(Arc::new),
        hls,
        ice: Arc::new(http::ice::IceConfig {
            urls: ice_urls,
            turn_secret: config.turn_secret.clone(),
        }),
        rtmp_port,
        rtmps_port,
        proxies: Arc::new(config.trusted_proxies.clone()),
        engines: engines.clone(),
        icecast,
        flv,
        downloads: Default::default(),
        hooks,
        secure_cookies: tls.is_some()
            || config
                .hooks
                .public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://")),
        access_log: config.access_log,
        metrics_public: listeners.metrics.is_none(),
        live: live.clone(),
        role: config.role,
        census: hub_live.census.clone(),
        edge,
        node_url: config.node_url.as_deref().map(Arc::from),
        public_url: config
            .hooks
            .public_url
            .as_deref()
            .map(|u| Arc::from(u.trim_end_matches('/'))),
        metrics_token: config.metrics_token.as_deref().map(Arc::from),
        signup: http::Signup {
            registration: config.accounts.registration,
            open_streaming: config.accounts.open_streaming,
        },
        oidc: Arc::new(http::oidc::Oidc::new(config.oidc.clone())),
        avatars: Arc::new(crate::avatar::Avatars::new(db.clone(), store)),
    };
    if let Some(listener) = listeners.metrics {
        tokio::spawn(http::listen::serve(
            listener,
            http::metrics_router(state.clone()),
            Arc::new(config.trusted_proxies.clone()),
            None,
            token.clone(),
        ));
    }
    let proxies = Arc::new(config.trusted_proxies.clone());
    let http_task = match (tls, listeners.https) {
        (Some(tls), Some(https)) => {
            let redirect = http::redirect::Redirect {
                challenges: tls.challenges.clone(),
                public_origin: config
                    .hooks
                    .public_url
                    .clone()
                    .filter(|u| u.starts_with("https://")),
                https_port: https.local_addr()?.port(),
            };
            let plain = tokio::spawn(http::listen::serve(
                listeners.http,
                http::redirect::router(state.clone(), redirect),
                proxies.clone(),
                None,
                token.clone(),
            ));
            let secure = tokio::spawn(http::listen::serve(
                https,
                http::router(state),
                proxies,
                Some(tls.https.clone()),
                token.clone(),
            ));
            tokio::spawn(async move {
                let _ = tokio::join!(plain, secure);
            })
        }
        _ => tokio::spawn(http::listen::serve(
            listeners.http,
            http::router(state),
            proxies,
            None,
            token.clone(),
        )),
    };

    let stop = token.clone();
    tokio::spawn(async move {
        shutdown.await;
        stop.cancel();
    });
    token.cancelled().await;
    tracing::info!("shutting down: ingest stops, viewers are released");
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some tasks did not finish within {SHUTDOWN_GRACE:?}");
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, http_task)
        .await
        .is_err()
    {
        tracing::warn!("HTTP connections did not close within {SHUTDOWN_GRACE:?}");
    }
    if let Some(relay) = turn_relay {
        relay.close().await;
    }
    db.pool().close().await;
    match engines.fatal() {
        Some(why) => Err(anyhow::anyhow!(why)),
        None => Ok(()),
    }
}

/// The built-in TURN relay, announcing the first `--public-ip`, else the
/// address it listens on, else a non-loopback address the SFU announces.
/// TLS for TURN over TLS, with the HTTPS certificate (no ALPN: browsers
/// send none for TURN).
fn turns_upgrade(tls: &crate::tls::Tls) -> onair_turn::Upgrade {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.plain.clone());
    Arc::new(move |tcp| {
        let acceptor = acceptor.clone();
        Box::pin(async move {
            let stream = acceptor.accept(tcp).await?;
            Ok(Box::new(stream) as Box<dyn onair_turn::TurnStream>)
        })
    })
}

/// The name `turns:` URLs carry, which the certificate must match: the
/// public URL's host, else the first ACME name.
fn turns_host(config: &Config) -> Option<String> {
    if let Some(host) = config
        .hooks
        .public_url
        .as_deref()
        .and_then(|u| reqwest::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_string))
    {
        return Some(host);
    }
    match &config.tls.source {
        Some(crate::tls::CertSource::Acme(a)) => a.domains.first().cloned(),
        _ => None,
    }
}

async fn start_turn(
    config: &Config,
    socket: tokio::net::UdpSocket,
    tcp: TcpListener,
    tls: Option<(TcpListener, onair_turn::Upgrade)>,
    webrtc_candidates: &[SocketAddr],
) -> anyhow::Result<onair_turn::TurnRelay> {
    let listen = socket.local_addr()?;
    let public_ip = config
        .public_ips
        .first()
        .copied()
        .or_else(|| (!listen.ip().is_unspecified()).then_some(listen.ip()))
        .or_else(|| {
            webrtc_candidates
                .iter()
                .map(SocketAddr::ip)
                .find(|ip| ip.is_ipv4() && !ip.is_loopback())
        })
        .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
    let secret = config
        .turn_secret
        .clone()
        .ok_or(crate::config::ConfigError::TurnWithoutSecret)?;
    let relay = onair_turn::TurnRelay::with_listeners(
        onair_turn::TurnConfig {
            relay_ports: config.turn_relay_ports,
            allow_peers: config.turn_allow_peers.clone(),
            // Viewers relay to the SFU: its candidates stay reachable even
            // on this host's (or private) addresses.
            services: webrtc_candidates.to_vec(),
            on_limit: crate::metrics::limit_hit,
            ..onair_turn::TurnConfig::new(listen, public_ip, secret)
        },
        socket,
        Some(tcp),
        tls,
    )
    .await?;
    Ok(relay)
}

/// Completes on SIGINT or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
