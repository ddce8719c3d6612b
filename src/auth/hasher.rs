//! Password hashing under a bound. argon2id is meant to be expensive (19 MiB
//! of memory and tens of milliseconds of one core per hash), so unbounded it
//! is a denial of service: a thousand concurrent logins would ask for 19 GB.
//! A [`Hasher`] runs at most one hash per core at once, each in one of its
//! own preallocated 19 MiB work areas, so hashing never holds more than
//! `slots x 19 MiB`. Other requests wait up to [`HASH_WAIT`] and are then
//! refused; one client host may have at most [`HASHES_PER_HOST`] hashes
//! waiting or running, so a flood from one address never queues in front of
//! everyone else's logins.

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::RngCore;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

/// How long a request waits for a free hashing slot before it is answered
/// 503. One hash takes ~30-60 ms of a core, so this is dozens of logins per
/// core queued ahead: more than any legitimate burst, and well inside a
/// client's patience.
pub const HASH_WAIT: Duration = Duration::from_secs(2);
/// Hashes one client host ([`crate::net::host_of`]) may have waiting or
/// running at once. A person signs in once at a time and a household or
/// office behind one address rarely more than a few at the same instant;
/// past it the host is answered 429 at once instead of queueing.
pub const HASHES_PER_HOST: usize = 4;
/// Requests waiting for a slot, from all hosts together; past it requests
/// are refused at once (503). Each waiter holds a connection and a request
/// body of at most 16 KiB. The per-host table holds only hosts with a hash
/// waiting or running, so it is bounded by this plus the slots.
pub const HASH_QUEUE: usize = 1024;
/// Salt length: the PHC string format's recommendation (16 bytes).
const SALT_BYTES: usize = 16;

/// Why a hash was not computed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("too many sign-ins in progress from this address; retry in a second")]
    HostBusy,
    #[error("the server is busy checking passwords; retry in a few seconds")]
    Busy,
    #[error("cannot hash password: {0}")]
    Failed(String),
}

/// What `/metrics` shows of a [`Hasher`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HasherStats {
    pub slots: usize,
    pub running: usize,
    /// The most hashes that ever ran at once: never above `slots`.
    pub peak: usize,
    pub waiting: usize,
}

pub struct Hasher {
    slots: usize,
    wait: Duration,
    permits: Arc<Semaphore>,
    inner: Arc<Inner>,
}

struct Inner {
    /// Work areas not in use: at most one per slot ever exists.
    memory: Mutex<Vec<Vec<Block>>>,
    per_host: Mutex<HashMap<IpAddr, usize>>,
    waiting: AtomicUsize,
    running: AtomicUsize,
    peak: AtomicUsize,
}

/// A host's place among [`HASHES_PER_HOST`]; given back when dropped.
struct HostTurn {
    inner: Arc<Inner>,
    host: IpAddr,
}

impl Drop for HostTurn {
    fn drop(&mut self) {
        let mut map = self
            .inner
            .per_host
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.host) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.host);
            }
        }
    }
}

/// Counts a waiter for as long as it waits, however the wait ends.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher::new()
    }
}

impl Hasher {
    /// One slot per core (`available_parallelism`).
    pub fn new() -> Hasher {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Hasher::with_slots(cores, HASH_WAIT)
    }

    pub fn with_slots(slots: usize, wait: Duration) -> Hasher {
        let slots = slots.max(1);
        Hasher {
            slots,
            wait,
            permits: Arc::new(Semaphore::new(slots)),
            inner: Arc::new(Inner {
                memory: Mutex::new(Vec::with_capacity(slots)),
                per_host: Mutex::new(HashMap::new()),
                waiting: AtomicUsize::new(0),
                running: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
            }),
        }
    }

    pub fn stats(&self) -> HasherStats {
        HasherStats {
            slots: self.slots,
            running: self.inner.running.load(Ordering::Relaxed),
            peak: self.inner.peak.load(Ordering::Relaxed),
            waiting: self.inner.waiting.load(Ordering::Relaxed),
        }
    }

    /// A new PHC string (argon2id, the crate's defaults) for `password`.
    pub async fn hash(&self, host: IpAddr, password: String) -> Result<String, HashError> {
        self.run(host, move |mem| hash_in(password.as_bytes(), mem))
            .await?
    }

    /// Whether `password` matches `phc`. With `None` (an unknown user) the
    /// same work is done against a fixed hash, so the answer takes as long
    /// as for a real account.
    pub async fn verify(
        &self,
        host: IpAddr,
        password: String,
        phc: Option<String>,
    ) -> Result<bool, HashError> {
        self.run(host, move |mem| match phc {
            Some(phc) => verify_in(password.as_bytes(), &phc, mem),
            None => {
                let _ = verify_in(password.as_bytes(), dummy_hash(), mem);
                false
            }
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        host: IpAddr,
        job: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let turn = self.enter(host)?;
        let permit = {
            if self.inner.waiting.fetch_add(1, Ordering::Relaxed) >= HASH_QUEUE {
                self.inner.waiting.fetch_sub(1, Ordering::Relaxed);
                crate::metrics::limit_hit("hash_queue");
                return Err(HashError::Busy);
            }
            let _waiting = Waiting(&self.inner.waiting);
            match tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await {
                Ok(Ok(p)) => p,
                _ => {
                    crate::metrics::limit_hit("hash_wait");
                    return Err(HashError::Busy);
                }
            }
        };
        let inner = self.inner.clone();
        // The permit and the host's turn go with the computation, not the
        // request: a client that hangs up mid-hash frees nothing early.
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let mut mem = inner
                .memory
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop()
                .unwrap_or_else(|| vec![Block::new(); Params::DEFAULT.block_count()]);
            let now = inner.running.fetch_add(1, Ordering::SeqCst) + 1;
            inner.peak.fetch_max(now, Ordering::SeqCst);
            let out = job(&mut mem);
            inner.running.fetch_sub(1, Ordering::SeqCst);
            inner
                .memory
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(mem);
            drop(permit);
            out
        })
        .await
        .map_err(|e| HashError::Failed(e.to_string()))
    }

