//! Settings from flags, environment and an optional TOML file, in that order
//! of precedence, with the contract's defaults.

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

pub const DEFAULT_HTTP: &str = "0.0.0.0:8080";
pub const DEFAULT_RTMP: &str = "0.0.0.0:1935";
pub const DEFAULT_WEBRTC_UDP: &str = "0.0.0.0:8189";
pub const DEFAULT_DATA_DIR: &str = "./data";

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

#[derive(Debug, Args, Clone, Default)]
pub struct GlobalArgs {
    /// `text` (default) or `json`: one JSON object per line, for log
    /// collectors. Flags and env only (logging starts before the file is
    /// read).
    #[arg(long, env = "ONAIR_LOG_FORMAT", global = true, value_parser = ["text", "json"])]
    pub log_format: Option<String>,
    /// Optional TOML file with the same keys as the long flags (`http = "..."`).
    #[arg(long, env = "ONAIR_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Folder for the SQLite database and recordings.
    #[arg(long, env = "ONAIR_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://...` or `postgres://...`; defaults to `sqlite://<data-dir>/onair.db`.
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct ServeArgs {
    /// HTTP: API, WHIP/WHEP, HLS, web UI, /metrics.
    #[arg(long, env = "ONAIR_HTTP", global = true)]
    pub http: Option<SocketAddr>,
    /// RTMP ingest.
    #[arg(long, env = "ONAIR_RTMP", global = true)]
    pub rtmp: Option<SocketAddr>,
    /// WebRTC media: every peer on this one UDP port.
    #[arg(long, env = "ONAIR_WEBRTC_UDP", global = true)]
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
    /// UDP port range for the built-in relay's relayed addresses, `MIN-MAX`.
    /// Default 49152-65535.
    #[arg(long, env = "ONAIR_TURN_RELAY_PORTS", global = true)]
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
    pub turn_allow_peer: Vec<crate::net::Cidr>,
    /// WHIP/WHEP offers per second per client address (bursts of 4x);
    /// 0 = unlimited, for load tests. Default 5.
    #[arg(long, env = "ONAIR_OFFER_RATE", global = true)]
    pub offer_rate: Option<f64>,
    /// Reverse proxies (CIDR ranges, repeat or comma-separate) whose
    /// `Forwarded` / `X-Forwarded-For` headers name the client. Without it,
    /// the socket's address is the client.
    #[arg(
        long,
        env = "ONAIR_TRUSTED_PROXIES",
        value_delimiter = ',',
        global = true
    )]
    pub trusted_proxies: Vec<crate::net::Cidr>,
    /// One log line per HTTP request (target `onair::access`): method,
    /// path (session ids and query values that may be secrets masked),
    /// status, bytes, milliseconds, client.
    #[arg(long, env = "ONAIR_ACCESS_LOG", global = true)]
    pub access_log: bool,
    /// Tests only: lets publishers' marked packets (WHIP) and commands
    /// (RTMP) panic the server, to prove that fault isolation holds. Never
    /// turn it on in production.
    #[arg(long, env = "ONAIR_FAULT_INJECTION", hide = true, global = true)]
    pub fault_injection: bool,
    #[command(flatten)]
    pub hls: crate::hls::HlsArgs,
    #[command(flatten)]
    pub mail: crate::auth::MailArgs,
    #[command(flatten)]
    pub accounts: crate::auth::AccountArgs,
    #[command(flatten)]
    pub icecast: crate::icecast::IcecastArgs,
    #[command(flatten)]
    pub hooks: crate::hooks::HookArgs,
    #[command(flatten)]
    pub tls: crate::tls::TlsArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
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
    /// Exit 0 when the server on `--http` (this host) answers `/healthz`
    /// with 200 within 5 s, 1 otherwise: for container health checks.
    Health,
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create a user (and their channel, named after them); prints the
    /// channel's stream key. An existing channel of that name with no owner
    /// is given to the new user.
    Create {
        name: String,
        /// admin, moderator, broadcaster or viewer.
        #[arg(long, default_value = "viewer")]
        role: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChannelAction {
    /// Create a channel and print its stream key.
    Create { name: String },
    /// Print one channel a line: name, created-at (RFC 3339).
    List,
    /// Turn recording of a channel's broadcasts on or off (default on).
    Recording {
        name: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
}

/// The TOML file: every key optional, same names as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    http: Option<SocketAddr>,
    rtmp: Option<SocketAddr>,
    webrtc_udp: Option<SocketAddr>,
    #[serde(default)]
    public_ip: Vec<IpAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    #[serde(default)]
    ice_server: Vec<String>,
    turn_secret: Option<String>,
    offer_rate: Option<f64>,
    turn: Option<SocketAddr>,
    turn_relay_ports: Option<String>,
    #[serde(default)]
    turn_allow_peer: Vec<String>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    hls_part_ms: Option<u32>,
    hls_segment_ms: Option<u32>,
    recording: Option<bool>,
    retention_max_age_hours: Option<u64>,
    retention_max_size_mb: Option<u64>,
    min_free_disk: Option<crate::hls::disk::MinFreeDisk>,
    register_per_hour: Option<u32>,
    chat_sockets_per_host: Option<usize>,
    chat_sockets: Option<usize>,
    icecast: Option<SocketAddr>,
    #[serde(default)]
    webhook: Vec<String>,
    webhook_secret: Option<String>,
    #[serde(default)]
    webhook_events: Vec<String>,
    webhook_timeout: Option<String>,
    webhook_fail: Option<String>,
    webhook_peak_interval: Option<String>,
    public_url: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default)]
    acme_domain: Vec<String>,
    acme_email: Option<String>,
    acme_directory: Option<String>,
    acme_ca_root: Option<PathBuf>,
    https: Option<SocketAddr>,
    rtmps: Option<SocketAddr>,
    access_log: Option<bool>,
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
    /// The built-in TURN relay's address (UDP and TCP), if it runs.
    pub turn: Option<SocketAddr>,
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
    /// Icecast source ingest and plain listeners.
    pub icecast: SocketAddr,
    pub hooks: crate::hooks::HookConfig,
    /// HTTPS and RTMPS, when a certificate is configured.
    pub tls: crate::tls::TlsConfig,
    /// See `--access-log`.
    pub access_log: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("bad config file {0}: {1}")]
    Parse(PathBuf, toml::de::Error),
    #[error("--turn needs --turn-secret (ONAIR_TURN_SECRET): the relay only accepts credentials signed with it")]
    TurnWithoutSecret,
    #[error("bad --turn-relay-ports {0:?}: expected MIN-MAX, e.g. 49152-65535")]
    TurnRelayPorts(String),
    #[error("bad trusted-proxies in the config file: {0}")]
    TrustedProxies(#[from] crate::net::CidrError),
    #[error("bad turn-allow-peer in the config file: {0}")]
    TurnAllowPeer(crate::net::CidrError),
    #[error("{0}")]
    Hooks(#[from] crate::hooks::HookConfigError),
    #[error("bad {0} in the config file: {1}")]
    Duration(&'static str, String),
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
}

impl Config {
    pub fn resolve(global: &GlobalArgs, serve: &ServeArgs) -> Result<Config, ConfigError> {
        let file = match &global.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::Read(path.clone(), e))?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| ConfigError::Parse(path.clone(), e))?
            }
            None => FileConfig::default(),
        };
        let parse = |s: &str| s.parse::<SocketAddr>().expect("default address parses");
        let turn = serve.turn.or(file.turn);
        let turn_secret = serve.turn_secret.clone().or(file.turn_secret);
        if turn.is_some() && turn_secret.as_deref().is_none_or(str::is_empty) {
            return Err(ConfigError::TurnWithoutSecret);
        }
        let turn_relay_ports = match serve.turn_relay_ports.clone().or(file.turn_relay_ports) {
            None => onair_turn::DEFAULT_RELAY_PORTS,
            Some(r) => parse_port_range(&r).ok_or(ConfigError::TurnRelayPorts(r))?,
        };
        let trusted_proxies = if serve.trusted_proxies.is_empty() {
            file.trusted_proxies
                .iter()
                .map(|c| c.parse())
                .collect::<Result<Vec<_>, _>>()?
        } else {
            serve.trusted_proxies.clone()
        };
        let turn_allow_peers = if serve.turn_allow_peer.is_empty() {
            file.turn_allow_peer
                .iter()
                .map(|c| c.parse())
                .collect::<Result<Vec<_>, _>>()
                .map_err(ConfigError::TurnAllowPeer)?
        } else {
            serve.turn_allow_peer.clone()
        };
        let file_duration = |key: &'static str, v: &Option<String>| {
            v.as_deref()
                .map(crate::hooks::parse_duration)
                .transpose()
                .map_err(|e| ConfigError::Duration(key, e))
        };
        let hooks = serve.hooks.resolve(&crate::hooks::HookArgs {
            webhook: file.webhook.clone(),
            webhook_secret: file.webhook_secret.clone(),
            webhook_events: file.webhook_events.clone(),
            webhook_timeout: file_duration("webhook-timeout", &file.webhook_timeout)?,
            webhook_fail: file.webhook_fail.clone(),
            webhook_peak_interval: file_duration(
                "webhook-peak-interval",
                &file.webhook_peak_interval,
            )?,
            public_url: file.public_url.clone(),
        })?;
        let tls = serve.tls.resolve(&crate::tls::TlsArgs {
            tls_cert: file.tls_cert.clone(),
            tls_key: file.tls_key.clone(),
            acme_domain: file.acme_domain.clone(),
            acme_email: file.acme_email.clone(),
            acme_directory: file.acme_directory.clone(),
            acme_ca_root: file.acme_ca_root.clone(),
            https: file.https,
            rtmps: file.rtmps,
            ..Default::default()
        })?;
        let data_dir = global
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database_url = global
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("onair.db").display()));
        Ok(Config {
            http: serve
                .http
                .or(file.http)
                .unwrap_or_else(|| parse(DEFAULT_HTTP)),
            rtmp: serve
                .rtmp
                .or(file.rtmp)
                .unwrap_or_else(|| parse(DEFAULT_RTMP)),
            webrtc_udp: serve
                .webrtc_udp
                .or(file.webrtc_udp)
                .unwrap_or_else(|| parse(DEFAULT_WEBRTC_UDP)),
            public_ips: if serve.public_ip.is_empty() {
                file.public_ip
            } else {
                serve.public_ip.clone()
            },
            data_dir,
            database_url,
            ice_servers: if serve.ice_server.is_empty() {
                file.ice_server
            } else {
                serve.ice_server.clone()
            },
            turn_secret,
            offer_rate: serve.offer_rate.or(file.offer_rate),
            turn,
            turn_relay_ports,
            turn_allow_peers,
            trusted_proxies: crate::net::TrustedProxies::new(trusted_proxies),
            fault_injection: serve.fault_injection,
            hls: crate::hls::HlsArgs {
                hls_part_ms: serve.hls.hls_part_ms.or(file.hls_part_ms),
                hls_segment_ms: serve.hls.hls_segment_ms.or(file.hls_segment_ms),
                recording: serve.hls.recording.or(file.recording),
                retention_max_age_hours: serve
                    .hls
                    .retention_max_age_hours
                    .or(file.retention_max_age_hours),
                retention_max_size_mb: serve
                    .hls
                    .retention_max_size_mb
                    .or(file.retention_max_size_mb),
                min_free_disk: serve.hls.min_free_disk.or(file.min_free_disk),
            }
            .resolve(),
            mail: serve.mail.resolve(),
            accounts: serve.accounts.resolve(&crate::auth::AccountArgs {
                register_per_hour: file.register_per_hour,
                chat_sockets_per_host: file.chat_sockets_per_host,
                chat_sockets: file.chat_sockets,
            }),
            icecast: serve
                .icecast
                .icecast
                .or(file.icecast)
                .unwrap_or_else(|| parse(crate::icecast::DEFAULT_ICECAST)),
            hooks,
            tls,
            access_log: serve.access_log || file.access_log.unwrap_or(false),
        })
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
            turn: None,
            turn_relay_ports: onair_turn::DEFAULT_RELAY_PORTS,
            turn_allow_peers: Vec::new(),
            trusted_proxies: crate::net::TrustedProxies::default(),
            fault_injection: false,
            hls: crate::hls::HlsConfig::default(),
            mail: crate::auth::MailConfig::default(),
            accounts: crate::auth::AccountLimits::default(),
            icecast: any,
            hooks: crate::hooks::HookConfig::default(),
            tls: crate::tls::TlsConfig::default(),
            access_log: false,
        }
    }
}

