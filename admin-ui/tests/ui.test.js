// Browser test of the admin UI served by a running ledgerbridge node.
//
//   LEDGERBRIDGE_URL=http://127.0.0.1:18080 LEDGERBRIDGE_TOKEN=lbt_… npm test
//
// scripts/test.sh starts a demo node and sets both variables. The browser is Debian's chromium,
// driven by playwright-core (no browser download); set CHROMIUM to use another binary. Set
// LEDGERBRIDGE_UI_SRC=1 to test the files in admin-ui/src instead of the copy compiled into the
// node (to work on the UI without rebuilding the node).

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
// The page's own files, served from admin-ui/src when LEDGERBRIDGE_UI_SRC is set.
const UI_FILES = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/ui/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/ui/style.css': ['style.css', 'text/css; charset=utf-8'],
};
const UI_FROM_SOURCE = ['1', 'true', 'yes'].includes(process.env.LEDGERBRIDGE_UI_SRC?.trim());
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

/** Serves the UI's files from admin-ui/src instead of the node's compiled-in copy. */
async function serveUiFromSource(context) {
  const origin = new URL(BASE_URL).origin;
  await context.route((url) => url.origin === origin && url.pathname in UI_FILES, async (route) => {
    const [file, contentType] = UI_FILES[new URL(route.request().url()).pathname];
    const body = await readFile(new URL(`../src/${file}`, import.meta.url));
    await route.fulfill({ status: 200, contentType, body });
  });
}

/** A fresh page (own context, so no sessionStorage carries over) on the UI's start page. */
async function openUi(t, path = '/') {
  const context = await browser.newContext();
  context.setDefaultTimeout(TIMEOUT_MS);
  t.after(() => context.close());
  if (UI_FROM_SOURCE) await serveUiFromSource(context);
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (err) => pageErrors.push(err));
  t.after(() => assert.deepEqual(pageErrors, [], 'uncaught errors in the page'));
  const response = await page.goto(`${BASE_URL}${path}`);
  assert.equal(response?.status(), 200, `GET ${BASE_URL}${path}`);
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

// --- Alerts ------------------------------------------------------------------------------------
//
// The demo's load generator writes labelled anomalies that the shipped rules catch: the default
// demo (5 rows/s, 2 % anomalies) raises its first alert about 90 seconds after it starts, then
// one every 10 to 20 seconds.

const ALERTS_SCREENSHOT = fileURLToPath(new URL('../test-results/alerts.png', import.meta.url));
const FIRST_ALERT_TIMEOUT_MS = 150_000;
const LIVE_ALERT_TIMEOUT_MS = 90_000;
const SEVERITIES = ['critical', 'high', 'medium', 'low'];

