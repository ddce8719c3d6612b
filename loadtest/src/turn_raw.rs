//! A TURN client that sends exactly what its caller says, over a real UDP
//! socket: Allocate, CreatePermission and ChannelBind with long-term
//! credentials (RFC 8656, RFC 8489 section 9.2), Send indications,
//! ChannelData, and whatever comes back. The `turn` crate's client hides
//! its requests behind `send_to`; an attacker does not. The relay's own
//! tests (turn/tests) drive it, and so does the soak's hostile client
//! ([`forbidden_peers`]): it takes the credentials any page gets (TURN
//! REST API, `EXPIRY:USER` and an HMAC of it with the shared secret),
//! allocates, then asks the relay for peers it must refuse (RFC 8656
//! section 9: loopback, RFC 1918, CGNAT, link-local, unspecified) with
//! CreatePermission and ChannelBind. It never sends data to a peer: if the
//! relay wrongly granted a permission, nothing would leave this machine.

use onair_turn::stun::agent::TransactionId;
use onair_turn::stun::attributes::{ATTR_MESSAGE_INTEGRITY, ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
use onair_turn::stun::error_code::ErrorCodeAttribute;
use onair_turn::stun::integrity::MessageIntegrity;
use onair_turn::stun::message::{
    Getter, Message, MessageType, Method, Setter, CLASS_INDICATION, CLASS_REQUEST,
    CLASS_SUCCESS_RESPONSE, METHOD_ALLOCATE, METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION,
    METHOD_DATA, METHOD_REFRESH, METHOD_SEND,
};
use onair_turn::stun::textattrs::TextAttribute;
use onair_turn::turn::proto::channum::ChannelNumber;
use onair_turn::turn::proto::data::Data;
use onair_turn::turn::proto::lifetime::Lifetime;
use onair_turn::turn::proto::peeraddr::PeerAddress;
use onair_turn::turn::proto::relayaddr::RelayedAddress;
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

/// An error response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub code: u16,
    /// It carried a MESSAGE-INTEGRITY that checks with our key.
    pub authenticated: bool,
}

/// What a peer's datagram came back as.
#[derive(Debug, PartialEq, Eq)]
pub enum Relayed {
    /// A Data indication, from this peer.
    Indication(SocketAddr, Vec<u8>),
    /// ChannelData on this channel.
    Channel(u16, Vec<u8>),
}

pub struct RawClient {
    pub socket: UdpSocket,
    server: SocketAddr,
    /// Transmissions of a request before it counts as unanswered, and the
    /// wait for an answer after each.
    tries: u32,
    rto: Duration,
    username: String,
    password: String,
    realm: String,
    nonce: String,
}

impl RawClient {
    /// A client on a fresh socket bound to `local` (e.g. `127.0.0.3:0`);
    /// a request is sent up to 5 times, a second apart.
    pub async fn new(
        local: SocketAddr,
        server: SocketAddr,
        username: &str,
        password: &str,
    ) -> std::io::Result<RawClient> {
        Ok(RawClient {
            socket: UdpSocket::bind(local).await?,
            server,
            tries: 5,
            rto: Duration::from_secs(1),
            username: username.into(),
            password: password.into(),
            realm: String::new(),
            nonce: String::new(),
        })
    }

    /// Sends each request up to `tries` times, `rto` apart.
    pub fn retransmit(mut self, tries: u32, rto: Duration) -> RawClient {
        self.tries = tries.max(1);
        self.rto = rto;
        self
    }

    fn key(&self) -> MessageIntegrity {
        MessageIntegrity::new_long_term_integrity(
            self.username.clone(),
            self.realm.clone(),
            self.password.clone(),
        )
    }

    /// The request, authenticated once the server has given a nonce.
    fn build(&self, method: Method, attrs: &impl Fn() -> Vec<Box<dyn Setter>>) -> Option<Message> {
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
        m.build(&all).ok()?;
        Some(m)
    }

    /// Sends a request with `attrs`, authenticated once the server has
    /// given a nonce, retransmitting until answered: the success response,
    /// or the error (code 0: unanswered, or an answer without a code).
    async fn request(
        &mut self,
        method: Method,
        attrs: impl Fn() -> Vec<Box<dyn Setter>>,
    ) -> Result<Message, Refused> {
        for _attempt in 0..4 {
            let Some(m) = self.build(method, &attrs) else {
                break;
            };
            let Some(mut answer) = self.transaction(&m).await else {
                break;
            };
            if answer.typ.class == CLASS_SUCCESS_RESPONSE {
                return Ok(answer);
            }
            let mut code = ErrorCodeAttribute::default();
            let code = match code.get_from(&answer) {
                Ok(()) => code.code.0,
                Err(_) => 0,
            };
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
            let authenticated =
                answer.contains(ATTR_MESSAGE_INTEGRITY) && self.key().check(&mut answer).is_ok();
            return Err(Refused {
                code,
                authenticated,
            });
        }
        Err(Refused {
            code: 0,
            authenticated: false,
        })
    }

