//! The scenarios: start the clients (and the synthetic publisher when
//! asked), wait out the ramp, a warm-up and the measurement window, then
//! sum up what every client saw and what the server spent.

use crate::cli::{CrowdArgs, RunArgs, SourceArgs, MAX_CHAT_RATE};
use crate::report::{p50_p99, percentile, us_to_ms, ServerWindow};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::future::Future;
use std::time::{Duration, Instant};

/// Time after the last join before measuring, so joins do not count.
pub const WARMUP: Duration = Duration::from_secs(2);
/// Time the publisher gets to go live before the first viewer joins.
const PUBLISH_LEAD: Duration = Duration::from_millis(1500);

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// Waits out `d` with a countdown bar.
async fn window(d: Duration, what: &str) {
    let pb = bar(d.as_secs().max(1), what);
    let end = Instant::now() + d;
    while Instant::now() < end {
        tokio::time::sleep(
            end.saturating_duration_since(Instant::now())
                .min(Duration::from_secs(1)),
        )
        .await;
        pb.set_position(
            d.as_secs()
                .saturating_sub(end.saturating_duration_since(Instant::now()).as_secs()),
        );
    }
    pb.finish_and_clear();
}

/// Starts the publisher, if any, for the whole run; returns its task.
async fn publisher(
    run: &RunArgs,
    source: &SourceArgs,
    total: Duration,
) -> anyhow::Result<Option<tokio::task::JoinHandle<anyhow::Result<serde_json::Value>>>> {
    if !source.is_set() {
        return Ok(None);
    }
    // The publisher outlives the viewers, so none sees the stream end.
    let task = source
        .start(run.http, total + PUBLISH_LEAD + Duration::from_secs(2))
        .await?;
    tokio::time::sleep(PUBLISH_LEAD).await;
    Ok(Some(task))
}

async fn publisher_report(
    task: Option<tokio::task::JoinHandle<anyhow::Result<serde_json::Value>>>,
) -> serde_json::Value {
    match task {
        None => serde_json::Value::Null,
        Some(t) => match t.await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => json!({"error": e.to_string()}),
            Err(e) => json!({"error": e.to_string()}),
        },
    }
}

/// Every viewer scenario's ramp, warm-up and measurement window: starts
/// the publisher (if any), has `watch(i, dur, measure_from)` join viewer `i`
/// for `dur` every `--ramp-ms`, so that all viewers leave at the same time,
/// and waits out the window with the server's usage sampled over it.
async fn crowd<R, F, Fut>(
    run: &RunArgs,
    crowd: &CrowdArgs,
    source: &SourceArgs,
    joining: &str,
    mut watch: F,
) -> anyhow::Result<Watched<R>>
where
    F: FnMut(usize, Duration, Instant) -> Fut,
    Fut: Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    let viewers = crowd.viewers;
    run.check(viewers)?;
    let ramp = Duration::from_millis(crowd.ramp_ms);
    let total =
        ramp * viewers as u32 + WARMUP + Duration::from_secs(run.seconds) + Duration::from_secs(1);
    let mut server = ServerWindow::baseline(run.probe())
        .await
        .with_latency_from(run.metrics.unwrap_or(run.http));
    let publishing = publisher(run, source, total).await?;
    let pb = bar(viewers as u64, joining);
    let measure_from = Instant::now() + ramp * viewers as u32 + WARMUP;
    let mut tasks = Vec::with_capacity(viewers);
    for i in 0..viewers {
        // Each viewer lives until the same end time, whenever it joined.
        let dur = total.saturating_sub(ramp * i as u32);
        let watching = watch(i, dur, measure_from);
        tasks.push(tokio::spawn(async move { (dur, watching.await) }));
        pb.inc(1);
        tokio::time::sleep(ramp).await;
    }
    pb.finish_and_clear();
    tokio::time::sleep(WARMUP).await;
    server.start().await;
    window(Duration::from_secs(run.seconds), "measuring").await;
    let server = server.finish().await;
    let mut seen = Vec::with_capacity(viewers);
    for t in tasks {
        seen.push(t.await?);
    }
    Ok(Watched {
        viewers: seen,
        server,
        publisher: publisher_report(publishing).await,
    })
}

/// What [`crowd`] returns: each viewer's time on the stream and result.
struct Watched<R> {
    viewers: Vec<(Duration, R)>,
    server: serde_json::Value,
    publisher: serde_json::Value,
}

