//! The request head an Icecast client sends (RFC 9112 section 2-5, plus
//! Icecast's `SOURCE` method), HTTP Basic credentials (RFC 7617), the
//! mount, and the query of `/admin/metadata`. Sans-I/O and bounded: a head
//! is parsed from a slice of at most [`MAX_HEAD_BYTES`].

use base64::Engine;

/// A source's head is a dozen short headers; a listener's (VLC, a phone
/// app) a few more. 8 KiB is what most servers allow, and all a stranger
/// can make us hold before a request is understood.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Headers kept per request; more is refused.
pub const MAX_HEADERS: usize = 64;
/// `ice-*` values and a now-playing title longer than this are cut: they
/// end up in listeners' ICY blocks (at most 4080 bytes) and on the page.
pub const MAX_META_CHARS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    /// The request target as sent: path and query.
    pub target: String,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("request head over {MAX_HEAD_BYTES} bytes")]
    TooLong,
    #[error("more than {MAX_HEADERS} headers")]
    TooManyHeaders,
    #[error("malformed request line")]
    RequestLine,
    #[error("malformed header line")]
    HeaderLine,
}

impl Head {
    /// The first value of header `name` (case-insensitive), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }
}

/// Parses a head at the start of `buf`: `Ok(None)` until the blank line
/// that ends it has arrived, then the head and its length (the body, for
/// a source, starts right after).
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, HeadError> {
    let Some(end) = find_end(buf) else {
        return if buf.len() >= MAX_HEAD_BYTES {
            Err(HeadError::TooLong)
        } else {
            Ok(None)
        };
    };
    if end > MAX_HEAD_BYTES {
        return Err(HeadError::TooLong);
    }
    // Header values are Latin-1 at worst; bytes that are not UTF-8 become
    // U+FFFD, which only ever ends up cut and shown as text.
    let text = String::from_utf8_lossy(buf.get(..end).unwrap_or_default());
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request = lines.next().ok_or(HeadError::RequestLine)?;
    let mut parts = request.split(' ').filter(|p| !p.is_empty());
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::RequestLine);
    };
    if !method.bytes().all(|b| b.is_ascii_uppercase()) || method.len() > 16 {
        return Err(HeadError::RequestLine);
    }
    if !target.starts_with('/') || !version.starts_with("HTTP/1.") || version.len() != 8 {
        return Err(HeadError::RequestLine);
    }
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if headers.len() == MAX_HEADERS {
            return Err(HeadError::TooManyHeaders);
        }
        let (k, v) = line.split_once(':').ok_or(HeadError::HeaderLine)?;
        if k.is_empty() || k.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(HeadError::HeaderLine);
        }
        headers.push((k.to_string(), v.trim().to_string()));
    }
    Ok(Some((
        Head {
            method: method.to_string(),
            target: target.to_string(),
            headers,
        },
        end,
    )))
}

/// The offset just past the blank line ending the head (CRLF CRLF, or the
/// bare LF LF some old clients send).
fn find_end(buf: &[u8]) -> Option<usize> {
    let limit = buf.len().min(MAX_HEAD_BYTES + 4);
    let b = buf.get(..limit)?;
    for i in 0..b.len() {
        if b.get(i..i + 4) == Some(b"\r\n\r\n") {
            return Some(i + 4);
        }
        if b.get(i..i + 2) == Some(b"\n\n") {
            return Some(i + 2);
        }
    }
    None
}

/// User and password from `Authorization: Basic ...`.
pub fn basic_auth(value: &str) -> Option<(String, String)> {
    let (scheme, cred) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") || cred.len() > 1024 {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(cred.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// The channel a mount names: `/demo`, `/demo.mp3`, `/demo.ogg`... An
/// extension is ignored; anything else that is not a channel name (more
/// path segments, upper case, dots inside) is `None`.
pub fn mount_channel(path: &str) -> Option<String> {
    let name = path.strip_prefix('/')?;
    let name = match name.rsplit_once('.') {
        Some((base, ext))
            if !ext.is_empty()
                && ext.len() <= 8
                && ext.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            base
        }
        _ => name,
    };
    crate::db::valid_channel_name(name).then(|| name.to_string())
}

/// The value of `key` in a query string, percent-decoded (`+` is a space,
/// as HTML forms and libshout write it). Bytes that are not UTF-8 are read
/// as Latin-1: old source clients send titles that way, and say so with
/// `charset=ISO-8859-1`.
pub fn query_value(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| decode_component(v))
    })
}

