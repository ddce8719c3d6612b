//! `GET /vod/ID/download.mp4`: a finished recording as one fragmented MP4
//! (see [`crate::hls::export`]), streamed from the files on disk (or, on
//! a node that did not record it, from the object store), never loaded
//! into memory whole, with single byte ranges (RFC 9110 14) so players
//! seek and downloads resume.
//!
//! - Visibility is the VOD's: a hidden recording is its owner's and
//!   admins' alone (404 to anyone else), and always `private, no-store`.
//! - A broadcast still on the air: 409 (its recording still grows; the
//!   live VOD playlist serves it meanwhile).
//! - A recording whose codec configuration changed midway has several
//!   sections, one MP4 each: `?section=N` (1-based, default 1); the
//!   answer's `Onair-Sections` header says how many there are, and the
//!   file name carries `-partN` when there is more than one.
//! - Multiple ranges in one request are answered with the whole file (RFC
//!   9110 14.2 lets a server ignore Range); a range past the end is 416.

use super::hls::{visible_recording, PRIVATE_CACHE, VOD_PLAYLIST_CACHE};
use super::openapi::Binary;
use super::{ApiError, AppState, ClientAddr, ErrorBody};
use crate::auth::rate::{Rate, RateLimiter};
use crate::hls::export::{Export, ExportError, Source};
use crate::net::{ConnGate, ConnLimits, ConnPermit};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Bytes read from disk per step of a download: large enough that reads
/// cost few syscalls, small enough that every open download together
/// holds at most [`MAX_DOWNLOADS`] x this (32 MiB) in read buffers.
pub const READ_CHUNK: usize = 64 * 1024;
/// Bytes asked of the object store per step of a download of a recording
/// this node does not hold: one request each, and every open download
/// together holds at most [`MAX_DOWNLOADS`] x this (128 MiB).
pub const STORE_CHUNK: usize = 256 * 1024;
/// Downloads streaming at once, in all. Each holds an open file and a
/// [`READ_CHUNK`] buffer; they share one disk, so more at once would only
/// make each slower.
pub const MAX_DOWNLOADS: usize = 512;
/// Downloads streaming at once from one client host: a `<video>` element
/// keeps one or two ranges open, a download manager up to eight.
pub const MAX_DOWNLOADS_PER_HOST: usize = 8;
/// Download requests per client host. A player reading the file scans
/// its fragments with one range request per skipped `mdat` (ffmpeg-based
/// ones: ffprobe, Chromium's `<video>`), hundreds at open for a long
/// recording; this stops only a flood.
pub const DOWNLOAD_REQUESTS: Rate = Rate {
    burst: 1000,
    every: Duration::from_millis(5),
};
/// Recordings whose file list is kept in memory: sizing one reads its
/// playlist and stats every segment file (thousands for a long broadcast),
/// which a player's range requests would otherwise repeat each time. An
/// entry is ~100 bytes per segment; finished recordings never change, and
/// a deleted one is refused before its entry is looked at.
pub const EXPORTS_CACHED: usize = 64;
/// What a refused client is told to wait, in seconds.
const BUSY_RETRY_SECS: u64 = 5;

/// The download limits, shared by every request.
pub struct Downloads {
    open: Arc<ConnGate>,
    requests: RateLimiter<IpAddr>,
    /// By broadcast id and section: at most [`EXPORTS_CACHED`].
    exports: Mutex<HashMap<(i64, usize), Arc<Export>>>,
}

