// Opens the watch page of a live channel whose picture does not come, and
// reports what the player shows while it waits.
//
//   node watch_waiting.mjs <http-base-url> <channel> <seconds>
//
// Prints ONE JSON line: {"status": player status after <seconds>, "overlay":
// the overlay text, "waited_visible": whether the waiting overlay showed}.

import { run, launch } from './browser.mjs';

const [baseArg, channel, secondsArg] = process.argv.slice(2);
if (!baseArg || !channel || !(Number(secondsArg) > 0)) {
  console.error('usage: node watch_waiting.mjs <http-base-url> <channel> <seconds>');
  process.exit(2);
}
const base = baseArg.replace(/\/+$/, '');
const seconds = Number(secondsArg);

await run('watch_waiting', (seconds + 45) * 1000, async (track) => {
  const browser = track(await launch());
  const page = await browser.newPage();
  await page.goto(`${base}/c/${channel}`);
  let waitedVisible = false;
  try {
    await page.getByTestId('waiting').waitFor({ timeout: seconds * 1000 });
    waitedVisible = true;
  } catch { /* reported below */ }
  const overlay = waitedVisible ? await page.getByTestId('waiting').innerText() : null;
  const status = await page.locator('#player').getAttribute('data-status');
  return { status, overlay, waited_visible: waitedVisible };
});
