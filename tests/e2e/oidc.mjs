// "Sign in with a provider" in headless Chromium, against the real
// provider tests/e2e/oidc_provider.mjs runs (provider `test`, "Test ID"):
//
//   node oidc.mjs <scenario> <base> [args...]
//
//   signup   <base> <login> <username> <screenshot-dir>
//   again    <base> <login>
//   refused  <base> <login>
//   replay   <base> <login>
//   unlinked <base> <login>       (an identity whose address must not reach an account)
//   verified <base> <login>
//   link     <base> <user> <login> <screenshot-dir>
//
// Each prints ONE JSON line of what the pages showed; tests/oidc.rs judges it.

import { run, launch } from './browser.mjs';
import { newPage, screenshots, signIn } from './web_lib.mjs';

const [scenario, baseArg, ...rest] = process.argv.slice(2);
const base = (baseArg || '').replace(/\/+$/, '');
const CALLBACK = /\/auth\/oidc\/test\/callback/;

/// A fresh browser profile: no provider session, no onair session. The
/// provider's pages load a web font that this machine cannot reach.
async function fresh(browser) {
  const page = await newPage(browser);
  await page.context().route(/fonts\.googleapis\.com/, (r) => r.abort());
  return page;
}

/// On the provider's pages: sign in as `login` and consent, if asked.
async function atProvider(page, login) {
  await page.locator('input[name=login]').fill(login, { timeout: 10_000 });
  await page.locator('input[name=password]').fill('any password');
  await page.getByRole('button', { name: 'Sign-in' }).click();
  const consent = page.getByRole('button', { name: 'Continue' });
  await consent.waitFor({ timeout: 10_000 });
  await consent.click();
}

/// From the sign-in page to the provider, as `login`, and back.
async function signInWith(page, login) {
  await page.goto(`${base}/login`);
  await page.getByRole('link', { name: 'Sign in with Test ID' }).click();
  await atProvider(page, login);
  await page.waitForURL((u) => !u.pathname.startsWith('/interaction') && u.origin === base, { timeout: 10_000 });
  await page.waitForLoadState('load');
}

/// Runs a sign-in up to the provider's redirect back to onair, which it
/// stops and returns (the URL with the code and state). Browsers route only
/// the first request of a redirect chain, so the chain from the consent
/// (or, with `login` null, from the start) is followed here, in the
/// browser's own cookie jar.
async function callbackUrl(page, login, start) {
  let captured;
  const stop = async (route) => {
    let url = route.request().url();
    let resp = await route.fetch({ maxRedirects: 0 });
    for (let i = 0; i < 10; i++) {
      const loc = resp.headers()['location'];
      if (![301, 302, 303, 307, 308].includes(resp.status()) || !loc) break;
      url = new URL(loc, url).href;
      if (CALLBACK.test(url)) {
        captured = url;
        break;
      }
      resp = await page.context().request.get(url, { maxRedirects: 0 });
    }
    if (captured) await route.fulfill({ status: 200, contentType: 'text/plain', body: 'stopped before the callback' });
    else await route.fulfill({ response: resp });
  };
  const handler = (route) => {
    const req = route.request();
    const consent = req.method() === 'POST' && (req.postData() || '').includes('prompt=consent');
    if (/fonts\.googleapis\.com/.test(req.url())) return route.abort();
    return consent || (!login && req.url() === start) ? stop(route) : route.continue();
  };
  await page.route('**/*', handler);
  await page.goto(start);
  if (login) await atProvider(page, login);
  for (let i = 0; i < 100 && !captured; i++) await page.waitForTimeout(100);
  await page.unroute('**/*', handler);
  if (!captured) throw new Error('the provider never sent the browser back');
  return captured;
}

const me = (page) => page.evaluate(async () => {
  const r = await fetch('/api/me');
  return r.ok ? (await r.json()).user.username : r.status;
});
const oidcError = (page) => page.getByTestId('oidc-error').innerText({ timeout: 5000 });
const startUrl = `${base}/auth/oidc/test/start?next=%2F`;

