//! The driver's hot path: one packet, or one access unit, to every viewer
//! of a channel, and the datagrams that come of it.

use super::*;

impl Driver {
    /// Sends one access unit's (or audio frame's) packets to every viewer of
    /// the channel: only the SSRC and payload type differ per viewer; the
    /// payload bytes are shared.
    pub(super) fn fan_out(
        &mut self,
        channel: &Arc<str>,
        kind: MediaKind,
        codec: VideoCodec,
        keyframe: bool,
        packets: &[Packet],
    ) {
        let Some(ch) = self.channels.get_mut(channel) else {
            return;
        };
        if kind == MediaKind::Video {
            if keyframe {
                ch.gop_codec = codec;
            }
            ch.gop
                .push(keyframe, packets.len(), packets.iter().cloned());
        }
        let now = Instant::now();
        if kind == MediaKind::Video {
            packets.iter().for_each(|p| ch.history.push(p));
            ch.video_bytes += packets.iter().map(|p| p.payload.len() as u64).sum::<u64>();
            let elapsed = now.duration_since(ch.video_window);
            if elapsed >= BITRATE_WINDOW {
                ch.video_bps = ch.video_bytes as f64 * 8.0 / elapsed.as_secs_f64();
                ch.video_bytes = 0;
                ch.video_window = now;
            }
        }
        let ch = &*ch;
        let mut out_packets = 0u64;
        let mut out_bytes = 0u64;
        let mut broken = Vec::new();
        for pid in &ch.viewers {
            let Some(p) = self.peers.get_mut(pid) else {
                continue;
            };
            if kind == MediaKind::Video && p.video_codec != Some(codec) {
                // It cannot decode this source's video; it keeps the sound.
                continue;
            }
            let mut wire = wire!(self);
            let sent = isolate::catch(PEER, pid, || {
                p.send_media(kind, keyframe, packets, now, ch.gop.epoch(), &mut wire)
            });
            match sent {
                Some((n, bytes)) => {
                    out_packets += n;
                    out_bytes += bytes;
                }
                None => broken.push(*pid),
            }
        }
        for pid in broken {
            self.forget(pid, "panicked sending media");
        }
        // This packet to every viewer now, in one sendmmsg: waiting for the
        // end of the turn would hold the first of up to 257 forwarded
        // packets back while the rest fan out (p50 8 ms at 100 viewers).
        self.out.flush();
        if let Some(at) = self.rx_at {
            // A WHIP packet: datagram read to every viewer's copy handed to
            // the kernel.
            crate::metrics::forward_latency(at.elapsed());
        }
        crate::metrics::add_rtp_out(out_packets, out_bytes);
    }
}
