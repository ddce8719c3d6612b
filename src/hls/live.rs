//! One channel's live LL-HLS playlist, in memory: a bounded window of
//! segments and parts, the rendered playlist, and what blocking requests
//! wait on. Follows the channel across publisher reconnects (a new stream
//! continues the numbering after a discontinuity).

use super::segmenter::{Event, Init, Part, SegmenterConfig};
use crate::net::{ConnGate, ConnLimits, ConnPermit, Refused};
use bytes::{Bytes, BytesMut};
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;

/// Completed segments listed in the playlist: 6 x 2 s = 12 s, above the
/// 3 x target duration a playlist must span (RFC 8216bis 6.2.2).
const WINDOW_SEGMENTS: usize = 6;
/// Segments kept servable after they leave the playlist, for players that
/// loaded an older copy of it.
const GRACE_SEGMENTS: usize = 3;
/// Requests held waiting on one channel's playlist at once: blocking
/// reloads, preload-hinted parts, segments asked for a little early. Each
/// costs a task, a connection and a wake-up on every part (5 a second),
/// so 4096 of them is ~20 000 wake-ups a second; an audience larger than
/// that on one channel belongs behind a CDN, which collapses them.
pub const MAX_BLOCKED_PER_PLAYLIST: usize = 4096;
/// Of those, what one client (an IPv4 address or an IPv6 /64) may hold. A
/// player holds one reload and one part at a time: 16 leaves room for 8
/// players behind one NAT, and keeps one client from taking the slots of
/// everyone else. Past it the request is answered 503 at once
/// (RFC 8216bis 6.2.5.2 lets a server answer a blocking request it cannot
/// hold with 503) with Retry-After: [`BLOCKED_RETRY_AFTER_SECS`].
pub const MAX_BLOCKED_PER_HOST: usize = 16;
/// What a refused blocking request is told to wait: about 5 parts.
pub const BLOCKED_RETRY_AFTER_SECS: u64 = 1;

/// Segments (counting the open one) whose parts are listed. 3 x 2 s stays
/// within the "last three target durations" RFC 8216bis 4.4.4.9 asks for.
const SEGMENTS_WITH_PARTS: usize = 3;

pub struct Segment {
    pub msn: u64,
    pub init_id: u32,
    pub discontinuity: bool,
    pub pdt: SystemTime,
    pub parts: Vec<Arc<Part>>,
    /// Set once complete.
    pub duration: Option<f64>,
    pub bytes: Option<Bytes>,
}

struct State {
    segments: VecDeque<Segment>,
    inits: HashMap<u32, Arc<Init>>,
    /// Discontinuity tags that left the window (EXT-X-DISCONTINUITY-SEQUENCE).
    discontinuity_seq: u64,
    next_msn: u64,
    next_init: u32,
    /// Wall clock at a decode time, for EXT-X-PROGRAM-DATE-TIME; reset for
    /// every new stream.
    anchor: Option<(SystemTime, i64)>,
    rendered: Bytes,
    has_video: bool,
    live: bool,
    offline_since: Option<Instant>,
}

/// What a blocking request waits for (RFC 8216bis 6.2.5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    pub msn: u64,
    /// `None`: the whole segment.
    pub part: Option<u32>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Reject {
    /// `_HLS_msn` more than two segments ahead: 400 per the spec.
    TooFarAhead,
    /// Not there within the time limit.
    Timeout,
    Gone,
    /// Too many requests already wait on this playlist, in all or from
    /// this client (see [`MAX_BLOCKED_PER_HOST`]).
    Busy,
}

pub struct LiveChannel {
    pub name: String,
    /// Names this playlist's numbering: every media URL is under
    /// `/hls/CHANNEL/STREAM/`. The numbers restart when the channel's
    /// playlist is made anew (a restart, or the channel gone offline long
    /// enough to be dropped), so without it a cache could hand a new
    /// player the old stream's `s0.0.m4s`. 64 random bits: never reused.
    stream: String,
    cfg: SegmenterConfig,
    state: Mutex<State>,
    version: watch::Sender<u64>,
    /// Requests waiting on this playlist.
    blocked: Arc<ConnGate>,
}