impl Default for Downloads {
    fn default() -> Self {
        Downloads {
            open: ConnGate::new(
                "vod_download",
                ConnLimits {
                    total: MAX_DOWNLOADS,
                    per_host: MAX_DOWNLOADS_PER_HOST,
                },
            ),
            requests: RateLimiter::new("download_requests", DOWNLOAD_REQUESTS),
            exports: Mutex::default(),
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/vod/{id}/download.mp4", get(download))
}

/// What a `Range` header asks of a representation of `total` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// No range, or one we answer with the whole (several ranges, another
    /// unit, a malformed header: RFC 9110 14.2 lets a server ignore it).
    Whole,
    /// First and last byte, inclusive, within the representation.
    Part(u64, u64),
    /// A valid range with no byte in the representation: 416.
    Unsatisfiable,
}

/// RFC 9110 14.1.2: `bytes=FIRST-LAST`, `bytes=FIRST-`, `bytes=-SUFFIX`.
pub fn parse_range(value: Option<&str>, total: u64) -> ByteRange {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return ByteRange::Whole;
    };
    if spec.contains(',') {
        return ByteRange::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return ByteRange::Whole;
    };
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // A suffix: the last N bytes.
        (true, false) => match num(last) {
            Some(0) => ByteRange::Unsatisfiable,
            Some(n) if total > 0 => ByteRange::Part(total.saturating_sub(n), total - 1),
            Some(_) => ByteRange::Unsatisfiable,
            None => ByteRange::Whole,
        },
        (false, true) => match num(first) {
            Some(f) if f < total => ByteRange::Part(f, total - 1),
            Some(_) => ByteRange::Unsatisfiable,
            None => ByteRange::Whole,
        },
        (false, false) => match (num(first), num(last)) {
            // first > last makes the header invalid, so it is ignored.
            (Some(f), Some(l)) if f > l => ByteRange::Whole,
            (Some(f), Some(l)) if f < total => ByteRange::Part(f, l.min(total - 1)),
            (Some(_), Some(_)) => ByteRange::Unsatisfiable,
            _ => ByteRange::Whole,
        },
        (true, true) => ByteRange::Whole,
    }
}

/// `CHANNEL-YYYY-MM-DD-HHMM[-partN].mp4`, in UTC: channel names are
/// `[a-z0-9_-]`, so the header needs no quoting beyond the quotes.
fn file_name(channel: &str, started_ms: i64, ex: &Export) -> String {
    let t = crate::chat::rfc3339(started_ms.div_euclid(1000));
    // "2025-01-31T18:00:00Z" -> "2025-01-31-1800"
    let date = format!("{}-{}{}", &t[..10], &t[11..13], &t[14..16]);
    if ex.sections > 1 {
        format!("{channel}-{date}-part{}.mp4", ex.section)
    } else {
        format!("{channel}-{date}.mp4")
    }
}

// For the document only (utoipa reads its fields): the handler parses the
// raw query itself.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct DownloadQuery {
    /// Which part, from 1, of a recording whose codecs changed midway
    /// (each part is one MP4; the response's filename says `-partN`).
    section: Option<usize>,
}

/// A whole recording as one MP4
///
/// Byte ranges are served (206, 416), so players seek and downloads resume.
/// Unpublished recordings answer only their owner and admins.
#[utoipa::path(get, path = "/vod/{id}/download.mp4", tag = "playback",
    params(("id" = String, Path), DownloadQuery),
    responses(
        (status = 200, content_type = "video/mp4", body = inline(Binary), headers(("Content-Disposition" = String))),
        (status = 206, content_type = "video/mp4", body = inline(Binary), headers(("Content-Range" = String))),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Still live", body = ErrorBody),
        (status = 416, body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, description = "Too many downloads at once", body = ErrorBody),
    ))]
