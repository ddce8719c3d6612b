//! Transport-wide congestion control feedback
//! (draft-holmer-rmcat-transport-wide-cc-extensions-01), read for the
//! congestion steps. A viewer that negotiated TWCC gets every packet with a
//! transport-wide sequence number (`super::sender`), and browsers then send
//! this feedback: for each number, whether it arrived and when. From it
//! and our send times come two figures per window: the queuing delay, how
//! far the window's lowest one-way delay stands above the lowest of the
//! last [`BASE_WINDOWS`], which the congestion steps read (a link that
//! buffers instead of dropping shows there long before it shows as loss);
//! and the share of copies lost on the way, before any NACK repair (the
//! steps read loss from receiver reports, which count a repaired packet
//! as received).

use rtc::rtcp::transport_feedbacks::transport_layer_cc::{
    PacketStatusChunk, SymbolTypeTcc, TransportLayerCc,
};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Send times kept, by transport-wide sequence number: a power of two,
/// ~7 s at 2.5 Mbit/s (about 280 packets a second with the sound), ~3.5 s
/// at 6 Mbit/s. A number is read back when the viewer reports its
/// arrival, so this is also the deepest queue that can be seen: a fast
/// start alone can put a second or two of video in a thin link's buffer.
const LOG: usize = 2048;

/// Windows whose lowest delay is the base the queuing delay is measured
/// from: long enough to remember an empty queue, short enough that the
/// two clocks' drift stays far below the thresholds.
pub const BASE_WINDOWS: usize = 10;

/// At most this many packet statuses are read from one feedback packet
/// (a feedback packet can claim 65 535).
const MAX_STATUSES: usize = 4096;

/// One packet's send time, 4 bytes: the number it carried and the
/// millisecond it left, modulo 2^16 (read back as the latest such
/// millisecond, and a slot is rewritten every [`LOG`] packets, well within
/// 65 s at any rate media flows). `at_ms` 0 is an empty slot; a packet
/// sent at such a millisecond is filed a millisecond late.
#[derive(Clone, Copy, Default)]
struct Sent {
    seq: u16,
    at_ms: u16,
}

/// What the log knows of a reported number.
enum Kept {
    /// Sent at this time (microseconds, our clock).
    At(i64),
    /// Sent more than this many milliseconds ago: its slot was reused.
    Older(u64),
    /// Not a number we sent lately.
    Unknown,
}

/// One window of feedback.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Share of the window's packets the viewer reported not received
    /// (copies lost on the way; a resend that made up for one is not
    /// subtracted).
    pub loss: f64,
    /// The window's lowest one-way delay above the base, in milliseconds.
    pub queuing_ms: f64,
}

/// A viewer's send times and what its feedback made of them.
pub struct TwccLog {
    /// Allocated at the first packet: most viewers of the old engine and
    /// non-browser peers never send one.
    sent: Option<Box<[Sent]>>,
    start: Instant,
    window_start: Option<Instant>,
    received: u32,
    lost: u32,
    /// The lowest one-way delay (receiver clock minus ours, microseconds)
    /// in the window so far.
    window_min: Option<i64>,
    /// Earlier windows' lowest delays, oldest first.
    minima: VecDeque<i64>,
    /// The least age (milliseconds) of the packets in the window that
    /// arrived after their send time had left the log: a queue deeper
    /// than the log, at least that deep.
    beyond: Option<u64>,
    /// Packets sent before this (microseconds, our clock) took the last
    /// path: their delays say nothing of the current one.
    path_since_us: i64,
}

impl TwccLog {
    pub fn new(now: Instant) -> Self {
        TwccLog {
            sent: None,
            start: now,
            window_start: None,
            received: 0,
            lost: 0,
            window_min: None,
            minima: VecDeque::with_capacity(BASE_WINDOWS),
            beyond: None,
            path_since_us: 0,
        }
    }

