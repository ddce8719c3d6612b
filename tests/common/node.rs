//! Browser tests' side of the harness: runs a `tests/e2e/*.mjs` script (headless
//! Chromium through playwright-core) and returns the one JSON line it prints.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

pub fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("e2e")
}

/// `npm ci` in tests/e2e unless every package the scripts load is already
/// there (`scripts/test.sh` installs them; this covers a bare `cargo test`).
pub async fn ensure_node_modules() {
    let dir = e2e_dir();
    let installed = ["playwright-core", "hls.js", "mpegts.js"].iter().all(|p| {
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
