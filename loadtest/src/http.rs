//! A minimal HTTP/1.1 client: one request per connection, enough for WHEP
//! signalling and scraping /metrics without a client library.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest a request may take before the client gives up on the answer.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(20);

pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Reads a streaming response's head into `buf` and refuses anything but
/// 200. Returns how many body bytes came with the head, moved to the front
/// of `buf`; a head longer than `buf` is refused.
pub async fn stream_head(
    s: &mut (impl tokio::io::AsyncRead + Unpin),
    buf: &mut [u8],
) -> anyhow::Result<usize> {
    let mut len = 0;
    loop {
        anyhow::ensure!(len < buf.len(), "response head too long");
        let n = s.read(&mut buf[len..]).await?;
        anyhow::ensure!(n > 0, "the server closed the stream");
        len += n;
        let Some(end) = buf[..len].windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let status = String::from_utf8_lossy(&buf[..end]);
        anyhow::ensure!(
            status.split_whitespace().nth(1) == Some("200"),
            "answered {}",
            status.lines().next().unwrap_or("")
        );
        buf.copy_within(end + 4..len, 0);
        return Ok(len - end - 4);
    }
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One request on its own connection. Panics on a connection failure or a
/// malformed answer: callers are tests and load runs, where that is the
/// finding.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    try_http(addr, method, path, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// Where a `Location` points: a path on `base`, or an absolute
/// `http://IP:PORT/path` on another server (of a site).
pub fn split_location(base: SocketAddr, location: &str) -> anyhow::Result<(SocketAddr, String)> {
    let Some(rest) = location.strip_prefix("http://") else {
        return Ok((base, location.to_string()));
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let addr: SocketAddr = host
        .parse()
        .map_err(|_| anyhow::anyhow!("Location {location:?}: not an IP:PORT"))?;
    anyhow::ensure!(addr.ip().is_loopback(), "load goes to loopback only");
    Ok((addr, format!("/{path}")))
}

pub async fn try_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<HttpResponse> {
    try_http_from(None, addr, method, path, headers, body).await
}

/// The loopback address client `i` of a crowd connects from, `per_address`
/// clients to each: 127.0.0.2, .3, ... (all loopback on Linux), so a
/// server's per-address limits see many clients, as real audiences are.
pub fn spread_ip(i: usize, per_address: usize) -> std::net::IpAddr {
    let n = 2 + i / per_address.max(1);
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(
        127,
        (n >> 16) as u8,
        (n >> 8) as u8,
        n as u8,
    ))
}

/// A TCP connection to `to`, from the local address `from` when given (a
/// loopback address of 127.0.0.0/8: the server's per-address limits then
/// see another client).
pub async fn connect_from(
    from: Option<std::net::IpAddr>,
    to: SocketAddr,
) -> std::io::Result<TcpStream> {
    let Some(ip) = from else {
        return TcpStream::connect(to).await;
    };
    let s = if ip.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    s.bind(SocketAddr::new(ip, 0))?;
    s.connect(to).await
}

/// [`try_http`] from the local address `from`.
pub async fn try_http_from(
    from: Option<std::net::IpAddr>,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<HttpResponse> {
    let mut s = tokio::time::timeout(RESPONSE_TIMEOUT, connect_from(from, addr))
        .await
        .map_err(|_| anyhow::anyhow!("connect to {addr} timed out"))??;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await?;
    // The server may answer (413) before reading a large body; a reset
    // while writing it is not an error of the exchange.
    let _ = s.write_all(body).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(RESPONSE_TIMEOUT, s.read_to_end(&mut raw)).await;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> anyhow::Result<HttpResponse> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("incomplete response ({} bytes)", raw.len()))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(p) = rest.windows(2).position(|w| w == b"\r\n") {
            let n =
                usize::from_str_radix(std::str::from_utf8(&rest[..p]).unwrap_or("0").trim(), 16)
                    .unwrap_or(0);
            if n == 0 || rest.len() < p + 2 + n + 2 {
                break;
            }
            out.extend_from_slice(&rest[p + 2..p + 2 + n]);
            rest = &rest[p + 2 + n + 2..];
        }
        body = out;
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// A keep-alive HTTP/1.1 connection for clients that make many requests
/// (HLS viewers): one connection per viewer, not one per request, so a
/// load run does not exhaust ephemeral ports with TIME_WAIT sockets.
pub struct KeepAlive {
    addr: SocketAddr,
    conn: Option<tokio::io::BufReader<TcpStream>>,
    user_agent: String,
}

/// Largest body a keep-alive client accepts: parts and playlists are far
/// smaller; anything bigger is a fault worth reporting.
const MAX_BODY: usize = 32 << 20;

impl KeepAlive {
    pub fn new(addr: SocketAddr, user_agent: String) -> KeepAlive {
        KeepAlive {
            addr,
            conn: None,
            user_agent,
        }
    }

    /// GET `path`, reconnecting once if the kept connection has gone.
    pub async fn get(&mut self, path: &str) -> anyhow::Result<HttpResponse> {
        let reused = self.conn.is_some();
        match tokio::time::timeout(RESPONSE_TIMEOUT, self.get_once(path)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) if reused => {
                self.conn = None;
                tokio::time::timeout(RESPONSE_TIMEOUT, self.get_once(path))
                    .await
                    .map_err(|_| anyhow::anyhow!("GET {path} timed out"))?
            }
            Ok(Err(e)) => {
                self.conn = None;
                Err(e)
            }
            Err(_) => {
                self.conn = None;
                anyhow::bail!("GET {path} timed out")
            }
        }
    }

    async fn get_once(&mut self, path: &str) -> anyhow::Result<HttpResponse> {
        use tokio::io::AsyncBufReadExt;
        if self.conn.is_none() {
            let s = TcpStream::connect(self.addr).await?;
            s.set_nodelay(true)?;
            self.conn = Some(tokio::io::BufReader::new(s));
        }
        let c = self.conn.as_mut().expect("connected above");
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\n\r\n",
            self.addr, self.user_agent
        );
        c.get_mut().write_all(req.as_bytes()).await?;
        let mut line = String::new();
        c.read_line(&mut line).await?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("bad status line {line:?}"))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            anyhow::ensure!(c.read_line(&mut line).await? > 0, "connection closed");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
            anyhow::ensure!(headers.len() < 100, "too many headers");
        }
        let find = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let mut body = Vec::new();
        if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                line.clear();
                c.read_line(&mut line).await?;
                let n = usize::from_str_radix(line.trim(), 16)?;
                anyhow::ensure!(body.len() + n <= MAX_BODY, "body too large");
                let at = body.len();
                body.resize(at + n + 2, 0);
                c.read_exact(&mut body[at..]).await?;
                body.truncate(at + n);
                if n == 0 {
                    break;
                }
            }
        } else if let Some(n) = find("content-length") {
            let n: usize = n.parse()?;
            anyhow::ensure!(n <= MAX_BODY, "body too large");
            body.resize(n, 0);
            c.read_exact(&mut body).await?;
        } else {
            // No length: the body runs to the end of the connection.
            c.read_to_end(&mut body).await?;
            self.conn = None;
        }
        if find("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
            self.conn = None;
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod location_tests {
    #[test]
    fn locations_are_paths_here_or_absolute_on_another_loopback_server() {
        let here: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let (a, p) = super::split_location(here, "/whep/demo/abc").unwrap();
        assert_eq!((a, p.as_str()), (here, "/whep/demo/abc"));
        let (a, p) =
            super::split_location(here, "http://127.0.0.2:8081/whep/demo?ticket=x").unwrap();
        assert_eq!(a, "127.0.0.2:8081".parse::<std::net::SocketAddr>().unwrap());
        assert_eq!(p, "/whep/demo?ticket=x");
        assert!(super::split_location(here, "http://10.0.0.5:8080/whep/demo").is_err());
        assert!(super::split_location(here, "http://edge.example/whep/demo").is_err());
    }
}
