//! `onair-loadtest soak`: one bounded run of everything at once, for
//! minutes to hours. Publishers (RTMP and WHIP, stopping and restarting so
//! recordings start and end during the run), WebRTC viewers that come and
//! go, LL-HLS viewers, chat writers and a spammer, and the attacks of
//! [`attacks`] in rotation; a victim channel with a decoding WebRTC
//! viewer; and a sample of the server's memory, descriptors, forwarding
//! latency, panics and limits every `--sample-secs` ([`sample`]).
//!
//! The tool makes its own accounts and channels through the public API,
//! each from its own loopback address, so it needs nothing but a server
//! with its default limits.

pub mod attacks;
mod report;
pub mod sample;

pub use report::print_summary;
use report::{fmt, AttackLog, Tally};

use crate::http::try_http_from;
use attacks::{Attack, Target};
use clap::Args;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Caps so a typo cannot turn a soak into a flood (see `cli::MAX_*`).
pub const MAX_MINUTES: f64 = 24.0 * 60.0;
pub const MAX_PUBLISHERS: usize = 16;
pub const MAX_VIEWERS: usize = 500;
pub const MAX_CHAT_CLIENTS: usize = 60;
/// After an attack, samples count as calm (between attacks) once this has
/// passed: slowloris sockets the attacker dropped are gone by then.
const CALM_AFTER: Duration = Duration::from_secs(3);
/// A restarting publisher's pause between broadcasts.
const PUBLISH_GAP: Duration = Duration::from_secs(5);
/// The file descriptors the tool asks for: a flood of 300, 100 slowloris
/// sockets, viewers and publishers, with room to spare.
const WANT_NOFILE: u64 = 8192;

#[derive(Args, Clone, Debug)]
pub struct SoakArgs {
    /// The server's HTTP address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// The server's RTMP address.
    #[arg(long, default_value = "127.0.0.1:1935")]
    pub rtmp: SocketAddr,
    /// How long the run lasts.
    #[arg(long, default_value_t = 30.0)]
    pub minutes: f64,
    /// The start of the run the verdict leaves out: caches, the LL-HLS
    /// window and recordings fill up first. At most a sixth of the run.
    #[arg(long, default_value_t = 5.0)]
    pub warmup_minutes: f64,
    #[arg(long, default_value_t = 10)]
    pub sample_secs: u64,
    /// The server's PID: RSS and descriptors from /proc (else /metrics).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Write one JSON line per sample here.
    #[arg(long)]
    pub timeline: Option<PathBuf>,
    /// Write the summary here as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// RTMP publishers, each on its own channel, restarting now and then.
    #[arg(long, default_value_t = 2)]
    pub rtmp_publishers: usize,
    /// WHIP publishers, likewise.
    #[arg(long, default_value_t = 2)]
    pub whip_publishers: usize,
    /// How long a publisher stays on the air before it restarts (each
    /// broadcast lasts 50-150 % of it).
    #[arg(long, default_value_t = 90)]
    pub publish_secs: u64,
    /// WebRTC viewers at once (besides the victim), each watching a random
    /// channel for 20-90 s, then another.
    #[arg(long, default_value_t = 6)]
    pub webrtc_viewers: usize,
    /// LL-HLS viewers at once, each for 30-120 s, then another.
    #[arg(long, default_value_t = 3)]
    pub hls_viewers: usize,
    /// Chat clients in the victim's room (some of them writers).
    #[arg(long, default_value_t = 12)]
    pub chat_clients: usize,
    /// Chat messages a second over all writers (under their rate limit).
    #[arg(long, default_value_t = 3.0)]
    pub chat_rate: f64,
    /// Pattern size of every publisher, WIDTHxHEIGHT.
    #[arg(long, default_value = "640x360")]
    pub size: String,
    #[arg(long, default_value_t = 600)]
    pub kbps: u32,
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// Each attack's time.
    #[arg(long, default_value_t = 15)]
    pub attack_secs: u64,
    /// Quiet time between attacks (with the default 15 s attacks: one
    /// attack begins every 20 s).
    #[arg(long, default_value_t = 5)]
    pub rest_secs: u64,
    /// The attacks to rotate through (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub attacks: Vec<Attack>,
    /// The server's TURN relay, for the TURN attack.
    #[arg(long)]
    pub turn: Option<SocketAddr>,
    #[arg(long)]
    pub turn_secret: Option<String>,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
}

