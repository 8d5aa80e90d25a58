// The explorer in a real browser: Debian's chromium, headless, driven by
// playwright-core (which never downloads a browser), against node0 of a
// live testnet whose API address is in KLERO_API (.ci/explorer-check starts
// it). The page must list a block whose id `GET /blocks/{h}` returns, a
// click on it must open that block's page, and a screenshot is saved. Every
// request the page makes is checked to stay on the node's own origin.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const API = (process.env.KLERO_API || '').replace(/\/$/, '');
const SHOTS = process.env.KLERO_SCREENSHOTS || join(import.meta.dirname, 'screenshots');
// Flags that keep chromium from calling home; the profile is a fresh dir.
const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
];

async function getJson(path) {
  const response = await fetch(API + path);
  assert.equal(response.status, 200, `GET ${path}`);
  return response.json();
}

test('the explorer lists real blocks and opens one', { timeout: 120_000 }, async () => {
  assert.ok(API.startsWith('http://127.0.0.1:'), `KLERO_API must be a local node, got ${API}`);
  const profile = mkdtempSync(join(tmpdir(), 'klero-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: FLAGS,
    timeout: 60_000,
  });
  const elsewhere = [];
  try {
    // Anything not on the node's origin is refused and remembered.
    await context.route('**/*', route => {
      const url = route.request().url();
      if (url.startsWith(API + '/') || url === API) return route.continue();
      elsewhere.push(url);
      return route.abort();
    });
    const page = context.pages()[0] || await context.newPage();
    const errors = [];
    page.on('pageerror', e => errors.push(e.message));
    await page.goto(API + '/', { waitUntil: 'load' });

    // A canonical block below the head (a head block may still be reorged away).
    const row = page.locator('#blocks tr:not(.orphan) a.block-link[data-height]:not([data-height="0"])');
    await row.first().waitFor({ timeout: 60_000 });
    let id, height;
    for (let attempt = 0; ; attempt++) {
      const links = await row.evaluateAll(as => as.map(a => [a.dataset.id, Number(a.dataset.height)]));
      [id, height] = links[Math.min(1, links.length - 1)];
      const block = await getJson(`/blocks/${height}`);
      if (block.id === id) break;
      // The page polled before a reorg moved that height: look again.
      assert.ok(attempt < 10, `the page's block ${id} at ${height} is not GET /blocks/${height} (${block.id})`);
      await page.waitForTimeout(1000);
    }
    await page.locator('#fairness .win-bar').first().waitFor();
    mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: join(SHOTS, 'explorer-home.png'), fullPage: true });

    await page.locator(`#blocks a.block-link[data-id="${id}"]`).first().click();
    await page.waitForURL(`**/#/block/${id}`);
    await assert.doesNotReject(page.locator('#block-id', { hasText: id }).waitFor({ timeout: 10_000 }));
    assert.match(await page.locator('#block').innerText(), new RegExp(`height\\s+${height}\\b`));
    await page.screenshot({ path: join(SHOTS, 'explorer-block.png'), fullPage: true });
    assert.deepEqual(errors, [], 'no script errors');
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
  assert.deepEqual(elsewhere, [], 'the page asked for nothing outside the node');
});
