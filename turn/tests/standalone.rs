//! The `onair-turn` binary: it takes the same secret as `onair serve`, and
//! relays for REST API credentials signed with it, not for others.

mod common;

use onair_turn::webrtc_util::Conn;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

async fn allocate(server: &str, username: &str, password: &str) -> Result<String, String> {
    let client = common::client(server, username, password).await;
    let r = match tokio::time::timeout(Duration::from_secs(10), client.allocate()).await {
        Err(_) => Err("no answer".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(relay)) => {
            let addr = relay.local_addr().map_err(|e| e.to_string())?;
            let _ = relay.close().await;
            Ok(addr.to_string())
        }
    };
    let _ = client.close().await;
    r
}

#[tokio::test]
async fn standalone_relay_takes_the_shared_secret() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_onair-turn"))
        .args(["--listen", "127.0.0.1:0", "--public-ip", "127.0.0.1"])
        .args(["--turn-secret", "shared", "--relay-ports", "50100-50199"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("onair-turn runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("prints its URL")
        .unwrap()
        .expect("a line");
    assert!(url.starts_with("turn:127.0.0.1:"), "{url}");
    let server = url.trim_start_matches("turn:").split('?').next().unwrap();

    let user = common::viewer_user();
    let relayed = allocate(server, &user, &onair_turn::rest_password("shared", &user))
        .await
        .expect("valid credentials allocate");
    let port: u16 = relayed.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        (50100..=50199).contains(&port),
        "relayed {relayed} in range"
    );
    let forged = allocate(server, &user, &onair_turn::rest_password("guess", &user)).await;
    assert!(forged.is_err(), "forged password accepted: {forged:?}");
}
