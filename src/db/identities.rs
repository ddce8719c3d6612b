//! Provider identities (OpenID Connect) linked to accounts.

use super::users::{unique_to_conflict, unix_now, User};
use super::{Db, DbError};
use sqlx::Row;

/// An identity to link: the provider's id (as configured) and the
/// issuer's subject for the person.
#[derive(Debug, Clone, Copy)]
pub struct NewIdentity<'a> {
    pub provider: &'a str,
    pub subject: &'a str,
    pub email: Option<&'a str>,
}

/// A linked identity, as the account page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub provider: String,
    pub email: Option<String>,
    /// Unix seconds.
    pub linked_at: i64,
}

pub(super) async fn insert_identity(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user_id: i64,
    identity: NewIdentity<'_>,
    now: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO user_identities (provider, subject, user_id, email, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(identity.provider)
    .bind(identity.subject)
    .bind(user_id)
    .bind(identity.email.map(str::to_string))
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(|e| unique_to_conflict(e, format!("identity {}", identity.provider)))?;
    Ok(())
}

impl Db {
    /// The account an identity signs in to, deleted or suspended ones
    /// included (the caller says why they cannot).
    pub async fn identity_user(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<User>, DbError> {
        let row =
            sqlx::query("SELECT user_id FROM user_identities WHERE provider = $1 AND subject = $2")
                .bind(provider)
                .bind(subject)
                .fetch_optional(&self.pool)
                .await?;
        match row {
            Some(r) => self.user_by_id(r.try_get("user_id")?).await,
            None => Ok(None),
        }
    }

    /// Links an identity to an existing account. `Conflict` when the
    /// identity is someone's already, or the account has one from this
    /// provider.
    pub async fn link_identity(
        &self,
        user_id: i64,
        identity: NewIdentity<'_>,
    ) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        insert_identity(&mut tx, user_id, identity, unix_now()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// `false` when the account had none from that provider.
    pub async fn unlink_identity(&self, user_id: i64, provider: &str) -> Result<bool, DbError> {
        let n = sqlx::query("DELETE FROM user_identities WHERE user_id = $1 AND provider = $2")
            .bind(user_id)
            .bind(provider)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    pub async fn identities(&self, user_id: i64) -> Result<Vec<Identity>, DbError> {
        let rows = sqlx::query(
            "SELECT provider, email, created_at FROM user_identities \
             WHERE user_id = $1 ORDER BY provider",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Identity {
                    provider: r.try_get("provider")?,
                    email: r.try_get("email")?,
                    linked_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// The one live account whose verified address is `email` (case
    /// folded); `None` when there is none, or more than one (addresses are
    /// not unique, and a guess between two would hand one to the other).
    pub async fn user_by_verified_email(&self, email: &str) -> Result<Option<User>, DbError> {
        let rows = sqlx::query(
            "SELECT id FROM users WHERE LOWER(email) = LOWER($1) AND email_verified = 1 \
             AND deleted_at IS NULL LIMIT 2",
        )
        .bind(email)
        .fetch_all(&self.pool)
        .await?;
        match rows.as_slice() {
            [one] => self.user_by_id(one.try_get("id")?).await,
            _ => Ok(None),
        }
    }

    /// Whether a password signs in to this account (accounts made through a
    /// provider have none until the user sets one).
    pub async fn has_password(&self, user_id: i64) -> Result<bool, DbError> {
        let row = sqlx::query("SELECT password_hash FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => !r.try_get::<String, _>("password_hash")?.is_empty(),
            None => false,
        })
    }
}
