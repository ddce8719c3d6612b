//! Users and their server-side sessions.

use super::{Db, DbError};
use sqlx::Row;

/// What a user may do. Each has a channel named after them; every role but
/// viewer streams on it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including categories and other users' roles.
    Admin,
    /// Moderates chat in every channel.
    Moderator,
    /// A plain account that streams.
    Broadcaster,
    /// Watches, chats and likes; streams once given another role.
    Viewer,
}

/// Who a channel's publisher is, as the publish rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publisher {
    /// A channel made by the operator (`onair channel create`): no owner.
    Operator,
    Owner {
        role: Role,
        email_verified: bool,
        suspended: bool,
    },
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Moderator => "moderator",
            Role::Broadcaster => "broadcaster",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "moderator" => Some(Role::Moderator),
            "broadcaster" => Some(Role::Broadcaster),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    /// Every role but viewer streams on its own channel.
    pub fn streams(self) -> bool {
        self != Role::Viewer
    }

    /// Admins and moderators moderate every channel's chat.
    pub fn moderates_everywhere(self) -> bool {
        matches!(self, Role::Admin | Role::Moderator)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct User {
    #[serde(with = "crate::db::json_id")]
    #[schema(value_type = String)]
    pub id: i64,
    pub username: String,
    pub role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub email_verified: bool,
    /// Unix seconds.
    pub created_at: i64,
    #[serde(skip)]
    pub deleted_at: Option<i64>,
    /// Suspended by an admin: no sign-in, chat or streaming until lifted.
    pub suspended: bool,
}

/// What [`Db::create_user_with`] makes.
pub struct NewUser<'a> {
    pub username: &'a str,
    /// Empty: no password signs in (an account made through a provider).
    pub password_hash: &'a str,
    pub email: Option<&'a str>,
    pub email_verified: bool,
    pub role: Role,
    /// An existing channel of that name with no owner becomes theirs.
    pub adopt_channel: bool,
    pub identity: Option<super::NewIdentity<'a>>,
}

/// A user with the hash login needs; never leaves the server.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: User,
    pub password_hash: String,
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Ids as in `channels`: the clock's seconds in the high half, randomness in
/// the low half; no autoincrement, whose syntax differs between backends.
pub fn new_id() -> i64 {
    (rand::random::<u32>() as i64) | ((unix_now() & 0x7fff_ffff) << 32)
}

const USER_COLUMNS: &str =
    "id, username, password_hash, email, email_verified, role, created_at, deleted_at, suspended_at";

fn row_to_credentials(r: &sqlx::any::AnyRow) -> Result<Credentials, DbError> {
    let role: String = r.try_get("role")?;
    Ok(Credentials {
        user: User {
            id: r.try_get("id")?,
            username: r.try_get("username")?,
            role: Role::parse(&role).unwrap_or(Role::Viewer),
            email: r.try_get("email")?,
            email_verified: r.try_get::<i64, _>("email_verified")? != 0,
            created_at: r.try_get("created_at")?,
            deleted_at: r.try_get("deleted_at")?,
            suspended: r.try_get::<Option<i64>, _>("suspended_at")?.is_some(),
        },
        password_hash: r.try_get("password_hash")?,
    })
}

pub(crate) fn unique_to_conflict(e: sqlx::Error, what: String) -> DbError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => DbError::Conflict(what),
        _ => DbError::Query(e),
    }
}

