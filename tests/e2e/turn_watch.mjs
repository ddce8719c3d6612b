// Headless Chromium watches one onair channel over WHEP through TURN only
// (iceTransportPolicy 'relay'), with the ICE servers and credentials the
// server hands out at GET /api/ice-servers.
//
//   node turn_watch.mjs <http-base-url> <channel> <seconds> [udp|tcp|tls]
//
// With a transport, only the TURN URLs with that `?transport=` are used;
// `tls` takes the `turns:` ones (TURN over TLS).
//
// Prints ONE JSON line on stdout:
//   {"framesDecoded":240,"iceServers":[...],"relayCandidates":1,
//    "iceErrors":[],"localType":"relay","remoteType":"host",...}
// and exits 0; on failure a message on stderr and a non-zero exit. The
// browser is always closed, and the run has a hard timeout.

import { launchFor, run } from './browser.mjs';

const [baseArg, channel, secondsArg, transport] = process.argv.slice(2);
if (!baseArg || !channel || !(Number(secondsArg) > 0)) {
  console.error('usage: node turn_watch.mjs <http-base-url> <channel> <seconds>');
  process.exit(2);
}
const base = baseArg.replace(/\/+$/, '');
const seconds = Number(secondsArg);
const verbose = !!process.env.TURN_WATCH_VERBOSE;

async function watchInPage({ base, channel, seconds, transport }) {
  const log = (...a) => console.log('[page]', ...a);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  const ice = await (await fetch(`${base}/api/ice-servers`)).json();
  const wanted = (u) => (transport === 'tls'
    ? u.startsWith('turns:')
    : !transport || (u.startsWith('turn:') && u.endsWith(`?transport=${transport}`)));
  const iceServers = ice.ice_servers
    .map((s) => ({ ...s, urls: s.urls.filter(wanted) }))
    .filter((s) => s.urls.length > 0);
  if (iceServers.length === 0) throw new Error(`no ${transport} TURN server in ${JSON.stringify(ice)}`);
  const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: 'relay' });
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  pc.oniceconnectionstatechange = () => log('ice', pc.iceConnectionState);
  const stream = new MediaStream();
  pc.ontrack = (e) => stream.addTrack(e.track);

  let relayCandidates = 0;
  const iceErrors = [];
  pc.onicecandidate = (e) => {
    if (e.candidate) log('candidate', e.candidate.candidate);
    if (e.candidate && e.candidate.type === 'relay') relayCandidates += 1;
  };
  pc.onicecandidateerror = (e) => iceErrors.push(`${e.url} ${e.errorCode} ${e.errorText}`);

  await pc.setLocalDescription(await pc.createOffer());
  // Relay candidates take an Allocate round trip (two, with the 401
  // challenge); wait for gathering, but not forever.
  if (pc.iceGatheringState !== 'complete') {
    await Promise.race([
      new Promise((r) => pc.addEventListener('icegatheringstatechange',
        () => pc.iceGatheringState === 'complete' && r())),
      sleep(5000),
    ]);
  }
  const resp = await fetch(`${base}/whep/${encodeURIComponent(channel)}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp' },
    body: pc.localDescription.sdp,
  });
  const answer = await resp.text();
  if (resp.status !== 201) throw new Error(`POST /whep/${channel} answered ${resp.status}: ${answer}`);
  const location = resp.headers.get('Location');
  await pc.setRemoteDescription({ type: 'answer', sdp: answer });

  const video = document.createElement('video');
  video.muted = true;
  video.autoplay = true;
  video.srcObject = stream;
  document.body.appendChild(video);
  video.play().catch(() => {});

  const snapshot = async () => {
    const stats = await pc.getStats();
    const r = { framesDecoded: 0, packetsLost: 0, nackCount: 0, pliCount: 0, localType: null, remoteType: null, relayProtocol: null, pair: null };
    let pairId = null;
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        r.framesDecoded = s.framesDecoded || 0;
        r.packetsLost = s.packetsLost || 0;
        r.nackCount = s.nackCount || 0;
        r.pliCount = s.pliCount || 0;
      }
      if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
    });
    const pair = pairId && stats.get(pairId);
    if (pair) {
      const l = stats.get(pair.localCandidateId);
      const rm = stats.get(pair.remoteCandidateId);
      r.localType = l?.candidateType ?? null;
      r.relayProtocol = l?.relayProtocol ?? null;
      r.remoteType = rm?.candidateType ?? null;
      r.pair = `${l?.address}:${l?.port} (${l?.candidateType}) -> ${rm?.address}:${rm?.port}`;
    }
    return r;
  };

  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let last = await snapshot();
  let firstFrameMs = null;
  while (performance.now() < end) {
    await sleep(100);
    last = await snapshot();
    if (firstFrameMs === null && last.framesDecoded > 0) firstFrameMs = Math.round(performance.now() - t0);
  }
  const report = {
    ...last,
    firstFrameMs,
    iceServers: iceServers.map((s) => s.urls).flat(),
    relayCandidates,
    iceErrors,
    connectionState: pc.connectionState,
  };
  if (location) await fetch(new URL(location, base).toString(), { method: 'DELETE' }).catch(() => {});
  pc.close();
  return report;
}

await run('turn_watch', (seconds + 45) * 1000, async (track) => {
  const browser = track(await launchFor(base));
  const page = await browser.newPage();
  page.on('console', (m) => verbose && console.error(`[console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => console.error(`[pageerror] ${e.message}`));
  // The server's own origin, so fetch() needs no CORS.
  const health = await page.goto(`${base}/healthz`, { timeout: 15_000 });
  if (!health || !health.ok()) throw new Error(`GET ${base}/healthz answered ${health?.status()}`);
  await page.setContent('<!doctype html><title>onair turn_watch</title><body></body>');
  return page.evaluate(watchInPage, { base, channel, seconds, transport });
});