/// `MIN-MAX`, both non-zero, MIN <= MAX.
fn parse_port_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-')?;
    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a != 0 && a <= b).then_some((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn hls_settings_come_from_the_file_unless_a_flag_says_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("onair.toml");
        std::fs::write(
            &path,
            "hls-part-ms = 300\nhls-segment-ms = 4000\nrecording = false\n\
             retention-max-age-hours = 24\nretention-max-size-mb = 100\n\
             min-free-disk = \"2GiB\"\n",
        )
        .unwrap();
        let config = path.to_str().unwrap();
        let args = Args::parse_from(["onair", "--config", config, "--hls-part-ms", "250"]);
        let c = Config::resolve(&args.global, &args.serve).unwrap();
        assert_eq!(c.hls.part_ms, 250, "the flag beats the file");
        assert_eq!(c.hls.segment_ms, 4000);
        assert!(!c.hls.recording);
        assert_eq!(
            c.hls.retention_max_age,
            Some(std::time::Duration::from_secs(24 * 3600))
        );
        assert_eq!(c.hls.retention_max_bytes, Some(100 << 20));
        assert_eq!(
            c.hls.min_free_disk,
            Some(crate::hls::disk::MinFreeDisk::Bytes(2 << 30))
        );
        let args = Args::parse_from(["onair", "--config", config, "--min-free-disk", "7%"]);
        let c = Config::resolve(&args.global, &args.serve).unwrap();
        assert_eq!(
            c.hls.min_free_disk,
            Some(crate::hls::disk::MinFreeDisk::Percent(7.0))
        );
        assert!(Args::try_parse_from(["onair", "--min-free-disk", "lots"]).is_err());
    }

    #[test]
    fn turn_allow_peer_from_flags_or_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("onair.toml");
        std::fs::write(&path, "turn-allow-peer = [\"10.0.0.0/8\", \"fd00::/8\"]\n").unwrap();
        let config = path.to_str().unwrap();
        let args = Args::parse_from(["onair", "--config", config]);
        let c = Config::resolve(&args.global, &args.serve).unwrap();
        let shown: Vec<String> = c.turn_allow_peers.iter().map(|c| c.to_string()).collect();
        assert_eq!(shown, ["10.0.0.0/8", "fd00::/8"]);
        let args = Args::parse_from([
            "onair",
            "--config",
            config,
            "--turn-allow-peer",
            "127.0.0.1,192.168.0.0/16",
            "--turn-allow-peer",
            "::1",
        ]);
        let c = Config::resolve(&args.global, &args.serve).unwrap();
        let shown: Vec<String> = c.turn_allow_peers.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            shown,
            ["127.0.0.1/32", "192.168.0.0/16", "::1/128"],
            "flags win"
        );
        assert!(Args::try_parse_from(["onair", "--turn-allow-peer", "10.0.0.0/40"]).is_err());
        std::fs::write(&path, "turn-allow-peer = [\"nonsense\"]\n").unwrap();
        let args = Args::parse_from(["onair", "--config", config]);
        assert!(matches!(
            Config::resolve(&args.global, &args.serve),
            Err(ConfigError::TurnAllowPeer(_))
        ));
    }

    #[test]
    fn webhooks_from_the_file_with_durations_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("onair.toml");
        std::fs::write(
            &path,
            "webhook = [\"https://app/hook\"]\nwebhook-secret = \"k\"\n\
             webhook-timeout = \"750ms\"\nwebhook-fail = \"closed\"\n\
             webhook-events = [\"publish\"]\n",
        )
        .unwrap();
        let config = path.to_str().unwrap();
        let args = Args::parse_from(["onair", "--config", config]);
        let c = Config::resolve(&args.global, &args.serve).unwrap();
        assert_eq!(c.hooks.urls, ["https://app/hook"]);
        assert_eq!(c.hooks.timeout, std::time::Duration::from_millis(750));
        assert!(!c.hooks.fail_open);
        assert_eq!(c.hooks.events, ["publish"]);
        std::fs::write(&path, "webhook = [\"https://app/hook\"]\n").unwrap();
        let args = Args::parse_from(["onair", "--config", config]);
        assert!(matches!(
            Config::resolve(&args.global, &args.serve),
            Err(ConfigError::Hooks(crate::hooks::HookConfigError::NoSecret))
        ));
        std::fs::write(&path, "webhook-timeout = \"soon\"\n").unwrap();
        let args = Args::parse_from(["onair", "--config", config]);
        assert!(matches!(
            Config::resolve(&args.global, &args.serve),
            Err(ConfigError::Duration("webhook-timeout", _))
        ));
    }
}
