use super::*;
use crate::hub::Reader;
use rml_rtmp::rml_amf0;

/// C0, a C1 without a Flash digest (so the server echoes it: the original
/// RTMP handshake) and a C2.
fn handshake() -> Vec<u8> {
    let mut v = vec![3u8];
    v.extend_from_slice(&[0u8; 1536]);
    v.extend_from_slice(&[0u8; 1536]);
    v
}

/// A message as 128-byte chunks on `csid`: a type 0 header, then type 3.
fn chunked(csid: u8, ts: u32, type_id: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![csid];
    v.extend_from_slice(&ts.min(0xFF_FFFF).to_be_bytes()[1..]);
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    v.push(type_id);
    v.extend_from_slice(&stream.to_le_bytes());
    for (i, piece) in payload.chunks(128).enumerate() {
        if i > 0 {
            v.push(0xc0 | csid);
        }
        v.extend_from_slice(piece);
    }
    v
}

fn amf(values: Vec<Amf0Value>) -> Vec<u8> {
    rml_amf0::serialize(&values).unwrap()
}

fn s(v: &str) -> Amf0Value {
    Amf0Value::Utf8String(v.into())
}

fn command(name: &str, txn: f64, stream: u32, args: Vec<Amf0Value>) -> Vec<u8> {
    let mut values = vec![s(name), Amf0Value::Number(txn), Amf0Value::Null];
    values.extend(args);
    chunked(3, 0, TYPE_AMF0_COMMAND, stream, &amf(values))
}

fn connect(app: &str) -> Vec<u8> {
    let object: HashMap<String, Amf0Value> = [("app".to_string(), s(app))].into_iter().collect();
    let body = amf(vec![
        s("connect"),
        Amf0Value::Number(1.0),
        Amf0Value::Object(object),
    ]);
    chunked(3, 0, TYPE_AMF0_COMMAND, 0, &body)
}

fn create_stream(txn: f64) -> Vec<u8> {
    command("createStream", txn, 0, vec![])
}

fn publish(key: &str, mode: &str) -> Vec<u8> {
    command("publish", 3.0, 1, vec![s(key), s(mode)])
}

fn data(stream: u32, values: Vec<Amf0Value>) -> Vec<u8> {
    chunked(4, 0, TYPE_AMF0_DATA, stream, &amf(values))
}

const SPS: &[u8] = &[
    0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x00, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x24, 0x80,
];
const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];

fn video_sequence_header() -> Vec<u8> {
    let mut v = vec![0x17, 0, 0, 0, 0, 1, SPS[1], SPS[2], SPS[3], 0xff, 0xe1];
    v.extend_from_slice(&(SPS.len() as u16).to_be_bytes());
    v.extend_from_slice(SPS);
    v.push(1);
    v.extend_from_slice(&(PPS.len() as u16).to_be_bytes());
    v.extend_from_slice(PPS);
    chunked(6, 0, 9, 1, &v)
}

fn keyframe(ts: u32) -> Vec<u8> {
    chunked(
        6,
        ts,
        9,
        1,
        &[0x17, 1, 0, 0, 0, 0, 0, 0, 3, 0x65, 0x88, 0x84],
    )
}

fn until_publish(key: &str) -> Vec<u8> {
    [connect("live"), create_stream(2.0), publish(key, "live")].concat()
}

/// What a session did with some input.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Wants more input.
    Reading,
    /// Asked about this stream key.
    Asked(String),
    Closed,
    /// Failed; the error's text contains this.
    Failed(String),
}

struct Harness {
    session: Session,
    reader: Option<Reader>,
    hub: Arc<Hub>,
}

impl Harness {
    fn new() -> Harness {
        let hub = Hub::new();
        let peer: SocketAddr = "192.0.2.1:1935".parse().unwrap();
        let mut session = Session::new(peer, hub.clone(), Instant::now());
        assert_eq!(session.input(&handshake()).unwrap(), Step::Read);
        // S0, S1 and S2, then the session's opening messages (chunk size,
        // window, bandwidth, onBWDone).
        assert!(session.output().len() > 1 + 2 * 1536);
        session.clear_output();
        Harness {
            session,
            reader: None,
            hub,
        }
    }

    /// Feeds `input`; a question about key `good` is answered with channel
    /// `t`, any other with a refusal.
    fn feed(&mut self, input: &[u8]) -> Outcome {
        let mut step = self.session.input(input);
        loop {
            match step {
                Ok(Step::Read) => return Outcome::Reading,
                Ok(Step::Close) => return Outcome::Closed,
                Ok(Step::Authorize { key }) if key == "good" => {
                    step = self.session.authorize(Ok("t".into()));
                    self.reader = self.hub.stream("t").map(|s| s.subscribe("test"));
                }
                Ok(Step::Authorize { key }) => return Outcome::Asked(key),
                Err(e) => return Outcome::Failed(e.to_string()),
            }
        }
    }

    fn units(&mut self) -> usize {
        let r = self.reader.as_mut().expect("published");
        std::iter::from_fn(|| r.try_recv()).count()
    }

