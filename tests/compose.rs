//! docker-compose.yml kept true to the binary: it is a valid Compose file
//! (single server and the `site` profile, checked by `docker-compose config`),
//! every `ONAIR_*` variable and `DATABASE_URL` it sets or documents in a
//! comment is one `onair` reads, its roles are real ones, and the HLS cache
//! it runs is docs/nginx-hls-cache.conf with the upstream swapped.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn compose_text() -> String {
    std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap()
}

/// The `KEY: value` lines of the file, comments included (strip a leading
/// `#` and whitespace: commented lines are options to uncomment), with
/// `- KEY=value` list entries too.
fn entries(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        let line = line.strip_prefix('#').unwrap_or(line).trim_start();
        let line = line.strip_prefix("- ").unwrap_or(line).trim_start();
        let Some(end) = line.find([':', '=']) else {
            continue;
        };
        let key = &line[..end];
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            continue;
        }
        let value = line[end + 1..].trim();
        out.push((key.to_string(), value.to_string()));
    }
    out
}

fn env_names(text: &str) -> BTreeSet<String> {
    entries(text)
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("ONAIR_") || k == "DATABASE_URL")
        .collect()
}

/// An entry's value without quotes or a trailing comment.
fn bare(value: &str) -> &str {
    let value = value.split(" #").next().unwrap().trim();
    value.trim_matches(|c| c == '"' || c == '\'')
}

#[test]
fn every_variable_in_the_compose_file_is_one_onair_reads() {
    let names = env_names(&compose_text());
    for expected in [
        "DATABASE_URL",
        "ONAIR_PUBLIC_IP",
        "ONAIR_ROLE",
        "ONAIR_REDIS_URL",
        "ONAIR_NODE_URL",
        "ONAIR_OBJECT_STORE",
        "ONAIR_WEBRTC_UDP",
        "ONAIR_TURN_SECRET",
    ] {
        assert!(
            names.contains(expected),
            "{expected} not found in {names:?}"
        );
    }

    let out = Command::new(common::child::BIN)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "onair --help failed");
    // clap may wrap lines: compare with whitespace collapsed.
    let help = String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let unknown: Vec<&String> = names
        .iter()
        .filter(|n| !help.contains(&format!("env: {n}=")))
        .collect();
    assert!(
        unknown.is_empty(),
        "docker-compose.yml uses variables `onair --help` does not list: {unknown:?}"
    );
}

#[test]
fn roles_in_the_compose_file_are_real_ones() {
    let text = compose_text();
    let roles: Vec<String> = entries(&text)
        .into_iter()
        .filter(|(k, _)| k == "ONAIR_ROLE")
        .map(|(_, v)| bare(&v).to_string())
        .collect();
    for role in &roles {
        assert!(
            ["all", "origin", "edge"].contains(&role.as_str()),
            "ONAIR_ROLE {role:?} is not all|origin|edge"
        );
    }
    assert!(roles.iter().any(|r| r == "origin"), "no origin: {roles:?}");
    assert!(roles.iter().any(|r| r == "edge"), "no edge: {roles:?}");
}

/// ICE announces the port a server binds, so a WebRTC port published under
/// another number would never be reached.
#[test]
fn webrtc_ports_are_published_as_themselves() {
    let text = compose_text();
    let mut seen = 0;
    for (k, v) in entries(&text) {
        if k != "ONAIR_WEBRTC_UDP" {
            continue;
        }
        let port = bare(&v).rsplit(':').next().unwrap();
        assert!(
            text.contains(&format!("\"{port}:{port}/udp\"")),
            "ONAIR_WEBRTC_UDP {v:?}: port {port} is not published as {port}:{port}/udp"
        );
        seen += 1;
    }
    assert!(seen >= 2, "the edges set their WebRTC ports");
}

/// The hls-cache service swaps the upstream of docs/nginx-hls-cache.conf
/// with sed and publishes its listen port: both must still be in the doc.
#[test]
fn the_hls_cache_runs_the_documented_config() {
    let text = compose_text();
    let doc = std::fs::read_to_string(repo().join("docs/nginx-hls-cache.conf")).unwrap();
    assert!(text.contains("./docs/nginx-hls-cache.conf:"));
    assert!(text.contains(r"s/server 127\.0\.0\.1:8080;/server origin:8080;/"));
    assert!(
        doc.contains("server 127.0.0.1:8080;"),
        "the upstream sed replaces"
    );
    assert!(doc.contains("listen 8090;"));
    assert!(text.contains("\"8090:8090/tcp\""));
}

/// `docker-compose config` with `args`, as an operator with a .env would.
fn compose_config(args: &[&str]) -> Option<String> {
    let mut cmd = Command::new("docker-compose");
    cmd.current_dir(repo())
        .args(["-f", "docker-compose.yml"])
        .args(args)
        .arg("config")
        .env("PUBLIC_IP", "1.2.3.4")
        .env("TURN_SECRET", "x")
        .env_remove("COMPOSE_FILE")
        .env_remove("COMPOSE_PROFILES")
        .env_remove("COMPOSE_PROJECT_NAME");
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            common::missing_service(
                "docker-compose",
                "scripts/setup.sh --test installs it (apt-get install docker-compose)",
            );
            return None;
        }
        Err(e) => panic!("docker-compose: {e}"),
    };
    assert!(
        out.status.success(),
        "docker-compose {args:?} config failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

#[test]
fn compose_file_is_valid_for_one_server_and_for_a_site() {
    let Some(single) = compose_config(&[]) else {
        return;
    };
    for service in ["onair:", "postgres:"] {
        assert!(single.contains(service), "{service} missing:\n{single}");
    }
    let Some(site) = compose_config(&["--profile", "site"]) else {
        return;
    };
    for service in [
        "onair:",
        "postgres:",
        "redis:",
        "minio:",
        "minio-init:",
        "origin:",
        "edge-a:",
        "edge-b:",
        "hls-cache:",
    ] {
        assert!(site.contains(service), "{service} missing:\n{site}");
    }
    // The anchors resolved: each edge has the shared settings and its own.
    assert!(
        site.contains("ONAIR_NODE_URL: http://1.2.3.4:8081"),
        "{site}"
    );
    assert!(
        site.contains("ONAIR_NODE_URL: http://1.2.3.4:8082"),
        "{site}"
    );
    assert!(
        site.contains("ONAIR_REDIS_URL: redis://redis:6379"),
        "{site}"
    );
}
