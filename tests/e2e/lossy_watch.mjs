// Headless Chromium watches a channel over WHEP through an impaired path:
// the WHEP answer's candidates are rewritten to a relay (the Rust test's
// lossy UDP proxy), so every media packet crosses it. Reports what a viewer
// would notice: frames decoded, the longest pause between painted frames
// (requestVideoFrameCallback), and the browser's own NACK/PLI counts.
//
//   node lossy_watch.mjs <http-base-url> <channel> <seconds> <relay host:port | - | tcp-only>
//
// `tcp-only` keeps only the answer's ICE-TCP candidates, as a network that
// blocks UDP would leave the browser.
//
// Prints ONE JSON line on stdout and exits 0; on failure, stderr and exit 1.

import { run, launch } from './browser.mjs';

const [baseArg, channel, secondsArg, via] = process.argv.slice(2);
if (!baseArg || !channel || !(Number(secondsArg) > 0) || !via) {
  console.error('usage: node lossy_watch.mjs <http-base-url> <channel> <seconds> <relay host:port | - | tcp-only>');
  process.exit(2);
}
const base = baseArg.replace(/\/+$/, '');
const seconds = Number(secondsArg);

async function watchInPage({ base, channel, seconds, via }) {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const pc = new RTCPeerConnection();
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const stream = new MediaStream();
  pc.ontrack = (e) => stream.addTrack(e.track);
  await pc.setLocalDescription(await pc.createOffer());
  const resp = await fetch(`${base}/whep/${encodeURIComponent(channel)}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp' },
    body: pc.localDescription.sdp,
  });
  let answer = await resp.text();
  if (resp.status !== 201) throw new Error(`WHEP answered ${resp.status}: ${answer}`);
  if (via === 'tcp-only') {
    // A network that lets no UDP through: only ICE-TCP can connect.
    answer = answer.split('\r\n').filter((l) => !l.startsWith('a=candidate:') || / tcp /i.test(l)).join('\r\n');
  } else if (via !== '-') {
    const [host, port] = via.split(':');
    // a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ ...
    answer = answer.replace(/^(a=candidate:\S+ \S+ \S+ \S+ )\S+ \S+/gm, `$1${host} ${port}`);
  }
  await pc.setRemoteDescription({ type: 'answer', sdp: answer });

  const video = document.createElement('video');
  video.muted = true;
  video.autoplay = true;
  video.playsInline = true;
  video.srcObject = stream;
  document.body.appendChild(video);
  video.play().catch(() => {});

  // Painted frames: the gaps between them are the freezes a viewer sees.
  const paints = [];
  const onFrame = (now) => {
    paints.push(now);
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);

  const stats = async () => {
    const r = {};
    const all = await pc.getStats();
    all.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        r.videoCodec = all.get(s.codecId)?.mimeType || null;
        Object.assign(r, {
          framesDecoded: s.framesDecoded || 0, nackCount: s.nackCount || 0, pliCount: s.pliCount || 0,
          videoPacketsLost: s.packetsLost || 0, videoPacketsReceived: s.packetsReceived || 0,
          freezeCount: s.freezeCount || 0, totalFreezesDuration: s.totalFreezesDuration || 0,
        });
      } else if (s.type === 'inbound-rtp' && s.kind === 'audio') {
        r.audioPacketsReceived = s.packetsReceived || 0;
      } else if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') {
        r.candidateProtocol = all.get(s.localCandidateId)?.protocol || null;
      }
    });
    return r;
  };
  const t0 = performance.now();
  // The first seconds are the join; the verdict is on the steady state.
  await sleep(3000);
  const early = await stats();
  const steadyFrom = performance.now();
  await sleep(Math.max(0, seconds * 1000 - (performance.now() - t0)));
  const late = await stats();
  const steady = paints.filter((t) => t >= steadyFrom);
  let maxGapMs = 0;
  for (let i = 1; i < steady.length; i++) maxGapMs = Math.max(maxGapMs, steady[i] - steady[i - 1]);
  const span = (performance.now() - steadyFrom) / 1000;
  const connectionState = pc.connectionState;
  pc.close();
  return {
    ...late,
    steadySeconds: span,
    steadyFrames: steady.length,
    steadyFps: steady.length / span,
    steadyAudioPackets: (late.audioPacketsReceived || 0) - (early.audioPacketsReceived || 0),
    maxGapMs: Math.round(maxGapMs),
    connectionState,
  };
}

await run('lossy_watch', (seconds + 45) * 1000, async (track) => {
  const browser = track(await launch());
  const page = await browser.newPage();
  await page.route('**/favicon.ico', (r) => r.fulfill({ status: 204, body: '' }));
  const health = await page.goto(`${base}/healthz`, { timeout: 15_000 });
  if (!health || !health.ok()) throw new Error(`GET ${base}/healthz answered ${health?.status()}`);
  await page.setContent('<!doctype html><title>onair lossy_watch</title><body></body>');
  return page.evaluate(watchInPage, { base, channel, seconds, via });
});
