//! The RTMP chunk stream (RTMP 1.0 section 5.3) turned back into messages:
//! sans-I/O, and bounded in what a client can make it hold.
//!
//! This is ours rather than rml_rtmp's `ChunkDeserializer` because that one
//! keeps a single partial message for all chunk streams: chunks of two
//! messages interleaved on different chunk stream ids (which section 5.3.1
//! allows) are glued into one, and a shorter message header arriving over a
//! longer partial underflows `length - received` (a panic with overflow
//! checks, an ever-growing buffer without). It also keeps every chunk
//! stream id a client names (up to 65 599) and gives no way to see or cap
//! what it holds. Here each chunk stream has its own partial message, and
//! everything held is counted in [`ChunkReader::in_flight`].
//!
//! What bounds it:
//! - a declared message length over [`Limits::max_for`] its type ends the
//!   connection at the header, before any of it is stored;
//! - at most [`MAX_CHUNK_STREAMS`] chunk stream ids per connection;
//! - bytes taken in but not yet turned into messages (partial messages on
//!   every chunk stream, plus unparsed input) may not pass
//!   [`Limits::max_in_flight`], twice the largest message allowed: one
//!   message in progress on each of the audio and video chunk streams is
//!   normal, more than that is a client holding memory on purpose;
//! - buffers grow only with bytes received, never with a declared length.
//!
//! The chunk size the client sets (5.4.1) only decides where chunk headers
//! fall; nothing is allocated by it.

use bytes::{Buf, BytesMut};
use std::collections::HashMap;

/// Chunk stream ids one connection may use. Encoders use a handful
/// (ffmpeg 2 to 8, OBS/librtmp 2 to 7: control, commands, audio, video,
/// data); each id costs a stored header for the rest of the connection.
pub const MAX_CHUNK_STREAMS: usize = 64;

/// Message type ids the chunk layer handles itself (RTMP 1.0 5.4).
pub const TYPE_SET_CHUNK_SIZE: u8 = 1;
pub const TYPE_ABORT: u8 = 2;
pub const TYPE_AUDIO: u8 = 8;
pub const TYPE_VIDEO: u8 = 9;

/// A 24-bit timestamp field of all ones: the real value follows in 4 bytes
/// (5.3.1.3).
const EXTENDED_TIMESTAMP: u32 = 0xFF_FFFF;
/// 5.4.1: every connection starts at 128-byte chunks.
const INITIAL_CHUNK_SIZE: u32 = 128;
/// A new partial message reserves at most this much up front; the rest
/// grows with what arrives, so a declared length costs nothing until sent.
const FIRST_RESERVE: usize = 64 * 1024;

/// One message, reassembled from its chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub timestamp: u32,
    pub type_id: u8,
    pub stream_id: u32,
    pub payload: BytesMut,
}

/// Largest messages accepted, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Audio and video.
    pub media: u32,
    /// Everything else: commands, metadata, control.
    pub other: u32,
}

impl Limits {
    pub fn max_for(&self, type_id: u8) -> u32 {
        match type_id {
            TYPE_AUDIO | TYPE_VIDEO => self.media,
            _ => self.other,
        }
    }

