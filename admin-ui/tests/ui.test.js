// Browser test of the admin UI served by a running ledgerbridge node.
//
//   LEDGERBRIDGE_URL=http://127.0.0.1:18080 LEDGERBRIDGE_TOKEN=lbt_… npm test
//
// scripts/test.sh starts a demo node and sets both variables. The browser is Debian's chromium,
// driven by playwright-core (no browser download); set CHROMIUM to use another binary.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const BASE_URL = requiredEnv('LEDGERBRIDGE_URL').replace(/\/+$/, '');
const TOKEN = requiredEnv('LEDGERBRIDGE_TOKEN');
const WRONG_TOKEN = 'lbt_not-a-valid-token';
const COMPONENTS = ['api', 'store', 'bus', 'ledger'];
const SCREENSHOT = fileURLToPath(new URL('../test-results/status.png', import.meta.url));
const TIMEOUT_MS = 15_000;

function requiredEnv(name) {
  const value = process.env[name]?.trim();
  if (!value) {
    throw new Error(
      `${name} is not set. The admin UI test needs a running node: set LEDGERBRIDGE_URL ` +
        '(e.g. http://127.0.0.1:18080) and LEDGERBRIDGE_TOKEN (the admin token, file ' +
        '`admin-token` in the data directory), or run scripts/test.sh, which does both.',
    );
  }
  return value;
}

let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

after(async () => {
  await browser?.close();
});

/** A fresh page (own context, so no sessionStorage carries over) on the UI's start page. */
async function openUi(t) {
  const context = await browser.newContext();
  context.setDefaultTimeout(TIMEOUT_MS);
  t.after(() => context.close());
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (err) => pageErrors.push(err));
  t.after(() => assert.deepEqual(pageErrors, [], 'uncaught errors in the page'));
  const response = await page.goto(`${BASE_URL}/`);
  assert.equal(response?.status(), 200, `GET ${BASE_URL}/`);
  return page;
}

/** Waits until `locator` has exactly the text `expected` (surrounding whitespace ignored). */
async function waitForText(locator, expected) {
  const exact = new RegExp(`^\\s*${expected.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*$`);
  try {
    await locator.filter({ hasText: exact }).waitFor();
  } catch {
    const actual = await locator.allTextContents();
    assert.fail(`${locator} should read ${JSON.stringify(expected)}, reads ${JSON.stringify(actual)}`);
  }
}

async function submitToken(page, token) {
  await page.getByLabel('Admin token').fill(token);
  await page.getByRole('button', { name: 'Show events' }).click();
}

test('status page shows the node up with one row per component', { timeout: 60_000 }, async (t) => {
  const page = await openUi(t);

  await waitForText(page.getByTestId('overall'), 'up');

  const table = page.getByTestId('components');
  await table.locator('tbody tr').first().waitFor();
  const names = await table
    .locator('tbody tr')
    .evaluateAll((trs) => trs.map((tr) => tr.dataset.component));
  for (const name of COMPONENTS) {
    assert.equal(names.filter((n) => n === name).length, 1, `one row for ${name} in [${names}]`);
    await waitForText(table.locator(`tr[data-component="${name}"] td.state`), 'up');
  }
});

test('a wrong token shows the API error and no events', { timeout: 60_000 }, async (t) => {
  // The message the UI must show is the API's own.
  const response = await fetch(`${BASE_URL}/api/v1/system/events?limit=100`, {
    headers: { Authorization: `Bearer ${WRONG_TOKEN}` },
  });
  assert.equal(response.status, 401);
  const { error } = await response.json();
  assert.equal(error.code, 'unauthorized');

  const page = await openUi(t);
  await submitToken(page, WRONG_TOKEN);

  await waitForText(page.getByRole('status'), error.message);
  assert.equal(await page.getByTestId('events').locator('tbody tr').count(), 0);
});

test('the right token lists the events, node.started among them', { timeout: 60_000 }, async (t) => {
  const page = await openUi(t);
  await submitToken(page, TOKEN);

  // The status line and the rows are written together; the line reads "<shown> of <end> events"
  // on success and the API's error message otherwise.
  const status = page.getByRole('status');
  await status.filter({ hasText: /\S/ }).waitFor();
  const statusText = (await status.textContent()).trim();
  const [, shown, end] = statusText.match(/^(\d+) of (\d+) events$/) ?? [];
  assert.ok(shown, `the status line should count the events, reads "${statusText}"`);

  const rows = page.getByTestId('events').locator('tbody tr');
  const types = await rows.evaluateAll((trs) => trs.map((tr) => tr.cells[2].textContent));
  assert.equal(types.length, Number(shown), `rows against "${statusText}"`);
  assert.ok(Number(end) >= types.length, `"${statusText}"`);
  assert.ok(types.includes('node.started'), `node.started among the event types ${types}`);
});

test('screenshot of the status page', { timeout: 60_000 }, async (t) => {
  const page = await openUi(t);
  await waitForText(page.getByTestId('overall'), 'up');
  await page.getByTestId('components').locator('tbody tr').first().waitFor();

  await mkdir(dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });

  const png = await readFile(SCREENSHOT);
  assert.deepEqual([...png.subarray(1, 4)], [...Buffer.from('PNG')], `${SCREENSHOT} is a PNG`);
});
