use super::*;
use bytes::Bytes;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::messages::MessagePayload;
use rml_rtmp::time::RtmpTimestamp;

const LIMITS: Limits = Limits {
    media: 1 << 20,
    other: 4096,
};

/// A chunk: basic header for `csid` with format `fmt`, then `header`
/// (the message header fields the format carries), then `payload`.
fn chunk(fmt: u8, csid: u32, header: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut v = match csid {
        2..=63 => vec![fmt << 6 | csid as u8],
        64..=319 => vec![fmt << 6, (csid - 64) as u8],
        _ => {
            let id = csid - 64;
            vec![fmt << 6 | 1, (id & 0xff) as u8, (id >> 8) as u8]
        }
    };
    v.extend_from_slice(header);
    v.extend_from_slice(payload);
    v
}

/// A type 0 message header: timestamp, length, type, stream id.
fn full(ts: u32, len: u32, type_id: u8, stream: u32) -> Vec<u8> {
    let mut h = ts.min(0xFF_FFFF).to_be_bytes()[1..].to_vec();
    h.extend_from_slice(&len.to_be_bytes()[1..]);
    h.push(type_id);
    h.extend_from_slice(&stream.to_le_bytes());
    if ts >= 0xFF_FFFF {
        h.extend_from_slice(&ts.to_be_bytes());
    }
    h
}

fn set_chunk_size(size: u32) -> Vec<u8> {
    chunk(
        0,
        2,
        &full(0, 4, TYPE_SET_CHUNK_SIZE, 0),
        &size.to_be_bytes(),
    )
}

fn read_all(r: &mut ChunkReader, input: &[u8]) -> Result<Vec<Message>, ChunkError> {
    r.push(input);
    let mut out = Vec::new();
    while let Some(m) = r.next_message()? {
        out.push(m);
    }
    Ok(out)
}

fn msg(ts: u32, type_id: u8, stream: u32, payload: &[u8]) -> Message {
    Message {
        timestamp: ts,
        type_id,
        stream_id: stream,
        payload: BytesMut::from(payload),
    }
}

