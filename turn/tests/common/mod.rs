//! Shared by the relay's tests: a real `turn` client and REST API
//! credentials.
#![allow(dead_code)]

use onair_turn::turn::client::{Client, ClientConfig};
use std::fmt::Display;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A listening `turn` client of `server` on a fresh loopback socket.
pub async fn client(server: impl Display, username: &str, password: &str) -> Client {
    let conn = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let client = Client::new(ClientConfig {
        stun_serv_addr: server.to_string(),
        turn_serv_addr: server.to_string(),
        username: username.into(),
        password: password.into(),
        realm: String::new(),
        software: String::new(),
        rto_in_ms: 0,
        conn: Arc::new(conn),
        vnet: None,
    })
    .await
    .unwrap();
    client.listen().await.unwrap();
    client
}

/// A REST API username for "viewer" valid for the next 10 minutes.
pub fn viewer_user() -> String {
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    format!("{expiry}:viewer")
}

pub mod raw;

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
