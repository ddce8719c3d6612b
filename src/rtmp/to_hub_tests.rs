use super::*;
use crate::hub::{Hub, Reader};
use crate::media::MediaKind;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// libx264 parameter sets (the same as the codec tests' table).
const SPS_720P: &str = "6742c01fd9005005bb0110000003001000000303c0f1832480";
const SPS_360P: &str = "674d401eeca05017fcb80880000003008000001e078b16cb";
const PPS: &str = "68cb83cb20";

fn seq_header(sps: &str) -> Bytes {
    let (sps, pps) = (hex(sps), hex(PPS));
    let mut v = vec![0x17, 0, 0, 0, 0, 1, sps[1], sps[2], sps[3], 0xff, 0xe1];
    v.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    v.extend_from_slice(&sps);
    v.push(1);
    v.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    v.extend_from_slice(&pps);
    Bytes::from(v)
}

/// A VIDEODATA AVC NALU tag with 4-byte AVCC lengths.
fn nalu_tag(key: bool, composition_time: i32, nalus: &[&[u8]]) -> Bytes {
    let ct = composition_time.to_be_bytes();
    let mut v = vec![if key { 0x17 } else { 0x27 }, 1, ct[1], ct[2], ct[3]];
    let owned: Vec<Bytes> = nalus.iter().map(|n| Bytes::copy_from_slice(n)).collect();
    v.extend(h264::join_avcc(&owned));
    Bytes::from(v)
}

const AUD: &[u8] = &[0x09, 0xf0];
const IDR: &[u8] = &[0x65, 0x88, 0x84];
const SLICE: &[u8] = &[0x41, 0x9a, 0x02];

fn setup() -> (Ingest, Reader) {
    let hub = Hub::new();
    let publisher = hub.publish("t");
    let reader = publisher.stream().subscribe("test");
    let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
    (Ingest::new(publisher, peer, "t".into()), reader)
}

fn drain(reader: &mut Reader) -> Vec<Arc<Unit>> {
    std::iter::from_fn(|| reader.try_recv()).collect()
}

fn dims(u: &Unit) -> (u32, u32) {
    match u.config.as_ref() {
        TrackConfig::H264(c) => (c.width, c.height),
        other => panic!("not video: {other:?}"),
    }
}

fn nal_types(u: &Unit) -> Vec<u8> {
    match &u.payload {
        Payload::H264(n) => n.iter().filter_map(|n| h264::nal_type(n)).collect(),
        other => panic!("not H.264: {other:?}"),
    }
}

#[test]
fn video_lifecycle() {
    let (mut ingest, mut reader) = setup();
    // Before the sequence header: dropped, not a panic.
    ingest.video(nalu_tag(true, 0, &[IDR]), 0);
    assert!(drain(&mut reader).is_empty());

    ingest.video(seq_header(SPS_720P), 0);
    ingest.video(nalu_tag(true, 0, &[AUD, IDR]), 0);
    ingest.video(nalu_tag(false, 0, &[AUD, SLICE]), 33);
    // The same header again changes nothing.
    ingest.video(seq_header(SPS_720P), 66);
    ingest.video(nalu_tag(false, 0, &[SLICE]), 66);
    let units = drain(&mut reader);
    assert_eq!(units.len(), 3);
    assert!(units[0].keyframe);
    assert_eq!(
        nal_types(&units[0]),
        [7, 8, 5],
        "SPS+PPS prepended, AUD dropped"
    );
    assert_eq!(nal_types(&units[1]), [1]);
    assert_eq!(dims(&units[0]), (1280, 720));
    assert!(
        Arc::ptr_eq(&units[0].config, &units[2].config),
        "config shared"
    );
    assert_eq!(units[1].dts, ms_to_ticks(33));

    // Resolution change mid-stream.
    ingest.video(seq_header(SPS_360P), 100);
    ingest.video(nalu_tag(true, 0, &[IDR]), 100);
    let units = drain(&mut reader);
    assert_eq!(units.len(), 1);
    assert_eq!(dims(&units[0]), (640, 360));
    let h = ingest.publisher().stream().health();
    assert_eq!((h.width, h.height), (Some(640), Some(360)));
    assert_eq!(h.video_codec.as_deref(), Some("H.264 Main 640x360"));
    assert!(!h.bframes);
}

#[test]
fn in_band_parameter_sets_not_duplicated() {
    let (mut ingest, mut reader) = setup();
    ingest.video(seq_header(SPS_720P), 0);
    let (sps, pps) = (hex(SPS_720P), hex(PPS));
    ingest.video(nalu_tag(true, 0, &[AUD, &sps, &pps, IDR]), 0);
    let units = drain(&mut reader);
    assert_eq!(nal_types(&units[0]), [7, 8, 5]);
    // In-band SPS for another size switches the config.
    let sps2 = hex(SPS_360P);
    ingest.video(nalu_tag(true, 0, &[&sps2, &pps, IDR]), 40);
    let units = drain(&mut reader);
    assert_eq!(dims(&units[0]), (640, 360));
    assert_eq!(nal_types(&units[0]), [7, 8, 5]);
}

#[test]
fn bframes_detected_and_pts_offset() {
    let (mut ingest, mut reader) = setup();
    ingest.video(seq_header(SPS_720P), 0);
    ingest.video(nalu_tag(true, 66, &[IDR]), 0);
    ingest.video(nalu_tag(false, -33, &[SLICE]), 100);
    let units = drain(&mut reader);
    assert_eq!(units[0].pts - units[0].dts, ms_to_ticks(66));
    assert_eq!(units[1].pts - units[1].dts, ms_to_ticks(-33));
    let h = ingest.publisher().stream().health();
    assert!(h.bframes);
    assert!(h.warnings.iter().any(|w| w.contains("B-frames")));
}