/** GET (or POST `body` to) the API with the admin token; returns [status, JSON body]. */
async function callApi(path, body) {
  const init = { headers: { Authorization: `Bearer ${TOKEN}` } };
  if (body !== undefined) {
    init.method = 'POST';
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(`${BASE_URL}${path}`, init);
  return [response.status, await response.json()];
}

async function getApi(path) {
  const [status, body] = await callApi(path);
  assert.equal(status, 200, `GET ${path}: ${JSON.stringify(body)}`);
  return body;
}

/** A page with the token entered, the alerts listed and the live stream connected. */
async function openAlerts(t, path = '/') {
  const page = await openUi(t, path);
  await submitToken(page, TOKEN);
  const live = page.locator('#alerts-live');
  try {
    await page.locator('#alerts-live[data-state="connected"]').waitFor();
  } catch {
    assert.fail(`the alert stream should connect; #alerts-live reads ${JSON.stringify(await live.textContent())}, ` +
      `#alerts-status ${JSON.stringify(await page.locator('#alerts-status').textContent())}`);
  }
  return page;
}

function alertRows(page) {
  return page.getByTestId('alerts').locator('tbody tr');
}

/**
 * The alerts table at one instant (rows, severity counters and status line read together, so an
 * alert arriving meanwhile cannot make them disagree).
 */
async function alertsTable(page) {
  return page.evaluate(() => ({
    rows: [...document.querySelectorAll('#alerts tbody tr')].map((tr) => ({
      id: Number(tr.dataset.alert),
      severity: tr.querySelector('td.alert-severity .badge').dataset.severity,
      rule: tr.querySelector('td.alert-rule .rule-id').textContent,
      status: tr.querySelector('td.alert-status .badge').dataset.status,
    })),
    counters: Object.fromEntries([...document.querySelectorAll('#alert-counters li')]
      .map((li) => [li.dataset.severity, Number(li.dataset.count)])),
    status: document.getElementById('alerts-status').textContent,
  }));
}

/** What each row of the alerts table shows. */
async function shownAlerts(page) {
  return (await alertsTable(page)).rows;
}

/** Waits until the node holds at least one alert; returns the newest ones. */
async function someAlerts(page) {
  try {
    await alertRows(page).first().waitFor({ timeout: FIRST_ALERT_TIMEOUT_MS });
  } catch {
    assert.fail(`no alert in the table within ${FIRST_ALERT_TIMEOUT_MS / 1000} s; the API lists ` +
      `${(await getApi('/api/v1/alerts?limit=1000')).length}`);
  }
  return getApi('/api/v1/alerts?limit=100');
}

/** The detail panel once it shows alert `id` (loaded, or failed to load). */
async function alertPanel(page, id) {
  const panel = page.locator(`#alert-detail[data-alert="${id}"][aria-busy="false"]`);
  await panel.waitFor();
  return panel;
}

async function openAlertDetail(page, id) {
  await page.getByRole('button', { name: `Open alert ${id}`, exact: true }).click();
  return alertPanel(page, id);
}

test('alerts: the stream parser reads server-sent events however they are chunked', { timeout: 60_000 }, async (t) => {
  const page = await openUi(t);
  const stream = 'event: alert\r\nid: 7\r\ndata: {"a":\r\ndata: 1}\r\n\r\n' +
    ': keep-alive\n\n' +
    'id: 8\n\n' +
    'data:no space\rdata:  two spaces\r\r' +
    'event: alert\nid: 9\ndata: {"id":9}\n\n' +
    'event: alert\nid: 10\ndata: {"cut off":';
  const expected = [
    { type: 'alert', id: '7', data: '{"a":\n1}' },
    { type: 'message', id: '8', data: 'no space\n two spaces' },
    { type: 'alert', id: '9', data: '{"id":9}' },
  ];
  // Whole, one character at a time, then cut in two at every position (a CRLF split across the
  // chunks among them).
  const results = await page.evaluate((text) => {
    const parse = (chunks) => {
      const events = [];
      // SseParser is a top-level class of the page's script.
      const parser = new SseParser((e) => events.push(e));
      for (const chunk of chunks) parser.feed(chunk);
      return { events, lastEventId: parser.lastEventId };
    };
    const runs = [parse([text]), parse([...text])];
    for (let i = 1; i < text.length; i++) runs.push(parse([text.slice(0, i), text.slice(i)]));
    return runs;
  }, stream);
  for (const run of results) {
    assert.deepEqual(run.events, expected);
    assert.equal(run.lastEventId, '10');
  }
});

test('alerts: a dropped stream is reopened, with backoff, after the last alert seen', { timeout: 60_000 }, async (t) => {
  const page = await openUi(t);
  // The newest alert the page was given before it connected: the first Last-Event-ID.
  let newestListed = null;
  page.on('response', async (response) => {
    if (new URL(response.url()).pathname !== '/api/v1/alerts') return;
    const ids = (await response.json()).map((a) => a.id);
    newestListed = Math.max(newestListed ?? 0, ...ids);
  });
  // The first connection delivers one (made-up, critical) alert and ends; the second is refused
  // with an error; the third reaches the node.
  const connections = [];
  const refusal = 'the store unavailable: refused by the UI test';
  let synthetic = null;
  await page.route('**/api/v1/alerts/stream', async (route) => {
    const lastEventId = route.request().headers()['last-event-id'];
    connections.push({ lastEventId, at: Date.now() });
    if (connections.length === 1) {
      synthetic = {
        id: Number(lastEventId) + 1,
        rule_id: 'ui-test.synthetic',
        rule_version: 3,
        severity: 'critical',
        key: 'made up by the UI test',
        explanation: 'not raised by the node: delivered by the UI test on a stream it then drops',
        event_ids: [],
        event_at_ms: null,
        detected_at_ms: Date.now(),
        status: 'open',
        assignee: null,
      };
      await route.fulfill({
        status: 200,
        contentType: 'text/event-stream',
        body: `: hello\n\nevent: alert\nid: ${synthetic.id}\ndata: ${JSON.stringify(synthetic)}\n\n`,
      });
    } else if (connections.length === 2) {
      await route.fulfill({
        status: 503,
        contentType: 'application/json',
        body: JSON.stringify({ error: { code: 'unavailable', message: refusal } }),
      });
    } else {
      await route.fallback();
    }
  });
  await submitToken(page, TOKEN);

  // While the second connection is refused, the page holds what it listed and the one alert the
  // first connection delivered (no alert from the node can arrive yet): read it all at once.
  const snapshot = await (await page.waitForFunction((text) => {
    const live = document.getElementById('alerts-live');
    if (live.dataset.state !== 'reconnecting' || !live.textContent.includes(text)) return null;
    return {
      rows: [...document.querySelectorAll('#alerts tbody tr')].map((tr) => ({
        id: Number(tr.dataset.alert),
        isNew: tr.dataset.new === 'true',
        critical: tr.dataset.severity === 'critical',
        badge: getComputedStyle(tr.querySelector('.alert-severity .badge')).backgroundColor,
        marker: getComputedStyle(tr.cells[0]).boxShadow,
      })),
      announced: document.getElementById('alerts-new').textContent,
      criticalCounter: Number(document.querySelector('#alert-counters li[data-severity="critical"]').dataset.count),
    };
  }, refusal)).jsonValue();
  await page.locator('#alerts-live[data-state="connected"]').waitFor();

  assert.equal(connections.length, 3, JSON.stringify(connections));
  assert.notEqual(newestListed, null, 'the page listed the alerts before connecting');
  assert.deepEqual(connections.map((c) => c.lastEventId),
    [String(newestListed), String(synthetic.id), String(synthetic.id)], 'Last-Event-ID of each connection');
  const [first, second] = [connections[1].at - connections[0].at, connections[2].at - connections[1].at];
  assert.ok(first >= 500 && second > first, `waits before reconnecting grow: ${first} ms, then ${second} ms`);

  // The alert it delivered is at the top, new, announced, counted, and stands out as critical.
  const [top, ...others] = snapshot.rows;
  assert.deepEqual({ id: top.id, isNew: top.isNew }, { id: synthetic.id, isNew: true });
  assert.equal(snapshot.announced, `New critical alert ${synthetic.id}: ui-test.synthetic, made up by the UI test.`);
  assert.equal(snapshot.criticalCounter, snapshot.rows.filter((r) => r.critical).length);
  assert.notEqual(top.marker, 'none', 'a critical row is marked');
  for (const other of others.filter((r) => !r.critical)) {
    assert.notEqual(other.badge, top.badge, 'a critical badge has its own colour');
    assert.equal(other.marker, 'none', 'only critical rows are marked');
  }
});

test('alerts: the table lists the API\'s alerts, newest first, counted by severity', { timeout: 200_000 }, async (t) => {
  const page = await openAlerts(t);
  await someAlerts(page);
  const { rows: shown, counters, status } = await alertsTable(page);
  const fromApi = await getApi('/api/v1/alerts?limit=1000');
  const byId = new Map(fromApi.map((a) => [a.id, a]));

  const ids = shown.map((a) => a.id);
  assert.deepEqual(ids, [...ids].sort((a, b) => b - a), 'newest first');
  for (const a of shown) {
    const expected = byId.get(a.id);
    assert.ok(expected, `alert ${a.id} is not in the API's list`);
    assert.deepEqual({ severity: a.severity, rule: a.rule, status: a.status },
      { severity: expected.severity, rule: expected.rule_id, status: expected.status }, `alert ${a.id}`);
  }
  // Every alert the API holds up to the newest one shown is there (the page lists the newest 100).
  const newestShown = ids[0];
  const expectedIds = fromApi.filter((a) => a.id <= newestShown).slice(0, 100).map((a) => a.id);
  assert.deepEqual(expectedIds.filter((id) => !ids.includes(id)), [], 'alerts missing from the table');

  for (const severity of SEVERITIES) {
    assert.equal(counters[severity], shown.filter((a) => a.severity === severity).length, `${severity} counter`);
  }
  assert.equal(Object.values(counters).reduce((x, y) => x + y, 0), shown.length, 'counters add up to the rows');
  assert.equal(status, `${shown.length} alerts, newest first.`);

  // A critical alert stands out from the others.
  const looks = await alertRows(page).evaluateAll((trs) => trs.map((tr) => ({
    critical: tr.dataset.severity === 'critical',
    marker: getComputedStyle(tr.cells[0]).boxShadow,
  })));
  for (const look of looks) assert.equal(look.marker !== 'none', look.critical, JSON.stringify(look));
});

test('alerts: a new alert appears live at the top, marked new, without a reload', { timeout: 120_000 }, async (t) => {
  const page = await openAlerts(t);
  const listRequests = [];
  page.on('request', (request) => {
    if (new URL(request.url()).pathname === '/api/v1/alerts') listRequests.push(request.url());
  });
  await page.evaluate(() => { window.sameDocument = true; });
  const newestBefore = Math.max(0, ...(await shownAlerts(page)).map((a) => a.id));

  // The top row and the announcement at the instant a newer alert is on top (another may follow
  // right after it).
  let arrived;
  try {
    arrived = await (await page.waitForFunction((newest) => {
      const first = document.querySelector('#alerts tbody tr');
      if (!first || Number(first.dataset.alert) <= newest) return null;
      return {
        id: Number(first.dataset.alert),
        isNew: first.dataset.new === 'true',
        marker: first.querySelector('.new-marker')?.textContent ?? null,
        rule: first.querySelector('td.alert-rule .rule-id').textContent,
        severity: first.dataset.severity,
        announced: document.getElementById('alerts-new').textContent,
      };
    }, newestBefore, { timeout: LIVE_ALERT_TIMEOUT_MS, polling: 100 })).jsonValue();
  } catch {
    assert.fail(`no alert after ${newestBefore} arrived at the top of the table within ` +
      `${LIVE_ALERT_TIMEOUT_MS / 1000} s; the API's newest is ` +
      `${JSON.stringify((await getApi('/api/v1/alerts?limit=1'))[0]?.id)}; ` +
      `#alerts-live reads ${JSON.stringify(await page.locator('#alerts-live').textContent())}`);
  }
  assert.equal(arrived.isNew, true, 'marked new');
  assert.equal(arrived.marker, 'new');
  assert.match(arrived.announced, new RegExp(`^New ${arrived.severity} alert ${arrived.id}: ${arrived.rule}, `));
  assert.equal(await page.evaluate(() => window.sameDocument), true, 'the page was not reloaded');
  assert.deepEqual(listRequests, [], 'the alert came through the stream, not by listing again');

  const [status, fromApi] = await callApi(`/api/v1/alerts/${arrived.id}`);
  assert.equal(status, 200, JSON.stringify(fromApi));
  assert.equal(fromApi.alert.rule_id, arrived.rule);
  assert.equal(fromApi.alert.severity, arrived.severity);

  // Opening it marks it seen.
  await openAlertDetail(page, arrived.id);
  const row = page.locator(`#alerts tbody tr[data-alert="${arrived.id}"]`);
  await row.and(page.locator('[data-new="false"]')).waitFor();
  assert.equal(await row.locator('.new-marker').count(), 0);
});

test('alerts: the detail shows the explanation, rule and version, events with provenance, and history', { timeout: 200_000 }, async (t) => {
  const page = await openAlerts(t);
  const [alert] = await someAlerts(page);
  // Read before the panel opens: an alert anchored by then shows its entry (anchoring only ever
  // goes one way; one anchored just after may still read "not yet").
  const { history, alert: before } = await getApi(`/api/v1/alerts/${alert.id}`);

  const panel = await openAlertDetail(page, alert.id);
  await waitForText(panel.locator('h3'), `Alert ${alert.id}: ${alert.rule_id}`);
  await waitForText(panel.locator('.explanation'), alert.explanation);
  await waitForText(panel.locator('dd.rule'), `${alert.rule_id} version ${alert.rule_version}`);
  await waitForText(panel.locator('dd.key'), alert.key);
  const anchored = before.ledger_index;
  if (anchored !== null) await waitForText(panel.locator('dd.anchored'), `alerts channel, entry ${anchored}`);
  assert.equal(await panel.locator('dd.status .badge').getAttribute('data-status'), alert.status);
  const events = await panel.locator('ul.alert-events li').evaluateAll((lis) => lis.map((li) => li.dataset.event));
  assert.deepEqual(events, alert.event_ids);
  if (history.length === 0) {
    await panel.locator('.no-history').waitFor();
  } else {
    assert.equal(await panel.locator('table.alert-history tbody tr').count(), history.length);
  }

  // The provenance of the first event, as the API tells it (or its reason for not telling).
  const eventId = alert.event_ids[0];
  const item = panel.locator(`li[data-event="${eventId}"]`);
  await item.getByRole('button', { name: `Provenance of ${eventId}`, exact: true }).click();
  const provenance = item.locator('.provenance[aria-busy="false"]');
  await provenance.waitFor();
  const [status, lineage] = await callApi(`/api/v1/provenance/${encodeURIComponent(eventId)}`);
  if (status === 200) {
    await waitForText(provenance.locator('.ledger-position'), `channel ${lineage.channel}, entry ${lineage.index}`);
    // The proof is against the latest checkpoint, which moves on as the ledger grows.
    const proof = await provenance.locator('.proof pre').textContent();
    assert.ok(proof.startsWith(`c2sp.org/tlog-proof@v1\nindex ${lineage.index}\n`), proof);
  } else {
    await waitForText(provenance.locator('.message.error'), lineage.error.message);
  }
  assert.equal(await item.getByRole('button', { name: `Provenance of ${eventId}` }).getAttribute('aria-expanded'), 'true');
});

test('alerts: acknowledge (with an assignee), comment, resolve; each needs a comment; the API agrees', { timeout: 200_000 }, async (t) => {
  const page = await openAlerts(t);
  const alerts = await someAlerts(page);
  const target = alerts.find((a) => a.status === 'open');
  assert.ok(target, `an open alert among ${alerts.length}`);
  const before = (await getApi(`/api/v1/alerts/${target.id}`)).history.length;
  const posts = [];
  page.on('request', (request) => {
    if (request.method() === 'POST' && request.url().includes('/api/v1/alerts/')) posts.push(request.url());
  });

  const panel = await openAlertDetail(page, target.id);
  const message = page.locator('#alert-message');
  const row = page.locator(`#alerts tbody tr[data-alert="${target.id}"]`);

  // No comment, no change: the UI asks for one and does not call the API.
  await panel.getByRole('button', { name: 'Acknowledge', exact: true }).click();
  await waitForText(message, 'A comment is required: say why, it is kept in the alert\'s history.');
  assert.equal(await page.getByLabel('Comment (required)').getAttribute('aria-invalid'), 'true');
  assert.deepEqual(posts, []);

  const ack = `looking into it (UI test ${Date.now()})`;
  await page.getByLabel('Comment (required)').fill(ack);
  await page.getByLabel('Assignee').fill('analyst-kim');
  await panel.getByRole('button', { name: 'Acknowledge', exact: true }).click();
  await page.locator(`#alert-detail[data-alert="${target.id}"][data-status="acknowledged"]`).waitFor();
  await waitForText(message, `Alert ${target.id} acknowledged (assigned to analyst-kim).`);
  await row.locator('td.alert-status .badge[data-status="acknowledged"]').waitFor();
  await waitForText(row.locator('td.alert-assignee'), 'analyst-kim');
  await waitForText(panel.locator('dd.assignee'), 'analyst-kim');
  const historyRows = panel.locator('table.alert-history tbody tr');
  assert.equal(await historyRows.count(), before + 1);
  await waitForText(historyRows.last().locator('td.comment'), ack);
  let fromApi = await getApi(`/api/v1/alerts/${target.id}`);
  assert.equal(fromApi.alert.status, 'acknowledged');
  assert.equal(fromApi.alert.assignee, 'analyst-kim');
  assert.equal(fromApi.history.at(-1).comment, ack);
  await waitForText(historyRows.last().locator('td.actor'), fromApi.history.at(-1).actor);

  // A comment alone: kept in the history, the status stays.
  const note = 'asked the courier for the original manifest';
  await page.getByLabel('Comment (required)').fill(note);
  await panel.getByRole('button', { name: 'Add comment', exact: true }).click();
  await waitForText(message, `Comment added to alert ${target.id}.`);
  assert.equal(await historyRows.count(), before + 2);
  assert.equal(await historyRows.last().getAttribute('data-kind'), 'comment');
  await waitForText(historyRows.last().locator('td.comment'), note);
  assert.equal(await panel.getAttribute('data-status'), 'acknowledged');
  fromApi = await getApi(`/api/v1/alerts/${target.id}`);
  assert.deepEqual([fromApi.alert.status, fromApi.history.at(-1).kind, fromApi.history.at(-1).comment],
    ['acknowledged', 'comment', note]);

  const fix = 'the declaration was corrected by the courier';
  await page.getByLabel('Comment (required)').fill(fix);
  await panel.getByRole('button', { name: 'Resolve', exact: true }).click();
  await page.locator(`#alert-detail[data-alert="${target.id}"][data-status="resolved"]`).waitFor();
  await waitForText(message, `Alert ${target.id} resolved.`);
  await row.locator('td.alert-status .badge[data-status="resolved"]').waitFor();
  assert.equal(await historyRows.count(), before + 3);
  await waitForText(historyRows.last().locator('td.comment'), fix);
  // A resolved alert can only be reopened (or commented on).
  const offered = await panel.locator('button[data-status-action]:visible').allTextContents();
  assert.deepEqual(offered, ['Reopen', 'Add comment']);
  fromApi = await getApi(`/api/v1/alerts/${target.id}`);
  assert.equal(fromApi.alert.status, 'resolved');
  assert.equal(fromApi.alert.assignee, 'analyst-kim', 'the assignee stays');
  assert.equal(fromApi.history.length, before + 3);
  assert.equal(posts.length, 3);
});

test('alerts: the API\'s errors are shown with its own message', { timeout: 200_000 }, async (t) => {
  // A link to an alert the node does not have.
  const [newest] = await getApi('/api/v1/alerts?limit=1');
  const missing = (newest?.id ?? 0) + 1_000_000;
  const [status, body] = await callApi(`/api/v1/alerts/${missing}`);
  assert.equal(status, 404);
  const page = await openAlerts(t, `/#alert-${missing}`);
  const panel = await alertPanel(page, missing);
  await waitForText(panel.locator('.message.error'), body.error.message);
  assert.equal(await page.locator('#alert-actions').isVisible(), false);

  // A comment the API finds too long (the page leaves the limit to the API).
  const [target] = await someAlerts(page);
  const long = 'x'.repeat(4001);
  const [longStatus, tooLong] = await callApi(`/api/v1/alerts/${target.id}/comments`, { comment: long });
  assert.equal(longStatus, 422, JSON.stringify(tooLong));
  let detail = await openAlertDetail(page, target.id);
  const historyBefore = await detail.locator('table.alert-history tbody tr').count();
  await page.getByLabel('Comment (required)').fill(long);
  await detail.getByRole('button', { name: 'Add comment', exact: true }).click();
  await waitForText(page.locator('#alert-message'), `Alert ${target.id} was not changed: ${tooLong.error.message}`);
  assert.equal(await detail.locator('table.alert-history tbody tr').count(), historyBefore);
  assert.equal(await page.getByLabel('Comment (required)').inputValue(), long, 'the comment is kept to be shortened');

  // A change the API rejects: the request is altered on its way to carry a status the API does
  // not know (the UI only sends valid ones), and the UI must show the API's answer.
  const [, rejected] = await callApi(`/api/v1/alerts/${target.id}/status`, { status: 'reopened', comment: 'x' });
  assert.equal(rejected.error?.code, 'bad_request', JSON.stringify(rejected));
  await page.route('**/api/v1/alerts/*/status', (route) => {
    const change = JSON.parse(route.request().postData());
    route.continue({ postData: JSON.stringify({ ...change, status: 'reopened' }) });
  });
  detail = await openAlertDetail(page, target.id);
  await page.getByLabel('Comment (required)').fill('this change is rejected');
  // Any offered change of status but Assign (which the UI itself refuses without an assignee).
  const action = detail.locator('button[data-status-action]:visible:not([data-status-action="assign"]):not([data-status-action="comment"])').first();
  await action.click();
  await waitForText(page.locator('#alert-message'), `Alert ${target.id} was not changed: ${rejected.error.message}`);
  assert.equal(await page.locator('#alert-message').getAttribute('class'), 'message error');
  assert.equal(await action.isEnabled(), true, 'the buttons work again');
  assert.equal(await detail.getAttribute('data-status'), target.status, 'the panel keeps the status');
  assert.equal((await getApi(`/api/v1/alerts/${target.id}`)).alert.status, target.status, 'unchanged in the API');
});

test('alerts: filter by rule and by status', { timeout: 200_000 }, async (t) => {
  const page = await openAlerts(t);
  const [newest] = await someAlerts(page);
  const rule = newest.rule_id;

  await page.getByLabel('Rule', { exact: true }).selectOption(rule);
  await page.locator('#alerts-status').filter({ hasText: ` alerts of rule ${rule}, newest first.` }).waitFor();
  let shown = await shownAlerts(page);
  assert.ok(shown.length > 0);
  assert.deepEqual([...new Set(shown.map((a) => a.rule))], [rule]);
  const ofRule = await getApi(`/api/v1/alerts?rule=${encodeURIComponent(rule)}&limit=100`);
  assert.deepEqual(ofRule.filter((a) => a.id <= shown[0].id).map((a) => a.id), shown.map((a) => a.id));

  // All rules again (listed anew), then only the open ones (filtered in the page).
  await page.getByLabel('Rule', { exact: true }).selectOption('');
  await page.locator('#alerts-status').filter({ hasText: /^\d+ alerts, newest first\.$/ }).waitFor();
  await page.getByLabel('Status').selectOption('open');
  const table = await alertsTable(page);
  shown = table.rows;
  assert.deepEqual([...new Set(shown.map((a) => a.status))].filter((s) => s !== 'open'), []);
  const all = await getApi('/api/v1/alerts?limit=100');
  const openIds = all.filter((a) => a.status === 'open' && a.id <= (shown[0]?.id ?? Infinity)).map((a) => a.id);
  assert.deepEqual(openIds.filter((id) => !shown.some((a) => a.id === id)), [], 'open alerts missing');
  const counted = Object.values(table.counters).reduce((x, y) => x + y, 0);
  assert.equal(counted, shown.length, 'the counters count what is shown');

  await page.getByLabel('Status').selectOption('resolved');
  shown = await shownAlerts(page);
  assert.deepEqual([...new Set(shown.map((a) => a.status))].filter((s) => s !== 'resolved'), []);
});

test('screenshot of the alerts', { timeout: 200_000 }, async (t) => {
  const page = await openAlerts(t);
  const alerts = await someAlerts(page);
  const withHistory = alerts.find((a) => a.status !== 'open') ?? alerts[0];
  const panel = await openAlertDetail(page, withHistory.id);
  const eventId = withHistory.event_ids[0];
  if (eventId) {
    await panel.getByRole('button', { name: `Provenance of ${eventId}`, exact: true }).click();
    await panel.locator('.provenance[aria-busy="false"]').first().waitFor();
  }

  await mkdir(dirname(ALERTS_SCREENSHOT), { recursive: true });
  await page.setViewportSize({ width: 1400, height: 900 });
  await page.screenshot({ path: ALERTS_SCREENSHOT, fullPage: true });

  const png = await readFile(ALERTS_SCREENSHOT);
  assert.deepEqual([...png.subarray(1, 4)], [...Buffer.from('PNG')], `${ALERTS_SCREENSHOT} is a PNG`);
});

// --- Suppressions and rules ----------------------------------------------------------------------

const SHIPPED_RULES_DIR = new URL('../../monitoring/rules/', import.meta.url);
const SHIPPED_RULE_FILES = ['bank.toml', 'customs.toml', 'healthcare.toml', 'land.toml'];
// A threshold rule flagging every customs declaration (the demo anchors many).
const EXAMPLE_RULE_ID = 'customs.large-declaration';
const EXAMPLE_RULE = `[[rules]]
id = "${EXAMPLE_RULE_ID}"
version = 1
severity = "low"
event_types = ["customs.declaration"]
explanation = "declaration {key}: {values}"
[rules.threshold]
where = [{ field = "/data/declared_value_krw", ge = 0 }]
`;
// The same with a placeholder threshold rules do not have, on line 6.
const INVALID_RULE = EXAMPLE_RULE.replace('{values}', '{median}');

/** Calls the API with any method (and a JSON body); returns [status, JSON body or null]. */
async function sendApi(method, path, body) {
  const init = { method, headers: { Authorization: `Bearer ${TOKEN}` } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(`${BASE_URL}${path}`, init);
  const text = await response.text();
  return [response.status, text ? JSON.parse(text) : null];
}

/** A page with the token entered and the suppressions listed. */
async function openSuppressions(t) {
  const page = await openUi(t);
  await submitToken(page, TOKEN);
  await suppressionsListed(page);
  return page;
}

async function suppressionsListed(page) {
  const status = page.locator('#suppressions-status');
  try {
    await status.filter({ hasText: /newest first\.$|^No suppression/ }).waitFor();
  } catch {
    assert.fail(`the suppressions should be listed; #suppressions-status reads ${JSON.stringify(await status.textContent())}`);
  }
}

function suppressionRow(page, id) {
  return page.getByTestId('suppressions').locator(`tbody tr[data-suppression="${id}"]`);
}

/** Fills in the suppression form (empty strings clear a field) and submits it. */
async function submitSuppression(page, { rule = '', key = '', reason = '', duration = '' }) {
  await page.getByLabel('Rule to mute').fill(rule);
  await page.getByLabel('Key to mute').fill(key);
  await page.getByLabel('Reason (required)').fill(reason);
  await page.getByLabel('Duration').fill(duration);
  await page.getByRole('button', { name: 'Add suppression', exact: true }).click();
}

test('suppressions: add one through the form, listed and in the API; the API\'s refusals shown; lift it', { timeout: 60_000 }, async (t) => {
  const page = await openSuppressions(t);
  const message = page.locator('#suppression-message');
  const [, allBefore] = await sendApi('GET', '/api/v1/suppressions?all=true');

  // What the API refuses is shown with its own message, and nothing is added.
  const refused = [
    { reason: 'muted by the UI test', duration: '4h' },
    { rule: 'bank.structuring', reason: 'muted by the UI test', duration: '4 fortnights' },
    { rule: 'bank.structuring', reason: '   ', duration: '4h' },
  ];
  for (const form of refused) {
    const request = { reason: form.reason, duration: form.duration };
    if (form.rule) request.rule_id = form.rule;
    const [status, body] = await sendApi('POST', '/api/v1/suppressions', request);
    assert.equal(status, 422, JSON.stringify(body));
    await submitSuppression(page, form);
    await waitForText(message, `No suppression added: ${body.error.message}`);
    assert.equal(await message.getAttribute('class'), 'message error');
  }
  const [, allAfterRefusals] = await sendApi('GET', '/api/v1/suppressions?all=true');
  assert.equal(allAfterRefusals.length, allBefore.length, 'the refused suppressions were not added');

  // A suppression of one (made-up) key of a rule, for two hours.
  const key = `ui-test-key-${Date.now()}`;
  const reason = `known test customer (UI test ${Date.now()})`;
  await submitSuppression(page, { rule: 'bank.structuring', key, reason, duration: '2h' });
  await message.filter({ hasText: /^Suppression \d+ added: / }).waitFor();
  const id = Number((await message.textContent()).match(/^Suppression (\d+) added: /)[1]);
  const row = suppressionRow(page, id);
  await row.waitFor();
  assert.equal(await row.getAttribute('data-state'), 'in_force');
  await waitForText(row.locator('td.suppression-rule'), 'bank.structuring');
  await waitForText(row.locator('td.suppression-key'), key);
  await waitForText(row.locator('td.reason'), reason);
  assert.equal(await page.locator('#suppression-reason').inputValue(), '', 'the form is emptied');
  const inForce = await getApi('/api/v1/suppressions');
  const added = inForce.find((s) => s.id === id);
  assert.ok(added, `suppression ${id} in force in the API: ${JSON.stringify(inForce)}`);
  assert.deepEqual([added.rule_id, added.alert_key, added.reason, added.lifted_at_ms],
    ['bank.structuring', key, reason, null]);
  const lasts = added.expires_at_ms - added.created_at_ms;
  assert.ok(Math.abs(lasts - 2 * 3_600_000) < 10_000, `two hours: ${lasts} ms`);
  await waitForText(row.locator('td.actor'), added.created_by);
  await waitForText(message, `Suppression ${id} added: alerts of rule bank.structuring with key ${key} ` +
    `are muted until ${new Date(added.expires_at_ms).toISOString()}.`);

  // Lift it: gone from those in force, listed as lifted with all of them.
  await page.getByRole('button', { name: `Lift suppression ${id}`, exact: true }).click();
  await waitForText(message, `Suppression ${id} lifted: its alerts are delivered again.`);
  await row.waitFor({ state: 'detached' });
  assert.equal((await getApi('/api/v1/suppressions')).some((s) => s.id === id), false, 'no longer in force');
  const lifted = (await getApi('/api/v1/suppressions?all=true')).find((s) => s.id === id);
  assert.ok(lifted?.lifted_at_ms && lifted.lifted_by, JSON.stringify(lifted));
  await page.getByLabel('Also expired and lifted').check();
  await row.and(page.locator('[data-state="lifted"]')).waitFor();
  assert.equal(await row.getByRole('button', { name: `Lift suppression ${id}` }).count(), 0);

  // One lifted behind the page's back: Lift shows the API's 404.
  const [created, other] = await sendApi('POST', '/api/v1/suppressions',
    { key: `${key}-other`, reason: 'lifted elsewhere', duration: '10min' });
  assert.equal(created, 201, JSON.stringify(other));
  await page.getByLabel('Also expired and lifted').uncheck();
  const lift = page.getByRole('button', { name: `Lift suppression ${other.id}`, exact: true });
  await lift.waitFor();
  assert.equal((await sendApi('POST', `/api/v1/suppressions/${other.id}/lift`))[0], 204);
  const [gone, notInForce] = await sendApi('POST', `/api/v1/suppressions/${other.id}/lift`);
  assert.equal(gone, 404);
  await lift.click();
  await waitForText(message, `Suppression ${other.id} was not lifted: ${notInForce.error.message}`);
  await suppressionRow(page, other.id).waitFor({ state: 'detached' });
});

test('suppressions: Suppress similar on an alert fills in its rule and key', { timeout: 200_000 }, async (t) => {
  const page = await openAlerts(t);
  const [alert] = await someAlerts(page);
  const panel = await openAlertDetail(page, alert.id);
  await panel.getByRole('button', { name: 'Suppress similar', exact: true }).click();
  await waitForText(page.locator('#suppression-message'),
    `Rule and key of alert ${alert.id} filled in: give a reason and a duration, then Add suppression.`);
  assert.equal(await page.locator('#suppression-rule').inputValue(), alert.rule_id);
  assert.equal(await page.locator('#suppression-key').inputValue(), alert.key);
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'suppression-reason', 'the reason has the focus');
});

/** A page with the token entered and the rules listed. */
async function openRules(t) {
  const page = await openUi(t);
  await submitToken(page, TOKEN);
  const status = page.locator('#rules-status');
  try {
    await status.filter({ hasText: /^\d+ rules/ }).waitFor();
  } catch {
    assert.fail(`the rules should be listed; #rules-status reads ${JSON.stringify(await status.textContent())}`);
  }
  return page;
}

/** Opens the editor for a new rule with `toml` in it. */
async function newRuleEditor(page, toml) {
  await page.getByRole('button', { name: 'New rule', exact: true }).click();
  const panel = page.locator('#rule-detail[data-new="true"][aria-busy="false"]');
  await panel.waitFor();
  await page.getByLabel('Rule (TOML)').fill(toml);
  return panel;
}

test('rules: the list shows the 14 shipped rules as the API has them', { timeout: 60_000 }, async (t) => {
  const shipped = [];
  for (const file of SHIPPED_RULE_FILES) {
    const text = await readFile(new URL(file, SHIPPED_RULES_DIR), 'utf8');
    // The ids of the [[rules]] tables (the files also hold [[lookups]] with ids of their own).
    let table = '';
    for (const line of text.split('\n')) {
      if (line.startsWith('[')) table = line.trim();
      const id = line.match(/^id = "([^"]+)"$/);
      if (id && table === '[[rules]]') shipped.push(id[1]);
    }
  }
  assert.equal(shipped.length, 14, `shipped rules: ${shipped}`);

  const page = await openRules(t);
  const rows = await page.getByTestId('rules').locator('tbody tr').evaluateAll((trs) => trs.map((tr) => ({
    id: tr.dataset.rule,
    version: Number(tr.querySelector('td.rule-version').textContent),
    severity: tr.querySelector('td.rule-severity .badge')?.dataset.severity ?? '',
    origin: tr.dataset.origin,
    enabled: tr.dataset.enabled === 'true',
  })));
  const fromApi = await getApi('/api/v1/rules');
  assert.deepEqual(rows, fromApi.map((r) => ({
    id: r.id, version: r.version, severity: r.severity, origin: r.origin, enabled: r.enabled,
  })));
  const listed = new Set(rows.map((r) => r.id));
  assert.deepEqual(shipped.filter((id) => !listed.has(id)), [], 'shipped rules missing');
  assert.ok(rows.filter((r) => r.origin === 'builtin').length <= 14);

  // A shipped rule's detail: the version in force and the versions stored through the API.
  const rule = fromApi.find((r) => r.id === 'bank.structuring');
  await page.getByRole('button', { name: 'Open rule bank.structuring', exact: true }).click();
  const panel = page.locator('#rule-detail[data-rule="bank.structuring"][aria-busy="false"]');
  await panel.waitFor();
  await waitForText(panel.locator('dd.rule-explanation'), rule.explanation);
  const { versions } = await getApi('/api/v1/rules/bank.structuring');
  assert.equal(await panel.getAttribute('data-versions'), String(versions.length));
  const toml = await page.getByLabel('Rule (TOML)').inputValue();
  if (versions.length) assert.equal(toml, versions.at(-1).body);
  else assert.match(toml, /^id = "bank\.structuring"$/m);
});

