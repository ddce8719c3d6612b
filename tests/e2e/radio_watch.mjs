// The watch page of an audio-only channel (a radio show) in headless
// Chromium: fresh loads are timed from navigation to the first sound over
// WebRTC, the player must never fall back to LL-HLS, and the listening
// page's level meter must move.
//
//   node radio_watch.mjs <base> <channel> <loads> <screenshot-dir|-> [song update-url authorization]
//
// START_WITHIN_MS (default 5000) is how long a load may take to start
// playing. Each load reports `videoSeen`: the `video` field of every answer
// the page had for the channel's details, in order; `offers` and
// `videoOffers`: the WHEP offers the player made, and those that asked for
// video.
// With a song, once the last load plays, the script sends the Icecast
// metadata update (GET update-url, as BUTT does) and waits for the open
// page's now-playing line to show it.
// Prints ONE JSON line and exits 0; the Rust side (tests/radio_web.rs)
// judges it. On a failure: a message on stderr, exit 1.

import { run, launch } from './browser.mjs';
import { newPage, screenshots, sleep, playerState, webrtcStats } from './web_lib.mjs';

const [baseArg, channel, loadsArg, shots, song, updateUrl, authorization] = process.argv.slice(2);
const base = (baseArg || '').replace(/\/+$/, '');
const loads = Number(loadsArg);
const startWithin = Number(process.env.START_WITHIN_MS || 5000);
if (!base || !channel || !(loads > 0) || !shots) {
  console.error('usage: node radio_watch.mjs <base> <channel> <loads> <screenshot-dir|-> [expected-song]');
  process.exit(2);
}

/// Everything the page's player went through, sampled from its <video>.
async function follow(page, ms) {
  const modes = new Set();
  const levels = [];
  const end = Date.now() + ms;
  let state = null;
  while (Date.now() < end) {
    state = await playerState(page);
    if (state.mode) modes.add(state.mode);
    const l = await page.locator('[data-testid=level]').getAttribute('data-level', { timeout: 1000 }).catch(() => null);
    if (l !== null) levels.push(Number(l));
    await sleep(50);
  }
  return { modes: [...modes], levels, state };
}

await run('radio_watch', 120_000 + startWithin * loads, async (track) => {
  const browser = track(await launch());
  const results = [];
  for (let i = 0; i < loads; i++) {
    const page = await newPage(browser);
    const videoSeen = [];
    const details = `/api/channels/${encodeURIComponent(channel)}`;
    page.on('response', (res) => {
      if (new URL(res.url()).pathname !== details) return;
      // An ask the page cancelled has no body to read: not an answer.
      res.json().then((c) => videoSeen.push(c.video), () => {});
    });
    // Every WHEP offer the player made, and how many asked for video.
    let offers = 0;
    let videoOffers = 0;
    page.on('request', (req) => {
      if (req.method() !== 'POST' || !new URL(req.url()).pathname.startsWith('/whep/')) return;
      offers += 1;
      if ((req.postData() || '').includes('m=video')) videoOffers += 1;
    });
    await page.goto(`${base}/c/${channel}`);
    // Up to START_WITHIN_MS to start playing, then 1.5 s more of listening.
    const t0 = Date.now();
    let first = null;
    const modes = new Set();
    while (Date.now() - t0 < startWithin) {
      const s = await playerState(page);
      if (s.mode) modes.add(s.mode);
      if (s.status === 'playing') { first = s; break; }
      await sleep(25);
    }
    const after = await follow(page, 1500);
    after.modes.forEach((m) => modes.add(m));
    const stats = await webrtcStats(page);
    const card = await page.locator('[data-testid=radio]').count();
    const videoStats = stats.framesDecoded;
    const scripts = await page.evaluate(() => performance.getEntriesByType('resource')
      .filter((e) => e.name.endsWith('.js')).map((e) => e.name.split('/').pop()));
    // Where the time to first sound went: the player's performance marks.
    const marks = await page.evaluate(() => Object.fromEntries([
      ...performance.getEntriesByType('mark').map((m) => [m.name.replace('onair:', ''), Math.round(m.startTime)]),
      ...performance.getEntriesByType('resource').map((e, i) => [`${new URL(e.name).pathname}#${i}`, [Math.round(e.startTime), Math.round(e.responseEnd)]]),
      ['domContentLoaded', Math.round(performance.getEntriesByType('navigation')[0]?.domContentLoadedEventEnd ?? -1)],
    ]));
    const r = {
      videoSeen,
      offers,
      videoOffers,
      firstSoundMs: first?.firstFrameMs ?? null,
      marks,
      mode: first?.mode ?? null,
      modes: [...modes],
      card,
      maxLevel: Math.max(0, ...after.levels),
      levelSamples: after.levels.length,
      totalAudioEnergy: stats.totalAudioEnergy,
      audioSamplesReceived: stats.audioSamplesReceived,
      framesDecoded: videoStats,
      listeners: await page.locator('[data-testid=listeners]').innerText().catch(() => ''),
      title: await page.locator('.radio-title').innerText().catch(() => ''),
      scripts,
    };
    if (i === loads - 1) {
      if (song) {
        const u = await fetch(updateUrl, { headers: { Authorization: authorization } });
        r.updateStatus = u.status;
        await page.waitForFunction((want) => document.querySelector('[data-testid=now-playing]')?.textContent?.includes(want), song, { timeout: 15_000 })
          .catch(() => {});
        r.nowPlaying = await page.locator('[data-testid=now-playing]').innerText().catch(() => '');
      }
      if (shots !== '-') await screenshots(page, shots, `listen-${channel}`);
      // Pause stops the sound; play brings it back.
      await page.getByRole('button', { name: 'Pause' }).click();
      await sleep(300);
      r.pausedState = await page.evaluate(() => document.getElementById('player')?.paused ?? null);
      await page.getByRole('button', { name: 'Play' }).click();
      await sleep(300);
      r.resumedState = await page.evaluate(() => document.getElementById('player')?.paused ?? null);
    }
    results.push(r);
    await page.context().close();
  }
  return { loads: results };
});