#[test]
fn chunk_streams_decode() {
    let a = [0xaau8; 300];
    let b = [0xbbu8; 200];
    type Case = (&'static str, Vec<u8>, Vec<Message>);
    let cases: Vec<Case> = vec![
        (
            "one small message",
            chunk(0, 3, &full(10, 3, 20, 0), b"abc"),
            vec![msg(10, 20, 0, b"abc")],
        ),
        (
            "two-byte and three-byte chunk stream ids",
            [
                chunk(0, 300, &full(1, 1, 20, 0), b"x"),
                chunk(0, 40000, &full(2, 1, 20, 0), b"y"),
            ]
            .concat(),
            vec![msg(1, 20, 0, b"x"), msg(2, 20, 0, b"y")],
        ),
        (
            "a message split over 128-byte chunks",
            [
                chunk(0, 6, &full(0, 300, 9, 1), &a[..128]),
                chunk(3, 6, &[], &a[128..256]),
                chunk(3, 6, &[], &a[256..]),
            ]
            .concat(),
            vec![msg(0, 9, 1, &a)],
        ),
        (
            "two messages interleaved on two chunk streams (5.3.1)",
            [
                chunk(0, 6, &full(40, 300, 9, 1), &a[..128]),
                chunk(0, 4, &full(41, 200, 8, 1), &b[..128]),
                chunk(3, 6, &[], &a[128..256]),
                chunk(3, 4, &[], &b[128..]),
                chunk(3, 6, &[], &a[256..]),
            ]
            .concat(),
            vec![msg(41, 8, 1, &b), msg(40, 9, 1, &a)],
        ),
        (
            "type 1, 2 and 3 headers add their deltas",
            [
                chunk(0, 4, &full(100, 2, 8, 1), b"a1"),
                chunk(1, 4, &[0, 0, 20, 0, 0, 3, 9], b"v22"),
                chunk(2, 4, &[0, 0, 5], b"v33"),
                // A type 3 that starts a message repeats the last delta.
                chunk(3, 4, &[], b"v44"),
            ]
            .concat(),
            vec![
                msg(100, 8, 1, b"a1"),
                msg(120, 9, 1, b"v22"),
                msg(125, 9, 1, b"v33"),
                msg(130, 9, 1, b"v44"),
            ],
        ),
        (
            "extended timestamps, repeated on type 3 continuation chunks",
            [
                chunk(0, 6, &full(0x0100_0000, 300, 9, 1), &a[..128]),
                chunk(3, 6, &0x0100_0000u32.to_be_bytes(), &a[128..256]),
                chunk(3, 6, &0x0100_0000u32.to_be_bytes(), &a[256..]),
            ]
            .concat(),
            vec![msg(0x0100_0000, 9, 1, &a)],
        ),
        (
            "the chunk size a client sets takes effect at the next chunk",
            [set_chunk_size(4096), chunk(0, 6, &full(0, 300, 9, 1), &a)].concat(),
            vec![msg(0, 9, 1, &a)],
        ),
        (
            "chunk size 1",
            [
                set_chunk_size(1),
                chunk(0, 3, &full(0, 3, 20, 0), b"a"),
                chunk(3, 3, &[], b"b"),
                chunk(3, 3, &[], b"c"),
            ]
            .concat(),
            vec![msg(0, 20, 0, b"abc")],
        ),
        (
            "the largest chunk size (5.4.1)",
            [
                set_chunk_size(0x7FFF_FFFF),
                chunk(0, 6, &full(0, 300, 9, 1), &a),
            ]
            .concat(),
            vec![msg(0, 9, 1, &a)],
        ),
        (
            "empty messages",
            [chunk(0, 3, &full(0, 0, 20, 0), b""), chunk(3, 3, &[], b"")].concat(),
            vec![msg(0, 20, 0, b""), msg(0, 20, 0, b"")],
        ),
        (
            "an abort drops the partial message on its chunk stream (5.4.2)",
            [
                chunk(0, 6, &full(0, 300, 9, 1), &a[..128]),
                chunk(0, 2, &full(0, 4, TYPE_ABORT, 0), &6u32.to_be_bytes()),
                chunk(0, 6, &full(7, 3, 9, 1), b"new"),
            ]
            .concat(),
            vec![msg(7, 9, 1, b"new")],
        ),
        (
            "timestamps wrap at 2^32",
            [
                chunk(0, 4, &full(u32::MAX, 1, 8, 1), b"a"),
                chunk(2, 4, &[0, 0, 2], b"b"),
            ]
            .concat(),
            vec![msg(u32::MAX, 8, 1, b"a"), msg(1, 8, 1, b"b")],
        ),
    ];
    for (name, input, want) in cases {
        let mut r = ChunkReader::new(LIMITS);
        assert_eq!(read_all(&mut r, &input).unwrap(), want, "{name}");
        assert_eq!(r.in_flight(), 0, "{name}: nothing left over");
        // The same bytes one at a time: every header and payload split.
        let mut r = ChunkReader::new(LIMITS);
        let mut got = Vec::new();
        for b in &input {
            got.extend(read_all(&mut r, std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(got, want, "{name}, byte by byte");
    }
}

#[test]
fn hostile_chunk_streams_are_refused() {
    let big = vec![0u8; 5000];
    let mut many_ids = Vec::new();
    for id in 0..=MAX_CHUNK_STREAMS as u32 {
        many_ids.extend(chunk(0, 64 + id, &full(0, 1, 9, 1), b"x"));
    }
    // Each chunk stream leaves the first 128 bytes of a 1 KiB video message:
    // fine one by one, over twice the largest message all together.
    let small = Limits {
        media: 1024,
        other: 1024,
    };
    let mut interleaved = Vec::new();
    for id in 0..17 {
        interleaved.extend(chunk(0, 64 + id, &full(0, 1024, 9, 1), &[0; 128]));
    }
    type Case = (&'static str, Limits, Vec<u8>, ChunkError);
    let cases: Vec<Case> = vec![
        (
            "a command longer than allowed",
            LIMITS,
            chunk(0, 3, &full(0, 4097, 20, 0), &big[..128]),
            ChunkError::TooLarge {
                type_id: 20,
                len: 4097,
                max: 4096,
            },
        ),
        (
            "the largest RTMP message, declared and never sent",
            LIMITS,
            chunk(0, 6, &full(0, 0xFF_FFFF, 9, 1), b""),
            ChunkError::TooLarge {
                type_id: 9,
                len: 0xFF_FFFF,
                max: 1 << 20,
            },
        ),
        (
            "a type 1 header that turns a video chunk stream into a long command",
            LIMITS,
            [
                chunk(0, 6, &full(0, 1, 9, 1), b"v"),
                chunk(1, 6, &[0, 0, 0, 0, 0x20, 0, 20], b""),
            ]
            .concat(),
            ChunkError::TooLarge {
                type_id: 20,
                len: 0x2000,
                max: 4096,
            },
        ),
        (
            "one chunk stream id too many",
            LIMITS,
            many_ids,
            ChunkError::TooManyChunkStreams,
        ),
        (
            "partial messages on many chunk streams",
            small,
            interleaved,
            ChunkError::InFlight {
                held: 17 * 128,
                max: 2048,
            },
        ),
        (
            "a type 1 header on a chunk stream never opened",
            LIMITS,
            chunk(1, 5, &[0, 0, 0, 0, 0, 1, 9], b"x"),
            ChunkError::NoPreviousHeader(5),
        ),
        (
            "a type 3 header on a chunk stream never opened",
            LIMITS,
            chunk(3, 5, &[], b"x"),
            ChunkError::NoPreviousHeader(5),
        ),
        (
            "a new message header over a partial message",
            LIMITS,
            [
                chunk(0, 6, &full(0, 300, 9, 1), &big[..128]),
                chunk(0, 6, &full(0, 3, 9, 1), b"abc"),
            ]
            .concat(),
            ChunkError::Interrupted(6),
        ),
        (
            "chunk size 0",
            LIMITS,
            set_chunk_size(0),
            ChunkError::BadChunkSize(0),
        ),
        (
            "chunk size with the top bit set",
            LIMITS,
            set_chunk_size(0x8000_0000),
            ChunkError::BadChunkSize(0x8000_0000),
        ),
        (
            "a Set Chunk Size message of 3 bytes",
            LIMITS,
            chunk(0, 2, &full(0, 3, TYPE_SET_CHUNK_SIZE, 0), &[0, 0, 1]),
            ChunkError::Malformed("Set Chunk Size"),
        ),
    ];
    for (name, limits, input, want) in cases {
        let mut r = ChunkReader::new(limits);
        assert_eq!(read_all(&mut r, &input).unwrap_err(), want, "{name}");
    }
}

/// Whatever rml_rtmp's serializer writes (the same code as its client
/// sessions), the reader gives back the same messages: header compression,
/// extended timestamps, chunk size changes.
#[test]
fn reads_what_rml_rtmp_serializes() {
    let mut serializer = ChunkSerializer::new();
    let mut wire = Vec::new();
    let mut want = Vec::new();
    let mut ts = 0u32;
    for i in 0..200u32 {
        if i == 50 {
            let p = serializer
                .set_max_chunk_size(4096, RtmpTimestamp::new(ts))
                .unwrap();
            wire.extend(p.bytes);
        }
        if i == 100 {
            // Past 4.66 hours: extended timestamps from here on.
            ts = 0x00FF_FF00;
        }
        let len = [3usize, 127, 128, 129, 5000, 70_000][i as usize % 6];
        let (type_id, stream) = if i % 2 == 0 { (9, 1) } else { (8, 1) };
        let data: Vec<u8> = (0..len).map(|j| (j as u32 ^ i) as u8).collect();
        let payload = MessagePayload {
            timestamp: RtmpTimestamp::new(ts),
            type_id,
            message_stream_id: stream,
            data: Bytes::from(data.clone()),
        };
        wire.extend(serializer.serialize(&payload, false, false).unwrap().bytes);
        want.push(msg(ts, type_id, stream, &data));
        ts = ts.wrapping_add(if i % 3 == 0 { 0 } else { 33 });
    }
    let mut r = ChunkReader::new(LIMITS);
    let mut got = Vec::new();
    for piece in wire.chunks(1000) {
        got.extend(read_all(&mut r, piece).unwrap());
    }
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "message {i}");
    }
    assert_eq!(r.in_flight(), 0);
}