test('rules: a dry-run in the editor shows the events matched and the alerts it would raise', { timeout: 60_000 }, async (t) => {
  const [, before] = await sendApi('GET', `/api/v1/rules/${EXAMPLE_RULE_ID}`);
  const page = await openRules(t);
  await newRuleEditor(page, EXAMPLE_RULE);
  const requests = [];
  page.on('request', (request) => {
    if (request.url().includes('/api/v1/rules/')) requests.push(`${request.method()} ${new URL(request.url()).pathname}`);
  });
  await page.getByRole('button', { name: 'Dry-run over history', exact: true }).click();
  const output = page.locator('#rule-dry-run[data-alerts][aria-busy="false"]');
  try {
    await output.waitFor({ timeout: 30_000 });
  } catch {
    assert.fail(`no dry-run result; #rule-message reads ${JSON.stringify(await page.locator('#rule-message').textContent())}`);
  }
  assert.deepEqual(requests, [`POST /api/v1/rules/${EXAMPLE_RULE_ID}/dry-run`]);
  const [events, matching, alerts] = await Promise.all(['data-events', 'data-matching', 'data-alerts']
    .map(async (name) => Number(await output.getAttribute(name))));
  assert.ok(matching > 0 && matching <= events, `${matching} matching of ${events} events`);
  assert.ok(alerts > 0, 'every declaration is flagged');
  await waitForText(output.locator('.dry-run-counts'),
    `Replayed ${events.toLocaleString('en')} events already anchored: ${matching.toLocaleString('en')} ` +
    `${matching === 1 ? 'is' : 'are'} of the rule's event types; it would have raised ` +
    `${alerts.toLocaleString('en')} ${alerts === 1 ? 'alert' : 'alerts'}. Nothing was stored.`);
  const shown = await output.locator('table.dry-run-alerts tbody tr').evaluateAll((trs) => trs.map((tr) => ({
    severity: tr.querySelector('.badge').dataset.severity,
    key: tr.querySelector('td.alert-key').textContent,
    explanation: tr.querySelector('td.alert-explanation').textContent,
  })));
  assert.equal(shown.length, Math.min(alerts, 20));
  for (const a of shown) {
    assert.equal(a.severity, 'low');
    assert.ok(a.explanation.startsWith(`declaration ${a.key}: `), JSON.stringify(a));
  }
  const [, after] = await sendApi('GET', `/api/v1/rules/${EXAMPLE_RULE_ID}`);
  assert.equal(after?.versions?.length ?? 0, before?.versions?.length ?? 0, 'a dry-run stores nothing');
});

