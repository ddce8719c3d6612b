//! A plain listener (VLC, a radio app, a smart speaker): the source's own
//! bytes, with ICY metadata blocks (`StreamTitle='...';`) every
//! [`ICY_METAINT`] bytes when it asked for them with `Icy-MetaData: 1`
//! (the SHOUTcast convention every player follows).

use super::head::{mount_channel, Head};
use super::mount::Mount;
use super::{respond, Icecast, LISTENER_RECONNECT_WAIT, LISTENER_WRITE_TIMEOUT};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// Audio bytes between two metadata blocks: Icecast's default, which
/// every player copes with.
pub const ICY_METAINT: usize = 16_000;
/// The kernel's send buffer for a listener's socket, fixed rather than
/// autotuned (which grows to 4 MiB on Linux): a listener that stops reading
/// holds at most this (doubled by the kernel for its bookkeeping) outside
/// our ring, about 2 s at 128 kbit/s, and falls behind the ring soon
/// enough to skip instead of playing seconds-old audio.
pub const LISTENER_SEND_BUFFER: usize = 16 * 1024;
/// A metadata block is one length byte (in 16-byte units) and at most
/// 255 * 16 bytes of text.
pub const MAX_ICY_BLOCK: usize = 255 * 16;

/// One ICY metadata block for `title` (empty: the one-byte "no change"
/// block). The title is cut to fit, at a character boundary; a `'` inside
/// it stays, as players take the text up to the final `';`.
pub fn icy_block(title: &str) -> Bytes {
    let mut text = String::from("StreamTitle='");
    let room = MAX_ICY_BLOCK - "StreamTitle='';".len();
    for c in title.chars().filter(|c| !c.is_control()) {
        if text.len() + c.len_utf8() - "StreamTitle='".len() > room {
            break;
        }
        text.push(c);
    }
    text.push_str("';");
    let units = text.len().div_ceil(16);
    let mut block = Vec::with_capacity(1 + units * 16);
    block.push(units as u8);
    block.extend_from_slice(text.as_bytes());
    block.resize(1 + units * 16, 0);
    Bytes::from(block)
}

/// Interleaves metadata blocks into a listener's byte stream. Sans-I/O:
/// chunks in, the pieces to write out.
#[derive(Debug)]
pub struct IcyWriter {
    metaint: usize,
    /// Audio bytes still to send before the next block.
    until_block: usize,
    /// The title last sent in a block.
    sent: Option<Arc<str>>,
}

impl IcyWriter {
    pub fn new(metaint: usize) -> IcyWriter {
        IcyWriter {
            metaint: metaint.max(1),
            until_block: metaint.max(1),
            sent: None,
        }
    }

    /// Appends to `out` the pieces `chunk` becomes: slices of it (no copy)
    /// and, at each block position, the block for `title` if it changed
    /// since the last one, else a zero byte.
    pub fn write(&mut self, mut chunk: Bytes, title: &Arc<str>, out: &mut Vec<Bytes>) {
        while !chunk.is_empty() {
            let n = self.until_block.min(chunk.len());
            out.push(chunk.split_to(n));
            self.until_block -= n;
            if self.until_block == 0 {
                let changed = self.sent.as_ref().is_none_or(|s| s != title);
                if changed {
                    out.push(icy_block(title));
                    self.sent = Some(title.clone());
                } else {
                    out.push(Bytes::from_static(&[0]));
                }
                self.until_block = self.metaint;
            }
        }
    }
}

