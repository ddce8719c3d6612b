//! Per-user message rate: a token bucket of [`BURST`] tokens refilled at
//! [`REFILL_PER_SEC`], i.e. a burst of 5, then one message a second. And
//! per connection, whoever is signed in: [`FrameLimit`] on every frame a
//! WebSocket or data channel sends, so a flood is cut off before it costs
//! the room anything.

use std::time::Instant;

pub const BURST: u32 = 5;
pub const REFILL_PER_SEC: f64 = 1.0;
/// Frames of any kind (text, binary, ping, pong) one chat socket or data
/// channel may send at once, and per second after that. A chat client sends
/// at most a message a second plus a ping every few seconds; twice the
/// message burst and ten a second leave room for a reconnecting client's
/// retries, and a flood is cut off within its first second.
pub const FRAME_BURST: u32 = 2 * BURST;
pub const FRAMES_PER_SEC: f64 = 10.0;

/// Counts one connection's inbound frames against [`FRAME_BURST`] and
/// [`FRAMES_PER_SEC`].
pub struct FrameLimit(TokenBucket);

impl FrameLimit {
    pub fn new(now: Instant) -> FrameLimit {
        FrameLimit(TokenBucket::with_rate(FRAME_BURST, FRAMES_PER_SEC, now))
    }

    /// False once the connection sends faster than allowed: close it.
    pub fn allow(&mut self, now: Instant) -> bool {
        let ok = self.0.take(now);
        if !ok {
            crate::metrics::limit_hit("chat_frames_per_sec");
        }
        ok
    }
}

#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    at: Instant,
    burst: f64,
    per_sec: f64,
}

impl TokenBucket {
    /// The chat rate: [`BURST`], then [`REFILL_PER_SEC`].
    pub fn new(now: Instant) -> TokenBucket {
        TokenBucket::with_rate(BURST, REFILL_PER_SEC, now)
    }

    /// Any rate: `burst` at once, then `per_sec`.
    pub fn with_rate(burst: u32, per_sec: f64, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: f64::from(burst),
            at: now,
            burst: f64::from(burst),
            per_sec,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * self.per_sec).min(self.burst);
        self.at = now;
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Full again: forgetting this bucket changes nothing.
    pub fn is_full(&self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens + dt * self.per_sec >= self.burst
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_of_five_then_one_a_second() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(t0);
        for i in 0..BURST {
            assert!(b.take(t0), "message {i} of the burst");
        }
        assert!(!b.take(t0));
        assert!(!b.take(t0 + Duration::from_millis(900)));
        assert!(b.take(t0 + Duration::from_millis(1000)));
        assert!(!b.take(t0 + Duration::from_millis(1500)));
        assert!(b.take(t0 + Duration::from_millis(2000)));
        assert!(b.is_full(t0 + Duration::from_secs(10)));
    }
}