impl LiveChannel {
    pub fn new(name: String, cfg: SegmenterConfig) -> Self {
        LiveChannel {
            name,
            stream: format!("{:016x}", rand::random::<u64>()),
            cfg,
            state: Mutex::new(State {
                segments: VecDeque::new(),
                inits: HashMap::new(),
                discontinuity_seq: 0,
                next_msn: 0,
                next_init: 0,
                anchor: None,
                rendered: Bytes::new(),
                has_video: false,
                live: false,
                offline_since: None,
            }),
            version: watch::channel(0).0,
            blocked: ConnGate::new(
                "hls_blocked",
                ConnLimits {
                    total: MAX_BLOCKED_PER_PLAYLIST,
                    per_host: MAX_BLOCKED_PER_HOST,
                },
            ),
        }
    }

    /// A place among the requests waiting on this playlist, for `client`.
    fn hold(&self, client: IpAddr) -> Result<ConnPermit, Reject> {
        self.blocked.admit(client).map_err(|r| {
            crate::metrics::limit_hit(match r {
                Refused::Full => "max_blocked_per_playlist",
                Refused::HostFull => "max_blocked_per_host",
            });
            Reject::Busy
        })
    }

    /// Requests waiting on this playlist now (in all, from `client`'s host).
    pub fn blocked(&self, client: IpAddr) -> (usize, usize) {
        self.blocked.open(client)
    }

    pub fn config(&self) -> &SegmenterConfig {
        &self.cfg
    }

    /// The folder under `/hls/CHANNEL/` this playlist's media is named in.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Numbering for a new stream's segmenter: (first msn, first init id,
    /// whether its first segment follows earlier ones).
    pub fn begin_stream(&self) -> (u64, u32, bool) {
        let mut st = self.lock();
        st.anchor = None;
        st.live = true;
        st.offline_since = None;
        (st.next_msn, st.next_init, !st.segments.is_empty())
    }

    pub fn end_stream(&self) {
        {
            let mut st = self.lock();
            st.live = false;
            st.offline_since = Some(Instant::now());
            st.rendered = self.render(&mut st);
        }
        // Blocked requests give up now instead of at their time limit (and
        // do not hold up a graceful shutdown).
        self.version.send_modify(|v| *v += 1);
    }

    /// Offline for longer than `d` (the supervisor forgets it then).
    pub fn offline_for(&self, d: Duration) -> bool {
        let st = self.lock();
        !st.live && st.offline_since.is_some_and(|t| t.elapsed() >= d)
    }

    pub fn is_live(&self) -> bool {
        self.lock().live
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("live channel poisoned")
    }

    /// Applies segmenter output, re-renders once and wakes waiters.
    pub fn apply(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let mut st = self.lock();
        for e in events {
            match e {
                Event::Init(init) => {
                    st.next_init = init.id + 1;
                    st.has_video = init.tracks.video.is_some();
                    st.inits.insert(init.id, init.clone());
                }
                Event::SegmentStart {
                    msn,
                    init_id,
                    discontinuity,
                    start,
                } => {
                    let now = SystemTime::now();
                    let (wall, at) = *st.anchor.get_or_insert((now, *start));
                    let offset = (*start - at) as f64 / crate::media::CLOCK_RATE as f64;
                    let pdt = if offset >= 0.0 {
                        wall + Duration::from_secs_f64(offset)
                    } else {
                        wall - Duration::from_secs_f64(-offset)
                    };
                    st.next_msn = msn + 1;
                    st.segments.push_back(Segment {
                        msn: *msn,
                        init_id: *init_id,
                        discontinuity: *discontinuity,
                        pdt,
                        parts: Vec::new(),
                        duration: None,
                        bytes: None,
                    });
                }
                Event::Part(p) => {
                    if let Some(seg) = st.segments.back_mut().filter(|s| s.msn == p.msn) {
                        seg.parts.push(p.clone());
                    }
                }
                Event::SegmentEnd { msn, duration } => {
                    if let Some(seg) = st.segments.back_mut().filter(|s| s.msn == *msn) {
                        let mut b =
                            BytesMut::with_capacity(seg.parts.iter().map(|p| p.bytes.len()).sum());
                        for p in &seg.parts {
                            b.extend_from_slice(&p.bytes);
                        }
                        seg.bytes = Some(b.freeze());
                        seg.duration = Some(*duration);
                    }
                }
            }
        }
        // Trim: keep the window plus the grace segments; forget parts of
        // segments that no longer list them.
        let complete = st.segments.iter().filter(|s| s.duration.is_some()).count();
        let mut excess = complete.saturating_sub(WINDOW_SEGMENTS + GRACE_SEGMENTS);
        while excess > 0 {
            if let Some(old) = st.segments.pop_front() {
                if old.discontinuity {
                    st.discontinuity_seq += 1;
                }
            }
            excess -= 1;
        }
        let n = st.segments.len();
        for (i, seg) in st.segments.iter_mut().enumerate() {
            if i + SEGMENTS_WITH_PARTS + 1 < n && seg.duration.is_some() {
                seg.parts.clear();
                seg.parts.shrink_to_fit();
            }
        }
        let used: std::collections::HashSet<u32> = st.segments.iter().map(|s| s.init_id).collect();
        let newest = st.next_init.saturating_sub(1);
        st.inits.retain(|id, _| used.contains(id) || *id == newest);
        st.rendered = self.render(&mut st);
        drop(st);
        self.version.send_modify(|v| *v += 1);
    }

