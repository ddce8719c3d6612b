// A past broadcast's own link in headless Chromium:
//
//   node replay_link.mjs <base> <channel> <broadcast-id> <screenshot-dir>
//   node replay_link.mjs <base> <channel> <broadcast-id> - far
//   node replay_link.mjs <base> <channel> <broadcast-id> - gone
//
// Opens /c/CHANNEL?b=ID: the page plays that recording (Replay), and its
// share panel gives that link; "Back to live" drops it from the address; a
// click on the broadcast's tile puts it back. On a phone the (empty) chat
// spans the page. `far`: the broadcast is further back than the list's
// first page, and plays all the same. `gone`: the id names nothing to
// play; the page says so and drops it from the address. Prints ONE JSON
// line of what the page showed; tests/embed.rs judges it.

import { run, launch } from './browser.mjs';
import { DESKTOP, PHONE, newPage, screenshots } from './web_lib.mjs';

const [baseArg, channel, id, shots, mode] = process.argv.slice(2);
const base = (baseArg || '').replace(/\/+$/, '');

if (mode === 'far' || mode === 'gone') {
  await run(`replay_link ${mode}`, 60_000, async (track) => {
    const browser = track(await launch());
    const page = await newPage(browser);
    await page.goto(`${base}/c/${channel}?b=${id}`);
    if (mode === 'gone') {
      const note = await page.getByTestId('vod-gone').innerText({ timeout: 10_000 });
      await page.waitForFunction(() => location.search === '', null, { timeout: 5000 });
      return { note, search: await page.evaluate(() => location.search) };
    }
    await page.getByText('Replay', { exact: true }).waitFor({ timeout: 10_000 });
    await page.waitForFunction(() => (document.querySelector('video')?.currentTime ?? 0) > 1, null, { timeout: 15_000 });
    return { played: await page.evaluate(() => document.querySelector('video').currentTime), search: await page.evaluate(() => location.search) };
  });
} else {
await run('replay_link', 90_000, async (track) => {
  const browser = track(await launch());
  const page = await newPage(browser);
  await page.goto(`${base}/c/${channel}?b=${id}`);
  await page.getByText('Replay', { exact: true }).waitFor({ timeout: 10_000 });
  await page.waitForFunction(() => (document.querySelector('video')?.currentTime ?? 0) > 1, null, { timeout: 15_000 });
  const played = await page.evaluate(() => document.querySelector('video').currentTime);
  const current = await page.locator('.tile.current').count();
  await page.getByRole('button', { name: 'Share' }).click();
  const label = await page.locator('label[for=share-link]').innerText();
  const link = await page.locator('#share-link').inputValue();
  await screenshots(page, shots, 'replay-share');
  // On a phone the chat spans the page under the player, even empty.
  await page.setViewportSize(PHONE);
  const widths = await page.evaluate(() => ({
    chat: document.querySelector('.chat').getBoundingClientRect().width,
    stage: document.querySelector('.stage').getBoundingClientRect().width,
  }));
  await page.setViewportSize(DESKTOP);
  await page.getByRole('button', { name: 'Close the share panel' }).click();
  // The address follows the page once it has drawn the change.
  await page.getByRole('button', { name: 'Back to live' }).click();
  await page.waitForFunction(() => location.search === '', null, { timeout: 5000 });
  const afterLive = await page.evaluate(() => location.search);
  await page.locator('.tile-link').first().click();
  await page.waitForFunction(() => location.search !== '', null, { timeout: 5000 });
  const afterTile = await page.evaluate(() => location.search);
  return { played, current, label, link, afterLive, afterTile, widths };
});
}
