//! What a relay did and refused, for operators and tests: plain atomics,
//! one relaxed add per event.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// A relay's counters (see [`crate::TurnRelay::stats`]).
        #[derive(Debug, Default)]
        pub(crate) struct Stats {
            $(pub(crate) $name: AtomicU64,)*
        }

        /// A snapshot of a relay's counters.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct Counters {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl Stats {
            pub(crate) fn snapshot(&self) -> Counters {
                Counters {
                    $($name: self.$name.load(Ordering::Relaxed),)*
                }
            }
        }
    };
}

counters! {
    /// Datagrams relayed from clients to peers.
    to_peers,
    to_peers_bytes,
    /// Datagrams relayed from peers to clients.
    to_clients,
    to_clients_bytes,
    /// CreatePermission and ChannelBind requests refused with 403 Forbidden.
    forbidden_requests,
    /// Datagrams dropped because the peer they were for or from is refused.
    forbidden_packets,
    /// Datagrams dropped for want of a permission or a channel.
    unpermitted_packets,
    /// Datagrams (and their bytes) dropped over an allocation's byte rate.
    over_rate_packets,
    over_rate_bytes,
    /// Requests refused at a cap: permissions and channels per allocation,
    /// allocations per user.
    permission_cap_hits,
    channel_cap_hits,
    user_cap_hits,
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}
