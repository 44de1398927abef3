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
const SAMPLE_CONNECTORS = ['sample-bank', 'sample-his', 'sample-land', 'sample-mall', 'sample-manifests'];
const CONNECTOR_STATES = ['running', 'idle', 'paused', 'error', 'stopped'];
const SCREENSHOT = fileURLToPath(new URL('../test-results/status.png', import.meta.url));
const CONNECTORS_SCREENSHOT = fileURLToPath(new URL('../test-results/connectors.png', import.meta.url));
// The demo's load generator writes 5 rows/s; some connector has new rows well within this.
const ROWS_GROW_TIMEOUT_MS = 20_000;
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
  await page.getByRole('button', { name: 'Use token' }).click();
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
  assert.equal(await page.getByTestId('connectors').locator('tbody tr').count(), 0);
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

/** A page with the right token entered and a row for every sample connector. */
async function openConnectors(t) {
  const page = await openUi(t);
  await submitToken(page, TOKEN);
  for (const name of SAMPLE_CONNECTORS) {
    await connectorRow(page, name).waitFor();
  }
  return page;
}

function connectorRow(page, name) {
  return page.getByTestId('connectors').locator(`tbody tr[data-connector="${name}"]`);
}

/** Waits until the state badge of `name` reads one of `states`; returns the state. */
async function waitForState(page, name, states) {
  const badge = connectorRow(page, name).locator('td.connector-state .badge');
  try {
    await badge.filter({ hasText: new RegExp(`^\\s*(${states.join('|')})\\s*$`) }).waitFor();
  } catch {
    assert.fail(`${name} should be ${states.join(' or ')}, is ${JSON.stringify(await badge.textContent())}`);
  }
  return (await badge.textContent()).trim();
}

/** The rows_total of every listed connector, from the cells' raw values. */
async function rowsTotals(page) {
  return page
    .getByTestId('connectors')
    .locator('tbody tr')
    .evaluateAll((trs) => Object.fromEntries(trs.map((tr) => [
      tr.dataset.connector,
      Number(tr.querySelector('td.rows').dataset.value),
    ])));
}

/** The detail panel once it shows `view` of connector `name`. */
async function detailPanel(page, name, view) {
  const panel = page.locator(`#connector-detail[data-connector="${name}"][data-view="${view}"][aria-busy="false"]`);
  await panel.waitFor();
  return panel;
}

test('connectors: the five sample connectors with a state, and rows growing', { timeout: 60_000 }, async (t) => {
  const page = await openConnectors(t);

  const names = await page
    .getByTestId('connectors')
    .locator('tbody tr')
    .evaluateAll((trs) => trs.map((tr) => tr.dataset.connector));
  assert.deepEqual([...names].sort(), SAMPLE_CONNECTORS, 'one row per sample connector');
  for (const name of SAMPLE_CONNECTORS) {
    await waitForState(page, name, CONNECTOR_STATES);
    const type = (await connectorRow(page, name).locator('td.connector-type').textContent()).trim();
    assert.equal(type, name === 'sample-manifests' ? 'files' : 'sqlite', `type of ${name}`);
  }

  const before = await rowsTotals(page);
  for (const [name, rows] of Object.entries(before)) {
    assert.ok(Number.isInteger(rows) && rows >= 0, `rows of ${name}: ${rows}`);
  }
  // The table refreshes itself: no reload, no click.
  try {
    await page.waitForFunction(
      (initial) => [...document.querySelectorAll('#connectors tbody tr')].some(
        (tr) => Number(tr.querySelector('td.rows').dataset.value) > initial[tr.dataset.connector],
      ),
      before,
      { timeout: ROWS_GROW_TIMEOUT_MS, polling: 500 },
    );
  } catch {
    assert.fail(`no connector's rows grew within ${ROWS_GROW_TIMEOUT_MS} ms: ` +
      `${JSON.stringify(before)} then ${JSON.stringify(await rowsTotals(page))}`);
  }
});