    fn render(&self, st: &mut State) -> Bytes {
        let td = self.cfg.target_duration;
        let part_target = self.cfg.part_target_secs();
        // Segments listed: the last WINDOW_SEGMENTS complete ones and the
        // open one.
        let complete: Vec<usize> = st
            .segments
            .iter()
            .enumerate()
            .filter(|(_, s)| s.duration.is_some())
            .map(|(i, _)| i)
            .collect();
        let first = complete
            .len()
            .checked_sub(WINDOW_SEGMENTS)
            .map(|k| complete[k])
            .unwrap_or(0);
        // EXT-X-DISCONTINUITY-SEQUENCE is the discontinuity number of the
        // first listed segment (RFC 8216bis 4.4.3.3): the tags that left the
        // window, plus the first segment's own, whose tag is not written.
        let dropped_disc = st
            .segments
            .iter()
            .take(first + 1)
            .filter(|s| s.discontinuity)
            .count() as u64;
        let listed: Vec<&Segment> = st.segments.iter().skip(first).collect();
        let mut o = String::with_capacity(4096);
        o.push_str("#EXTM3U\n#EXT-X-VERSION:6\n");
        let _ = writeln!(o, "#EXT-X-TARGETDURATION:{td}");
        let _ = writeln!(
            o,
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={:.3},HOLD-BACK={:.3}",
            part_target * 3.0,
            td as f64 * 3.0
        );
        let _ = writeln!(o, "#EXT-X-PART-INF:PART-TARGET={part_target:.3}");
        let _ = writeln!(
            o,
            "#EXT-X-MEDIA-SEQUENCE:{}",
            listed.first().map(|s| s.msn).unwrap_or(st.next_msn)
        );
        let _ = writeln!(
            o,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            st.discontinuity_seq + dropped_disc
        );
        let n = listed.len();
        let mut map = None;
        for (i, s) in listed.iter().enumerate() {
            if s.discontinuity && i > 0 {
                o.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if map != Some(s.init_id) {
                let _ = writeln!(
                    o,
                    "#EXT-X-MAP:URI=\"{}/init{}.mp4\"",
                    self.stream, s.init_id
                );
                map = Some(s.init_id);
            }
            let _ = writeln!(o, "#EXT-X-PROGRAM-DATE-TIME:{}", rfc3339_millis(s.pdt));
            if i + SEGMENTS_WITH_PARTS >= n {
                for p in &s.parts {
                    let _ = writeln!(
                        o,
                        "#EXT-X-PART:DURATION={:.5},URI=\"{}/s{}.{}.m4s\"{}",
                        p.duration,
                        self.stream,
                        p.msn,
                        p.index,
                        if p.independent {
                            ",INDEPENDENT=YES"
                        } else {
                            ""
                        }
                    );
                }
            }
            if let Some(d) = s.duration {
                let _ = writeln!(o, "#EXTINF:{d:.5},\n{}/s{}.m4s", self.stream, s.msn);
            }
        }
        if st.live || listed.last().is_some_and(|s| s.duration.is_none()) {
            let (msn, part) = next_part(&listed);
            let _ = writeln!(
                o,
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}/s{msn}.{part}.m4s\"",
                self.stream
            );
        }
        Bytes::from(o)
    }