    fn ms(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.start).as_millis() as u64
    }

    /// The viewer's media now takes another path (a NAT rebinding, a
    /// switch to a relay): its one-way delay has a new floor, and measuring
    /// from the old one would read a longer path as a queue for
    /// [`BASE_WINDOWS`] windows (and a shorter one would hide a queue). The
    /// window under way mixes both paths, so its delays go too, and so do
    /// those of packets sent before `now` that are reported later.
    pub fn new_path(&mut self, now: Instant) {
        self.minima.clear();
        self.window_min = None;
        self.beyond = None;
        self.path_since_us = (self.ms(now) * 1000) as i64;
    }

    /// Since when (from the log's start) the current path has carried
    /// the media.
    #[cfg(test)]
    pub fn path_since(&self) -> Duration {
        Duration::from_micros(self.path_since_us as u64)
    }

    /// The packet numbered `seq` went out `now`.
    pub fn record(&mut self, seq: u16, now: Instant) {
        let at_ms = (self.ms(now) as u16).max(1);
        let sent = self
            .sent
            .get_or_insert_with(|| vec![Sent::default(); LOG].into_boxed_slice());
        sent[usize::from(seq) & (LOG - 1)] = Sent { seq, at_ms };
    }

    /// What the log says of `seq`, read at `now_ms`.
    fn lookup(&self, seq: u16, now_ms: u64) -> Kept {
        let Some(sent) = self.sent.as_ref() else {
            return Kept::Unknown;
        };
        let s = sent[usize::from(seq) & (LOG - 1)];
        let age = u64::from((now_ms as u16).wrapping_sub(s.at_ms));
        if s.at_ms == 0 {
            Kept::Unknown
        } else if s.seq == seq {
            Kept::At((now_ms.saturating_sub(age) * 1000) as i64)
        } else if (s.seq.wrapping_sub(seq) as i16) > 0 {
            // A later packet took its slot: it left before that one, at
            // least `age` ago.
            Kept::Older(age)
        } else {
            Kept::Unknown
        }
    }

    /// One feedback packet. Numbers we never sent are passed over; one
    /// that arrived after its send time left the log says the queue is at
    /// least that old. A window of `window` closes at the
    /// first feedback after it: its figures come back.
    pub fn on_feedback(
        &mut self,
        fb: &TransportLayerCc,
        window: Duration,
        now: Instant,
    ) -> Option<Window> {
        // The receiver's clock: the reference time is in 64 ms units, each
        // received packet's delta (microseconds) from the previous one.
        let now_ms = self.ms(now);
        let mut arrival = i64::from(fb.reference_time) * 64_000;
        let mut deltas = fb.recv_deltas.iter();
        let count = usize::from(fb.packet_status_count).min(MAX_STATUSES);
        let statuses = fb
            .packet_chunks
            .iter()
            .flat_map(|c| -> Box<dyn Iterator<Item = SymbolTypeTcc> + '_> {
                match c {
                    PacketStatusChunk::RunLengthChunk(r) => Box::new(std::iter::repeat_n(
                        r.packet_status_symbol,
                        usize::from(r.run_length),
                    )),
                    PacketStatusChunk::StatusVectorChunk(v) => {
                        Box::new(v.symbol_list.iter().copied())
                    }
                }
            })
            .take(count);
        for (i, status) in statuses.enumerate() {
            let seq = fb.base_sequence_number.wrapping_add(i as u16);
            let kept = self.lookup(seq, now_ms);
            let received = match status {
                SymbolTypeTcc::PacketNotReceived => false,
                SymbolTypeTcc::PacketReceivedWithoutDelta => true,
                SymbolTypeTcc::PacketReceivedSmallDelta
                | SymbolTypeTcc::PacketReceivedLargeDelta => {
                    let Some(d) = deltas.next() else { break };
                    arrival += d.delta;
                    // A packet that took the last path still counts as
                    // received, but its delay is not this path's.
                    match kept {
                        Kept::At(sent) if sent >= self.path_since_us => {
                            let delay = arrival - sent;
                            self.window_min = Some(self.window_min.map_or(delay, |m| m.min(delay)));
                        }
                        _ => {}
                    }
                    true
                }
            };
            match (kept, received) {
                (Kept::Unknown, _) => {}
                (Kept::Older(age), true) => {
                    self.received += 1;
                    self.beyond = Some(self.beyond.map_or(age, |b| b.min(age)));
                }
                (_, true) => self.received += 1,
                (_, false) => self.lost += 1,
            }
        }
        let started = *self.window_start.get_or_insert(now);
        if now.duration_since(started) < window {
            return None;
        }
        self.window_start = Some(now);
        let (received, lost) = (
            std::mem::take(&mut self.received),
            std::mem::take(&mut self.lost),
        );
        let total = received + lost;
        let window_min = self.window_min.take();
        let beyond = self.beyond.take();
        if total == 0 {
            return None;
        }
        let queuing_ms = match window_min {
            Some(m) => {
                let base = self.minima.iter().copied().fold(m, i64::min);
                if self.minima.len() == BASE_WINDOWS {
                    self.minima.pop_front();
                }
                self.minima.push_back(m);
                (m - base) as f64 / 1000.0
            }
            None => 0.0,
        };
        Some(Window {
            loss: f64::from(lost) / f64::from(total),
            queuing_ms: queuing_ms.max(beyond.map_or(0.0, |b| b as f64)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtcp::transport_feedbacks::transport_layer_cc::{
        RecvDelta, RunLengthChunk, StatusChunkTypeTcc, StatusVectorChunk, SymbolSizeTypeTcc,
    };

    const WINDOW: Duration = Duration::from_secs(1);

    /// Feedback for `base..base + arrivals.len()`: `Some(us)` arrived that
    /// many microseconds after the previous arrival (the first after the
    /// reference time), `None` did not.
    fn feedback(base: u16, reference_time: u32, arrivals: &[Option<i64>]) -> TransportLayerCc {
        let symbol = |a: &Option<i64>| match a {
            None => SymbolTypeTcc::PacketNotReceived,
            Some(d) if (0..=63_750).contains(d) => SymbolTypeTcc::PacketReceivedSmallDelta,
            Some(_) => SymbolTypeTcc::PacketReceivedLargeDelta,
        };
        // One status vector chunk of two-bit symbols per seven packets,
        // except a first run-length chunk over a leading run of one kind.
        let lead = arrivals
            .iter()
            .take_while(|a| symbol(a) == symbol(&arrivals[0]))
            .count();
        let mut chunks = vec![PacketStatusChunk::RunLengthChunk(RunLengthChunk {
            type_tcc: StatusChunkTypeTcc::RunLengthChunk,
            packet_status_symbol: symbol(&arrivals[0]),
            run_length: lead as u16,
        })];
        for group in arrivals[lead..].chunks(7) {
            chunks.push(PacketStatusChunk::StatusVectorChunk(StatusVectorChunk {
                type_tcc: StatusChunkTypeTcc::StatusVectorChunk,
                symbol_size: SymbolSizeTypeTcc::TwoBit,
                symbol_list: group.iter().map(symbol).collect(),
            }));
        }
        TransportLayerCc {
            sender_ssrc: 1,
            media_ssrc: 2,
            base_sequence_number: base,
            packet_status_count: arrivals.len() as u16,
            reference_time,
            fb_pkt_count: 0,
            packet_chunks: chunks,
            recv_deltas: arrivals
                .iter()
                .filter_map(|a| {
                    a.map(|d| RecvDelta {
                        type_tcc_packet: symbol(&Some(d)),
                        delta: d,
                    })
                })
                .collect(),
        }
    }

    /// Each second, 100 packets sent 10 ms apart, numbered on from
    /// `seq`; the viewer gets them `delay_ms(second)` later, except those
    /// `lost` says. Returns the windows that closed.
    fn run(seconds: u32, delay_ms: impl Fn(u32) -> i64, lost: impl Fn(u16) -> bool) -> Vec<Window> {
        run_moving(seconds, delay_ms, lost, None)
    }

    /// [`run`], with the viewer's media taking a new path (and the log
    /// told) at the start of second `moved`.
    fn run_moving(
        seconds: u32,
        delay_ms: impl Fn(u32) -> i64,
        lost: impl Fn(u16) -> bool,
        moved: Option<u32>,
    ) -> Vec<Window> {
        let t0 = Instant::now();
        let mut log = TwccLog::new(t0);
        let mut seq = 65_000u16; // wraps on the way
        let mut windows = Vec::new();
        // The receiver's clock runs 5 s ahead of ours.
        let offset_us = 5_000_000i64;
        for sec in 0..seconds {
            if moved == Some(sec) {
                log.new_path(t0 + Duration::from_millis(u64::from(sec) * 1000));
            }
            // Ten feedback packets a second, each for 10 packets.
            for f in 0..10u32 {
                let first = seq;
                let mut arrivals = Vec::new();
                let mut prev_arrival = None::<i64>;
                let mut reference = None;
                for k in 0..10u32 {
                    let sent_ms = i64::from(sec * 1000 + f * 100 + k * 10);
                    log.record(seq, t0 + Duration::from_millis(sent_ms as u64));
                    if lost(seq) {
                        arrivals.push(None);
                    } else {
                        let at = offset_us + (sent_ms + delay_ms(sec)) * 1000;
                        let reference_us = *reference.get_or_insert((at / 64_000) * 64_000);
                        arrivals.push(Some(at - prev_arrival.unwrap_or(reference_us)));
                        prev_arrival = Some(at);
                    }
                    seq = seq.wrapping_add(1);
                }
                let Some(reference_us) = reference else {
                    continue;
                };
                let fb = feedback(first, (reference_us / 64_000) as u32, &arrivals);
                let now = t0 + Duration::from_millis(u64::from(sec * 1000 + f * 100 + 100));
                windows.extend(log.on_feedback(&fb, WINDOW, now));
            }
        }
        windows
    }

    /// (Send times are kept to the millisecond, and the first packet,
    /// sent at 0, is filed at 1: a queue of 1 ms is no queue.)
    #[test]
    fn a_clean_link_has_no_loss_and_no_queue() {
        let w = run(5, |_| 40, |_| false);
        assert!(w.len() >= 4, "{w:?}");
        for x in &w {
            assert_eq!(x.loss, 0.0);
            assert!(x.queuing_ms.abs() <= 1.0, "{w:?}");
        }
    }

    #[test]
    fn loss_is_the_share_not_received() {
        let w = run(4, |_| 40, |seq| seq % 5 == 0);
        assert!(w.len() >= 3, "{w:?}");
        for x in &w {
            assert!((x.loss - 0.2).abs() < 0.02, "{w:?}");
        }
    }

    #[test]
    fn a_filling_buffer_shows_as_queuing_delay_before_any_loss() {
        // 40 ms of path; from second 3 a queue builds 150 ms a second.
        let w = run(
            6,
            |sec| 40 + i64::from(sec.saturating_sub(2)) * 150,
            |_| false,
        );
        let queuing: Vec<f64> = w.iter().map(|x| x.queuing_ms).collect();
        assert!(queuing[..2].iter().all(|q| q.abs() <= 1.0), "{queuing:?}");
        assert!(queuing.iter().any(|q| *q >= 100.0), "{queuing:?}");
        assert!(w.iter().all(|x| x.loss == 0.0));
    }

    /// A viewer whose media moves to a path 80 ms longer (a relay, say):
    /// told, the log measures from the new floor and sees no queue; a
    /// queue that then builds on the new path still shows. Not told, the
    /// longer path reads as 80 ms of queue.
    #[test]
    fn a_new_path_is_a_new_floor_not_a_queue() {
        let delay = |sec: u32| match sec {
            0..=2 => 20,
            3..=5 => 100,
            s => 100 + i64::from(s - 5) * 150,
        };
        let told = run_moving(8, delay, |_| false, Some(3));
        let q: Vec<f64> = told.iter().map(|x| x.queuing_ms).collect();
        assert!(q.len() >= 7, "{q:?}");
        assert!(q[..5].iter().all(|q| q.abs() <= 1.0), "{q:?}");
        assert!(q[5..].iter().any(|q| *q >= 100.0), "{q:?}");
        let untold = run(5, delay, |_| false);
        let q: Vec<f64> = untold.iter().map(|x| x.queuing_ms).collect();
        assert!(q.iter().any(|q| (q - 80.0).abs() <= 1.0), "{q:?}");
    }

    /// Packets that left on the old, shorter path but are reported after
    /// the change do not set the new path's floor.
    #[test]
    fn packets_of_the_old_path_reported_late_do_not_set_the_floor() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut log = TwccLog::new(t0);
        // Receiver clock = ours + 7 s; 20 ms of path, 100 ms from 100 ms on.
        let path = |sent_ms: i64| if sent_ms < 100 { 20 } else { 100 };
        let report = |log: &mut TwccLog, seqs: std::ops::Range<u16>, from_ms: u64, now_ms: u64| {
            let sent = |s: u16| from_ms as i64 + i64::from(s - seqs.start) * 10;
            for s in seqs.clone() {
                if s == 10 {
                    log.new_path(at(100));
                }
                log.record(s, at(sent(s) as u64));
            }
            let arrivals: Vec<i64> = seqs
                .clone()
                .map(|s| (sent(s) + 7_000 + path(sent(s))) * 1000)
                .collect();
            log.on_feedback(&arrived(seqs.start, &arrivals), WINDOW, at(now_ms))
        };
        assert_eq!(report(&mut log, 0..20, 0, 300), None);
        let first = report(&mut log, 20..30, 1000, 1300).expect("a window");
        let second = report(&mut log, 30..40, 2000, 2300).expect("a window");
        assert!(first.queuing_ms.abs() <= 1.0, "{first:?}");
        assert!(second.queuing_ms.abs() <= 1.0, "{second:?}");
    }

    /// Feedback saying `base..` arrived at these times (receiver clock,
    /// microseconds).
    fn arrived(base: u16, arrivals_us: &[i64]) -> TransportLayerCc {
        let reference = arrivals_us[0] / 64_000 * 64_000;
        let mut prev = reference;
        let deltas: Vec<Option<i64>> = arrivals_us
            .iter()
            .map(|a| {
                let d = a - prev;
                prev = *a;
                Some(d)
            })
            .collect();
        feedback(base, (reference / 64_000) as u32, &deltas)
    }

    /// A queue seconds deep (a fast start into a thin link, say) is still
    /// measured: a packet's send time outlives 1 400 later packets, and
    /// the millisecond count wrapping at 65.536 s reads back right.
    #[test]
    fn a_queue_seconds_deep_is_measured() {
        let t0 = Instant::now();
        let mut log = TwccLog::new(t0);
        // 1 500 packets 10 ms apart, from 60 s to 75 s on our clock.
        let sent_ms = |seq: u16| 60_000 + i64::from(seq) * 10;
        for seq in 0..1500u16 {
            log.record(seq, t0 + Duration::from_millis(sent_ms(seq) as u64));
        }
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Receiver clock = ours + 7 s, path 40 ms; the first packets came
        // without a queue, and reports on them arrive late.
        let seen = |seqs: std::ops::Range<u16>, queue_ms: i64| {
            let arrivals: Vec<i64> = seqs
                .clone()
                .map(|s| (sent_ms(s) + 7_000 + 40 + queue_ms) * 1000)
                .collect();
            arrived(seqs.start, &arrivals)
        };
        assert_eq!(log.on_feedback(&seen(0..10, 0), WINDOW, at(75_000)), None);
        let base = log.on_feedback(&seen(10..20, 0), WINDOW, at(76_000));
        assert_eq!(
            base,
            Some(Window {
                loss: 0.0,
                queuing_ms: 0.0
            })
        );
        let deep = log.on_feedback(&seen(1400..1410, 3_000), WINDOW, at(77_000));
        let q = deep.expect("a window").queuing_ms;
        assert!((q - 3_000.0).abs() <= 1.0, "{q}");
        // Deeper than the log: 3 000 packets later, the first ones' slots
        // hold newer packets. Their arrival says the queue is at least as
        // old as those newer packets are.
        for seq in 1500..3000u16 {
            log.record(seq, t0 + Duration::from_millis(sent_ms(seq) as u64));
        }
        // Seq 2048 took seq 0's slot; it left at 80.48 s, 9.52 s before.
        let _ = log.on_feedback(&seen(0..10, 25_000), WINDOW, at(89_000));
        let beyond = log.on_feedback(&seen(0..10, 26_000), WINDOW, at(90_000));
        let q = beyond.expect("a window").queuing_ms;
        assert!((9_400.0..=9_520.0).contains(&q), "{q}");
    }

    #[test]
    fn hostile_feedback_is_bounded_and_numbers_never_sent_are_ignored() {
        let t0 = Instant::now();
        let mut log = TwccLog::new(t0);
        log.record(10, t0);
        // Claims 65 535 statuses, all lost, none of them ours but one.
        let mut fb = feedback(11, 0, &[None]);
        fb.packet_status_count = u16::MAX;
        fb.packet_chunks = vec![
            PacketStatusChunk::RunLengthChunk(RunLengthChunk {
                type_tcc: StatusChunkTypeTcc::RunLengthChunk,
                packet_status_symbol: SymbolTypeTcc::PacketNotReceived,
                run_length: 8191,
            });
            8
        ];
        assert_eq!(log.on_feedback(&fb, WINDOW, t0), None);
        // Deltas missing for statuses that need them: it stops there.
        let mut fb = feedback(10, 0, &[Some(1000), Some(1000)]);
        fb.recv_deltas.truncate(1);
        let w = log.on_feedback(&fb, WINDOW, t0 + WINDOW);
        assert_eq!(
            w,
            Some(Window {
                loss: 0.0,
                queuing_ms: 0.0
            })
        );
    }
}
