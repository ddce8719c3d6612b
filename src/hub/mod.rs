//! The hub: where ingest and egress meet. One [`Stream`] per live channel;
//! a publisher writes [`Unit`](crate::media::Unit)s, every consumer is a
//! [`Reader`] with its own bounded queue.

pub mod census;
pub mod keys;
pub mod lease;
mod reader;
mod registry;
mod stream;

pub use reader::{Reader, ReaderStats};
pub use registry::{Hub, Publisher};
pub use stream::{Health, Source, Stream};

use std::future::Future;

/// Who may publish where. The database implements it; tests can stand in.
pub trait Channels: Send + Sync + 'static {
    /// The channel that owns `key`, compared in constant time, or `None`.
    fn channel_for_key(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<String>, crate::db::DbError>> + Send;
    /// Whether a channel of that name exists (live or not).
    fn exists(&self, name: &str) -> impl Future<Output = Result<bool, crate::db::DbError>> + Send;
}

#[cfg(test)]
mod tests;