    /// The current playlist, or `None` before the first complete segment:
    /// hls.js takes a playlist of parts only for an empty one
    /// (levelEmptyError) and backs off for seconds.
    pub fn playlist(&self) -> Option<Bytes> {
        let st = self.lock();
        let ready = st.segments.iter().any(|s| s.duration.is_some());
        ready.then(|| st.rendered.clone())
    }

    /// Waits (at most `limit`) until there is a playlist to serve;
    /// `Ok(None)` when none came.
    pub async fn wait_ready(
        &self,
        limit: Duration,
        client: IpAddr,
    ) -> Result<Option<Bytes>, Reject> {
        if let Some(p) = self.playlist() {
            return Ok(Some(p));
        }
        let _held = self.hold(client)?;
        let mut rx = self.version.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(p) = self.playlist() {
                return Ok(Some(p));
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return Ok(None),
            }
        }
    }

    pub fn has_video(&self) -> bool {
        self.lock().has_video
    }

    fn satisfied(st: &State, want: Want) -> Result<bool, Reject> {
        let last = match st.segments.back() {
            Some(s) => s,
            None => return Ok(false),
        };
        // The last segment that exists or is in progress; without segments
        // the first one to come.
        let (last_msn, last_parts, last_done) =
            (last.msn, last.parts.len() as u32, last.duration.is_some());
        if want.msn > last_msn + 2 {
            return Err(Reject::TooFarAhead);
        }
        Ok(match want.part {
            None => want.msn < last_msn || (want.msn == last_msn && last_done),
            Some(p) => {
                want.msn < last_msn || (want.msn == last_msn && (last_parts > p || last_done))
            }
        })
    }

    /// Waits until the playlist holds `want` (blocking playlist reload), at
    /// most `limit`, holding one of `client`'s places (see
    /// [`MAX_BLOCKED_PER_HOST`]) while it waits.
    pub async fn wait_for(
        &self,
        want: Want,
        limit: Duration,
        client: IpAddr,
    ) -> Result<(), Reject> {
        let mut rx = self.version.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        let mut held = None;
        loop {
            {
                let st = self.lock();
                if Self::satisfied(&st, want)? {
                    return Ok(());
                }
                if !st.live && st.offline_since.is_some() {
                    return Err(Reject::Gone);
                }
            }
            if held.is_none() {
                held = Some(self.hold(client)?);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Reject::Gone),
                Err(_) => return Err(Reject::Timeout),
            }
        }
    }

    pub fn init(&self, id: u32) -> Option<Bytes> {
        self.lock().inits.get(&id).map(|i| i.bytes.clone())
    }

    /// A complete segment's bytes.
    pub fn segment(&self, msn: u64) -> Option<Bytes> {
        let st = self.lock();
        st.segments
            .iter()
            .find(|s| s.msn == msn)
            .and_then(|s| s.bytes.clone())
    }

    pub fn part(&self, msn: u64, index: u32) -> Option<Bytes> {
        let st = self.lock();
        st.segments
            .iter()
            .find(|s| s.msn == msn)
            .and_then(|s| s.parts.get(index as usize))
            .map(|p| p.bytes.clone())
    }

    /// Whether `msn` (and part) may still appear soon: what a preload hint
    /// or a slightly early request names, worth holding the request for.
    pub fn is_upcoming(&self, msn: u64) -> bool {
        let st = self.lock();
        st.live
            && st
                .segments
                .back()
                .is_some_and(|s| msn >= s.msn && msn <= s.msn + 1)
    }
}

fn next_part(listed: &[&Segment]) -> (u64, usize) {
    match listed.last() {
        Some(s) if s.duration.is_none() => (s.msn, s.parts.len()),
        Some(s) => (s.msn + 1, 0),
        None => (0, 0),
    }
}

