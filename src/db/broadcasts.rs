//! Broadcasts: one row per publish, with its recording's size and length.

use super::{Db, DbError};
use sqlx::Row;

/// Page size of `GET /api/channels/CHANNEL/broadcasts`.
pub const PAGE: i64 = 20;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct BroadcastRow {
    #[serde(with = "crate::db::json_id")]
    #[schema(value_type = String)]
    pub id: i64,
    pub channel: String,
    /// The channel's title when the broadcast started (`None` if it had
    /// none).
    pub title: Option<String>,
    /// Unix milliseconds.
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub duration_ms: i64,
    pub size_bytes: i64,
    /// False when the recording was off (or failed before its first segment).
    pub recorded: bool,
}

/// The columns every query reads (a macro so queries stay `&'static str`,
/// which sqlx requires of SQL text).
macro_rules! select {
    ($rest:literal) => {
        concat!(
            "SELECT id, channel, title, started_at, ended_at, duration_ms, size_bytes, recorded FROM broadcasts ",
            $rest
        )
    };
}

fn row(r: &sqlx::any::AnyRow) -> Result<BroadcastRow, sqlx::Error> {
    Ok(BroadcastRow {
        id: r.try_get("id")?,
        channel: r.try_get("channel")?,
        title: r.try_get("title")?,
        started_at: r.try_get("started_at")?,
        ended_at: r.try_get("ended_at")?,
        duration_ms: r.try_get("duration_ms")?,
        size_bytes: r.try_get("size_bytes")?,
        recorded: r.try_get::<i64, _>("recorded")? != 0,
    })
}

/// A broadcast's row before it is stored: its id is minted here, so
/// recording can start before the database answers. Ids grow with the
/// start time (milliseconds << 10 plus randomness), so "newest first" is
/// "highest id first" and an id is a stable cursor.
pub fn new_broadcast(
    channel: &str,
    title: Option<&str>,
    started_at_ms: i64,
    recorded: bool,
) -> BroadcastRow {
    BroadcastRow {
        id: (started_at_ms << 10) | (rand::random::<u16>() as i64 & 0x3ff),
        channel: channel.to_string(),
        title: title.map(str::to_string),
        started_at: started_at_ms,
        ended_at: None,
        duration_ms: 0,
        size_bytes: 0,
        recorded,
    }
}

impl Db {
    /// A new broadcast, stored.
    pub async fn create_broadcast(
        &self,
        channel: &str,
        title: Option<&str>,
        started_at_ms: i64,
        recorded: bool,
    ) -> Result<BroadcastRow, DbError> {
        let row = new_broadcast(channel, title, started_at_ms, recorded);
        self.insert_broadcast(&row).await?;
        Ok(row)
    }

    /// Stores `row` (from [`new_broadcast`]). Idempotent: a row already
    /// stored under its id (an earlier try whose answer was lost) is
    /// success.
    pub async fn insert_broadcast(&self, row: &BroadcastRow) -> Result<(), DbError> {
        let r = sqlx::query(
            "INSERT INTO broadcasts (id, channel, title, started_at, recorded, node_id) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(row.id)
        .bind(&row.channel)
        .bind(&row.title)
        .bind(row.started_at)
        .bind(row.recorded as i64)
        .bind(self.node_id())
        .execute(self.pool())
        .await;
        match r {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Length and size so far, while the broadcast goes on.
    pub async fn update_broadcast(
        &self,
        id: i64,
        duration_ms: i64,
        size_bytes: i64,
    ) -> Result<(), DbError> {
        sqlx::query("UPDATE broadcasts SET duration_ms = $1, size_bytes = $2 WHERE id = $3")
            .bind(duration_ms)
            .bind(size_bytes)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn finish_broadcast(
        &self,
        id: i64,
        ended_at_ms: i64,
        duration_ms: i64,
        size_bytes: i64,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE broadcasts SET ended_at = $1, duration_ms = $2, size_bytes = $3 WHERE id = $4",
        )
        .bind(ended_at_ms)
        .bind(duration_ms)
        .bind(size_bytes)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Marks a broadcast as not recorded: it ended before anything was
    /// written (no picture ever came), so there is nothing to replay.
    pub async fn unrecord_broadcast(&self, id: i64) -> Result<(), DbError> {
        sqlx::query("UPDATE broadcasts SET recorded = 0 WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn broadcast(&self, id: i64) -> Result<Option<BroadcastRow>, DbError> {
        let q = select!("WHERE id = $1");
        let r = sqlx::query(q).bind(id).fetch_optional(self.pool()).await?;
        Ok(r.as_ref().map(row).transpose()?)
    }

    /// A page of a channel's broadcasts, newest first, after `cursor` (an
    /// id from a previous page).
    pub async fn broadcasts(
        &self,
        channel: &str,
        cursor: Option<i64>,
        limit: i64,
    ) -> Result<Vec<BroadcastRow>, DbError> {
        let q = select!("WHERE channel = $1 AND id < $2 ORDER BY id DESC LIMIT $3");
        let rows = sqlx::query(q)
            .bind(channel)
            .bind(cursor.unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(row).collect::<Result<_, _>>()?)
    }

    /// This node's broadcasts that never ended (it died during them).
    /// Another node's are live there, or that node's to recover.
    pub async fn unfinished_broadcasts(&self) -> Result<Vec<BroadcastRow>, DbError> {
        let q = select!("WHERE ended_at IS NULL AND node_id = $1 ORDER BY id");
        let rows = sqlx::query(q)
            .bind(self.node_id())
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(row).collect::<Result<_, _>>()?)
    }

    /// Every recorded broadcast of this node, oldest first (for retention:
    /// its files are on this node's disk).
    pub async fn recorded_broadcasts(&self) -> Result<Vec<BroadcastRow>, DbError> {
        let q = select!("WHERE recorded <> 0 AND node_id = $1 ORDER BY id");
        let rows = sqlx::query(q)
            .bind(self.node_id())
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(row).collect::<Result<_, _>>()?)
    }

    /// Makes the broadcasts from before nodes had ids this node's; returns
    /// how many. The first node to start after the upgrade takes them: on
    /// a single server, its own.
    pub async fn claim_unowned_broadcasts(&self) -> Result<u64, DbError> {
        if self.node_id().is_empty() {
            return Ok(0);
        }
        let r = sqlx::query("UPDATE broadcasts SET node_id = $1 WHERE node_id = ''")
            .bind(self.node_id())
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected())
    }

    pub async fn delete_broadcast(&self, id: i64) -> Result<(), DbError> {
        sqlx::query("DELETE FROM broadcasts WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Whether the channel's broadcasts are recorded (default yes).
    pub async fn channel_recording(&self, channel: &str) -> Result<bool, DbError> {
        let r = sqlx::query("SELECT recording FROM channels WHERE name = $1")
            .bind(channel)
            .fetch_optional(self.pool())
            .await?;
        Ok(match r {
            Some(r) => r.try_get::<i64, _>("recording")? != 0,
            None => true,
        })
    }

    pub async fn set_channel_recording(&self, channel: &str, on: bool) -> Result<bool, DbError> {
        let r = sqlx::query("UPDATE channels SET recording = $1 WHERE name = $2")
            .bind(on as i64)
            .bind(channel)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }
}
