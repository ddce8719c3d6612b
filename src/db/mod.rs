//! sqlx queries, one module per table. Returns domain types, never HTTP
//! types. Queries are written to run unchanged on SQLite and Postgres.

mod admin;
mod audit;
mod avatars;
mod broadcast_meta;
mod broadcasts;
mod channel_meta;
mod channels;
mod chat;
mod identities;
mod invites;
pub mod json_id;
mod nodes;
mod users;
mod webhooks;

pub use admin::DeleteChannelError;
pub use audit::{AuditEntry, AUDIT_KEEP_SECS};
pub use broadcast_meta::{BroadcastMeta, BroadcastPatch};
pub use broadcasts::{new_broadcast, BroadcastRow, PAGE as BROADCASTS_PAGE};
pub use channel_meta::{Category, ChannelInfo, ChannelPatch, Scheduled};
pub use channels::{new_stream_key, valid_channel_name, ChannelRow};
pub use chat::{Ban, ChatRow, SITE};
pub use identities::{Identity, NewIdentity};
pub use invites::{Invite, INVITES_OPEN_MAX};
pub use nodes::MAX_NODES;
pub use users::{new_id as new_row_id, Credentials, EmailPurpose, NewUser, Publisher, Role, User};
pub use webhooks::QueuedHook;

use sqlx::any::{install_default_drivers, AnyPoolOptions};
use sqlx::AnyPool;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// An advisory lock from [`Db::try_lock`].
pub struct NodeLock {
    conn: Option<sqlx::pool::PoolConnection<sqlx::Any>>,
    key: i64,
}

impl NodeLock {
    pub async fn release(mut self) {
        if let Some(mut conn) = self.conn.take() {
            let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(self.key)
                .fetch_one(&mut *conn)
                .await;
            if unlocked.is_err() {
                // Not given back to the pool still holding the lock.
                let _ = conn.detach();
            }
        }
    }
}

impl Drop for NodeLock {
    /// Dropped unreleased (a panic mid-work): its connection is closed, not
    /// pooled, which frees the lock.
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(conn.detach());
        }
    }
}

/// A lock's name as Postgres's 64-bit key: the first 8 bytes of its
/// SHA-256, the same on every node.
fn lock_key(name: &str) -> i64 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(name.as_bytes());
    i64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

/// The connection pool, shared by every request.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    /// This server's `--node-id`: the broadcasts it makes are its own.
    node: std::sync::Arc<str>,
}

impl Db {
    /// Opens (creating the SQLite file if needed) and migrates.
    pub async fn open(url: &str) -> Result<Db, DbError> {
        install_default_drivers();
        let url = if url.starts_with("sqlite:") && !url.contains("mode=") {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}mode=rwc")
        } else {
            url.to_string()
        };
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .map(|p| p.split('?').next().unwrap_or(p))
        {
            if let Some(dir) = Path::new(path).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| DbError::Unavailable(sqlx::Error::Io(e)))?;
                }
            }
        }
        let pool = AnyPoolOptions::new()
            .max_connections(if url.starts_with("sqlite:") { 4 } else { 16 })
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(&url)
            .await
            .map_err(DbError::Unavailable)?;
        if url.starts_with("sqlite:") {
            // WAL lets readers run while a writer commits.
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await?;
        }
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Db {
            pool,
            node: std::sync::Arc::from(""),
        })
    }

    /// This handle as node `id`'s: its new broadcasts carry the id, and
    /// recovery and retention see only those (and rows from before nodes
    /// had ids).
    pub fn for_node(mut self, id: &str) -> Db {
        self.node = std::sync::Arc::from(id);
        self
    }

    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// Postgres's session advisory lock on `name` for this node, if no
    /// other session holds it: work two processes of one node (a restart
    /// overlapping the old one, a copied `--node-id`) must not do at once.
    /// Held until the guard is released (or its connection drops, as when
    /// the process dies). On SQLite, one process owns the file: always
    /// granted.
    pub async fn try_lock(&self, name: &str) -> Result<Option<NodeLock>, DbError> {
        let mut conn = self.pool.acquire().await?;
        if conn.backend_name() != "PostgreSQL" {
            return Ok(Some(NodeLock { conn: None, key: 0 }));
        }
        let key = lock_key(&format!("{}:{name}", self.node));
        let got: bool = sqlx::Row::try_get(
            &sqlx::query("SELECT pg_try_advisory_lock($1)")
                .bind(key)
                .fetch_one(&mut *conn)
                .await?,
            0,
        )?;
        Ok(got.then_some(NodeLock {
            conn: Some(conn),
            key,
        }))
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
}
