//! Requests the relay answers before the `turn` crate does, once they are
//! authenticated (a nonce the crate issued and a MESSAGE-INTEGRITY that
//! checks with the REST API key of their USERNAME): the crate has no hook
//! for refusing a peer or counting per user. Anything not authenticated
//! this way goes to the crate unchanged, which answers 401, 438 or 400 as
//! before, so a refusal here never tells a stranger anything.
//!
//! - CreatePermission and ChannelBind naming a refused peer:
//!   403 Forbidden (RFC 8656 sections 9.2 and 11.2);
//! - a permission or channel over the allocation's cap: 508 Insufficient
//!   Capacity (section 9.2);
//! - a ChannelBind with a number outside the channel range: 400 (section
//!   11.2; the crate binds any number);
//! - an Allocate over the user's quota: 486 Allocation Quota Reached
//!   (section 7.2).
//!
//! Answers carry MESSAGE-INTEGRITY, as responses to authenticated requests
//! do (RFC 8489 section 9.2.4).

use crate::allocation::{Client, Refusal};
use crate::serve::Shared;
use crate::stats::add;
use crate::transport::Transport;
use crate::wire;
use std::net::SocketAddr;
use stun::attributes::{ATTR_MESSAGE_INTEGRITY, ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
use stun::error_code::{ErrorCode, ErrorCodeAttribute};
use stun::integrity::MessageIntegrity;
use stun::message::{
    Getter, Message, MessageType, Method, Setter, CLASS_ERROR_RESPONSE, CLASS_REQUEST,
    METHOD_ALLOCATE, METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION,
};
use stun::textattrs::TextAttribute;
use turn::proto::channum::ChannelNumber;

/// Whether the request in `packet` from `client` was answered here (and
/// must not reach the crate).
pub(crate) async fn answered(
    shared: &Shared,
    conn: &Transport,
    client: Client,
    packet: &[u8],
) -> bool {
    let Some(method) = screened_method(packet) else {
        return false;
    };
    let mut m = Message::new();
    m.raw = packet.to_vec();
    if m.decode().is_err() || m.typ.class != CLASS_REQUEST {
        return false;
    }
    let allocation = shared.guard.allocation(client);
    // The crate ignores CreatePermission and ChannelBind without an
    // allocation, and answers an Allocate on an open one with 437.
    if allocation.is_some() == (method == METHOD_ALLOCATE) {
        return false;
    }
    let Some((username, key)) = authenticated(shared, &m).await else {
        return false;
    };
    let answer = match (method, allocation) {
        (METHOD_ALLOCATE, _) => {
            if shared.guard.user_has_room(&username) {
                return false;
            }
            (486, "Allocation Quota Reached")
        }
        (METHOD_CREATE_PERMISSION, Some(a)) => {
            let mut peers = Vec::new();
            for attr in m
                .attributes
                .0
                .iter()
                .filter(|a| a.typ == stun::attributes::ATTR_XOR_PEER_ADDRESS)
            {
                match wire::xor_address(&attr.value, &m.raw) {
                    Some(peer) => peers.push(peer),
                    None => return false, // the crate answers 400
                }
            }
            if peers.is_empty() {
                return false;
            }
            if let Some(answer) = forbidden(shared, client, &peers) {
                answer
            } else if !peers.iter().all(|p| a.same_family(*p)) {
                return false; // the crate answers 443
            } else {
                match a.permit(&peers) {
                    Ok(()) => return false,
                    Err(refusal) => over_cap(shared, refusal),
                }
            }
        }
        (METHOD_CHANNEL_BIND, Some(a)) => {
            let mut number = ChannelNumber::default();
            let mut peer = turn::proto::peeraddr::PeerAddress::default();
            if number.get_from(&m).is_err() || peer.get_from(&m).is_err() {
                return false; // the crate answers 400
            }
            let peer = SocketAddr::new(peer.ip, peer.port);
            if !wire::CHANNELS.contains(&number.0) {
                (400, "Bad Request")
            } else if let Some(answer) = forbidden(shared, client, &[peer]) {
                answer
            } else if !a.same_family(peer) {
                return false;
            } else {
                match a.bind(number.0, peer) {
                    Ok(()) | Err(Refusal::Conflict) => return false,
                    Err(refusal) => over_cap(shared, refusal),
                }
            }
        }
        _ => return false,
    };
    let (code, reason) = answer;
    match error_response(&m, method, code, reason, key) {
        Ok(raw) => {
            if let Err(e) = conn.send_to(&raw, client.addr).await {
                tracing::debug!(client = %client.addr, "TURN answer not sent: {e}");
            }
        }
        Err(e) => tracing::warn!("TURN error response not built: {e}"),
    }
    true
}

/// The methods screened here, from the message type (requests only: for
/// these methods the request type is the method).
fn screened_method(packet: &[u8]) -> Option<Method> {
    match crate::guard::stun_type(packet)? {
        0x0003 => Some(METHOD_ALLOCATE),
        0x0008 => Some(METHOD_CREATE_PERMISSION),
        0x0009 => Some(METHOD_CHANNEL_BIND),
        _ => None,
    }
}

/// 403 if any of `peers` is refused.
fn forbidden(shared: &Shared, client: Client, peers: &[SocketAddr]) -> Option<(u16, &'static str)> {
    let (peer, why) = peers
        .iter()
        .find_map(|p| shared.policy.refusal(*p).map(|why| (p, why)))?;
    // Debug: a client can ask thousands of times a second.
    tracing::debug!(client = %client.addr, %peer, "TURN peer refused: {why}");
    add(&shared.guard.stats.forbidden_requests, 1);
    (shared.guard.on_limit)("turn_forbidden_peer");
    Some((403, "Forbidden"))
}

fn over_cap(shared: &Shared, refusal: Refusal) -> (u16, &'static str) {
    if let Refusal::Cap(name) = refusal {
        let stats = &shared.guard.stats;
        add(
            if name == "max_channels_per_allocation" {
                &stats.channel_cap_hits
            } else {
                &stats.permission_cap_hits
            },
            1,
        );
        (shared.guard.on_limit)(name);
    }
    (508, "Insufficient Capacity")
}

/// The USERNAME and long-term key of a request the crate would take as
/// authenticated.
async fn authenticated(shared: &Shared, m: &Message) -> Option<(String, Vec<u8>)> {
    if !m.contains(ATTR_MESSAGE_INTEGRITY) {
        return None;
    }
    let text = |attr| TextAttribute::get_from_as(m, attr).ok().map(|t| t.text);
    let nonce = text(ATTR_NONCE)?;
    if !shared.nonces.knows(nonce.as_bytes()).await {
        return None;
    }
    let (username, realm) = (text(ATTR_USERNAME)?, text(ATTR_REALM)?);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let key = shared.auth.key(&username, &realm, now).ok()?;
    MessageIntegrity(key.clone()).check(&mut m.clone()).ok()?;
    Some((username, key))
}

fn error_response(
    request: &Message,
    method: Method,
    code: u16,
    reason: &str,
    key: Vec<u8>,
) -> Result<Vec<u8>, stun::Error> {
    let mut m = Message::new();
    let attrs: Vec<Box<dyn Setter>> = vec![
        Box::new(request.transaction_id),
        Box::new(MessageType::new(method, CLASS_ERROR_RESPONSE)),
        Box::new(ErrorCodeAttribute {
            code: ErrorCode(code),
            reason: reason.as_bytes().to_vec(),
        }),
        Box::new(MessageIntegrity(key)),
    ];
    m.build(&attrs)?;
    Ok(m.raw)
}
