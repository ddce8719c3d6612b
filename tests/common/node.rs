//! Browser tests' side of the harness: runs a `tests/e2e/*.mjs` script (headless
//! Chromium through playwright-core) and returns the one JSON line it prints.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where the pages' screenshots go: `target/screenshots`, so a test run
/// leaves the checkout clean; `ONAIR_SCREENSHOTS=docs/screenshots` refreshes
/// the ones the README shows.
pub fn shots() -> String {
    let dir = match std::env::var_os("ONAIR_SCREENSHOTS") {
        Some(d) => root().join(d),
        None => root().join("target").join("screenshots"),
    };
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir.display().to_string()
}

/// The browser tests are about the real app: without a build, the server
/// would serve its placeholder page and every scenario would fail obscurely.
pub fn require_built_app() {
    let index = root().join("web").join("dist").join("index.html");
    assert!(
        index.is_file(),
        "{} is missing: run ./scripts/setup.sh --test (or `npm install && npm run build` in web/), then rebuild",
        index.display()
    );
}

/// Runs one scenario of a page script (`args[0]` names it) against the
/// server at `http`, whose base URL goes in as the scenario's first
/// argument, and returns its JSON report (also printed, for the log).
pub async fn page_scenario(script: &str, http: SocketAddr, args: &[&str]) -> serde_json::Value {
    require_built_app();
    let base = format!("http://{http}");
    let mut argv = vec![args[0], base.as_str()];
    argv.extend_from_slice(&args[1..]);
    // Every script stops itself after 120 s; this is the backstop.
    let v = run_script(script, &argv, Duration::from_secs(150)).await;
    eprintln!("{}: {v}", args[0]);
    v
}

pub fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("e2e")
}

/// `npm ci` in tests/e2e unless every package the scripts load is already
/// there (`scripts/test.sh` installs them; this covers a bare `cargo test`).
pub async fn ensure_node_modules() {
    let dir = e2e_dir();
    let installed = ["playwright-core", "hls.js", "mpegts.js", "oidc-provider"]
        .iter()
        .all(|p| {
            dir.join("node_modules")
                .join(p)
                .join("package.json")
                .exists()
        });
    if installed {
        return;
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--prefix"])
        .arg(&dir)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), out)
        .await
        .expect("npm ci finished within 5 minutes")
        .expect("npm is installed (apt-get install npm)");
    assert!(
        out.status.success(),
        "npm ci failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `node tests/e2e/<script> <args>`; panics with its stderr unless it
/// exits 0 with a JSON line on stdout, which it returns. `limit` is a
/// backstop: every script has its own hard timeout.
pub async fn run_script(script: &str, args: &[&str], limit: Duration) -> serde_json::Value {
    run_script_with_env(script, args, &[], limit).await
}

/// [`run_script`] with extra environment variables for the script.
pub async fn run_script_with_env(
    script: &str,
    args: &[&str],
    env: &[(&str, &str)],
    limit: Duration,
) -> serde_json::Value {
    ensure_node_modules().await;
    let dir = e2e_dir();
    let child = Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node is installed (apt-get install nodejs)");
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{script} finished within {limit:?}"))
        .expect("node ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or_else(|| panic!("{script}: no JSON line in {stdout}\nstderr: {stderr}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{script}: bad JSON ({e}): {line}"))
}

/// A `lossy_watch.mjs` report of a viewer that watched VP8 with picture
/// and sound.
pub fn assert_watched_vp8(watched: &serde_json::Value) {
    assert_eq!(watched["videoCodec"], "video/VP8", "{watched}");
    assert!(
        watched["framesDecoded"].as_f64().unwrap_or(0.0) > 60.0,
        "{watched}"
    );
    assert!(
        watched["steadyAudioPackets"].as_f64().unwrap_or(0.0) > 100.0,
        "{watched}"
    );
}
