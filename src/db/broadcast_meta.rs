//! What the owner edits on a past broadcast: title, description, and
//! whether it is published (hidden ones are seen only by the owner).

use super::{Db, DbError};
use sqlx::Row;
use std::collections::HashSet;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct BroadcastMeta {
    #[serde(with = "crate::db::json_id")]
    #[schema(value_type = String)]
    pub id: i64,
    pub channel: String,
    pub title: Option<String>,
    pub description: String,
    pub published: bool,
}

/// Changes to a broadcast; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct BroadcastPatch {
    pub title: Option<String>,
    pub description: Option<String>,
    pub published: Option<bool>,
}

impl Db {
    pub async fn broadcast_meta(&self, id: i64) -> Result<Option<BroadcastMeta>, DbError> {
        let row = sqlx::query(
            "SELECT id, channel, title, description, hidden FROM broadcasts WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(BroadcastMeta {
            id: r.try_get("id")?,
            channel: r.try_get("channel")?,
            title: r.try_get("title")?,
            description: r.try_get("description")?,
            published: r.try_get::<i64, _>("hidden")? == 0,
        }))
    }

    pub async fn edit_broadcast(&self, id: i64, patch: &BroadcastPatch) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        if let Some(t) = &patch.title {
            sqlx::query("UPDATE broadcasts SET title = $1 WHERE id = $2")
                .bind(t)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(d) = &patch.description {
            sqlx::query("UPDATE broadcasts SET description = $1 WHERE id = $2")
                .bind(d)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(p) = patch.published {
            sqlx::query("UPDATE broadcasts SET hidden = $1 WHERE id = $2")
                .bind(if p { 0i64 } else { 1i64 })
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Ids of the channel's hidden broadcasts: what a list shown to anyone
    /// but the owner leaves out.
    pub async fn hidden_broadcasts(&self, channel: &str) -> Result<HashSet<i64>, DbError> {
        let rows = sqlx::query("SELECT id FROM broadcasts WHERE channel = $1 AND hidden <> 0")
            .bind(channel)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<i64, _>("id")?))
            .collect()
    }

    /// Whether `viewer` may see broadcast `id`: published, or theirs (or an
    /// admin). For the VOD and list handlers.
    pub async fn broadcast_visible(
        &self,
        id: i64,
        viewer: Option<&super::User>,
    ) -> Result<bool, DbError> {
        let Some(meta) = self.broadcast_meta(id).await? else {
            return Ok(false);
        };
        if meta.published {
            return Ok(true);
        }
        let Some(viewer) = viewer else {
            return Ok(false);
        };
        if viewer.role == super::Role::Admin {
            return Ok(true);
        }
        Ok(self
            .channel_info(&meta.channel)
            .await?
            .is_some_and(|c| c.owner_id == Some(viewer.id)))
    }
}
