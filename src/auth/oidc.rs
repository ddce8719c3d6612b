//! OpenID Connect sign-in: the providers an operator configures, and the
//! short-lived state of sign-ins in flight. Discovery, the code exchange and
//! ID token checks use the `openidconnect` crate (`http::oidc` drives them).
//!
//! Everything a stranger can make the server remember here is bounded: the
//! sign-ins started and not finished (each expires, and the table has a
//! cap), the sign-ups waiting for a username, and the rate of starts per
//! address.

use super::rate::{Rate, RateLimiter};
use clap::Args;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A sign-in has this long between leaving for the provider and coming
/// back; people who take longer start again.
pub const FLOW_TTL: Duration = Duration::from_secs(10 * 60);
/// Sign-ins in flight at once (each ~300 bytes); past it new ones get 503
/// until old ones finish or expire. Far above what real users start in ten
/// minutes, far below what hurts memory.
pub const MAX_FLOWS: usize = 20_000;
/// A new user picks a username within this time of coming back.
pub const SIGNUP_TTL: Duration = Duration::from_secs(15 * 60);
/// Sign-ups waiting for a username.
pub const MAX_SIGNUPS: usize = 5_000;
/// Sign-ins started per client address: a person clicks a few times, a
/// script filling the flow table gets 429.
pub const STARTS_PER_HOST: Rate = Rate {
    burst: 20,
    every: Duration::from_secs(6),
};
/// The provider's discovery document and keys are fetched again after this
/// (keys rotate), or at once when an ID token names a key we lack.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// Each call to a provider (discovery, token exchange) gives up after this.
pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of the state cookie's value and the state parameter.
const STATE_BYTES: usize = 32;

#[derive(Debug, Args, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct OidcArgs {
    /// An OpenID Connect provider for "Sign in with ..." (repeatable):
    /// `id=google,name=Google,issuer=https://accounts.google.com,client-id=ID`
    /// plus `client-secret=SECRET` (or the variable
    /// `ONAIR_OIDC_SECRET_<ID>`, upper case, `-` as `_`) and optionally
    /// `scopes=openid email profile`. The provider's redirect URI is
    /// `PUBLIC_URL/auth/oidc/ID/callback`.
    #[arg(
        long,
        env = "ONAIR_OIDC_PROVIDER",
        value_delimiter = ';',
        global = true
    )]
    pub oidc_provider: Vec<String>,
}

/// One configured provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSpec {
    /// In URLs and the identities table: `[a-z0-9-]{1,32}`.
    pub id: String,
    /// On the button.
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub scopes: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad --oidc-provider {spec:?}: {why}")]
pub struct ProviderSpecError {
    spec: String,
    why: String,
}