test('connectors: Pause makes sample-bank paused, Resume brings it back', { timeout: 60_000 }, async (t) => {
  const page = await openConnectors(t);
  // Whatever happens below, leave the connector running for whoever uses the node next.
  t.after(() => fetch(`${BASE_URL}/api/v1/connectors/sample-bank/resume`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${TOKEN}` },
  }));
  const row = connectorRow(page, 'sample-bank');
  await waitForState(page, 'sample-bank', ['running', 'idle']);

  await row.getByRole('button', { name: 'Pause sample-bank', exact: true }).click();
  await waitForState(page, 'sample-bank', ['paused']);
  // Paused by the node, not only by the page: the API says so too.
  const status = await (await fetch(`${BASE_URL}/api/v1/connectors`, {
    headers: { Authorization: `Bearer ${TOKEN}` },
  })).json();
  assert.equal(status.find((c) => c.name === 'sample-bank')?.state, 'paused');

  await row.getByRole('button', { name: 'Resume sample-bank', exact: true }).click();
  await waitForState(page, 'sample-bank', ['running', 'idle']);
  await row.getByRole('button', { name: 'Pause sample-bank', exact: true }).waitFor();
});

test('connectors: Test connection of sample-his shows ok and SQLite', { timeout: 60_000 }, async (t) => {
  const page = await openConnectors(t);
  await connectorRow(page, 'sample-his')
    .getByRole('button', { name: 'Test connection sample-his', exact: true })
    .click();

  const result = (await detailPanel(page, 'sample-his', 'test')).locator('.test-result');
  const text = (await result.textContent()).trim();
  assert.equal(await result.getAttribute('data-ok'), 'true', `the test should succeed: "${text}"`);
  assert.match(text, /^Connection OK: /);
  assert.match(text, /SQLite/);
});

test('connectors: Tables of sample-mall lists mall_orders with primary key id', { timeout: 60_000 }, async (t) => {
  const page = await openConnectors(t);
  await connectorRow(page, 'sample-mall').getByRole('button', { name: 'Tables sample-mall', exact: true }).click();

  const panel = await detailPanel(page, 'sample-mall', 'tables');
  const tables = await panel
    .locator('.source-table')
    .evaluateAll((sections) => sections.map((s) => s.dataset.table));
  assert.ok(tables.includes('mall_orders'), `mall_orders among the tables ${tables}`);

  const orders = panel.locator('.source-table[data-table="mall_orders"]');
  await waitForText(orders.locator('.primary-key'), 'id');
  // Its columns show once the table is opened.
  await orders.locator('summary').click();
  await orders.locator('table.columns').waitFor({ state: 'visible' });
  const columns = await orders.locator('table.columns tbody tr').evaluateAll((trs) => trs.map((tr) => ({
    name: tr.dataset.column,
    kind: tr.querySelector('td.kind').textContent,
    sourceType: tr.querySelector('td.source-type').textContent,
    key: tr.querySelector('td.key').textContent,
  })));
  assert.ok(columns.length > 1, `columns of mall_orders: ${JSON.stringify(columns)}`);
  for (const c of columns) {
    assert.ok(c.kind && c.sourceType, `type and source type of ${JSON.stringify(c)}`);
  }
  assert.deepEqual(columns.filter((c) => c.key === 'primary key').map((c) => c.name), ['id']);
});

test('connectors: Quarantine of sample-manifests answers with its records or none', { timeout: 60_000 }, async (t) => {
  const page = await openConnectors(t);
  await connectorRow(page, 'sample-manifests')
    .getByRole('button', { name: 'Quarantine sample-manifests', exact: true })
    .click();

  const panel = await detailPanel(page, 'sample-manifests', 'quarantine');
  const response = await fetch(`${BASE_URL}/api/v1/quarantine?source=sample-manifests&limit=50`, {
    headers: { Authorization: `Bearer ${TOKEN}` },
  });
  assert.equal(response.status, 200);
  const records = await response.json();
  const shown = await panel.locator('table.quarantine tbody tr').count();
  if (records.length === 0) {
    assert.equal(shown, 0);
    await waitForText(panel.locator('p'), 'No quarantined records for sample-manifests.');
  } else {
    // New records may arrive between the page's request and ours.
    assert.ok(shown > 0 && shown <= records.length, `${shown} rows against ${records.length} records`);
  }
});

test('screenshot of the connectors', { timeout: 60_000 }, async (t) => {
  const page = await openConnectors(t);
  await connectorRow(page, 'sample-mall').getByRole('button', { name: 'Tables sample-mall', exact: true }).click();
  const panel = await detailPanel(page, 'sample-mall', 'tables');
  await panel.locator('.source-table[data-table="mall_orders"] summary').click();

  await mkdir(dirname(CONNECTORS_SCREENSHOT), { recursive: true });
  await page.setViewportSize({ width: 1400, height: 900 });
  await page.screenshot({ path: CONNECTORS_SCREENSHOT, fullPage: true });

  const png = await readFile(CONNECTORS_SCREENSHOT);
  assert.deepEqual([...png.subarray(1, 4)], [...Buffer.from('PNG')], `${CONNECTORS_SCREENSHOT} is a PNG`);
});
