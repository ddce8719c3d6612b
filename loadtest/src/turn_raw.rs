//! A hostile TURN client: it takes the credentials any page gets (TURN
//! REST API, `EXPIRY:USER` and an HMAC of it with the shared secret),
//! allocates, then asks the relay for peers it must refuse (RFC 8656
//! section 9: loopback, RFC 1918, CGNAT, link-local, unspecified, IPv6
//! loopback and ULA) with CreatePermission and ChannelBind. It never sends
//! data to a peer: if the relay wrongly granted a permission, nothing
//! would leave this machine.

use onair_turn::stun::agent::TransactionId;
use onair_turn::stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
use onair_turn::stun::error_code::ErrorCodeAttribute;
use onair_turn::stun::integrity::MessageIntegrity;
use onair_turn::stun::message::{
    Getter, Message, MessageType, Method, Setter, CLASS_REQUEST, CLASS_SUCCESS_RESPONSE,
    METHOD_ALLOCATE, METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION, METHOD_REFRESH,
};
use onair_turn::stun::textattrs::TextAttribute;
use onair_turn::turn::proto::channum::ChannelNumber;
use onair_turn::turn::proto::lifetime::Lifetime;
use onair_turn::turn::proto::peeraddr::PeerAddress;
use onair_turn::turn::proto::reqtrans::RequestedTransport;
use onair_turn::turn::proto::PROTO_UDP;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::UdpSocket;

/// Peers a relay must refuse by default.
pub const FORBIDDEN: [&str; 7] = [
    "127.0.0.1:9",
    "10.0.0.1:9",
    "192.168.1.1:9",
    "172.16.0.1:9",
    "100.64.0.1:9",
    "169.254.1.1:9",
    "0.0.0.0:9",
];

/// What one client's round of requests got.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct TurnOutcome {
    pub allocated: bool,
    pub requests: u64,
    pub refused_403: u64,
    /// Requests the relay granted: each is a failure of its peer rules.
    pub granted: u64,
    /// Requests refused with another code, or not answered.
    pub other: u64,
    pub error: Option<String>,
}

struct Client {
    socket: UdpSocket,
    server: SocketAddr,
    username: String,
    password: String,
    realm: String,
    nonce: String,
}

/// A request's attributes, made afresh for each transmission.
type Attrs = dyn Fn() -> Vec<Box<dyn Setter>> + Sync;

enum Answer {
    Ok,
    Refused(u16),
    None,
}

impl Client {
    fn key(&self) -> MessageIntegrity {
        MessageIntegrity::new_long_term_integrity(
            self.username.clone(),
            self.realm.clone(),
            self.password.clone(),
        )
    }

    /// One request, authenticated once a nonce is known; retried once for
    /// a (new) nonce.
    async fn request(&mut self, method: Method, attrs: &Attrs) -> anyhow::Result<Answer> {
        for _ in 0..3 {
            let m = self.build(method, attrs)?;
            let Some(answer) = self.transaction(&m).await else {
                return Ok(Answer::None);
            };
            if answer.typ.class == CLASS_SUCCESS_RESPONSE {
                return Ok(Answer::Ok);
            }
            let mut code = ErrorCodeAttribute::default();
            if code.get_from(&answer).is_err() {
                return Ok(Answer::Refused(0));
            }
            let code = code.code.0;
            if code == 401 || code == 438 {
                if let (Ok(n), Ok(r)) = (
                    TextAttribute::get_from_as(&answer, ATTR_NONCE),
                    TextAttribute::get_from_as(&answer, ATTR_REALM),
                ) {
                    let fresh = self.nonce.is_empty() || code == 438;
                    self.nonce = n.text;
                    self.realm = r.text;
                    if fresh {
                        continue;
                    }
                }
            }
            return Ok(Answer::Refused(code));
        }
        Ok(Answer::None)
    }

