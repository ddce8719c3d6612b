//! A TURN client that sends exactly what a test says, over a real UDP
//! socket: Allocate, CreatePermission and ChannelBind with long-term
//! credentials (RFC 8656, RFC 8489 section 9.2), Send indications,
//! ChannelData, and whatever comes back. The `turn` crate's client hides
//! its requests behind `send_to`; an attacker does not.

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
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;

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
    username: String,
    password: String,
    realm: String,
    nonce: String,
}

impl RawClient {
    /// A client on a fresh socket bound to `local` (e.g. `127.0.0.3:0`).
    pub async fn new(local: &str, server: SocketAddr, username: &str, password: &str) -> RawClient {
        RawClient {
            socket: UdpSocket::bind(local)
                .await
                .expect("bind the client socket"),
            server,
            username: username.into(),
            password: password.into(),
            realm: String::new(),
            nonce: String::new(),
        }
    }

    fn key(&self) -> MessageIntegrity {
        MessageIntegrity::new_long_term_integrity(
            self.username.clone(),
            self.realm.clone(),
            self.password.clone(),
        )
    }

    /// Sends a request with `attrs`, authenticated once the server has
    /// given a nonce, retransmitting until answered (or 5 s): the success
    /// response, or the error.
    async fn request(
        &mut self,
        method: Method,
        attrs: impl Fn() -> Vec<Box<dyn Setter>>,
    ) -> Result<Message, Refused> {
        for _attempt in 0..4 {
            let mut m = Message::new();
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
            m.build(&all).expect("request builds");
            let Some(mut answer) = self.transaction(&m).await else {
                continue;
            };
            if answer.typ.class == CLASS_SUCCESS_RESPONSE {
                return Ok(answer);
            }
            let mut code = ErrorCodeAttribute::default();
            code.get_from(&answer)
                .expect("an error response has ERROR-CODE");
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
        for _ in 0..5 {
            self.socket.send_to(&m.raw, self.server).await.ok()?;
            let deadline = tokio::time::Instant::now() + Duration::from_millis(1000);
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
        relayed.get_from(&answer).expect("XOR-RELAYED-ADDRESS");
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

    pub async fn send_indication(&self, peer: SocketAddr, data: &[u8]) {
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
        .expect("Send indication builds");
        self.socket.send_to(&m.raw, self.server).await.unwrap();
    }

    pub async fn channel_data(&self, number: u16, data: &[u8]) {
        let mut frame = Vec::with_capacity(4 + data.len());
        frame.extend_from_slice(&number.to_be_bytes());
        frame.extend_from_slice(&(data.len() as u16).to_be_bytes());
        frame.extend_from_slice(data);
        self.socket.send_to(&frame, self.server).await.unwrap();
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
                return Some(Relayed::Channel(number, b[4..4 + len].to_vec()));
            }
            let mut m = Message::new();
            m.raw = b.to_vec();
            if m.decode().is_ok() && m.typ == MessageType::new(METHOD_DATA, CLASS_INDICATION) {
                let (mut peer, mut data) = (PeerAddress::default(), Data::default());
                peer.get_from(&m).expect("XOR-PEER-ADDRESS");
                data.get_from(&m).expect("DATA");
                return Some(Relayed::Indication(
                    SocketAddr::new(peer.ip, peer.port),
                    data.0,
                ));
            }
        }
        None
    }
}

/// A UDP listener standing for a service a relay must not reach: counts
/// what arrives.
pub struct Listener {
    pub socket: UdpSocket,
    pub addr: SocketAddr,
}

impl Listener {
    pub async fn bind(addr: &str) -> Listener {
        let socket = UdpSocket::bind(addr).await.expect("bind a listener");
        let addr = socket.local_addr().unwrap();
        Listener { socket, addr }
    }

    /// Datagrams (and their bytes) that arrive within `wait`.
    pub async fn drain(&self, wait: Duration) -> (usize, usize) {
        let mut buf = [0u8; 2048];
        let (mut n, mut bytes) = (0, 0);
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Ok(len)) = tokio::time::timeout_at(deadline, self.socket.recv(&mut buf)).await
        {
            n += 1;
            bytes += len;
        }
        (n, bytes)
    }
}
