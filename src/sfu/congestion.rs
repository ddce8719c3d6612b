//! Per-viewer degradation when a viewer's link cannot carry the stream.
//!
//! Without simulcast there is one encoding, so the only levers are what
//! this viewer gets of it: everything, keyframes only (a picture every
//! keyframe interval, sound intact), or sound only. The signals are what
//! browsers send anyway: receiver reports (RFC 3550 6.4.1) and REMB
//! (draft-alvestrand-rmcat-remb). Sans-I/O: reports and `now` in, a
//! [`Level`] out.
//!
//! Loss is measured from the reports' cumulative counters over windows of
//! at least [`WINDOW`], not from each report's `fraction lost`: Chromium
//! sends two or three reports a second, each over a few dozen packets, and
//! at 5 % random loss single reports read anywhere from 0 to 97 %.
//! REMB only gates the step back up to full: Chromium's receive-side
//! estimate (no abs-send-time extension here) read 0.2 Mbit/s on a 5 %-loss
//! link that carried 2.5 Mbit/s smoothly with NACK, so it cannot be trusted
//! to step a viewer down on its own.
//!
//! A viewer that negotiated TWCC (browsers do) also sends transport-wide
//! feedback, from which comes its queuing delay (`super::twcc`): a link
//! that buffers instead of dropping shows there long before it shows as
//! loss. A queue over [`BAD_QUEUE_MS`] that is still growing makes the
//! next report's window bad whatever its loss; one that drains (after a
//! fast start's burst, say) does not. Loss is still read from the
//! reports: they count what NACK repaired as received, which is what the
//! loss thresholds mean, while the feedback counts every copy lost on
//! the way.
//!
//! Stepping down takes [`BAD_STREAK`] bad windows in a row (about 2 s);
//! stepping up waits for [`UPGRADE_AFTER`] of good ones, one level at a
//! time, so a link at the edge does not flap. At audio only no video flows
//! to measure, so the step up is a probe: if the link is still too thin
//! the next windows step it down again. Each viewer has its own
//! controller; nothing here touches the others.

use std::time::{Duration, Instant};

/// What a viewer is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    AudioOnly,
    KeyframesOnly,
    Full,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Full => "full",
            Level::KeyframesOnly => "keyframes",
            Level::AudioOnly => "audio",
        }
    }
}

/// Loss measured over at least this long.
pub const WINDOW: Duration = Duration::from_secs(1);
/// Loss above 10 % is a link that cannot carry the stream: NACK repairs a
/// few percent, not this.
const BAD_LOSS: f64 = 0.10;
/// Below 2 % the link carries what it gets.
const GOOD_LOSS: f64 = 0.02;
/// Bad windows in a row before stepping down: one alone may be a burst.
const BAD_STREAK: u32 = 2;
/// Back to full only if the viewer's REMB, when it sends one, is at least
/// this share of the stream's bitrate (see the module doc for why not
/// more).
const REMB_FLOOR: f64 = 0.5;
/// Good windows needed for this long before one step up.
pub const UPGRADE_AFTER: Duration = Duration::from_secs(8);
/// A queue this deep (milliseconds above the lowest delay of the last
/// few seconds), and growing, is a link carrying less than it is sent:
/// the picture falls that far behind, and more each second.
const BAD_QUEUE_MS: f64 = 100.0;
/// Growth from one feedback window to the next that counts as growing;
/// less is a queue standing or draining.
const QUEUE_GROWTH_MS: f64 = 20.0;
/// Below this the link keeps up.
const GOOD_QUEUE_MS: f64 = 30.0;
/// A queue reading older than this is not used.
const QUEUE_FRESH: Duration = Duration::from_millis(2500);

/// What one window says of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Health {
    Bad,
    Fair,
    Good,
}

fn from_loss(loss: f64) -> Health {
    if loss > BAD_LOSS {
        Health::Bad
    } else if loss > GOOD_LOSS {
        Health::Fair
    } else {
        Health::Good
    }
}