/// The measures every kind of viewer reports alike.
#[derive(Default)]
struct Tally {
    firsts: Vec<f64>,
    mbps: Vec<f64>,
    latency: Vec<f64>,
    longest_gap_ms: u64,
}

impl Tally {
    /// Counts a viewer that stayed `dur` and got its first media after
    /// `first`; returns how many seconds it watched from then on.
    fn viewer(
        &mut self,
        dur: Duration,
        first: Option<Duration>,
        bytes: u64,
        latency_us: &[u32],
        longest_gap_ms: u64,
    ) -> Option<f64> {
        self.latency.extend(us_to_ms(latency_us));
        self.longest_gap_ms = self.longest_gap_ms.max(longest_gap_ms);
        let f = first?;
        self.firsts.push(f.as_secs_f64() * 1000.0);
        let watched = dur.saturating_sub(f).as_secs_f64().max(1e-3);
        self.mbps.push(bytes as f64 * 8.0 / watched / 1e6);
        Some(watched)
    }

    /// The report: `fields` plus the shared measures, with the server's
    /// usage divided among the `connected` viewers.
    fn report(
        &self,
        fields: serde_json::Value,
        connected: usize,
        mut seen: Watched<impl Sized>,
    ) -> serde_json::Value {
        let (f50, f99) = p50_p99(&self.firsts);
        let (l50, l99) = p50_p99(&self.latency);
        crate::report::per_client(&mut seen.server, connected);
        let mut report = json!({
            "connected": connected,
            "first_frame_ms_p50": f50,
            "first_frame_ms_p99": f99,
            "mbps_per_viewer": percentile(&self.mbps, 0.5),
            "latency_ms_p50": l50,
            "latency_ms_p99": l99,
            "latency_samples": self.latency.len(),
            "publisher": seen.publisher,
            "server": seen.server,
        });
        if let (Some(all), serde_json::Value::Object(more)) = (report.as_object_mut(), fields) {
            all.extend(more);
        }
        report
    }
}

fn join_ms(joins: &mut Vec<f64>, joined: Option<Duration>) {
    if let Some(j) = joined {
        joins.push(j.as_secs_f64() * 1000.0);
    }
}

pub async fn whep(
    run: &RunArgs,
    viewers: &CrowdArgs,
    source: &SourceArgs,
    decrypt_every: usize,
) -> anyhow::Result<serde_json::Value> {
    let n = viewers.viewers;
    let every = decrypt_every.max(1);
    // Viewers 0, every, 2 * every, ... decrypt.
    let decrypting = n.div_ceil(every);
    let seen = crowd(
        run,
        viewers,
        source,
        "WebRTC viewers joining",
        |i, dur, measure_from| {
            let (http, channel) = (run.node(i), run.channel.clone());
            // The decode checks rotate over the viewers that decrypt.
            let rotation = crate::decode::Rotation {
                start: measure_from,
                viewers: decrypting,
            };
            let decrypt = i % every == 0;
            async move {
                let opts = crate::whep::ViewerOptions {
                    record: false,
                    measure_from: Some(measure_from),
                    decode: decrypt.then_some((rotation, i / every)),
                    decrypt,
                    ..Default::default()
                };
                crate::whep::watch(http, &channel, dur, opts).await
            }
        },
    )
    .await?;

    let (mut tally, mut joins, mut fps) = (Tally::default(), Vec::new(), Vec::new());
    let (mut packets, mut lost, mut freezes) = (0u64, 0u64, 0u64);
    let mut decode = crate::decode::DecodeStats::default();
    let mut decoded_viewers = 0;
    let mut errors = Vec::new();
    for (dur, r) in &seen.viewers {
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        };
        join_ms(&mut joins, r.connected_after);
        let c = &r.counters;
        let first = r.first_video_after;
        if let Some(watched) = tally.viewer(*dur, first, c.bytes, &c.latency_us, 0) {
            fps.push(c.frames as f64 / watched);
        }
        packets += c.video_packets + c.audio_packets;
        lost += c.lost;
        freezes += c.freezes;
        tally.longest_gap_ms = tally.longest_gap_ms.max(c.longest_video_gap_ms);
        decode.checks += c.decode.checks;
        decode.frames += c.decode.frames;
        decode.errors += c.decode.errors;
        decoded_viewers += usize::from(c.decode.frames > 0);
    }
    let (j50, j99) = p50_p99(&joins);
    let fields = json!({
        "scenario": "whep",
        "decrypting_viewers": decrypting,
        "decode_checked_viewers": decoded_viewers,
        "decoded_frames": decode.frames,
        "decode_errors": decode.errors,
        "viewers": n,
        "receiving_video": tally.firsts.len(),
        "errors": errors.len(),
        "first_error": errors.first(),
        "join_ms_p50": j50,
        "join_ms_p99": j99,
        "fps_per_viewer": percentile(&fps, 0.5),
        "loss_percent": lost as f64 * 100.0 / (packets + lost).max(1) as f64,
        "freezes": freezes,
        "longest_freeze_ms": tally.longest_gap_ms,
    });
    Ok(tally.report(fields, joins.len(), seen))
}