pub(super) async fn download(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    client: ClientAddr,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Err(wait) = s.downloads.requests.check(&client.host(), Instant::now()) {
        return Err(ApiError::TooManyRequests(
            "too many download requests from this address; retry shortly".into(),
            wait.as_secs().max(1),
        ));
    }
    let (meta, row, rec) = visible_recording(&s, &id, &headers).await?;
    if row.ended_at.is_none() {
        return Err(ApiError::Conflict(
            "this broadcast is still live: its download is ready once it ends (meanwhile, play /vod/ID/index.m3u8)".into(),
        ));
    }
    let section = match q.get("section") {
        None => 1,
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| ApiError::BadRequest("section must be a number from 1".into()))?,
    };
    let cached = {
        let map = s
            .downloads
            .exports
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.get(&(row.id, section)).cloned()
    };
    let ex = match cached {
        Some(ex) => ex,
        None => {
            let ex = Arc::new(export(&rec, &row, section).await?);
            let mut map = s
                .downloads
                .exports
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if map.len() >= EXPORTS_CACHED {
                map.clear();
            }
            map.insert((row.id, section), ex.clone());
            ex
        }
    };
    let cache = if meta.published {
        VOD_PLAYLIST_CACHE
    } else {
        PRIVATE_CACHE
    };
    // A finished recording never changes under its id and section.
    let etag = format!("\"{}-{}-{}\"", row.id, ex.section, ex.total);
    let mut range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map_or(ByteRange::Whole, |v| parse_range(Some(v), ex.total));
    // RFC 9110 13.1.5: a range of another version is the whole file.
    if let Some(ir) = headers.get(header::IF_RANGE) {
        if ir.as_bytes() != etag.as_bytes() {
            range = ByteRange::Whole;
        }
    }
    let mut h = HeaderMap::new();
    let value = |s: &str| HeaderValue::from_str(s).expect("ASCII header value");
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, value(&etag));
    h.insert("onair-sections", value(&ex.sections.to_string()));
    let (status, first, len) = match range {
        ByteRange::Whole => (StatusCode::OK, 0, ex.total),
        ByteRange::Part(a, b) => {
            h.insert(
                header::CONTENT_RANGE,
                value(&format!("bytes {a}-{b}/{}", ex.total)),
            );
            (StatusCode::PARTIAL_CONTENT, a, b - a + 1)
        }
        ByteRange::Unsatisfiable => {
            h.insert(
                header::CONTENT_RANGE,
                value(&format!("bytes */{}", ex.total)),
            );
            let body = ErrorBody::json(format!(
                "the range is outside the file's {} bytes",
                ex.total
            ));
            return Ok((StatusCode::RANGE_NOT_SATISFIABLE, h, body).into_response());
        }
    };
    let permit = s.downloads.open.admit(client.0).map_err(|_| {
        crate::metrics::limit_hit("max_downloads");
        ApiError::Busy(
            "too many downloads at once; retry shortly".into(),
            BUSY_RETRY_SECS,
        )
    })?;
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(
        header::CONTENT_DISPOSITION,
        value(&format!(
            "attachment; filename=\"{}\"",
            file_name(&row.channel, row.started_at, &ex)
        )),
    );
    h.insert(header::CONTENT_LENGTH, value(&len.to_string()));
    let body = Body::from_stream(stream(ex.clone(), first, len, permit));
    Ok((status, h, body).into_response())
}

/// The file list of a section, or why there is none.
async fn export(
    rec: &crate::hls::recorder::Recordings,
    row: &crate::db::BroadcastRow,
    section: usize,
) -> Result<Export, ApiError> {
    rec.export(row, section).await.map_err(|e| match e {
        ExportError::NotRecorded | ExportError::Empty => {
            ApiError::NotFound("this broadcast was not recorded".into())
        }
        ExportError::NoSuchSection(n) => {
            ApiError::NotFound(format!("no such section: the recording has {n}"))
        }
        ExportError::Corrupt | ExportError::Missing(_) => {
            tracing::warn!(broadcast = row.id, "recording cannot be downloaded: {e}");
            ApiError::NotFound(format!("the recording is damaged: {e}"))
        }
        ExportError::Unreadable(_) => {
            tracing::warn!(broadcast = row.id, "recording cannot be downloaded: {e}");
            ApiError::Unavailable("the recording cannot be read right now".into())
        }
    })
}

/// Where a download is in its files.
struct Reading {
    ex: Arc<Export>,
    /// The next file to open, by index in `ex.files`.
    next: usize,
    /// Bytes to skip in the next file opened (the range's start).
    skip: u64,
    /// Bytes still to send in all.
    left: u64,
    /// The open file and the bytes still to send from it.
    file: Option<(Open, u64)>,
    /// Holds the download's place under [`MAX_DOWNLOADS`] until the body is
    /// done or dropped.
    _permit: ConnPermit,
}

/// A file of a download being read.
enum Open {
    Disk(tokio::fs::File),
    /// An object in the store, read [`STORE_CHUNK`] at a time from `pos`.
    Stored {
        key: String,
        pos: u64,
    },
}

