//! Settings from flags, environment and an optional TOML file, in that order
//! of precedence, with the contract's defaults.

use clap::{Args, Parser, Subcommand};

mod file;
use file::cidrs;
pub(crate) use file::duration;
pub use file::{known_keys, layered, render, Explicit, FileSettings, Settings};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

pub const DEFAULT_HTTP: &str = "0.0.0.0:8080";
pub const DEFAULT_RTMP: &str = "0.0.0.0:1935";
pub const DEFAULT_WEBRTC_UDP: &str = "0.0.0.0:8189";
pub const DEFAULT_DATA_DIR: &str = "./data";
/// An edge's viewers come and go (a page reload, a phone switching
/// network): a pull kept this long spares the origin a new session and the
/// viewer a wait for the next keyframe.
pub const DEFAULT_PULL_LINGER: std::time::Duration = std::time::Duration::from_secs(15);
/// TURN over TLS: the port RFC 5766 gives `turns:`.
pub const DEFAULT_TURNS: &str = "0.0.0.0:5349";

#[derive(Debug, Parser)]
#[command(
    name = "onair",
    version,
    about = "Live-streaming server: RTMP/WHIP in, WebRTC and LL-HLS out"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Args, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct GlobalArgs {
    /// `text`, or `json`: one JSON object per line, for log
    /// collectors. Flags and env only (logging starts before the file is
    /// read).
    #[arg(long, env = "ONAIR_LOG_FORMAT", global = true, value_parser = ["text", "json"], default_value = "text")]
    #[serde(skip)]
    pub log_format: Option<String>,
    /// Optional TOML file with the same keys as the long flags (`http = "..."`).
    #[arg(long, env = "ONAIR_CONFIG", global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Folder for the SQLite database and recordings.
    #[arg(long, env = "ONAIR_DATA_DIR", global = true, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://...` or `postgres://...` [default: sqlite://<data-dir>/onair.db]
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
}

