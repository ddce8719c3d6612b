// Embeds and sharing in headless Chromium:
//
//   node embed.mjs <base> <channel> <chat-token> <marker-file> <screenshot-dir>
//
// 1. The watch page's Share panel: the channel's link and embed code, each
//    copied to the clipboard.
// 2. Another site (http://localhost:PORT, served by this script: another
//    origin and site than the server's 127.0.0.1) carries three frames: the
//    embed with ?muted=1&autoplay=1&chat=1, the embed code copied in step 1
//    (no options), and the watch page /c/CHANNEL. The channel is offline:
//    the embeds say so; the script writes <marker-file> and the Rust side
//    starts publishing. The first embed plays by itself, muted, with no
//    click; the copied one shows a Play button until it is clicked; a chat
//    message posted through the API (Bearer <chat-token>) shows in the
//    first; the watch page's frame is refused.
// 3. A phone (390x844) with a 360x640 embed: it fills the frame, chat under
//    the player, no sideways scrolling.
//
// Prints ONE JSON line of what the pages showed and exits 0; the Rust side
// (tests/web_app.rs) judges it. On a failure: stderr, exit 1.

import { run, launch } from './browser.mjs';
import { DESKTOP, PHONE, newPage, sleep } from './web_lib.mjs';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';

const [baseArg, channel, token, marker, shots] = process.argv.slice(2);
if (!baseArg || !channel || !token || !marker || !shots) {
  console.error('usage: node embed.mjs <base-url> <channel> <chat-token> <marker-file> <screenshot-dir>');
  process.exit(2);
}
const base = baseArg.replace(/\/+$/, '');
/// The other site's pages, by path (see `startSite`).
const pages = {};
const embedUrl = `${base}/embed/${channel}?muted=1&autoplay=1&chat=1`;
const escape = (s) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

function hostPage(body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Another site</title>
<style>body{font:16px/1.4 Georgia,serif;background:#f4f1ea;color:#222;margin:12px}
iframe{border:0;display:block;margin:8px 0;max-width:100%} #watch{outline:2px dashed #b44}
h1{font-size:1.3rem;margin:0 0 8px}</style>
</head><body><h1>A post on another site, with the stream in it</h1>${body}</body></html>`;
}

/// The other site: a plain HTTP server on loopback, reached by the name
/// `localhost` (the onair server is reached as 127.0.0.1: another host, so
/// another origin and another site). A real server rather than routed
/// requests: Chromium treats a routed page as public, and a public page
/// may not frame a server on the local network at all.
async function startSite() {
  const server = createServer((req, res) => {
    const body = pages[new URL(req.url, 'http://x').pathname];
    res.writeHead(body ? 200 : 404, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(body || 'no such page');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://localhost:${server.address().port}` };
}

async function siteContext(browser, viewport) {
  const ctx = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  const page = await ctx.newPage();
  const log = [];
  page.on('console', (m) => log.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => console.error(`[pageerror] ${e.message}`));
  return { page, log };
}

const frameOf = async (page, selector) => (await page.locator(selector).elementHandle()).contentFrame();

/// The player's state inside a frame, as the page exposes it on <video>.
const stateIn = (frame) => frame.evaluate(() => {
  const v = document.getElementById('player');
  const q = v?.getVideoPlaybackQuality?.();
  return {
    mode: v?.dataset.mode || null,
    status: v?.dataset.status || null,
    muted: v?.muted ?? null,
    paused: v?.paused ?? null,
    currentTime: v?.currentTime ?? 0,
    videoFrames: q ? q.totalVideoFrames : 0,
    width: v?.videoWidth ?? 0,
  };
});

async function playingIn(frame, timeoutMs) {
  const t0 = Date.now();
  for (;;) {
    const s = await stateIn(frame);
    if (s.status === 'playing' && s.videoFrames > 0) return { ...s, afterMs: Date.now() - t0 };
    if (Date.now() - t0 > timeoutMs) throw new Error(`not playing after ${timeoutMs} ms: ${JSON.stringify(s)}`);
    await sleep(100);
  }
}

