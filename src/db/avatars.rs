//! Which profile picture each account shows (the pictures themselves are
//! in the object store, src/avatar.rs).

use super::{Db, DbError};
use sqlx::Row;

impl Db {
    /// Points the account at avatar `version` (0: none) and returns the
    /// one it replaced, whose files the caller removes. A compare-and-swap,
    /// so two uploads racing each get back a distinct old version and no
    /// picture's files are left orphaned or removed while in use.
    pub async fn set_avatar_version(&self, user_id: i64, version: i64) -> Result<i64, DbError> {
        loop {
            let old = self
                .avatar_version(user_id)
                .await?
                .ok_or(DbError::Invalid("user"))?;
            let done = sqlx::query(
                "UPDATE users SET avatar_version = $1 WHERE id = $2 AND avatar_version = $3",
            )
            .bind(version)
            .bind(user_id)
            .bind(old)
            .execute(&self.pool)
            .await?;
            if done.rows_affected() == 1 {
                return Ok(old);
            }
        }
    }

    pub async fn avatar_version(&self, user_id: i64) -> Result<Option<i64>, DbError> {
        let row = sqlx::query("SELECT avatar_version FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// The id and avatar version of the account named `username`, unless
    /// it is deleted.
    pub async fn avatar_of(&self, username: &str) -> Result<Option<(i64, i64)>, DbError> {
        if !super::valid_channel_name(username) {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT id, avatar_version FROM users WHERE username = $1 AND deleted_at IS NULL",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|r| Ok::<_, sqlx::Error>((r.try_get(0)?, r.try_get(1)?)))
            .transpose()?)
    }
}
