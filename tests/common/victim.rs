//! The victim of a hostile-client test: a channel of its own, published by
//! ffmpeg over RTMP and watched by a WebRTC viewer that decodes every frame
//! with openh264. An attack passes only if the victim kept playing through
//! it: decoded frames throughout, no decode errors, no gap in video over
//! [`MAX_GAP`].

use super::TestServer;
use onair_loadtest::decode::{DecodeStats, Rotation};
use onair_loadtest::whep::{watch, Received, ViewerOptions};
use std::time::{Duration, Instant};
use tokio::process::Child;
use tokio::task::JoinHandle;

/// The longest freeze a victim may see: what a viewer notices as a stall.
pub const MAX_GAP: Duration = Duration::from_secs(1);
/// The test signal's frame rate (testsrc2 at 30 fps); a victim must decode
/// at least half of it over the attack, so a slideshow fails too.
const FPS: f64 = 30.0;

pub struct Victim {
    pub channel: String,
    publisher: Child,
    viewer: JoinHandle<anyhow::Result<Received>>,
    /// When the viewer's measurement window opens (it has had its first
    /// frames) and closes.
    from: Instant,
    until: Instant,
}

#[derive(Debug)]
pub struct VictimReport {
    pub decode: DecodeStats,
    pub longest_gap: Duration,
    pub frames: u64,
    pub window: Duration,
}

impl VictimReport {
    /// One line for the docs' attack table.
    pub fn summary(&self) -> String {
        format!(
            "victim decoded {} frames in {:.1} s ({:.1} fps), {} decode errors, longest video gap {} ms",
            self.decode.frames,
            self.window.as_secs_f64(),
            self.decode.frames as f64 / self.window.as_secs_f64(),
            self.decode.errors,
            self.longest_gap.as_millis()
        )
    }

    pub fn assert_kept_playing(&self, attack: &str) {
        println!("{attack}: {}", self.summary());
        assert_eq!(self.decode.errors, 0, "{attack}: {}", self.summary());
        assert!(
            self.longest_gap <= MAX_GAP,
            "{attack}: the victim froze: {}",
            self.summary()
        );
        let min = (self.window.as_secs_f64() * FPS / 2.0) as u64;
        assert!(
            self.decode.frames >= min,
            "{attack}: the victim decoded fewer than {min} frames: {}",
            self.summary()
        );
    }
}

impl Victim {
    /// Creates channel `victim` on `srv`, publishes to it over RTMP and
    /// starts a decoding WebRTC viewer. Measurement starts once the viewer
    /// has video; it lasts `secs` from then.
    pub async fn start(srv: &TestServer, secs: u64) -> Victim {
        Self::start_on(srv, "victim", secs).await
    }

    pub async fn start_on(srv: &TestServer, channel: &str, secs: u64) -> Victim {
        let key = srv
            .db
            .create_channel(channel)
            .await
            .expect("create the victim's channel")
            .stream_key;
        Self::start_at(srv.http, srv.rtmp, channel, &key, secs).await
    }

    /// On any server (a child process, say): `channel` must exist with
    /// stream key `key`.
    pub async fn start_at(
        http: std::net::SocketAddr,
        rtmp: std::net::SocketAddr,
        channel: &str,
        key: &str,
        secs: u64,
    ) -> Victim {
        // Small frames: the attack, not the victim, should be what loads
        // the machine.
        let publisher = super::ffmpeg_publish_sized(
            &format!("rtmp://{rtmp}/live/{key}"),
            (secs + 30) as u32,
            "640x360",
            &["-bf", "0"],
        );
        super::wait_for_live(http, channel).await;
        let warmup = Duration::from_secs(3);
        let from = Instant::now() + warmup;
        let until = from + Duration::from_secs(secs);
        let opts = ViewerOptions {
            record: false,
            measure_from: Some(from),
            decode: Some((
                Rotation {
                    start: Instant::now(),
                    viewers: 1,
                },
                0,
            )),
            ..Default::default()
        };
        let ch = channel.to_string();
        let viewer = tokio::spawn(async move {
            watch(http, &ch, warmup + Duration::from_secs(secs), opts).await
        });
        // The attack starts when the victim is watching.
        tokio::time::sleep_until(from.into()).await;
        Victim {
            channel: channel.to_string(),
            publisher,
            viewer,
            from,
            until,
        }
    }

    /// Waits for the viewer's window to end and reports what it saw.
    pub async fn finish(mut self) -> VictimReport {
        let got = self
            .viewer
            .await
            .expect("victim viewer task")
            .expect("victim viewer connected");
        let _ = self.publisher.kill().await;
        let tail = got.last_video_at.map_or(self.until - self.from, |t| {
            self.until.saturating_duration_since(t)
        });
        VictimReport {
            longest_gap: Duration::from_millis(got.counters.longest_video_gap_ms).max(tail),
            frames: got.counters.frames,
            decode: got.counters.decode.clone(),
            window: self.until - self.from,
        }
    }
}