/// `2026-11-22T03:39:26.123Z`, without a date crate.
pub fn rfc3339_millis(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg_events(msn: u64, disc: bool, init_id: u32) -> Vec<Event> {
        vec![
            Event::SegmentStart {
                msn,
                init_id,
                discontinuity: disc,
                start: msn as i64 * 180_000,
            },
            Event::Part(Arc::new(Part {
                msn,
                index: 0,
                start: msn as i64 * 180_000,
                duration: 0.2,
                independent: true,
                bytes: Bytes::from_static(b"x"),
            })),
            Event::SegmentEnd { msn, duration: 2.0 },
        ]
    }

    fn disc_seq(text: &str) -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:"))
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn discontinuity_sequence_counts_what_left_the_window() {
        let ch = LiveChannel::new("t".into(), SegmenterConfig::new(200, 2000));
        ch.begin_stream();
        // Segment 2 follows a discontinuity; then 20 more segments.
        for msn in 0..23 {
            ch.apply(&seg_events(msn, msn == 2, u32::from(msn >= 2)));
            let text = String::from_utf8(ch.playlist().unwrap().to_vec()).unwrap();
            let first: u64 = text
                .lines()
                .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
                .unwrap()
                .parse()
                .unwrap();
            // The discontinuity number of the first listed segment.
            let want = u64::from(first >= 2);
            assert_eq!(disc_seq(&text), want, "at msn {msn}:\n{text}");
            let tags = text.matches("#EXT-X-DISCONTINUITY\n").count();
            assert_eq!(tags, usize::from(first < 2 && msn >= 2), "{text}");
        }
    }

    #[tokio::test]
    async fn waiting_requests_are_capped_per_host_and_per_playlist() {
        let ch = Arc::new(LiveChannel::new(
            "t".into(),
            SegmenterConfig::new(200, 2000),
        ));
        ch.begin_stream();
        ch.apply(&seg_events(0, false, 0));
        let host = |i: usize| -> IpAddr { std::net::Ipv4Addr::from(0x0a00_0000 + i as u32).into() };
        // msn 2 is not there yet: every request waits.
        let want = Want { msn: 2, part: None };
        let mut waiting = Vec::new();
        for i in 0..MAX_BLOCKED_PER_PLAYLIST {
            let (ch, h) = (ch.clone(), host(i / MAX_BLOCKED_PER_HOST));
            waiting.push(tokio::spawn(async move {
                ch.wait_for(want, Duration::from_secs(60), h).await
            }));
        }
        while ch.blocked(host(0)).0 < MAX_BLOCKED_PER_PLAYLIST {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            ch.blocked(host(0)),
            (MAX_BLOCKED_PER_PLAYLIST, MAX_BLOCKED_PER_HOST)
        );
        let quick = Duration::from_millis(10);
        // The first host is full; so is the playlist, for a new host too.
        assert_eq!(ch.wait_for(want, quick, host(0)).await, Err(Reject::Busy));
        assert_eq!(
            ch.wait_for(want, quick, host(100_000)).await,
            Err(Reject::Busy)
        );
        assert_eq!(
            ch.wait_ready(quick, host(0)).await.map(|_| ()),
            Ok(()),
            "ready: no wait"
        );
        // What is there already needs no place.
        assert_eq!(
            ch.wait_for(Want { msn: 0, part: None }, quick, host(0))
                .await,
            Ok(())
        );
        // The segment comes: every waiter is answered and gives its place back.
        ch.apply(&seg_events(1, false, 0));
        ch.apply(&seg_events(2, false, 0));
        for w in waiting {
            assert_eq!(w.await.unwrap(), Ok(()));
        }
        assert_eq!(ch.blocked(host(0)), (0, 0));
        // An IPv6 client counts by its /64.
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let mut held = Vec::new();
        for i in 0..MAX_BLOCKED_PER_HOST {
            let ch = ch.clone();
            let ip = if i % 2 == 0 { a } else { b };
            held.push(tokio::spawn(async move {
                ch.wait_for(Want { msn: 4, part: None }, Duration::from_secs(60), ip)
                    .await
            }));
        }
        while ch.blocked(a).1 < MAX_BLOCKED_PER_HOST {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            ch.wait_for(Want { msn: 4, part: None }, quick, b).await,
            Err(Reject::Busy)
        );
        ch.end_stream();
        for w in held {
            assert_eq!(w.await.unwrap(), Err(Reject::Gone));
        }
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(
            rfc3339_millis(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00.000Z"
        );
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_145_966_123);
        assert_eq!(rfc3339_millis(t), "2026-11-20T03:39:26.123Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339_millis(leap), "2000-02-29T00:00:00.000Z");
    }
}
