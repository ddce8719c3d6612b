//! The servers sharing this database, and the tag each one's ids carry.

use super::users::unix_now;
use super::{Db, DbError};
use sqlx::Row;

/// Nodes one database can hold: a tag takes the low 10 bits of an id.
pub const MAX_NODES: i64 = 1024;

impl Db {
    /// This node's tag (0 to [`MAX_NODES`] - 1), registered on first use
    /// and the same on every start after: the smallest one free.
    pub async fn node_tag(&self) -> Result<i64, DbError> {
        for _ in 0..MAX_NODES + 1 {
            let mine = sqlx::query("SELECT tag FROM nodes WHERE node_id = $1")
                .bind(self.node_id())
                .fetch_optional(self.pool())
                .await?;
            if let Some(r) = mine {
                let tag: i64 = r.try_get(0)?;
                // Informative (when each node last started): a database
                // busy with writes does not stop the start over it.
                let _ = sqlx::query("UPDATE nodes SET started_at = $1 WHERE tag = $2")
                    .bind(unix_now())
                    .bind(tag)
                    .execute(self.pool())
                    .await;
                return Ok(tag);
            }
            let used: Vec<i64> = sqlx::query("SELECT tag FROM nodes ORDER BY tag")
                .fetch_all(self.pool())
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            let Some(free) = (0..MAX_NODES).find(|t| used.binary_search(t).is_err()) else {
                return Err(DbError::Invalid(
                    "node: every one of the 1024 node tags is taken",
                ));
            };
            // Two nodes starting at once may pick the same tag: the loser's
            // insert fails and it looks again.
            let _ = sqlx::query("INSERT INTO nodes (tag, node_id, started_at) VALUES ($1, $2, $3)")
                .bind(free)
                .bind(self.node_id())
                .bind(unix_now())
                .execute(self.pool())
                .await;
        }
        Err(DbError::Invalid("node: no tag could be registered"))
    }
}