/// What the frame's RTCPeerConnection received so far.
const statsIn = (frame) => frame.evaluate(async () => {
  const pc = window.__onairPlayer?.pc;
  const r = { framesDecoded: 0, frameWidth: 0 };
  if (!pc) return r;
  (await pc.getStats()).forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video') Object.assign(r, { framesDecoded: s.framesDecoded || 0, frameWidth: s.frameWidth || 0 });
  });
  return r;
});

const linkIn = (frame, name) => frame.getByRole('link', { name }).evaluate((a) => ({ href: a.href, target: a.target, rel: a.rel }));

/// Step 1: the Share panel on the watch page.
async function share(browser) {
  const page = await newPage(browser);
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  await page.goto(`${base}/c/${channel}`);
  const answered = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/oembed');
  const button = page.getByRole('button', { name: 'Share', exact: true });
  await button.click();
  const expanded = await button.getAttribute('aria-expanded');
  await answered;
  await sleep(200);
  const link = await page.getByLabel('Link to this channel').inputValue();
  const code = await page.getByLabel('Embed on your site').inputValue();
  const status = page.getByTestId('share-status');
  await page.getByRole('button', { name: 'Copy the link' }).click();
  await status.filter({ hasText: 'copied' }).waitFor({ timeout: 5000 });
  const linkStatus = await status.innerText();
  const clipboardLink = await page.evaluate(() => navigator.clipboard.readText());
  await page.getByRole('button', { name: 'Copy the embed code' }).click();
  await status.filter({ hasText: 'Embed code copied' }).waitFor({ timeout: 5000 });
  const clipboardCode = await page.evaluate(() => navigator.clipboard.readText());
  // Every control of the panel, and the Share button, is at least 24 px.
  const smallestTarget = await page.evaluate(() => {
    const els = [...document.querySelectorAll('#share-panel button, .share-button')];
    return Math.min(...els.map((e) => Math.min(e.getBoundingClientRect().width, e.getBoundingClientRect().height)));
  });
  mkdirSync(shots, { recursive: true });
  const overflow = {};
  for (const [size, viewport] of [['desktop', DESKTOP], ['phone', PHONE]]) {
    await page.setViewportSize(viewport);
    await page.locator('#share-panel').evaluate((el) => el.scrollIntoView({ block: 'center' }));
    await sleep(300);
    await page.screenshot({ path: join(shots, `share-${size}.png`) });
    overflow[size] = await page.evaluate(() => ({ clientWidth: document.documentElement.clientWidth, scrollWidth: document.documentElement.scrollWidth }));
  }
  await page.getByLabel('Link to this channel').focus();
  await page.keyboard.press('Escape');
  const closedByEscape = (await page.locator('#share-panel').count()) === 0;
  await page.context().close();
  return { expanded, link, code, linkStatus, clipboardLink, clipboardCode, smallestTarget, overflow, closedByEscape };
}

