// The web app's viewer and creator tools in headless Chromium, one scenario
// per run (passwords: pw-USER-secret):
//
//   node web_social.mjs likes       <base> <owner> <viewer>
//   node web_social.mjs slowmode    <base> <owner> <viewer>
//   node web_social.mjs moderation  <base> <owner> <viewer>
//   node web_social.mjs dashboard   <base> <owner> [screenshot-dir]
//   node web_social.mjs screenshare <base> <owner>
//   node web_social.mjs ingest      <base> <owner>
//
// Each prints ONE JSON line of what the pages showed and exits 0; the Rust
// side (tests/web_app.rs) judges it. On a failure: stderr, exit 1.

import { run, launch, FAKE_MEDIA_ARGS } from './browser.mjs';
import { DESKTOP, PHONE, newPage, signIn as signInAt, sleep, waitPlaying, webrtcStats } from './web_lib.mjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [scenario, baseArg, ...rest] = process.argv.slice(2);
const base = (baseArg || '').replace(/\/+$/, '');
const signIn = (page, user, next) => signInAt(page, base, user, next);

const chatInput = (p) => p.getByRole('textbox', { name: 'Message' });
const alerts = (p) => p.locator('.chat [role=alert]').allInnerTexts();
/// The chat socket is open (the "connecting…" status is empty).
const chatReady = (p) => p.waitForFunction(() => {
  const s = document.querySelector('.chat [role=status]');
  return s && s.textContent === '';
}, null, { timeout: 10_000 });

async function say(p, text) {
  await chatInput(p).fill(text);
  await chatInput(p).press('Enter');
}

/// Two signed-in pages on the owner's channel: the owner's and a viewer's.
async function ownerAndViewer(browser, owner, viewer) {
  const a = await newPage(browser);
  const b = await newPage(browser);
  await signIn(a, owner, `/c/${owner}`);
  await signIn(b, viewer, `/c/${owner}`);
  await Promise.all([chatReady(a), chatReady(b)]);
  return [a, b];
}

/// Desktop and phone screenshots scrolled to `selector` (the shared
/// helper shows the top of the page).
async function sectionShots(page, dir, name, selector) {
  mkdirSync(dir, { recursive: true });
  for (const [size, viewport] of [['desktop', DESKTOP], ['phone', PHONE]]) {
    await page.setViewportSize(viewport);
    await page.locator(selector).evaluate((el) => el.scrollIntoView({ block: 'start' }));
    await sleep(300);
    await page.screenshot({ path: join(dir, `${name}-${size}.png`) });
  }
  await page.setViewportSize(DESKTOP);
}

/// The texts of the chat messages a page shows.
const shown = (p) => p.locator('.messages li .text').allInnerTexts();

