// The onair web app in headless Chromium, one scenario per run:
//
//   node web_app.mjs directory <base> <channel> <screenshot-dir>
//   node web_app.mjs fallback  <base> <channel> <closed-udp-port>
//   node web_app.mjs chat      <base> <owner> <other> [screenshot-dir]  (passwords: pw-USER-secret)
//   node web_app.mjs rotate    <base> <user> <screenshot-dir>
//   node web_app.mjs golive    <base> <user> [screenshot-dir]
//
// Each prints ONE JSON line (what the pages showed and what getStats()
// measured) and exits 0; the Rust side (tests/web_app.rs) judges it. On a
// failure: a message on stderr, exit 1.

import { run, launch, FAKE_MEDIA_ARGS } from './browser.mjs';
import { newPage, screenshots, signIn as signInAt, sleep, waitPlaying, playerState, webrtcStats } from './web_lib.mjs';

const [scenario, baseArg, ...rest] = process.argv.slice(2);
const base = (baseArg || '').replace(/\/+$/, '');
const signIn = (page, user, next) => signInAt(page, base, user, next);

const scenarios = {
  // The directory lists the live channel; its tile opens the watch page,
  // which plays over WebRTC with sound. Then page loads are timed to the
  // first WebRTC frame.
  async directory(browser, [channel, shots]) {
    const page = await newPage(browser);
    await page.goto(`${base}/`);
    const tile = page.locator(`[data-channel="${channel}"]`);
    await tile.waitFor({ timeout: 10_000 });
    const tileText = await tile.innerText();
    // The thumbnail loads (the server makes one from a keyframe).
    await page.waitForFunction((c) => {
      const img = document.querySelector(`[data-channel="${c}"] .thumb img`);
      return img && img.complete && img.naturalWidth > 0;
    }, channel, { timeout: 10_000 }).catch(() => {});
    const thumbWidth = await tile.locator('.thumb img').evaluate((img) => img.naturalWidth);
    await screenshots(page, shots, 'directory');

    await tile.locator('a').click();
    await page.waitForURL(`**/c/${channel}`);
    const playing = await waitPlaying(page, 'webrtc', 8000);
    await sleep(2500);
    const stats = await webrtcStats(page);
    const after = await playerState(page);
    await screenshots(page, shots, 'watch', () => waitPlaying(page, 'webrtc', 5000));

    // Page load -> first WebRTC frame, on fresh loads of the watch page
    // (performance.now() counts from navigation start).
    await page.goto(`${base}/healthz`);
    await page.context().close();
    const loads = [];
    let scripts = [];
    for (let i = 0; i < 5; i++) {
      const p = await newPage(browser);
      await p.goto(`${base}/c/${channel}`);
      const s = await waitPlaying(p, 'webrtc', 8000).catch(async (e) => ({ error: e.message, ...(await playerState(p)) }));
      loads.push(s.firstFrameMs ?? null);
      // What the watch page downloaded as JavaScript (uncompressed sizes).
      if (scripts.length === 0 && !s.error) {
        scripts = await p.evaluate(() => performance.getEntriesByType('resource')
          .filter((e) => e.name.endsWith('.js'))
          .map((e) => ({ name: new URL(e.name).pathname, bytes: e.decodedBodySize })));
      }
      // Leave politely (the page ends its WHEP session), then close.
      await p.goto(`${base}/healthz`);
      await p.context().close();
    }
    return { tileText, thumbWidth, playing, stats, muted: after.muted, loads, scripts };
  },

  // WebRTC cannot connect (the answer's candidates point at a closed port):
  // the page switches to LL-HLS by itself and plays.
  async fallback(browser, [channel, closedPort]) {
    const page = await newPage(browser);
    let rewritten = 0;
    await page.route('**/whep/**', async (route) => {
      if (route.request().method() !== 'POST') return route.continue();
      const resp = await route.fetch();
      const sdp = (await resp.text()).replace(
        /^(a=candidate:\S+ \d+ \S+ \d+ \S+ )(\d+)/gm,
        (_m, head) => { rewritten += 1; return `${head}${closedPort}`; },
      );
      await route.fulfill({ response: resp, body: sdp });
    });
    const t0 = Date.now();
    await page.goto(`${base}/c/${channel}`);
    const s = await waitPlaying(page, 'hls', 15_000);
    const playingAfterMs = Date.now() - t0;
    await sleep(2000);
    const later = await playerState(page);
    const message = await page.locator('[role=status]').allInnerTexts();
    return { rewritten, playingAfterMs, state: s, later, message };
  },

  // Two signed-in users chat; a script in a message stays text; the owner
  // deletes a message with the moderation tools.
  async chat(browser, [owner, other, shots]) {
    const a = await newPage(browser);
    const b = await newPage(browser);
    await signIn(a, owner, `/c/${owner}`);
    await signIn(b, other, `/c/${owner}`);
    const input = (p) => p.getByRole('textbox', { name: 'Message' });
    for (const p of [a, b]) await p.locator('.chat .muted[role=status]').waitFor({ state: 'attached', timeout: 10_000 });
    await sleep(300);

    await input(b).fill('hello from the other side');
    await input(b).press('Enter');
    await a.getByText('hello from the other side').waitFor({ timeout: 5000 });

    const xss = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script><b>bold</b>';
    await input(a).fill(xss);
    await a.getByRole('button', { name: 'Send' }).click();
    const shown = b.locator('.messages li .text').filter({ hasText: 'onerror' });
    await shown.waitFor({ timeout: 5000 });
    const seen = await shown.innerText();
    const injected = await b.evaluate(() => ({
      xss: window.__xss ?? null,
      imgs: document.querySelectorAll('.messages img:not(.avatar), .messages script, .messages b').length,
    }));

    if (shots) await screenshots(a, shots, 'chat');

    // Moderation: the owner sees the tools on the other user's message.
    const theirs = a.locator('.messages li').filter({ hasText: 'hello from the other side' });
    await theirs.getByRole('button', { name: /Delete message/ }).click();
    await b.getByText('hello from the other side').waitFor({ state: 'detached', timeout: 5000 });
    const otherHasTools = await b.locator('.messages .mod button').count();
    return { seen, injected, deleted: true, otherHasTools };
  },

  // The dashboard reveals and rotates the stream key.
  async rotate(browser, [user, shots]) {
    const page = await newPage(browser);
    await page.goto(`${base}/register`);
    await screenshots(page, shots, 'register');
    await page.goto(`${base}/login`);
    await screenshots(page, shots, 'login');
    await signIn(page, user, '/dashboard');
    const key = page.getByTestId('stream-key');
    await key.waitFor();
    const masked = await key.inputValue();
    await page.getByRole('button', { name: 'Reveal' }).click();
    const before = await key.inputValue();
    await page.getByRole('button', { name: 'Rotate key…' }).click();
    await page.getByRole('button', { name: 'Yes, rotate the key' }).click();
    await page.waitForFunction((old) => document.querySelector('[data-testid=stream-key]').value !== old, before, { timeout: 5000 });
    const after = await key.inputValue();
    // Keyboard only: Tab reaches the Reveal button and Enter presses it.
    let reachedByTab = false;
    // From the top of the page (the skip link), as a keyboard user starts.
    await page.locator('.skip').focus();
    for (let i = 0; i < 30 && !reachedByTab; i++) {
      await page.keyboard.press('Tab');
      reachedByTab = await page.evaluate(() => document.activeElement?.textContent === 'Hide');
    }
    if (reachedByTab) await page.keyboard.press('Enter');
    const maskedAgain = await key.inputValue();
    return { masked, before, after, reachedByTab, maskedAgain };
  },

  // Going live from the dashboard with Chromium's fake camera reaches a
  // viewer in a second browser over WebRTC.
  async golive(browser, [user, shots]) {
    const page = await newPage(browser);
    await signIn(page, user, '/dashboard');
    await page.getByRole('button', { name: 'Go live' }).click();
    await page.getByText('You are live.').waitFor({ timeout: 15_000 });
    const viewerBrowser = this.track(await launch());
    const viewer = await newPage(viewerBrowser);
    await viewer.goto(`${base}/c/${user}`);
    const playing = await waitPlaying(viewer, 'webrtc', 10_000);
    await sleep(2000);
    const stats = await webrtcStats(viewer);
    // The dashboard's health panel sees the stream and its viewer.
    await page.getByTestId('resolution').waitFor({ timeout: 10_000 });
    const health = await page.getByTestId('health').innerText();
    if (shots) await screenshots(page, shots, 'dashboard');
    const codec = await page.evaluate(async () => {
      let c = null;
      (await window.__onairPublisher.pc.getStats()).forEach((s) => { if (s.type === 'outbound-rtp' && s.kind === 'video') c = s.codecId; });
      const stats = await window.__onairPublisher.pc.getStats();
      return c ? stats.get(c)?.mimeType : null;
    });
    return { playing, stats, health, codec };
  },
};

const fn = scenarios[scenario];
if (!fn || !base) {
  console.error(`usage: node web_app.mjs <${Object.keys(scenarios).join('|')}> <base-url> ...`);
  process.exit(2);
}
await run(`web_app ${scenario}`, 120_000, async (track) => {
  const browser = track(await launch(scenario === 'golive' ? FAKE_MEDIA_ARGS : []));
  return fn.call({ track }, browser, rest);
});
