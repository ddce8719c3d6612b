//! The audit log: moderator and admin actions, newest first.

use super::users::unix_now;
use super::{Db, DbError};
use sqlx::Row;
use std::sync::atomic::{AtomicI64, Ordering};

/// Entries are kept this long: the table grows with what trusted hands
/// do, and a year answers "who did this" for anything still in question.
pub const AUDIT_KEEP_SECS: i64 = 366 * 24 * 3600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

/// Entry ids: microseconds since the epoch, times 1024 plus random bits
/// (another node writing at the same microsecond), and never below the
/// last id this process gave, so the log reads in the order things were
/// done.
fn entry_id() -> i64 {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    let candidate = (micros << 10) | (rand::random::<u16>() & 0x3ff) as i64;
    let prev = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(candidate.max(last + 1))
        })
        .unwrap_or(0);
    candidate.max(prev + 1)
}

impl Db {
    /// Records one action, and forgets what is past [`AUDIT_KEEP_SECS`].
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: &str,
    ) -> Result<(), DbError> {
        let now = unix_now();
        sqlx::query(
            "INSERT INTO audit_log (id, at, actor, action, target, detail) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(entry_id())
        .bind(now)
        .bind(actor)
        .bind(action)
        .bind(target)
        .bind(detail)
        .execute(&self.pool)
        .await?;
        sqlx::query("DELETE FROM audit_log WHERE at < $1")
            .bind(now - AUDIT_KEEP_SECS)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Up to `limit` entries older than the entry `before` (all, from the
    /// newest, without it).
    pub async fn audit_page(
        &self,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, DbError> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, target, detail FROM audit_log \
             WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }
}
