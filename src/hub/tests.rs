use super::reader::READER_QUEUE_CAP;
use super::*;
use crate::media::{AacConfig, H264Config, Payload, TrackConfig, Unit};
use bytes::Bytes;
use std::sync::Arc;

fn video_cfg() -> Arc<TrackConfig> {
    Arc::new(TrackConfig::H264(H264Config {
        sps: Bytes::from_static(&[0x67]),
        pps: Bytes::from_static(&[0x68]),
        width: 2,
        height: 2,
        profile_idc: 0x42,
        constraint_flags: 0xe0,
        level_idc: 0x1f,
    }))
}

fn audio_cfg() -> Arc<TrackConfig> {
    Arc::new(TrackConfig::Aac(AacConfig {
        asc: Bytes::from_static(&[0x11, 0x90]),
        object_type: 2,
        sample_rate: 48_000,
        channels: 2,
    }))
}

fn video(pts: i64, key: bool) -> Unit {
    Unit {
        flv_body: Default::default(),
        config: video_cfg(),
        pts,
        dts: pts,
        keyframe: key,
        payload: Payload::H264(vec![Bytes::from_static(&[0x65, 1])]),
    }
}

fn audio(pts: i64) -> Unit {
    Unit {
        flv_body: Default::default(),
        config: audio_cfg(),
        pts,
        dts: pts,
        keyframe: true,
        payload: Payload::Aac(Bytes::from_static(&[1, 2, 3])),
    }
}

fn drain(r: &mut Reader) -> Vec<Arc<Unit>> {
    std::iter::from_fn(|| r.try_recv()).collect()
}

#[test]
fn a_new_reader_starts_at_the_latest_keyframe() {
    let hub = Hub::new();
    let p = hub.publish("a");
    p.write(video(0, true));
    p.write(video(1, false));
    p.write(audio(1));
    p.write(video(2, true));
    p.write(video(3, false));
    p.write(audio(3));
    let mut r = p.stream().subscribe("t");
    let got: Vec<i64> = drain(&mut r).iter().map(|u| u.pts).collect();
    assert_eq!(got, vec![2, 3, 3]);
    assert!(r.try_recv().is_none());
}

#[test]
fn a_slow_reader_skips_to_the_next_keyframe_and_counts() {
    let hub = Hub::new();
    let p = hub.publish("a");
    let mut slow = p.stream().subscribe("slow");
    let mut fast = p.stream().subscribe("fast");
    p.write(video(0, true));
    let mut fast_seen = drain(&mut fast).len();
    for i in 1..=(READER_QUEUE_CAP as i64 + 10) {
        p.write(video(i, false));
        fast_seen += drain(&mut fast).len();
    }
    // The fast reader saw everything; the slow one overflowed and skips.
    assert_eq!(fast_seen, READER_QUEUE_CAP + 11);
    assert!(
        drain(&mut slow).is_empty(),
        "an overflowed queue is emptied"
    );
    p.write(video(9999, false));
    assert!(
        slow.try_recv().is_none(),
        "no P-frames before the next keyframe"
    );
    p.write(video(10_000, true));
    p.write(video(10_001, false));
    let got: Vec<i64> = drain(&mut slow).iter().map(|u| u.pts).collect();
    assert_eq!(got, vec![10_000, 10_001]);
    let s = slow.stats();
    assert_eq!(s.overflows, 1);
    // The emptied queue, the rest of that GOP, and the P-frame after it.
    assert_eq!(s.dropped, READER_QUEUE_CAP as u64 + 12);
    assert_eq!(fast.stats(), ReaderStats::default());
}

#[test]
fn audio_only_streams_start_anywhere() {
    let hub = Hub::new();
    let p = hub.publish("dj");
    for i in 0..5 {
        p.write(audio(i));
    }
    let mut r = p.stream().subscribe("t");
    assert_eq!(drain(&mut r).len(), 1, "the latest frame is a start point");
    p.write(audio(5));
    assert_eq!(drain(&mut r).len(), 1);
}

