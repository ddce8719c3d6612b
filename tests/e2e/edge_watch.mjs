// The watch page on an edge that is full: the player's WHEP offer is sent
// on to another edge (307) and plays from there; the signed-in viewer's
// chat goes on where the page is.
//
//   node edge_watch.mjs <base> <channel> <user> <seconds>
//
// Prints ONE JSON line: the WHEP responses the page saw (status and URL),
// the player's state and WebRTC stats after <seconds>, and whether the
// message typed into the chat came back on the page with its author.

import { run, launch } from './browser.mjs';
import { newPage, signIn, sleep, playerState, waitPlaying, webrtcStats } from './web_lib.mjs';

const [baseArg, channel, user, secondsArg] = process.argv.slice(2);
if (!baseArg || !channel || !user || !(Number(secondsArg) > 0)) {
  console.error('usage: node edge_watch.mjs <base> <channel> <user> <seconds>');
  process.exit(2);
}
const base = baseArg.replace(/\/+$/, '');
const seconds = Number(secondsArg);

await run('edge_watch', (seconds + 60) * 1000, async (track) => {
  const browser = track(await launch());
  const page = await newPage(browser);
  const whep = [];
  page.on('response', (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith('/whep/') && r.request().method() === 'POST') {
      whep.push({ status: r.status(), url: `${u.origin}${u.pathname}`, ticket: u.searchParams.has('ticket') });
    }
  });
  await signIn(page, base, user, `/c/${channel}`);
  const playing = await waitPlaying(page, 'webrtc', 30_000);
  await sleep(seconds * 1000);
  const later = await playerState(page);
  const stats = await webrtcStats(page);
  const text = `through the edge ${Date.now()}`;
  await page.locator('#chat-input').fill(text);
  await page.locator('#chat-input').press('Enter');
  const row = page.locator('.messages li').filter({ hasText: text });
  await row.waitFor({ timeout: 10_000 });
  const who = await row.locator('.who').innerText();
  return { whep, playing, later, stats, chat: { text, who } };
});
