//! What one client, or all of them, may take from the relay: every count a
//! client can grow, with the reason for its number.

/// Allocations open at once, in total: each is a relay socket and a few
/// tasks.
pub const MAX_ALLOCATIONS: usize = 4096;
/// Allocations open at once from one client host (an IPv4 address or an
/// IPv6 /64). A NAT may hide several viewers behind one address, and each
/// peer connection takes one per transport (UDP and TCP), so not 1.
pub const MAX_ALLOCATIONS_PER_HOST: usize = 16;
/// Allocations open at once under one TURN username's user part (what
/// follows `EXPIRY:`). onair names credentials after the role and the
/// client host (`viewer@203.0.113.9`), so this bounds what one handed-out
/// credential opens when it is shared among many hosts; as many as one
/// host may open.
pub const MAX_ALLOCATIONS_PER_USER: usize = 16;
/// Permissions (peer IP addresses) one allocation holds at once. A WebRTC
/// session needs one per address of the far end it checks, a handful;
/// each costs the `turn` crate a task and a timer, so a client must not
/// install thousands.
pub const MAX_PERMISSIONS_PER_ALLOCATION: usize = 32;
/// Channels one allocation binds at once: one per far-end address:port in
/// use, so a handful again (RFC 8656 allows 4096, RFC 5766 16383); each is
/// a task and a timer in the crate too.
pub const MAX_CHANNELS_PER_ALLOCATION: usize = 32;
/// Bytes one allocation relays per second in each direction, with bursts of
/// one second's worth. 5 MB/s is 40 Mbit/s: several times a 1080p60
/// stream, so a viewer's video and a publisher's upload pass untouched,
/// while no client turns the relay into a flood cannon aimed at a peer, or
/// takes the host's uplink from everyone else. Excess is dropped, as a
/// congested link would.
pub const MAX_RELAY_BYTES_PER_SEC: u32 = 5_000_000;
/// TURN-over-TCP connections open at once.
pub const MAX_TCP_CONNECTIONS: usize = 1024;
/// Unauthenticated requests (each makes the crate store a nonce) let
/// through per second, all clients together, bursts of 5x. Legitimate
/// clients send one or two per allocation.
pub const CHALLENGES_PER_SEC: u32 = 200;
/// Nonces stored at once. A legitimate client keeps using its nonce for the
/// allocation's life, so this is a few times [`MAX_ALLOCATIONS`]; when full,
/// the older half is forgotten (their clients get 438 Stale Nonce with a
/// new one, and retry).
pub const MAX_NONCES: usize = 16384;

/// The limits a relay applies; [`Limits::default`] is the constants above.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_allocations: usize,
    /// Per client host: one IPv4 address, or one IPv6 /64.
    pub max_allocations_per_ip: usize,
    pub max_allocations_per_user: usize,
    pub max_permissions_per_allocation: usize,
    pub max_channels_per_allocation: usize,
    pub relay_bytes_per_sec: u32,
    pub max_tcp_connections: usize,
    pub challenges_per_sec: u32,
    pub max_nonces: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_allocations: MAX_ALLOCATIONS,
            max_allocations_per_ip: MAX_ALLOCATIONS_PER_HOST,
            max_allocations_per_user: MAX_ALLOCATIONS_PER_USER,
            max_permissions_per_allocation: MAX_PERMISSIONS_PER_ALLOCATION,
            max_channels_per_allocation: MAX_CHANNELS_PER_ALLOCATION,
            relay_bytes_per_sec: MAX_RELAY_BYTES_PER_SEC,
            max_tcp_connections: MAX_TCP_CONNECTIONS,
            challenges_per_sec: CHALLENGES_PER_SEC,
            max_nonces: MAX_NONCES,
        }
    }
}

/// A token bucket: `rate` a second, holding at most `burst`.
#[derive(Debug)]
pub(crate) struct Bucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    at: std::time::Instant,
}

impl Bucket {
    /// Full to start with.
    pub(crate) fn new(rate: f64, burst: f64) -> Bucket {
        Bucket {
            tokens: burst,
            rate,
            burst,
            at: std::time::Instant::now(),
        }
    }

    /// Takes `n` tokens if there are that many.
    pub(crate) fn take(&mut self, n: f64) -> bool {
        let now = std::time::Instant::now();
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_lets_its_burst_through_then_its_rate() {
        let start = std::time::Instant::now();
        let mut b = Bucket::new(1000.0, 5000.0);
        let passed = (0..100).filter(|_| b.take(100.0)).count();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let passed = passed + (0..100).filter(|_| b.take(100.0)).count();
        // 5000 at once, then 1000 a second, 100 at a time.
        let most = 50 + (start.elapsed().as_secs_f64() * 10.0) as usize;
        assert!(
            (51..=most).contains(&passed),
            "{passed} passed, at most {most}"
        );
    }
}
