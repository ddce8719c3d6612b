// Headless Chromium plays one onair channel's LL-HLS playlist with hls.js
// (lowLatencyMode) and reports what hls.js measured.
//
//   [HLS_CONFIG='{"lowLatencyMode":false}'] node hls_watch.mjs <playlist-url> <seconds>
//
// Prints ONE JSON line on stdout, e.g.
//   {"latencyMedian":0.92,"latencyMax":1.1,"latencies":[...],"pdtLatencyMedian":1.0,
//    "framesDecoded":240,"width":1280,"height":720,"fatalErrors":[],"targetLatency":0.6}
// and exits 0. On failure: a message on stderr and a non-zero exit. hls.js
// comes from node_modules (hls.js/dist/hls.min.js), injected into the page.

import { run } from './browser.mjs';
import { hlsArgs, hlsPage } from './hls_lib.mjs';

const { url, seconds } = hlsArgs('hls_watch.mjs');

async function watchInPage({ url, seconds }) {
  const video = newVideo({ muted: true });
  const fatalErrors = [];
  const errors = [];
  const hls = new Hls({ ...hlsLive, debug: false, ...(window.__hlsConfig || {}) });
  hls.on(Hls.Events.ERROR, (_e, d) => {
    const what = `${d.type}/${d.details}`;
    if (d.fatal) fatalErrors.push(what);
    else if (errors.length < 20) errors.push(`${what}@${((performance.now() - t0) / 1000).toFixed(2)}s buf=${bufAhead().toFixed(3)}`);
  });
  const bufAhead = () => {
    const b = video.buffered;
    for (let i = 0; i < b.length; i++) if (b.start(i) <= video.currentTime + 0.05 && b.end(i) >= video.currentTime) return b.end(i) - video.currentTime;
    return 0;
  };
  let t0 = performance.now();
  hls.loadSource(url);
  hls.attachMedia(video);
  video.play().catch(() => {});
  t0 = performance.now();
  let firstFrameMs = null;
  const samples = [];
  while (performance.now() - t0 < seconds * 1000) {
    await sleep(250);
    const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
    if (firstFrameMs === null && video.currentTime > 0) firstFrameMs = performance.now() - t0;
    const lat = hls.latency;
    const date = hls.playingDate;
    samples.push({
      t: (performance.now() - t0) / 1000,
      latency: Number.isFinite(lat) ? lat : null,
      pdtLatency: date ? (Date.now() - date.getTime()) / 1000 : null,
      currentTime: video.currentTime,
      frames: q ? q.totalVideoFrames : 0,
      paused: video.paused,
      buffer: bufAhead(),
    });
  }
  const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
  const report = {
    samples,
    fatalErrors,
    errors,
    firstFrameMs,
    framesDecoded: q ? q.totalVideoFrames : 0,
    droppedFrames: q ? q.droppedVideoFrames : 0,
    width: video.videoWidth,
    height: video.videoHeight,
    currentTime: video.currentTime,
    targetLatency: hls.targetLatency,
    lowLatencyMode: hls.lowLatencyMode,
    partTarget: hls.levels?.[0]?.details?.partTarget ?? null,
    canBlockReload: hls.levels?.[0]?.details?.canBlockReload ?? null,
    stalls: 0,
    // What the playlist and media requests went over: h2 or http/1.1.
    protocols: [...new Set(performance.getEntriesByType('resource')
      .filter((e) => e.name.includes('/hls/')).map((e) => e.nextHopProtocol))],
  };
  hls.destroy();
  return report;
}

function median(a) {
  if (!a.length) return null;
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

await run('hls_watch', (seconds + 45) * 1000, async (track) => {
  const page = await hlsPage(track, url);
  // Extra hls.js settings as JSON, e.g. HLS_CONFIG='{"lowLatencyMode":false}'.
  await page.evaluate((c) => { window.__hlsConfig = c; }, JSON.parse(process.env.HLS_CONFIG || '{}'));
  const r = await page.evaluate(watchInPage, { url, seconds });
  // Steady state: the second half of the run.
  const steady = r.samples.filter((s) => s.t >= seconds / 2);
  const lat = steady.map((s) => s.latency).filter((x) => x !== null);
  const pdt = steady.map((s) => s.pdtLatency).filter((x) => x !== null);
  return {
    latencyMedian: median(lat),
    latencyMax: lat.length ? Math.max(...lat) : null,
    latencyMin: lat.length ? Math.min(...lat) : null,
    pdtLatencyMedian: median(pdt),
    latencies: lat.map((x) => Math.round(x * 1000) / 1000),
    buffers: r.samples.map((s) => Math.round(s.buffer * 1000) / 1000),
    framesDecoded: r.framesDecoded,
    droppedFrames: r.droppedFrames,
    width: r.width,
    height: r.height,
    currentTime: r.currentTime,
    firstFrameMs: r.firstFrameMs,
    fatalErrors: r.fatalErrors,
    errors: r.errors,
    targetLatency: r.targetLatency,
    lowLatencyMode: r.lowLatencyMode,
    partTarget: r.partTarget,
    canBlockReload: r.canBlockReload,
    protocols: r.protocols,
    pausedAtEnd: r.samples.length ? r.samples[r.samples.length - 1].paused : null,
  };
});
