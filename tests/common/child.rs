//! The real `onair` binary as a child process, for tests that must kill it
//! (SIGKILL, SIGTERM) or drive its command line, which the in-process
//! `TestServer` cannot.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_onair");

/// A loopback address whose port was free a moment ago: a restarted
/// server must come back on the same addresses, so port 0 will not do.
///
/// The port is drawn outside the kernel's ephemeral range, which outgoing
/// connections (every test's clients) take their local ports from: a port
/// in that range that was free when checked can be a connection's before
/// the server binds it, and the server then fails with "address in use".
/// Below the range where there is room (Linux's default starts at 32768),
/// above it where the range starts low; and never a port this process has
/// handed out already, since two servers of one test may both be starting.
pub fn free_addr() -> SocketAddr {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok();
    let mut bounds = range
        .iter()
        .flat_map(|r| r.split_whitespace())
        .filter_map(|p| p.parse::<u16>().ok());
    let (low, high) = (
        bounds.next().unwrap_or(32768),
        bounds.next().unwrap_or(60999),
    );
    let window = if low >= 12_000 {
        10_000..low
    } else if high <= 63_000 {
        high + 1..u16::MAX
    } else {
        10_000..u16::MAX
    };
    for _ in 0..1000 {
        let port = rand::Rng::gen_range(&mut rand::thread_rng(), window.clone());
        let mut given = GIVEN.lock().unwrap();
        // Free on every address: some servers under test bind them all.
        if !given.contains(&port) && std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            given.push(port);
            return SocketAddr::from(([127, 0, 0, 1], port));
        }
    }
    panic!("no free port in {window:?}");
}

/// `onair channel create NAME --data-dir DIR`; asserts success and returns
/// the printed stream key.
pub fn create_channel(dir: &Path, name: &str) -> String {
    let out = std::process::Command::new(BIN)
        .args(["channel", "create", name, "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `onair serve` on the given addresses with its data in `dir`; stderr
/// goes to `dir/log` so a test can read what the server said.
pub fn serve(dir: &Path, http: SocketAddr, rtmp: SocketAddr, log: &str) -> Child {
    serve_with(dir, http, rtmp, log, &[])
}

/// [`serve`] with extra arguments.
pub fn serve_with(
    dir: &Path,
    http: SocketAddr,
    rtmp: SocketAddr,
    log: &str,
    args: &[&str],
) -> Child {
    let log = std::fs::File::create(dir.join(log)).unwrap();
    Command::new(BIN)
        .arg("serve")
        .args(args)
        .args(["--http", &http.to_string(), "--rtmp", &rtmp.to_string()])
        .args([
            "--webrtc-udp",
            "127.0.0.1:0",
            "--icecast",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("onair binary")
}

/// Polls until `/healthz` answers 200, within 20 s.
pub async fn wait_healthy(addr: SocketAddr) {
    let start = Instant::now();
    loop {
        if let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await
        {
            if super::get(addr, "/healthz").await.status == 200 {
                return;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "server never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `onair serve` as a child on fixed loopback addresses, with one channel
/// in its own data dir; `restart` brings it back on the same addresses and
/// data, as after a crash.
pub struct ChildServer {
    pub dir: tempfile::TempDir,
    pub http: SocketAddr,
    pub rtmp: SocketAddr,
    pub key: String,
    pub child: Child,
}

impl ChildServer {
    /// Creates `channel`, serves with stderr in `first.log`, waits healthy.
    pub async fn start(channel: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = create_channel(dir.path(), channel);
        let (http, rtmp) = (free_addr(), free_addr());
        let child = serve(dir.path(), http, rtmp, "first.log");
        wait_healthy(http).await;
        ChildServer {
            dir,
            http,
            rtmp,
            key,
            child,
        }
    }

    /// Serves again (the old child must be gone) with stderr in `log`.
    pub async fn restart(&mut self, log: &str) {
        self.child = serve(self.dir.path(), self.http, self.rtmp, log);
        wait_healthy(self.http).await;
    }

    pub async fn stop(mut self) {
        self.child.start_kill().unwrap();
        let _ = self.child.wait().await;
    }
}