#[derive(Debug, Args, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct ServeArgs {
    /// HTTP: API, WHIP/WHEP, HLS, web UI, /metrics.
    #[arg(long, env = "ONAIR_HTTP", global = true, default_value = DEFAULT_HTTP)]
    pub http: Option<SocketAddr>,
    /// RTMP ingest.
    #[arg(long, env = "ONAIR_RTMP", global = true, default_value = DEFAULT_RTMP)]
    pub rtmp: Option<SocketAddr>,
    /// WebRTC media: every peer on this one UDP port.
    #[arg(long, env = "ONAIR_WEBRTC_UDP", global = true, default_value = DEFAULT_WEBRTC_UDP)]
    pub webrtc_udp: Option<SocketAddr>,
    /// Address announced in ICE candidates (NAT 1:1). Repeat or comma-separate
    /// for several. Default: every address of the host.
    #[arg(long, env = "ONAIR_PUBLIC_IP", value_delimiter = ',', global = true)]
    pub public_ip: Vec<IpAddr>,
    /// STUN/TURN servers for clients, e.g. `turn:turn.example.com:3478`.
    /// Repeat or comma-separate. Announced in WHIP/WHEP `Link` headers and
    /// `GET /api/ice-servers`.
    #[arg(long, env = "ONAIR_ICE_SERVER", value_delimiter = ',', global = true)]
    pub ice_server: Vec<String>,
    /// Shared secret for time-limited TURN credentials (the TURN REST API
    /// scheme coturn's `use-auth-secret` uses).
    #[arg(long, env = "ONAIR_TURN_SECRET", global = true)]
    pub turn_secret: Option<String>,
    /// Run the built-in TURN relay on this address, UDP and TCP (e.g.
    /// `0.0.0.0:3478`); needs `--turn-secret`. Its `turn:` URLs are added to
    /// the ICE servers.
    #[arg(long, env = "ONAIR_TURN", global = true)]
    pub turn: Option<SocketAddr>,
    /// TURN over TLS (`turns:`) on this address, with the HTTPS
    /// certificate, for networks that let only TLS out [default:
    /// 0.0.0.0:5349 when TLS and --turn are both on].
    #[arg(long, env = "ONAIR_TURNS", global = true)]
    pub turns: Option<SocketAddr>,
    /// UDP port range for the built-in relay's relayed addresses, `MIN-MAX`.
    #[arg(
        long,
        env = "ONAIR_TURN_RELAY_PORTS",
        global = true,
        default_value = "49152-65535"
    )]
    pub turn_relay_ports: Option<String>,
    /// Peer ranges (CIDR, repeat or comma-separate) the built-in relay may
    /// reach despite its restrictions (loopback, private, link-local and
    /// this host's addresses are refused by default).
    #[arg(
        long,
        env = "ONAIR_TURN_ALLOW_PEER",
        value_delimiter = ',',
        global = true
    )]
    #[serde(with = "cidrs")]
    pub turn_allow_peer: Vec<crate::net::Cidr>,
    /// WHIP/WHEP offers per second per client address (bursts of 4x);
    /// 0 = unlimited, for load tests.
    #[arg(long, env = "ONAIR_OFFER_RATE", global = true, default_value = "5")]
    pub offer_rate: Option<f64>,
    /// WebRTC viewers (WHEP sessions) this server takes; past it an offer
    /// gets 503 with Retry-After. At most 20000.
    #[arg(
        long,
        env = "ONAIR_MAX_VIEWERS",
        global = true,
        default_value = "20000"
    )]
    pub max_viewers: Option<usize>,
    /// What WebRTC viewers' connections run on: `lean` (our own session,
    /// media sealed in place in the send batch) or `rtc` (webrtc-rs's
    /// generic peer connection).
    #[arg(
        long,
        env = "ONAIR_WEBRTC_ENGINE",
        global = true,
        value_enum,
        default_value = "lean"
    )]
    pub webrtc_engine: Option<crate::sfu::Engine>,
    /// WebRTC fan-out shards, each a thread with its own viewers (default:
    /// one per available core). WHIP publishers are served beside them.
    #[arg(long, env = "ONAIR_WEBRTC_SHARDS", global = true)]
    pub webrtc_shards: Option<usize>,
    /// Reverse proxies (CIDR ranges, repeat or comma-separate) whose
    /// `Forwarded` / `X-Forwarded-For` headers name the client. Without it,
    /// the socket's address is the client.
    #[arg(
        long,
        env = "ONAIR_TRUSTED_PROXIES",
        value_delimiter = ',',
        global = true
    )]
    #[serde(with = "cidrs")]
    pub trusted_proxies: Vec<crate::net::Cidr>,
    /// Serve `/metrics` only on this address (e.g. `127.0.0.1:9090`), not
    /// on the public listeners.
    #[arg(long, env = "ONAIR_METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<SocketAddr>,
    /// `/metrics` answers only requests with `Authorization: Bearer TOKEN`.
    #[arg(long, env = "ONAIR_METRICS_TOKEN", global = true)]
    pub metrics_token: Option<String>,
    /// Where stored objects (profile pictures) go: `file://PATH` (default:
    /// the data directory) or `s3://BUCKET?endpoint=URL&region=REGION`
    /// (AWS S3, MinIO, Garage, R2...; `&addressing=path|virtual`),
    /// credentials from `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    #[arg(long, env = "ONAIR_OBJECT_STORE", global = true)]
    pub object_store: Option<String>,
    /// Redis shared by the servers of one site (`redis://HOST:PORT[/DB]`):
    /// chat rooms, their moderation events and the chat's slow mode and the
    /// like cooldown are then one across every server.
    #[arg(long, env = "ONAIR_REDIS_URL", global = true)]
    pub redis_url: Option<String>,
    /// This server's URL as the other servers of the site and clients
    /// reach it (`http://HOST:PORT`): with `--redis-url`, a WHEP offer
    /// reaching another server for a channel live here is redirected to
    /// it, and WHEP sessions are named by absolute URLs.
    #[arg(long, env = "ONAIR_NODE_URL", global = true)]
    pub node_url: Option<String>,
    /// `all` (one server does everything), `origin` (ingest, LL-HLS,
    /// recording, thumbnails) or `edge` (WebRTC viewers and chat, pulling
    /// each watched channel from the server it is live on). `origin` and
    /// `edge` need `--redis-url`, `--node-url` and Postgres.
    // Not global: `user create --role` is another flag. `serve --role`
    // is the `serve` command's own (see [`Command::Serve`]).
    #[arg(long, env = "ONAIR_ROLE", value_enum)]
    pub role: Option<Role>,
    /// How long an edge keeps pulling a channel after its last viewer left.
    #[arg(long, env = "ONAIR_PULL_LINGER", global = true, value_parser = crate::hooks::parse_duration)]
    #[serde(with = "duration")]
    pub pull_linger: Option<std::time::Duration>,
    /// This server's name among several sharing one database (`[a-z0-9._-]`,
    /// at most 64): recovery and retention touch only its own broadcasts.
    /// Default: a random one, kept in the data directory (`node-id`).
    #[arg(long, env = "ONAIR_NODE_ID", global = true)]
    pub node_id: Option<String>,
    /// One log line per HTTP request (target `onair::access`): method,
    /// path (session ids and query values that may be secrets masked),
    /// status, bytes, milliseconds, client.
    #[arg(long, env = "ONAIR_ACCESS_LOG", global = true)]
    pub access_log: bool,
    /// Tests only: lets publishers' marked packets (WHIP) and commands
    /// (RTMP) panic the server, to prove that fault isolation holds. Never
    /// turn it on in production.
    #[arg(long, env = "ONAIR_FAULT_INJECTION", hide = true, global = true)]
    #[serde(skip)]
    pub fault_injection: bool,
    #[command(flatten)]
    #[serde(flatten)]
    pub hls: crate::hls::HlsArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub mail: crate::auth::MailArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub accounts: crate::auth::AccountArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub oidc: crate::auth::oidc::OidcArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub icecast: crate::icecast::IcecastArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub hooks: crate::hooks::HookArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub tls: crate::tls::TlsArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve {
        /// See the top-level `--role`.
        #[arg(long, env = "ONAIR_ROLE", value_enum)]
        role: Option<Role>,
    },
    /// Manage channels.
    Channel {
        #[command(subcommand)]
        action: ChannelAction,
    },
    /// Manage user accounts.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Check settings.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Exit 0 when the server on `--http` (this host) answers `/healthz`
    /// with 200 within 5 s, 1 otherwise: for container health checks.
    Health,
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Validate a TOML file (an unknown key or a bad value is an error) and
    /// print the effective settings: the file under the flags and
    /// environment, over the defaults; secrets masked.
    Check { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create a user (and their channel, named after them); prints the
    /// channel's stream key if the role streams (any but viewer). An
    /// existing channel of that name with no owner is given to the new
    /// user.
    Create {
        name: String,
        /// admin, moderator, broadcaster or viewer.
        #[arg(long, default_value = "viewer")]
        role: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Print one user a line: name, role, active or deleted, created
    /// (RFC 3339).
    List,
    /// Set a user's password (from the first line of standard input) and
    /// sign them out everywhere.
    Passwd {
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's role. Granting streaming (viewer to another role)
    /// prints the new stream key on a second line; taking it away replaces
    /// the key.
    Role {
        name: String,
        #[arg(value_parser = ["admin", "moderator", "broadcaster", "viewer"])]
        role: String,
    },
    /// Delete a user: sign-in ends, every session is revoked and the stream
    /// key replaced (a live publish ends); their channel, recordings and
    /// chat stay.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum ChannelAction {
    /// Create a channel and print its stream key.
    Create { name: String },
    /// Print one channel a line: name, created (RFC 3339).
    List {
        /// Only channels live now (with a broadcast that has not ended).
        #[arg(long)]
        live: bool,
    },
    /// Replace a channel's stream key and print the new one. A live publish
    /// with the old key ends (within 2 s on a running server).
    RotateKey { name: String },
    /// Delete a channel nobody owns (or whose owner was deleted), with its
    /// chat, schedule, broadcasts and recordings.
    Delete { name: String },
    /// Turn recording of a channel's broadcasts on or off (default on).
    Recording {
        name: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
}

/// What one server of a site does (`--role`).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Everything: the single-server default.
    #[default]
    All,
    /// Ingest, LL-HLS, recording and thumbnails (and viewers, while it has room).
    Origin,
    /// WebRTC viewers and chat; media pulled from the origin over WHEP.
    Edge,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Origin => "origin",
            Role::Edge => "edge",
        }
    }
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub http: SocketAddr,
    pub rtmp: SocketAddr,
    pub webrtc_udp: SocketAddr,
    pub public_ips: Vec<IpAddr>,
    pub data_dir: PathBuf,
    pub database_url: String,
    /// STUN/TURN URLs announced to clients.
    pub ice_servers: Vec<String>,
    pub turn_secret: Option<String>,
    pub offer_rate: Option<f64>,
    /// See `--max-viewers`.
    pub max_viewers: usize,
    /// See `--webrtc-engine`.
    pub webrtc_engine: crate::sfu::Engine,
    /// See `--webrtc-shards`.
    pub webrtc_shards: usize,
    /// The built-in TURN relay's address (UDP and TCP), if it runs.
    pub turn: Option<SocketAddr>,
    /// TURN over TLS, if it runs.
    pub turns: Option<SocketAddr>,
    /// Its relay port range (inclusive).
    pub turn_relay_ports: (u16, u16),
    /// Peer ranges it relays to despite its restrictions.
    pub turn_allow_peers: Vec<crate::net::Cidr>,
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxies: crate::net::TrustedProxies,
    /// See `--fault-injection`.
    pub fault_injection: bool,
    /// LL-HLS, recordings and retention.
    pub hls: crate::hls::HlsConfig,
    /// SMTP for verification and password-reset mail (flags and env only).
    pub mail: crate::auth::MailConfig,
    /// Registration rate and chat socket caps.
    pub accounts: crate::auth::AccountLimits,
    /// "Sign in with ..." providers (`--oidc-provider`).
    pub oidc: Vec<crate::auth::oidc::ProviderSpec>,
    /// Icecast source ingest and plain listeners.
    pub icecast: SocketAddr,
    pub hooks: crate::hooks::HookConfig,
    /// HTTPS and RTMPS, when a certificate is configured.
    pub tls: crate::tls::TlsConfig,
    /// See `--access-log`.
    pub access_log: bool,
    /// See `--metrics-listen` and `--metrics-token`.
    pub metrics_listen: Option<SocketAddr>,
    pub metrics_token: Option<String>,
    /// See `--object-store`.
    pub object_store: crate::store::StoreUrl,
    /// See `--redis-url`.
    pub redis_url: Option<String>,
    /// See `--node-url`, without a trailing slash.
    pub node_url: Option<String>,
    /// See `--role`.
    pub role: Role,
    /// See `--pull-linger`.
    pub pull_linger: std::time::Duration,
    /// See `--node-id`; `None`: the one kept in the data directory.
    pub node_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("bad config file {0}: {1}")]
    Parse(PathBuf, toml::de::Error),
    #[error("bad value in config file {0}: {1}")]
    Value(PathBuf, String),
    #[error("--turn needs --turn-secret (ONAIR_TURN_SECRET): the relay only accepts credentials signed with it")]
    TurnWithoutSecret,
    #[error("--turns needs TLS (--tls-cert/--tls-key or --acme-domain) and --turn")]
    TurnsWithoutTls,
    #[error("bad --node-id {0:?}: 1 to 64 of a-z 0-9 . _ -")]
    NodeId(String),
    #[error("bad --redis-url {0:?}: expected redis://HOST:PORT[/DB]")]
    RedisUrl(String),
    #[error("bad --node-url {0:?}: expected http(s)://HOST[:PORT], without a path")]
    NodeUrl(String),
    #[error("--role {0} needs --redis-url, --node-url and a Postgres --database-url: the servers of a site share them")]
    RoleAlone(&'static str),
    #[error("bad --object-store: {0}")]
    ObjectStore(String),
    #[error("bad --turn-relay-ports {0:?}: expected MIN-MAX, e.g. 49152-65535")]
    TurnRelayPorts(String),
    #[error("{0}")]
    Hooks(#[from] crate::hooks::HookConfigError),
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("{0}")]
    Oidc(#[from] crate::auth::oidc::ProviderSpecError),
}

impl Config {
    /// Settings from the flags and environment (`explicit` says which were
    /// given), then the `--config` file, then the defaults. Unknown keys in
    /// the file are logged and skipped.
    pub fn resolve_from(
        global: &GlobalArgs,
        serve: &ServeArgs,
        explicit: &Explicit,
    ) -> Result<Config, ConfigError> {
        let file = match &global.config {
            Some(path) => {
                let file = FileSettings::read(path)?;
                for key in &file.unknown {
                    tracing::warn!(file = %path.display(), key, "unknown key in the config file, skipped");
                }
                Some(file)
            }
            None => None,
        };
        let s = layered(global, serve, file.as_ref(), explicit)?;
        Config::from_settings(&s.global, &s.serve)
    }

    /// The settings, resolved: defaults filled in and each checked.
    pub fn from_settings(global: &GlobalArgs, serve: &ServeArgs) -> Result<Config, ConfigError> {
        let parse = |s: &str| s.parse::<SocketAddr>().expect("default address parses");
        let turn = serve.turn;
        let turn_secret = serve.turn_secret.clone();
        if turn.is_some() && turn_secret.as_deref().is_none_or(str::is_empty) {
            return Err(ConfigError::TurnWithoutSecret);
        }
        let turn_relay_ports = match serve.turn_relay_ports.clone() {
            None => onair_turn::DEFAULT_RELAY_PORTS,
            Some(r) => parse_port_range(&r).ok_or(ConfigError::TurnRelayPorts(r))?,
        };
        let webrtc_shards = serve.webrtc_shards.unwrap_or_else(default_shards);
        if !(1..=crate::sfu::shard::MAX_SHARDS).contains(&webrtc_shards) {
            return Err(ConfigError::Value(
                global.config.clone().unwrap_or_default(),
                format!(
                    "webrtc-shards: {webrtc_shards} is not between 1 and {}",
                    crate::sfu::shard::MAX_SHARDS
                ),
            ));
        }
        let hooks = serve.hooks.resolve(&crate::hooks::HookArgs::default())?;
        let tls = serve.tls.resolve(&crate::tls::TlsArgs::default())?;
        let tls_and_turn = tls.source.is_some() && turn.is_some();
        let turns = match serve.turns {
            Some(_) if !tls_and_turn => return Err(ConfigError::TurnsWithoutTls),
            Some(addr) => Some(addr),
            None => tls_and_turn.then(|| parse(DEFAULT_TURNS)),
        };
        let data_dir = global
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database_url = global
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("onair.db").display()));
        let data_dir_for_store = data_dir.clone();
        Config {
            http: serve.http.unwrap_or_else(|| parse(DEFAULT_HTTP)),
            rtmp: serve.rtmp.unwrap_or_else(|| parse(DEFAULT_RTMP)),
            webrtc_udp: serve
                .webrtc_udp
                .unwrap_or_else(|| parse(DEFAULT_WEBRTC_UDP)),
            public_ips: serve.public_ip.clone(),
            data_dir,
            database_url,
            ice_servers: serve.ice_server.clone(),
            turn_secret,
            offer_rate: serve.offer_rate,
            max_viewers: serve
                .max_viewers
                .unwrap_or(crate::sfu::MAX_PEERS)
                .min(crate::sfu::MAX_PEERS),
            webrtc_engine: serve.webrtc_engine.unwrap_or_default(),
            webrtc_shards,
            turn,
            turns,
            turn_relay_ports,
            turn_allow_peers: serve.turn_allow_peer.clone(),
            trusted_proxies: crate::net::TrustedProxies::new(serve.trusted_proxies.clone()),
            fault_injection: serve.fault_injection,
            hls: serve.hls.resolve(),
            mail: serve.mail.resolve(),
            accounts: serve.accounts.resolve(&crate::auth::AccountArgs::default()),
            oidc: serve
                .oidc
                .resolve(&Default::default(), |k| std::env::var(k).ok())?,
            icecast: serve
                .icecast
                .icecast
                .unwrap_or_else(|| parse(crate::icecast::DEFAULT_ICECAST)),
            hooks,
            tls,
            access_log: serve.access_log,
            metrics_listen: serve.metrics_listen,
            metrics_token: serve.metrics_token.clone().filter(|t| !t.is_empty()),
            object_store: match serve.object_store.as_deref().filter(|u| !u.is_empty()) {
                Some(url) => crate::store::StoreUrl::parse(url)
                    .map_err(|e| ConfigError::ObjectStore(e.to_string()))?,
                None => crate::store::StoreUrl::Dir(data_dir_for_store),
            },
            redis_url: match serve.redis_url.as_deref().filter(|u| !u.is_empty()) {
                Some(url) if crate::bus::valid_url(url) => Some(url.to_string()),
                Some(url) => return Err(ConfigError::RedisUrl(url.to_string())),
                None => None,
            },
            node_url: match serve.node_url.as_deref().filter(|u| !u.is_empty()) {
                Some(url) => Some(node_url(url).ok_or_else(|| ConfigError::NodeUrl(url.into()))?),
                None => None,
            },
            node_id: match serve.node_id.as_deref().filter(|n| !n.is_empty()) {
                Some(id) if crate::node::valid_id(id) => Some(id.to_string()),
                Some(id) => return Err(ConfigError::NodeId(id.to_string())),
                None => None,
            },
            role: serve.role.unwrap_or_default(),
            pull_linger: serve.pull_linger.unwrap_or(DEFAULT_PULL_LINGER),
        }
        .check_role()
    }

    /// `origin` and `edge` share everything through Redis and Postgres,
    /// and find each other by URL: alone they would split the site.
    fn check_role(self) -> Result<Config, ConfigError> {
        let shared = self.redis_url.is_some()
            && self.node_url.is_some()
            && !self.database_url.starts_with("sqlite:");
        match self.role {
            Role::All => Ok(self),
            _ if shared => Ok(self),
            r => Err(ConfigError::RoleAlone(r.name())),
        }
    }

    /// Settings for tests: loopback on port 0 everywhere, data in `dir`.
    pub fn for_test(dir: &std::path::Path) -> Config {
        let any = "127.0.0.1:0".parse().expect("literal");
        Config {
            http: any,
            rtmp: any,
            webrtc_udp: "0.0.0.0:0".parse().expect("literal"),
            public_ips: Vec::new(),
            data_dir: dir.to_path_buf(),
            database_url: format!("sqlite://{}", dir.join("onair.db").display()),
            ice_servers: Vec::new(),
            turn_secret: None,
            offer_rate: None,
            max_viewers: crate::sfu::MAX_PEERS,
            webrtc_engine: std::env::var("ONAIR_TEST_WEBRTC_ENGINE")
                .ok()
                .and_then(|e| clap::ValueEnum::from_str(&e, true).ok())
                .unwrap_or_default(),
            // Two at least, so every test crosses shards.
            webrtc_shards: std::env::var("ONAIR_TEST_WEBRTC_SHARDS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(2),
            turn: None,
            turns: None,
            turn_relay_ports: onair_turn::DEFAULT_RELAY_PORTS,
            turn_allow_peers: Vec::new(),
            trusted_proxies: crate::net::TrustedProxies::default(),
            fault_injection: false,
            hls: crate::hls::HlsConfig::default(),
            mail: crate::auth::MailConfig::default(),
            accounts: crate::auth::AccountLimits::default(),
            oidc: Vec::new(),
            icecast: any,
            hooks: crate::hooks::HookConfig::default(),
            tls: crate::tls::TlsConfig::default(),
            access_log: false,
            metrics_listen: None,
            metrics_token: None,
            object_store: crate::store::StoreUrl::Dir(dir.to_path_buf()),
            redis_url: None,
            node_url: None,
            node_id: None,
            role: Role::All,
            pull_linger: DEFAULT_PULL_LINGER,
        }
    }
}

