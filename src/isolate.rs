//! Fault isolation: a panic while serving one peer, publisher or connection
//! ends that one only. It is logged once, with who it was, and counted in
//! `onair_isolated_panics_total{component}`.
//!
//! - [`catch`] runs a synchronous step (one peer's turn in the WebRTC
//!   driver) and turns a panic into `None`.
//! - [`task`] does the same for a whole future (one RTMP connection).
//! - [`Engines`] and [`supervise`]: the long-lived tasks everything depends
//!   on. One that dies is restarted after a pause, and `/healthz` answers
//!   503 until it is back; one that keeps dying ends the process with an
//!   error, for its supervisor (systemd, docker) to restart. Never "up but
//!   dead".
//!
//! While a guarded step runs, the panic hook stashes the message instead of
//! printing it, so the one log line can carry both the message and who it
//! concerned.

use std::cell::{Cell, RefCell};
use std::fmt::Display;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex, Once};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

thread_local! {
    static GUARDED: Cell<u32> = const { Cell::new(0) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Routes panics inside [`catch`] and [`task`] to their caller's log line;
/// every other panic is reported as before. Idempotent.
pub fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) > 0 {
                let msg = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".into());
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{msg}{at}")));
            } else {
                default(info);
            }
        }));
    });
}

fn guarded<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    GUARDED.with(|g| g.set(g.get() + 1));
    let r = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(g.get() - 1));
    r
}

fn report(component: &'static str, who: &dyn Display) {
    let what = LAST_PANIC
        .with(|p| p.borrow_mut().take())
        .unwrap_or_else(|| "(message not captured)".into());
    crate::metrics::isolated_panic(component);
    tracing::error!(component, who = %who, "panic: {what}; only this one was dropped");
}

/// Runs `f`; a panic inside it is logged and counted, and gives `None`.
/// The caller drops whatever `f` was serving: its state may be broken.
pub fn catch<R>(component: &'static str, who: &dyn Display, f: impl FnOnce() -> R) -> Option<R> {
    match guarded(f) {
        Ok(r) => Some(r),
        Err(_) => {
            report(component, who);
            None
        }
    }
}

/// `fut`, with a panic in any poll logged, counted and turned into `None`.
/// The future is dropped at the panic.
pub fn task<F: Future>(
    component: &'static str,
    who: impl Display,
    fut: F,
) -> impl Future<Output = Option<F::Output>> {
    Isolated {
        component,
        who,
        fut: Some(Box::pin(fut)),
    }
}

struct Isolated<F, W> {
    component: &'static str,
    who: W,
    fut: Option<Pin<Box<F>>>,
}

// Nothing is pinned in place: the future is boxed.
impl<F, W> Unpin for Isolated<F, W> {}

impl<F: Future, W: Display> Future for Isolated<F, W> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(fut) = this.fut.as_mut() else {
            return Poll::Ready(None);
        };
        match guarded(|| fut.as_mut().poll(cx)) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => {
                this.fut = None;
                Poll::Ready(Some(v))
            }
            Err(_) => {
                // Dropping a future whose poll panicked may panic again.
                let fut = this.fut.take();
                let _ = guarded(move || drop(fut));
                report(this.component, &this.who);
                Poll::Ready(None)
            }
        }
    }
}

/// A restarted engine that dies again this many times within
/// [`RESTART_WINDOW`] is not going to recover by itself.
pub const MAX_RESTARTS: usize = 5;
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);
/// Pause before a restart: whatever broke it gets a moment to clear, and a
/// crash loop cannot take a whole core.
const RESTART_PAUSE: Duration = Duration::from_millis(200);

/// The long-lived tasks of one server, and whether each is running.
#[derive(Default)]
pub struct Engines {
    state: Mutex<EngineState>,
}

#[derive(Default)]
struct EngineState {
    down: Vec<&'static str>,
    fatal: Option<String>,
}

impl Engines {
    pub fn new() -> Arc<Engines> {
        Arc::default()
    }

    /// Engines not running now; empty when the server is healthy.
    pub fn down(&self) -> Vec<&'static str> {
        self.lock().down.clone()
    }

    /// Set when an engine gave up: the process must exit with it.
    pub fn fatal(&self) -> Option<String> {
        self.lock().fatal.clone()
    }

    pub fn set_down(&self, name: &'static str, down: bool) {
        let mut s = self.lock();
        s.down.retain(|n| *n != name);
        if down {
            s.down.push(name);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, EngineState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs the engine `name`, made anew by `start` after each panic, until it
/// returns or `shutdown` fires. After [`MAX_RESTARTS`] deaths within
/// [`RESTART_WINDOW`] it stays down, the engine is marked fatal and
/// `shutdown` is cancelled, so the process stops with an error.
pub async fn supervise<F, Fut>(
    engines: Arc<Engines>,
    name: &'static str,
    shutdown: tokio_util::sync::CancellationToken,
    mut start: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut deaths: Vec<Instant> = Vec::new();
    loop {
        if task(name, "engine", start()).await.is_some() || shutdown.is_cancelled() {
            return;
        }
        engines.set_down(name, true);
        let now = Instant::now();
        deaths.retain(|t| now.duration_since(*t) < RESTART_WINDOW);
        deaths.push(now);
        if deaths.len() > MAX_RESTARTS {
            let why = format!(
                "the {name} engine died {} times within {RESTART_WINDOW:?}; stopping",
                deaths.len()
            );
            tracing::error!("{why}");
            engines.lock().fatal = Some(why);
            shutdown.cancel();
            return;
        }
        tracing::warn!(engine = name, "restarting the {name} engine after a panic");
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(RESTART_PAUSE) => {}
        }
        engines.set_down(name, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_a_step_is_contained_and_counted() {
        install_hook();
        let before = crate::metrics::isolated_panics("test-step");
        assert_eq!(catch("test-step", &"peer 7", || 5), Some(5));
        let r: Option<()> = catch("test-step", &"peer 8", || panic!("boom"));
        assert_eq!(r, None);
        assert_eq!(crate::metrics::isolated_panics("test-step"), before + 1);
        // The stash is consumed: the next report does not reuse it.
        assert!(LAST_PANIC.with(|p| p.borrow().is_none()));
    }

    #[tokio::test]
    async fn a_panicking_task_ends_alone() {
        install_hook();
        let ok = task("test-task", "conn 1", async { 3 }).await;
        assert_eq!(ok, Some(3));
        let bad = task("test-task", "conn 2", async {
            tokio::task::yield_now().await;
            panic!("bad bytes");
        })
        .await;
        assert_eq!(bad, None::<()>);
    }

    #[tokio::test]
    async fn an_engine_is_restarted_then_given_up_on() {
        install_hook();
        let engines = Engines::new();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let r = runs.clone();
        supervise(
            engines.clone(),
            "test-engine",
            shutdown.clone(),
            move || {
                let r = r.clone();
                async move {
                    r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    panic!("always");
                }
            },
        )
        .await;
        assert_eq!(
            runs.load(std::sync::atomic::Ordering::SeqCst),
            MAX_RESTARTS + 1
        );
        assert!(shutdown.is_cancelled());
        assert!(engines.fatal().is_some());
        assert_eq!(engines.down(), vec!["test-engine"]);
    }
}