    /// The request, authenticated once a nonce is known.
    fn build(&self, method: Method, attrs: &Attrs) -> anyhow::Result<Message> {
        {
            let mut all: Vec<Box<dyn Setter>> = vec![
                Box::new(TransactionId::new()),
                Box::new(MessageType::new(method, CLASS_REQUEST)),
            ];
            all.extend(attrs());
            if !self.nonce.is_empty() {
                all.push(Box::new(TextAttribute::new(
                    ATTR_USERNAME,
                    self.username.clone(),
                )));
                all.push(Box::new(TextAttribute::new(ATTR_REALM, self.realm.clone())));
                all.push(Box::new(TextAttribute::new(ATTR_NONCE, self.nonce.clone())));
                all.push(Box::new(self.key()));
            }
            let mut m = Message::new();
            m.build(&all).map_err(|e| anyhow::anyhow!("stun: {e}"))?;
            Ok(m)
        }
    }

    async fn transaction(&self, m: &Message) -> Option<Message> {
        let mut buf = [0u8; 2048];
        for _ in 0..3 {
            self.socket.send_to(&m.raw, self.server).await.ok()?;
            let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
            while let Ok(Ok((n, _))) =
                tokio::time::timeout_at(deadline, self.socket.recv_from(&mut buf)).await
            {
                let mut answer = Message::new();
                answer.raw = buf[..n].to_vec();
                if answer.decode().is_ok() && answer.transaction_id == m.transaction_id {
                    return Some(answer);
                }
            }
        }
        None
    }
}

/// TURN REST API credentials for `user`, valid for an hour.
pub fn credentials(secret: &str, user: &str) -> (String, String) {
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 3600;
    let username = format!("{expiry}:{user}");
    let password = onair_turn::rest_password(secret, &username);
    (username, password)
}

/// From `from`, allocates on `server` and asks for every [`FORBIDDEN`]
/// peer with CreatePermission and ChannelBind, round after round, until
/// `dur` is up; then frees the allocation.
pub async fn forbidden_peers(
    from: IpAddr,
    server: SocketAddr,
    secret: &str,
    dur: Duration,
) -> TurnOutcome {
    let mut out = TurnOutcome::default();
    let socket = match UdpSocket::bind(SocketAddr::new(from, 0)).await {
        Ok(s) => s,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    let (username, password) = credentials(secret, "soak");
    let mut c = Client {
        socket,
        server,
        username,
        password,
        realm: String::new(),
        nonce: String::new(),
    };
    let alloc = || -> Vec<Box<dyn Setter>> {
        vec![Box::new(RequestedTransport {
            protocol: PROTO_UDP,
        })]
    };
    match c.request(METHOD_ALLOCATE, &alloc).await {
        Ok(Answer::Ok) => out.allocated = true,
        Ok(Answer::Refused(code)) => {
            out.error = Some(format!("allocate refused with {code}"));
            return out;
        }
        Ok(Answer::None) => {
            out.error = Some("allocate not answered".into());
            return out;
        }
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    }
    let peers: Vec<SocketAddr> = FORBIDDEN.iter().filter_map(|p| p.parse().ok()).collect();
    let deadline = tokio::time::Instant::now() + dur;
    let mut channel = 0x4000u16;
    'rounds: while tokio::time::Instant::now() < deadline {
        for peer in &peers {
            let p = *peer;
            let permission = move || -> Vec<Box<dyn Setter>> {
                vec![Box::new(PeerAddress {
                    ip: p.ip(),
                    port: p.port(),
                })]
            };
            let n = channel;
            channel = if channel >= 0x4FFF {
                0x4000
            } else {
                channel + 1
            };
            let bind = move || -> Vec<Box<dyn Setter>> {
                vec![
                    Box::new(ChannelNumber(n)),
                    Box::new(PeerAddress {
                        ip: p.ip(),
                        port: p.port(),
                    }),
                ]
            };
            for (method, attrs) in [
                (METHOD_CREATE_PERMISSION, &permission as &Attrs),
                (METHOD_CHANNEL_BIND, &bind as &Attrs),
            ] {
                if tokio::time::Instant::now() >= deadline {
                    break 'rounds;
                }
                out.requests += 1;
                match c.request(method, attrs).await {
                    Ok(Answer::Ok) => out.granted += 1,
                    Ok(Answer::Refused(403)) => out.refused_403 += 1,
                    _ => out.other += 1,
                }
            }
        }
        // A round is 18 requests; a few rounds a second is an attack that
        // costs the relay work without costing this machine's core.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let release = || -> Vec<Box<dyn Setter>> { vec![Box::new(Lifetime(Duration::ZERO))] };
    let _ = c.request(METHOD_REFRESH, &release).await;
    out
}