impl OidcArgs {
    /// The flags' providers, else the file's. Secrets missing from a spec
    /// come from `env`.
    pub fn resolve(
        &self,
        file: &OidcArgs,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<ProviderSpec>, ProviderSpecError> {
        let specs = if self.oidc_provider.is_empty() {
            &file.oidc_provider
        } else {
            &self.oidc_provider
        };
        let mut out: Vec<ProviderSpec> = Vec::new();
        for s in specs.iter().filter(|s| !s.trim().is_empty()) {
            let p = ProviderSpec::parse(s, &env)?;
            if out.iter().any(|o| o.id == p.id) {
                return Err(ProviderSpecError {
                    spec: mask_secret(s),
                    why: format!("the id {:?} is used twice", p.id),
                });
            }
            out.push(p);
        }
        Ok(out)
    }
}

/// A spec with its `client-secret` value hidden, for errors and
/// `onair config check`.
pub fn mask_secret(spec: &str) -> String {
    spec.split(',')
        .map(|part| match part.split_once('=') {
            Some((k, _)) if k.trim() == "client-secret" => "client-secret=(secret)".to_string(),
            _ => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl ProviderSpec {
    pub fn parse(
        spec: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ProviderSpec, ProviderSpecError> {
        let err = |why: String| ProviderSpecError {
            spec: mask_secret(spec),
            why,
        };
        let mut fields: HashMap<&str, &str> = HashMap::new();
        for part in spec.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| err(format!("{part:?} is not key=value")))?;
            let k = k.trim();
            if ![
                "id",
                "name",
                "issuer",
                "client-id",
                "client-secret",
                "scopes",
            ]
            .contains(&k)
            {
                return Err(err(format!("unknown key {k:?}")));
            }
            if fields.insert(k, v.trim()).is_some() {
                return Err(err(format!("{k} given twice")));
            }
        }
        let need = |k: &str| {
            fields
                .get(k)
                .filter(|v| !v.is_empty())
                .map(|v| v.to_string())
                .ok_or_else(|| err(format!("{k}= is missing")))
        };
        let id = need("id")?;
        let ok_id = id.len() <= 32
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok_id {
            return Err(err("id must be 1-32 of a-z, 0-9 and '-'".into()));
        }
        let issuer = need("issuer")?;
        match openidconnect::url::Url::parse(&issuer) {
            Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => {}
            _ => return Err(err("issuer must be an http(s) URL".into())),
        }
        let name = fields
            .get("name")
            .filter(|v| !v.is_empty())
            .map_or_else(|| id.clone(), |v| v.to_string());
        if name.chars().count() > 64 {
            return Err(err("name is longer than 64 characters".into()));
        }
        let secret_var = format!("ONAIR_OIDC_SECRET_{}", id.to_uppercase().replace('-', "_"));
        let client_secret = fields
            .get("client-secret")
            .map(|v| v.to_string())
            .or_else(|| env(&secret_var))
            .filter(|v| !v.is_empty());
        let mut scopes: Vec<String> = fields
            .get("scopes")
            .map_or("openid email profile", |v| v)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".into());
        }
        Ok(ProviderSpec {
            name,
            issuer,
            client_id: need("client-id")?,
            client_secret,
            scopes,
            id,
        })
    }
}

/// A sign-in between its start and the provider sending the user back.
#[derive(Debug, Clone)]
pub struct Flow {
    pub provider: String,
    pub pkce_verifier: String,
    pub nonce: String,
    /// The redirect URI the authorization request named; the token request
    /// must name the same.
    pub redirect_uri: String,
    /// Signed in and linking this identity to that account.
    pub link_user: Option<i64>,
    /// A path on this site to land on afterwards.
    pub next: String,
}

/// Who came back from a provider with no account here yet: they pick a
/// username, then the account is made.
#[derive(Debug, Clone)]
pub struct PendingSignup {
    pub provider: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub next: String,
}

/// Entries that expire, with a cap; keyed by a random token's hash.
struct Expiring<T> {
    ttl: Duration,
    cap: usize,
    entries: HashMap<String, (Instant, T)>,
}

impl<T> Expiring<T> {
    fn new(ttl: Duration, cap: usize) -> Self {
        Expiring {
            ttl,
            cap,
            entries: HashMap::new(),
        }
    }

    fn insert(&mut self, key: String, v: T, now: Instant) -> bool {
        if self.entries.len() >= self.cap {
            let ttl = self.ttl;
            self.entries
                .retain(|_, (at, _)| now.saturating_duration_since(*at) < ttl);
        }
        if self.entries.len() >= self.cap {
            return false;
        }
        self.entries.insert(key, (now, v));
        true
    }

    fn take(&mut self, key: &str, now: Instant) -> Option<T> {
        let (at, v) = self.entries.remove(key)?;
        (now.saturating_duration_since(at) < self.ttl).then_some(v)
    }

    fn peek(&self, key: &str, now: Instant) -> Option<&T> {
        let (at, v) = self.entries.get(key)?;
        (now.saturating_duration_since(*at) < self.ttl).then_some(v)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlowError {
    #[error("too many sign-ins in progress; try again in a minute")]
    Full,
    #[error("too many sign-ins from this address; try again later")]
    RateLimited(Duration),
}

/// The state of sign-ins in flight and sign-ups pending.
pub struct Flows {
    flows: Mutex<Expiring<Flow>>,
    signups: Mutex<Expiring<PendingSignup>>,
    starts: RateLimiter<IpAddr>,
}

impl Default for Flows {
    fn default() -> Self {
        Flows {
            flows: Mutex::new(Expiring::new(FLOW_TTL, MAX_FLOWS)),
            signups: Mutex::new(Expiring::new(SIGNUP_TTL, MAX_SIGNUPS)),
            starts: RateLimiter::new("oidc_starts_per_host", STARTS_PER_HOST),
        }
    }
}

/// A random URL-safe token.
pub fn random_token() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut b = [0u8; STATE_BYTES];
    rand::thread_rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl Flows {
    /// Whether `host` may start another sign-in now.
    pub fn admit(&self, host: IpAddr, now: Instant) -> Result<(), FlowError> {
        self.starts
            .check(&host, now)
            .map_err(FlowError::RateLimited)
    }

    /// Remembers a sign-in under `state` (from [`random_token`]).
    pub fn remember(&self, state: &str, flow: Flow, now: Instant) -> Result<(), FlowError> {
        let mut flows = self.flows.lock().unwrap_or_else(|e| e.into_inner());
        if !flows.insert(super::token_hash(state), flow, now) {
            crate::metrics::limit_hit("oidc_flows");
            return Err(FlowError::Full);
        }
        Ok(())
    }

    /// The sign-in `state` names, once: a second callback with it finds
    /// nothing.
    pub fn finish(&self, state: &str, now: Instant) -> Option<Flow> {
        let mut flows = self.flows.lock().unwrap_or_else(|e| e.into_inner());
        flows.take(&super::token_hash(state), now)
    }

    /// Remembers a sign-up waiting for a username; returns its token.
    pub fn pend(&self, signup: PendingSignup, now: Instant) -> Result<String, FlowError> {
        let token = random_token();
        let mut signups = self.signups.lock().unwrap_or_else(|e| e.into_inner());
        if !signups.insert(super::token_hash(&token), signup, now) {
            crate::metrics::limit_hit("oidc_signups");
            return Err(FlowError::Full);
        }
        Ok(token)
    }

    pub fn pending(&self, token: &str, now: Instant) -> Option<PendingSignup> {
        let signups = self.signups.lock().unwrap_or_else(|e| e.into_inner());
        signups.peek(&super::token_hash(token), now).cloned()
    }

    /// Ends a pending sign-up once its account exists.
    pub fn signed_up(&self, token: &str, now: Instant) {
        let mut signups = self.signups.lock().unwrap_or_else(|e| e.into_inner());
        signups.take(&super::token_hash(token), now);
    }
}

/// A path on this site to go to after signing in: only local absolute
/// paths, so a crafted link cannot send a user elsewhere.
pub fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && p.len() <= 512
                && !p.contains(['\\', '\r', '\n', '\t'])
                && !p.chars().any(char::is_control) =>
        {
            p.to_string()
        }
        _ => "/".into(),
    }
}

/// A username for a new account from the provider's hints: the preferred
/// username or the email's local part, cut to the channel-name charset.
/// Only a suggestion; the user picks.
pub fn suggest_username(preferred: Option<&str>, email: Option<&str>) -> String {
    let raw = preferred
        .or_else(|| email.and_then(|e| e.split('@').next()))
        .unwrap_or("");
    let mut name: String = raw
        .to_lowercase()
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '_' | '-' => c,
            _ => '-',
        })
        .collect();
    name = name.trim_matches(['-', '_']).chars().take(32).collect();
    if super::check_username(&name).is_ok() {
        name
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn specs_parse_with_defaults_and_env_secrets() {
        let p = ProviderSpec::parse(
            "id=google,name=Google,issuer=https://accounts.google.com,client-id=abc",
            |k| (k == "ONAIR_OIDC_SECRET_GOOGLE").then(|| "s".to_string()),
        )
        .unwrap();
        assert_eq!(p.client_secret.as_deref(), Some("s"));
        assert_eq!(p.scopes, ["openid", "email", "profile"]);
        let p = ProviderSpec::parse(
            "id=kc-1,issuer=http://kc:8080/realms/x,client-id=c,client-secret=t,scopes=email",
            no_env,
        )
        .unwrap();
        assert_eq!(p.name, "kc-1");
        assert_eq!(p.client_secret.as_deref(), Some("t"));
        assert_eq!(p.scopes, ["openid", "email"]);
    }

    #[test]
    fn bad_specs_are_refused_without_showing_the_secret() {
        for bad in [
            "id=Google,issuer=https://a.b,client-id=c",
            "id=g,issuer=ftp://a.b,client-id=c",
            "id=g,issuer=https://a.b",
            "id=g,issuer=https://a.b,client-id=c,colour=red",
            "id=g,id=h,issuer=https://a.b,client-id=c",
            "id=g,issuer=https://a.b,client-id=c,client-secret=hunter2,nonsense",
        ] {
            let e = ProviderSpec::parse(bad, no_env).unwrap_err();
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
        let args = OidcArgs {
            oidc_provider: vec![
                "id=g,issuer=https://a.b,client-id=c".into(),
                "id=g,issuer=https://c.d,client-id=c".into(),
            ],
        };
        assert!(args.resolve(&OidcArgs::default(), no_env).is_err());
    }

    #[test]
    fn next_paths_stay_on_this_site() {
        assert_eq!(local_path(Some("/c/demo")), "/c/demo");
        for bad in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil.example",
            "javascript:alert(1)",
            "/a\nb",
        ] {
            assert_eq!(local_path(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn suggestions_are_valid_usernames_or_empty() {
        assert_eq!(suggest_username(Some("Ana María"), None), "ana-mar-a");
        assert_eq!(suggest_username(None, Some("bob.smith@x.org")), "bob-smith");
        assert_eq!(suggest_username(Some("admin"), None), "");
        assert_eq!(suggest_username(None, None), "");
    }

    fn flow() -> Flow {
        Flow {
            provider: "p".into(),
            pkce_verifier: "v".into(),
            nonce: "n".into(),
            redirect_uri: "http://x/cb".into(),
            link_user: None,
            next: "/".into(),
        }
    }

    #[test]
    fn a_state_works_once_and_expires() {
        let f = Flows::default();
        let t0 = Instant::now();
        let s = random_token();
        f.remember(&s, flow(), t0).unwrap();
        assert!(f.finish("forged", t0).is_none());
        assert!(f.finish(&s, t0).is_some());
        assert!(f.finish(&s, t0).is_none(), "a state is single-use");
        f.remember(&s, flow(), t0).unwrap();
        assert!(f.finish(&s, t0 + FLOW_TTL).is_none(), "expired");
    }

    #[test]
    fn the_flow_table_is_bounded_and_starts_are_rate_limited() {
        let f = Flows::default();
        let t0 = Instant::now();
        let refused = (0..MAX_FLOWS + 100)
            .filter(|_| f.remember(&random_token(), flow(), t0) == Err(FlowError::Full))
            .count();
        assert_eq!(refused, 100);
        // Expired entries make room again.
        assert!(f.remember(&random_token(), flow(), t0 + FLOW_TTL).is_ok());
        let one: IpAddr = [10, 1, 1, 1].into();
        let ok = (0..50).filter(|_| f.admit(one, t0).is_ok()).count();
        assert_eq!(ok, STARTS_PER_HOST.burst as usize);
        let other: IpAddr = [10, 1, 1, 2].into();
        assert!(f.admit(other, t0).is_ok(), "the limit is per address");
    }
}