impl SoakArgs {
    fn check(&self) -> anyhow::Result<()> {
        for a in [Some(self.http), Some(self.rtmp), self.turn]
            .into_iter()
            .flatten()
        {
            anyhow::ensure!(a.ip().is_loopback(), "load goes to loopback only");
        }
        anyhow::ensure!(
            self.minutes > 0.0 && self.minutes <= MAX_MINUTES,
            "--minutes must be in (0, {MAX_MINUTES}]"
        );
        anyhow::ensure!(
            self.rtmp_publishers + self.whip_publishers <= MAX_PUBLISHERS
                && self.webrtc_viewers + self.hls_viewers <= MAX_VIEWERS
                && self.chat_clients <= MAX_CHAT_CLIENTS,
            "at most {MAX_PUBLISHERS} publishers, {MAX_VIEWERS} viewers, {MAX_CHAT_CLIENTS} chat clients"
        );
        anyhow::ensure!(
            self.chat_rate > 0.0 && self.chat_rate <= crate::cli::MAX_CHAT_RATE,
            "--chat-rate out of range"
        );
        anyhow::ensure!(self.sample_secs >= 1 && self.attack_secs >= 1, "zero times");
        anyhow::ensure!(
            self.turn.is_some() == self.turn_secret.is_some(),
            "--turn and --turn-secret go together"
        );
        Ok(())
    }
}

/// Raises this process's open-file limit towards [`WANT_NOFILE`] (within
/// the hard limit); returns the soft limit now in force.
fn raise_nofile() -> u64 {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
            return 0;
        }
        if l.rlim_cur < WANT_NOFILE {
            let want = l.rlim_max.min(WANT_NOFILE);
            let n = libc::rlimit {
                rlim_cur: want,
                rlim_max: l.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &n) == 0 {
                l.rlim_cur = want;
            }
        }
    }
    l.rlim_cur
}

/// A small xorshift, seeded from the clock: jitter, not secrets.
struct Rng(u64);

impl Rng {
    fn new(salt: u64) -> Rng {
        Rng((crate::stamp::now_us() ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in `lo..=hi` seconds.
    fn secs(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_secs(lo + self.next() % (hi - lo + 1).max(1))
    }
}

/// Loopback addresses of the load's own clients, by role: 127.2.0.0/16
/// for account set-up (the server allows 20 registrations an hour per
/// address), 127.3.0.1 for the login-spray victim's owner, 127.4.0.0/16
/// for WebRTC viewers (127.4.0.1 is the victim's), 127.5.0.0/16 for chat
/// clients. Attackers use 127.10.0.0 and up ([`attacks`]).
fn setup_addr(i: usize) -> IpAddr {
    role_addr(2, i)
}
const OWNER_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 3, 0, 1));
const VIEWER_BLOCK: u8 = 4;
const CHAT_BLOCK: u8 = 5;

/// The `i`th address of the block 127.`block`.0.0/16.
fn role_addr(block: u8, i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        block,
        (i / 200) as u8,
        1 + (i % 200) as u8,
    ))
}

/// One account: its name (also its channel's), password and token.
struct Account {
    name: String,
    password: String,
    token: String,
}

async fn account(http: SocketAddr, from: IpAddr, name: String) -> anyhow::Result<Account> {
    let password = format!("pw-{name}-soak");
    let body = json!({"username": name, "password": password}).to_string();
    let json_ct = [("Content-Type", "application/json")];
    let r = try_http_from(
        Some(from),
        http,
        "POST",
        "/api/auth/register",
        &json_ct,
        body.as_bytes(),
    )
    .await?;
    anyhow::ensure!(
        r.status == 201,
        "register {name}: {} {}",
        r.status,
        r.text()
    );
    let r = try_http_from(
        Some(from),
        http,
        "POST",
        "/api/auth/login",
        &json_ct,
        body.as_bytes(),
    )
    .await?;
    anyhow::ensure!(r.status == 200, "login {name}: {} {}", r.status, r.text());
    let v: Value = serde_json::from_slice(&r.body)?;
    let token = v["token"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("login answer has no token"))?
        .to_string();
    Ok(Account {
        name,
        password,
        token,
    })
}