const scenarios = {
  // A viewer likes the channel: the count goes up on both pages; a second
  // like at once is refused (one every 10 s) and the page says so.
  async likes(browser, [owner, viewer]) {
    const [a, b] = await ownerAndViewer(browser, owner, viewer);
    const count = (p) => p.getByTestId('likes').innerText().then(Number);
    const before = await count(b);
    const like = b.getByRole('button', { name: /^Like/ });
    await like.click();
    await b.waitForFunction((n) => Number(document.querySelector('[data-testid=likes]').textContent) > n, before, { timeout: 5000 });
    const afterFirst = await count(b);
    // The owner's page hears of it over the chat socket.
    await a.waitForFunction((n) => Number(document.querySelector('[data-testid=likes]').textContent) === n, afterFirst, { timeout: 5000 });
    const ownerSees = await count(a);
    await like.click();
    const refused = b.locator('.stage [role=alert]');
    await refused.waitFor({ timeout: 5000 });
    const refusedText = await refused.innerText();
    await sleep(500);
    const afterSecond = await count(b);
    const ownerAfterSecond = await count(a);
    return { before, afterFirst, ownerSees, refusedText, afterSecond, ownerAfterSecond };
  },

  // The owner turns slow mode on from the chat panel; the viewer is told,
  // their first message goes through and the second, at once, is refused
  // with a visible reason and reaches nobody.
  async slowmode(browser, [owner, viewer]) {
    const [a, b] = await ownerAndViewer(browser, owner, viewer);
    await a.getByLabel('Slow mode').selectOption('30');
    const notice = b.getByTestId('slow-mode');
    await notice.waitFor({ timeout: 5000 });
    const noticeText = await notice.innerText();
    await say(b, 'first message');
    await a.getByText('first message').waitFor({ timeout: 5000 });
    await say(b, 'second message');
    await b.locator('.chat [role=alert]').waitFor({ timeout: 5000 });
    const refused = await alerts(b);
    await sleep(1000);
    const ownerSaw = await shown(a);
    const viewerSaw = await shown(b);
    // The owner is not held back by slow mode.
    await say(a, 'owner one');
    await say(a, 'owner two');
    await b.getByText('owner two').waitFor({ timeout: 5000 });
    return { noticeText, refused, ownerSaw, viewerSaw };
  },

  // The owner times the viewer out, then bans them, from the viewer's
  // message; the viewer is told why and what they send is refused.
  async moderation(browser, [owner, viewer]) {
    const [a, b] = await ownerAndViewer(browser, owner, viewer);
    await say(b, 'before any timeout');
    const theirs = a.locator('.messages li').filter({ hasText: 'before any timeout' });
    await theirs.waitFor({ timeout: 5000 });

    await theirs.getByRole('button', { name: /^Time out/ }).click();
    await b.locator('.chat [role=alert]').waitFor({ timeout: 5000 });
    const toldTimeout = await alerts(b);
    await say(b, 'during the timeout');
    await b.locator('.chat [role=alert]').filter({ hasText: /timed out for/ }).waitFor({ timeout: 5000 });
    const refusedTimeout = await alerts(b);

    await theirs.getByRole('button', { name: /^Ban/ }).click();
    await b.locator('.chat [role=alert]').filter({ hasText: /banned/ }).waitFor({ timeout: 5000 });
    const toldBan = await alerts(b);
    await say(b, 'after the ban');
    await b.locator('.chat [role=alert]').filter({ hasText: /you are banned/ }).waitFor({ timeout: 5000 });
    const refusedBan = await alerts(b);
    await sleep(1000);
    const ownerSaw = await shown(a);
    return { toldTimeout, refusedTimeout, toldBan, refusedBan, ownerSaw };
  },

  // The dashboard: the RTMP URL names the real port and this host; a
  // recording's published/hidden state shows in the list and toggles (and
  // survives a reload); the owner announces, edits and deletes a scheduled
  // broadcast, and the channel page follows.
  async dashboard(browser, [owner, shots]) {
    const page = await newPage(browser);
    await signIn(page, owner, '/dashboard');
    const rtmpUrl = await page.getByTestId('rtmp-url').innerText();
    // The same dashboard reached by another name for this host.
    const other = await newPage(browser);
    const altBase = base.replace('127.0.0.1', 'localhost');
    await signInAt(other, altBase, owner, '/dashboard');
    const rtmpUrlAlt = await other.getByTestId('rtmp-url').innerText();
    await other.context().close();

    const badge = page.getByTestId('visibility').first();
    await badge.waitFor({ timeout: 5000 });
    const recordings = { initial: await badge.innerText() };
    await page.getByRole('button', { name: /^Hide the broadcast/ }).click();
    await page.waitForFunction(() => document.querySelector('[data-testid=visibility]')?.textContent === 'hidden', null, { timeout: 5000 });
    await page.reload();
    await badge.waitFor({ timeout: 5000 });
    recordings.afterReload = await badge.innerText();
    await page.getByRole('button', { name: /^Publish the broadcast/ }).click();
    await page.waitForFunction(() => document.querySelector('[data-testid=visibility]')?.textContent === 'published', null, { timeout: 5000 });
    recordings.afterPublish = await badge.innerText();

    // A day ahead, local time, as <input type=datetime-local> takes it.
    const local = (h) => {
      const d = new Date(Date.now() + 24 * 3600e3);
      d.setHours(h, 0, 0, 0);
      return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
    };
    const sched = page.locator('section[aria-labelledby=sched-h]');
    await sched.getByLabel('Title').fill('Launch party');
    await sched.getByLabel('Starts').fill(local(18));
    await sched.getByLabel('Ends').fill(local(19));
    await sched.getByRole('button', { name: 'Add' }).click();
    await sched.locator('.list li').filter({ hasText: 'Launch party' }).waitFor({ timeout: 5000 });
    const watch = await newPage(browser);
    const upcoming = async () => {
      // The page has asked for the schedule and drawn the answer (an empty
      // one draws nothing).
      const answered = watch.waitForResponse((r) => new URL(r.url()).pathname === `/api/channels/${owner}/schedule`);
      await watch.goto(`${base}/c/${owner}`);
      await answered;
      await sleep(300);
      return (await watch.getByTestId('upcoming').count()) ? watch.getByTestId('upcoming').innerText() : '';
    };
    const channelAfterAdd = await upcoming();

    await sched.locator('.list li').filter({ hasText: 'Launch party' }).getByRole('button', { name: 'Edit' }).click();
    await sched.getByLabel('Title').fill('Launch party, moved');
    await sched.getByLabel('Starts').fill(local(20));
    await sched.getByLabel('Ends').fill(local(21));
    await sched.getByRole('button', { name: 'Save' }).click();
    await sched.locator('.list li').filter({ hasText: 'moved' }).waitFor({ timeout: 5000 });
    const dashboardAfterEdit = await sched.locator('.list').innerText();
    const channelAfterEdit = await upcoming();
    if (shots) await sectionShots(page, shots, 'dashboard-manage', 'section[aria-labelledby=rec-h]');

    await sched.locator('.list li').filter({ hasText: 'moved' }).getByRole('button', { name: 'Delete' }).click();
    await sched.getByText('Nothing scheduled.').waitFor({ timeout: 5000 });
    const channelAfterDelete = await upcoming();
    return { rtmpUrl, rtmpUrlAlt, recordings, channelAfterAdd, dashboardAfterEdit, channelAfterEdit, channelAfterDelete };
  },

  // Going live with a screen share (Chromium's fake screen: with
  // --use-fake-ui-for-media-stream, getDisplayMedia picks it without a
  // prompt) reaches a viewer in a second browser.
  // The encoder settings the dashboard shows: with a public URL, its host.
  async ingest(browser, [owner]) {
    const page = await newPage(browser);
    await signIn(page, owner, '/dashboard');
    const text = async (id) => page.getByTestId(id).innerText();
    return { rtmpUrl: await text('rtmp-url'), whipUrl: await text('whip-url'), icecastHost: await text('icecast-server') };
  },

  async screenshare(browser, [owner]) {
    const page = await newPage(browser);
    await signIn(page, owner, '/dashboard');
    await page.getByRole('radio', { name: 'Screen share' }).check();
    await page.getByRole('button', { name: 'Go live' }).click();
    await page.getByText('You are live.').waitFor({ timeout: 15_000 });
    const source = await page.evaluate(() => {
      const sender = window.__onairPublisher?.pc?.getSenders().find((s) => s.track?.kind === 'video');
      const s = sender?.track?.getSettings() || {};
      return { label: sender?.track?.label ?? null, displaySurface: s.displaySurface ?? null, width: s.width ?? 0 };
    });
    const viewerBrowser = this.track(await launch());
    const viewer = await newPage(viewerBrowser);
    await viewer.goto(`${base}/c/${owner}`);
    // Connected sessions get up to 10 s for a first frame (player.ts).
    const playing = await waitPlaying(viewer, 'webrtc', 15_000);
    await sleep(2000);
    const stats = await webrtcStats(viewer);
    return { source, playing, stats };
  },
};

const fn = scenarios[scenario];
if (!fn || !base) {
  console.error(`usage: node web_social.mjs <${Object.keys(scenarios).join('|')}> <base-url> ...`);
  process.exit(2);
}
await run(`web_social ${scenario}`, 120_000, async (track) => {
  const browser = track(await launch(scenario === 'screenshare' ? FAKE_MEDIA_ARGS : []));
  return fn.call({ track }, browser, rest);
});