pub async fn hls(
    run: &RunArgs,
    viewers: &CrowdArgs,
    playlist: &Option<String>,
    source: &SourceArgs,
) -> anyhow::Result<serde_json::Value> {
    let run_id = crate::stamp::now_us();
    let playlist = playlist
        .clone()
        .unwrap_or_else(|| format!("/hls/{}/index.m3u8", run.channel));
    let seen = crowd(
        run,
        viewers,
        source,
        "LL-HLS viewers joining",
        |i, dur, from| {
            let (http, playlist) = (run.http, playlist.clone());
            // The server counts HLS viewers by address and User-Agent.
            let ua = format!("onair-loadtest/{run_id}/{i}");
            async move { crate::hls::watch(http, &playlist, dur, ua, Some(from)).await }
        },
    )
    .await?;

    let (mut tally, mut joins) = (Tally::default(), Vec::new());
    let (mut parts, mut playlists, mut errors, mut stalls) = (0, 0, 0, 0);
    let mut first_error = None;
    for (dur, r) in &seen.viewers {
        join_ms(&mut joins, r.joined_after);
        let first = r.first_part_after;
        tally.viewer(*dur, first, r.bytes, &r.latency_us, r.longest_gap_ms);
        parts += r.parts;
        playlists += r.playlists;
        errors += r.errors;
        stalls += r.stalls;
        if first_error.is_none() {
            first_error.clone_from(&r.first_error);
        }
    }
    let (j50, j99) = p50_p99(&joins);
    let fields = json!({
        "scenario": "hls",
        "viewers": viewers.viewers,
        "receiving_parts": tally.firsts.len(),
        "errors": errors,
        "first_error": first_error,
        "join_ms_p50": j50,
        "join_ms_p99": j99,
        "parts": parts,
        "playlists": playlists,
        "stalls": stalls,
        "longest_gap_ms": tally.longest_gap_ms,
    });
    Ok(tally.report(fields, joins.len(), seen))
}

pub async fn flv(
    run: &RunArgs,
    viewers: &CrowdArgs,
    path: &str,
    source: &SourceArgs,
) -> anyhow::Result<serde_json::Value> {
    let seen = crowd(
        run,
        viewers,
        source,
        "HTTP-FLV viewers joining",
        |i, dur, from| {
            let (http, path) = (run.http, path.to_string());
            async move { crate::flv::watch(http, &path, i, dur, Some(from)).await }
        },
    )
    .await?;
    let (mut tally, mut errors, mut stalls) = (Tally::default(), Vec::new(), 0);
    for (dur, r) in &seen.viewers {
        let first = r.first_byte_after;
        tally.viewer(*dur, first, r.bytes, &r.latency_us, r.longest_gap_ms);
        stalls += r.stalls;
        errors.extend(r.error.clone());
    }
    let fields = json!({
        "scenario": "flv",
        "viewers": viewers.viewers,
        "errors": errors.len(),
        "first_error": errors.first(),
        "stalls": stalls,
        "longest_gap_ms": tally.longest_gap_ms,
    });
    let connected = tally.firsts.len();
    Ok(tally.report(fields, connected, seen))
}

pub async fn listen(
    run: &RunArgs,
    viewers: &CrowdArgs,
    path: &Option<String>,
    source: &SourceArgs,
) -> anyhow::Result<serde_json::Value> {
    let icecast = source.icecast_addr();
    anyhow::ensure!(icecast.ip().is_loopback(), "load goes to loopback only");
    let path = path.clone().unwrap_or_else(|| format!("/{}", run.channel));
    let seen = crowd(
        run,
        viewers,
        source,
        "Icecast listeners joining",
        |i, dur, from| {
            let (addr, path) = (icecast, path.clone());
            async move { crate::icecast::listen(addr, &path, i, dur, Some(from)).await }
        },
    )
    .await?;
    let (mut tally, mut errors, mut stalls) = (Tally::default(), Vec::new(), 0);
    for (dur, r) in &seen.viewers {
        tally.viewer(*dur, r.first_byte_after, r.bytes, &[], r.longest_gap_ms);
        stalls += r.stalls;
        errors.extend(r.error.clone());
    }
    let fields = json!({
        "scenario": "listen",
        "viewers": viewers.viewers,
        "errors": errors.len(),
        "first_error": errors.first(),
        "stalls": stalls,
        "longest_gap_ms": tally.longest_gap_ms,
    });
    let connected = tally.firsts.len();
    Ok(tally.report(fields, connected, seen))
}