    fn enter(&self, host: IpAddr) -> Result<HostTurn, HashError> {
        let host = crate::net::host_of(host);
        let mut map = self
            .inner
            .per_host
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let n = map.entry(host).or_insert(0);
        if *n >= HASHES_PER_HOST {
            crate::metrics::limit_hit("hashes_per_host");
            return Err(HashError::HostBusy);
        }
        *n += 1;
        Ok(HostTurn {
            inner: self.inner.clone(),
            host,
        })
    }
}

/// argon2id with the crate's defaults (19 MiB, 2 passes, 1 lane: OWASP's
/// minimum), computed in `mem`, as a PHC string.
pub(super) fn hash_in(password: &[u8], mem: &mut [Block]) -> Result<String, HashError> {
    let failed = |e: &dyn std::fmt::Display| HashError::Failed(e.to_string());
    let params = Params::DEFAULT;
    let mut salt = [0u8; SALT_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let blocks = mem
        .get_mut(..params.block_count())
        .ok_or_else(|| HashError::Failed("work area too small".into()))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, &salt, &mut out, blocks)
        .map_err(|e| failed(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| failed(&e))?,
        salt: Some(Salt::new(&salt).map_err(|e| failed(&e))?),
        hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
    };
    Ok(phc.to_string())
}

/// Recomputes `phc`'s hash of `password` with its own algorithm, version,
/// parameters and salt, and compares in constant time. A hash with more
/// memory than `mem` (never one of ours) gets a work area of its own.
pub(super) fn verify_in(password: &[u8], phc: &str, mem: &mut [Block]) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let n = params.block_count();
    let argon = Argon2::new(algorithm, version, params);
    let computed = match mem.get_mut(..n) {
        Some(blocks) => argon.hash_password_into_with_memory(password, salt, &mut out, blocks),
        None => {
            argon.hash_password_into_with_memory(password, salt, &mut out, vec![Block::new(); n])
        }
    };
    computed.is_ok() && bool::from(out.ct_eq(expected.as_bytes()))
}

/// What unknown usernames are checked against: made once, like any
/// account's hash.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut mem = vec![Block::new(); Params::DEFAULT.block_count()];
        let mut pw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut pw);
        hash_in(&pw, &mut mem).expect("default argon2 parameters hash")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    fn area() -> Vec<Block> {
        vec![Block::new(); Params::DEFAULT.block_count()]
    }

    #[test]
    fn our_hashes_and_the_crates_agree_both_ways() {
        let mut mem = area();
        let ours = hash_in(b"correct horse", &mut mem).unwrap();
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        // The same (dirty) work area serves the next computation.
        assert!(verify_in(b"correct horse", &ours, &mut mem));
        assert!(!verify_in(b"wrong horse", &ours, &mut mem));
        let theirs = Argon2::default()
            .hash_password(b"battery staple")
            .unwrap()
            .to_string();
        assert!(verify_in(b"battery staple", &theirs, &mut mem));
        assert!(!verify_in(b"battery stapler", &theirs, &mut mem));
        assert!(!verify_in(b"x", "not a phc string", &mut mem));
        // A hash with more memory than the work area still verifies.
        let big = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(32 * 1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"roomy")
        .unwrap()
        .to_string();
        assert!(verify_in(b"roomy", &big, &mut mem));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn never_more_hashes_than_slots_and_hosts_wait_their_turn() {
        let h = Arc::new(Hasher::with_slots(2, Duration::from_secs(30)));
        let phc = h.hash([10, 0, 0, 1].into(), "pw".into()).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..12u8 {
            let (h, phc) = (h.clone(), phc.clone());
            tasks.push(tokio::spawn(async move {
                h.verify([10, 0, 1, i].into(), "pw".into(), Some(phc)).await
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap().unwrap());
        }
        let s = h.stats();
        assert_eq!(s.peak, 2, "{s:?}");
        assert_eq!((s.running, s.waiting), (0, 0));
        assert_eq!(h.inner.memory.lock().unwrap().len(), 2, "one area per slot");
        assert!(h.inner.per_host.lock().unwrap().is_empty());

        // One host: its fifth concurrent request is refused at once.
        let mut tasks = Vec::new();
        for _ in 0..HASHES_PER_HOST + 1 {
            let h = h.clone();
            tasks.push(tokio::spawn(async move {
                h.verify([10, 0, 0, 9].into(), "pw".into(), None).await
            }));
        }
        let mut busy = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(ok) => assert!(!ok, "the dummy hash matches nothing"),
                Err(HashError::HostBusy) => busy += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(busy, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_answers_busy_after_the_wait() {
        let h = Arc::new(Hasher::with_slots(1, Duration::from_millis(1)));
        let mut tasks = Vec::new();
        for i in 0..4u8 {
            let h = h.clone();
            tasks.push(tokio::spawn(async move {
                h.verify([10, 0, 2, i].into(), "pw".into(), None).await
            }));
        }
        let mut busy = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), Err(HashError::Busy)) {
                busy += 1;
            }
        }
        assert!(busy >= 1, "with one slot and a 1 ms wait some are refused");
    }
}
