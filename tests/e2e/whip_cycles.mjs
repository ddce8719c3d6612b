// Headless Chromium publishes its fake camera and microphone over WHIP again
// and again, a new peer connection per cycle, as a browser that goes live,
// stops and goes live again does. Chromium sends a keyframe at the start of
// each publish and otherwise only when asked (PLI/FIR).
//
//   node whip_cycles.mjs <http-base-url> <stream-key> <cycles> <live-seconds> <gap-seconds>
//
// Prints one JSON line per cycle as it starts ({"cycle":i,"at":epoch_ms},
// when the WHIP answer came), then a summary line; exits 0. On failure,
// stderr and exit 1.

import { run, launch, FAKE_MEDIA_ARGS } from './browser.mjs';

const [baseArg, key, cyclesArg, liveArg, gapArg] = process.argv.slice(2);
const cycles = Number(cyclesArg);
const live = Number(liveArg);
const gap = Number(gapArg);
if (!baseArg || !key || !(cycles > 0) || !(live > 0) || !(gap >= 0)) {
  console.error('usage: node whip_cycles.mjs <http-base-url> <stream-key> <cycles> <live-seconds> <gap-seconds>');
  process.exit(2);
}
const base = baseArg.replace(/\/+$/, '');

await run('whip_cycles', (cycles * (live + gap) + 60) * 1000, async (track) => {
  const browser = track(await launch(FAKE_MEDIA_ARGS));
  const page = await browser.newPage();
  await page.route('**/favicon.ico', (r) => r.fulfill({ status: 204, body: '' }));
  const health = await page.goto(`${base}/healthz`, { timeout: 15_000 });
  if (!health || !health.ok()) throw new Error(`GET ${base}/healthz answered ${health?.status()}`);
  // Each cycle's start is reported from the page as it happens, so the test
  // can time its viewers' joins against it.
  await page.exposeFunction('reportCycle', (cycle, at) => {
    process.stdout.write(JSON.stringify({ cycle, at }) + '\n');
  });
  return page.evaluate(async ({ base, key, cycles, live, gap }) => {
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    const media = await navigator.mediaDevices.getUserMedia({
      video: { width: 640, height: 360, frameRate: 30 },
      audio: true,
    });
    const plis = [];
    for (let i = 0; i < cycles; i++) {
      const pc = new RTCPeerConnection();
      for (const track of media.getTracks()) {
        const t = pc.addTransceiver(track, { direction: 'sendonly', streams: [media] });
        if (track.kind === 'video') {
          t.setCodecPreferences(RTCRtpSender.getCapabilities('video').codecs.filter(
            (c) => c.mimeType.toLowerCase() === 'video/h264'));
        }
      }
      await pc.setLocalDescription(await pc.createOffer());
      const resp = await fetch(`${base}/whip`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${key}` },
        body: pc.localDescription.sdp,
      });
      const answer = await resp.text();
      if (resp.status !== 201) throw new Error(`WHIP answered ${resp.status}: ${answer}`);
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
      await window.reportCycle(i, Date.now());
      await sleep(live * 1000);
      let pli = 0;
      (await pc.getStats()).forEach((s) => {
        if (s.type === 'outbound-rtp' && s.kind === 'video') pli = (s.pliCount || 0) + (s.firCount || 0);
      });
      plis.push(pli);
      const location = resp.headers.get('Location');
      if (location) await fetch(new URL(location, base).toString(), { method: 'DELETE' }).catch(() => {});
      pc.close();
      await sleep(gap * 1000);
    }
    return { done: cycles, keyframe_requests: plis };
  }, { base, key, cycles, live, gap });
});