pub async fn chat(run: &RunArgs, clients: usize, rate: f64) -> anyhow::Result<serde_json::Value> {
    run.check(clients)?;
    anyhow::ensure!(
        rate > 0.0 && rate <= MAX_CHAT_RATE,
        "--rate must be in (0, {MAX_CHAT_RATE}]"
    );
    anyhow::ensure!(clients > 0, "--clients must be at least 1");
    let writers = crate::chat::writers_for(rate, clients);
    let run_id = crate::stamp::now_us();
    let pb = bar(writers as u64, "creating chat writers");
    let mut tokens = Vec::with_capacity(writers);
    for i in 0..writers {
        let name = format!("lt{:06x}w{i}", run_id & 0xff_ffff);
        tokens.push(crate::chat::account(run.http, &name).await?);
        pb.inc(1);
    }
    pb.finish_and_clear();
    let mut server = ServerWindow::baseline(run.probe()).await;
    // Writers stop a little before readers, so every message can arrive.
    let until = Instant::now() + WARMUP + Duration::from_secs(run.seconds);
    let every = Duration::from_secs_f64(writers as f64 / rate);
    let mut tasks = Vec::with_capacity(clients);
    let pb = bar(clients as u64, "chat clients joining");
    for i in 0..clients {
        let token = tokens.get(i).cloned();
        let (http, channel) = (run.node(i), run.channel.clone());
        let end = if token.is_some() {
            until - Duration::from_millis(500)
        } else {
            until
        };
        tasks.push(tokio::spawn(async move {
            crate::chat::client(http, None, &channel, token, every, run_id, end).await
        }));
        pb.inc(1);
    }
    pb.finish_and_clear();
    tokio::time::sleep(WARMUP).await;
    server.start().await;
    window(until.saturating_duration_since(Instant::now()), "chatting").await;
    let mut server = server.finish().await;
    let (mut joins, mut latency) = (Vec::new(), Vec::new());
    let (mut sent, mut received, mut rejected) = (0, 0, 0);
    let mut errors = Vec::new();
    for t in tasks {
        let r = t.await?;
        join_ms(&mut joins, r.connected_after);
        sent += r.sent;
        received += r.received;
        rejected += r.rejected;
        latency.extend(us_to_ms(&r.latency_us));
        if let Some(e) = r.error {
            errors.push(e);
        }
    }
    let expected = sent * clients as u64;
    let (j50, j99) = p50_p99(&joins);
    let (l50, l99) = p50_p99(&latency);
    crate::report::per_client(&mut server, joins.len());
    Ok(json!({
        "scenario": "chat",
        "clients": clients,
        "writers": writers,
        "connected": joins.len(),
        "errors": errors.len(),
        "first_error": errors.first(),
        "join_ms_p50": j50,
        "join_ms_p99": j99,
        "sent": sent,
        "rejected": rejected,
        "delivered": received,
        "delivered_percent": received as f64 * 100.0 / expected.max(1) as f64,
        "latency_ms_p50": l50,
        "latency_ms_p99": l99,
        "latency_samples": latency.len(),
        "server": server,
    }))
}

pub async fn publish(run: &RunArgs, source: &SourceArgs) -> anyhow::Result<serde_json::Value> {
    run.check(1)?;
    anyhow::ensure!(
        source.is_set(),
        "give --rtmp URL, --whip-key KEY or --icecast-source CHANNEL:KEY"
    );
    let mut server = ServerWindow::baseline(run.probe()).await;
    let dur = Duration::from_secs(run.seconds);
    let task = source.start(run.http, dur).await?;
    server.start().await;
    window(dur, "publishing").await;
    let publisher = task.await??;
    Ok(json!({
        "scenario": "publish",
        "publisher": publisher,
        "server": server.finish().await,
    }))
}