    pub fn max_in_flight(&self) -> usize {
        2 * self.media.max(self.other) as usize
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("message of {len} bytes (type {type_id}) over the {max}-byte limit")]
    TooLarge { type_id: u8, len: u32, max: u32 },
    #[error("more than {MAX_CHUNK_STREAMS} chunk stream ids")]
    TooManyChunkStreams,
    #[error("{held} bytes held in unfinished messages, over the {max}-byte limit")]
    InFlight { held: usize, max: usize },
    #[error("chunk stream {0} continues a header it never sent")]
    NoPreviousHeader(u32),
    #[error("a new message header on chunk stream {0} before its message was complete")]
    Interrupted(u32),
    #[error("bad chunk size {0:#x} (RTMP 1.0 5.4.1: 1 to 0x7fffffff)")]
    BadChunkSize(u32),
    #[error("malformed {0} message")]
    Malformed(&'static str),
}

/// What one chunk stream remembers: the last header (later headers on the
/// same id leave out what did not change) and the message in progress.
#[derive(Debug, Default)]
struct ChunkStream {
    timestamp: u32,
    /// The last timestamp field: a delta, or the absolute time of a type 0
    /// header. A type 3 chunk that starts a message adds it again, as
    /// ffmpeg and rml_rtmp read it.
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// The last header's timestamp field was 0xFFFFFF, so type 3 chunks on
    /// this id carry an extended timestamp too (5.3.1.3; ffmpeg and librtmp
    /// send it).
    extended: bool,
    partial: Option<BytesMut>,
}

/// Chunks in, messages out. Feed bytes with [`push`](Self::push), then call
/// [`next_message`](Self::next_message) until it gives `None`.
#[derive(Debug)]
pub struct ChunkReader {
    buf: BytesMut,
    chunk_size: u32,
    limits: Limits,
    streams: HashMap<u32, ChunkStream>,
    /// The chunk whose payload is being read: its chunk stream id and the
    /// payload bytes still to come in it.
    current: Option<(u32, u32)>,
    /// Bytes in partial messages.
    held: usize,
}

impl ChunkReader {
    pub fn new(limits: Limits) -> ChunkReader {
        ChunkReader {
            buf: BytesMut::new(),
            chunk_size: INITIAL_CHUNK_SIZE,
            limits,
            streams: HashMap::new(),
            current: None,
            held: 0,
        }
    }

    /// New limits apply to messages whose first header comes after this.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes taken in and not yet given out as messages.
    pub fn in_flight(&self) -> usize {
        self.held + self.buf.len()
    }

    /// The next complete message, or `None` when more input is needed. Set
    /// Chunk Size and Abort are applied here and not returned.
    pub fn next_message(&mut self) -> Result<Option<Message>, ChunkError> {
        loop {
            let Some((csid, left)) = self.current else {
                if self.read_header()? {
                    continue;
                }
                return self.need_more();
            };
            let take = (left as usize).min(self.buf.len());
            if take == 0 && left > 0 {
                return self.need_more();
            }
            let stream = self
                .streams
                .get_mut(&csid)
                .ok_or(ChunkError::NoPreviousHeader(csid))?;
            let partial = stream.partial.get_or_insert_with(BytesMut::new);
            partial.extend_from_slice(self.buf.get(..take).unwrap_or_default());
            self.buf.advance(take);
            self.held += take;
            let left = left - take as u32;
            if left > 0 {
                self.current = Some((csid, left));
                return self.need_more();
            }
            self.current = None;
            if partial.len() < stream.length as usize {
                continue;
            }
            let payload = stream.partial.take().unwrap_or_default();
            self.held -= payload.len();
            let message = Message {
                timestamp: stream.timestamp,
                type_id: stream.type_id,
                stream_id: stream.stream_id,
                payload,
            };
            match message.type_id {
                TYPE_SET_CHUNK_SIZE => self.set_chunk_size(&message.payload)?,
                TYPE_ABORT => self.abort(&message.payload)?,
                _ => return Ok(Some(message)),
            }
        }
    }

    fn need_more(&self) -> Result<Option<Message>, ChunkError> {
        let (held, max) = (self.in_flight(), self.limits.max_in_flight());
        if held > max {
            return Err(ChunkError::InFlight { held, max });
        }
        Ok(None)
    }

    /// 5.4.1: 31 bits, at least 1. Sizes past a message's length only mean
    /// one chunk per message.
    fn set_chunk_size(&mut self, payload: &[u8]) -> Result<(), ChunkError> {
        let size = be_u32(payload).ok_or(ChunkError::Malformed("Set Chunk Size"))?;
        if size == 0 || size > 0x7FFF_FFFF {
            return Err(ChunkError::BadChunkSize(size));
        }
        self.chunk_size = size;
        Ok(())
    }

    /// 5.4.2: drop the partial message on a chunk stream.
    fn abort(&mut self, payload: &[u8]) -> Result<(), ChunkError> {
        let csid = be_u32(payload).ok_or(ChunkError::Malformed("Abort"))?;
        if let Some(partial) = self.streams.get_mut(&csid).and_then(|s| s.partial.take()) {
            self.held -= partial.len();
        }
        Ok(())
    }

