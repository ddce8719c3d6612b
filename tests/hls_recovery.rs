//! Crash safety: the real binary is killed with SIGKILL during a broadcast;
//! the next start finalizes the broadcast (row ended, playlist closed with
//! EXT-X-ENDLIST) and loses at most the last second.

mod common;
mod hls_util;

use common::child::{ChildServer, BIN};
use common::ffmpeg_publish;
use hls_util::{kill_9_mid_broadcast, restart_finalizes_the_broadcast};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_broadcast_is_finalized_on_restart() {
    common::init_logs();
    let mut srv = ChildServer::start("demo").await;
    let rtmp = srv.rtmp;
    let mut ff = ffmpeg_publish(&format!("rtmp://{rtmp}/live/{}", srv.key), 60);
    let had = kill_9_mid_broadcast(&mut srv.child, srv.http, "demo").await;
    let _ = ff.start_kill();
    let _ = ff.wait().await;

    // Restart: the broadcast is finalized.
    restart_finalizes_the_broadcast(&mut srv, "demo", had).await;
    srv.stop().await;
}

#[test]
fn cli_turns_a_channels_recording_off_and_on() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap()
    };
    assert!(run(&["channel", "create", "demo"]).status.success());
    let out = run(&["channel", "recording", "demo", "off"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "demo\trecording off\n"
    );
    assert!(run(&["channel", "recording", "demo", "on"])
        .status
        .success());
    assert!(!run(&["channel", "recording", "nobody", "off"])
        .status
        .success());
    assert!(!run(&["channel", "recording", "demo", "maybe"])
        .status
        .success());
}