const scenarios = {
  // A first sign-in: the sign-in page's button, the provider, then a
  // username to choose (suggested from the provider) and the dashboard.
  async signup(browser, [login, username, shots]) {
    const page = await fresh(browser);
    await page.goto(`${base}/login`);
    await page.getByRole('link', { name: 'Sign in with Test ID' }).waitFor({ timeout: 5000 });
    await screenshots(page, shots, 'oidc-sign-in');
    await signInWith(page, login);
    const landed = new URL(page.url()).pathname;
    const field = page.getByLabel('Username');
    await field.waitFor({ timeout: 5000 });
    const suggested = await field.inputValue();
    const before = await me(page);
    await screenshots(page, shots, 'oidc-username');
    await field.fill(username);
    await page.getByRole('button', { name: 'Create my account' }).click();
    await page.waitForURL((u) => u.pathname === '/dashboard', { timeout: 10_000 });
    const box = page.getByTestId('linked-providers');
    await box.getByTestId('linked').waitFor({ timeout: 5000 });
    const noPassword = await page.getByTestId('no-password').isVisible();
    return { landed, suggested, before, after: await me(page), linked: await box.innerText(), noPassword };
  },

  // The same identity again: straight in, no questions.
  async again(browser, [login]) {
    const page = await fresh(browser);
    await signInWith(page, login);
    return { landed: new URL(page.url()).pathname, me: await me(page) };
  },

  // A callback whose state was not this browser's, and a real one opened in
  // another browser: both refused, nobody signed in.
  async refused(browser, [login]) {
    const page = await fresh(browser);
    const url = new URL(await callbackUrl(page, login, startUrl));
    const forged = new URL(url);
    forged.searchParams.set('state', 'forged-state-value');
    await page.goto(forged.href);
    const wrongState = await oidcError(page);
    const wrongStateMe = await me(page);
    const other = await fresh(browser);
    await other.goto(url.href);
    const otherBrowser = await oidcError(other);
    return { wrongState, wrongStateMe, otherBrowser, otherBrowserMe: await me(other) };
  },

  // A code used once works; the same callback again is refused, and so is
  // the old code under a new sign-in's state (the provider refuses it).
  async replay(browser, [login]) {
    const page = await fresh(browser);
    const first = await callbackUrl(page, login, startUrl);
    await page.goto(first);
    const firstMe = await me(page);
    await page.goto(first);
    const sameAgain = await oidcError(page);
    // The provider remembers this browser now, so a new sign-in comes
    // straight back: with a new state, bound to this browser.
    const second = new URL(await callbackUrl(page, null, startUrl));
    second.searchParams.set('code', new URL(first).searchParams.get('code'));
    await page.evaluate(() => fetch('/api/auth/logout', { method: 'POST' }));
    await page.goto(second.href);
    const oldCode = await oidcError(page);
    return { firstMe, sameAgain, oldCode, oldCodeMe: await me(page) };
  },

  // An identity whose address the provider does not vouch for: whatever
  // account here has that address, it is not signed in to; a new account
  // is offered instead.
  async unlinked(browser, [login]) {
    const page = await fresh(browser);
    await signInWith(page, login);
    await page.getByLabel('Username').waitFor({ timeout: 5000 });
    return { landed: new URL(page.url()).pathname, me: await me(page) };
  },

  // One the provider vouches for: the account with that verified address.
  async verified(browser, [login]) {
    const page = await fresh(browser);
    await signInWith(page, login);
    return { landed: new URL(page.url()).pathname, me: await me(page) };
  },

  // Signed in with a password, the account page links a provider; later
  // that provider signs in to the same account.
  async link(browser, [user, login, shots]) {
    const page = await fresh(browser);
    await signIn(page, base, user, '/dashboard');
    const box = page.getByTestId('linked-providers');
    await box.getByRole('button', { name: 'Link Test ID' }).click();
    await atProvider(page, login);
    await page.waitForURL((u) => u.pathname === '/dashboard', { timeout: 10_000 });
    await box.getByTestId('linked').waitFor({ timeout: 5000 });
    await box.scrollIntoViewIfNeeded();
    await screenshots(page, shots, 'oidc-linked', null, box);
    const linked = await box.innerText();
    const later = await fresh(browser);
    await signInWith(later, login);
    return { linked, laterMe: await me(later) };
  },
};

run(`oidc ${scenario}`, 120_000, async (track) => {
  const f = scenarios[scenario];
  if (!f) throw new Error(`unknown scenario ${scenario}`);
  const browser = track(await launch());
  return f(browser, rest);
});
