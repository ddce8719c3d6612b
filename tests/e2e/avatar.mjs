// Profile pictures in headless Chromium (passwords: pw-USER-secret):
//
//   node avatar.mjs upload <base> <user> <picture> <broken-picture> <screenshot-dir>
//
// Uploads <picture> from the dashboard, then reads where the picture shows:
// the dashboard, the user's chat message on their channel page (desktop
// and phone), the channel page's owner line and the directory's live tile.
// A broken file is then refused with the server's reason on the page.
// Prints ONE JSON line; tests/web_avatar.rs judges it.

import { run, launch } from './browser.mjs';
import { newPage, PHONE, screenshots, signIn } from './web_lib.mjs';

const [scenario, baseArg, ...rest] = process.argv.slice(2);
const base = (baseArg || '').replace(/\/+$/, '');

/// The drawn size and address of an <img>, once it has loaded.
async function loaded(img) {
  await img.waitFor({ timeout: 10_000 });
  await img.evaluate((el) => el.complete && el.naturalWidth > 0
    ? null
    : new Promise((ok, fail) => { el.onload = ok; el.onerror = () => fail(new Error(`${el.src} failed`)); }));
  return img.evaluate((el) => ({ src: new URL(el.src).pathname + new URL(el.src).search, natural: el.naturalWidth, drawn: el.clientWidth }));
}

const scenarios = {
  async upload(browser, [user, picture, broken, shots]) {
    const page = await newPage(browser);
    await signIn(page, base, user, '/dashboard');
    const card = page.getByTestId('avatar');
    const before = await loaded(card.getByTestId('my-avatar'));
    await card.getByLabel('Upload a picture').setInputFiles(picture);
    await card.getByRole('status').filter({ hasText: 'Picture changed' }).waitFor({ timeout: 15_000 });
    const dashboard = await loaded(card.getByTestId('my-avatar'));
    await card.scrollIntoViewIfNeeded();
    await screenshots(page, shots, 'avatar-dashboard', null, card);

    // A broken upload: the server's reason shows, the picture stays.
    await card.getByLabel('Upload a picture').setInputFiles({ name: 'cut.png', mimeType: 'image/png', buffer: Buffer.from(broken, 'base64') });
    const refusal = await card.getByRole('alert').innerText({ timeout: 10_000 });
    const afterRefusal = await loaded(card.getByTestId('my-avatar'));

    // Chat on the channel page: the message carries the picture.
    await page.goto(`${base}/c/${user}`);
    await page.getByLabel('Message').fill('hello with a face');
    await page.getByRole('button', { name: 'Send' }).click();
    const line = page.getByTestId('messages').locator('li', { hasText: 'hello with a face' });
    const chat = await loaded(line.locator('img.avatar'));
    const owner = await loaded(page.getByTestId('owner-avatar'));
    await screenshots(page, shots, 'avatar-chat');
    await page.setViewportSize(PHONE);
    const phoneChat = await loaded(line.locator('img.avatar'));

    // The directory's tile of the live channel.
    const dir = await newPage(browser);
    await dir.goto(`${base}/`);
    const tile = await loaded(dir.locator(`li.tile[data-channel="${user}"] img.avatar`));
    return { before, dashboard, refusal, afterRefusal, chat, phoneChat, owner, tile };
  },
};

const fn = scenarios[scenario];
if (!fn || !base) {
  console.error(`usage: node avatar.mjs <${Object.keys(scenarios).join('|')}> <base-url> ...`);
  process.exit(2);
}
await run(`avatar ${scenario}`, 120_000, async (track) => {
  const browser = track(await launch());
  return fn.call({ track }, browser, rest);
});
