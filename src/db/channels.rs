use super::{Db, DbError};
use crate::hub::Channels;
use rand::RngCore;
use sqlx::Row;
use subtle::ConstantTimeEq;

/// 192 random bits: well past the 128 the threat model needs, and a whole
/// number of base64 characters (32).
const KEY_BYTES: usize = 24;

/// Channel names appear in URLs and in RTMP paths.
pub const NAME_MAX: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChannelRow {
    #[serde(with = "crate::db::json_id")]
    pub id: i64,
    pub name: String,
    #[serde(skip)]
    pub stream_key: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// A fresh URL-safe stream key.
pub fn new_stream_key() -> String {
    use base64::Engine;
    let mut raw = [0u8; KEY_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// Lower-case letters, digits, `_` and `-`, 1..=32 long, starting with a
/// letter or digit: safe in a path segment and an RTMP stream name.
pub fn valid_channel_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_MAX
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn row_to_channel(r: &sqlx::any::AnyRow) -> Result<ChannelRow, sqlx::Error> {
    Ok(ChannelRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        stream_key: r.try_get("stream_key")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Db {
    pub async fn create_channel(&self, name: &str) -> Result<ChannelRow, DbError> {
        if !valid_channel_name(name) {
            return Err(DbError::Invalid("channel name"));
        }
        if self.channel(name).await?.is_some() {
            return Err(DbError::Conflict(format!("channel {name}")));
        }
        let key = new_stream_key();
        let now = unix_now();
        // ids come from the clock's microseconds plus randomness instead of an
        // autoincrement, whose syntax differs between SQLite and Postgres.
        let id = (rand::random::<u32>() as i64) | ((now & 0x7fff_ffff) << 32);
        sqlx::query(
            "INSERT INTO channels (id, name, stream_key, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(name)
        .bind(&key)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                DbError::Conflict(format!("channel {name}"))
            }
            _ => DbError::Query(e),
        })?;
        Ok(ChannelRow {
            id,
            name: name.to_string(),
            stream_key: key,
            created_at: now,
        })
    }

    pub async fn channel(&self, name: &str) -> Result<Option<ChannelRow>, DbError> {
        let row =
            sqlx::query("SELECT id, name, stream_key, created_at FROM channels WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.as_ref().map(row_to_channel).transpose()?)
    }

    pub async fn channels(&self) -> Result<Vec<ChannelRow>, DbError> {
        let rows =
            sqlx::query("SELECT id, name, stream_key, created_at FROM channels ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(row_to_channel).collect::<Result<_, _>>()?)
    }
}

impl Channels for Db {
    async fn channel_for_key(&self, key: &str) -> Result<Option<String>, DbError> {
        if key.is_empty() || key.len() > 128 {
            return Ok(None);
        }
        // Every key is compared, in constant time, so neither the SQL index
        // nor an early exit tells an attacker how much of a guess was right.
        // The table holds one row per broadcaster; this stays cheap.
        let rows = sqlx::query("SELECT name, stream_key FROM channels")
            .fetch_all(&self.pool)
            .await?;
        let mut found = None;
        for r in &rows {
            let stored: String = r.try_get("stream_key")?;
            if bool::from(stored.as_bytes().ct_eq(key.as_bytes())) {
                found = Some(r.try_get::<String, _>("name")?);
            }
        }
        Ok(found)
    }

    async fn exists(&self, name: &str) -> Result<bool, DbError> {
        Ok(self.channel(name).await?.is_some())
    }
}
