//! Chat history and per-channel bans.

use super::users::unix_now;
use super::{Db, DbError};
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRow {
    /// Microseconds since the epoch, unique and increasing: the order.
    pub id: i64,
    pub channel: String,
    pub user_id: i64,
    pub username: String,
    pub text: String,
    pub at_ms: i64,
}

fn row_to_chat(r: &sqlx::any::AnyRow) -> Result<ChatRow, DbError> {
    Ok(ChatRow {
        id: r.try_get("id")?,
        channel: r.try_get("channel")?,
        user_id: r.try_get("user_id")?,
        username: r.try_get("username")?,
        text: r.try_get("text")?,
        at_ms: r.try_get("at_ms")?,
    })
}

/// The insert of one message, for the pool or a transaction.
fn insert_chat_query(m: &ChatRow) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments> {
    sqlx::query(
        "INSERT INTO chat_messages (id, channel, user_id, username, text, at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(m.id)
    .bind(&m.channel)
    .bind(m.user_id)
    .bind(&m.username)
    .bind(&m.text)
    .bind(m.at_ms)
}

/// The `chat_bans` channel of a site-wide ban: no channel is named ''.
pub const SITE: &str = "";

/// A user's standing in one channel's chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ban {
    Banned,
    /// Timed out until this unix second.
    Until(i64),
}

impl Db {
    pub async fn insert_chat(&self, m: &ChatRow) -> Result<(), DbError> {
        insert_chat_query(m).execute(&self.pool).await?;
        Ok(())
    }

    /// Stores several messages in one transaction (one commit).
    pub async fn insert_chat_batch(&self, rows: &[ChatRow]) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        for m in rows {
            insert_chat_query(m).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The last `n` messages not deleted, oldest first.
    pub async fn recent_chat(&self, channel: &str, n: i64) -> Result<Vec<ChatRow>, DbError> {
        let rows = sqlx::query(
            "SELECT id, channel, user_id, username, text, at_ms FROM chat_messages \
             WHERE channel = $1 AND deleted_at IS NULL ORDER BY id DESC LIMIT $2",
        )
        .bind(channel)
        .bind(n)
        .fetch_all(&self.pool)
        .await?;
        let mut out = rows
            .iter()
            .map(row_to_chat)
            .collect::<Result<Vec<_>, _>>()?;
        out.reverse();
        Ok(out)
    }

    pub async fn chat_message(&self, channel: &str, id: i64) -> Result<Option<ChatRow>, DbError> {
        let row = sqlx::query(
            "SELECT id, channel, user_id, username, text, at_ms FROM chat_messages \
             WHERE channel = $1 AND id = $2 AND deleted_at IS NULL",
        )
        .bind(channel)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(row_to_chat).transpose()
    }

    /// Marks a message deleted (kept for the record); false if there was none.
    pub async fn delete_chat(&self, channel: &str, id: i64) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE chat_messages SET deleted_at = $1 \
             WHERE channel = $2 AND id = $3 AND deleted_at IS NULL",
        )
        .bind(unix_now())
        .bind(channel)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn set_ban(&self, channel: &str, user_id: i64, ban: Ban) -> Result<(), DbError> {
        let until = match ban {
            Ban::Banned => None,
            Ban::Until(t) => Some(t),
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM chat_bans WHERE channel = $1 AND user_id = $2")
            .bind(channel)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO chat_bans (channel, user_id, until_at) VALUES ($1, $2, $3)")
            .bind(channel)
            .bind(user_id)
            .bind(until)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn lift_ban(&self, channel: &str, user_id: i64) -> Result<(), DbError> {
        sqlx::query("DELETE FROM chat_bans WHERE channel = $1 AND user_id = $2")
            .bind(channel)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Site-wide bans and time-outs in force, by user name.
    pub async fn site_bans(&self) -> Result<Vec<(String, Ban)>, DbError> {
        let rows = sqlx::query(
            "SELECT u.username AS username, b.until_at AS until_at \
             FROM chat_bans b JOIN users u ON u.id = b.user_id \
             WHERE b.channel = $1 AND (b.until_at IS NULL OR b.until_at > $2) \
             ORDER BY u.username",
        )
        .bind(SITE)
        .bind(unix_now())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let until: Option<i64> = r.try_get("until_at")?;
                Ok((
                    r.try_get("username")?,
                    until.map_or(Ban::Banned, Ban::Until),
                ))
            })
            .collect()
    }

    /// The ban or time-out in force now, if any. `SITE` names the
    /// site-wide one.
    pub async fn ban(&self, channel: &str, user_id: i64) -> Result<Option<Ban>, DbError> {
        let row = sqlx::query("SELECT until_at FROM chat_bans WHERE channel = $1 AND user_id = $2")
            .bind(channel)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let until: Option<i64> = row.try_get("until_at")?;
        Ok(match until {
            None => Some(Ban::Banned),
            Some(t) if t > unix_now() => Some(Ban::Until(t)),
            Some(_) => None,
        })
    }
}
