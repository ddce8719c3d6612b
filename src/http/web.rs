//! The browser app, built from `web/` by Vite and embedded in the binary
//! (see build.rs for the placeholder used when it was not built).
//!
//! Only the app's own paths answer here, so the app can never shadow the
//! API, WHIP/WHEP, HLS, VOD, WebSocket or metrics routes: its pages get
//! `index.html` (the app routes on the client), `/assets/*` get the hashed
//! build output.
//!
//! Framing: every page answers `frame-ancestors 'none'` and
//! `X-Frame-Options: DENY` (the layers in `router()`), except
//! `/embed/CHANNEL`, the player alone, which other sites put in iframes.

use super::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "$ONAIR_WEB_DIST"]
struct Dist;

/// Vite puts a content hash in every file name under `assets/`: a new build
/// gets new names, so browsers may keep these for a year without asking.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The page itself names the current assets: always revalidated.
const NO_CACHE: &str = "no-cache";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(page))
        .route("/c/{channel}", get(channel_page))
        .route("/embed/{channel}", get(embed_page))
        .route("/login", get(page))
        .route("/register", get(page))
        .route("/forgot-password", get(page))
        .route("/reset-password", get(page))
        .route("/verify-email", get(page))
        .route("/oidc/signup", get(page))
        .route("/dashboard", get(page))
        .route("/admin", get(page))
        .route("/api/docs", get(page))
        .route("/assets/{*file}", get(asset))
        .route(
            "/favicon.svg",
            get(|| async { file("favicon.svg", NO_CACHE) }),
        )
}

async fn page() -> Response {
    file("index.html", NO_CACHE)
}

/// Any site may frame the embed. The policy is set here, so the router's
/// `frame-ancestors 'none'` layer leaves it alone and its X-Frame-Options
/// layer (which has no "allow all" value) adds nothing.
const EMBED_FRAMING: &str = "frame-ancestors *";

/// The player alone, for other sites' iframes (the app draws it for
/// `/embed/NAME`; an unknown channel is the app's own "no such channel").
async fn embed_page() -> Response {
    let mut r = file("index.html", NO_CACHE);
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(EMBED_FRAMING),
    );
    r
}

/// A channel's page: the app, with OpenGraph and Twitter card tags so a
/// shared link shows the channel's title, description and live thumbnail;
/// with `?b=ID` (a past broadcast the page then plays), that broadcast's
/// title, description and poster.
async fn channel_page(
    State(s): State<AppState>,
    Path(channel): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some(html) = Dist::get("index.html") else {
        return ApiError::NotFound("no such file".into()).into_response();
    };
    let info = match s.db.channel_info(&channel).await {
        Ok(Some(info)) => info,
        // Unknown or unreadable: the app says so itself.
        _ => return file("index.html", NO_CACHE),
    };
    let origin = site_origin(&s, &uri, &headers);
    let b = uri
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("b=")));
    let replay = match b.and_then(|b| b.parse::<i64>().ok()) {
        Some(id) => shared_broadcast(&s, &info.name, id).await,
        None => None,
    };
    let tags = match replay {
        Some(b) => share_tags(&b, origin.as_deref()),
        None => share_tags(&Shared::live(&info), origin.as_deref()),
    };
    let page = String::from_utf8_lossy(&html.data);
    let page = match page
        .find("</head>")
        .or_else(|| page.find("</title>").map(|i| i + 8))
    {
        Some(at) => format!("{}{tags}{}", &page[..at], &page[at..]),
        None => format!("{tags}{page}"),
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(NO_CACHE)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        page,
    )
        .into_response()
}

/// This server's origin for absolute links, without a trailing `/`:
/// `--public-url`, else the request's own.
pub(super) fn site_origin(s: &AppState, uri: &Uri, headers: &HeaderMap) -> Option<String> {
    match s.public_url.as_deref() {
        Some(url) => Some(url.trim_end_matches('/').to_string()),
        None => request_origin(uri, headers, s.secure_cookies),
    }
}

/// `scheme://host[:port]` of the request, from a Host header (or an HTTP/2
/// request's authority) that is only a name or address and a port
/// (anything else could put markup or another site into the tags).
fn request_origin(uri: &Uri, headers: &HeaderMap, https: bool) -> Option<String> {
    let host = match headers.get(header::HOST) {
        Some(h) => h.to_str().ok()?,
        None => uri.authority()?.as_str(),
    };
    let sane = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    sane.then(|| format!("{}://{host}", if https { "https" } else { "http" }))
}

/// What a shared link shows.
struct Shared {
    title: String,
    description: String,
    /// The page's path and query.
    page: String,
    /// The picture's path.
    image: String,
    /// Whether an oEmbed player exists for it (the live channel's).
    oembed: bool,
}

