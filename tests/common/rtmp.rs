//! A raw RTMP client: the handshake, then chunks built by hand. The
//! hostile tests send what no encoder would; others publish on their own
//! schedule (a publish that stays silent before its first media).

use rml_rtmp::rml_amf0::{self, Amf0Value};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpSocket;

/// A connection whose incoming bytes are collected by a task, so the
/// test can write freely and ask whether the server has closed it.
pub struct Raw {
    w: OwnedWriteHalf,
    /// Every byte the server has sent.
    pub got: Arc<Mutex<Vec<u8>>>,
    closed: Arc<AtomicBool>,
    opened: Instant,
    closed_at: Arc<Mutex<Option<Instant>>>,
}

impl Raw {
    pub async fn connect(server: SocketAddr, from: IpAddr) -> Raw {
        let s = TcpSocket::new_v4().unwrap();
        s.bind(SocketAddr::new(from, 0)).unwrap();
        let stream = tokio::time::timeout(Duration::from_secs(5), s.connect(server))
            .await
            .expect("connected in time")
            .expect("RTMP port accepts");
        let opened = Instant::now();
        let (mut r, w) = stream.into_split();
        let got = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(AtomicBool::new(false));
        let closed_at = Arc::new(Mutex::new(None));
        let (g, c, at) = (got.clone(), closed.clone(), closed_at.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => g.lock().unwrap().extend_from_slice(&buf[..n]),
                }
            }
            *at.lock().unwrap() = Some(Instant::now());
            c.store(true, Ordering::SeqCst);
        });
        Raw {
            w,
            got,
            closed,
            opened,
            closed_at,
        }
    }

    /// Connects and completes the original (RTMP 1.0 5.2) handshake.
    pub async fn handshaken(server: SocketAddr, from: IpAddr) -> Raw {
        let mut c = Raw::connect(server, from).await;
        let mut c0c1 = vec![3u8];
        c0c1.resize(1537, 0);
        c.send(&c0c1).await.unwrap();
        assert!(
            c.wait_for_len(1 + 2 * 1536, Duration::from_secs(5)).await,
            "no S0 S1 S2"
        );
        let s1 = c.got.lock().unwrap()[1..1537].to_vec();
        c.send(&s1).await.unwrap();
        c
    }

    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.w.write_all(bytes).await
    }

    pub async fn wait_for_len(&self, n: usize, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while self.got.lock().unwrap().len() < n {
            if Instant::now() > until || self.is_closed() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    pub fn said(&self, needle: &str) -> bool {
        self.got
            .lock()
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    }

    pub async fn wait_said(&self, needle: &str, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while !self.said(needle) {
            if Instant::now() > until || self.is_closed() {
                return self.said(needle);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// How long after connecting the server closed it, waiting up to `limit`.
    pub async fn closed_within(&self, limit: Duration) -> Option<Duration> {
        let until = Instant::now() + limit;
        while !self.is_closed() && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (*self.closed_at.lock().unwrap()).map(|t| t - self.opened)
    }

    /// Handshake, connect to `live`, createStream, publish `key`; true when
    /// the server says the publish started.
    pub async fn publishing(server: SocketAddr, from: IpAddr, key: &str) -> Raw {
        let mut c = Raw::handshaken(server, from).await;
        c.send(&[connect("live"), create_stream(), publish(key)].concat())
            .await
            .unwrap();
        assert!(
            c.wait_said("NetStream.Publish.Start", Duration::from_secs(5))
                .await,
            "the attacker's own publish is answered"
        );
        // rml_rtmp's refusals carry the same code; ours close too.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!c.is_closed(), "the attacker's own publish is accepted");
        c
    }
}

// ---- chunks and commands, by hand (RTMP 1.0 5.3.1) ----

/// A basic header for `csid` with format `fmt`.
pub fn basic(fmt: u8, csid: u32) -> Vec<u8> {
    match csid {
        2..=63 => vec![fmt << 6 | csid as u8],
        64..=319 => vec![fmt << 6, (csid - 64) as u8],
        _ => vec![
            fmt << 6 | 1,
            ((csid - 64) & 0xff) as u8,
            ((csid - 64) >> 8) as u8,
        ],
    }
}

/// A type 0 chunk header at timestamp 0: declared length, type, stream id.
pub fn header(csid: u32, len: usize, type_id: u8, stream: u32) -> Vec<u8> {
    header_at(csid, 0, len, type_id, stream)
}

/// A type 0 chunk header with a timestamp in milliseconds (below 2^24:
/// no extended timestamp).
pub fn header_at(csid: u32, ts: u32, len: usize, type_id: u8, stream: u32) -> Vec<u8> {
    assert!(ts < 0xFF_FFFF, "extended timestamps are not written");
    let mut v = basic(0, csid);
    v.extend_from_slice(&ts.to_be_bytes()[1..]);
    v.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    v.push(type_id);
    v.extend_from_slice(&stream.to_le_bytes());
    v
}

/// A whole message in chunks of `chunk_size`.
pub fn message(csid: u32, type_id: u8, stream: u32, payload: &[u8], chunk_size: usize) -> Vec<u8> {
    message_at(csid, 0, type_id, stream, payload, chunk_size)
}

/// [`message`] at timestamp `ts` (milliseconds).
pub fn message_at(
    csid: u32,
    ts: u32,
    type_id: u8,
    stream: u32,
    payload: &[u8],
    chunk_size: usize,
) -> Vec<u8> {
    let mut v = header_at(csid, ts, payload.len(), type_id, stream);
    for (i, piece) in payload.chunks(chunk_size).enumerate() {
        if i > 0 {
            v.extend(basic(3, csid));
        }
        v.extend_from_slice(piece);
    }
    v
}

pub fn set_chunk_size(size: u32) -> Vec<u8> {
    message(2, 1, 0, &size.to_be_bytes(), 128)
}

pub fn command(
    name: &str,
    txn: f64,
    stream: u32,
    object: Amf0Value,
    args: Vec<Amf0Value>,
) -> Vec<u8> {
    let mut values = vec![
        Amf0Value::Utf8String(name.into()),
        Amf0Value::Number(txn),
        object,
    ];
    values.extend(args);
    message(3, 20, stream, &rml_amf0::serialize(&values).unwrap(), 128)
}

pub fn connect(app: &str) -> Vec<u8> {
    let o: HashMap<String, Amf0Value> = [("app".to_string(), Amf0Value::Utf8String(app.into()))]
        .into_iter()
        .collect();
    command("connect", 1.0, 0, Amf0Value::Object(o), vec![])
}

pub fn create_stream() -> Vec<u8> {
    command("createStream", 2.0, 0, Amf0Value::Null, vec![])
}

pub fn publish(key: &str) -> Vec<u8> {
    let args = vec![
        Amf0Value::Utf8String(key.into()),
        Amf0Value::Utf8String("live".into()),
    ];
    command("publish", 3.0, 1, Amf0Value::Null, args)
}

/// A ping (user control 6, RTMP 1.0 7.1.7), which the server answers.
pub fn ping(ts: u32) -> Vec<u8> {
    ping_chunked(ts, 128)
}

pub fn ping_chunked(ts: u32, chunk_size: usize) -> Vec<u8> {
    let mut p = vec![0, 6];
    p.extend_from_slice(&ts.to_be_bytes());
    message(2, 4, 0, &p, chunk_size)
}

// ---- media from an FLV file ----

/// One FLV tag: its type (8 audio, 9 video, 18 script data), timestamp in
/// milliseconds and body, which is an RTMP media message's payload as is.
pub struct FlvTag {
    pub kind: u8,
    pub ts: u32,
    pub body: Vec<u8>,
}

/// The tags of an FLV file (FLV 10.1, E.4), as ffmpeg writes it.
pub fn flv_tags(file: &[u8]) -> Vec<FlvTag> {
    assert!(file.starts_with(b"FLV"), "an FLV file");
    let skip = u32::from_be_bytes(file[5..9].try_into().unwrap()) as usize;
    // The header, then PreviousTagSize0.
    let mut at = skip + 4;
    let mut tags = Vec::new();
    while at + 11 <= file.len() {
        let h = &file[at..at + 11];
        let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let body = at + 11;
        assert!(body + len <= file.len(), "a whole tag");
        tags.push(FlvTag {
            kind: h[0] & 0x1f,
            ts,
            body: file[body..body + len].to_vec(),
        });
        at = body + len + 4;
    }
    tags
}

/// An FLV tag as the publisher's media message on stream 1: audio on chunk
/// stream 4, video on 6, as ffmpeg sends them.
pub fn flv_message(tag: &FlvTag, chunk_size: usize) -> Vec<u8> {
    let csid = if tag.kind == 9 { 6 } else { 4 };
    message_at(csid, tag.ts, tag.kind, 1, &tag.body, chunk_size)
}
