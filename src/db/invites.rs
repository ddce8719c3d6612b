//! Single-use invites to register (`--registration invite`).

use super::users::{new_id, unix_now, Role};
use super::{Db, DbError};
use sqlx::Row;

/// Invites an admin may have waiting (unused and unexpired) at once: each
/// is a row and a way in, so even a trusted hand is bounded.
pub const INVITES_OPEN_MAX: i64 = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    pub id: i64,
    /// The role the account it makes starts with.
    pub role: Role,
    /// The admin who made it.
    pub created_by: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    /// The account it made, once used.
    pub used_by: Option<String>,
}

impl Db {
    /// Stores a new invite; `None` when [`INVITES_OPEN_MAX`] are waiting.
    pub async fn create_invite(
        &self,
        token_hash: &str,
        created_by: i64,
        role: Role,
        expires_at: i64,
    ) -> Result<Option<Invite>, DbError> {
        let now = unix_now();
        let open: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM invites WHERE used_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?;
        if open >= INVITES_OPEN_MAX {
            return Ok(None);
        }
        let id = new_id();
        sqlx::query(
            "INSERT INTO invites (id, token_hash, created_by, role, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(token_hash)
        .bind(created_by)
        .bind(role.as_str())
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(self.invites().await?.into_iter().find(|i| i.id == id))
    }

    /// Every invite, newest first, with who made and who used it.
    pub async fn invites(&self) -> Result<Vec<Invite>, DbError> {
        let rows = sqlx::query(
            "SELECT i.id, i.role, i.created_at, i.expires_at, \
                    c.username AS created_by, u.username AS used_by \
             FROM invites i \
             LEFT JOIN users c ON c.id = i.created_by \
             LEFT JOIN users u ON u.id = i.used_by \
             ORDER BY i.created_at DESC, i.id DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let role: String = r.try_get("role")?;
                Ok(Invite {
                    id: r.try_get("id")?,
                    role: Role::parse(&role).unwrap_or(Role::Viewer),
                    created_by: r.try_get("created_by")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                    used_by: r.try_get("used_by")?,
                })
            })
            .collect()
    }

    /// The role an invite grants, if it is unused and unexpired.
    pub async fn invite_role(&self, token_hash: &str) -> Result<Option<Role>, DbError> {
        let row = sqlx::query(
            "SELECT role FROM invites \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(unix_now())
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => Role::parse(&r.try_get::<String, _>("role")?),
            None => None,
        })
    }

    /// Spends an invite: its id and the role it grants, if it is unused and
    /// unexpired. One statement, so two registrations racing for one
    /// invite cannot both have it. [`Self::invite_used_by`] then records
    /// the account, or [`Self::release_invite`] gives it back.
    pub async fn spend_invite(&self, token_hash: &str) -> Result<Option<(i64, Role)>, DbError> {
        let row = sqlx::query(
            "UPDATE invites SET used_at = $2 \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING id, role",
        )
        .bind(token_hash)
        .bind(unix_now())
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let (id, role): (i64, String) = (r.try_get("id")?, r.try_get("role")?);
        Ok(Role::parse(&role).map(|role| (id, role)))
    }

    pub async fn invite_used_by(&self, id: i64, user: i64) -> Result<(), DbError> {
        sqlx::query("UPDATE invites SET used_by = $2 WHERE id = $1")
            .bind(id)
            .bind(user)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Gives back a spent invite whose account was not made after all.
    pub async fn release_invite(&self, id: i64) -> Result<(), DbError> {
        sqlx::query("UPDATE invites SET used_at = NULL WHERE id = $1 AND used_by IS NULL")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Withdraws an unused invite; false if there is none with that id
    /// (a used one stays on the record).
    pub async fn delete_invite(&self, id: i64) -> Result<bool, DbError> {
        let done = sqlx::query("DELETE FROM invites WHERE id = $1 AND used_at IS NULL")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