impl Shared {
    fn live(info: &crate::db::ChannelInfo) -> Shared {
        Shared {
            title: if info.title.trim().is_empty() {
                info.name.clone()
            } else {
                info.title.clone()
            },
            description: info.description.clone(),
            page: format!("/c/{}", info.name),
            image: format!("/api/channels/{}/thumbnail.jpg", info.name),
            oembed: true,
        }
    }
}

/// A published, finished, recorded broadcast of `channel`; anything else
/// (hidden, live, another channel's) shares as the channel does, so the
/// tags never show what the page would not.
async fn shared_broadcast(s: &AppState, channel: &str, id: i64) -> Option<Shared> {
    let row = s.db.broadcast(id).await.ok()??;
    let meta = s.db.broadcast_meta(id).await.ok()??;
    if row.channel != channel || !meta.published || !row.recorded || row.ended_at.is_none() {
        return None;
    }
    let title = meta
        .title
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| format!("{channel}: a past broadcast"));
    Some(Shared {
        title,
        description: meta.description,
        page: format!("/c/{channel}?b={id}"),
        image: format!("/vod/{id}/poster.jpg"),
        oembed: false,
    })
}

/// The `<meta>` tags for a shared link; absolute URLs need `origin`.
fn share_tags(shared: &Shared, origin: Option<&str>) -> String {
    let description: String = shared.description.chars().take(200).collect();
    let mut tags = format!(
        "<meta property=\"og:type\" content=\"video.other\">\n\
         <meta property=\"og:site_name\" content=\"onair\">\n\
         <meta property=\"og:title\" content=\"{}\">\n\
         <meta name=\"twitter:card\" content=\"summary_large_image\">\n",
        attr(&shared.title)
    );
    if !description.trim().is_empty() {
        tags += &format!(
            "<meta property=\"og:description\" content=\"{}\">\n",
            attr(&description)
        );
    }
    if let Some(origin) = origin {
        let origin = origin.trim_end_matches('/');
        let page = format!("{origin}{}", shared.page);
        tags += &format!(
            "<meta property=\"og:url\" content=\"{}\">\n\
             <meta property=\"og:image\" content=\"{}{}\">\n",
            attr(&page),
            attr(origin),
            attr(&shared.image)
        );
        // oEmbed discovery (oembed.com, "Discovery"): consumers that find this
        // ask for the iframe instead of scraping the page.
        if shared.oembed {
            tags += &format!(
                "<link rel=\"alternate\" type=\"application/json+oembed\" href=\"{}\" title=\"{}\">\n",
                attr(&format!("{origin}/api/oembed?url={}", query_value(&page))),
                attr(&shared.title)
            );
        }
    }
    tags
}

/// `s` as one query-string value: everything but RFC 3986's unreserved
/// characters percent-encoded.
fn query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Text safe inside a double-quoted HTML attribute.
pub(super) fn attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

async fn asset(Path(name): Path<String>) -> Response {
    file(&format!("assets/{name}"), IMMUTABLE)
}

fn file(path: &str, cache: &'static str) -> Response {
    let Some(f) = Dist::get(path) else {
        return ApiError::NotFound("no such file".into()).into_response();
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(path)),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        f.data,
    )
        .into_response()
}

pub fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json" | "map") => "application/json",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("assets/app-1a2b.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("assets/x.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            query_value("https://tv.example.com:8443/c/a_b-c.d~"),
            "https%3A%2F%2Ftv.example.com%3A8443%2Fc%2Fa_b-c.d~"
        );
        assert_eq!(query_value("a b&c=\"é"), "a%20b%26c%3D%22%C3%A9");
    }

    #[test]
    fn odd_hosts_make_no_origin() {
        let uri: Uri = "/c/x".parse().unwrap();
        let with = |host: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
            request_origin(&uri, &h, false)
        };
        assert_eq!(
            with("tv.example.com:8080").as_deref(),
            Some("http://tv.example.com:8080")
        );
        assert_eq!(with("[::1]:80").as_deref(), Some("http://[::1]:80"));
        assert_eq!(with("evil.com/x"), None);
        assert_eq!(with("a\"b"), None);
        assert_eq!(with(""), None);
        // HTTP/2: the authority stands in for Host.
        let h2: Uri = "https://tv.example.com/c/x".parse().unwrap();
        assert_eq!(
            request_origin(&h2, &HeaderMap::new(), true).as_deref(),
            Some("https://tv.example.com")
        );
    }

    #[test]
    fn index_is_always_embedded() {
        // The real build or the placeholder: the pages never 404.
        assert!(Dist::get("index.html").is_some());
    }
}
