//! `GET /admin/metadata?mount=/CHANNEL&mode=updinfo&song=TITLE`, with the
//! source's credentials: how BUTT, Mixxx (libshout) and ffmpeg-driven
//! scripts say which track is on the air. The title goes to the stream's
//! health (and so the channel API and the watch page), to plain listeners'
//! ICY blocks, and to the channel's chat clients as
//! `{"type":"now_playing","title":...}`.

use super::head::{clean_text, mount_channel, query_value, Head};
use super::{clip, refuse, respond, Icecast, Refusal};
use std::net::SocketAddr;
use std::time::Instant;
use tokio::net::TcpStream;

/// Icecast's answer body, which clients check for `<return>1</return>`.
fn answer(ok: bool, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<iceresponse><message>{message}</message><return>{}</return></iceresponse>\n",
        u8::from(ok)
    )
}

const XML: (&str, &str) = ("Content-Type", "text/xml");

pub(super) async fn handle(ic: &Icecast, socket: &mut TcpStream, peer: SocketAddr, head: &Head) {
    let q = head.query();
    if query_value(q, "mode").as_deref() != Some("updinfo") {
        tracing::warn!(%peer, "icecast metadata refused: mode is not updinfo");
        respond(
            socket,
            "400 Bad Request",
            &[XML],
            &answer(false, "Only mode=updinfo is supported"),
        )
        .await;
        return;
    }
    let mount = query_value(q, "mount").unwrap_or_default();
    let Some(channel) = mount_channel(&mount) else {
        tracing::warn!(%peer, mount = %clip(&mount), "icecast metadata refused: not a channel's mount");
        respond(
            socket,
            "400 Bad Request",
            &[XML],
            &answer(false, "No such mount"),
        )
        .await;
        return;
    };
    if let Err(r) = ic.authorize(head, peer.ip(), &channel).await {
        tracing::warn!(%peer, %channel, "icecast metadata refused: {}", r.why());
        refuse(socket, &r).await;
        return;
    }
    if let Err(after) = ic.meta_rate.check(&channel, Instant::now()) {
        tracing::warn!(%peer, %channel, "icecast metadata refused: over {:?} per update", super::METADATA_RATE.every);
        refuse(socket, &Refusal::RateLimited(after)).await;
        return;
    }
    let Some(stream) = ic.hub.stream(&channel) else {
        respond(
            socket,
            "400 Bad Request",
            &[XML],
            &answer(false, "Source does not exist"),
        )
        .await;
        return;
    };
    let title = clean_text(&query_value(q, "song").unwrap_or_default());
    stream.update_health(|h| h.now_playing = (!title.is_empty()).then(|| title.clone()));
    if let Some(m) = ic.mounts.get(&channel) {
        m.set_now_playing(&title);
    }
    ic.rooms.announce(
        &channel,
        serde_json::json!({"type": "now_playing", "title": title}),
    );
    tracing::debug!(%peer, %channel, "now playing updated");
    respond(
        socket,
        "200 OK",
        &[XML],
        &answer(true, "Metadata update successful"),
    )
    .await;
}