/// Where the current loss window started: when, and the report's
/// cumulative lost count and extended highest sequence number then.
#[derive(Debug, Clone, Copy)]
struct Mark {
    at: Instant,
    lost: i64,
    highest: i64,
}

#[derive(Debug, Clone)]
pub struct Controller {
    level: Level,
    bad_streak: u32,
    good_since: Option<Instant>,
    /// The viewer's latest REMB, bits per second.
    remb: Option<f64>,
    mark: Option<Mark>,
    /// The last quiet report judged.
    quiet_at: Option<Instant>,
    /// What the latest TWCC window said of the queue, when, and how deep
    /// it was.
    queue: Option<(Instant, Health, f64)>,
}

impl Default for Controller {
    fn default() -> Self {
        Controller {
            level: Level::Full,
            bad_streak: 0,
            good_since: None,
            remb: None,
            mark: None,
            quiet_at: None,
            queue: None,
        }
    }
}

impl Controller {
    pub fn level(&self) -> Level {
        self.level
    }

    /// The viewer's latest REMB, bits per second.
    pub fn remb(&self) -> Option<f64> {
        self.remb
    }

    pub fn on_remb(&mut self, bps: f64) {
        if bps.is_finite() && bps >= 0.0 {
            self.remb = Some(bps);
        }
    }

    /// A receiver report block for this viewer's video: its cumulative
    /// `total_lost` and extended highest sequence number as sent;
    /// `stream_bps` is the full stream's video bitrate. Returns the new
    /// level when it changed.
    pub fn on_report(
        &mut self,
        total_lost: u32,
        highest: u32,
        stream_bps: f64,
        now: Instant,
    ) -> Option<Level> {
        // total_lost is a 24-bit signed count (duplicates can make it
        // negative).
        let lost = i64::from(((total_lost << 8) as i32) >> 8);
        let here = Mark {
            at: now,
            lost,
            highest: i64::from(highest),
        };
        let Some(mark) = self.mark else {
            self.mark = Some(here);
            return None;
        };
        if now.duration_since(mark.at) < WINDOW {
            return None;
        }
        self.mark = Some(here);
        let expected = here.highest - mark.highest;
        let loss = if expected > 0 {
            (here.lost - mark.lost).clamp(0, expected) as f64 / expected as f64
        } else {
            0.0 // no video flowed (audio only): nothing lost
        };
        self.judge(from_loss(loss), stream_bps, now)
    }

    /// One window of TWCC feedback (see `super::twcc`): its queuing delay
    /// counts in the next report's verdict.
    pub fn on_transport_window(&mut self, w: crate::sfu::twcc::Window, now: Instant) {
        let q = w.queuing_ms;
        let growing = self
            .queue
            .is_none_or(|(_, _, before)| q >= before + QUEUE_GROWTH_MS);
        let health = if q > BAD_QUEUE_MS && growing {
            Health::Bad
        } else if q > GOOD_QUEUE_MS {
            Health::Fair
        } else {
            Health::Good
        };
        self.queue = Some((now, health, q));
    }

    /// `health` made worse by a fresh queue reading, if there is one.
    fn with_queue(&self, health: Health, now: Instant) -> Health {
        match self.queue {
            Some((at, q, _)) if now.saturating_duration_since(at) < QUEUE_FRESH => health.min(q),
            _ => health,
        }
    }

    /// A receiver report without a block for the video: at audio only,
    /// browsers stop reporting on a track that went quiet, so this is the
    /// only clock the probe back up can run on.
    pub fn on_quiet_report(&mut self, stream_bps: f64, now: Instant) -> Option<Level> {
        if self.level != Level::AudioOnly {
            return None;
        }
        if self
            .quiet_at
            .is_some_and(|t| now.duration_since(t) < WINDOW)
        {
            return None;
        }
        self.quiet_at = Some(now);
        // The next video block starts a fresh window.
        self.mark = None;
        self.judge(Health::Good, stream_bps, now)
    }

