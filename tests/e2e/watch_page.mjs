// The watch page's layout and state in headless Chromium, one scenario per
// run (passwords: pw-USER-secret):
//
//   node watch_page.mjs layout <base> <owner> <viewer> <message-id> [screenshot-dir]
//   node watch_page.mjs switch <base> <a> <b>
//
// layout: the owner (who moderates their chat) on a desktop and a phone:
// the chat input in view without scrolling, the player stuck to the top
// while the page scrolls, moderation buttons' sizes; then a delete of the
// message <message-id> (past 2^53), seen going on the viewer's page too.
// switch: /c/a then /c/b at once, with a's answers held back: only b's
// details and chat may show, and a's fetches are cancelled.
//
// Each prints ONE JSON line of what the pages showed and exits 0; the Rust
// side (tests/watch_page.rs) judges it. On a failure: stderr, exit 1.

import { run, launch } from './browser.mjs';
import { DESKTOP, PHONE, newPage, signIn as signInAt, sleep } from './web_lib.mjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [scenario, baseArg, ...rest] = process.argv.slice(2);
const base = (baseArg || '').replace(/\/+$/, '');
const signIn = (page, user, next) => signInAt(page, base, user, next);

/// The chat socket is open (the "connecting…" status is empty).
const chatReady = (p) => p.waitForFunction(() => {
  const s = document.querySelector('.chat [role=status]');
  return s && s.textContent === '';
}, null, { timeout: 10_000 });

/// Rectangles of what the layout is judged by, at the current scroll.
const measure = (p) => p.evaluate(() => {
  const box = (el) => {
    if (!el) return null;
    const r = el.getBoundingClientRect();
    return { top: r.top, bottom: r.bottom, left: r.left, right: r.right, width: r.width, height: r.height };
  };
  const buttons = [...document.querySelectorAll('.messages .mod button')].map(box);
  return {
    viewport: { width: innerWidth, height: innerHeight },
    scrollY: window.scrollY,
    scrollable: document.documentElement.scrollHeight - innerHeight,
    input: box(document.getElementById('chat-input')),
    send: box(document.querySelector('.chat form button[type=submit]')),
    video: box(document.getElementById('player')),
    stage: box(document.querySelector('.stage')),
    messages: box(document.querySelector('.messages')),
    buttons: buttons.length,
    minButtonWidth: Math.min(...buttons.map((b) => b.width)),
    minButtonHeight: Math.min(...buttons.map((b) => b.height)),
  };
});

async function layout(browser) {
  const [owner, viewer, id, shotDir] = rest;
  const out = {};
  for (const [size, viewport] of [['desktop', DESKTOP], ['phone', PHONE]]) {
    const p = await newPage(browser, viewport);
    await signIn(p, owner, `/c/${owner}`);
    await chatReady(p);
    await p.locator(`.messages li[data-id="${id}"] .mod button`).first().waitFor({ timeout: 10_000 });
    const m = { loaded: await measure(p) };
    // The chat's own list scrolls (to its oldest message) without moving
    // the page; then the page scrolls to its end (the channel's details).
    await p.locator('.messages').evaluate((el) => { el.scrollTop = 0; });
    await sleep(200);
    m.chatScrolled = await measure(p);
    m.chatScrolledBy = await p.locator('.messages').evaluate((el) => el.scrollHeight - el.clientHeight);
    if (shotDir) {
      mkdirSync(shotDir, { recursive: true });
      await p.screenshot({ path: join(shotDir, `watch-chat-${size}.png`) });
    }
    await p.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
    await sleep(300);
    m.pageScrolled = await measure(p);
    out[size] = m;
    await p.context().close();
  }

  // The big id, from the page to the server and back over the socket.
  const mod = await newPage(browser);
  const other = await newPage(browser);
  await signIn(mod, owner, `/c/${owner}`);
  await signIn(other, viewer, `/c/${owner}`);
  await Promise.all([chatReady(mod), chatReady(other)]);
  const row = (p) => p.locator(`.messages li[data-id="${id}"]`);
  await row(other).waitFor({ timeout: 10_000 });
  const deletes = [];
  mod.on('request', (r) => { if (r.method() === 'DELETE') deletes.push(new URL(r.url()).pathname); });
  const answer = mod.waitForResponse((r) => r.request().method() === 'DELETE', { timeout: 10_000 });
  await row(mod).getByRole('button', { name: /^Delete message/ }).click();
  out.deleteStatus = (await answer).status();
  out.deletePaths = deletes;
  out.chatErrors = await mod.locator('.chat [role=alert]').allInnerTexts();
  const gone = async (p) => {
    try {
      await row(p).waitFor({ state: 'detached', timeout: 5_000 });
      return true;
    } catch {
      return false;
    }
  };
  out.goneForModerator = await gone(mod);
  out.goneForViewer = await gone(other);
  return out;
}

/// Client-side navigation, as a link in the app does it.
const go = (p, path) => p.evaluate((to) => {
  history.pushState(null, '', to);
  dispatchEvent(new PopStateEvent('popstate'));
}, path);

async function channelSwitch(browser) {
  const [a, b] = rest;
  const p = await newPage(browser);
  // Every answer about channel a comes late: after b's page has its own.
  const held = new Set([`/api/channels/${a}`, `/api/channels/${a}/schedule`, `/api/channels/${a}/broadcasts`]);
  const heldUrls = [];
  await p.route((u) => held.has(u.pathname), async (route) => {
    heldUrls.push(new URL(route.request().url()).pathname);
    await sleep(2000);
    await route.continue().catch(() => {});
  });
  const failed = [];
  p.on('requestfailed', (r) => failed.push({ path: new URL(r.url()).pathname, error: r.failure()?.errorText || '' }));
  const finished = [];
  p.on('requestfinished', (r) => finished.push(new URL(r.url()).pathname));
  await p.goto(`${base}/`);
  await go(p, `/c/${a}`);
  await p.waitForFunction(() => document.querySelector('.chat [role=status]')?.textContent === '', null, { timeout: 10_000 });
  await go(p, `/c/${b}`);
  await p.getByTestId('channel-title').getByText(`${b} title`).waitFor({ timeout: 10_000 });
  await chatReady(p);
  // Past the time a's held answers arrive.
  await sleep(3000);
  return {
    path: new URL(p.url()).pathname,
    title: await p.getByTestId('channel-title').innerText(),
    messages: await p.locator('.messages li .text').allInnerTexts(),
    heldUrls,
    failed,
    finished,
  };
}

run('watch_page', 90_000, async (track) => {
  const browser = track(await launch());
  if (scenario === 'layout') return layout(browser);
  if (scenario === 'switch') return channelSwitch(browser);
  throw new Error(`unknown scenario ${scenario}`);
});
