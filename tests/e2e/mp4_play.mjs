// Headless Chromium plays one MP4 file (a recording's download) in a plain
// <video> element, the way a visitor's browser opens the link, and reports
// how far it got.
//
//   node mp4_play.mjs <mp4-url> <seconds>
//
// Prints ONE JSON line on stdout, e.g.
//   {"duration":6.0,"currentTime":4.9,"framesDecoded":140,"width":1280,
//    "height":720,"peakRms":0.2,"ended":false,"error":null}
// and exits 0. On failure: a message on stderr and a non-zero exit.

import { run, launch } from './browser.mjs';

const [url, secondsArg] = process.argv.slice(2);
if (!url || !(Number(secondsArg) > 0)) {
  console.error('usage: node mp4_play.mjs <mp4-url> <seconds>');
  process.exit(2);
}
const seconds = Number(secondsArg);

async function playInPage({ url, seconds }) {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const video = document.createElement('video');
  video.src = url;
  document.body.appendChild(video);
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 2048;
  ctx.createMediaElementSource(video).connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  let playError = null;
  video.play().catch((e) => { playError = `${e.name}: ${e.message}`; });
  const t0 = performance.now();
  let peakRms = 0;
  while (performance.now() - t0 < seconds * 1000 && !video.ended && !video.error) {
    await sleep(100);
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const x of buf) sum += x * x;
    peakRms = Math.max(peakRms, Math.sqrt(sum / buf.length));
  }
  const q = video.getVideoPlaybackQuality();
  return {
    duration: video.duration,
    currentTime: video.currentTime,
    framesDecoded: q.totalVideoFrames,
    width: video.videoWidth,
    height: video.videoHeight,
    peakRms,
    ended: video.ended,
    error: video.error ? `${video.error.code}: ${video.error.message}` : playError,
  };
}

await run('mp4_play', (seconds + 45) * 1000, async (track) => {
  const browser = track(await launch());
  const page = await browser.newPage();
  await page.goto(`${new URL(url).origin}/healthz`);
  await page.setContent('<!doctype html><html><body></body></html>');
  return await page.evaluate(playInPage, { url, seconds });
});
