//! The TURN server a client is told about, with its credentials.

use super::{http, TestServer};

/// A `turn:` entry of `GET /api/ice-servers`.
#[derive(Debug, Clone)]
pub struct TurnEntry {
    /// `host:port`.
    pub server: String,
    pub username: String,
    pub credential: String,
}

/// The first `turn:` entry `srv` hands out.
pub async fn turn_entry(srv: &TestServer) -> TurnEntry {
    let v = http(srv.http, "GET", "/api/ice-servers", &[], b"")
        .await
        .json();
    let e = v["ice_servers"]
        .as_array()
        .expect("a list")
        .iter()
        .find(|e| e["urls"][0].as_str().unwrap_or("").starts_with("turn:"))
        .unwrap_or_else(|| panic!("no turn: server in {v}"))
        .clone();
    let url = e["urls"][0].as_str().unwrap();
    TurnEntry {
        server: url
            .trim_start_matches("turn:")
            .split('?')
            .next()
            .unwrap()
            .to_string(),
        username: e["username"].as_str().expect("username").into(),
        credential: e["credential"].as_str().expect("credential").into(),
    }
}
