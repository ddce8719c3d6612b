//! The viewer's `chat` data channel: an SCTP association over its DTLS
//! (RFC 8261), on rtc-sctp's sans-I/O association, with the channel opened
//! by the viewer through DCEP (RFC 8832, rtc-datachannel's messages).
//! Only the one channel labelled `chat` is served; other channels are
//! acknowledged and ignored.
//!
//! Bounds: messages of at most [`MAX_MESSAGE`] bytes, a receive window of
//! [`RECEIVE_WINDOW`], [`MAX_STREAMS`] streams each way.

use bytes::{Bytes, BytesMut};
use rtc::datachannel::message::message_channel_ack::DataChannelAck;
use rtc::datachannel::message::Message as Dcep;
use rtc::sctp::Association;
use rtc::sctp::PayloadProtocolIdentifier;
use rtc::sctp::{
    AssociationHandle, DatagramEvent, Endpoint, EndpointConfig, EndpointEvent, Event as SctpEvent,
    ServerConfig, StreamEvent, TransportConfig,
};
use rtc::shared::marshal::{Marshal, Unmarshal};
use rtc::shared::TransportProtocol;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Chat lines are at most 500 characters; with JSON around them a few KiB.
/// This is also the size of the working buffer rtc-sctp keeps.
pub const MAX_MESSAGE: u32 = 8 * 1024;
/// What a viewer can make us hold in reassembly.
pub const RECEIVE_WINDOW: u32 = 64 * 1024;
/// A viewer needs one stream; browsers negotiate many and use a few.
pub const MAX_STREAMS: u16 = 16;
/// The association is one per viewer; the address is only a key.
const ASSOCIATION: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);
const LABEL: &str = "chat";
/// SCTP handshakes one viewer may start: RFC 9260's default
/// Max.Init.Retransmits is 8.
const MAX_HANDSHAKES: u32 = 9;

pub enum Event {
    /// The `chat` channel is open.
    Open,
    /// A text message on it.
    Text(String),
}

pub struct DataChannel {
    endpoint: Endpoint,
    association: Option<(AssociationHandle, Association)>,
    chat: Option<u16>,
    sctp_port: u16,
    /// Associations the viewer has started, INITs sent again included.
    handshakes: u32,
}

impl DataChannel {
    pub fn new(sctp_port: u16) -> DataChannel {
        let transport = TransportConfig::default()
            .with_sctp_port(sctp_port)
            .with_max_message_size(MAX_MESSAGE)
            .with_max_receive_buffer_size(RECEIVE_WINDOW)
            .with_max_num_inbound_streams(MAX_STREAMS)
            .with_max_num_outbound_streams(MAX_STREAMS);
        DataChannel {
            endpoint: Endpoint::new(
                ASSOCIATION,
                TransportProtocol::UDP,
                Arc::new(EndpointConfig::new()),
                Some(Arc::new(ServerConfig::new(transport))),
            ),
            association: None,
            chat: None,
            sctp_port,
            handshakes: 0,
        }
    }

    pub fn sctp_port(&self) -> u16 {
        self.sctp_port
    }

    pub fn is_open(&self) -> bool {
        self.chat.is_some()
    }

    /// One SCTP packet from the viewer (DTLS application data).
    pub fn handle(&mut self, now: Instant, packet: BytesMut, events: &mut Vec<Event>) {
        let Some((ch, ev)) = self
            .endpoint
            .handle(now, ASSOCIATION, None, packet.freeze())
        else {
            return;
        };
        match ev {
            DatagramEvent::NewAssociation(a) => {
                // A viewer whose INIT ACK was lost sends INIT again, and the
                // endpoint makes a new association of it: that one is the
                // handshake now. An association that completed stays.
                let handshaking = self
                    .association
                    .as_ref()
                    .is_none_or(|(_, a)| a.is_handshaking());
                if !handshaking || self.handshakes >= MAX_HANDSHAKES {
                    self.endpoint.handle_event(ch, EndpointEvent::drained());
                    return;
                }
                self.handshakes += 1;
                if let Some((old, _)) = self.association.replace((ch, a)) {
                    self.endpoint.handle_event(old, EndpointEvent::drained());
                }
            }
            DatagramEvent::AssociationEvent(e) => {
                if let Some((h, a)) = self.association.as_mut() {
                    if *h == ch {
                        a.handle_event(e);
                    }
                }
            }
            _ => {}
        }
        self.drain(now, events);
    }

    fn drain(&mut self, now: Instant, events: &mut Vec<Event>) {
        let Some((handle, a)) = self.association.as_mut() else {
            return;
        };
        let handle = *handle;
        let mut readable = Vec::new();
        while let Some(ev) = a.poll() {
            match ev {
                SctpEvent::Stream(StreamEvent::Readable { id }) => readable.push(id),
                SctpEvent::Stream(StreamEvent::Opened { id }) => readable.push(id),
                SctpEvent::AssociationLost { .. } | SctpEvent::HandshakeFailed { .. } => {
                    self.chat = None;
                }
                _ => {}
            }
        }
        while a.accept_stream().is_some() {}
        for id in readable {
            let Ok(mut stream) = a.stream(id) else {
                continue;
            };
            while let Ok(Some(chunks)) = stream.read_sctp() {
                let Ok(payload) = chunks.to_payload(MAX_MESSAGE as usize) else {
                    continue;
                };
                match chunks.ppi {
                    PayloadProtocolIdentifier::Dcep => {
                        let mut buf = &payload[..];
                        if let Ok(Dcep::DataChannelOpen(open)) = Dcep::unmarshal(&mut buf) {
                            if let Ok(ack) = Dcep::DataChannelAck(DataChannelAck {}).marshal() {
                                let _ = stream.write_with_ppi(
                                    now,
                                    &ack,
                                    PayloadProtocolIdentifier::Dcep,
                                );
                            }
                            if open.label == LABEL.as_bytes() && self.chat.is_none() {
                                self.chat = Some(id);
                                events.push(Event::Open);
                            }
                        }
                    }
                    PayloadProtocolIdentifier::String | PayloadProtocolIdentifier::StringEmpty
                        if self.chat == Some(id) =>
                    {
                        events.push(Event::Text(String::from_utf8_lossy(&payload).into_owned()));
                    }
                    _ => {}
                }
            }
        }
        while let Some(e) = a.poll_endpoint_event() {
            self.endpoint.handle_event(handle, e);
        }
    }

    /// Sends a text message on the chat channel (dropped before it opens).
    pub fn send_text(&mut self, now: Instant, text: &str) -> bool {
        let (Some(id), Some((_, a))) = (self.chat, self.association.as_mut()) else {
            return false;
        };
        let Ok(mut stream) = a.stream(id) else {
            return false;
        };
        let ppi = if text.is_empty() {
            PayloadProtocolIdentifier::StringEmpty
        } else {
            PayloadProtocolIdentifier::String
        };
        stream.write_with_ppi(now, text.as_bytes(), ppi).is_ok()
    }

    /// The next SCTP packet to send (inside DTLS).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Bytes> {
        let (_, a) = self.association.as_mut()?;
        a.poll_transmit(now).map(|t| match t.message {
            rtc::sctp::Payload::RawEncode(mut parts) => {
                if parts.len() == 1 {
                    parts.pop().unwrap_or_default()
                } else {
                    Bytes::from(parts.concat())
                }
            }
            _ => Bytes::new(),
        })
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.association.as_ref()?.1.poll_timeout()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some((_, a)) = self.association.as_mut() {
            a.handle_timeout(now);
        }
    }
}
