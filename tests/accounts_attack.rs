//! Accounts under attack: waves of 1 000 concurrent logins from one address
//! while a victim channel plays and the victim user signs in from their own
//! address; registration floods. Clients get distinct addresses through
//! `X-Forwarded-For` from loopback, which the server trusts as a proxy.

mod common;

use common::accounts::{behind_proxy, login_from, rss_bytes, signup_from};
use common::victim::Victim;
use common::{password_of, TestServer};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Concurrent logins per wave: the "1 000 concurrent logins".
const WAVE: usize = 1000;
/// How long waves keep coming (inside the victim's window).
const ATTACK: Duration = Duration::from_secs(8);
/// The owner's sign-in must finish within this while the waves run: the
/// attacker's address has at most `HASHES_PER_HOST` hashes in the queue, so
/// the owner waits for a handful of hashes, not for the flood.
const OWNER_BOUND: Duration = Duration::from_secs(2);
/// Memory the flood may add to this process (server, victim viewer and
/// the 1 000 client connections together): the hasher's work areas
/// (`slots x 19 MiB`, preallocated once) plus 96 MiB for connection
/// buffers and allocator slack. Unbounded hashing would need 19 GB for a
/// wave.
fn rss_bound(slots: u64) -> u64 {
    slots * 19 * 1024 * 1024 + 96 * 1024 * 1024
}

/// One login over its own connection: the status, or what became of the
/// connection.
async fn attempt(a: std::net::SocketAddr, ip: &'static str, body: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = match tokio::net::TcpStream::connect(a).await {
        Ok(s) => s,
        Err(e) => return format!("connect: {:?}", e.kind()),
    };
    let req = format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nX-Forwarded-For: {ip}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if let Err(e) = s.write_all(req.as_bytes()).await {
        return format!("write: {:?}", e.kind());
    }
    let mut raw = Vec::new();
    match tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut raw)).await {
        Err(_) => "no answer in 20 s".into(),
        Ok(Err(e)) if raw.is_empty() => format!("read: {:?}", e.kind()),
        _ => String::from_utf8_lossy(&raw)
            .split_whitespace()
            .nth(1)
            .unwrap_or("empty answer")
            .to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_logins_hurt_nobody_else() {
    let srv = TestServer::start_with(behind_proxy).await;
    let a = srv.http;
    let (attacker, owner_ip) = ("203.0.113.66", "198.51.100.77");
    signup_from(a, "198.51.100.10", "target").await;
    signup_from(a, owner_ip, "owner").await;
    let slots = common::metric(a, "onair_password_hash_slots").await as u64;
    let victim = Victim::start(&srv, ATTACK.as_secs() + 4).await;

    // Resident memory, sampled through the attack.
    let before = rss_bytes();
    let peak = Arc::new(AtomicU64::new(before));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // Waves of concurrent logins from one address, one in ten with the
    // right password for `target`.
    let flood = tokio::spawn(async move {
        let started = Instant::now();
        let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
        let mut waves = 0;
        while started.elapsed() < ATTACK {
            let mut tasks = Vec::with_capacity(WAVE);
            for i in 0..WAVE {
                let password = if i % 10 == 0 {
                    password_of("target")
                } else {
                    format!("guess {i}")
                };
                let body = serde_json::json!({"username": "target", "password": password});
                tasks.push(tokio::spawn(attempt(a, attacker, body.to_string())));
            }
            for t in tasks {
                *outcomes.entry(t.await.unwrap()).or_default() += 1;
            }
            waves += 1;
        }
        (waves, outcomes)
    });

    // The owner signs in from their own address, again and again, during
    // the attack.
    let mut owner_times = Vec::new();
    let attack_end = Instant::now() + ATTACK;
    tokio::time::sleep(Duration::from_millis(100)).await;
    while Instant::now() < attack_end {
        let t = Instant::now();
        let r = login_from(a, owner_ip, "owner", &password_of("owner")).await;
        let took = t.elapsed();
        assert_eq!(
            r.status,
            200,
            "the owner signs in during the attack: {}",
            r.text()
        );
        owner_times.push(took);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (waves, outcomes) = flood.await.unwrap();
    stop.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let report = victim.finish().await;

    let hash_peak = common::metric(a, "onair_password_hashes_peak").await as u64;
    let grew = peak.load(Ordering::Relaxed).saturating_sub(before);
    let owner_max = owner_times.iter().max().copied().unwrap_or_default();
    println!(
        "{waves} waves of {WAVE} concurrent logins from one address: {outcomes:?}; \
         owner signed in {} times, slowest {owner_max:?}; hashes at once: peak {hash_peak} of {slots} slots; \
         RSS +{} MiB (bound {} MiB)",
        owner_times.len(),
        grew >> 20,
        rss_bound(slots) >> 20
    );
    report.assert_kept_playing("1000 concurrent logins");
    assert!(waves >= 1);
    for status in outcomes.keys() {
        assert!(
            ["200", "401", "429", "503"].contains(&status.as_str()),
            "unexpected answer {status}: {outcomes:?}"
        );
    }
    let refused =
        outcomes.get("429").copied().unwrap_or(0) + outcomes.get("503").copied().unwrap_or(0);
    assert!(
        refused >= waves * WAVE * 9 / 10,
        "the flood is refused, not queued: {outcomes:?}"
    );
    assert!(!owner_times.is_empty());
    assert!(owner_max <= OWNER_BOUND, "owner waited {owner_max:?}");
    assert!(
        hash_peak >= 1 && hash_peak <= slots,
        "{hash_peak} hashes at once, {slots} slots"
    );
    assert!(grew <= rss_bound(slots), "RSS grew {} MiB", grew >> 20);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_is_rate_limited_per_address() {
    use onair::auth::AccountLimits;
    let srv = TestServer::start_with(behind_proxy).await;
    let a = srv.http;
    let per_hour = AccountLimits::default().register_per_hour as usize;
    let register = |ip: &'static str, name: String| async move {
        let body = serde_json::json!({"username": name, "password": "long enough 1"});
        common::accounts::api_from(a, ip, "POST", "/api/auth/register", &[], Some(&body)).await
    };
    for i in 0..per_hour {
        let r = register("203.0.113.7", format!("bulk{i}")).await;
        assert_eq!(r.status, 201, "{i}: {}", r.text());
    }
    let r = register("203.0.113.7", "bulk-more".into()).await;
    common::assert_error(&r, 429);
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert_eq!(retry, 3600 / per_hour as u64, "one more per {retry} s");
    // Someone else registers as usual.
    let r = register("198.51.100.8", "newcomer".into()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    srv.stop().await;
}
