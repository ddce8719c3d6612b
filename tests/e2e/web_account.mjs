// The account pages in headless Chromium, one scenario per run
// (passwords: pw-USER-secret):
//
//   node web_account.mjs sessions       <base> <user> <screenshot-dir>
//   node web_account.mjs account        <base> <user> <new-password>
//   node web_account.mjs email          <base> <user> <new-address>
//   node web_account.mjs emailConfirmed <base> <user> <link> <screenshot-dir>
//   node web_account.mjs mailLinks      <base> <verify-link> <reset-link> <new-password> <username>
//   node web_account.mjs invite         <base> <admin> <new-user> <screenshot-dir>
//   node web_account.mjs console        <base> <admin> <user> <screenshot-dir>
//   node web_account.mjs liveNow        <base> <admin> <channel>
//   node web_account.mjs viewer         <base> <new-user>
//   node web_account.mjs closed         <base>
//
// Each prints ONE JSON line of what the pages showed and exits 0; the Rust
// side (tests/web_account.rs) judges it. On a failure: stderr, exit 1.

import { run, launch } from './browser.mjs';
import { newPage, password, screenshots, signIn as signInAt } from './web_lib.mjs';

const [scenario, baseArg, ...rest] = process.argv.slice(2);
const base = (baseArg || '').replace(/\/+$/, '');
const signIn = (page, user, next) => signInAt(page, base, user, next);

/// Fills the sign-up form on the page it is on and submits it.
async function register(page, user) {
  await page.getByLabel('Username').fill(user);
  await page.getByLabel('Password', { exact: true }).fill(password(user));
  await page.getByRole('button', { name: 'Create an account' }).click();
}

