//! oEmbed (<https://oembed.com>): `GET /api/oembed?url=...` turns a link to
//! a channel (`/c/NAME` or `/embed/NAME`) into the iframe that plays it,
//! for the sites and chat apps that unfurl links. Pages name this endpoint
//! in a `<link rel="alternate" type="application/json+oembed">` (web.rs).

use super::channels::channel_or_404;
use super::web::{attr, site_origin};
use super::{ApiError, AppState, ErrorBody};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The player's size when the consumer gives no bounds: 16:9, the shape
/// of the streams the directory shows.
pub const DEFAULT_WIDTH: u32 = 640;
pub const DEFAULT_HEIGHT: u32 = 360;

/// What the iframe may do: play with sound without a click (the embed
/// starts by itself with `?autoplay=1`), go full screen, float.
const IFRAME_ALLOW: &str = "autoplay; fullscreen; picture-in-picture";

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/oembed", get(oembed))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct OembedQuery {
    /// The link to embed: `/c/NAME` or `/embed/NAME` on this server (any
    /// host name: a server is reached by names it cannot know).
    url: String,
    /// The widest player the consumer has room for, in CSS pixels.
    #[param(minimum = 1)]
    maxwidth: Option<u32>,
    /// The tallest player the consumer has room for, in CSS pixels.
    #[param(minimum = 1)]
    maxheight: Option<u32>,
    /// `json`, the default and the only format served (anything else,
    /// `xml` included, is 501).
    format: Option<String>,
}

/// An oEmbed answer of the "video" type (oembed.com, "Response parameters").
#[derive(Serialize, ToSchema)]
pub(super) struct OembedVideo {
    /// The oEmbed version: always `1.0`.
    version: String,
    /// Always `video`.
    #[serde(rename = "type")]
    kind: String,
    /// Always `onair`.
    provider_name: String,
    /// This server (`--public-url`, or the origin the request came to).
    provider_url: String,
    /// The channel's title, or its name when it has none.
    title: String,
    /// The channel's owner, or the channel's name for channels made by the
    /// operator.
    author_name: String,
    /// The channel's page.
    author_url: String,
    /// The iframe that plays the channel (`/embed/NAME`).
    html: String,
    /// The iframe's width, in CSS pixels.
    width: u32,
    /// The iframe's height, in CSS pixels.
    height: u32,
    /// While the channel is live: its latest picture.
    #[serde(skip_serializing_if = "Option::is_none")]
    thumbnail_url: Option<String>,
    /// The thumbnail's width in pixels (with `thumbnail_url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    thumbnail_width: Option<u32>,
    /// The thumbnail's height in pixels (with `thumbnail_url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    thumbnail_height: Option<u32>,
}

/// oEmbed: the player for a link to a channel
///
/// The answer's URLs are built on `--public-url` when it is set, else on
/// the origin the request came to. The player keeps 16:9 (640x360 unless
/// `maxwidth`/`maxheight` ask for smaller).
#[utoipa::path(get, path = "/api/oembed", tag = "channels",
    params(OembedQuery),
    responses(
        (status = 200, body = OembedVideo),
        (status = 404, description = "Not a link to a channel of this server", body = ErrorBody),
        (status = 501, description = "A format other than JSON", body = ErrorBody),
    ))]
pub(super) async fn oembed(
    State(s): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    q: Result<Query<OembedQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    // oembed.com, "Errors": 501 for a format the provider does not
    // make, before anything else is looked up.
    if let Some(format) = q.format.as_deref() {
        if !format.eq_ignore_ascii_case("json") {
            return Ok((
                StatusCode::NOT_IMPLEMENTED,
                ErrorBody::json(format!("only the json format is served, not {format:?}")),
            )
                .into_response());
        }
    }
    if q.maxwidth == Some(0) || q.maxheight == Some(0) {
        return Err(ApiError::BadRequest(
            "maxwidth and maxheight must be at least 1".into(),
        ));
    }
    let name = channel_of(&q.url).ok_or_else(|| {
        ApiError::NotFound("not a link to a channel (/c/NAME or /embed/NAME)".into())
    })?;
    let info = channel_or_404(&s, name).await?;
    let origin = site_origin(&s, &uri, &headers).ok_or_else(|| {
        ApiError::BadRequest("no usable Host header to build links on (see --public-url)".into())
    })?;
    let (width, height) = fit(q.maxwidth, q.maxheight);
    let title = if info.title.trim().is_empty() {
        info.name.clone()
    } else {
        info.title.clone()
    };
    let html = format!(
        "<iframe src=\"{}\" width=\"{width}\" height=\"{height}\" title=\"{}\" frameborder=\"0\" \
         allow=\"{IFRAME_ALLOW}\" allowfullscreen></iframe>",
        attr(&format!("{origin}/embed/{}", info.name)),
        attr(&title),
    );
    // Only a live channel has a picture; its size comes from the JPEG.
    let thumbnail = s
        .hub
        .stream(&info.name)
        .and_then(|_| s.hls.thumbnail(&info.name))
        .and_then(|jpeg| jpeg_size(&jpeg));
    let answer = OembedVideo {
        version: "1.0".into(),
        kind: "video".into(),
        provider_name: "onair".into(),
        provider_url: origin.clone(),
        author_name: info.owner.clone().unwrap_or_else(|| info.name.clone()),
        author_url: format!("{origin}/c/{}", info.name),
        title,
        html,
        width,
        height,
        thumbnail_url: thumbnail
            .map(|_| format!("{origin}/api/channels/{}/thumbnail.jpg", info.name)),
        thumbnail_width: thumbnail.map(|(w, _)| w),
        thumbnail_height: thumbnail.map(|(_, h)| h),
    };
    Ok(Json(answer).into_response())
}