fn decode_component(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'+' => out.push(b' '),
            b'%' => match b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(x) => {
                    out.push(x);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            _ => out.push(c),
        }
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => e.into_bytes().iter().map(|&b| char::from(b)).collect(),
    }
}

/// Text a client chose, made safe to show and to put in an ICY block: no
/// control characters, at most [`MAX_META_CHARS`] characters, trimmed.
pub fn clean_text(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(MAX_META_CHARS)
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_the_clients_send() {
        // ffmpeg 5.1's icecast:// output.
        let ffmpeg = b"PUT /demo.mp3 HTTP/1.1\r\nUser-Agent: Lavf/59.27.100\r\nAccept: */*\r\nExpect: 100-continue\r\nConnection: close\r\nHost: 127.0.0.1:18765\r\nContent-Type: audio/mpeg\r\nIcy-MetaData: 1\r\nIce-Name: My Radio\r\nIce-Public: 0\r\nAuthorization: Basic c291cmNlOmtleQ==\r\n\r\n\xff\xfb";
        let (h, n) = parse_head(ffmpeg).unwrap().unwrap();
        assert_eq!((h.method.as_str(), h.path()), ("PUT", "/demo.mp3"));
        assert_eq!(&ffmpeg[n..], b"\xff\xfb");
        assert_eq!(h.header("content-type"), Some("audio/mpeg"));
        assert_eq!(
            basic_auth(h.header("authorization").unwrap()),
            Some(("source".into(), "key".into()))
        );
        // A legacy source with bare LFs.
        let legacy = b"SOURCE /demo ICE/1.0\n\n";
        assert_eq!(parse_head(legacy), Err(HeadError::RequestLine));
        let legacy = b"SOURCE /demo HTTP/1.0\nice-name: x\n\n";
        let (h, _) = parse_head(legacy).unwrap().unwrap();
        assert_eq!(h.header("ICE-NAME"), Some("x"));
        assert_eq!(parse_head(b"GET /demo HTTP/1.1\r\nHost: x\r\n"), Ok(None));
    }

    #[test]
    fn hostile_heads() {
        let long = vec![b'a'; MAX_HEAD_BYTES + 10];
        assert_eq!(parse_head(&long), Err(HeadError::TooLong));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("x{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse_head(&many), Err(HeadError::TooManyHeaders));
        for bad in [
            &b"GET\r\n\r\n"[..],
            b"get / HTTP/1.1\r\n\r\n",
            b"GET demo HTTP/1.1\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTP/1.1 x\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET / HTTP/1.1\r\n: empty\r\n\r\n",
        ] {
            assert!(parse_head(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn credentials() {
        assert_eq!(basic_auth("Bearer x"), None);
        assert_eq!(basic_auth("Basic !!!"), None);
        assert_eq!(basic_auth("Basic c291cmNl"), None, "no colon");
        assert_eq!(
            basic_auth("basic c291cmNlOmE6Yg=="),
            Some(("source".into(), "a:b".into()))
        );
    }

    #[test]
    fn mounts() {
        for (path, want) in [
            ("/demo", Some("demo")),
            ("/demo.mp3", Some("demo")),
            ("/demo.ogg", Some("demo")),
            ("/radio-1.aac", Some("radio-1")),
            ("/", None),
            ("/Demo", None),
            ("/a/b", None),
            ("/demo.", None),
            ("/../x", None),
            ("/demo.mp3.mp3", None),
            ("demo", None),
        ] {
            assert_eq!(mount_channel(path).as_deref(), want, "{path}");
        }
    }

    #[test]
    fn query_values() {
        let q = "mount=%2Fdemo&mode=updinfo&song=Artist+-+Title%21&charset=UTF-8";
        assert_eq!(query_value(q, "mount").as_deref(), Some("/demo"));
        assert_eq!(query_value(q, "song").as_deref(), Some("Artist - Title!"));
        assert_eq!(query_value(q, "nope"), None);
        assert_eq!(query_value("song=caf%E9", "song").as_deref(), Some("café"));
        assert_eq!(
            query_value("song=%C3%A9%zz%", "song").as_deref(),
            Some("é%zz%")
        );
        assert_eq!(clean_text(" a\u{0}b\nc "), "abc");
        assert_eq!(clean_text(&"x".repeat(1000)).len(), MAX_META_CHARS);
    }
}
