//! Settings for the limits on accounts and chat sockets that an operator
//! (or a load test, from one address) may need to move.

use clap::Args;

/// Registrations per client address per hour (all at once if need be):
/// a household or a class behind one address signing up together fits; a
/// script making accounts in bulk gets 429. Each account costs a password
/// hash, a user row and a channel.
pub const DEFAULT_REGISTER_PER_HOUR: u32 = 20;
/// Chat WebSockets from one client address. A viewer has one per open tab;
/// an office or a campus behind one NAT has dozens of viewers.
pub const DEFAULT_CHAT_SOCKETS_PER_HOST: usize = 64;
/// Chat WebSockets in all. Each costs a task, an 8 KiB read buffer, the
/// frames queued to it and a room subscription: ~20 KiB idle, so 20 000
/// stay under half a GB even with their TCP buffers.
pub const DEFAULT_CHAT_SOCKETS: usize = 20_000;

#[derive(Debug, Args, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct AccountArgs {
    /// Account registrations per client address per hour; 0 = unlimited
    /// (load tests).
    #[arg(
        long,
        env = "ONAIR_REGISTER_PER_HOUR",
        global = true,
        default_value = "20"
    )]
    pub register_per_hour: Option<u32>,
    /// Chat WebSockets one client address may hold open.
    #[arg(
        long,
        env = "ONAIR_CHAT_SOCKETS_PER_HOST",
        global = true,
        default_value = "64"
    )]
    pub chat_sockets_per_host: Option<usize>,
    /// Chat WebSockets open in all.
    #[arg(
        long,
        env = "ONAIR_CHAT_SOCKETS",
        global = true,
        default_value = "20000"
    )]
    pub chat_sockets: Option<usize>,
    /// Chatting and streaming need a verified email address (the operator
    /// also sets `--smtp-url`, or users cannot verify one). Channels made
    /// by the operator stream regardless.
    #[arg(
        long,
        env = "ONAIR_REQUIRE_VERIFIED_EMAIL",
        global = true,
        default_value = "false",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub require_verified_email: Option<bool>,
    /// Who may create an account: `open` (anyone), `invite` (with a
    /// single-use invite link an admin made) or `closed` (accounts come
    /// from `onair user create` only).
    #[arg(
        long,
        env = "ONAIR_REGISTRATION",
        global = true,
        default_value = "open",
        value_enum
    )]
    pub registration: Option<Registration>,
    /// New accounts get the broadcaster role and may stream at once.
    /// Without it they are viewers: they chat and like, and stream once an
    /// admin grants the role (or an invite carried it).
    #[arg(
        long,
        env = "ONAIR_OPEN_STREAMING",
        global = true,
        default_value = "false",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub open_streaming: Option<bool>,
}

/// `--registration`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    #[default]
    Open,
    Invite,
    Closed,
}

/// Resolved [`AccountArgs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountLimits {
    /// 0: unlimited.
    pub register_per_hour: u32,
    pub chat_sockets_per_host: usize,
    pub chat_sockets: usize,
    pub require_verified_email: bool,
    pub registration: Registration,
    pub open_streaming: bool,
}

impl Default for AccountLimits {
    fn default() -> Self {
        AccountLimits {
            register_per_hour: DEFAULT_REGISTER_PER_HOUR,
            chat_sockets_per_host: DEFAULT_CHAT_SOCKETS_PER_HOST,
            chat_sockets: DEFAULT_CHAT_SOCKETS,
            require_verified_email: false,
            registration: Registration::Open,
            open_streaming: false,
        }
    }
}

impl AccountArgs {
    /// Flags and environment first, then the file's keys, then defaults.
    pub fn resolve(&self, file: &AccountArgs) -> AccountLimits {
        let d = AccountLimits::default();
        AccountLimits {
            register_per_hour: self
                .register_per_hour
                .or(file.register_per_hour)
                .unwrap_or(d.register_per_hour),
            chat_sockets_per_host: self
                .chat_sockets_per_host
                .or(file.chat_sockets_per_host)
                .unwrap_or(d.chat_sockets_per_host)
                .max(1),
            chat_sockets: self
                .chat_sockets
                .or(file.chat_sockets)
                .unwrap_or(d.chat_sockets)
                .max(1),
            require_verified_email: self
                .require_verified_email
                .or(file.require_verified_email)
                .unwrap_or(d.require_verified_email),
            registration: self
                .registration
                .or(file.registration)
                .unwrap_or(d.registration),
            open_streaming: self
                .open_streaming
                .or(file.open_streaming)
                .unwrap_or(d.open_streaming),
        }
    }
}