pub(super) async fn run(
    ic: &Arc<Icecast>,
    mut socket: TcpStream,
    peer: SocketAddr,
    head: Head,
    shutdown: CancellationToken,
) {
    let mount = mount_channel(head.path()).and_then(|c| ic.mounts.get(&c));
    let Some(mut mount) = mount else {
        tracing::debug!(%peer, path = %super::clip(head.path()), "icecast listener: no such mount");
        respond(
            &mut socket,
            "404 Not Found",
            &[],
            "no Icecast source on this channel now\n",
        )
        .await;
        return;
    };
    let icy = head.header("icy-metadata").is_some_and(|v| v.trim() == "1");
    let mut out = format!(
        "HTTP/1.0 200 OK\r\nServer: onair\r\nContent-Type: {}\r\nCache-Control: no-cache, no-store\r\n\
         Pragma: no-cache\r\nAccess-Control-Allow-Origin: *\r\nicy-pub: 0\r\n",
        mount.format.content_type()
    );
    let name = if mount.name.is_empty() {
        &mount.channel
    } else {
        &mount.name
    };
    out.push_str(&format!("icy-name: {name}\r\n"));
    if !mount.description.is_empty() {
        out.push_str(&format!("icy-description: {}\r\n", mount.description));
    }
    if icy {
        out.push_str(&format!("icy-metaint: {ICY_METAINT}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    if !write(&mut socket, Bytes::from(out)).await || head.method == "HEAD" {
        return;
    }
    if let Err(e) = socket2::SockRef::from(&socket).set_send_buffer_size(LISTENER_SEND_BUFFER) {
        tracing::debug!(%peer, "icecast listener: cannot size the send buffer: {e}");
    }
    let mut icy = icy.then(|| IcyWriter::new(ICY_METAINT));
    let mut pieces = Vec::new();
    let mut skipped = 0u64;
    let why = 'listen: loop {
        let _counted = mount.listen();
        let (header, mut rx) = mount.subscribe();
        let mut titles = mount.now_playing();
        for page in header.0 {
            let title = titles.borrow_and_update().clone();
            if !send(&mut socket, &mut icy, page, &title, &mut pieces).await {
                break 'listen "write failed or timed out";
            }
        }
        loop {
            let chunk = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break 'listen "server shutting down",
                r = rx.recv() => r,
                _ = mount.ended().cancelled() => Err(RecvError::Closed),
            };
            match chunk {
                Ok(c) => {
                    let title = titles.borrow_and_update().clone();
                    if !send(&mut socket, &mut icy, c, &title, &mut pieces).await {
                        break 'listen "write failed or timed out";
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    // Too slow for the ring: resume at the oldest chunk it
                    // still has (a frame or page boundary).
                    if skipped == 0 {
                        crate::metrics::limit_hit("icecast_listener_lag");
                    }
                    skipped += n;
                }
                Err(RecvError::Closed) => break,
            }
        }
        // The source left: wait a moment for it (or another) to come back
        // in the same format, and carry on there.
        match next_mount(ic, &mount).await {
            Some(m) => mount = m,
            None => break "the source left",
        }
    };
    tracing::debug!(%peer, channel = %mount.channel, skipped_chunks = skipped, "icecast listener left: {why}");
}

/// The channel's next mount in the same format, within
/// [`LISTENER_RECONNECT_WAIT`].
async fn next_mount(ic: &Icecast, old: &Arc<Mount>) -> Option<Arc<Mount>> {
    let deadline = tokio::time::Instant::now() + LISTENER_RECONNECT_WAIT;
    loop {
        if let Some(m) = ic.mounts.get(&old.channel) {
            if !Arc::ptr_eq(&m, old) {
                return (m.format == old.format).then_some(m);
            }
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return None;
        }
        ic.mounts
            .changed(left.min(std::time::Duration::from_millis(500)))
            .await;
    }
}

async fn send(
    socket: &mut TcpStream,
    icy: &mut Option<IcyWriter>,
    chunk: Bytes,
    title: &Arc<str>,
    pieces: &mut Vec<Bytes>,
) -> bool {
    match icy {
        None => write(socket, chunk).await,
        Some(w) => {
            pieces.clear();
            w.write(chunk, title, pieces);
            for p in pieces.drain(..) {
                if !write(socket, p).await {
                    return false;
                }
            }
            true
        }
    }
}

async fn write(socket: &mut TcpStream, mut bytes: Bytes) -> bool {
    matches!(
        tokio::time::timeout(LISTENER_WRITE_TIMEOUT, socket.write_all_buf(&mut bytes)).await,
        Ok(Ok(()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the audio back out of an ICY stream, as a player does.
    fn strip(stream: &[u8], metaint: usize) -> (Vec<u8>, Vec<String>) {
        let (mut audio, mut titles) = (Vec::new(), Vec::new());
        let mut i = 0;
        while i < stream.len() {
            let n = metaint.min(stream.len() - i);
            audio.extend_from_slice(&stream[i..i + n]);
            i += n;
            if i >= stream.len() {
                break;
            }
            let len = usize::from(stream[i]) * 16;
            let text = String::from_utf8_lossy(&stream[i + 1..i + 1 + len]);
            if len > 0 {
                titles.push(text.trim_end_matches('\0').to_string());
            }
            i += 1 + len;
        }
        (audio, titles)
    }

    #[test]
    fn blocks_at_every_metaint_and_only_changes() {
        let mut w = IcyWriter::new(10);
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("A"), Arc::from("Bé"));
        let mut out = Vec::new();
        let data: Vec<u8> = (0..55u8).collect();
        w.write(Bytes::copy_from_slice(&data[..7]), &a, &mut out);
        w.write(Bytes::copy_from_slice(&data[7..31]), &a, &mut out);
        w.write(Bytes::copy_from_slice(&data[31..]), &b, &mut out);
        let stream: Vec<u8> = out.iter().flat_map(|p| p.iter().copied()).collect();
        let (audio, titles) = strip(&stream, 10);
        assert_eq!(audio, data);
        assert_eq!(titles, ["StreamTitle='A';", "StreamTitle='Bé';"]);
    }

    #[test]
    fn long_titles_are_cut_to_one_block() {
        let b = icy_block(&"é".repeat(5000));
        assert_eq!(b.len(), 1 + usize::from(b[0]) * 16);
        assert!(b.len() <= 1 + MAX_ICY_BLOCK);
        let text = std::str::from_utf8(&b[1..]).unwrap().trim_end_matches('\0');
        assert!(
            text.starts_with("StreamTitle='é") && text.ends_with("';"),
            "{text}"
        );
        assert_eq!(&icy_block("")[..], b"\x01StreamTitle='';\0");
    }
}
