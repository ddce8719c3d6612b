// Helpers shared by the web app's browser scripts (web_app.mjs,
// web_social.mjs): pages, sign-in, screenshots and the player's state.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const verbose = !!process.env.WEB_APP_VERBOSE;
export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const password = (user) => `pw-${user}-secret`;

export async function newPage(browser, viewport = DESKTOP) {
  const ctx = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  const page = await ctx.newPage();
  page.on('console', (m) => (verbose || (m.type() === 'error' && !/401/.test(m.text()))) && console.error(`[console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => console.error(`[pageerror] ${e.message}`));
  return page;
}

/// Desktop and phone screenshots of the page at `path` (a fresh page each,
/// so the layout is the one a phone gets on load); of `element` alone
/// when given (a section further down the page).
export async function screenshots(page, dir, name, ready, element) {
  mkdirSync(dir, { recursive: true });
  for (const [size, viewport] of [['desktop', DESKTOP], ['phone', PHONE]]) {
    await page.setViewportSize(viewport);
    if (ready) await ready();
    await page.evaluate(() => window.scrollTo(0, 0));
    await sleep(300);
    const path = join(dir, `${name}-${size}.png`);
    await (element ? element.screenshot({ path }) : page.screenshot({ path, fullPage: false }));
  }
  await page.setViewportSize(DESKTOP);
}

export async function signIn(page, base, user, next = '/') {
  await page.goto(`${base}/login?next=${encodeURIComponent(next)}`);
  await page.getByLabel('Username').fill(user);
  await page.getByLabel('Password').fill(password(user));
  await page.getByRole('button', { name: 'Sign in' }).last().click();
  await page.waitForURL((u) => u.pathname === next, { timeout: 10_000 });
}

/// What the watch page's RTCPeerConnection received so far.
export function webrtcStats(page) {
  return page.evaluate(async () => {
    const pc = window.__onairPlayer?.pc;
    const r = { framesDecoded: 0, frameWidth: 0, frameHeight: 0, totalAudioEnergy: 0, audioSamplesReceived: 0 };
    if (!pc) return r;
    (await pc.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video') Object.assign(r, { framesDecoded: s.framesDecoded || 0, frameWidth: s.frameWidth || 0, frameHeight: s.frameHeight || 0 });
      if (s.kind === 'audio') Object.assign(r, { totalAudioEnergy: s.totalAudioEnergy || 0, audioSamplesReceived: s.totalSamplesReceived || 0 });
    });
    return r;
  });
}

/// The player's state as the page exposes it on the <video> element.
export const playerState = (page) => page.evaluate(() => {
  const v = document.getElementById('player');
  const q = v?.getVideoPlaybackQuality?.();
  return {
    mode: v?.dataset.mode || null,
    status: v?.dataset.status || null,
    firstFrameMs: window.__onairPlayer?.state.firstFrameMs ?? null,
    muted: v?.muted ?? null,
    currentTime: v?.currentTime ?? 0,
    videoFrames: q ? q.totalVideoFrames : 0,
    width: v?.videoWidth ?? 0,
  };
});

export async function waitPlaying(page, mode, timeoutMs) {
  const t0 = Date.now();
  for (;;) {
    const s = await playerState(page);
    if (s.status === 'playing' && s.mode === mode) return s;
    if (Date.now() - t0 > timeoutMs) throw new Error(`not playing over ${mode} after ${timeoutMs} ms: ${JSON.stringify(s)}`);
    await sleep(50);
  }
}
