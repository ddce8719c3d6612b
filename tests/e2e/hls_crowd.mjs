// A crowd of hls.js players (lowLatencyMode, the web player's live
// settings) in one headless Chromium page, each on its own playlist URL,
// for a while; reports what each decoded and every request they made.
//
//   node hls_crowd.mjs <seconds> <playlist-url> [<playlist-url> ...]
//
// Give each player a URL on its own port (a cache listening on several):
// Chromium opens at most six connections per host and port, and blocking
// playlist reloads hold theirs open.
//
// Prints ONE JSON line on stdout, e.g.
//   {"players":[{"framesDecoded":240,"fatalErrors":[],"canBlockReload":true}, ...],
//    "requested":{"/hls/demo/index.m3u8?_HLS_msn=3&_HLS_part=1":20, ...}}
// and exits 0. On failure: a message on stderr and a non-zero exit.

import { run } from './browser.mjs';
import { hlsPage } from './hls_lib.mjs';

const [secondsArg, ...urls] = process.argv.slice(2);
const seconds = Number(secondsArg);
if (!(seconds > 0) || urls.length === 0) {
  console.error('usage: node hls_crowd.mjs <seconds> <playlist-url> [<playlist-url> ...]');
  process.exit(2);
}

async function crowdInPage({ urls, seconds }) {
  performance.setResourceTimingBufferSize(1000000);
  const players = urls.map((url) => {
    const video = newVideo({ muted: true });
    video.width = 160;
    const fatalErrors = [];
    const hls = new Hls({ ...hlsLive, debug: false });
    hls.on(Hls.Events.ERROR, (_e, d) => {
      if (d.fatal) fatalErrors.push(`${d.type}/${d.details}`);
    });
    hls.loadSource(url);
    hls.attachMedia(video);
    video.play().catch(() => {});
    return { hls, video, fatalErrors };
  });
  await sleep(seconds * 1000);
  const report = players.map(({ hls, video, fatalErrors }) => {
    const q = video.getVideoPlaybackQuality();
    return {
      framesDecoded: q.totalVideoFrames,
      fatalErrors,
      canBlockReload: hls.levels?.[0]?.details?.canBlockReload ?? null,
    };
  });
  players.forEach(({ hls }) => hls.destroy());
  // Each path and query asked for, and how often (all players, all ports):
  // small, where the list of every request would be hundreds of KiB.
  const requested = {};
  for (const e of performance.getEntriesByType('resource')) {
    if (!e.name.includes('/hls/')) continue;
    const u = new URL(e.name);
    const key = u.pathname + u.search;
    requested[key] = (requested[key] || 0) + 1;
  }
  return { players: report, requested };
}

await run('hls_crowd', (seconds + 60) * 1000, async (track) => {
  const page = await hlsPage(track, urls[0]);
  return page.evaluate(crowdInPage, { urls, seconds });
});
