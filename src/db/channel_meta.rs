//! What a channel shows besides its stream: owner, title, description,
//! category, tags, likes, chat slow mode; and the directory's pages.

use super::users::unix_now;
use super::{Db, DbError};
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChannelInfo {
    #[serde(skip)]
    pub id: i64,
    pub name: String,
    #[serde(skip)]
    pub owner_id: Option<i64>,
    /// The owner's username (equal to `name` for channels made by accounts).
    pub owner: Option<String>,
    pub title: String,
    pub description: String,
    pub category: Option<String>,
    pub tags: Vec<String>,
    pub likes: i64,
    pub slow_mode_secs: i64,
    /// Unix seconds.
    pub created_at: i64,
}

/// Fields the owner may change; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct ChannelPatch {
    pub title: Option<String>,
    pub description: Option<String>,
    /// `Some(None)` clears the category.
    pub category: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
    pub slow_mode_secs: Option<i64>,
}

const INFO_SELECT: &str = "SELECT c.id, c.name, c.owner_id, u.username AS owner, c.title, \
    c.description, c.category, c.tags, c.likes, c.slow_mode_secs, c.created_at \
    FROM channels c LEFT JOIN users u ON u.id = c.owner_id";

fn row_to_info(r: &sqlx::any::AnyRow) -> Result<ChannelInfo, DbError> {
    let tags: String = r.try_get("tags")?;
    Ok(ChannelInfo {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        owner_id: r.try_get("owner_id")?,
        owner: r.try_get("owner")?,
        title: r.try_get("title")?,
        description: r.try_get("description")?,
        category: r.try_get("category")?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        likes: r.try_get("likes")?,
        slow_mode_secs: r.try_get("slow_mode_secs")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Db {
    pub async fn channel_info(&self, name: &str) -> Result<Option<ChannelInfo>, DbError> {
        if !super::valid_channel_name(name) {
            return Ok(None);
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{INFO_SELECT} WHERE c.name = $1"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(row_to_info).transpose()
    }

    /// Up to `limit` channels named after `after`, in name order, optionally
    /// in one category. Names are unique, so the last name is the cursor.
    pub async fn channel_page(
        &self,
        after: &str,
        category: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ChannelInfo>, DbError> {
        let rows = match category {
            Some(cat) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{INFO_SELECT} WHERE c.name > $1 AND c.category = $2 ORDER BY c.name LIMIT $3"
                )))
                .bind(after)
                .bind(cat)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{INFO_SELECT} WHERE c.name > $1 ORDER BY c.name LIMIT $2"
                )))
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(row_to_info).collect()
    }

    pub async fn update_channel(&self, name: &str, patch: &ChannelPatch) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        if let Some(title) = &patch.title {
            sqlx::query("UPDATE channels SET title = $1 WHERE name = $2")
                .bind(title)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(description) = &patch.description {
            sqlx::query("UPDATE channels SET description = $1 WHERE name = $2")
                .bind(description)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(category) = &patch.category {
            sqlx::query("UPDATE channels SET category = $1 WHERE name = $2")
                .bind(category.clone())
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(tags) = &patch.tags {
            let json = serde_json::to_string(tags).unwrap_or_else(|_| "[]".into());
            sqlx::query("UPDATE channels SET tags = $1 WHERE name = $2")
                .bind(json)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(secs) = patch.slow_mode_secs {
            sqlx::query("UPDATE channels SET slow_mode_secs = $1 WHERE name = $2")
                .bind(secs)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Replaces the stream key and returns the new one.
    pub async fn rotate_stream_key(&self, name: &str) -> Result<String, DbError> {
        let key = super::channels::new_stream_key();
        sqlx::query("UPDATE channels SET stream_key = $1 WHERE name = $2")
            .bind(&key)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(key)
    }

    /// Counts one like and returns the new total.
    pub async fn add_like(&self, name: &str) -> Result<i64, DbError> {
        sqlx::query("UPDATE channels SET likes = likes + 1 WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        let row = sqlx::query("SELECT likes FROM channels WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("likes")?)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Category {
    pub slug: String,
    pub name: String,
}

impl Db {
    pub async fn categories(&self) -> Result<Vec<Category>, DbError> {
        let rows = sqlx::query("SELECT slug, name FROM categories ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Category {
                    slug: r.try_get("slug")?,
                    name: r.try_get("name")?,
                })
            })
            .collect()
    }

    pub async fn category_exists(&self, slug: &str) -> Result<bool, DbError> {
        Ok(sqlx::query("SELECT slug FROM categories WHERE slug = $1")
            .bind(slug)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    /// Creates the category or renames it.
    pub async fn put_category(&self, slug: &str, name: &str) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE categories SET name = $1 WHERE slug = $2")
            .bind(name)
            .bind(slug)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            sqlx::query("INSERT INTO categories (slug, name) VALUES ($1, $2)")
                .bind(slug)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(|e| super::users::unique_to_conflict(e, format!("category {slug}")))?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes the category; channels in it become uncategorised.
    pub async fn delete_category(&self, slug: &str) -> Result<bool, DbError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE channels SET category = NULL WHERE category = $1")
            .bind(slug)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM categories WHERE slug = $1")
            .bind(slug)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}

/// An upcoming broadcast the owner announced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Scheduled {
    #[serde(with = "crate::db::json_id")]
    pub id: i64,
    pub channel: String,
    pub title: String,
    /// Unix seconds.
    pub starts_at: i64,
    pub ends_at: i64,
}

fn row_to_scheduled(r: &sqlx::any::AnyRow) -> Result<Scheduled, DbError> {
    Ok(Scheduled {
        id: r.try_get("id")?,
        channel: r.try_get("channel")?,
        title: r.try_get("title")?,
        starts_at: r.try_get("starts_at")?,
        ends_at: r.try_get("ends_at")?,
    })
}

impl Db {
    /// The channel's broadcasts that have not ended, soonest first.
    pub async fn schedule(&self, channel: &str) -> Result<Vec<Scheduled>, DbError> {
        let rows = sqlx::query(
            "SELECT id, channel, title, starts_at, ends_at FROM schedules \
             WHERE channel = $1 AND ends_at > $2 ORDER BY starts_at, id LIMIT 100",
        )
        .bind(channel)
        .bind(unix_now())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_to_scheduled).collect()
    }

    pub async fn scheduled(&self, id: i64) -> Result<Option<Scheduled>, DbError> {
        let row = sqlx::query(
            "SELECT id, channel, title, starts_at, ends_at FROM schedules WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(row_to_scheduled).transpose()
    }

    pub async fn put_scheduled(&self, s: &Scheduled) -> Result<(), DbError> {
        let done = sqlx::query(
            "UPDATE schedules SET title = $1, starts_at = $2, ends_at = $3 WHERE id = $4",
        )
        .bind(&s.title)
        .bind(s.starts_at)
        .bind(s.ends_at)
        .bind(s.id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            sqlx::query(
                "INSERT INTO schedules (id, channel, title, starts_at, ends_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(s.id)
            .bind(&s.channel)
            .bind(&s.title)
            .bind(s.starts_at)
            .bind(s.ends_at)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    pub async fn delete_scheduled(&self, id: i64) -> Result<(), DbError> {
        sqlx::query("DELETE FROM schedules WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