    fn said(&self, needle: &str) -> bool {
        self.session
            .output()
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    }
}

fn nested(levels: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for _ in 0..levels {
        v.extend_from_slice(&[0x0a, 0, 0, 0, 1]);
    }
    v
}

/// Input that once hurt rml_rtmp or us, and what must happen to it. Fuzz
/// findings go here.
#[test]
fn sessions_survive_what_broke_them() {
    let publishing = until_publish("good");
    let mut deep_connect = amf(vec![s("connect"), Amf0Value::Number(1.0)]);
    deep_connect.extend(nested(1000));
    let big_video_before_publish = {
        let mut v = [connect("live"), create_stream(2.0)].concat();
        v.extend(chunked(6, 0, 9, 1, &vec![0x17; 70_000]));
        v
    };
    let interleaved = {
        // Two commands, chunk by chunk on two chunk streams: rml_rtmp's
        // own deserializer glued them into one.
        let a = amf(vec![
            s("releaseStream"),
            Amf0Value::Number(2.0),
            Amf0Value::Null,
            s(&"k".repeat(200)),
        ]);
        let b = amf(vec![
            s("FCPublish"),
            Amf0Value::Number(3.0),
            Amf0Value::Null,
            s(&"k".repeat(150)),
        ]);
        let (ca, cb) = (chunked(3, 0, 20, 0, &a), chunked(5, 0, 20, 0, &b));
        let mut v = connect("live");
        // Headers are 12 bytes, then 128-byte pieces with 1-byte headers.
        v.extend_from_slice(&ca[..140]);
        v.extend_from_slice(&cb[..140]);
        v.extend_from_slice(&ca[140..]);
        v.extend_from_slice(&cb[140..]);
        v.extend([create_stream(4.0), publish("good", "live")].concat());
        v
    };
    type Case = (&'static str, Vec<u8>, Outcome);
    let cases: Vec<Case> = vec![
        (
            "a publish with the right key",
            publishing.clone(),
            Outcome::Reading,
        ),
        (
            "a publish with a wrong key",
            until_publish("bad"),
            Outcome::Asked("bad".into()),
        ),
        (
            "publish mode LIVE (some encoders)",
            [connect("live"), create_stream(2.0), publish("good", "LIVE")].concat(),
            Outcome::Reading,
        ),
        (
            "publish mode nonsense",
            [connect("live"), create_stream(2.0), publish("good", "xyz")].concat(),
            Outcome::Closed,
        ),
        (
            "publish to another app",
            [
                connect("other"),
                create_stream(2.0),
                publish("good", "live"),
            ]
            .concat(),
            Outcome::Closed,
        ),
        (
            "publish with an empty key",
            until_publish(""),
            Outcome::Closed,
        ),
        (
            "play",
            [
                connect("live"),
                create_stream(2.0),
                command("play", 3.0, 1, vec![s("x")]),
            ]
            .concat(),
            Outcome::Closed,
        ),
        (
            "@setDataFrame alone (rml_rtmp indexes past the end)",
            [publishing.clone(), data(1, vec![s("@setDataFrame")])].concat(),
            Outcome::Reading,
        ),
        (
            "@setDataFrame onMetaData without the metadata (rml_rtmp removes a missing value)",
            [
                publishing.clone(),
                data(1, vec![s("@setDataFrame"), s("onMetaData")]),
            ]
            .concat(),
            Outcome::Reading,
        ),
        (
            "AMF nested 1000 deep (rml_amf0 overflows the stack)",
            [connect("live"), chunked(3, 0, 20, 0, &deep_connect)].concat(),
            Outcome::Failed("nested more than 16".into()),
        ),
        (
            "AMF nested 1000 deep in AMF3-typed data",
            [publishing.clone(), chunked(4, 0, 15, 1, &nested(1000))].concat(),
            Outcome::Failed("nested more than 16".into()),
        ),
        (
            "createStream nine times",
            (0..9).flat_map(|i| create_stream(f64::from(i))).collect(),
            Outcome::Failed("createStream".into()),
        ),
        (
            "connect twice",
            [connect("live"), connect("live")].concat(),
            Outcome::Failed("second connect".into()),
        ),
        (
            "a 70 000-byte message before publishing",
            big_video_before_publish,
            Outcome::Failed("over the 65536-byte limit".into()),
        ),
        (
            "two messages interleaved on two chunk streams",
            interleaved,
            Outcome::Reading,
        ),
        (
            "the largest window acknowledgement size",
            [
                chunked(2, 0, TYPE_WINDOW_ACK_SIZE, 0, &u32::MAX.to_be_bytes()),
                publishing.clone(),
            ]
            .concat(),
            Outcome::Reading,
        ),
        (
            "an empty command (rml_rtmp drains three values from it)",
            [connect("live"), chunked(3, 0, 20, 0, &[])].concat(),
            Outcome::Failed("without name".into()),
        ),
        (
            "a command of two values",
            chunked(
                3,
                0,
                17,
                0,
                &amf(vec![s("connect"), Amf0Value::Number(1.0)]),
            ),
            Outcome::Failed("without name".into()),
        ),
        (
            "chunk garbage after the handshake",
            vec![0xc7; 64],
            Outcome::Failed("never sent".into()),
        ),
    ];
    let check = |got: Outcome, want: &Outcome, name: &str| match (&got, want) {
        (Outcome::Failed(e), Outcome::Failed(part)) => {
            assert!(
                e.contains(part.as_str()),
                "{name}: {e:?} does not say {part:?}"
            )
        }
        _ => assert_eq!(&got, want, "{name}"),
    };
    // The same table seeds the `rtmp` fuzz target (fuzz/corpus/rtmp): its
    // first byte 0x0a is "handshake given, 4 KiB reads".
    let seeds = std::env::var_os("ONAIR_WRITE_FUZZ_SEEDS").map(std::path::PathBuf::from);
    for (name, input, want) in cases {
        if let Some(dir) = &seeds {
            let file: String = name
                .chars()
                .take_while(|c| *c != '(')
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            std::fs::create_dir_all(dir).unwrap();
            let seed = [&[0x0a][..], &input].concat();
            std::fs::write(
                dir.join(format!("table_{}", file.trim_end_matches('_'))),
                seed,
            )
            .unwrap();
        }
        let mut h = Harness::new();
        check(h.feed(&input), &want, name);
        // The same, a byte at a time.
        let mut h = Harness::new();
        let mut got = Outcome::Reading;
        for b in &input {
            got = h.feed(std::slice::from_ref(b));
            if got != Outcome::Reading {
                break;
            }
        }
        check(got, &want, &format!("{name}, byte by byte"));
    }
}

#[test]
fn a_publish_reaches_the_hub() {
    let mut h = Harness::new();
    let meta: HashMap<String, Amf0Value> = [("width".to_string(), Amf0Value::Number(1280.0))]
        .into_iter()
        .collect();
    let input = [
        until_publish("good"),
        data(
            1,
            vec![s("@setDataFrame"), s("onMetaData"), Amf0Value::Object(meta)],
        ),
        video_sequence_header(),
        keyframe(0),
        keyframe(33),
    ]
    .concat();
    assert_eq!(h.feed(&input), Outcome::Reading);
    assert!(h.said("NetStream.Publish.Start"));
    assert!(
        h.session.deadline().is_none(),
        "no deadline once publishing"
    );
    let health = h.session.stream().unwrap().health();
    assert_eq!(health.video_units, 2);
    assert_eq!(health.metadata.get("width"), Some(&serde_json::json!(1280)));
    // Once publishing, video messages may be as large as a 4K keyframe.
    let mut big = vec![0x27, 1, 0, 0, 0];
    let nal = vec![0x41; 4 << 20];
    big.extend_from_slice(&(nal.len() as u32).to_be_bytes());
    big.extend_from_slice(&nal);
    assert_eq!(h.feed(&chunked(6, 66, 9, 1, &big)), Outcome::Reading);
    let stream = h.session.stream().unwrap();
    assert_eq!(stream.health().video_units, 3);
    let last = h.units();
    assert!(last >= 1, "the reader saw the big keyframe");
    assert_eq!(h.session.in_flight(), 0);
}

#[test]
fn a_refused_publish_says_why() {
    let mut h = Harness::new();
    assert_eq!(h.feed(&until_publish("bad")), Outcome::Asked("bad".into()));
    h.session.clear_output();
    let step = h.session.authorize(Err("wrong stream key".into())).unwrap();
    assert_eq!(step, Step::Close);
    assert!(h.said(BAD_NAME));
    assert!(h.said("wrong stream key"));
    assert!(h.hub.stream("t").is_none());
}

#[test]
fn media_waits_for_the_key_lookup() {
    // Everything an encoder sends in one go after its publish, before the
    // answer, is held until the lookup is answered, then read.
    let mut h = Harness::new();
    let input = [until_publish("slow"), video_sequence_header(), keyframe(0)].concat();
    assert_eq!(h.feed(&input), Outcome::Asked("slow".into()));
    assert!(h.session.in_flight() > 0);
    assert_eq!(h.session.authorize(Ok("t".into())).unwrap(), Step::Read);
    assert_eq!(h.session.stream().unwrap().health().video_units, 1);
    assert_eq!(h.session.in_flight(), 0);
}

#[test]
fn app_names() {
    for (raw, want) in [
        ("live", "live"),
        ("live/", "live"),
        ("live?x=1", "live"),
        ("live/?x=1", "live"),
        ("other", "other"),
        ("", ""),
    ] {
        assert_eq!(normalize_app(raw), want, "{raw}");
    }
}

#[test]
fn publish_mode_rewrite() {
    let mut b = b"\x02\x00\x07goodkey\x02\x00\x04LIVE".to_vec();
    lowercase_publish_mode(&mut b);
    assert!(b.ends_with(b"\x02\x00\x04live"));
    let mut other = b"\x02\x00\x04LIFE".to_vec();
    lowercase_publish_mode(&mut other);
    assert_eq!(other, b"\x02\x00\x04LIFE");
}
