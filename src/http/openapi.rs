//! `GET /api/openapi.json`: an OpenAPI 3.1 description of the JSON API and
//! the chat WebSocket, built from one table. `tests/accounts_openapi.rs`
//! keeps it true: every documented operation answers, and every `/api` and
//! `/ws` route in `src/http` is documented.

use super::AppState;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(|| async { Json(document()) }))
}

/// Who may call an operation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Public,
    /// Session cookie (same-origin for writes) or Bearer token.
    SignedIn,
}

struct Op {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    access: Access,
    /// Request body schema (a component name), if any.
    body: Option<&'static str>,
    /// Success status and its schema (a component name, or "" for none).
    ok: (u16, &'static str),
    /// Failure statuses this operation documents besides 400/503.
    errors: &'static [u16],
}

use Access::{Public, SignedIn};

const OPS: &[Op] = &[
    Op { method: "post", path: "/api/auth/register", summary: "Create an account and its channel (named after the user)", access: Public, body: Some("Register"), ok: (201, "Registered"), errors: &[403, 409, 413, 415] },
    Op { method: "post", path: "/api/auth/login", summary: "Sign in: sets the HttpOnly session cookie and returns a Bearer token", access: Public, body: Some("Login"), ok: (200, "Session"), errors: &[401, 403, 429] },
    Op { method: "post", path: "/api/auth/logout", summary: "End this session", access: SignedIn, body: None, ok: (204, ""), errors: &[401, 403] },
    Op { method: "post", path: "/api/auth/password", summary: "Change the password; other sessions end", access: SignedIn, body: Some("ChangePassword"), ok: (204, ""), errors: &[401, 403] },
    Op { method: "post", path: "/api/auth/email/send", summary: "Mail a verification token to the account's address (needs --smtp-url)", access: SignedIn, body: None, ok: (202, ""), errors: &[401, 409] },
    Op { method: "post", path: "/api/auth/email/verify", summary: "Confirm the address with the mailed token", access: Public, body: Some("Token"), ok: (204, ""), errors: &[] },
    Op { method: "post", path: "/api/auth/password/reset", summary: "Mail a password-reset token (202 whatever the name, so accounts cannot be probed)", access: Public, body: Some("ResetRequest"), ok: (202, ""), errors: &[] },
    Op { method: "post", path: "/api/auth/password/reset/confirm", summary: "Set a new password with the mailed token; every session ends", access: Public, body: Some("ResetConfirm"), ok: (204, ""), errors: &[] },
    Op { method: "get", path: "/api/me", summary: "The signed-in user and their channel, with its stream key", access: SignedIn, body: None, ok: (200, "Me"), errors: &[401] },
    Op { method: "delete", path: "/api/me", summary: "Delete the account (soft: content stays, login ends)", access: SignedIn, body: None, ok: (204, ""), errors: &[401, 403] },
    Op { method: "patch", path: "/api/users/{username}", summary: "Set a user's role (admin)", access: SignedIn, body: Some("SetRole"), ok: (200, "User"), errors: &[401, 403, 404] },
    Op { method: "delete", path: "/api/users/{username}", summary: "Soft-delete a user (admin)", access: SignedIn, body: None, ok: (204, ""), errors: &[401, 403, 404] },
    Op { method: "get", path: "/api/channels", summary: "Directory: channels by name, with live state; filters live, category; cursor pagination", access: Public, body: None, ok: (200, "ChannelPage"), errors: &[] },
    Op { method: "get", path: "/api/channels/{name}", summary: "A channel with live state and its schedule", access: Public, body: None, ok: (200, "Channel"), errors: &[404] },
    Op { method: "patch", path: "/api/channels/{name}", summary: "Edit title, description, category, tags, slow mode (owner or admin)", access: SignedIn, body: Some("ChannelEdit"), ok: (200, "Channel"), errors: &[401, 403, 404] },
    Op { method: "get", path: "/api/channels/{name}/key", summary: "The stream key (owner only)", access: SignedIn, body: None, ok: (200, "StreamKey"), errors: &[401, 403, 404] },
    Op { method: "post", path: "/api/channels/{name}/key", summary: "Rotate the stream key; a live publish ends (owner only)", access: SignedIn, body: None, ok: (200, "StreamKey"), errors: &[401, 403, 404] },
    Op { method: "delete", path: "/api/channels/{name}/live", summary: "End the live broadcast now, whatever its ingest (owner or admin); the key stays valid", access: SignedIn, body: None, ok: (204, ""), errors: &[401, 403, 404] },
    Op { method: "post", path: "/api/channels/{name}/like", summary: "Like the channel: one per user every 10 s", access: SignedIn, body: None, ok: (200, "Likes"), errors: &[401, 404, 429] },
    Op { method: "get", path: "/api/channels/{name}/schedule", summary: "Upcoming broadcasts, soonest first", access: Public, body: None, ok: (200, "ScheduleList"), errors: &[404] },
    Op { method: "post", path: "/api/channels/{name}/schedule", summary: "Announce a broadcast (owner or admin)", access: SignedIn, body: Some("ScheduleEdit"), ok: (201, "Scheduled"), errors: &[401, 403, 404] },
    Op { method: "patch", path: "/api/channels/{name}/schedule/{id}", summary: "Edit an announced broadcast (owner or admin)", access: SignedIn, body: Some("ScheduleEdit"), ok: (200, "Scheduled"), errors: &[401, 403, 404] },
    Op { method: "delete", path: "/api/channels/{name}/schedule/{id}", summary: "Remove an announced broadcast (owner or admin)", access: SignedIn, body: None, ok: (204, ""), errors: &[401, 403, 404] },
    Op { method: "get", path: "/api/channels/{name}/chat", summary: "The last 50 chat messages, oldest first", access: Public, body: None, ok: (200, "ChatList"), errors: &[404] },
    Op { method: "post", path: "/api/channels/{name}/chat", summary: "Post a chat message (same limits as the WebSocket)", access: SignedIn, body: Some("ChatPost"), ok: (201, "ChatMessage"), errors: &[401, 403, 404, 429] },
    Op { method: "delete", path: "/api/channels/{name}/chat/{id}", summary: "Delete a message (its author, the owner, moderators); members get a delete event", access: SignedIn, body: None, ok: (204, ""), errors: &[401, 403, 404] },
    Op { method: "post", path: "/api/channels/{name}/bans", summary: "Ban a user from the chat, or time them out with `seconds` (moderators)", access: SignedIn, body: Some("Ban"), ok: (204, ""), errors: &[401, 403, 404] },
    Op { method: "delete", path: "/api/channels/{name}/bans/{username}", summary: "Lift a ban or time-out (moderators)", access: SignedIn, body: None, ok: (204, ""), errors: &[401, 403, 404] },
    Op { method: "post", path: "/api/channels/{name}/slow_mode", summary: "Set chat slow mode in seconds, 0 = off (moderators)", access: SignedIn, body: Some("SlowMode"), ok: (204, ""), errors: &[401, 403, 404] },
    Op { method: "get", path: "/api/channels/{channel}/broadcasts", summary: "Past broadcasts, newest first, with VOD playlist and poster; cursor pagination", access: Public, body: None, ok: (200, "BroadcastPage"), errors: &[404] },
    Op { method: "patch", path: "/api/channels/{channel}/broadcasts/{id}", summary: "Publish or hide a past broadcast, edit its title and description (owner or admin)", access: SignedIn, body: Some("BroadcastEdit"), ok: (200, "BroadcastMeta"), errors: &[401, 403, 404] },
    Op { method: "delete", path: "/api/channels/{channel}/broadcasts/{id}", summary: "Delete a past broadcast: its row, then its recording's files (owner or admin); 409 while it is live", access: SignedIn, body: None, ok: (204, ""), errors: &[401, 403, 404, 409] },
    Op { method: "get", path: "/api/channels/{name}/health", summary: "The live stream's health for its dashboard: codecs, size, B-frames, cumulative counters and averages, viewers (owner or admin)", access: SignedIn, body: None, ok: (200, "StreamHealth"), errors: &[401, 403, 404] },
    Op { method: "get", path: "/api/channels/{channel}/thumbnail.jpg", summary: "The live channel's latest keyframe as JPEG", access: Public, body: None, ok: (200, ""), errors: &[404] },
    Op { method: "get", path: "/api/categories", summary: "Channel categories", access: Public, body: None, ok: (200, "CategoryList"), errors: &[] },
    Op { method: "put", path: "/api/categories/{slug}", summary: "Create or rename a category (admin)", access: SignedIn, body: Some("CategoryEdit"), ok: (200, "Category"), errors: &[401, 403] },
    Op { method: "delete", path: "/api/categories/{slug}", summary: "Remove a category; its channels become uncategorised (admin)", access: SignedIn, body: None, ok: (204, ""), errors: &[401, 403, 404] },
    Op { method: "get", path: "/ws/{channel}", summary: "Chat WebSocket (upgrade). Anyone reads; writing needs the session cookie or `?token=`. Client sends {\"type\":\"chat\",\"text\":...}; server sends chat, delete, live, offline, viewers, likes, slow_mode, ban, timeout, error objects", access: Public, body: None, ok: (101, ""), errors: &[401, 404] },
    Op { method: "get", path: "/api/ice-servers", summary: "STUN/TURN servers for WebRTC clients, TURN ones with time-limited credentials (coturn REST scheme)", access: Public, body: None, ok: (200, "IceServers"), errors: &[] },
    Op { method: "get", path: "/api/openapi.json", summary: "This document", access: Public, body: None, ok: (200, ""), errors: &[] },
];

fn schemas() -> Value {
    let s = |v: Value| v;
    let string = json!({"type": "string"});
    let time = json!({"type": "string", "format": "date-time"});
    let mut schemas = json!({
        "Error": {"type": "object", "required": ["error"], "properties": {"error": string}},
        "Register": {"type": "object", "additionalProperties": false, "required": ["username", "password"], "properties": {
            "username": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,31}$", "description": "Also the channel name; reserved names (api, hls, admin, ...) are refused"},
            "password": {"type": "string", "minLength": 8, "maxLength": 256},
            "email": {"type": ["string", "null"]}}},
        "Registered": {"type": "object", "properties": {"user": {"$ref": "#/components/schemas/User"}, "channel": {"type": "object", "properties": {"name": string}}}},
        "Login": {"type": "object", "additionalProperties": false, "required": ["username", "password"], "properties": {"username": string, "password": string}},
        "Session": {"type": "object", "properties": {"token": {"type": "string", "description": "For `Authorization: Bearer`"}, "user": {"$ref": "#/components/schemas/User"}}},
        "ChangePassword": {"type": "object", "additionalProperties": false, "required": ["old_password", "new_password"], "properties": {"old_password": string, "new_password": string}},
        "User": {"type": "object", "properties": {"id": {"type": "integer"}, "username": string, "email_verified": {"type": "boolean"}, "role": {"enum": ["admin", "moderator", "broadcaster", "viewer"]}, "email": string, "created_at": {"type": "integer"}}},
        "SetRole": {"type": "object", "additionalProperties": false, "required": ["role"], "properties": {"role": {"enum": ["admin", "moderator", "broadcaster", "viewer"]}}},
        "Me": {"type": "object", "properties": {"user": {"$ref": "#/components/schemas/User"}, "channel": {"type": ["object", "null"], "properties": {"name": string, "stream_key": string, "title": string, "description": string, "category": string, "tags": {"type": "array", "items": string}, "likes": {"type": "integer"}, "rtmp_port": {"type": "integer", "description": "The port RTMP ingest listens on"}, "rtmps_port": {"type": ["integer", "null"], "description": "The port RTMPS ingest listens on, when it is on"}, "icecast_port": {"type": "integer", "description": "The port Icecast sources connect to"}}}}},
        "Channel": {"type": "object", "properties": {
            "name": string, "owner": {"type": ["string", "null"]}, "title": string, "description": string,
            "category": {"type": ["string", "null"]}, "tags": {"type": "array", "items": string},
            "likes": {"type": "integer"}, "slow_mode_secs": {"type": "integer"}, "live": {"type": "boolean"},
            "started_at": {"type": ["string", "null"], "format": "date-time"}, "viewers": {"type": "integer"},
            "video": {"type": ["boolean", "null"], "description": "While live: whether the stream has video"},
            "now_playing": {"type": ["string", "null"], "description": "While live: the track on the air (Icecast /admin/metadata)"},
            "next_broadcast": {"oneOf": [{"$ref": "#/components/schemas/Scheduled"}, {"type": "null"}]},
            "schedule": {"type": "array", "items": {"$ref": "#/components/schemas/Scheduled"}, "description": "Only on GET /api/channels/{name}"}}},
        "ChannelPage": {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Channel"}}, "next_cursor": {"type": ["string", "null"]}}},
        "ChannelEdit": {"type": "object", "additionalProperties": false, "properties": {"title": {"type": "string", "maxLength": 140}, "description": {"type": "string", "maxLength": 5000}, "category": {"type": ["string", "null"]}, "tags": {"type": "array", "maxItems": 10, "items": string}, "slow_mode_secs": {"type": "integer", "minimum": 0, "maximum": 600}}},
        "StreamKey": {"type": "object", "properties": {"stream_key": string}},
        "Likes": {"type": "object", "properties": {"likes": {"type": "integer"}}},
        "Scheduled": {"type": "object", "properties": {"id": {"type": "integer"}, "channel": string, "title": string, "starts_at": time, "ends_at": time}},
        "ScheduleList": {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Scheduled"}}}},
        "ScheduleEdit": {"type": "object", "additionalProperties": false, "properties": {"title": string, "starts_at": time, "ends_at": time}},
        "ChatMessage": {"type": "object", "properties": {"type": {"const": "chat"}, "id": {"type": "integer"}, "user": string, "text": {"type": "string", "maxLength": 500}, "at": time}},
        "ChatList": {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/ChatMessage"}}}},
        "ChatPost": {"type": "object", "additionalProperties": false, "required": ["text"], "properties": {"text": {"type": "string", "maxLength": 500}}},
        "Ban": {"type": "object", "additionalProperties": false, "required": ["username"], "properties": {"username": string, "seconds": {"type": "integer", "minimum": 1, "description": "A time-out; absent: a ban until lifted"}}},
        "SlowMode": {"type": "object", "additionalProperties": false, "required": ["seconds"], "properties": {"seconds": {"type": "integer", "minimum": 0, "maximum": 600}}},
        "BroadcastPage": {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "integer"}, "live": {"type": "boolean"}, "hidden": {"type": "boolean", "description": "Hidden by the owner; only the owner and admins see such items"}, "playlist": {"type": ["string", "null"]}, "poster": {"type": ["string", "null"]}, "download": {"type": ["string", "null"], "description": "The whole recording as one MP4 (GET /vod/{id}/download.mp4, byte ranges), once it has ended"}}}}, "next_cursor": {"type": ["string", "integer", "null"]}}},
        "BroadcastEdit": {"type": "object", "additionalProperties": false, "properties": {"title": {"type": "string", "maxLength": 140}, "description": {"type": "string", "maxLength": 5000}, "published": {"type": "boolean"}}},
        "BroadcastMeta": {"type": "object", "properties": {"id": {"type": "integer"}, "channel": string, "title": {"type": ["string", "null"]}, "description": string, "published": {"type": "boolean"}}},
        "Token": {"type": "object", "additionalProperties": false, "required": ["token"], "properties": {"token": string}},
        "ResetRequest": {"type": "object", "additionalProperties": false, "required": ["username"], "properties": {"username": string}},
        "ResetConfirm": {"type": "object", "additionalProperties": false, "required": ["token", "new_password"], "properties": {"token": string, "new_password": {"type": "string", "minLength": 8, "maxLength": 256}}},
        "Category": {"type": "object", "properties": {"slug": string, "name": string}},
        "CategoryList": {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Category"}}}},
        "CategoryEdit": {"type": "object", "additionalProperties": false, "required": ["name"], "properties": {"name": s(json!({"type": "string", "maxLength": 64}))}},
    });
    // Separate, as one more entry above passes json!'s recursion limit.
    schemas["IceServers"] = json!({"type": "object", "properties": {"ice_servers": {"type": "array", "items": {
        "type": "object",
        "properties": {"urls": {"type": "array", "items": string}, "username": string, "credential": string},
    }}}});
    schemas["StreamHealth"] = json!({"type": "object", "required": ["live", "viewers"], "properties": {
        "live": {"type": "boolean"}, "source": {"type": "string"}, "uptime_secs": {"type": "number"},
        "video_codec": {"type": ["string", "null"]}, "audio_codec": {"type": ["string", "null"]},
        "width": {"type": ["integer", "null"]}, "height": {"type": ["integer", "null"]},
        "bframes": {"type": "boolean", "description": "B-frames seen: WebRTC viewers may stutter"},
        "bytes": {"type": "integer"}, "video_frames": {"type": "integer"}, "audio_frames": {"type": "integer"}, "keyframes": {"type": "integer"},
        "avg_bitrate_bps": {"type": ["number", "null"]}, "avg_fps": {"type": ["number", "null"]}, "avg_keyframe_interval_secs": {"type": ["number", "null"]},
        "warnings": {"type": "array", "items": {"type": "string"}},
        "viewers": {"type": "object", "properties": {"webrtc": {"type": "integer"}, "hls": {"type": "integer"}, "icecast": {"type": "integer"}, "flv": {"type": "integer"}}},
    }});
    schemas
}

