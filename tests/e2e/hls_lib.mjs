// Shared by the hls.js watchers (hls_watch.mjs, hls_av_watch.mjs): their
// command line and a Chromium page, on the playlist's origin, with hls.js
// (from node_modules) injected.

import { launchFor } from './browser.mjs';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

// `<playlist-url> <seconds>` from argv; exits 2 with a usage line otherwise.
export function hlsArgs(script) {
  const [url, secondsArg] = process.argv.slice(2);
  if (!url || !(Number(secondsArg) > 0)) {
    console.error(`usage: node ${script} <playlist-url> <seconds>`);
    process.exit(2);
  }
  return { url, seconds: Number(secondsArg) };
}

const require = createRequire(import.meta.url);
const hlsSource = readFileSync(require.resolve('hls.js/dist/hls.min.js'), 'utf8');
// The web player's own live settings, so a watcher plays as a viewer does.
const hlsLive = readFileSync(new URL('../../web/src/hls-live.json', import.meta.url), 'utf8');

// Injected into the page: what both watchers' in-page code starts with.
function pageHelpers(hlsLive) {
  window.hlsLive = hlsLive;
  window.sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  // An autoplaying <video> in the page, once hls.js is known to work here.
  window.newVideo = ({ muted }) => {
    if (!window.Hls || !Hls.isSupported()) throw new Error('hls.js not supported here');
    const video = document.createElement('video');
    video.muted = muted;
    video.autoplay = true;
    document.body.appendChild(video);
    return video;
  };
}

// A new page with `window.Hls` and the `pageHelpers`, on the same origin
// as `url` (CORS would allow another one too). The browser is handed to
// `track` for cleanup.
export async function hlsPage(track, url) {
  const browser = track(await launchFor(url));
  const page = await browser.newPage();
  if (process.env.HLS_WATCH_VERBOSE) page.on('console', (m) => console.error('[page]', m.text()));
  await page.goto(`${new URL(url).origin}/healthz`);
  await page.setContent('<!doctype html><html><body></body></html>');
  await page.addScriptTag({ content: hlsSource });
  await page.addScriptTag({ content: `(${pageHelpers})(${hlsLive});` });
  return page;
}
