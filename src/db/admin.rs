//! What only the operator's CLI does: delete a channel and what hangs on it.

use super::{Db, DbError};
use sqlx::Row;

/// Why a channel was not deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteChannelError {
    #[error("no channel named {0}")]
    NotFound(String),
    #[error("{channel} is {owner}'s channel: delete the user instead (onair user delete {owner})")]
    Owned { channel: String, owner: String },
    #[error("{0} has a broadcast that has not ended: stop it first (onair channel rotate-key {0} ends a live publish)")]
    Live(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Db {
    /// Deletes a channel nobody owns (or whose owner is deleted), with its
    /// chat, bans, schedule and broadcast rows, in one transaction. Returns
    /// the deleted broadcasts' ids, whose recording folders the caller
    /// removes (a server removes any left over at its next start).
    pub async fn delete_channel(&self, name: &str) -> Result<Vec<i64>, DeleteChannelError> {
        let mut tx = self.pool.begin().await.map_err(DbError::from)?;
        let row = sqlx::query(
            "SELECT u.username AS owner, u.deleted_at AS owner_deleted \
             FROM channels c LEFT JOIN users u ON u.id = c.owner_id WHERE c.name = $1",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(DbError::from)?
        .ok_or_else(|| DeleteChannelError::NotFound(name.to_string()))?;
        let owner: Option<String> = row.try_get("owner").map_err(DbError::from)?;
        let owner_deleted: Option<i64> = row.try_get("owner_deleted").map_err(DbError::from)?;
        if let (Some(owner), None) = (owner, owner_deleted) {
            return Err(DeleteChannelError::Owned {
                channel: name.to_string(),
                owner,
            });
        }
        let open = sqlx::query("SELECT id FROM broadcasts WHERE channel = $1 AND ended_at IS NULL")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(DbError::from)?;
        if open.is_some() {
            return Err(DeleteChannelError::Live(name.to_string()));
        }
        let ids = sqlx::query("SELECT id FROM broadcasts WHERE channel = $1")
            .bind(name)
            .fetch_all(&mut *tx)
            .await
            .map_err(DbError::from)?
            .iter()
            .map(|r| r.try_get::<i64, _>("id"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(DbError::from)?;
        for table in ["broadcasts", "chat_messages", "chat_bans", "schedules"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE channel = $1"
            )))
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(DbError::from)?;
        }
        sqlx::query("DELETE FROM channels WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(DbError::from)?;
        tx.commit().await.map_err(DbError::from)?;
        Ok(ids)
    }

    /// Channels with a broadcast that has not ended: live now on a server
    /// that records, as the database sees it.
    pub async fn live_channels(&self) -> Result<Vec<String>, DbError> {
        let rows = sqlx::query(
            "SELECT DISTINCT channel FROM broadcasts WHERE ended_at IS NULL ORDER BY channel",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("channel"))
            .collect::<Result<_, _>>()?)
    }
}
