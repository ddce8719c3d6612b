// A WHEP viewer on werift (TypeScript WebRTC): counts the RTP it gets per
// track and the H.264 keyframes among it, reads the chat channel, and prints
// one JSON report. werift's DTLS offers AES-128-GCM first, then AES-CM.
//
// usage: node werift_whep.mjs BASE_URL CHANNEL SECONDS
import { RTCPeerConnection, RTCRtpCodecParameters } from "werift";

const [base, channel, seconds] = process.argv.slice(2);
const timer = setTimeout(() => {
  console.error("werift_whep: hard timeout");
  process.exit(2);
}, (Number(seconds) + 30) * 1000);

const pc = new RTCPeerConnection({
  codecs: {
    video: [
      new RTCRtpCodecParameters({
        mimeType: "video/H264",
        clockRate: 90000,
        rtcpFeedback: [{ type: "nack" }, { type: "nack", parameter: "pli" }],
        parameters: "profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1",
      }),
    ],
    audio: [new RTCRtpCodecParameters({ mimeType: "audio/opus", clockRate: 48000, channels: 2 })],
  },
});
pc.addTransceiver("video", { direction: "recvonly" });
pc.addTransceiver("audio", { direction: "recvonly" });
const dc = pc.createDataChannel("chat");
const report = { video_packets: 0, audio_packets: 0, keyframes: 0, chat: [] };
dc.onMessage.subscribe((m) => report.chat.push(m.toString()));

// An IDR slice (5), or an SPS (7) alone or first in a STAP-A (24), or the
// first fragment of an IDR in an FU-A (28): where a picture can start.
function startsKeyframe(p) {
  if (p.length < 2) return false;
  const type = p[0] & 0x1f;
  if (type === 5 || type === 7) return true;
  if (type === 24 && p.length > 3) return (p[3] & 0x1f) === 7;
  if (type === 28) return (p[1] & 0x80) !== 0 && (p[1] & 0x1f) === 5;
  return false;
}

pc.onTrack.subscribe((track) => {
  track.onReceiveRtp.subscribe((rtp) => {
    if (track.kind === "video") {
      report.video_packets++;
      if (startsKeyframe(rtp.payload)) report.keyframes++;
    } else {
      report.audio_packets++;
    }
  });
});

await pc.setLocalDescription(await pc.createOffer());
const res = await fetch(`${base}/whep/${channel}`, {
  method: "POST",
  headers: { "content-type": "application/sdp" },
  body: pc.localDescription.sdp,
});
report.status = res.status;
const answer = await res.text();
if (res.status === 201) {
  await pc.setRemoteDescription({ type: "answer", sdp: answer });
  await new Promise((r) => setTimeout(r, Number(seconds) * 1000));
}
report.connection = pc.connectionState;
console.log(JSON.stringify(report));
clearTimeout(timer);
await pc.close().catch(() => {});
process.exit(0);