    fn judge(&mut self, health: Health, stream_bps: f64, now: Instant) -> Option<Level> {
        let health = self.with_queue(health, now);
        if health == Health::Bad {
            self.good_since = None;
            self.bad_streak += 1;
            if self.bad_streak >= BAD_STREAK && self.level > Level::AudioOnly {
                self.bad_streak = 0;
                self.level = match self.level {
                    Level::Full => Level::KeyframesOnly,
                    _ => Level::AudioOnly,
                };
                return Some(self.level);
            }
            return None;
        }
        self.bad_streak = 0;
        if health == Health::Fair {
            self.good_since = None;
            return None;
        }
        let since = *self.good_since.get_or_insert(now);
        if self.level == Level::Full || now.duration_since(since) < UPGRADE_AFTER {
            return None;
        }
        let fits = self
            .remb
            .is_none_or(|r| stream_bps <= 0.0 || r >= REMB_FLOOR * stream_bps);
        if self.level == Level::KeyframesOnly && !fits {
            return None;
        }
        self.good_since = Some(now);
        self.level = match self.level {
            Level::AudioOnly => Level::KeyframesOnly,
            _ => Level::Full,
        };
        Some(self.level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MBPS: f64 = 2_500_000.0;
    /// Video packets per one-second report at 2.5 Mbit/s.
    const PER_SEC: u32 = 230;

    /// One report a second: `(share of that second's packets lost, REMB)`;
    /// returns the level after each.
    fn run(c: &mut Controller, seconds: &[(f64, Option<f64>)]) -> Vec<Level> {
        let t0 = Instant::now();
        let (mut lost, mut highest) = (0u32, 1000u32);
        c.on_report(lost, highest, MBPS, t0);
        seconds
            .iter()
            .enumerate()
            .map(|(i, &(share, remb))| {
                // No video flows at audio only.
                let sent = if c.level() == Level::AudioOnly {
                    0
                } else {
                    PER_SEC
                };
                highest += sent;
                lost += (f64::from(sent) * share) as u32;
                if let Some(r) = remb {
                    c.on_remb(r);
                }
                c.on_report(lost, highest, MBPS, t0 + Duration::from_secs(i as u64 + 1));
                c.level()
            })
            .collect()
    }

    #[test]
    fn a_clean_link_and_five_percent_loss_stay_full() {
        let mut c = Controller::default();
        assert!(run(&mut c, &[(0.0, Some(5e6)); 30])
            .iter()
            .all(|l| *l == Level::Full));
        // The REMB Chromium sent on such a link does not step it down.
        let mut c = Controller::default();
        assert!(run(&mut c, &[(0.05, Some(2e5)); 30])
            .iter()
            .all(|l| *l == Level::Full));
    }

    /// A viewer on TWCC: its reports show no loss, and a queue that keeps
    /// growing steps it down at the second report; a queue that drains
    /// (a fast start's burst) or stands, however deep, does not; a reading
    /// gone stale counts for nothing.
    #[test]
    fn a_growing_queue_steps_down_and_a_draining_one_does_not() {
        use crate::sfu::twcc::Window;
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let q = |c: &mut Controller, queuing_ms, ms| {
            c.on_transport_window(
                Window {
                    loss: 0.0,
                    queuing_ms,
                },
                at(ms),
            )
        };
        // Clean reports once a second, 230 packets each.
        let report = |c: &mut Controller, s: u64| {
            c.on_report(0, 1000 + 230 * s as u32, MBPS, at(s * 1000 + 10))
        };

        let mut c = Controller::default();
        report(&mut c, 0);
        // A fast start fills the queue at once; it then drains.
        for (s, depth) in [(1, 400.0), (2, 250.0), (3, 120.0), (4, 10.0)] {
            q(&mut c, depth, s * 1000);
            assert_eq!(report(&mut c, s), None, "draining at {s} s");
        }
        // Standing deep is not growing.
        for s in 5..8 {
            q(&mut c, 150.0, s * 1000);
            assert_eq!(report(&mut c, s), None, "standing at {s} s");
        }
        assert_eq!(c.level(), Level::Full);

        // A queue growing 300 ms a second: down at the second report.
        let mut c = Controller::default();
        report(&mut c, 0);
        q(&mut c, 0.0, 1000);
        assert_eq!(report(&mut c, 1), None);
        q(&mut c, 300.0, 2000);
        assert_eq!(report(&mut c, 2), None, "one bad window");
        q(&mut c, 600.0, 3000);
        assert_eq!(report(&mut c, 3), Some(Level::KeyframesOnly));

        // A bad reading that has gone stale counts for nothing.
        let mut c = Controller::default();
        report(&mut c, 0);
        q(&mut c, 0.0, 500);
        q(&mut c, 300.0, 1000);
        assert_eq!(report(&mut c, 4), None);
        assert_eq!(report(&mut c, 5), None);
        assert_eq!(c.level(), Level::Full);
    }

    #[test]
    fn one_bad_window_is_a_burst_not_a_verdict() {
        let mut c = Controller::default();
        let levels = run(
            &mut c,
            &[(0.0, None), (0.4, None), (0.0, None), (0.4, None)],
        );
        assert!(levels.iter().all(|l| *l == Level::Full), "{levels:?}");
    }

    #[test]
    fn heavy_loss_steps_down_to_keyframes_then_audio() {
        let mut c = Controller::default();
        let levels = run(&mut c, &[(0.3, None); 4]);
        assert_eq!(
            levels,
            [
                Level::Full,
                Level::KeyframesOnly,
                Level::KeyframesOnly,
                Level::AudioOnly
            ]
        );
    }

    #[test]
    fn recovery_steps_up_one_level_per_good_stretch_and_needs_remb_room() {
        let mut c = Controller::default();
        let mut seconds = vec![(0.3, None); 4];
        seconds.extend(vec![(0.0, Some(1e6)); 20]);
        seconds.extend(vec![(0.0, Some(5e6)); 12]);
        let levels = run(&mut c, &seconds);
        assert_eq!(levels[3], Level::AudioOnly);
        let up = levels
            .iter()
            .skip(4)
            .position(|l| *l == Level::KeyframesOnly);
        assert!(up.expect("keyframes again") as u64 >= UPGRADE_AFTER.as_secs() - 1);
        // REMB says 1 Mbit/s for a 2.5 Mbit/s stream: not back to full...
        assert!(!levels[4..24].contains(&Level::Full), "{levels:?}");
        // ...until it says 5.
        assert_eq!(*levels.last().unwrap(), Level::Full, "{levels:?}");
    }

    #[test]
    fn audio_only_probes_back_up_when_reports_go_quiet() {
        let mut c = Controller::default();
        run(&mut c, &[(0.3, None); 4]);
        assert_eq!(c.level(), Level::AudioOnly);
        let t0 = Instant::now() + Duration::from_secs(100);
        let mut up = None;
        for i in 0..40 {
            // Two reports a second, none with a video block.
            let t = t0 + Duration::from_millis(500 * i);
            if c.on_quiet_report(MBPS, t).is_some() {
                up = Some(i);
                break;
            }
        }
        let up = up.expect("probed back up");
        assert!(Duration::from_millis(500 * up) >= UPGRADE_AFTER, "{up}");
        assert_eq!(c.level(), Level::KeyframesOnly);
        // Quiet reports mean nothing at other levels.
        assert_eq!(c.on_quiet_report(MBPS, t0 + Duration::from_secs(60)), None);
    }

    #[test]
    fn counters_that_wrap_or_go_backwards_do_no_harm() {
        let mut c = Controller::default();
        let t0 = Instant::now();
        // -1 as a 24-bit count, then a sequence number that went back.
        c.on_report(0x00ff_ffff, 5000, MBPS, t0);
        c.on_report(3, 4000, MBPS, t0 + Duration::from_secs(2));
        c.on_report(u32::MAX, 0, MBPS, t0 + Duration::from_secs(4));
        c.on_remb(f64::NAN);
        c.on_remb(-5.0);
        assert_eq!(c.level(), Level::Full);
        assert_eq!(c.remb(), None);
    }
}