fn path_params(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect()
}

fn operation(op: &Op) -> Value {
    let mut responses = Map::new();
    let (code, schema) = op.ok;
    responses.insert(
        code.to_string(),
        if schema.is_empty() {
            json!({"description": "success"})
        } else {
            json!({"description": "success", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
        },
    );
    let error = json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    for code in op.errors.iter().chain(&[400, 503]) {
        responses.insert(code.to_string(), error.clone());
    }
    let mut v = json!({
        "summary": op.summary,
        "parameters": path_params(op.path),
        "responses": responses,
    });
    if op.path == "/api/channels" {
        let q = |name: &str, ty: &str| json!({"name": name, "in": "query", "required": false, "schema": {"type": ty}});
        v["parameters"] = json!([
            q("live", "boolean"),
            q("category", "string"),
            q("cursor", "string"),
            q("limit", "integer")
        ]);
    }
    if op.path == "/ws/{channel}" {
        v["parameters"].as_array_mut().expect("array").push(
            json!({"name": "token", "in": "query", "required": false, "schema": {"type": "string"}}),
        );
    }
    if let Some(body) = op.body {
        v["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{body}")}}}});
    }
    if op.access == SignedIn {
        v["security"] = json!([{"bearer": []}, {"cookie": []}]);
    }
    v
}

pub fn document() -> Value {
    let mut paths = Map::new();
    for op in OPS {
        let entry = paths
            .entry(op.path.to_string())
            .or_insert_with(|| json!({}));
        entry[op.method] = operation(op);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "onair",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Accounts, channels, chat, likes and the schedule. Errors are {\"error\": \"...\"}. Requests authenticated by the session cookie that change state must be same-origin (Origin, Referer or Sec-Fetch-Site); Bearer tokens are exempt."
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": super::auth::SESSION_COOKIE}
            }
        }
    })
}
