// The API reference page (/api/docs) in headless Chromium:
//
//   node api_docs.mjs <base> <markup> [screenshot-dir]
//
// The page gets the server's own /api/openapi.json with the first
// operation's summary, the description and the first schema's description
// replaced by <markup>, so the page must show it as text. Prints ONE JSON
// line of what the page showed and exits 0; tests/web_app.rs judges it.

import { run, launch } from './browser.mjs';
import { DESKTOP, PHONE, newPage, screenshots } from './web_lib.mjs';

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const [baseArg, markup, shots] = process.argv.slice(2);
const base = (baseArg || '').replace(/\/+$/, '');
if (!base || !markup) {
  console.error('usage: node api_docs.mjs <base-url> <markup> [screenshot-dir]');
  process.exit(2);
}

await run('api_docs', 90_000, async (track) => {
  const browser = track(await launch());
  const res = await fetch(`${base}/api/openapi.json`);
  if (!res.ok) throw new Error(`/api/openapi.json: ${res.status}`);
  const doc = await res.json();
  const [path, item] = Object.entries(doc.paths || {})[0] || [];
  const method = Object.keys(item || {}).find((m) => METHODS.includes(m));
  if (!method) throw new Error('the document has no operation');
  item[method].summary = markup;
  doc.info = { ...doc.info, description: markup };
  const firstSchema = Object.values(doc.components?.schemas || {})[0];
  if (firstSchema && typeof firstSchema === 'object') firstSchema.description = markup;

  const open = async (viewport) => {
    const page = await newPage(browser, viewport);
    await page.route('**/api/openapi.json', (r) => r.fulfill({ json: doc }));
    // The scripts the page itself loads, before the document is drawn.
    await page.addInitScript(() => {
      document.addEventListener('DOMContentLoaded', () => { window.__scriptsAtLoad = document.scripts.length; });
    });
    await page.goto(`${base}/api/docs`);
    await page.locator('.api-docs[data-ready]').waitFor({ timeout: 15_000 });
    return page;
  };

  const page = await open(DESKTOP);
  const shown = await page.evaluate(() => [...document.querySelectorAll('section.op')].map((s) => ({
    method: s.dataset.method,
    path: s.dataset.path,
    id: s.id,
    pathText: s.querySelector('.op-path')?.textContent ?? null,
    summary: s.querySelector('.op-summary')?.textContent ?? null,
  })));
  const schemas = await page.evaluate(() => [...document.querySelectorAll('[data-schema]')].map((s) => ({
    name: s.dataset.schema,
    heading: s.querySelector('h3')?.textContent ?? null,
  })));
  // Contents entries whose operation section exists.
  const tocLinks = await page.evaluate(() => [...document.querySelectorAll('nav.toc a[href^="#op-"]')]
    .filter((a) => document.getElementById(a.getAttribute('href').slice(1))?.matches('section.op')).length);
  const injected = await page.evaluate(() => ({
    xss: window.__xss ?? null,
    scriptsAtLoad: window.__scriptsAtLoad ?? null,
    scripts: document.scripts.length,
    imgs: document.querySelectorAll('img').length,
    // Every kind of element on the reference: the component's own only.
    tags: [...new Set([...document.querySelectorAll('main *')].map((e) => e.tagName.toLowerCase()))].sort(),
    intro: document.querySelector('.api-docs .intro')?.textContent ?? null,
  }));

  // A schema link in an operation lands on that schema's section.
  const ref = page.locator('section.op a[data-ref]').first();
  const link = { ref: await ref.getAttribute('data-ref'), href: await ref.getAttribute('href') };
  link.scrollBefore = await page.evaluate(() => window.scrollY);
  await ref.click();
  await page.waitForFunction((h) => location.hash === h, link.href, { timeout: 5000 });
  Object.assign(link, await page.evaluate(() => {
    const t = document.querySelector(':target');
    return {
      hash: location.hash,
      targetSchema: t?.dataset.schema ?? null,
      targetTop: t ? t.getBoundingClientRect().top : null,
      viewportHeight: window.innerHeight,
      scrollAfter: window.scrollY,
    };
  }));
  if (shots) await screenshots(page, shots, 'api-docs', () => page.locator('.api-docs[data-ready]').waitFor());

  // A phone: nothing wider than the screen.
  const phone = await open(PHONE);
  const overflow = await phone.evaluate(() => {
    const width = document.documentElement.clientWidth;
    return {
      clientWidth: width,
      scrollWidth: document.documentElement.scrollWidth,
      bodyScrollWidth: document.body.scrollWidth,
      wide: [...document.querySelectorAll('body *')]
        .filter((e) => e.getBoundingClientRect().right > width + 1)
        .slice(0, 5)
        .map((e) => `${e.tagName.toLowerCase()}.${e.className} ${(e.textContent || '').slice(0, 40)}`),
    };
  });
  return { patched: { method, path }, shown, schemas, tocLinks, injected, link, overflow };
});
