// Headless Chromium plays an HLS playlist (live LL-HLS or a VOD recording)
// with hls.js (lowLatencyMode) and reports what it decoded of each track:
// video frames from getVideoPlaybackQuality(), audio bytes from Chromium's
// webkitAudioDecodedByteCount, and the SourceBuffers (kind:codecs) hls.js
// made: one muxed "audiovideo" buffer for a media playlist without CODECS.
//
//   node hls_av_watch.mjs <playlist-url> <seconds>
//
// Prints ONE JSON line on stdout, e.g.
//   {"framesDecoded":240,"audioDecodedBytes":51200,
//    "bufferTracks":["audiovideo:avc1.42c01e,mp4a.40.2"],"width":640,"height":360,
//    "latencyMedian":1.1,"lowLatencyMode":true,"canBlockReload":true,"live":true,
//    "fatalErrors":[],"currentTime":9.8}
// and exits 0. On failure: a message on stderr and a non-zero exit.

import { run, launch } from './browser.mjs';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const [url, secondsArg] = process.argv.slice(2);
if (!url || !(Number(secondsArg) > 0)) {
  console.error('usage: node hls_av_watch.mjs <playlist-url> <seconds>');
  process.exit(2);
}
const seconds = Number(secondsArg);
const require = createRequire(import.meta.url);
const hlsSource = readFileSync(require.resolve('hls.js/dist/hls.min.js'), 'utf8');

async function watchInPage({ url, seconds }) {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  if (!window.Hls || !Hls.isSupported()) throw new Error('hls.js not supported here');
  const video = document.createElement('video');
  // Not muted: the audio is decoded and played (autoplay is allowed by the
  // launch flags), so the decoded-bytes counter measures real sound.
  video.autoplay = true;
  document.body.appendChild(video);
  const fatalErrors = [];
  const errors = [];
  let bufferTracks = [];
  const hls = new Hls({ lowLatencyMode: true, debug: false });
  hls.on(Hls.Events.ERROR, (_e, d) => {
    if (d.fatal) fatalErrors.push(`${d.type}/${d.details}`);
    if (errors.length < 10) errors.push(`${d.type}/${d.details}: ${d.error?.message ?? d.reason ?? ''}`);
  });
  hls.on(Hls.Events.BUFFER_CREATED, (_e, d) => {
    bufferTracks = Object.entries(d.tracks)
      .map(([kind, t]) => `${kind}:${t.codec ?? t.levelCodec ?? '?'}`)
      .sort();
  });
  hls.loadSource(url);
  hls.attachMedia(video);
  video.play().catch(() => {});
  const t0 = performance.now();
  const latencies = [];
  while (performance.now() - t0 < seconds * 1000) {
    await sleep(250);
    if ((performance.now() - t0) / 1000 >= seconds / 2 && Number.isFinite(hls.latency)) {
      latencies.push(hls.latency);
    }
  }
  const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
  const details = hls.levels?.[0]?.details;
  latencies.sort((a, b) => a - b);
  const report = {
    framesDecoded: q ? q.totalVideoFrames : 0,
    audioDecodedBytes: video.webkitAudioDecodedByteCount ?? null,
    videoDecodedBytes: video.webkitVideoDecodedByteCount ?? null,
    bufferTracks,
    width: video.videoWidth,
    height: video.videoHeight,
    currentTime: video.currentTime,
    paused: video.paused,
    latencyMedian: latencies.length ? latencies[Math.floor(latencies.length / 2)] : null,
    lowLatencyMode: hls.lowLatencyMode,
    canBlockReload: details?.canBlockReload ?? null,
    live: details?.live ?? null,
    fatalErrors,
    errors,
    mediaError: video.error ? `${video.error.code}: ${video.error.message}` : null,
  };
  hls.destroy();
  return report;
}

await run('hls_av_watch', (seconds + 45) * 1000, async (track) => {
  const browser = track(await launch());
  const page = await browser.newPage();
  if (process.env.HLS_WATCH_VERBOSE) page.on('console', (m) => console.error('[page]', m.text()));
  await page.goto(`${new URL(url).origin}/healthz`);
  await page.setContent('<!doctype html><html><body></body></html>');
  await page.addScriptTag({ content: hlsSource });
  return page.evaluate(watchInPage, { url, seconds });
});
