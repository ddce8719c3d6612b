// Headless Chromium plays one onair channel's HTTP-FLV stream with
// mpegts.js (the maintained flv.js) and reports what it decoded and heard.
//
//   node flv_watch.mjs <flv-url> <seconds>
//
// Prints ONE JSON line on stdout, e.g.
//   {"framesDecoded":240,"width":640,"height":360,"peakRms":0.2,"hasAudio":true,
//    "hasVideo":true,"audioCodec":"mp4a.40.2","videoCodec":"avc1.42c01e",...}
// and exits 0. On failure: a message on stderr and a non-zero exit.
// mpegts.js comes from node_modules (mpegts.js/dist/mpegts.js), injected
// into a page on the stream's origin.

import { run, launch } from './browser.mjs';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const [url, secondsArg] = process.argv.slice(2);
if (!url || !(Number(secondsArg) > 0)) {
  console.error('usage: node flv_watch.mjs <flv-url> <seconds>');
  process.exit(2);
}
const seconds = Number(secondsArg);
const require = createRequire(import.meta.url);
const mpegtsSource = readFileSync(require.resolve('mpegts.js/dist/mpegts.js'), 'utf8');

async function watchInPage({ url, seconds }) {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  if (!mpegts.isSupported()) throw new Error('mpegts.js: MSE not supported here');
  const video = document.createElement('video');
  video.autoplay = true;
  document.body.appendChild(video);
  const errors = [];
  let mediaInfo = null;
  const player = mpegts.createPlayer({ type: 'flv', isLive: true, url }, { enableWorker: false, liveBufferLatencyChasing: true });
  player.on(mpegts.Events.ERROR, (type, detail, info) => errors.push(`${type}/${detail}: ${info?.msg || ''}`));
  player.on(mpegts.Events.MEDIA_INFO, (mi) => { mediaInfo = mi; });
  player.attachMediaElement(video);
  player.load();
  // Sound: the element's output through an analyser (the autoplay policy
  // flag lets it play unmuted without a click).
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 2048;
  ctx.createMediaElementSource(video).connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  const t0 = performance.now();
  video.play().catch((e) => errors.push(`play: ${e.name}`));
  let peakRms = 0;
  let firstFrameMs = null;
  const frames = [];
  while (performance.now() - t0 < seconds * 1000) {
    await sleep(100);
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const x of buf) sum += x * x;
    peakRms = Math.max(peakRms, Math.sqrt(sum / buf.length));
    const q = video.getVideoPlaybackQuality();
    if (firstFrameMs === null && q.totalVideoFrames > 0) firstFrameMs = Math.round(performance.now() - t0);
    frames.push(q.totalVideoFrames);
  }
  const q = video.getVideoPlaybackQuality();
  const report = {
    framesDecoded: q.totalVideoFrames,
    droppedFrames: q.droppedVideoFrames,
    // Frames decoded in the second half: playback went on, not just began.
    framesSecondHalf: q.totalVideoFrames - frames[Math.floor(frames.length / 2)],
    firstFrameMs,
    width: video.videoWidth,
    height: video.videoHeight,
    currentTime: video.currentTime,
    paused: video.paused,
    peakRms,
    audioContextState: ctx.state,
    hasAudio: mediaInfo?.hasAudio ?? null,
    hasVideo: mediaInfo?.hasVideo ?? null,
    audioCodec: mediaInfo?.audioCodec ?? null,
    videoCodec: mediaInfo?.videoCodec ?? null,
    errors,
  };
  player.destroy();
  return report;
}

await run('flv_watch', (seconds + 45) * 1000, async (track) => {
  const browser = track(await launch());
  const page = await browser.newPage();
  if (process.env.FLV_WATCH_VERBOSE) page.on('console', (m) => console.error('[page]', m.text()));
  await page.goto(`${new URL(url).origin}/healthz`);
  await page.setContent('<!doctype html><html><body></body></html>');
  await page.addScriptTag({ content: mpegtsSource });
  return await page.evaluate(watchInPage, { url, seconds });
});