impl Db {
    /// Creates a user and the channel named after them, in one transaction.
    /// An existing channel of that name is adopted only when `adopt_channel`
    /// (the admin CLI) and nobody owns it; otherwise the name is taken.
    pub async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        email: Option<&str>,
        role: Role,
        adopt_channel: bool,
    ) -> Result<(User, super::ChannelRow), DbError> {
        let new = NewUser {
            username,
            password_hash,
            email,
            email_verified: false,
            role,
            adopt_channel,
            identity: None,
        };
        self.create_user_with(new).await
    }

    /// [`create_user`](Self::create_user), with the email perhaps already
    /// verified and an identity linked, all in one transaction: an identity
    /// that another sign-up linked first makes nothing.
    pub async fn create_user_with(
        &self,
        new: NewUser<'_>,
    ) -> Result<(User, super::ChannelRow), DbError> {
        let NewUser {
            username,
            password_hash,
            email,
            email_verified,
            role,
            adopt_channel,
            identity,
        } = new;
        let now = unix_now();
        let id = new_id();
        if self.credentials(username).await?.is_some() {
            return Err(DbError::Conflict(format!("user {username}")));
        }
        // Every statement in the transaction writes, the first one included:
        // a SQLite transaction that read first and then writes fails at once
        // (SQLITE_BUSY_SNAPSHOT) if another connection wrote in between.
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO users (id, username, password_hash, email, role, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(username)
        .bind(password_hash)
        .bind(email.map(str::to_string))
        .bind(role.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_to_conflict(e, format!("user {username}")))?;
        if email_verified {
            sqlx::query("UPDATE users SET email_verified = 1 WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(identity) = identity {
            super::identities::insert_identity(&mut tx, id, identity, now).await?;
        }
        let adopted = adopt_channel
            && sqlx::query(
                "UPDATE channels SET owner_id = $1 WHERE name = $2 AND owner_id IS NULL",
            )
            .bind(id)
            .bind(username)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
        if !adopted {
            let key = super::channels::new_stream_key();
            sqlx::query(
                "INSERT INTO channels (id, name, stream_key, created_at, owner_id) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(new_id())
            .bind(username)
            .bind(&key)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| unique_to_conflict(e, format!("channel {username}")))?;
        }
        tx.commit().await?;
        let channel = self
            .channel(username)
            .await?
            .ok_or(DbError::Invalid("channel"))?;
        Ok((
            User {
                id,
                username: username.to_string(),
                role,
                email: email.map(str::to_string),
                email_verified,
                created_at: now,
                deleted_at: None,
                suspended: false,
            },
            channel,
        ))
    }

    pub async fn credentials(&self, username: &str) -> Result<Option<Credentials>, DbError> {
        // No such name can exist; and Postgres refuses some bytes (NUL).
        if !super::valid_channel_name(username) {
            return Ok(None);
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
        )))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(row_to_credentials).transpose()
    }

    /// Every account, deleted ones too, by name: for the admin CLI.
    pub async fn users(&self) -> Result<Vec<User>, DbError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY username"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| row_to_credentials(r).map(|c| c.user))
            .collect()
    }

    /// Up to `limit` users whose names start with `prefix`, by name, after
    /// the name `after`: the admin console's search.
    pub async fn users_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<User>, DbError> {
        // `_` is a LIKE wildcard and a name character: escaped.
        let pattern = format!("{}%", prefix.replace('\\', "").replace('_', "\\_"));
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users \
             WHERE username LIKE $1 ESCAPE '\\' AND username > $2 \
             ORDER BY username LIMIT $3"
        )))
        .bind(pattern)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| row_to_credentials(r).map(|c| c.user))
            .collect()
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, DbError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .as_ref()
            .map(row_to_credentials)
            .transpose()?
            .map(|c| c.user))
    }

    /// What the publish rules need to know about `channel`'s owner; `None`
    /// when there is no such channel.
    pub async fn publisher(&self, channel: &str) -> Result<Option<Publisher>, DbError> {
        let row = sqlx::query(
            "SELECT c.owner_id AS owner_id, u.email_verified AS verified, u.role AS role, \
                    u.suspended_at AS suspended \
             FROM channels c LEFT JOIN users u ON u.id = c.owner_id WHERE c.name = $1",
        )
        .bind(channel)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let owner: Option<i64> = row.try_get("owner_id")?;
        if owner.is_none() {
            return Ok(Some(Publisher::Operator));
        }
        let verified: Option<i64> = row.try_get("verified")?;
        let role: Option<String> = row.try_get("role")?;
        let suspended: Option<i64> = row.try_get("suspended")?;
        Ok(Some(Publisher::Owner {
            role: role
                .as_deref()
                .and_then(Role::parse)
                .unwrap_or(Role::Viewer),
            email_verified: verified.unwrap_or(0) != 0,
            suspended: suspended.is_some(),
        }))
    }

    pub async fn set_password_hash(&self, user_id: i64, hash: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_role(&self, user_id: i64, role: Role) -> Result<(), DbError> {
        sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
            .bind(role.as_str())
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Soft delete: the row, the channel and its chat stay; login ends, every
    /// session is revoked, and the stream key is replaced so no encoder that
    /// knew it can publish again.
    /// Suspends an account (ending its sessions) or lifts that.
    pub async fn set_suspended(&self, user_id: i64, on: bool) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE users SET suspended_at = $1 WHERE id = $2")
            .bind(on.then(unix_now))
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if on {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn soft_delete_user(&self, user_id: i64) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE users SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL")
            .bind(unix_now())
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE channels SET stream_key = $1 WHERE owner_id = $2")
            .bind(super::channels::new_stream_key())
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a new session and ends the user's oldest ones past `max`
    /// (the new one is always kept). Returns the token hashes it ended, so
    /// whatever they signed in can be signed out.
    pub async fn insert_session(
        &self,
        token_hash: &str,
        user_id: i64,
        expires_at: i64,
        max: usize,
    ) -> Result<Vec<String>, DbError> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(unix_now())
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        // Newest first; seconds tie, so the new one is set apart by name.
        let rows = sqlx::query(
            "SELECT token_hash FROM sessions WHERE user_id = $1 AND token_hash <> $2 \
             ORDER BY created_at DESC, token_hash",
        )
        .bind(user_id)
        .bind(token_hash)
        .fetch_all(&self.pool)
        .await?;
        let keep_others = max.saturating_sub(1);
        let mut ended = Vec::new();
        for r in rows.iter().skip(keep_others) {
            let old: String = r.try_get("token_hash")?;
            self.delete_session(&old).await?;
            ended.push(old);
        }
        Ok(ended)
    }

    /// The unexpired sessions of `user_id`, newest first: (token hash,
    /// created, expires), Unix seconds.
    pub async fn sessions(&self, user_id: i64) -> Result<Vec<(String, i64, i64)>, DbError> {
        let rows = sqlx::query(
            "SELECT token_hash, created_at, expires_at FROM sessions \
             WHERE user_id = $1 AND expires_at > $2 ORDER BY created_at DESC, token_hash",
        )
        .bind(user_id)
        .bind(unix_now())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("token_hash")?,
                    r.try_get("created_at")?,
                    r.try_get("expires_at")?,
                ))
            })
            .collect()
    }

    /// How many sessions `user_id` holds.
    pub async fn session_count(&self, user_id: i64) -> Result<usize, DbError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("n")?.max(0) as usize)
    }

    /// The live (unexpired, not deleted) user a session token hash belongs to.
    pub async fn session_user(&self, token_hash: &str) -> Result<Option<User>, DbError> {
        let row = sqlx::query(
            "SELECT u.id, u.username, u.password_hash, u.email, u.email_verified, u.role, \
             u.created_at, \
             u.deleted_at, u.suspended_at FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.deleted_at IS NULL \
             AND u.suspended_at IS NULL",
        )
        .bind(token_hash)
        .bind(unix_now())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .as_ref()
            .map(row_to_credentials)
            .transpose()?
            .map(|c| c.user))
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Revokes every session of a user except `keep` (a password change
    /// signs out the other devices).
    pub async fn delete_other_sessions(&self, user_id: i64, keep: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2")
            .bind(user_id)
            .bind(keep)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(unix_now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// What an emailed token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailPurpose {
    Verify,
    Reset,
    /// Confirms a new address, which the token carries.
    Change,
}

impl EmailPurpose {
    fn as_str(self) -> &'static str {
        match self {
            EmailPurpose::Verify => "verify",
            EmailPurpose::Reset => "reset",
            EmailPurpose::Change => "change",
        }
    }
}

impl Db {
    pub async fn insert_email_token(
        &self,
        token_hash: &str,
        user_id: i64,
        purpose: EmailPurpose,
        new_email: Option<&str>,
        expires_at: i64,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO email_tokens (token_hash, user_id, purpose, new_email, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(purpose.as_str())
        .bind(new_email.map(str::to_string))
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The user a token is for, if it exists, has that purpose and has not
    /// expired; the token stays.
    pub async fn peek_email_token(
        &self,
        token_hash: &str,
        purpose: EmailPurpose,
    ) -> Result<Option<i64>, DbError> {
        let row = sqlx::query(
            "SELECT user_id FROM email_tokens \
             WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3",
        )
        .bind(token_hash)
        .bind(purpose.as_str())
        .bind(unix_now())
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("user_id")?),
            None => None,
        })
    }

    /// Uses up a token: the user it was for, if it exists, has that purpose
    /// and has not expired. A token works once.
    pub async fn take_email_token(
        &self,
        token_hash: &str,
        purpose: EmailPurpose,
    ) -> Result<Option<i64>, DbError> {
        // One statement: find and spend the token (RETURNING: SQLite 3.35+,
        // Postgres).
        let row = sqlx::query(
            "DELETE FROM email_tokens \
             WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3 RETURNING user_id",
        )
        .bind(token_hash)
        .bind(purpose.as_str())
        .bind(unix_now())
        .fetch_optional(&self.pool)
        .await?;
        sqlx::query("DELETE FROM email_tokens WHERE expires_at <= $1")
            .bind(unix_now())
            .execute(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("user_id")?),
            None => None,
        })
    }

    /// Uses up an address-change token: the user and the address it
    /// confirms.
    pub async fn take_email_change(
        &self,
        token_hash: &str,
    ) -> Result<Option<(i64, String)>, DbError> {
        let row = sqlx::query(
            "DELETE FROM email_tokens \
             WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3 \
             RETURNING user_id, new_email",
        )
        .bind(token_hash)
        .bind(EmailPurpose::Change.as_str())
        .bind(unix_now())
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => Some((r.try_get("user_id")?, r.try_get("new_email")?)),
            None => None,
        })
    }

    /// Gives the account a confirmed address. The links still out for the
    /// old one, or for other new ones, stop working.
    pub async fn set_verified_email(&self, user_id: i64, email: &str) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE users SET email = $2, email_verified = 1 WHERE id = $1")
            .bind(user_id)
            .bind(email)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM email_tokens WHERE user_id = $1 AND purpose IN ($2, $3)")
            .bind(user_id)
            .bind(EmailPurpose::Verify.as_str())
            .bind(EmailPurpose::Change.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// An address set without confirmation (the server sends no mail), so
    /// it does not count as verified.
    pub async fn set_unverified_email(&self, user_id: i64, email: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE users SET email = $2, email_verified = 0 WHERE id = $1")
            .bind(user_id)
            .bind(email)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_email_verified(&self, user_id: i64) -> Result<(), DbError> {
        sqlx::query("UPDATE users SET email_verified = 1 WHERE id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Signs a user out everywhere (after a password reset).
    pub async fn delete_sessions(&self, user_id: i64) -> Result<(), DbError> {
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
