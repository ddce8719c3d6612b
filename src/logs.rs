//! Log lines that a client can cause (a refused request, a broken
//! connection), within a budget per minute each: every one is worth a line
//! until a client repeats it thousands of times a second, which must not
//! fill the disk or bury everything else. Past the budget the lines go to
//! debug level, and the next one logged says how many did.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Budget {
    per_minute: u32,
    state: Mutex<Option<State>>,
}

struct State {
    since: Instant,
    logged: u32,
    held_back: u64,
}

impl Budget {
    pub const fn new(per_minute: u32) -> Budget {
        Budget {
            per_minute,
            state: Mutex::new(None),
        }
    }

    /// `Some(n)` when a line may be logged, `n` being how many went to
    /// debug level since the last one; `None` past the budget.
    pub fn take(&self) -> Option<u64> {
        let now = Instant::now();
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let s = s.get_or_insert(State {
            since: now,
            logged: 0,
            held_back: 0,
        });
        if now.duration_since(s.since) >= Duration::from_secs(60) {
            s.since = now;
            s.logged = 0;
        }
        if s.logged >= self.per_minute {
            s.held_back += 1;
            return None;
        }
        s.logged += 1;
        Some(std::mem::take(&mut s.held_back))
    }
}

/// `tracing::event!` at `$level` while `$budget` ([`Budget`]) allows,
/// `tracing::debug!` past it.
#[macro_export]
macro_rules! log_limited {
    ($budget:expr, $level:expr, $($arg:tt)+) => {
        match $budget.take() {
            Some(0) => tracing::event!($level, $($arg)+),
            Some(held_back) => {
                tracing::event!($level, held_back, "lines like the next one went to debug level for a while");
                tracing::event!($level, $($arg)+)
            }
            None => tracing::debug!($($arg)+),
        }
    };
}

#[cfg(test)]
mod tests {
    use super::Budget;

    #[test]
    fn past_the_budget_lines_are_held_back_and_counted() {
        let b = Budget::new(3);
        assert_eq!([b.take(), b.take(), b.take()], [Some(0); 3]);
        assert_eq!(b.take(), None);
        assert_eq!(b.take(), None);
        // A new minute: the next line reports the two held back.
        b.state.lock().unwrap().as_mut().unwrap().since -= std::time::Duration::from_secs(61);
        assert_eq!(b.take(), Some(2));
        assert_eq!(b.take(), Some(0));
    }
}