const scenarios = {
  // The dashboard lists where the account is signed in (another device
  // signed in through the API first), signs that device out, then every
  // device, this page included.
  async sessions(browser, [user, shots]) {
    const page = await newPage(browser);
    await signIn(page, user, '/dashboard');
    const box = page.getByTestId('sessions');
    await box.getByRole('button', { name: 'Sign out', exact: true }).waitFor({ timeout: 5000 });
    const listed = await box.locator('li').allInnerTexts();
    await box.scrollIntoViewIfNeeded();
    await screenshots(page, shots, 'sessions');
    await box.getByRole('button', { name: 'Sign out', exact: true }).click();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=sessions] li').length === 1, null, { timeout: 5000 });
    const afterOne = await box.locator('li').allInnerTexts();
    await box.getByRole('button', { name: 'Sign out everywhere' }).click();
    // Signed out here too: the dashboard asks for a sign-in.
    await page.getByRole('button', { name: 'Sign in' }).first().waitFor({ timeout: 5000 });
    const me = await page.evaluate(async () => (await fetch('/api/me')).status);
    return { listed, afterOne, me };
  },

  // The dashboard changes the password, then deletes the account (after
  // typing its name).
  async account(browser, [user, newPassword]) {
    const page = await newPage(browser);
    await signIn(page, user, '/dashboard');
    const box = page.getByTestId('account');
    await box.waitFor({ timeout: 5000 });
    await box.getByLabel('Current password').fill('wrong-password');
    await box.getByLabel('New password (8 characters or more)').fill(newPassword);
    await box.getByRole('button', { name: 'Change password' }).click();
    const wrong = await box.getByRole('alert').innerText({ timeout: 5000 });
    await box.getByLabel('Current password').fill(`pw-${user}-secret`);
    await box.getByRole('button', { name: 'Change password' }).click();
    await box.getByText('Password changed.').waitFor({ timeout: 5000 });
    await box.getByRole('button', { name: 'Delete account…' }).click();
    const del = box.getByRole('button', { name: 'Delete my account' });
    const disabledBefore = await del.isDisabled();
    await box.getByLabel('Your username').fill(user);
    await del.click();
    await page.getByRole('button', { name: 'Sign in' }).first().waitFor({ timeout: 5000 });
    const me = await page.evaluate(async () => (await fetch('/api/me')).status);
    return { wrong, disabledBefore, me };
  },

  // The dashboard asks for a new address: a wrong password is refused and
  // says so; with the right one, the page says where the link went.
  async email(browser, [user, newEmail]) {
    const page = await newPage(browser);
    await signIn(page, user, '/dashboard');
    const box = page.getByTestId('email');
    await box.waitFor({ timeout: 5000 });
    const before = await box.locator('p').first().innerText();
    await box.getByLabel('New address').fill(newEmail);
    await box.getByLabel('Password').fill('wrong-password');
    await box.getByRole('button', { name: 'Change email' }).click();
    const wrong = await box.getByRole('alert').innerText({ timeout: 5000 });
    await box.getByLabel('Password').fill(`pw-${user}-secret`);
    await box.getByRole('button', { name: 'Change email' }).click();
    await box.getByText('Check ').waitFor({ timeout: 5000 });
    const sent = await box.getByRole('status').innerText();
    return { before, wrong, sent };
  },

  // The mailed link confirms the new address; the dashboard shows it,
  // verified.
  async emailConfirmed(browser, [user, link, shots]) {
    const page = await newPage(browser);
    await page.goto(link);
    await page.getByTestId('verify-done').waitFor({ timeout: 10_000 });
    await signIn(page, user, '/dashboard');
    const box = page.getByTestId('email');
    await box.waitFor({ timeout: 5000 });
    await screenshots(page, shots, 'dashboard-email', null, box);
    return { after: await box.locator('p').first().innerText() };
  },

  // The pages mailed links open: verifying an address on opening, choosing
  // a new password, and asking for a reset link from the sign-in page.
  async mailLinks(browser, [verifyLink, resetLink, newPassword, username]) {
    const page = await newPage(browser);
    await page.goto(verifyLink);
    await page.getByTestId('verify-done').waitFor({ timeout: 10_000 });
    await page.goto(resetLink);
    await page.getByLabel('New password').fill(newPassword);
    await page.getByRole('button', { name: 'Set the password' }).click();
    await page.getByTestId('reset-done').waitFor({ timeout: 10_000 });
    const hashAfterReset = await page.evaluate(() => location.hash);
    await page.goto(`${base}/login`);
    await page.getByRole('link', { name: 'Forgot your password?' }).click();
    await page.getByLabel('Username').fill(username);
    await page.getByRole('button', { name: 'Send me a link' }).click();
    await page.getByTestId('reset-sent').waitFor({ timeout: 10_000 });
    return { verified: true, reset: true, hashAfterReset, forgotSent: true };
  },

  // An admin makes a broadcaster's invite in the console; the link, opened
  // in another browser, registers an account that may stream at once.
  async invite(browser, [admin, user, shots]) {
    const page = await newPage(browser);
    await signIn(page, admin, '/admin');
    const box = page.getByTestId('invites');
    await box.getByLabel('May stream (broadcaster)').check();
    await box.getByRole('button', { name: 'Make an invite link' }).click();
    const link = await box.getByTestId('invite-link').inputValue({ timeout: 5000 });
    await screenshots(page, shots, 'admin-invites', null, box);
    const guest = await newPage(this.track(await launch()));
    await guest.goto(link);
    await guest.getByTestId('invited').waitFor({ timeout: 5000 });
    await register(guest, user);
    await guest.waitForURL((u) => u.pathname === '/dashboard', { timeout: 10_000 });
    await guest.getByTestId('stream-key').waitFor({ timeout: 5000 });
    await page.reload();
    const list = page.getByTestId('invites');
    await list.getByText(`used by ${user}`).waitFor({ timeout: 5000 });
    const listed = await list.locator('li').allInnerTexts();
    return { link, listed };
  },

  // The console finds a user, gives them the broadcaster role, and the
  // audit log shows it; on a phone nothing scrolls sideways.
  async console(browser, [admin, user, shots]) {
    const page = await newPage(browser);
    await signIn(page, admin, '/admin');
    const users = page.getByTestId('users');
    await users.getByPlaceholder('Name starts with…').fill(user.slice(0, 2));
    await users.getByRole('button', { name: 'Search' }).click();
    const row = users.locator(`li[data-user="${user}"]`);
    await row.waitFor({ timeout: 5000 });
    await row.getByLabel(`Role of ${user}`).selectOption('broadcaster');
    const status = await users.getByText(`${user} is now broadcaster.`).innerText({ timeout: 5000 });
    await row.getByRole('button', { name: 'Suspend' }).click();
    await users.getByText(`${user} is suspended.`).waitFor({ timeout: 5000 });
    // The status line can come before the row is drawn again.
    await row.getByRole('button', { name: 'Lift suspension' }).waitFor({ timeout: 5000 });
    const suspendedRow = await row.innerText();
    // A site ban, listed, then lifted.
    const bans = page.getByTestId('site-bans');
    await bans.getByLabel('Username').fill(user);
    await bans.getByRole('button', { name: 'Ban from every chat' }).click();
    const banned = await bans.locator(`li[data-banned="${user}"]`).innerText({ timeout: 5000 });
    await bans.locator(`li[data-banned="${user}"]`).getByRole('button', { name: 'Lift' }).click();
    await bans.locator(`li[data-banned="${user}"]`).waitFor({ state: 'detached', timeout: 5000 });
    const audit = page.getByTestId('audit');
    await audit.getByRole('button', { name: 'Refresh' }).click();
    await audit.getByText('user.role').first().waitFor({ timeout: 5000 });
    const entries = await audit.locator('li').allInnerTexts();
    // Categories: added, renamed; another added and deleted.
    const cats = page.getByTestId('categories');
    const add = async (slug, name) => {
      await cats.getByLabel('Slug (a-z, 0-9, _ and -)').fill(slug);
      await cats.getByLabel('Name', { exact: true }).fill(name);
      await cats.getByRole('button', { name: 'Add category' }).click();
      await cats.locator(`li[data-category="${slug}"]`).waitFor({ timeout: 5000 });
      // Done once the form is cleared for the next one.
      await page.waitForFunction(() => document.getElementById('cat-slug')?.value === '', null, { timeout: 5000 });
    };
    await add('music', 'Music');
    await add('gone', 'Gone soon');
    await cats.getByLabel('Name of music').fill('Music & Talk');
    await cats.locator('li[data-category="music"]').getByRole('button', { name: 'Rename' }).click();
    await page.waitForFunction(() => {
      const b = document.querySelector('li[data-category="music"] button');
      return b && b.disabled;
    }, null, { timeout: 5000 });
    await cats.locator('li[data-category="gone"]').getByRole('button', { name: 'Delete' }).click();
    await cats.locator('li[data-category="gone"]').waitFor({ state: 'detached', timeout: 5000 });
    await screenshots(page, shots, 'admin-users', null, users);
    await screenshots(page, shots, 'admin-audit', null, audit);
    await page.setViewportSize({ width: 360, height: 740 });
    const sideways = await page.evaluate(() => document.documentElement.scrollWidth > document.documentElement.clientWidth);
    return { status, suspendedRow, banned, entries, sideways };
  },

  // The console lists a live channel; "Rotate key" ends it and the list
  // empties.
  async liveNow(browser, [admin, channel]) {
    const page = await newPage(browser);
    await signIn(page, admin, '/admin');
    const box = page.getByTestId('live-now');
    const row = box.locator(`li[data-channel="${channel}"]`);
    await row.waitFor({ timeout: 10_000 });
    const listed = await row.innerText();
    await row.getByRole('button', { name: 'Rotate key' }).click();
    const status = await box.getByText('key is replaced').innerText({ timeout: 5000 });
    return { listed, status };
  },

  // A new account on a server without --open-streaming: the dashboard has
  // no stream key and says how streaming comes.
  async viewer(browser, [user]) {
    const page = await newPage(browser);
    await page.goto(`${base}/register`);
    await register(page, user);
    await page.waitForURL((u) => u.pathname === '/dashboard', { timeout: 10_000 });
    const note = await page.getByTestId('not-streaming').innerText({ timeout: 5000 });
    const keys = await page.getByTestId('stream-key').count();
    return { note, keys };
  },

  // With registration closed the sign-up page says so and has no form.
  async closed(browser) {
    const page = await newPage(browser);
    await page.goto(`${base}/register`);
    const text = await page.getByTestId('registration-closed').innerText({ timeout: 5000 });
    const forms = await page.locator('form').count();
    return { text, forms };
  },
};

const fn = scenarios[scenario];
if (!fn || !base) {
  console.error(`usage: node web_account.mjs <${Object.keys(scenarios).join('|')}> <base-url> ...`);
  process.exit(2);
}
await run(`web_account ${scenario}`, 120_000, async (track) => {
  const browser = track(await launch());
  return fn.call({ track }, browser, rest);
});