/// `len` bytes from byte `first` of the concatenation of `ex`'s files. A
/// file shorter than it was when sized (deleted meanwhile) ends the body
/// with an error, which aborts the response: a client never gets fewer
/// bytes than Content-Length without knowing.
fn stream(
    ex: Arc<Export>,
    first: u64,
    len: u64,
    permit: ConnPermit,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    // Files wholly before the range are never opened.
    let mut skip = first;
    let mut next = 0;
    while let Some((_, size)) = ex.files.get(next) {
        if skip < *size {
            break;
        }
        skip -= size;
        next += 1;
    }
    let state = Reading {
        ex,
        next,
        skip,
        left: len,
        file: None,
        _permit: permit,
    };
    futures_util::stream::try_unfold(state, |mut st| async move {
        if st.left == 0 {
            return Ok(None);
        }
        let (mut file, in_file) = match st.file.take() {
            Some(open) => open,
            None => {
                let (source, size) = st
                    .ex
                    .files
                    .get(st.next)
                    .ok_or_else(|| std::io::Error::other("the recording ended early"))?;
                st.next += 1;
                let skip = std::mem::take(&mut st.skip);
                let open = match source {
                    Source::Disk(path) => {
                        let mut f = tokio::fs::File::open(path).await?;
                        if skip > 0 {
                            f.seek(std::io::SeekFrom::Start(skip)).await?;
                        }
                        Open::Disk(f)
                    }
                    Source::Stored(key) => Open::Stored {
                        key: key.clone(),
                        pos: skip,
                    },
                };
                (open, size.saturating_sub(skip).min(st.left))
            }
        };
        let chunk = match &mut file {
            Open::Disk(f) => {
                let want = in_file.min(READ_CHUNK as u64) as usize;
                let mut buf = vec![0u8; want];
                let n = f.read(&mut buf).await?;
                if n == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "a recording file shrank during its download",
                    ));
                }
                buf.truncate(n);
                Bytes::from(buf)
            }
            Open::Stored { key, pos } => {
                let store = st
                    .ex
                    .store
                    .as_ref()
                    .ok_or_else(|| std::io::Error::other("no object store"))?;
                let want = in_file.min(STORE_CHUNK as u64);
                let got = store
                    .get_range(key, *pos..*pos + want)
                    .await
                    .map_err(std::io::Error::other)?;
                *pos += want;
                got
            }
        };
        let n = chunk.len() as u64;
        st.left -= n;
        if in_file > n {
            st.file = Some((file, in_file - n));
        }
        Ok(Some((chunk, st)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ByteRange::*;

    #[test]
    fn ranges() {
        let cases: &[(&str, u64, ByteRange)] = &[
            ("bytes=0-99", 1000, Part(0, 99)),
            ("bytes=100-", 1000, Part(100, 999)),
            ("bytes=-10", 1000, Part(990, 999)),
            ("bytes=-5000", 1000, Part(0, 999)),
            ("bytes=990-5000", 1000, Part(990, 999)),
            ("bytes=999-999", 1000, Part(999, 999)),
            ("bytes= 5 - 9 ", 1000, Part(5, 9)),
            ("bytes=1000-", 1000, Unsatisfiable),
            ("bytes=1000-2000", 1000, Unsatisfiable),
            ("bytes=-0", 1000, Unsatisfiable),
            ("bytes=0-", 0, Unsatisfiable),
            ("bytes=9-5", 1000, Whole),
            ("bytes=0-1,5-6", 1000, Whole),
            ("items=0-1", 1000, Whole),
            ("bytes=a-b", 1000, Whole),
            ("bytes=-", 1000, Whole),
            ("bytes=+1-2", 1000, Whole),
            ("bytes=99999999999999999999-", 1000, Whole),
        ];
        for (h, total, want) in cases {
            assert_eq!(parse_range(Some(h), *total), *want, "{h} of {total}");
        }
        assert_eq!(parse_range(None, 10), Whole);
    }

    #[test]
    fn names() {
        let ex = |section, sections| Export {
            files: Vec::new(),
            store: None,
            total: 0,
            section,
            sections,
        };
        // 2025-01-31T18:05:09Z
        let ms = 1_738_346_709_000;
        assert_eq!(file_name("demo", ms, &ex(1, 1)), "demo-2025-01-31-1805.mp4");
        assert_eq!(
            file_name("demo", ms, &ex(2, 3)),
            "demo-2025-01-31-1805-part2.mp4"
        );
    }
}
