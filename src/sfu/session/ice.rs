//! ICE-lite for one viewer (RFC 8445 2.5): we never send checks, only
//! answer the viewer's. A Binding request proves the viewer only when its
//! USERNAME is ours and its MESSAGE-INTEGRITY is keyed with our password
//! (RFC 8489 14.5); only then does its source address become a path to
//! this viewer, and only then does it count as consent (RFC 7675). The
//! controlling side (the viewer) nominates with USE-CANDIDATE; media goes
//! to the nominated address, or to the latest proven one before that.

use rtc::crypto::RTCCrypto;
use rtc::stun::attributes::{ATTR_USERNAME, ATTR_USE_CANDIDATE};
use rtc::stun::fingerprint::FINGERPRINT;
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::{Message, Setter, BINDING_REQUEST, BINDING_SUCCESS};
use rtc::stun::textattrs::TextAttribute;
use rtc::stun::xoraddr::XorMappedAddress;
use std::net::SocketAddr;
use std::time::Instant;

/// Remote addresses one viewer may use at once (host, reflexive and relay,
/// IPv4 and IPv6, UDP and TCP): bounds the routing entries a client adds.
pub const MAX_PATHS: usize = 8;
/// The largest STUN message we read; a Binding request is under 200 bytes.
const MAX_STUN: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A valid check: answer with the response now written to `out`. `new`
    /// when its address was not a known path before.
    Answered { new: bool },
    /// Not a check from this viewer: dropped, nothing learned.
    Refused,
}

pub struct IceLite {
    local_ufrag: String,
    local_pwd: String,
    /// `local:remote`, what a check's USERNAME must be.
    username: String,
    paths: Vec<SocketAddr>,
    nominated: Option<SocketAddr>,
    /// The latest valid check, for consent freshness.
    pub last_check: Option<Instant>,
}

impl IceLite {
    pub fn new(local_ufrag: String, local_pwd: String, remote_ufrag: &str) -> IceLite {
        IceLite {
            username: format!("{local_ufrag}:{remote_ufrag}"),
            local_ufrag,
            local_pwd,
            paths: Vec::new(),
            nominated: None,
            last_check: None,
        }
    }

    pub fn local_ufrag(&self) -> &str {
        &self.local_ufrag
    }

    /// Where media goes: the nominated path, or the latest proven one.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.nominated.or_else(|| self.paths.last().copied())
    }

    /// Every proven path (for the routing table).
    pub fn paths(&self) -> &[SocketAddr] {
        &self.paths
    }

    pub fn is_path(&self, addr: SocketAddr) -> bool {
        self.paths.contains(&addr)
    }

    /// Reads a datagram that looks like STUN from `from`; on a valid
    /// Binding request writes the success response into `out`.
    pub fn handle(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
        crypto: &dyn RTCCrypto,
        out: &mut Vec<u8>,
    ) -> Verdict {
        if data.len() > MAX_STUN {
            return Verdict::Refused;
        }
        let mut m = Message::new();
        if m.unmarshal_binary(data).is_err() || m.typ != BINDING_REQUEST {
            return Verdict::Refused;
        }
        match TextAttribute::get_from_as(&m, ATTR_USERNAME) {
            Ok(u) if u.text == self.username => {}
            _ => return Verdict::Refused,
        }
        // A FINGERPRINT, when present, must be right (RFC 8489 14.7); it is
        // checked first, as the integrity check rewrites the length field.
        if m.contains(rtc::stun::attributes::ATTR_FINGERPRINT) && FINGERPRINT.check(&m).is_err() {
            return Verdict::Refused;
        }
        if MessageIntegrity::check(&mut m, self.local_pwd.as_bytes(), crypto).is_err() {
            return Verdict::Refused;
        }
        let new = !self.paths.contains(&from);
        if new {
            if self.paths.len() >= MAX_PATHS {
                // The oldest, but never the one media takes: a viewer whose
                // address keeps changing (NAT rebinding) stays watchable.
                let nominated = self.nominated;
                let at = self.paths.iter().position(|p| Some(*p) != nominated);
                self.paths.remove(at.unwrap_or(0));
            }
            self.paths.push(from);
        } else if self.nominated.is_none() {
            // The latest proven path is the one media takes until nominated.
            self.paths.retain(|p| *p != from);
            self.paths.push(from);
        }
        if m.contains(ATTR_USE_CANDIDATE) {
            self.nominated = Some(from);
        }
        self.last_check = Some(now);
        out.clear();
        let mut resp = Message::new();
        let setters: [Box<dyn Setter + '_>; 5] = [
            Box::new(m.transaction_id),
            Box::new(BINDING_SUCCESS),
            Box::new(XorMappedAddress {
                ip: from.ip(),
                port: from.port(),
            }),
            Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
                self.local_pwd.clone(),
                crypto,
            )),
            Box::new(FINGERPRINT),
        ];
        if resp.build(&setters).is_err() {
            return Verdict::Refused;
        }
        out.extend_from_slice(&resp.raw);
        Verdict::Answered { new }
    }

    /// Forgets a path (its TCP connection closed, say).
    pub fn drop_path(&mut self, addr: SocketAddr) {
        self.paths.retain(|p| *p != addr);
        if self.nominated == Some(addr) {
            self.nominated = None;
        }
    }
}