/// The channel a link names, if it is one of this server's channel pages:
/// `/c/NAME` or `/embed/NAME` (a trailing `/`, a query and a fragment
/// allowed) over http or https, on any host.
fn channel_of(url: &str) -> Option<&str> {
    let scheme_end = url.find("://")?;
    let scheme = &url[..scheme_end];
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if authority_end == 0 {
        return None;
    }
    let path = rest[authority_end..].split(['?', '#']).next().unwrap_or("");
    let path = path.strip_suffix('/').unwrap_or(path);
    let name = path
        .strip_prefix("/c/")
        .or_else(|| path.strip_prefix("/embed/"))?;
    // Names are lowercase letters, digits, `_` and `-`: nothing in one
    // needs decoding, and nothing else is a channel.
    crate::db::valid_channel_name(name).then_some(name)
}

/// The player's size: the default, scaled down (never up) to fit within
/// the bounds given, keeping 16:9. Rounded down, so it always fits.
fn fit(max_width: Option<u32>, max_height: Option<u32>) -> (u32, u32) {
    let mut w = DEFAULT_WIDTH.min(max_width.unwrap_or(u32::MAX));
    let mut h = w * DEFAULT_HEIGHT / DEFAULT_WIDTH;
    if let Some(max_h) = max_height.filter(|&m| m < h) {
        h = max_h;
        w = h * DEFAULT_WIDTH / DEFAULT_HEIGHT;
    }
    (w.max(1), h.max(1))
}

/// Width and height of a JPEG, from its frame header: ITU-T T.81 B.2.2
/// (a SOFn marker, its length, then precision, lines, samples per line).
fn jpeg_size(jpeg: &[u8]) -> Option<(u32, u32)> {
    if jpeg.get(..2)? != [0xff, 0xd8] {
        return None;
    }
    let mut i = 2;
    while i + 4 <= jpeg.len() {
        if jpeg[i] != 0xff {
            return None;
        }
        let marker = jpeg[i + 1];
        // B.1.1.2: any marker may be preceded by fill bytes (0xFF).
        if marker == 0xff {
            i += 1;
            continue;
        }
        // SOF0-SOF15 but DHT (C4), JPG (C8) and DAC (CC).
        if (0xc0..=0xcf).contains(&marker) && !matches!(marker, 0xc4 | 0xc8 | 0xcc) {
            let at = |k: usize| Some(u16::from_be_bytes([*jpeg.get(k)?, *jpeg.get(k + 1)?]));
            let (h, w) = (at(i + 5)?, at(i + 7)?);
            return (w > 0 && h > 0).then_some((u32::from(w), u32::from(h)));
        }
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        if len < 2 {
            return None;
        }
        i += 2 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_to_channels_and_nothing_else() {
        for (url, want) in [
            ("http://tv.example.com/c/alice", Some("alice")),
            ("https://tv.example.com:8443/c/alice/", Some("alice")),
            ("HTTPS://10.0.0.1/embed/a_b-1?muted=1&chat=1", Some("a_b-1")),
            ("http://x/c/alice#chat", Some("alice")),
            ("http://x/c/Alice", None),
            ("http://x/c/alice/extra", None),
            ("http://x/c/", None),
            ("http://x/dashboard", None),
            ("http://x/api/channels/alice", None),
            ("http:///c/alice", None),
            ("ftp://x/c/alice", None),
            ("/c/alice", None),
            ("alice", None),
            ("http://x/c/al%69ce", None),
            ("http://x/c/a\"b", None),
        ] {
            assert_eq!(channel_of(url), want, "{url}");
        }
    }

    #[test]
    fn sizes_keep_16_9_and_fit_the_bounds() {
        for (w, h, want) in [
            (None, None, (640, 360)),
            (Some(320), None, (320, 180)),
            (None, Some(100), (177, 100)),
            (Some(400), Some(400), (400, 225)),
            (Some(1920), Some(1080), (640, 360)),
            (Some(1), None, (1, 1)),
        ] {
            assert_eq!(fit(w, h), want, "{w:?} x {h:?}");
            assert!(want.0 <= w.unwrap_or(u32::MAX) && want.1 <= h.unwrap_or(u32::MAX));
        }
    }

    #[test]
    fn jpeg_sizes_from_the_frame_header() {
        let mut jpeg = Vec::new();
        let pixels = vec![0u8; 48 * 27 * 3];
        jpeg_encoder::Encoder::new(&mut jpeg, 80)
            .encode(&pixels, 48, 27, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        assert_eq!(jpeg_size(&jpeg), Some((48, 27)));
        let sof = jpeg
            .windows(2)
            .position(|w| w == [0xff, 0xc0])
            .expect("a baseline frame header");
        assert_eq!(jpeg_size(&jpeg[..sof + 6]), None, "cut in the frame header");
        assert_eq!(jpeg_size(&jpeg[..sof]), None, "cut before it");
        assert_eq!(jpeg_size(b"not a jpeg"), None);
        assert_eq!(jpeg_size(&[0xff, 0xd8, 0xff, 0xe0, 0, 0]), None);
    }
}