test('rules: the API\'s mistakes in a rule are shown as it gives them, with their lines', { timeout: 60_000 }, async (t) => {
  const [status, body] = await sendApi('POST', `/api/v1/rules/${EXAMPLE_RULE_ID}/dry-run`, { toml: INVALID_RULE });
  assert.equal(status, 422, JSON.stringify(body));
  assert.match(body.error.message, /line 6\b/);
  assert.match(body.error.message, /median/);
  const [, before] = await sendApi('GET', `/api/v1/rules/${EXAMPLE_RULE_ID}`);
  const versionsBefore = before?.versions?.length ?? 0;

  const page = await openRules(t);
  await newRuleEditor(page, INVALID_RULE);
  const message = page.locator('#rule-message');
  const shown = message.locator('pre.api-message');
  await page.getByRole('button', { name: 'Dry-run over history', exact: true }).click();
  await waitForText(message.locator('strong'), `The dry-run of ${EXAMPLE_RULE_ID} was refused:`);
  assert.equal(await shown.textContent(), body.error.message, 'the message as the API gives it');
  // Its lines stay lines on the screen.
  const rendered = await shown.evaluate((pre) => pre.innerText);
  assert.equal(rendered.trim(), body.error.message.trim());
  assert.ok(rendered.trim().split('\n').length >= 2, JSON.stringify(rendered));
  assert.equal(await page.locator('#rule-dry-run table').count(), 0);

  // Saving needs a comment (the page insists, nothing is sent), then the API refuses the rule.
  const puts = [];
  page.on('request', (request) => {
    if (request.method() === 'PUT') puts.push(request.url());
  });
  await page.getByRole('button', { name: 'Save version', exact: true }).click();
  await waitForText(message, 'A comment is required: say why the rule changes.');
  assert.equal(await page.getByLabel('Comment (required to save)').getAttribute('aria-invalid'), 'true');
  assert.deepEqual(puts, []);
  const [putStatus, putBody] = await sendApi('PUT', `/api/v1/rules/${EXAMPLE_RULE_ID}`,
    { toml: INVALID_RULE, enabled: false, comment: 'refused' });
  assert.equal(putStatus, 422, JSON.stringify(putBody));
  await page.getByLabel('Comment (required to save)').fill('a placeholder rules do not have');
  await page.getByRole('button', { name: 'Save version', exact: true }).click();
  await waitForText(message.locator('strong'), `${EXAMPLE_RULE_ID} was not saved:`);
  assert.equal(await shown.textContent(), putBody.error.message);
  const [, after] = await sendApi('GET', `/api/v1/rules/${EXAMPLE_RULE_ID}`);
  assert.equal(after?.versions?.length ?? 0, versionsBefore, 'nothing stored');
});

