//! The webhook queue: deliveries not yet accepted by their receiver, kept
//! across restarts and bounded in rows.

use super::{Db, DbError};
use sqlx::Row;

/// One delivery: an event's body for one receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedHook {
    pub id: i64,
    pub url: String,
    pub event: String,
    pub body: String,
    pub attempts: i64,
    pub next_at: i64,
}

fn row(r: &sqlx::any::AnyRow) -> Result<QueuedHook, sqlx::Error> {
    Ok(QueuedHook {
        id: r.try_get("id")?,
        url: r.try_get("url")?,
        event: r.try_get("event")?,
        body: r.try_get("body")?,
        attempts: r.try_get("attempts")?,
        next_at: r.try_get("next_at")?,
    })
}

impl Db {
    /// Queues a delivery, due now unless the receiver's queue is held back
    /// behind a failed delivery: then it waits as long, to stay in order.
    /// With `max_rows` already queued for that receiver, its oldest
    /// deliveries are dropped to make room; returns how many were.
    pub async fn webhook_enqueue(
        &self,
        id: i64,
        url: &str,
        event: &str,
        body: &str,
        now_ms: i64,
        max_rows: i64,
    ) -> Result<u64, DbError> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS n, MAX(next_at) AS t FROM webhook_queue WHERE url = $1",
        )
        .bind(url)
        .fetch_one(self.pool())
        .await?;
        let queued: i64 = r.try_get("n")?;
        let due = r
            .try_get::<Option<i64>, _>("t")?
            .unwrap_or(now_ms)
            .max(now_ms);
        let mut dropped = 0;
        if queued >= max_rows {
            let excess = queued - max_rows + 1;
            dropped = sqlx::query(
                "DELETE FROM webhook_queue WHERE url = $1 AND id IN \
                 (SELECT id FROM webhook_queue WHERE url = $1 ORDER BY id LIMIT $2)",
            )
            .bind(url)
            .bind(excess)
            .execute(self.pool())
            .await?
            .rows_affected();
        }
        sqlx::query(
            "INSERT INTO webhook_queue (id, url, event, body, attempts, next_at) \
             VALUES ($1, $2, $3, $4, 0, $5)",
        )
        .bind(id)
        .bind(url)
        .bind(event)
        .bind(body)
        .bind(due)
        .execute(self.pool())
        .await?;
        Ok(dropped)
    }

    /// Deliveries for `url` due at `now_ms`, oldest first.
    pub async fn webhook_due(
        &self,
        url: &str,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<QueuedHook>, DbError> {
        let rows = sqlx::query(
            "SELECT id, url, event, body, attempts, next_at FROM webhook_queue \
             WHERE url = $1 AND next_at <= $2 ORDER BY id LIMIT $3",
        )
        .bind(url)
        .bind(now_ms)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(row).collect::<Result<_, _>>()?)
    }

    /// When the next delivery for `url` is due, if any is queued.
    pub async fn webhook_next_due(&self, url: &str) -> Result<Option<i64>, DbError> {
        let r = sqlx::query("SELECT MIN(next_at) AS t FROM webhook_queue WHERE url = $1")
            .bind(url)
            .fetch_one(self.pool())
            .await?;
        Ok(r.try_get::<Option<i64>, _>("t")?)
    }

    /// The receiver took it (or it is given up on).
    pub async fn webhook_done(&self, id: i64, url: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM webhook_queue WHERE id = $1 AND url = $2")
            .bind(id)
            .bind(url)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Delivery `id` failed: it is tried again at `next_at_ms`, and no
    /// other delivery for `url` goes before then.
    pub async fn webhook_hold(
        &self,
        url: &str,
        id: i64,
        attempts: i64,
        next_at_ms: i64,
    ) -> Result<(), DbError> {
        sqlx::query("UPDATE webhook_queue SET attempts = $1 WHERE id = $2 AND url = $3")
            .bind(attempts)
            .bind(id)
            .bind(url)
            .execute(self.pool())
            .await?;
        sqlx::query("UPDATE webhook_queue SET next_at = $1 WHERE url = $2 AND next_at < $1")
            .bind(next_at_ms)
            .bind(url)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Drops deliveries for receivers no longer configured; returns how
    /// many.
    pub async fn webhook_forget_others(&self, urls: &[String]) -> Result<u64, DbError> {
        let mut forgotten = 0;
        let queued: Vec<String> = sqlx::query("SELECT DISTINCT url FROM webhook_queue")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| r.try_get("url"))
            .collect::<Result<_, _>>()?;
        for url in queued.iter().filter(|u| !urls.contains(u)) {
            forgotten += sqlx::query("DELETE FROM webhook_queue WHERE url = $1")
                .bind(url)
                .execute(self.pool())
                .await?
                .rows_affected();
        }
        Ok(forgotten)
    }

    /// Deliveries queued, all receivers together.
    pub async fn webhook_queued(&self) -> Result<i64, DbError> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM webhook_queue")
            .fetch_one(self.pool())
            .await?
            .try_get("n")?)
    }
}
