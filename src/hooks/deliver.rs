//! Sending: the admission question, the queue writer and one delivery
//! task per receiver.

use super::{
    sign, unix_ms, Hooks, Pending, MAX_ANSWER_BYTES, MAX_QUEUED_PER_RECEIVER, MAX_REASON_CHARS,
};
use crate::db::Db;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Connecting to a receiver; a receiver that is down fails fast.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One delivery attempt, answer included. A receiver slower than this is
/// treated as down and tried again later.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// The first retry's delay; each later one doubles, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// An event still undelivered this long after it happened is given up on.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// At shutdown, the queue writer waits this long for each further event
/// (streams ending as the server stops) before it exits.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(3);
/// Deliveries read from the queue at a time.
const BATCH: i64 = 32;
/// A receiver with nothing due is checked at least this often (a queue
/// changed by another process sharing the database, or a lost wake-up).
const IDLE_CHECK: Duration = Duration::from_secs(30);

enum Outcome {
    Delivered,
    Rejected(String),
    Retry(String),
}

pub enum Answer {
    Allow,
    Refuse(String),
    Unanswered(String),
}

/// A signed POST of `body`, cut off after `timeout` in all.
async fn post(
    hooks: &Hooks,
    url: &str,
    event: &str,
    id: &str,
    body: &str,
    timeout: Duration,
) -> Result<reqwest::Response, reqwest::Error> {
    let t = (unix_ms() / 1000) as u64;
    hooks
        .client
        .post(url)
        .timeout(timeout)
        .header("content-type", "application/json")
        .header("onair-event", event)
        .header("onair-delivery", id)
        .header(
            "onair-signature",
            sign::signature(&hooks.cfg.secret, t, body.as_bytes()),
        )
        .body(body.to_string())
        .send()
        .await
}

/// The `publish` question to one receiver. A non-2xx answer refuses, as
/// does a 2xx whose JSON says `"allow": false`; anything else in a 2xx
/// admits.
pub async fn ask(hooks: &Hooks, url: &str, id: i64, body: &str, timeout: Duration) -> Answer {
    let id = id.to_string();
    let asked = async {
        let resp = post(hooks, url, "publish", &id, body, timeout).await?;
        let status = resp.status();
        let answer = read_bounded(resp).await?;
        Ok::<_, reqwest::Error>((status, answer))
    };
    let (status, answer) = match tokio::time::timeout(timeout, asked).await {
        Err(_) => return Answer::Unanswered("timed out".into()),
        Ok(Err(e)) if e.is_timeout() => return Answer::Unanswered("timed out".into()),
        Ok(Err(e)) => return Answer::Unanswered(root_cause(&e)),
        Ok(Ok(r)) => r,
    };
    let said = serde_json::from_slice::<serde_json::Value>(&answer).ok();
    let reason = said
        .as_ref()
        .and_then(|v| v["reason"].as_str())
        .map(clean_reason);
    if !status.is_success() {
        return Answer::Refuse(reason.unwrap_or_else(|| format!("refused by webhook ({status})")));
    }
    if said.as_ref().and_then(|v| v["allow"].as_bool()) == Some(false) {
        return Answer::Refuse(reason.unwrap_or_else(|| "refused by webhook".into()));
    }
    Answer::Allow
}

/// At most [`MAX_ANSWER_BYTES`] of a body; the rest is not read.
async fn read_bounded(mut resp: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = MAX_ANSWER_BYTES - out.len();
        out.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
        if out.len() >= MAX_ANSWER_BYTES {
            break;
        }
    }
    Ok(out)
}

/// A reason fit to hand a publisher and a log: one line, bounded.
fn clean_reason(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REASON_CHARS)
        .collect::<String>()
        .trim()
        .to_string()
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Writes events into the queue, one row per receiver that takes them,
/// and wakes those receivers' tasks.
pub async fn store(
    hooks: Arc<Hooks>,
    db: Db,
    mut rx: mpsc::Receiver<Pending>,
    token: CancellationToken,
) {
    loop {
        let p = tokio::select! {
            p = rx.recv() => p,
            // Streams end as the server stops: their last events still go
            // into the queue, to be delivered after the restart.
            _ = token.cancelled() => tokio::time::timeout(SHUTDOWN_DRAIN, rx.recv())
                .await
                .ok()
                .flatten(),
        };
        let Some(p) = p else { return };
        let now = unix_ms();
        for (i, url) in hooks.cfg.urls.iter().enumerate() {
            match db
                .webhook_enqueue(p.id, url, p.event, &p.body, now, MAX_QUEUED_PER_RECEIVER)
                .await
            {
                Ok(0) => {}
                Ok(n) => {
                    for _ in 0..n {
                        crate::metrics::webhook_delivery("dropped_queue_full");
                    }
                    tracing::warn!(url, dropped = n,
                        "webhooks: the receiver's queue is full; its oldest deliveries were dropped");
                }
                Err(e) => {
                    crate::metrics::webhook_delivery("dropped_db_error");
                    tracing::error!(
                        url,
                        event = p.event,
                        "webhooks: cannot queue a delivery: {e}"
                    );
                }
            }
            if let Some(w) = hooks.wake.get(i) {
                w.notify_one();
            }
        }
    }
}