/// The USERNAME's first half (our ufrag) of a STUN Binding request, read
/// without parsing the rest: how a datagram from an unknown address finds
/// its viewer.
pub fn local_ufrag(b: &[u8]) -> Option<&str> {
    crate::sfu::stun_local_ufrag(b)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use rtc::stun::message::{Getter, TransactionId};

    fn crypto() -> std::sync::Arc<dyn rtc::crypto::RTCCryptoProvider> {
        rtc::crypto::default_provider().unwrap()
    }

    /// A Binding request as a browser sends it.
    pub(in crate::sfu::session) fn check(
        username: &str,
        pwd: &str,
        nominate: bool,
        crypto: &dyn RTCCrypto,
    ) -> Vec<u8> {
        let mut m = Message::new();
        let mut setters: Vec<Box<dyn Setter + '_>> = vec![
            Box::new(BINDING_REQUEST),
            Box::new(TransactionId::new()),
            Box::new(TextAttribute::new(ATTR_USERNAME, username.to_string())),
        ];
        if nominate {
            setters.push(Box::new(rtc::stun::attributes::RawAttribute {
                typ: ATTR_USE_CANDIDATE,
                length: 0,
                value: vec![],
            }));
        }
        setters.push(Box::new(
            MessageIntegrity::new_short_term_integrity_with_provider(pwd.into(), crypto),
        ));
        setters.push(Box::new(FINGERPRINT));
        m.build(&setters).unwrap();
        m.raw.clone()
    }

    #[test]
    fn only_a_check_keyed_with_our_password_proves_a_path() {
        let p = crypto();
        let c = p.crypto();
        let mut ice = IceLite::new("ours".into(), "ourpassword0123456789xx".into(), "theirs");
        let a: SocketAddr = "192.0.2.9:5000".parse().unwrap();
        let b: SocketAddr = "198.51.100.3:6000".parse().unwrap();
        let mut out = Vec::new();
        let now = Instant::now();
        let cases: Vec<(Vec<u8>, Verdict)> = vec![
            (
                check("ours:theirs", "wrong-password-guess-xx", false, c),
                Verdict::Refused,
            ),
            (
                check("other:theirs", "ourpassword0123456789xx", false, c),
                Verdict::Refused,
            ),
            (
                check("ours:someone", "ourpassword0123456789xx", false, c),
                Verdict::Refused,
            ),
            (b"not stun at all".to_vec(), Verdict::Refused),
            (vec![0u8; 2000], Verdict::Refused),
        ];
        for (msg, want) in cases {
            assert_eq!(ice.handle(now, a, &msg, c, &mut out), want);
        }
        assert!(ice.destination().is_none() && ice.last_check.is_none());

        let good = check("ours:theirs", "ourpassword0123456789xx", false, c);
        assert_eq!(
            ice.handle(now, a, &good, c, &mut out),
            Verdict::Answered { new: true }
        );
        assert_eq!(ice.destination(), Some(a));
        // The response is a Binding success the viewer can check.
        let mut resp = Message::new();
        resp.unmarshal_binary(&out).unwrap();
        assert_eq!(resp.typ, BINDING_SUCCESS);
        MessageIntegrity::check(&mut resp, b"ourpassword0123456789xx", c).unwrap();
        let mut mapped = XorMappedAddress::default();
        mapped.get_from(&resp).unwrap();
        assert_eq!(SocketAddr::new(mapped.ip, mapped.port), a);

        // Nomination moves media; a later plain check elsewhere does not.
        let nom = check("ours:theirs", "ourpassword0123456789xx", true, c);
        assert_eq!(
            ice.handle(now, b, &nom, c, &mut out),
            Verdict::Answered { new: true }
        );
        assert_eq!(ice.destination(), Some(b));
        assert_eq!(
            ice.handle(now, a, &good, c, &mut out),
            Verdict::Answered { new: false }
        );
        assert_eq!(ice.destination(), Some(b));
    }

    #[test]
    fn paths_are_bounded() {
        let p = crypto();
        let c = p.crypto();
        let mut ice = IceLite::new("ours".into(), "ourpassword0123456789xx".into(), "theirs");
        let good = check("ours:theirs", "ourpassword0123456789xx", false, c);
        let mut out = Vec::new();
        for port in 1000..1100u16 {
            let from = SocketAddr::from(([192, 0, 2, 1], port));
            ice.handle(Instant::now(), from, &good, c, &mut out);
        }
        assert_eq!(ice.paths().len(), MAX_PATHS);
        // A nominated path outlives any number of newer ones.
        let nom = check("ours:theirs", "ourpassword0123456789xx", true, c);
        let chosen = SocketAddr::from(([192, 0, 2, 2], 1));
        ice.handle(Instant::now(), chosen, &nom, c, &mut out);
        for port in 2000..2100u16 {
            let from = SocketAddr::from(([192, 0, 2, 1], port));
            ice.handle(Instant::now(), from, &good, c, &mut out);
            assert!(ice.is_path(chosen));
            assert_eq!(ice.destination(), Some(chosen));
        }
        assert_eq!(ice.paths().len(), MAX_PATHS);
    }
}