    /// Sends `m`, retransmitting, until an answer with its transaction ID
    /// (other datagrams are ignored meanwhile).
    async fn transaction(&self, m: &Message) -> Option<Message> {
        let mut buf = [0u8; 2048];
        for _ in 0..self.tries {
            self.socket.send_to(&m.raw, self.server).await.ok()?;
            let deadline = tokio::time::Instant::now() + self.rto;
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

    /// Allocates: the relayed address.
    pub async fn allocate(&mut self) -> Result<SocketAddr, Refused> {
        let answer = self
            .request(METHOD_ALLOCATE, || {
                vec![Box::new(RequestedTransport {
                    protocol: PROTO_UDP,
                })]
            })
            .await?;
        let mut relayed = RelayedAddress::default();
        relayed.get_from(&answer).map_err(|_| Refused {
            code: 0,
            authenticated: false,
        })?;
        Ok(SocketAddr::new(relayed.ip, relayed.port))
    }

    /// Frees the allocation (Refresh with lifetime 0).
    pub async fn release(&mut self) -> Result<(), Refused> {
        self.request(METHOD_REFRESH, || vec![Box::new(Lifetime(Duration::ZERO))])
            .await
            .map(drop)
    }

    pub async fn create_permission(&mut self, peers: &[SocketAddr]) -> Result<(), Refused> {
        let attrs = || {
            peers
                .iter()
                .map(|p| {
                    Box::new(PeerAddress {
                        ip: p.ip(),
                        port: p.port(),
                    }) as Box<dyn Setter>
                })
                .collect()
        };
        self.request(METHOD_CREATE_PERMISSION, attrs)
            .await
            .map(drop)
    }

    pub async fn channel_bind(&mut self, number: u16, peer: SocketAddr) -> Result<(), Refused> {
        self.request(METHOD_CHANNEL_BIND, || {
            vec![
                Box::new(ChannelNumber(number)),
                Box::new(PeerAddress {
                    ip: peer.ip(),
                    port: peer.port(),
                }),
            ]
        })
        .await
        .map(drop)
    }

    pub async fn send_indication(&self, peer: SocketAddr, data: &[u8]) -> std::io::Result<()> {
        let mut m = Message::new();
        m.build(&[
            Box::new(TransactionId::new()),
            Box::new(MessageType::new(METHOD_SEND, CLASS_INDICATION)),
            Box::new(PeerAddress {
                ip: peer.ip(),
                port: peer.port(),
            }),
            Box::new(Data(data.to_vec())),
        ])
        .map_err(std::io::Error::other)?;
        self.socket.send_to(&m.raw, self.server).await.map(drop)
    }

    pub async fn channel_data(&self, number: u16, data: &[u8]) -> std::io::Result<()> {
        let mut frame = Vec::with_capacity(4 + data.len());
        frame.extend_from_slice(&number.to_be_bytes());
        frame.extend_from_slice(&(data.len() as u16).to_be_bytes());
        frame.extend_from_slice(data);
        self.socket.send_to(&frame, self.server).await.map(drop)
    }

    /// The next relayed datagram within `wait`, skipping anything else.
    pub async fn relayed(&self, wait: Duration) -> Option<Relayed> {
        let mut buf = [0u8; 2048];
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Ok((n, _))) =
            tokio::time::timeout_at(deadline, self.socket.recv_from(&mut buf)).await
        {
            let b = &buf[..n];
            if n >= 4 && b[0] >> 6 == 1 {
                let len = u16::from_be_bytes([b[2], b[3]]) as usize;
                let number = u16::from_be_bytes([b[0], b[1]]);
                let data = b.get(4..4 + len)?;
                return Some(Relayed::Channel(number, data.to_vec()));
            }
            let mut m = Message::new();
            m.raw = b.to_vec();
            if m.decode().is_ok() && m.typ == MessageType::new(METHOD_DATA, CLASS_INDICATION) {
                let (mut peer, mut data) = (PeerAddress::default(), Data::default());
                peer.get_from(&m).ok()?;
                data.get_from(&m).ok()?;
                return Some(Relayed::Indication(
                    SocketAddr::new(peer.ip, peer.port),
                    data.0,
                ));
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
    let (username, password) = credentials(secret, "soak");
    let mut c = match RawClient::new(SocketAddr::new(from, 0), server, &username, &password).await {
        Ok(c) => c.retransmit(3, Duration::from_millis(500)),
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    match c.allocate().await {
        Ok(_) => out.allocated = true,
        Err(Refused { code: 0, .. }) => {
            out.error = Some("allocate not answered".into());
            return out;
        }
        Err(Refused { code, .. }) => {
            out.error = Some(format!("allocate refused with {code}"));
            return out;
        }
    }
    let peers: Vec<SocketAddr> = FORBIDDEN.iter().filter_map(|p| p.parse().ok()).collect();
    let deadline = tokio::time::Instant::now() + dur;
    let mut channel = 0x4000u16;
    'rounds: while tokio::time::Instant::now() < deadline {
        for &peer in &peers {
            let n = channel;
            channel = if channel >= 0x4FFF {
                0x4000
            } else {
                channel + 1
            };
            for bind in [false, true] {
                if tokio::time::Instant::now() >= deadline {
                    break 'rounds;
                }
                out.requests += 1;
                let answer = if bind {
                    c.channel_bind(n, peer).await
                } else {
                    c.create_permission(&[peer]).await
                };
                match answer {
                    Ok(()) => out.granted += 1,
                    Err(Refused { code: 403, .. }) => out.refused_403 += 1,
                    Err(_) => out.other += 1,
                }
            }
        }
        // A round is 14 requests; a few rounds a second is an attack that
        // costs the relay work without costing this machine's core.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = c.release().await;
    out
}
