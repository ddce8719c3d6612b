use super::*;
use clap::Parser;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    serve: ServeArgs,
}

/// As `onair` resolves its settings from this command line.
fn resolve(argv: &[&str]) -> Result<Config, ConfigError> {
    use clap::{CommandFactory, FromArgMatches};
    let m = Args::command().get_matches_from(argv);
    let a = Args::from_arg_matches(&m).unwrap();
    Config::resolve_from(&a.global, &a.serve, &Explicit::from_matches(&m))
}

#[test]
fn hls_settings_come_from_the_file_unless_a_flag_says_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("onair.toml");
    std::fs::write(
        &path,
        "hls-part-ms = 300\nhls-segment-ms = 4000\nrecording = false\n\
         retention-max-age-hours = 24\nretention-max-size-mb = 100\n\
         min-free-disk = \"2GiB\"\n",
    )
    .unwrap();
    let config = path.to_str().unwrap();
    let c = resolve(&["onair", "--config", config, "--hls-part-ms", "250"]).unwrap();
    assert_eq!(c.hls.part_ms, 250, "the flag beats the file");
    assert_eq!(c.hls.segment_ms, 4000);
    assert!(!c.hls.recording);
    assert_eq!(
        c.hls.retention_max_age,
        Some(std::time::Duration::from_secs(24 * 3600))
    );
    assert_eq!(c.hls.retention_max_bytes, Some(100 << 20));
    assert_eq!(
        c.hls.min_free_disk,
        Some(crate::hls::disk::MinFreeDisk::Bytes(2 << 30))
    );
    let c = resolve(&["onair", "--config", config, "--min-free-disk", "7%"]).unwrap();
    assert_eq!(
        c.hls.min_free_disk,
        Some(crate::hls::disk::MinFreeDisk::Percent(7.0))
    );
    assert!(Args::try_parse_from(["onair", "--min-free-disk", "lots"]).is_err());
}

#[test]
fn turn_allow_peer_from_flags_or_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("onair.toml");
    std::fs::write(&path, "turn-allow-peer = [\"10.0.0.0/8\", \"fd00::/8\"]\n").unwrap();
    let config = path.to_str().unwrap();
    let c = resolve(&["onair", "--config", config]).unwrap();
    let shown: Vec<String> = c.turn_allow_peers.iter().map(|c| c.to_string()).collect();
    assert_eq!(shown, ["10.0.0.0/8", "fd00::/8"]);
    let c = resolve(&[
        "onair",
        "--config",
        config,
        "--turn-allow-peer",
        "127.0.0.1,192.168.0.0/16",
        "--turn-allow-peer",
        "::1",
    ])
    .unwrap();
    let shown: Vec<String> = c.turn_allow_peers.iter().map(|c| c.to_string()).collect();
    assert_eq!(
        shown,
        ["127.0.0.1/32", "192.168.0.0/16", "::1/128"],
        "flags win"
    );
    assert!(Args::try_parse_from(["onair", "--turn-allow-peer", "10.0.0.0/40"]).is_err());
    std::fs::write(&path, "turn-allow-peer = [\"nonsense\"]\n").unwrap();
    assert!(matches!(
        resolve(&["onair", "--config", config]),
        Err(ConfigError::Value(_, e)) if e.starts_with("turn-allow-peer")
    ));
}

#[test]
fn webrtc_engine_and_shards_are_checked() {
    assert!(Args::try_parse_from(["onair", "--webrtc-engine", "fast"]).is_err());
    assert!(Args::try_parse_from(["onair", "--webrtc-shards", "many"]).is_err());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("onair.toml");
    std::fs::write(&path, "webrtc-engine = \"rtc\"\nwebrtc-shards = 3\n").unwrap();
    let config = path.to_str().unwrap();
    let c = resolve(&["onair", "--config", config]).unwrap();
    assert_eq!(c.webrtc_engine, crate::sfu::Engine::Rtc);
    assert_eq!(c.webrtc_shards, 3);
    std::fs::write(&path, "").unwrap();
    let c = resolve(&["onair", "--config", config]).unwrap();
    assert_eq!(c.webrtc_engine, crate::sfu::Engine::Lean);
    assert_eq!(c.webrtc_shards, default_shards());
    for bad in ["0", "65"] {
        std::fs::write(&path, format!("webrtc-shards = {bad}\n")).unwrap();
        assert!(matches!(
            resolve(&["onair", "--config", config]),
            Err(ConfigError::Value(_, e)) if e.starts_with("webrtc-shards")
        ));
    }
}

#[test]
fn webhooks_from_the_file_with_durations_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("onair.toml");
    std::fs::write(
        &path,
        "webhook = [\"https://app/hook\"]\nwebhook-secret = \"k\"\n\
         webhook-timeout = \"750ms\"\nwebhook-fail = \"closed\"\n\
         webhook-events = [\"publish\"]\n",
    )
    .unwrap();
    let config = path.to_str().unwrap();
    let c = resolve(&["onair", "--config", config]).unwrap();
    assert_eq!(c.hooks.urls, ["https://app/hook"]);
    assert_eq!(c.hooks.timeout, std::time::Duration::from_millis(750));
    assert!(!c.hooks.fail_open);
    assert_eq!(c.hooks.events, ["publish"]);
    std::fs::write(&path, "webhook = [\"https://app/hook\"]\n").unwrap();
    assert!(matches!(
        resolve(&["onair", "--config", config]),
        Err(ConfigError::Hooks(crate::hooks::HookConfigError::NoSecret))
    ));
    std::fs::write(&path, "webhook-timeout = \"soon\"\n").unwrap();
    assert!(matches!(
        resolve(&["onair", "--config", config]),
        Err(ConfigError::Value(_, e)) if e.starts_with("webhook-timeout")
    ));
}
