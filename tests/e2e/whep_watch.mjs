// Headless Chromium watches one onair channel over WHEP and reports what the
// browser itself measured (RTCPeerConnection.getStats()).
//
//   node whep_watch.mjs <http-base-url> <channel> <seconds>
//
// Prints ONE JSON line on stdout, e.g.
//   {"framesDecoded":240,"frameWidth":1280,"frameHeight":720,
//    "totalAudioEnergy":1.9,"audioSamplesReceived":384000,"firstFrameMs":412,
//    "chat":["{\"type\":\"live\"}"],"status":201,"location":"/whep/demo/..."}
// and exits 0. On any failure: a message on stderr and a non-zero exit. The
// browser is always closed, and the whole run has a hard timeout.
//
// Chromium is the system one (Debian package `chromium`); playwright-core
// downloads no browser. Override with CHROMIUM=/path/to/chrome.

import { run, launchFor } from './browser.mjs';

const [baseArg, channel, secondsArg] = process.argv.slice(2);
if (!baseArg || !channel || !secondsArg || !(Number(secondsArg) > 0)) {
  console.error('usage: node whep_watch.mjs <http-base-url> <channel> <seconds>');
  process.exit(2);
}
const base = baseArg.replace(/\/+$/, '');
const seconds = Number(secondsArg);
const verbose = !!process.env.WHEP_WATCH_VERBOSE;

