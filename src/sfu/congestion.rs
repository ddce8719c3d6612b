//! Per-viewer degradation when a viewer's link cannot carry the stream.
//!
//! Without simulcast there is one encoding, so the only levers are what
//! this viewer gets of it: everything, keyframes only (a picture every
//! keyframe interval, sound intact), or sound only. The signals are what
//! browsers send anyway: receiver reports' fraction lost (RFC 3550 6.4.1)
//! and REMB (draft-alvestrand-rmcat-remb), the receiver's estimate of what
//! its link carries. Sans-I/O: reports and `now` in, a [`Level`] out.
//!
//! Stepping down is quick (two bad reports in a row, about 2 s with
//! Chromium's one report a second) because every second at the wrong level
//! is a frozen or smeared picture; stepping up waits for [`UPGRADE_AFTER`]
//! of good reports, one level at a time, so a link at the edge does not
//! flap. Nothing here touches other viewers: each has its own controller.

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

/// Fraction lost above this (10 %, in 1/256 units) is a link that cannot
/// carry the stream: NACK recovers a few percent, not this.
const BAD_LOSS: u8 = 26;
/// Below 2 % the link carries what it gets.
const GOOD_LOSS: u8 = 5;
/// Bad reports in a row before stepping down: one alone may be a burst.
const BAD_STREAK: u32 = 2;
/// A REMB below this share of the stream's bitrate means the stream does
/// not fit.
const REMB_SHORT: f64 = 0.7;
/// And above this share, it fits with room to spare.
const REMB_ROOM: f64 = 1.2;
/// Good reports needed for this long before one step up.
pub const UPGRADE_AFTER: Duration = Duration::from_secs(8);

#[derive(Debug, Clone)]
pub struct Controller {
    level: Level,
    bad_streak: u32,
    good_since: Option<Instant>,
    /// The viewer's latest REMB, bits per second.
    remb: Option<f64>,
}

impl Default for Controller {
    fn default() -> Self {
        Controller {
            level: Level::Full,
            bad_streak: 0,
            good_since: None,
            remb: None,
        }
    }
}

impl Controller {
    pub fn level(&self) -> Level {
        self.level
    }

    /// A REMB from the viewer. Judged with the next receiver report, so
    /// both signals count once per report interval.
    pub fn on_remb(&mut self, bps: f64) {
        if bps.is_finite() && bps >= 0.0 {
            self.remb = Some(bps);
        }
    }

    /// A receiver report for this viewer's video: `fraction_lost` as sent
    /// (1/256 units), `stream_bps` the video bitrate of the full stream.
    /// Returns the new level when it changed.
    pub fn on_report(&mut self, fraction_lost: u8, stream_bps: f64, now: Instant) -> Option<Level> {
        // At keyframes only the stream is far lighter than `stream_bps`, so
        // REMB can only judge whether the full stream fits.
        let remb_ratio = self
            .remb
            .filter(|_| stream_bps > 0.0)
            .map(|r| r / stream_bps);
        let bad = fraction_lost > BAD_LOSS
            || (self.level == Level::Full && remb_ratio.is_some_and(|r| r < REMB_SHORT));
        let good = fraction_lost <= GOOD_LOSS && remb_ratio.is_none_or(|r| r >= REMB_ROOM);
        if bad {
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
        if !good {
            self.good_since = None;
            return None;
        }
        let since = *self.good_since.get_or_insert(now);
        if self.level < Level::Full && now.duration_since(since) >= UPGRADE_AFTER {
            self.good_since = Some(now);
            self.level = match self.level {
                Level::AudioOnly => Level::KeyframesOnly,
                _ => Level::Full,
            };
            return Some(self.level);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MBPS: f64 = 2_500_000.0;

    /// One report a second: `(fraction_lost, remb)`; returns the level
    /// after each.
    fn run(c: &mut Controller, reports: &[(u8, Option<f64>)]) -> Vec<Level> {
        let t0 = Instant::now();
        reports
            .iter()
            .enumerate()
            .map(|(i, &(loss, remb))| {
                if let Some(r) = remb {
                    c.on_remb(r);
                }
                c.on_report(loss, MBPS, t0 + Duration::from_secs(i as u64));
                c.level()
            })
            .collect()
    }

    #[test]
    fn a_clean_link_stays_full() {
        let mut c = Controller::default();
        let levels = run(&mut c, &[(0, Some(5e6)); 30]);
        assert!(levels.iter().all(|l| *l == Level::Full));
    }

    #[test]
    fn one_bad_report_is_a_burst_not_a_verdict() {
        let mut c = Controller::default();
        let levels = run(
            &mut c,
            &[(0, None), (80, None), (0, None), (80, None), (0, None)],
        );
        assert!(levels.iter().all(|l| *l == Level::Full), "{levels:?}");
    }

    #[test]
    fn heavy_loss_steps_down_to_keyframes_then_audio() {
        let mut c = Controller::default();
        let levels = run(&mut c, &[(60, None); 4]);
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
    fn a_low_remb_steps_down_even_without_loss() {
        let mut c = Controller::default();
        let levels = run(&mut c, &[(0, Some(1e6)); 6]);
        // REMB cannot judge the keyframes-only stream: it stays there.
        assert_eq!(levels[1], Level::KeyframesOnly);
        assert_eq!(*levels.last().unwrap(), Level::KeyframesOnly);
    }

    #[test]
    fn recovery_steps_up_one_level_per_good_stretch() {
        let mut c = Controller::default();
        let mut reports = vec![(60u8, None); 4];
        reports.extend(vec![(0u8, Some(5e6)); 20]);
        let levels = run(&mut c, &reports);
        assert_eq!(levels[3], Level::AudioOnly);
        let up1 = levels
            .iter()
            .skip(4)
            .position(|l| *l == Level::KeyframesOnly);
        let up2 = levels.iter().skip(4).position(|l| *l == Level::Full);
        let (up1, up2) = (up1.expect("keyframes again"), up2.expect("full again"));
        assert!(up1 as u64 >= UPGRADE_AFTER.as_secs(), "{levels:?}");
        assert!(up2 - up1 >= UPGRADE_AFTER.as_secs() as usize, "{levels:?}");
    }

    #[test]
    fn junk_remb_is_ignored() {
        let mut c = Controller::default();
        c.on_remb(f64::NAN);
        c.on_remb(-5.0);
        let levels = run(&mut c, &[(0, None); 3]);
        assert!(levels.iter().all(|l| *l == Level::Full));
    }
}