    /// Reads one chunk header (5.3.1.1 basic header, 5.3.1.2 message
    /// header, 5.3.1.3 extended timestamp) if all of it is there. Nothing is
    /// consumed until it is.
    fn read_header(&mut self) -> Result<bool, ChunkError> {
        let b = &self.buf[..];
        let Some(&first) = b.first() else {
            return Ok(false);
        };
        let fmt = first >> 6;
        let (csid, basic) = match first & 0x3f {
            0 => match b.get(1) {
                Some(&x) => (64 + u32::from(x), 2),
                None => return Ok(false),
            },
            1 => match (b.get(1), b.get(2)) {
                (Some(&lo), Some(&hi)) => (64 + u32::from(lo) + 256 * u32::from(hi), 3),
                _ => return Ok(false),
            },
            x => (u32::from(x), 1),
        };
        let header_len = match fmt {
            0 => 11,
            1 => 7,
            2 => 3,
            _ => 0,
        };
        let Some(h) = b.get(basic..basic + header_len) else {
            return Ok(false);
        };
        let known = self.streams.get(&csid);
        if fmt != 0 && known.is_none() {
            return Err(ChunkError::NoPreviousHeader(csid));
        }
        if known.is_none() && self.streams.len() >= MAX_CHUNK_STREAMS {
            return Err(ChunkError::TooManyChunkStreams);
        }
        let field = if fmt < 3 { be_u24(h) } else { 0 };
        let extended = if fmt < 3 {
            field == EXTENDED_TIMESTAMP
        } else {
            known.is_some_and(|s| s.extended)
        };
        let at = basic + header_len;
        let ext = if extended {
            match b.get(at..at + 4).and_then(be_u32) {
                Some(v) => Some(v),
                None => return Ok(false),
            }
        } else {
            None
        };
        let consumed = at + if extended { 4 } else { 0 };
        let (length, type_id, stream_id) = match fmt {
            // The message stream id is little-endian (5.3.1.2.1).
            0 | 1 => (
                be_u24(h.get(3..).unwrap_or_default()),
                h.get(6).copied(),
                h.get(7..11)
                    .and_then(|s| <[u8; 4]>::try_from(s).ok())
                    .map(u32::from_le_bytes),
            ),
            _ => (0, None, None),
        };

        let chunk_size = self.chunk_size;
        let limits = self.limits;
        let stream = self.streams.entry(csid).or_default();
        let continuing = stream.partial.is_some();
        if continuing && fmt != 3 {
            return Err(ChunkError::Interrupted(csid));
        }
        match fmt {
            0 => {
                let ts = ext.unwrap_or(field);
                stream.timestamp = ts;
                stream.delta = ts;
            }
            1 | 2 => {
                stream.delta = ext.unwrap_or(field);
                stream.timestamp = stream.timestamp.wrapping_add(stream.delta);
            }
            _ if !continuing => {
                if let Some(e) = ext {
                    stream.delta = e;
                }
                stream.timestamp = stream.timestamp.wrapping_add(stream.delta);
            }
            _ => {}
        }
        if fmt < 3 {
            stream.extended = extended;
        }
        if fmt < 2 {
            stream.length = length;
            stream.type_id = type_id.unwrap_or_default();
        }
        if let Some(id) = stream_id {
            stream.stream_id = id;
        }
        let received = match &stream.partial {
            Some(p) => p.len() as u32,
            None => {
                let max = limits.max_for(stream.type_id);
                if stream.length > max {
                    return Err(ChunkError::TooLarge {
                        type_id: stream.type_id,
                        len: stream.length,
                        max,
                    });
                }
                let reserve = (stream.length as usize).min(FIRST_RESERVE);
                stream.partial = Some(BytesMut::with_capacity(reserve));
                0
            }
        };
        let left = (stream.length - received).min(chunk_size);
        self.current = Some((csid, left));
        self.buf.advance(consumed);
        Ok(true)
    }
}

fn be_u24(b: &[u8]) -> u32 {
    match b {
        [a, b, c, ..] => u32::from_be_bytes([0, *a, *b, *c]),
        _ => 0,
    }
}

fn be_u32(b: &[u8]) -> Option<u32> {
    match b {
        [a, b, c, d] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

#[cfg(test)]
#[path = "chunk_tests.rs"]
mod tests;