#[test]
fn audio_lifecycle() {
    let (mut ingest, mut reader) = setup();
    ingest.audio(Bytes::from_static(&[0xaf, 1, 0x21, 0x10]), 0);
    assert!(
        drain(&mut reader).is_empty(),
        "raw AAC before the ASC is dropped"
    );
    ingest.audio(Bytes::from_static(&[0xaf, 0, 0x11, 0x90]), 0);
    ingest.audio(Bytes::from_static(&[0xaf, 1, 0x21, 0x10]), 21);
    ingest.audio(Bytes::from_static(&[0xaf, 1]), 42); // empty frame: skipped
    let units = drain(&mut reader);
    assert_eq!(units.len(), 1);
    assert_eq!(units[0].kind(), MediaKind::Audio);
    assert!(units[0].keyframe);
    assert_eq!(units[0].pts, ms_to_ticks(21));
    match units[0].config.as_ref() {
        TrackConfig::Aac(c) => {
            assert_eq!((c.sample_rate, c.channels, c.object_type), (48000, 2, 2))
        }
        other => panic!("{other:?}"),
    }
    let h = ingest.publisher().stream().health();
    assert_eq!(h.audio_codec.as_deref(), Some("AAC-LC 48000 Hz 2ch"));
}

#[test]
fn unsupported_audio_warns_once() {
    let (mut ingest, mut reader) = setup();
    for ts in 0..5 {
        ingest.audio(Bytes::from_static(&[0x2f, 0xff, 0xfb]), ts);
    }
    // HE-AAC: warned, still passed through.
    ingest.audio(Bytes::from_static(&[0xaf, 0, 0x2b, 0x11, 0x88, 0x00]), 5);
    ingest.audio(Bytes::from_static(&[0xaf, 1, 0x01]), 6);
    assert_eq!(drain(&mut reader).len(), 1);
    let h = ingest.publisher().stream().health();
    assert_eq!(h.warnings.iter().filter(|w| w.contains("MP3")).count(), 1);
    assert!(h.warnings.iter().any(|w| w.contains("HE-AAC")));
    assert!(h.audio_codec.unwrap().starts_with("HE-AAC 24000 Hz"));
}

#[test]
fn malformed_tags_are_dropped() {
    let (mut ingest, mut reader) = setup();
    ingest.video(seq_header(SPS_720P), 0);
    let junk: &[&[u8]] = &[
        &[],
        &[0x17],
        &[0x17, 1, 0, 0, 0, 0, 0, 0, 9, 0x65], // AVCC length past end
        &[0x17, 0, 0, 0, 0, 1, 2],             // truncated config record
        &[0x90, b'h', b'v', b'c', b'1', 0, 0, 0], // Enhanced RTMP
        &[0x12, 0, 0],                         // H.263
        &[0x17, 9, 0, 0, 0],
    ];
    for (i, j) in junk.iter().enumerate() {
        ingest.video(Bytes::copy_from_slice(j), i as u32);
        ingest.audio(Bytes::copy_from_slice(j), i as u32);
    }
    assert!(drain(&mut reader).is_empty());
    // Still working afterwards.
    ingest.video(nalu_tag(true, 0, &[IDR]), 10);
    assert_eq!(drain(&mut reader).len(), 1);
    let h = ingest.publisher().stream().health();
    assert!(
        h.warnings.iter().any(|w| w.contains("hvc1")),
        "{:?}",
        h.warnings
    );
}

#[test]
fn timeline_table() {
    // (raw RTMP timestamps, extended values)
    let cases: &[(&[u32], &[i64])] = &[
        (&[0, 33, 66], &[0, 33, 66]),
        (&[1000, 990, 1010], &[1000, 990, 1010]),
        (&[0xffff_fff0, 0x10], &[0xffff_fff0, 0x1_0000_0010]),
        (
            &[0xffff_fff0, 0x10, 0xffff_fffa],
            &[0xffff_fff0, 0x1_0000_0010, 0xffff_fffa],
        ),
    ];
    for (raw, want) in cases {
        let mut t = Timeline::default();
        let got: Vec<i64> = raw.iter().map(|r| t.extend(*r)).collect();
        assert_eq!(&got, want, "{raw:?}");
    }
}

#[test]
fn timestamps_monotonic_per_track() {
    let (mut ingest, mut reader) = setup();
    ingest.video(seq_header(SPS_720P), 0);
    ingest.video(nalu_tag(true, 0, &[IDR]), 100);
    ingest.video(nalu_tag(false, 0, &[SLICE]), 90); // encoder glitch
    let units = drain(&mut reader);
    assert!(units[1].dts >= units[0].dts);
}

#[test]
fn metadata_stored() {
    let (mut ingest, _reader) = setup();
    let mut m = StreamMetadata::new();
    m.video_width = Some(1280);
    m.video_frame_rate = Some(29.97);
    m.encoder = Some("x".repeat(1000));
    ingest.metadata(&m);
    let h = ingest.publisher().stream().health();
    assert_eq!(h.metadata["width"], 1280);
    assert_eq!(h.metadata["framerate"], 29.97);
    assert_eq!(
        h.metadata["encoder"].as_str().unwrap().len(),
        MAX_METADATA_STRING
    );
}
