// Headless Chromium publishes its fake camera and microphone over WHIP, as a
// browser go-live does, and reports what its encoder side saw (getStats
// outbound-rtp): frames encoded, and the NACKs and PLIs the server sent.
//
//   node whip_publish.mjs <http-base-url> <stream-key> <seconds> <codec H264|VP8> <relay host:port | ->
//
// With a relay, the WHIP answer's candidates are rewritten to it, so the
// publisher's packets cross the Rust test's lossy UDP proxy. Prints ONE JSON
// line on stdout and exits 0; on failure, stderr and exit 1.

import { run, launchFor, FAKE_MEDIA_ARGS } from './browser.mjs';

const [baseArg, key, secondsArg, codec, via] = process.argv.slice(2);
if (!baseArg || !key || !(Number(secondsArg) > 0) || !codec || !via) {
  console.error('usage: node whip_publish.mjs <http-base-url> <stream-key> <seconds> <H264|VP8> <relay host:port | ->');
  process.exit(2);
}
const base = baseArg.replace(/\/+$/, '');
const seconds = Number(secondsArg);

async function publishInPage({ base, key, seconds, codec, via }) {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const media = await navigator.mediaDevices.getUserMedia({
    video: { width: 640, height: 360, frameRate: 30 },
    audio: true,
  });
  const pc = new RTCPeerConnection();
  for (const track of media.getTracks()) {
    const t = pc.addTransceiver(track, { direction: 'sendonly', streams: [media] });
    if (track.kind === 'video') {
      const want = RTCRtpSender.getCapabilities('video').codecs.filter(
        (c) => c.mimeType.toLowerCase() === `video/${codec.toLowerCase()}`);
      if (want.length === 0) throw new Error(`this browser cannot send ${codec}`);
      t.setCodecPreferences(want);
    }
  }
  await pc.setLocalDescription(await pc.createOffer());
  const resp = await fetch(`${base}/whip`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${key}` },
    body: pc.localDescription.sdp,
  });
  let answer = await resp.text();
  if (resp.status !== 201) throw new Error(`WHIP answered ${resp.status}: ${answer}`);
  const location = resp.headers.get('Location');
  if (via !== '-') {
    const [host, port] = via.split(':');
    answer = answer.replace(/^(a=candidate:\S+ \S+ \S+ \S+ )\S+ \S+/gm, `$1${host} ${port}`);
  }
  await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  await sleep(seconds * 1000);
  const r = { status: resp.status, location, connectionState: pc.connectionState };
  (await pc.getStats()).forEach((s) => {
    if (s.type === 'outbound-rtp' && s.kind === 'video') {
      Object.assign(r, {
        framesEncoded: s.framesEncoded || 0, nackCount: s.nackCount || 0, pliCount: s.pliCount || 0,
        firCount: s.firCount || 0, retransmittedPacketsSent: s.retransmittedPacketsSent || 0,
        encoder: s.encoderImplementation || null,
      });
    }
  });
  if (location) await fetch(new URL(location, base).toString(), { method: 'DELETE' }).catch(() => {});
  pc.close();
  return r;
}

await run('whip_publish', (seconds + 45) * 1000, async (track) => {
  const browser = track(await launchFor(base, FAKE_MEDIA_ARGS));
  const page = await browser.newPage();
  await page.route('**/favicon.ico', (r) => r.fulfill({ status: 204, body: '' }));
  // The server's own origin: a secure-enough context for getUserMedia.
  const health = await page.goto(`${base}/healthz`, { timeout: 15_000 });
  if (!health || !health.ok()) throw new Error(`GET ${base}/healthz answered ${health?.status()}`);
  return page.evaluate(publishInPage, { base, key, seconds, codec, via });
});