test('rules: a saved version, with its comment, is in the history and in the API', { timeout: 60_000 }, async (t) => {
  const page = await openRules(t);
  await newRuleEditor(page, EXAMPLE_RULE);
  // Disabled, so that the node does not raise an alert for every declaration from now on.
  await page.getByLabel('Enabled (runs on the node)').uncheck();
  const comment = `flag every declaration, to compare (UI test ${Date.now()})`;
  await page.getByLabel('Comment (required to save)').fill(comment);
  await page.getByRole('button', { name: 'Save version', exact: true }).click();

  const message = page.locator('#rule-message');
  await message.filter({ hasText: /^Saved version \d+ of / }).waitFor();
  const { versions, rule } = await getApi(`/api/v1/rules/${EXAMPLE_RULE_ID}`);
  const newest = versions.at(-1);
  assert.deepEqual([newest.comment, newest.enabled, newest.body], [comment, false, EXAMPLE_RULE]);
  assert.equal(rule, null, 'a disabled rule is not in force');
  await waitForText(message, `Saved version ${newest.version} of ${EXAMPLE_RULE_ID}, disabled.`);

  // The panel is now the saved rule's, its history newest first.
  const saved = page.locator(`#rule-detail[data-rule="${EXAMPLE_RULE_ID}"][data-new="false"][data-versions="${versions.length}"][aria-busy="false"]`);
  await saved.waitFor();
  const top = saved.locator('table.rule-versions tbody tr').first();
  assert.equal(await top.getAttribute('data-version'), String(newest.version));
  await waitForText(top.locator('td.comment'), comment);
  await waitForText(top.locator('td.enabled'), 'no');
  await waitForText(top.locator('td.actor'), newest.created_by);
  assert.equal(await saved.locator('table.rule-versions tbody tr').count(), versions.length);
  assert.equal(await page.getByLabel('Comment (required to save)').inputValue(), '');
  assert.equal(await page.getByLabel('Rule id').inputValue(), EXAMPLE_RULE_ID);

  // The list is read again: the rule is there, disabled.
  const row = page.getByTestId('rules').locator(`tbody tr[data-rule="${EXAMPLE_RULE_ID}"]`);
  await row.and(page.locator('[data-enabled="false"]')).waitFor();
  assert.equal(await row.getAttribute('data-version'), String(newest.version));
  const listed = (await getApi('/api/v1/rules')).find((r) => r.id === EXAMPLE_RULE_ID);
  assert.deepEqual([listed?.enabled, listed?.version], [false, newest.version]);

  // Opening it again fills the editor from the newest version.
  await page.getByRole('button', { name: `Open rule ${EXAMPLE_RULE_ID}`, exact: true }).click();
  await saved.waitFor();
  assert.equal(await page.getByLabel('Rule (TOML)').inputValue(), EXAMPLE_RULE);
  assert.equal(await page.getByLabel('Enabled (runs on the node)').isChecked(), false);
});