/// Step 2: the embeds on another site.
async function otherSite(browser, site, code) {
  pages['/desktop'] = hostPage(
    `<iframe id="embed" src="${escape(embedUrl)}" width="960" height="400" allow="autoplay; fullscreen" title="The stream, with its chat"></iframe>
<p>The embed code from the Share panel, as is:</p><div id="copied">${code}</div>
<p>The watch page, which refuses to be framed:</p>
<iframe id="watch" src="${escape(`${base}/c/${channel}`)}" width="480" height="270" title="The watch page"></iframe>`,
  );
  const { page, log } = await siteContext(browser, DESKTOP);
  await page.goto(`${site}/desktop`, { waitUntil: 'load' });
  const embed = await frameOf(page, '#embed');
  const copied = await frameOf(page, '#copied iframe');
  const watch = await frameOf(page, '#watch');

  await embed.getByTestId('offline').waitFor({ timeout: 15_000 });
  const offlineText = await embed.getByTestId('offline').innerText();
  await copied.getByTestId('offline').waitFor({ timeout: 15_000 });
  writeFileSync(marker, 'offline\n');

  // Nothing clicked anywhere from here until the copied embed's Play.
  const playing = await playingIn(embed, 45_000);
  await sleep(2000);
  const later = await stateIn(embed);
  const stats = await statsIn(embed);
  const unmuteShown = await embed.getByRole('button', { name: 'Unmute' }).isVisible();

  // The copied code has no autoplay: a Play button, nothing playing.
  const play = copied.getByRole('button', { name: /^Play/ });
  await play.waitFor({ timeout: 10_000 });
  const copiedBefore = await stateIn(copied);

  const text = `from the API <b>bold</b> ${Date.now()}`;
  const posted = await fetch(`${base}/api/channels/${channel}/chat`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ text }),
  });
  if (posted.status !== 201) throw new Error(`chat POST answered ${posted.status}: ${await posted.text()}`);
  await embed.locator('.messages li .text').filter({ hasText: text }).waitFor({ timeout: 10_000 });
  const chat = {
    sent: text,
    shown: await embed.locator('.messages li .text').allInnerTexts(),
    users: await embed.locator('.messages li .who').allInnerTexts(),
    bold: await embed.locator('.messages b').count(),
    inputs: await embed.locator('.embed-chat input, .embed-chat textarea').count(),
    link: await linkIn(embed, 'Chat on onair'),
  };
  const watchLink = await linkIn(embed, 'Watch on onair');

  await play.click();
  const copiedPlaying = await playingIn(copied, 20_000);
  await sleep(300);
  const copiedUnmuteShown = await copied.getByRole('button', { name: 'Unmute' }).isVisible();

  // The watch page's frame: refused by the browser, so the app never ran.
  const framed = {
    url: watch.url(),
    hasApp: await watch.evaluate(() => !!document.getElementById('app')).catch(() => false),
    refusals: log.filter((l) => /frame-ancestors|X-Frame-Options/i.test(l)),
  };
  const embedUrlSeen = embed.url();
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, 'embed-desktop.png'), fullPage: true });
  await page.context().close();
  return { offlineText, playing, later, stats, unmuteShown, copiedBefore, copiedPlaying, copiedUnmuteShown, chat, watchLink, framed, embedUrlSeen };
}

/// Step 3: a 360x640 embed on a phone.
async function phone(browser, site) {
  pages['/phone'] = hostPage(`<iframe id="embed" src="${escape(embedUrl)}" width="360" height="640" allow="autoplay; fullscreen" title="The stream"></iframe>`);
  const { page } = await siteContext(browser, PHONE);
  await page.goto(`${site}/phone`, { waitUntil: 'load' });
  const embed = await frameOf(page, '#embed');
  const playing = await playingIn(embed, 30_000);
  // The message posted in step 2, from the history.
  await embed.locator('.messages li').first().waitFor({ timeout: 10_000 });
  const layout = await embed.evaluate(() => {
    const box = (sel) => {
      const r = document.querySelector(sel)?.getBoundingClientRect();
      return r ? { x: r.x, y: r.y, width: r.width, height: r.height, bottom: r.bottom, right: r.right } : null;
    };
    return {
      innerWidth, innerHeight,
      clientWidth: document.documentElement.clientWidth,
      scrollWidth: document.documentElement.scrollWidth,
      bodyScrollWidth: document.body.scrollWidth,
      root: box('.embed'), stage: box('.embed-stage'), video: box('#player'), chat: box('.embed-chat'),
      messages: document.querySelectorAll('.messages li').length,
    };
  });
  await page.screenshot({ path: join(shots, 'embed-phone.png'), fullPage: true });
  await page.context().close();
  return { playing, layout };
}

await run('embed', 150_000, async (track) => {
  const { server, origin } = await startSite();
  try {
    const browser = track(await launch());
    const shared = await share(browser);
    const site = await otherSite(browser, origin, shared.clipboardCode);
    const onPhone = await phone(browser, origin);
    return { share: shared, site: { origin, ...site }, phone: onPhone };
  } finally {
    server.close();
  }
});
