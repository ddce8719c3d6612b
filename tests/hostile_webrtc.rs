//! Hostile WebRTC clients: each attack runs while a victim channel is
//! watched, and passes only if the victim kept playing (tests/common/victim.rs).

mod common;

use common::victim::Victim;
use common::TestServer;

/// The control: with no attack the victim plays, so a failure below is the
/// attack's doing, not the harness's.
#[tokio::test(flavor = "multi_thread")]
async fn the_victim_plays_when_nobody_attacks() {
    let srv = TestServer::start().await;
    let victim = Victim::start(&srv, 5).await;
    victim.finish().await.assert_kept_playing("no attack");
    srv.stop().await;
}
