// The one place that launches headless Chromium for the browser tests
// (whep_watch.mjs, hls_watch.mjs, web_app.mjs).
//
// Chromium is the system one (Debian package `chromium`); playwright-core
// downloads no browser. Override with CHROMIUM=/path/to/chrome.

import { chromium } from 'playwright-core';

export const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

export const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // Sound plays without a click, so getStats() reports audio energy.
  '--autoplay-policy=no-user-gesture-required',
];

/// Chromium's fake camera and microphone (a test pattern and a beep), and
/// permission prompts answered yes: for going live from the page.
export const FAKE_MEDIA_ARGS = ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'];

export function launch(extraArgs = []) {
  return chromium.launch({ executablePath, headless: true, args: [...ARGS, ...extraArgs], timeout: 30_000 });
}

/// [`launch`] for pages on `url`'s origin: an https one in the tests serves
/// a self-signed certificate (tests/tls.rs, tests/proxy.rs).
export function launchFor(url, extraArgs = []) {
  const https = new URL(url).protocol === 'https:';
  return launch([...extraArgs, ...(https ? ['--ignore-certificate-errors'] : [])]);
}

/// Closes the browser, but never waits more than 5 s: close() can hang when
/// the browser is wedged, and the script must still exit.
export async function closeBrowser(browser) {
  if (!browser) return;
  await Promise.race([browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
}

/// Runs `main(track)` with a hard timeout; `track(browser)` registers a
/// browser to close on any exit. On failure: the message on stderr, exit 1.
/// On success `main`'s result goes to stdout as ONE JSON line, exit 0.
export async function run(name, hardTimeoutMs, main) {
  const browsers = [];
  let finished = false;
  const closeAll = () => Promise.all(browsers.map(closeBrowser));
  const fail = async (msg) => {
    if (finished) return;
    finished = true;
    console.error(`${name}: ${msg}`);
    await closeAll();
    process.exit(1);
  };
  const timer = setTimeout(() => fail(`hard timeout after ${hardTimeoutMs} ms`), hardTimeoutMs);
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => fail(`killed by ${sig}`));
  process.on('unhandledRejection', (e) => fail(`unhandled rejection: ${e?.stack || e}`));
  try {
    const out = await main((b) => { browsers.push(b); return b; });
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    await closeAll();
    process.stdout.write(JSON.stringify(out) + '\n');
    process.exit(0);
  } catch (e) {
    await fail(e?.stack || String(e));
  }
}