#[tokio::test]
async fn a_second_publisher_replaces_the_first_and_watchers_follow() {
    let hub = Hub::new();
    let mut watch = hub.watch("a");
    assert!(watch.borrow().is_none());
    let first = hub.publish("a");
    let mut r1 = first.stream().subscribe("t");
    watch.changed().await.unwrap();
    let id1 = watch.borrow().as_ref().unwrap().id();
    let second = hub.publish("a");
    assert!(first.stream().is_closed(), "the replaced stream closes");
    assert!(r1.recv().await.is_none(), "its readers end");
    watch.changed().await.unwrap();
    assert_ne!(watch.borrow().as_ref().unwrap().id(), id1);
    // The old publisher leaving must not take the new one offline.
    drop(first);
    assert!(hub.stream("a").is_some());
    drop(second);
    assert!(hub.stream("a").is_none());
    watch.changed().await.unwrap();
    assert!(watch.borrow().is_none());
}

#[test]
fn the_gop_cache_is_bounded() {
    let hub = Hub::new();
    let p = hub.publish("a");
    p.write(video(0, true));
    for i in 1..5000 {
        p.write(video(i, false));
    }
    // Past the cap the cache is dropped; a new reader waits for a keyframe.
    let mut r = p.stream().subscribe("t");
    assert!(r.try_recv().is_none());
    p.write(video(5000, true));
    assert_eq!(r.try_recv().map(|u| u.pts), Some(5000));
}

#[test]
fn a_slow_reader_pins_at_most_its_byte_cap() {
    let hub = Hub::new();
    let publisher = hub.publish("demo");
    let mut reader = publisher.stream().subscribe("slow");
    // Units of 1 MiB: the byte cap, not the unit cap, is what bites.
    let big = |pts: i64, key: bool| {
        let mut u = video(pts, key);
        u.payload = Payload::H264(vec![Bytes::from(vec![0x65u8; 1 << 20])]);
        u
    };
    publisher.write(big(0, true));
    for i in 1..100 {
        publisher.write(big(i * 3000, false));
    }
    let held: usize = drain(&mut reader).iter().map(|u| u.payload.len()).sum();
    assert!(
        held <= super::reader::READER_QUEUE_BYTES,
        "{held} bytes held"
    );
    assert!(reader.stats().overflows >= 1);
}

#[test]
fn a_bounded_reader_skips_at_its_own_cap_and_counts_the_hit() {
    let hub = Hub::new();
    let publisher = hub.publish("demo");
    let mut bounded = publisher
        .stream()
        .subscribe_bounded("flv", 3 << 20, "test_bounded_reader");
    let mut plain = publisher.stream().subscribe("hls");
    let hits = crate::metrics::limit_hits("test_bounded_reader");
    let big = |pts: i64, key: bool| {
        let mut u = video(pts, key);
        u.payload = Payload::H264(vec![Bytes::from(vec![0x65u8; 1 << 20])]);
        u
    };
    publisher.write(big(0, true));
    for i in 1..6 {
        publisher.write(big(i * 3000, false));
    }
    let held: usize = drain(&mut bounded).iter().map(|u| u.payload.len()).sum();
    assert!(held <= 3 << 20, "{held} bytes held");
    assert!(bounded.stats().overflows >= 1);
    assert!(crate::metrics::limit_hits("test_bounded_reader") > hits);
    assert_eq!(drain(&mut plain).len(), 6, "the other reader lost nothing");
}

#[test]
fn an_aac_twin_reaches_readers_but_not_the_publishers_health() {
    let hub = Hub::new();
    let publisher = hub.publish("demo");
    let mut reader = publisher.stream().subscribe("flv");
    assert!(!publisher.stream().has_aac_twin());
    publisher.stream().write_aac_twin(audio(0));
    assert!(publisher.stream().has_aac_twin());
    assert_eq!(drain(&mut reader).len(), 1);
    assert_eq!(publisher.stream().health().audio_units, 0);
}

#[test]
fn channels_watched_once_and_never_live_are_forgotten() {
    let hub = Hub::new();
    for i in 0..5000 {
        drop(hub.watch(&format!("ghost{i}")));
    }
    assert!(hub.slots() <= 2 * 1024, "{} slots kept", hub.slots());
    // A watched channel keeps its slot.
    let _keep = hub.watch("kept");
    for i in 0..5000 {
        drop(hub.watch(&format!("again{i}")));
    }
    assert!(hub.stream("kept").is_none());
    assert!(hub.slots() <= 2 * 1024);
}
