//! Webhooks against a real HTTP receiver (an axum server on a free port):
//! signatures, the `publish` admission (refusal, timeout either way) over
//! RTMP, WHIP and Icecast, the lifecycle events of a real ffmpeg broadcast,
//! a receiver that is down then up (each event delivered once, also across
//! a restart), and a slow receiver that delays nothing else.

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use common::refusal::whip_offer;
use common::{ffmpeg_publish, get, metric_or_zero, wait_for_live, TestServer};
use onair::hooks::{sign, HookConfig};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One test at a time: each runs ffmpeg and a debug server.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const SECRET: &str = "test-webhook-secret";

/// How the receiver answers `publish`.
#[derive(Clone)]
enum Admit {
    Allow,
    Status403(&'static str),
    JsonDeny(&'static str),
    Hang,
}

/// A request the receiver took, its signature checked.
#[derive(Debug, Clone)]
struct Got {
    event: String,
    body: Value,
    signed: bool,
    at: Instant,
}

struct Receiver {
    admit: Mutex<Admit>,
    /// How long each non-admission request is held before its 200.
    delay: Duration,
    /// An event answered with 400 (a receiver that finds it wrong).
    reject: Mutex<Option<&'static str>>,
    got: Mutex<Vec<Got>>,
}

impl Receiver {
    fn events(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    fn named(&self, event: &str) -> Vec<Got> {
        self.events()
            .into_iter()
            .filter(|g| g.event == event)
            .collect()
    }
}

async fn hook(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> Response {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sig = headers
        .get("onair-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let signed = sign::verify(SECRET.as_bytes(), sig, &body, now).is_ok();
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let event = v["event"].as_str().unwrap_or("").to_string();
    assert_eq!(
        headers.get("onair-event").and_then(|h| h.to_str().ok()),
        Some(event.as_str()),
        "onair-event names the body's event"
    );
    r.got.lock().unwrap().push(Got {
        event: event.clone(),
        body: v,
        signed,
        at: Instant::now(),
    });
    if event == "publish" {
        let admit = r.admit.lock().unwrap().clone();
        return match admit {
            Admit::Allow => StatusCode::NO_CONTENT.into_response(),
            Admit::Status403(why) => {
                (StatusCode::FORBIDDEN, axum::Json(json!({ "reason": why }))).into_response()
            }
            Admit::JsonDeny(why) => {
                axum::Json(json!({ "allow": false, "reason": why })).into_response()
            }
            Admit::Hang => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                StatusCode::NO_CONTENT.into_response()
            }
        };
    }
    tokio::time::sleep(r.delay).await;
    if *r.reject.lock().unwrap() == Some(event.as_str()) {
        return StatusCode::BAD_REQUEST.into_response();
    }
    StatusCode::OK.into_response()
}

/// Starts a receiver on `listener`; returns its state and URL.
fn serve_receiver(listener: TcpListener, admit: Admit, delay: Duration) -> (Arc<Receiver>, String) {
    let addr = listener.local_addr().unwrap();
    let r = Arc::new(Receiver {
        admit: Mutex::new(admit),
        delay,
        reject: Mutex::new(None),
        got: Mutex::new(Vec::new()),
    });
    let app = axum::Router::new()
        .fallback(axum::routing::post(hook))
        .with_state(r.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, format!("http://{addr}/hooks/onair"))
}

async fn receiver(admit: Admit, delay: Duration) -> (Arc<Receiver>, String) {
    serve_receiver(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        admit,
        delay,
    )
}

fn hooks_to(urls: &[&str]) -> HookConfig {
    HookConfig {
        urls: urls.iter().map(|u| u.to_string()).collect(),
        secret: SECRET.as_bytes().to_vec(),
        peak_interval: Duration::from_secs(1),
        public_url: Some("https://tv.example".into()),
        ..HookConfig::default()
    }
}

async fn deliveries(http: SocketAddr, result: &str) -> f64 {
    let series = format!("onair_webhook_deliveries_total{{result=\"{result}\"}}");
    metric_or_zero(http, &series).await
}

async fn admissions(http: SocketAddr, result: &str) -> f64 {
    let series = format!("onair_webhook_admissions_total{{result=\"{result}\"}}");
    metric_or_zero(http, &series).await
}

async fn wait_until(what: &str, limit: Duration, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An FLV reader of `channel` for `secs`: counted as a viewer; returns the
/// bytes it got.
async fn watch_flv(http: SocketAddr, channel: &str, secs: u64) -> usize {
    let mut s = TcpStream::connect(http).await.unwrap();
    let req = format!("GET /flv/{channel}.flv HTTP/1.0\r\nHost: x\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut got = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let end = Instant::now() + Duration::from_secs(secs);
    while let Ok(Ok(n)) = tokio::time::timeout_at(end.into(), s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        got += n;
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_sends_signed_lifecycle_events_in_order() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (rx, url) = receiver(Admit::Allow, Duration::ZERO).await;
    let srv = TestServer::start_with(|c| c.hooks = hooks_to(&[&url])).await;
    let delivered_before = deliveries(srv.http, "delivered").await;
    let mut ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 5);
    wait_for_live(srv.http, "demo").await;
    let seen = watch_flv(srv.http, "demo", 3).await;
    assert!(seen > 10_000, "the FLV viewer got {seen} bytes");
    assert!(ff.wait().await.unwrap().success());
    wait_until("recording.ready", Duration::from_secs(20), || {
        !rx.named("recording.ready").is_empty()
    })
    .await;

    let events = rx.events();
    let names: Vec<&str> = events.iter().map(|g| g.event.as_str()).collect();
    assert!(
        events.iter().all(|g| g.signed),
        "every request verifies: {names:?}"
    );
    let pos = |n: &str| {
        names
            .iter()
            .position(|e| *e == n)
            .unwrap_or_else(|| panic!("{n} in {names:?}"))
    };
    assert!(pos("publish") < pos("publish.started"), "{names:?}");
    assert!(pos("publish.started") < pos("viewer.peak"), "{names:?}");
    assert!(pos("viewer.peak") < pos("publish.ended"), "{names:?}");
    assert!(pos("publish.ended") < pos("recording.ready"), "{names:?}");
    for once in [
        "publish",
        "publish.started",
        "publish.ended",
        "recording.ready",
    ] {
        assert_eq!(
            names.iter().filter(|n| **n == once).count(),
            1,
            "{once} once: {names:?}"
        );
    }
    let ids: std::collections::HashSet<&str> = events
        .iter()
        .map(|g| g.body["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), events.len(), "event ids are unique");

    let admission = &rx.named("publish")[0].body;
    assert_eq!(admission["channel"], "demo");
    assert_eq!(admission["protocol"], "rtmp");
    assert_eq!(admission["remote_addr"], "127.0.0.1");
    let started = &rx.named("publish.started")[0].body;
    let broadcast = started["broadcast"]
        .as_str()
        .expect("a broadcast id")
        .to_string();
    assert_eq!(started["protocol"], "rtmp");
    let peak = &rx.named("viewer.peak")[0].body;
    assert_eq!(peak["viewers"], 1, "{peak}");
    assert_eq!(peak["broadcast"], broadcast.as_str());
    let ended = &rx.named("publish.ended")[0].body;
    assert_eq!(ended["broadcast"], broadcast.as_str());
    assert_eq!(ended["peak_viewers"], 1);
    let ready = &rx.named("recording.ready")[0].body;
    assert_eq!(ready["broadcast"], broadcast.as_str());
    let duration = ready["duration_ms"].as_i64().unwrap();
    assert!((3000..=6500).contains(&duration), "duration {duration} ms");
    assert!(ready["size_bytes"].as_i64().unwrap() > 50_000, "{ready}");
    assert_eq!(
        ready["download_url"],
        format!("https://tv.example/vod/{broadcast}/download.mp4")
    );
    assert_eq!(
        ready["vod_url"],
        format!("https://tv.example/vod/{broadcast}/index.m3u8")
    );
    let download = get(srv.http, &format!("/vod/{broadcast}/download.mp4")).await;
    assert_eq!(download.status, 200, "the announced download exists");
    // Every event but the admission went through the queue (counted once
    // its answer is in).
    let queued = (events.len() - 1) as f64;
    let start = Instant::now();
    while deliveries(srv.http, "delivered").await - delivered_before < queued {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{queued} deliveries counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    srv.stop().await;
}

/// An Icecast source's request head with the channel's key.
async fn icecast_put(addr: SocketAddr, key: &str) -> String {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("source:{key}"));
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT /demo HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Type: audio/mpeg\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_keeps_rtmp_whip_and_icecast_publishers_out() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (rx, url) = receiver(Admit::Status403("channel suspended"), Duration::ZERO).await;
    let srv = TestServer::start_with(|c| c.hooks = hooks_to(&[&url])).await;
    let refused_before = admissions(srv.http, "refused").await;

    let mut ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 5);
    let status = tokio::time::timeout(Duration::from_secs(15), ff.wait())
        .await
        .expect("ffmpeg gives up")
        .unwrap();
    assert!(!status.success(), "ffmpeg was refused");
    let r = whip_offer(srv.http, &srv.key).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("channel suspended"), "{}", r.text());
    let answer = icecast_put(srv.icecast, &srv.key).await;
    assert!(
        answer.starts_with("HTTP/1.1 403") || answer.starts_with("HTTP/1.0 403"),
        "{answer}"
    );
    assert!(answer.contains("channel suspended"), "{answer}");

    // A 2xx that says no is a refusal too.
    *rx.admit.lock().unwrap() = Admit::JsonDeny("over quota");
    let r = whip_offer(srv.http, &srv.key).await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("over quota"), "{}", r.text());

    let protocols: Vec<String> = rx
        .named("publish")
        .iter()
        .map(|g| g.body["protocol"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(protocols, ["rtmp", "whip", "icecast", "whip"]);
    assert!(rx.named("publish.started").is_empty(), "nothing went live");
    assert!(get(srv.http, "/api/channels/demo").await.json()["live"] == false);
    // A wrong key never reaches the hook.
    let r = whip_offer(srv.http, "not-the-key").await;
    assert_eq!(r.status, 401);
    assert_eq!(rx.named("publish").len(), 4);
    assert_eq!(admissions(srv.http, "refused").await - refused_before, 4.0);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_admission_fails_open_or_closed_as_configured() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (rx, url) = receiver(Admit::Hang, Duration::ZERO).await;
    for fail_open in [true, false] {
        let u = url.clone();
        let srv = TestServer::start_with(move |c| {
            c.hooks = HookConfig {
                timeout: Duration::from_millis(500),
                fail_open,
                ..hooks_to(&[&u])
            }
        })
        .await;
        let asked = rx.named("publish").len();
        let result = if fail_open {
            "unanswered_admitted"
        } else {
            "unanswered_refused"
        };
        let before = admissions(srv.http, result).await;
        let r = whip_offer(srv.http, &srv.key).await;
        assert_eq!(rx.named("publish").len(), asked + 1, "the hook was asked");
        if fail_open {
            // Admitted: it gets as far as the SDP, which is not an offer.
            assert_eq!(r.status, 400, "{}", r.text());
            let mut ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 3);
            wait_for_live(srv.http, "demo").await;
            assert!(ff.wait().await.unwrap().success());
        } else {
            assert_eq!(r.status, 403, "{}", r.text());
            let answer = icecast_put(srv.icecast, &srv.key).await;
            assert!(answer.contains(" 403 "), "{answer}");
        }
        assert_eq!(admissions(srv.http, result).await - before, 2.0);
        srv.stop().await;
    }
}

/// A free port with nothing listening on it (yet).
async fn closed_port() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// A receiver that is down while a broadcast happens, and across a
/// restart of the server, gets each event exactly once when it comes up,
/// in the order they happened; one it answers 400 is not sent again.
async fn a_receiver_down_then_up_gets_each_event_once(backend: common::Backend) {
    let _one = ONE_AT_A_TIME.lock().await;
    let reserved = closed_port().await;
    let addr = reserved.local_addr().unwrap();
    drop(reserved);
    let url = format!("http://{addr}/hook");
    let data = tempfile::tempdir().unwrap();
    let db_url = match backend {
        common::Backend::Sqlite => format!("sqlite://{}", data.path().join("db.sqlite").display()),
        common::Backend::Postgres => match common::fresh_postgres_db().await {
            Some(u) => u,
            None => return,
        },
    };
    let config = {
        let (u, d) = (url.clone(), db_url.clone());
        move |c: &mut onair::config::Config| {
            c.database_url = d;
            c.hooks = HookConfig {
                events: vec!["publish.started", "publish.ended", "recording.ready"],
                ..hooks_to(&[&u])
            };
        }
    };
    let srv = TestServer::start_with(config.clone()).await;
    let failed_before = deliveries(srv.http, "failed_attempt").await;
    let mut ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 3);
    wait_for_live(srv.http, "demo").await;
    assert!(ff.wait().await.unwrap().success());
    // All three events queued, and at least one attempt made and failed.
    let db = onair::db::Db::open(&db_url).await.unwrap();
    let start = Instant::now();
    while db.webhook_queued().await.unwrap() < 3
        || deliveries(srv.http, "failed_attempt").await - failed_before < 1.0
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "three events queued and a failed attempt"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    srv.stop().await;
    assert_eq!(
        db.webhook_queued().await.unwrap(),
        3,
        "kept across the stop"
    );

    let srv = TestServer::start_with(config).await;
    let rejected_before = deliveries(srv.http, "rejected").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rx, _) = serve_receiver(
        TcpListener::bind(addr).await.unwrap(),
        Admit::Allow,
        Duration::ZERO,
    );
    *rx.reject.lock().unwrap() = Some("publish.ended");
    wait_until("three deliveries", Duration::from_secs(40), || {
        rx.events().len() >= 3
    })
    .await;
    // Time for any repeat to show up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let names: Vec<String> = rx.events().iter().map(|g| g.event.clone()).collect();
    assert_eq!(
        names,
        ["publish.started", "publish.ended", "recording.ready"]
    );
    assert!(rx.events().iter().all(|g| g.signed));
    assert_eq!(db.webhook_queued().await.unwrap(), 0, "the queue is empty");
    assert_eq!(
        deliveries(srv.http, "rejected").await - rejected_before,
        1.0
    );
    srv.stop().await;
}

/// A server stopped in the middle of a broadcast still queues its end: the
/// receiver hears `publish.ended` and `recording.ready` once, after the
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_cut_by_a_restart_still_reports_its_end() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (rx, url) = receiver(Admit::Allow, Duration::ZERO).await;
    let data = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", data.path().join("db.sqlite").display());
    let config = move |c: &mut onair::config::Config| {
        c.database_url = db_url.clone();
        c.hooks = hooks_to(&[&url]);
    };
    let srv = TestServer::start_with(config.clone()).await;
    let mut ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 30);
    wait_for_live(srv.http, "demo").await;
    wait_until("publish.started", Duration::from_secs(10), || {
        !rx.named("publish.started").is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    srv.stop().await;
    let _ = ff.kill().await;
    let srv = TestServer::start_with(config).await;
    wait_until(
        "recording.ready after the restart",
        Duration::from_secs(20),
        || !rx.named("recording.ready").is_empty(),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = &rx.named("publish.started")[0].body;
    let ended = rx.named("publish.ended");
    assert_eq!(ended.len(), 1, "{:?}", rx.events());
    assert_eq!(ended[0].body["broadcast"], started["broadcast"]);
    let ready = rx.named("recording.ready");
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].body["broadcast"], started["broadcast"]);
    assert!(
        ready[0].body["duration_ms"].as_i64().unwrap() >= 2000,
        "{}",
        ready[0].body
    );
    srv.stop().await;
}

/// The queue itself: bounded per receiver (oldest dropped), due in order,
/// held back behind a failed delivery, emptied of receivers no longer
/// configured.
async fn the_queue_is_bounded_ordered_and_held(backend: common::Backend) {
    let data = tempfile::tempdir().unwrap();
    let url = match backend {
        common::Backend::Sqlite => format!("sqlite://{}", data.path().join("q.sqlite").display()),
        common::Backend::Postgres => match common::fresh_postgres_db().await {
            Some(u) => u,
            None => return,
        },
    };
    let db = onair::db::Db::open(&url).await.unwrap();
    let (a, b) = ("http://a/", "http://b/");
    let mut dropped = Vec::new();
    for id in 1..=5 {
        dropped.push(db.webhook_enqueue(id, a, "e", "{}", 100, 3).await.unwrap());
    }
    assert_eq!(dropped, [0, 0, 0, 1, 1], "past 3 rows the oldest go");
    db.webhook_enqueue(1, b, "e", "{}", 100, 3).await.unwrap();
    let due: Vec<i64> = db
        .webhook_due(a, 100, 10)
        .await
        .unwrap()
        .iter()
        .map(|q| q.id)
        .collect();
    assert_eq!(due, [3, 4, 5]);
    db.webhook_hold(a, 3, 1, 500).await.unwrap();
    assert!(
        db.webhook_due(a, 499, 10).await.unwrap().is_empty(),
        "all held"
    );
    let due = db.webhook_due(a, 500, 10).await.unwrap();
    assert_eq!(
        due.iter().map(|q| (q.id, q.attempts)).collect::<Vec<_>>(),
        [(3, 1), (4, 0), (5, 0)]
    );
    assert_eq!(db.webhook_next_due(a).await.unwrap(), Some(500));
    db.webhook_enqueue(6, a, "e", "{}", 200, 9).await.unwrap();
    let due = db.webhook_due(a, 499, 10).await.unwrap();
    assert!(due.is_empty(), "a new one queues behind the held ones");
    db.webhook_done(6, a).await.unwrap();
    db.webhook_done(3, a).await.unwrap();
    assert_eq!(db.webhook_queued().await.unwrap(), 3);
    assert_eq!(db.webhook_forget_others(&[b.to_string()]).await.unwrap(), 2);
    assert_eq!(db.webhook_queued().await.unwrap(), 1);
    assert_eq!(db.webhook_next_due(a).await.unwrap(), None);
}

mod queue_sqlite {
    #[tokio::test]
    async fn the_queue_is_bounded_ordered_and_held() {
        super::the_queue_is_bounded_ordered_and_held(crate::common::Backend::Sqlite).await
    }
}

mod queue_postgres {
    #[tokio::test]
    async fn the_queue_is_bounded_ordered_and_held() {
        super::the_queue_is_bounded_ordered_and_held(crate::common::Backend::Postgres).await
    }
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_receiver_down_then_up_gets_each_event_once() {
        super::a_receiver_down_then_up_gets_each_event_once(crate::common::Backend::Sqlite).await
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_receiver_down_then_up_gets_each_event_once() {
        super::a_receiver_down_then_up_gets_each_event_once(crate::common::Backend::Postgres).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_delays_nothing_else() {
    let _one = ONE_AT_A_TIME.lock().await;
    let hold = Duration::from_secs(6);
    let (slow, slow_url) = receiver(Admit::Allow, hold).await;
    let (fast, fast_url) = receiver(Admit::Allow, Duration::ZERO).await;
    let srv = TestServer::start_with(|c| c.hooks = hooks_to(&[&slow_url, &fast_url])).await;
    let mut ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 4);
    wait_for_live(srv.http, "demo").await;
    let live_at = Instant::now();
    // A viewer plays the whole time the slow receiver holds its requests.
    let seen = watch_flv(srv.http, "demo", 3).await;
    assert!(seen > 10_000, "the viewer got {seen} bytes");
    assert!(ff.wait().await.unwrap().success());
    wait_until(
        "the fast receiver's recording.ready",
        Duration::from_secs(20),
        || !fast.named("recording.ready").is_empty(),
    )
    .await;
    let ready_at = fast.named("recording.ready")[0].at;
    // The slow one is still on its first events when the fast one has
    // had them all.
    let slow_done = slow
        .events()
        .iter()
        .filter(|g| g.event != "publish" && g.at + hold <= ready_at)
        .count();
    assert!(
        slow_done <= 1,
        "the fast receiver's events waited for the slow one ({slow_done} slow deliveries finished first)"
    );
    assert!(ready_at > live_at);
    // The slow receiver gets everything in the end.
    wait_until(
        "the slow receiver's recording.ready",
        Duration::from_secs(60),
        || !slow.named("recording.ready").is_empty(),
    )
    .await;
    srv.stop().await;
}