/// Delivers receiver `i`'s queue in the order events happened, one request
/// at a time. A delivery that fails (no answer, 5xx, 408, 429) is retried
/// after its backoff, and the receiver's later events wait with it; one the
/// receiver refuses (any other 4xx) is dropped.
pub async fn deliver(hooks: Arc<Hooks>, db: Db, i: usize, token: CancellationToken) {
    let url = hooks.url(i).to_string();
    loop {
        let due = match db.webhook_due(&url, unix_ms(), BATCH).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(url, "webhooks: cannot read the queue: {e}");
                Vec::new()
            }
        };
        let got = due.len();
        for row in due {
            if token.is_cancelled() {
                return;
            }
            let id = row.id.to_string();
            let sent = tokio::select! {
                r = post(&hooks, &url, &row.event, &id, &row.body, DELIVERY_TIMEOUT) => r,
                _ = token.cancelled() => return,
            };
            let outcome = match sent {
                Ok(r) if r.status().is_success() => Outcome::Delivered,
                // The receiver is up and says this event is wrong: sending
                // it again would get the same answer, and hold back every
                // later event behind it.
                Ok(r)
                    if r.status().is_client_error()
                        && !matches!(r.status().as_u16(), 408 | 429) =>
                {
                    Outcome::Rejected(format!("answered {}", r.status()))
                }
                Ok(r) => Outcome::Retry(format!("answered {}", r.status())),
                Err(e) if e.is_timeout() => Outcome::Retry("timed out".to_string()),
                Err(e) => Outcome::Retry(root_cause(&e)),
            };
            let mut held = false;
            let result = match outcome {
                Outcome::Delivered => {
                    crate::metrics::webhook_delivery("delivered");
                    db.webhook_done(row.id, &url).await
                }
                Outcome::Rejected(why) => {
                    crate::metrics::webhook_delivery("rejected");
                    tracing::error!(
                        url,
                        event = row.event,
                        id,
                        "webhooks: the receiver refused a delivery; not retried: {why}"
                    );
                    db.webhook_done(row.id, &url).await
                }
                Outcome::Retry(why) => {
                    let attempts = row.attempts + 1;
                    let age_ms = unix_ms() - (row.id >> 12);
                    if age_ms > MAX_AGE.as_millis() as i64 {
                        crate::metrics::webhook_delivery("given_up");
                        tracing::error!(
                            url,
                            event = row.event,
                            id,
                            attempts,
                            "webhooks: giving up on a delivery after a day: {why}"
                        );
                        db.webhook_done(row.id, &url).await
                    } else {
                        crate::metrics::webhook_delivery("failed_attempt");
                        let wait = backoff(attempts);
                        tracing::warn!(
                            url,
                            event = row.event,
                            id,
                            attempts,
                            retry_in_s = wait.as_secs(),
                            "webhooks: delivery failed: {why}"
                        );
                        // Everything after it waits as long, so events
                        // still arrive in the order they happened.
                        held = true;
                        db.webhook_hold(&url, row.id, attempts, unix_ms() + wait.as_millis() as i64)
                            .await
                    }
                }
            };
            if let Err(e) = result {
                tracing::error!(url, "webhooks: cannot update the queue: {e}");
            }
            if held {
                break;
            }
        }
        if got as i64 == BATCH {
            continue;
        }
        let next = db.webhook_next_due(&url).await.ok().flatten();
        let wait = next
            .map(|t| Duration::from_millis((t - unix_ms()).max(0) as u64))
            .unwrap_or(IDLE_CHECK)
            .min(IDLE_CHECK);
        let Some(wake) = hooks.wake.get(i) else {
            return;
        };
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = token.cancelled() => return,
        }
    }
}

/// The wait before attempt `attempts + 1`.
pub fn backoff(attempts: i64) -> Duration {
    let doublings = (attempts - 1).clamp(0, 20) as u32;
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_second_to_five_minutes() {
        let waits: Vec<u64> = (1..=11).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff(i64::MAX), MAX_BACKOFF);
    }

    #[test]
    fn reasons_are_one_bounded_line() {
        assert_eq!(clean_reason("no\nthanks\r\n"), "no thanks");
        assert_eq!(clean_reason(&"x".repeat(1000)).len(), MAX_REASON_CHARS);
    }
}