/// `MIN-MAX`, both non-zero, MIN <= MAX.
fn parse_port_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-')?;
    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a != 0 && a <= b).then_some((a, b))
}

/// One fan-out shard per core the process may run on.
fn default_shards() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(crate::sfu::shard::MAX_SHARDS)
}

#[cfg(test)]
mod tests;

/// `--node-url` as other servers and clients use it: `http(s)://HOST[:PORT]`
/// with nothing after the authority but an optional `/`.
fn node_url(url: &str) -> Option<String> {
    let url = url.trim_end_matches('/');
    let (scheme, rest) = url.split_once("://")?;
    let ok = matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && !rest.contains(['/', '?', '#', '@', ' '])
        && rest.parse::<axum::http::uri::Authority>().is_ok();
    ok.then(|| url.to_string())
}

#[cfg(test)]
mod node_url_tests {
    #[test]
    fn node_urls_are_an_origin() {
        assert_eq!(
            super::node_url("http://10.0.0.5:8080/").as_deref(),
            Some("http://10.0.0.5:8080")
        );
        assert!(super::node_url("https://edge-1.example.com").is_some());
        for bad in [
            "10.0.0.5:8080",
            "ftp://x",
            "http://",
            "http://x/path",
            "http://u@x",
            "http://x?q",
        ] {
            assert_eq!(super::node_url(bad), None, "{bad}");
        }
    }
}