async fn stream_key(http: SocketAddr, a: &Account) -> anyhow::Result<String> {
    let auth = format!("Bearer {}", a.token);
    let r = try_http_from(
        None,
        http,
        "GET",
        &format!("/api/channels/{}/key", a.name),
        &[("Authorization", &auth)],
        b"",
    )
    .await?;
    anyhow::ensure!(
        r.status == 200,
        "key of {}: {} {}",
        a.name,
        r.status,
        r.text()
    );
    let v: Value = serde_json::from_slice(&r.body)?;
    v["stream_key"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("no stream_key"))
}

/// The attack running now, when the last one ended, and how many have
/// run and failed on the attacker's side (an error, a panic, an overrun).
#[derive(Default)]
struct AttackState {
    now: Option<&'static str>,
    ended: Option<Instant>,
    runs: u64,
    errors: u64,
}

/// Whether an attack's result says the attacker itself failed.
fn attacker_failed(result: &Value) -> bool {
    !result["error"].is_null() || result["errors"].as_array().is_some_and(|e| !e.is_empty())
}

pub async fn run(args: &SoakArgs) -> anyhow::Result<Value> {
    args.check()?;
    let nofile = raise_nofile();
    let say = |m: String| {
        if !args.quiet {
            eprintln!("soak: {m}");
        }
    };
    let attacks: Vec<Attack> = if args.attacks.is_empty() {
        Attack::ALL
            .into_iter()
            .filter(|a| *a != Attack::TurnForbidden || args.turn.is_some())
            .collect()
    } else {
        args.attacks.clone()
    };
    let http = args.http;
    let run_id = format!("{:06x}", crate::stamp::now_us() & 0xff_ffff);
    say(format!(
        "run {run_id}: creating accounts (fd limit {nofile})"
    ));
    let writers = crate::chat::writers_for(args.chat_rate, args.chat_clients.max(1));
    let publishers = args.rtmp_publishers + args.whip_publishers;
    let mut names: Vec<String> = (0..publishers).map(|i| format!("s{run_id}p{i}")).collect();
    names.extend(["v", "a", "spam", "flood", "owner"].map(|r| format!("s{run_id}{r}")));
    names.extend((0..writers).map(|i| format!("s{run_id}w{i}")));
    let mut accounts = Vec::with_capacity(names.len());
    for (i, n) in names.into_iter().enumerate() {
        accounts.push(account(http, setup_addr(i), n).await?);
    }
    let mut keys = Vec::with_capacity(publishers + 2);
    for a in &accounts[..publishers + 2] {
        keys.push(stream_key(http, a).await?);
    }
    let victim_channel = accounts[publishers].name.clone();
    let o = crate::pattern::PatternOptions {
        width: 0,
        height: 0,
        fps: args.fps,
        kbps: args.kbps,
        frames: args.fps as usize * 2,
    };
    let (w, h) = crate::cli::SourceArgs {
        size: args.size.clone(),
        ..Default::default()
    }
    .dimensions()?;
    let o = crate::pattern::PatternOptions {
        width: w,
        height: h,
        ..o
    };
    let frames = Arc::new(tokio::task::spawn_blocking(move || crate::pattern::encode(&o)).await??);
    let video: Arc<Vec<bytes::Bytes>> = Arc::new(
        frames
            .iter()
            .map(|f| bytes::Bytes::from(f.annexb.clone()))
            .collect(),
    );

    let started = Instant::now();
    let total = Duration::from_secs_f64(args.minutes * 60.0);
    let end = started + total;
    let tally = Arc::new(Tally::default());
    let mut tasks: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    let rtmp_url = |key: &str| format!("rtmp://{}/live/{key}", args.rtmp);

    // The victim: an RTMP publisher for the whole run and a viewer that
    // decodes every frame.
    say(format!("victim channel {victim_channel}"));
    {
        let (url, frames, fps) = (rtmp_url(&keys[publishers]), frames.clone(), args.fps);
        let tally = tally.clone();
        tasks.push(tokio::spawn(async move {
            let dur = end.saturating_duration_since(Instant::now()) + Duration::from_secs(3);
            tally.broadcasts_started.fetch_add(1, Ordering::Relaxed);
            match crate::rtmp::publish(&url, &frames, fps, dur).await {
                Ok(_) => tally.broadcasts_ended.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    tally.error("victim publisher", e);
                    tally.publish_errors.fetch_add(1, Ordering::Relaxed)
                }
            };
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let live = Arc::new(crate::whep::Live::default());
    let victim_viewer = {
        let (live, ch) = (live.clone(), victim_channel.clone());
        tokio::spawn(async move {
            let opts = crate::whep::ViewerOptions {
                record: false,
                bind: role_addr(VIEWER_BLOCK, 0),
                decode: Some((
                    crate::decode::Rotation {
                        start: Instant::now(),
                        viewers: 1,
                    },
                    0,
                )),
                live: Some(live),
                ..Default::default()
            };
            crate::whep::watch(
                http,
                &ch,
                end.saturating_duration_since(Instant::now()),
                opts,
            )
            .await
        })
    };

    // Publishers that stop and restart: each broadcast is a recording.
    let channels: Vec<String> = accounts[..publishers]
        .iter()
        .map(|a| a.name.clone())
        .collect();
    for (i, key) in keys[..publishers].iter().enumerate() {
        let rtmp = (i < args.rtmp_publishers).then(|| rtmp_url(key));
        let key = key.clone();
        let (frames, video, tally) = (frames.clone(), video.clone(), tally.clone());
        let (fps, base) = (args.fps, args.publish_secs.max(4));
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(i as u64);
            // Staggered, so restarts do not line up.
            tokio::time::sleep(Duration::from_millis(700 * i as u64)).await;
            while Instant::now() + Duration::from_secs(2) < end {
                let left = end.saturating_duration_since(Instant::now());
                let dur = rng.secs(base / 2, base * 3 / 2).min(left);
                tally.broadcasts_started.fetch_add(1, Ordering::Relaxed);
                let r = match &rtmp {
                    Some(url) => crate::rtmp::publish(url, &frames, fps, dur).await.map(drop),
                    None => crate::whip::publish(
                        http,
                        crate::whip::PublishOptions {
                            key: key.clone(),
                            video: video.to_vec(),
                            fps,
                            audio: Vec::new(),
                            duration: dur,
                            stamp: true,
                            raw: None,
                            on_session: None,
                        },
                    )
                    .await
                    .and_then(|p| {
                        anyhow::ensure!(p.status == 201, "WHIP {}: {}", p.status, p.error);
                        Ok(())
                    }),
                };
                match r {
                    Ok(()) => tally.broadcasts_ended.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        tally.error("publisher", e);
                        tally.publish_errors.fetch_add(1, Ordering::Relaxed)
                    }
                };
                tokio::time::sleep(PUBLISH_GAP.min(end.saturating_duration_since(Instant::now())))
                    .await;
            }
        }));
    }
    // WHIP channels first: viewer `i` starts on channel `i`, so a few
    // viewers cover them, and only WHIP packets feed the forwarding
    // latency histogram.
    let mut watched = channels[args.rtmp_publishers..].to_vec();
    watched.extend_from_slice(&channels[..args.rtmp_publishers]);
    watched.push(victim_channel.clone());

    // WebRTC viewers that come and go.
    for i in 0..args.webrtc_viewers {
        let (watched, tally) = (watched.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(100 + i as u64);
            tokio::time::sleep(Duration::from_millis(300 * i as u64 + 3000)).await;
            let mut turn = i;
            while Instant::now() + Duration::from_secs(5) < end {
                // Every channel in turn, each viewer from another one.
                let ch = &watched[turn % watched.len()];
                turn += 1;
                let dur = rng
                    .secs(20, 90)
                    .min(end.saturating_duration_since(Instant::now()));
                let opts = crate::whep::ViewerOptions {
                    record: false,
                    audio: false,
                    bind: role_addr(VIEWER_BLOCK, 1 + i),
                    ..Default::default()
                };
                tally.webrtc_sessions.fetch_add(1, Ordering::Relaxed);
                match crate::whep::watch(http, ch, dur, opts).await {
                    Ok(r) if r.first_video_after.is_some() => {
                        tally.webrtc_with_video.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tally.error("WebRTC viewer", e);
                        tally.webrtc_errors.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }));
    }

    // LL-HLS viewers, likewise.
    for i in 0..args.hls_viewers {
        let (watched, tally) = (watched.clone(), tally.clone());
        let run_id = run_id.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(200 + i as u64);
            tokio::time::sleep(Duration::from_millis(500 * i as u64 + 5000)).await;
            let mut n = 0;
            while Instant::now() + Duration::from_secs(5) < end {
                n += 1;
                let ch = &watched[rng.next() as usize % watched.len()];
                let dur = rng
                    .secs(30, 120)
                    .min(end.saturating_duration_since(Instant::now()));
                let ua = format!("onair-soak/{run_id}/{i}/{n}");
                let playlist = format!("/hls/{ch}/index.m3u8");
                let r = crate::hls::watch(http, &playlist, dur, ua, None).await;
                tally.hls_sessions.fetch_add(1, Ordering::Relaxed);
                tally
                    .hls_with_parts
                    .fetch_add(u64::from(r.parts > 0), Ordering::Relaxed);
                tally.hls_errors.fetch_add(r.errors, Ordering::Relaxed);
                if let Some(e) = &r.first_error {
                    tally.hls_error(e);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }));
    }

    // Chat in the victim's room: writers under their limit, silent
    // readers, and a spammer over it.
    let chat_run = crate::stamp::now_us();
    let writer_accounts = &accounts[publishers + 5..];
    let every = Duration::from_secs_f64(writers as f64 / args.chat_rate);
    for i in 0..args.chat_clients {
        let token = writer_accounts.get(i).map(|a| a.token.clone());
        let (ch, tally) = (victim_channel.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            let from = Some(role_addr(CHAT_BLOCK, i));
            let r = crate::chat::client(http, from, &ch, token, every, chat_run, end).await;
            tally.chat_sent.fetch_add(r.sent, Ordering::Relaxed);
            tally.chat_received.fetch_add(r.received, Ordering::Relaxed);
            tally.chat_rejected.fetch_add(r.rejected, Ordering::Relaxed);
            if let Some(e) = r.error {
                tally.error("chat client", e);
            }
        }));
    }
    {
        let token = accounts[publishers + 2].token.clone();
        let (ch, tally) = (victim_channel.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            // Five a second: over the one a second (burst of 5) a user gets.
            let from = Some(role_addr(CHAT_BLOCK, MAX_CHAT_CLIENTS));
            let r = crate::chat::client(
                http,
                from,
                &ch,
                Some(token),
                Duration::from_millis(200),
                chat_run ^ 1,
                end,
            )
            .await;
            tally.spam_sent.fetch_add(r.sent, Ordering::Relaxed);
            tally.spam_rejected.fetch_add(r.rejected, Ordering::Relaxed);
        }));
    }

    // The attacks, one at a time.
    let state = Arc::new(Mutex::new(AttackState::default()));
    let logs: Arc<Mutex<BTreeMap<&'static str, AttackLog>>> = Arc::default();
    let target = Target {
        http,
        rtmp: args.rtmp,
        attacker_key: keys[publishers + 1].clone(),
        victim_channel: victim_channel.clone(),
        owner: (
            accounts[publishers + 4].name.clone(),
            accounts[publishers + 4].password.clone(),
        ),
        owner_from: OWNER_ADDR,
        flooder_token: accounts[publishers + 3].token.clone(),
        turn: args.turn.zip(args.turn_secret.clone()),
    };
    let attacker = {
        let (state, logs, live) = (state.clone(), logs.clone(), live.clone());
        let (attack_secs, rest) = (args.attack_secs, Duration::from_secs(args.rest_secs));
        let quiet = args.quiet;
        tokio::spawn(async move {
            // Let the crowd gather first.
            tokio::time::sleep(Duration::from_secs(10).min(total / 4)).await;
            let mut i = 0;
            while !attacks.is_empty() && Instant::now() + Duration::from_secs(attack_secs) < end {
                let a = attacks[i % attacks.len()];
                i += 1;
                lock(&state).now = Some(a.name());
                let (f0, e0) = (
                    live.decoded.load(Ordering::Relaxed),
                    live.decode_errors.load(Ordering::Relaxed),
                );
                let t0 = Instant::now();
                let _ = live.take_gap(t0, 1);
                // Each attack bounds itself; the timeout bounds a stuck
                // one, and its own task keeps a panic in it from ending
                // the rotation.
                let dur = Duration::from_secs(attack_secs);
                let t = target.clone();
                let mut task = tokio::spawn(async move { attacks::run(a, &t, dur).await });
                let result = match tokio::time::timeout(
                    dur * 2 + Duration::from_secs(10),
                    &mut task,
                )
                .await
                {
                    Ok(Ok(v)) => v,
                    Ok(Err(e)) => json!({"error": format!("attacker failed: {e}")}),
                    Err(_) => {
                        task.abort();
                        json!({"error": "attack overran its time"})
                    }
                };
                let secs = t0.elapsed().as_secs_f64();
                let gap = live
                    .take_gap(Instant::now(), 1)
                    .map_or(0, |g| g.as_millis() as u64);
                {
                    let mut s = lock(&state);
                    s.now = None;
                    s.ended = Some(Instant::now());
                    s.runs += 1;
                    s.errors += u64::from(attacker_failed(&result));
                }
                if !quiet {
                    eprintln!("soak: attack {} done: {result}", a.name());
                }
                {
                    let mut logs = lock(&logs);
                    let log = logs.entry(a.name()).or_default();
                    log.runs += 1;
                    if log.runs == 1 {
                        log.first = result.clone();
                    }
                    log.last = result;
                    log.victim_frames += live.decoded.load(Ordering::Relaxed).saturating_sub(f0);
                    log.victim_errors += live
                        .decode_errors
                        .load(Ordering::Relaxed)
                        .saturating_sub(e0);
                    log.victim_secs += secs;
                    log.victim_longest_gap_ms = log.victim_longest_gap_ms.max(gap);
                }
                tokio::time::sleep(rest).await;
            }
        })
    };

    // The samples.
    let mut sampler = sample::Sampler::new(http, args.pid, started);
    let mut timeline = match &args.timeline {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p)?)),
        None => None,
    };
    let every = Duration::from_secs(args.sample_secs);
    let mut next = tokio::time::Instant::from(started);
    loop {
        let (attack, calm, counts) = {
            let s = lock(&state);
            let calm = s.now.is_none() && s.ended.is_none_or(|e| e.elapsed() >= CALM_AFTER);
            (s.now, calm, (s.runs, s.errors))
        };
        let row = sampler.sample(&live, attack, calm, counts).await;
        if let Some(t) = timeline.as_mut() {
            writeln!(t, "{row}")?;
            t.flush()?;
        }
        say(format!(
            "t={}s rss={} MiB fds={} fwd p99={} ms panics={} victim gap={} ms attack={}",
            row["t"],
            fmt(&row["rss_mib"]),
            row["fds"],
            fmt(&row["fwd_p99_ms"]),
            row["panics"],
            row["victim_gap_ms"],
            row["attack"]
        ));
        next += every;
        if next > tokio::time::Instant::from(end) {
            break;
        }
        tokio::time::sleep_until(next).await;
    }
    tokio::time::sleep_until(end.into()).await;
    // One last sample at the end, when everything has left.
    let counts = {
        let s = lock(&state);
        (s.runs, s.errors)
    };
    let last = sampler.sample(&live, None, true, counts).await;
    if let Some(t) = timeline.as_mut() {
        writeln!(t, "{last}")?;
        t.flush()?;
    }

    say("waiting for the clients to leave".into());
    let _ = tokio::time::timeout(Duration::from_secs(60), attacker).await;
    for t in tasks {
        // Every client ends by `end`; a publisher may take a few seconds
        // to say goodbye.
        if tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .is_err()
        {
            tally.error("shutdown", "a client outlived the run");
        }
    }
    let victim = tokio::time::timeout(Duration::from_secs(30), victim_viewer).await;
    let victim_error = match victim {
        Ok(Ok(Ok(_))) => None,
        Ok(Ok(Err(e))) => Some(e.to_string()),
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("the victim viewer outlived the run".into()),
    };

    let warmup = (args.warmup_minutes * 60.0).min(total.as_secs_f64() / 6.0);
    let mut summary = sample::summarize(&sampler.rows, warmup, sampler.first_panics());
    let (f50, f99, fcount) = sampler.run_latency();
    let attacks_json = report::attacks(&lock(&logs));
    if let Some(o) = summary.as_object_mut() {
        o.insert("scenario".into(), "soak".into());
        o.insert("run".into(), run_id.clone().into());
        o.insert("minutes".into(), args.minutes.into());
        o.insert("victim_channel".into(), victim_channel.into());
        o.insert("victim_error".into(), victim_error.clone().into());
        o.insert("fwd_p50_ms".into(), f50.into());
        o.insert("fwd_p99_ms".into(), f99.into());
        o.insert("fwd_packets".into(), fcount.into());
        o.insert("load".into(), report::load(&tally));
        o.insert("attacks".into(), attacks_json);
        let s = lock(&state);
        o.insert("attacks_run".into(), s.runs.into());
        o.insert("attack_errors".into(), s.errors.into());
        if victim_error.is_some() {
            o["verdict"]["victim_kept_playing"] = false.into();
        }
    }
    Ok(summary)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