// Runs inside the page. Everything it needs comes in `opts`; it returns the
// report (or throws, which page.evaluate turns into a rejection).
async function watchInPage(opts) {
  const { base, channel, seconds } = opts;
  const log = (...a) => console.log('[page]', ...a);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  const pc = new RTCPeerConnection();
  window.__pc = pc;
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const chat = [];
  const dc = pc.createDataChannel('chat');
  dc.onmessage = (e) => chat.push(typeof e.data === 'string' ? e.data : `<${e.data.byteLength} bytes>`);
  dc.onopen = () => log('data channel open');
  pc.oniceconnectionstatechange = () => log('ice', pc.iceConnectionState);
  pc.onconnectionstatechange = () => log('pc', pc.connectionState);

  const stream = new MediaStream();
  pc.ontrack = (e) => {
    log('track', e.track.kind);
    stream.addTrack(e.track);
  };

  const video = document.createElement('video');
  video.muted = true;
  video.autoplay = true;
  video.playsInline = true;
  video.setAttribute('muted', '');
  video.setAttribute('autoplay', '');
  video.setAttribute('playsinline', '');
  video.width = 640;
  video.height = 360;
  document.body.appendChild(video);

  await pc.setLocalDescription(await pc.createOffer());
  // Non-trickle: wait for gathering to complete, but at most 2 s (whatever
  // has been gathered by then goes in the offer; the server is ICE-lite-ish
  // and only needs our ufrag/pwd anyway).
  if (pc.iceGatheringState !== 'complete') {
    await Promise.race([
      new Promise((r) => {
        pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && r());
      }),
      sleep(2000),
    ]);
  }

  // Playback starts here: firstFrameMs is measured from just before the POST.
  const t0 = performance.now();
  const resp = await fetch(`${base}/whep/${encodeURIComponent(channel)}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp' },
    body: pc.localDescription.sdp,
  });
  const status = resp.status;
  const location = resp.headers.get('Location');
  const answer = await resp.text();
  if (status !== 201) throw new Error(`POST /whep/${channel} answered ${status}: ${answer}`);
  await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  const answeredMs = performance.now() - t0;

  video.srcObject = stream;
  // The sound goes to its own, unmuted <audio> element (see "Sound" below).
  const audio = document.createElement('audio');
  audio.autoplay = true;
  audio.muted = false;
  audio.srcObject = new MediaStream(stream.getAudioTracks());
  document.body.appendChild(audio);
  audio.play().catch((e) => log('audio.play()', e.name, e.message));
  // A muted element may autoplay anyway; the flag covers the rest.
  video.play().catch((e) => log('video.play()', e.name, e.message));

  // The first frame painted by the <video> element (exact, when the browser
  // offers requestVideoFrameCallback), else the first getStats sample with
  // framesDecoded > 0 (fast-polled until then, to keep the error small).
  let firstPaintMs = null;
  if ('requestVideoFrameCallback' in HTMLVideoElement.prototype) {
    video.requestVideoFrameCallback(() => {
      firstPaintMs = performance.now() - t0;
    });
  }
  let firstDecodedMs = null;

  // Sound, measured two ways:
  //  1. inbound-rtp audio totalAudioEnergy / audioLevel. Measured here
  //     (Chromium 156, headless): with the stream only on the muted <video>,
  //     totalSamplesReceived grows but totalAudioEnergy and audioLevel stay 0
  //     -- Chromium computes them on the playout path, after the sink's
  //     mute. So the audio track also goes to a separate, unmuted <audio>
  //     element (allowed to autoplay by --autoplay-policy=...); then
  //     totalAudioEnergy is real: ~0.016/s for the 440 Hz sine at amplitude
  //     1/8, i.e. audioLevel ~0.125.
  //  2. A WebAudio AnalyserNode on the remote audio track: the RMS of the
  //     decoded samples (~0.088 for that sine), which does not depend on any
  //     element's mute. Reported as analyserPeakRms / analyserMeanRms.
  // totalAudioEnergy is the headline value; both are reported.
  let analyser = null;
  let audioCtx = null;
  let analyserPeak = 0;
  let analyserRmsSum = 0;
  let analyserSamples = 0;
  const setupAnalyser = () => {
    if (analyser || stream.getAudioTracks().length === 0) return;
    try {
      audioCtx = new AudioContext();
      audioCtx.resume().catch(() => {});
      const src = audioCtx.createMediaStreamSource(new MediaStream(stream.getAudioTracks()));
      analyser = audioCtx.createAnalyser();
      analyser.fftSize = 2048;
      src.connect(analyser);
    } catch (e) {
      log('analyser', e.name, e.message);
    }
  };
  const buf = new Float32Array(2048);
  const sampleAnalyser = () => {
    if (!analyser) return;
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const x of buf) sum += x * x;
    const rms = Math.sqrt(sum / buf.length);
    analyserPeak = Math.max(analyserPeak, rms);
    analyserRmsSum += rms;
    analyserSamples += 1;
  };

  const snapshot = async () => {
    const r = {
      framesDecoded: 0, frameWidth: 0, frameHeight: 0, framesDropped: 0,
      totalAudioEnergy: 0, audioLevel: 0, audioSamplesReceived: 0, audioPacketsReceived: 0,
      videoPacketsReceived: 0, audioCodec: null, videoCodec: null, candidatePair: null,
    };
    const stats = await pc.getStats();
    const codecs = {};
    stats.forEach((s) => { if (s.type === 'codec') codecs[s.id] = s.mimeType; });
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        r.framesDecoded = s.framesDecoded || 0;
        r.frameWidth = s.frameWidth || 0;
        r.frameHeight = s.frameHeight || 0;
        r.framesDropped = s.framesDropped || 0;
        r.videoPacketsReceived = s.packetsReceived || 0;
        r.videoCodec = codecs[s.codecId] || null;
      } else if (s.type === 'inbound-rtp' && s.kind === 'audio') {
        r.totalAudioEnergy = s.totalAudioEnergy || 0;
        r.audioLevel = s.audioLevel || 0;
        r.audioSamplesReceived = s.totalSamplesReceived || 0;
        r.audioPacketsReceived = s.packetsReceived || 0;
        r.audioCodec = codecs[s.codecId] || null;
      } else if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') {
        const l = stats.get(s.localCandidateId);
        const rr = stats.get(s.remoteCandidateId);
        r.candidatePair = `${l?.address}:${l?.port} -> ${rr?.address}:${rr?.port}`;
      }
    });
    return r;
  };

  const end = t0 + seconds * 1000;
  let last = await snapshot();
  let maxAudioLevel = 0;
  let nextSlow = performance.now();
  while (performance.now() < end) {
    const now = performance.now();
    const fast = firstDecodedMs === null;
    if (fast || now >= nextSlow) {
      last = await snapshot();
      maxAudioLevel = Math.max(maxAudioLevel, last.audioLevel);
      if (firstDecodedMs === null && last.framesDecoded > 0) firstDecodedMs = performance.now() - t0;
      setupAnalyser();
      sampleAnalyser();
      if (!fast) nextSlow += 250;
    }
    await sleep(fast ? 20 : Math.max(0, Math.min(nextSlow, end) - performance.now()));
  }
  last = await snapshot();

  const report = {
    framesDecoded: last.framesDecoded,
    frameWidth: last.frameWidth,
    frameHeight: last.frameHeight,
    totalAudioEnergy: last.totalAudioEnergy,
    audioSamplesReceived: last.audioSamplesReceived,
    firstFrameMs: firstPaintMs !== null ? Math.round(firstPaintMs) : firstDecodedMs !== null ? Math.round(firstDecodedMs) : null,
    chat,
    status,
    location,
    // Detail beyond the contract, for diagnosis.
    firstFrameSource: firstPaintMs !== null ? 'requestVideoFrameCallback' : firstDecodedMs !== null ? 'getStats' : null,
    firstDecodedStatsMs: firstDecodedMs !== null ? Math.round(firstDecodedMs) : null,
    answeredMs: Math.round(answeredMs),
    maxAudioLevel,
    analyserPeakRms: analyserPeak,
    analyserMeanRms: analyserSamples ? analyserRmsSum / analyserSamples : 0,
    audioContextState: audioCtx ? audioCtx.state : null,
    framesDropped: last.framesDropped,
    videoPacketsReceived: last.videoPacketsReceived,
    audioPacketsReceived: last.audioPacketsReceived,
    videoCodec: last.videoCodec,
    audioCodec: last.audioCodec,
    candidatePair: last.candidatePair,
    videoCurrentTime: video.currentTime,
    connectionState: pc.connectionState,
  };

  // Leave politely: end the WHEP session, then close.
  if (location) {
    try {
      await fetch(new URL(location, base).toString(), { method: 'DELETE' });
    } catch (e) {
      log('DELETE', e.message);
    }
  }
  try { dc.close(); } catch {}
  pc.close();
  if (audioCtx) audioCtx.close().catch(() => {});
  return report;
}

// Hard overall timeout: launch + ICE + the watch itself + teardown.
await run('whep_watch', (seconds + 45) * 1000, async (track) => {
  const browser = track(await launchFor(base));
  const page = await browser.newPage();
  // Keep the server's logs free of favicon 404s.
  await page.route('**/favicon.ico', (r) => r.fulfill({ status: 204, body: '' }));
  page.on('console', (m) => verbose && console.error(`[console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => console.error(`[pageerror] ${e.message}`));
  // An http origin (the server's own) for fetch() and a secure-enough context.
  const health = await page.goto(`${base}/healthz`, { timeout: 15_000 });
  if (!health || !health.ok()) throw new Error(`GET ${base}/healthz answered ${health?.status()}`);
  await page.setContent('<!doctype html><title>onair whep_watch</title><body></body>');
  return page.evaluate(watchInPage, { base, channel, seconds });
});
