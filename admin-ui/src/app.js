// ledgerbridge admin UI: node status, the connectors and the node's own event log.
// Plain browser JavaScript, served by the node itself; no build step. Data from the API is only
// ever written with textContent, never parsed as HTML.
'use strict';

const TOKEN_KEY = 'ledgerbridge.token';
const HEALTH_REFRESH_MS = 5000;
const CONNECTORS_REFRESH_MS = 3000;
const QUARANTINE_LIMIT = 50;

let token = null;
let connectorsTimer = null;
let connectorsLoading = false;
// Incremented for every detail view opened, so that a slow answer cannot replace a newer view.
let detailRequest = 0;

/** An element with optional class and text. */
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function cell(text, className) {
  return el('td', className, text);
}

function replaceRows(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function isoTime(ms) {
  return new Date(ms).toISOString();
}

function timeElement(ms) {
  const time = el('time', null, isoTime(ms).replace('T', ' ').replace(/\.\d+Z$/, ' UTC'));
  time.dateTime = isoTime(ms);
  return time;
}

function formatCount(n) {
  return Number(n).toLocaleString('en');
}

function formatDuration(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.floor(s % 60)} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** An API failure carrying the API's own error message. */
class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Calls the API with the admin token; resolves to the JSON body, rejects with an ApiError. */
async function api(path, method = 'GET', bearer = token) {
  let response;
  try {
    response = await fetch(path, { method, headers: { Authorization: `Bearer ${bearer}` } });
  } catch {
    throw new ApiError(0, 'the node is unreachable');
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message = body && body.error ? body.error.message : `HTTP ${response.status}`;
    throw new ApiError(response.status, message);
  }
  return body;
}

// --- Node status -------------------------------------------------------------------------------

async function refreshHealth() {
  const overall = document.getElementById('overall');
  try {
    const response = await fetch('/api/v1/health');
    const report = await response.json();
    document.getElementById('node').textContent = `node ${report.node} · v${report.version}`;
    overall.textContent = report.status;
    overall.className = `badge ${report.status}`;
    replaceRows(document.querySelector('#components tbody'), report.components.map((c) => {
      const tr = document.createElement('tr');
      tr.dataset.component = c.name;
      tr.append(cell(c.name), cell(c.state, `state ${c.state}`), cell(c.detail));
      return tr;
    }));
  } catch {
    overall.textContent = 'unreachable';
    overall.className = 'badge down';
  }
}

// --- System events -----------------------------------------------------------------------------

/** Shows the event log; resolves to whether the token was accepted. */
async function showEvents(candidate) {
  const status = document.getElementById('token-status');
  let body;
  try {
    body = await api('/api/v1/system/events?limit=100', 'GET', candidate);
  } catch (err) {
    status.textContent = err.message;
    replaceRows(document.querySelector('#events tbody'), []);
    return false;
  }
  status.textContent = `${body.events.length} of ${body.end} events`;
  replaceRows(document.querySelector('#events tbody'), body.events.map((e) => {
    const tr = document.createElement('tr');
    tr.append(
      cell(String(e.offset)),
      cell(isoTime(e.timestamp_ms)),
      cell(e.type),
      cell(JSON.stringify(e.data), 'data'),
    );
    return tr;
  }));
  return true;
}

// --- Connectors --------------------------------------------------------------------------------

const CONNECTOR_ACTIONS = [
  { action: 'pause-resume' },
  { action: 'run', label: 'Run now' },
  { action: 'test', label: 'Test connection' },
  { action: 'tables', label: 'Tables' },
  { action: 'quarantine', label: 'Quarantine' },
  { action: 'details', label: 'Details' },
];

function connectorsBody() {
  return document.querySelector('#connectors tbody');
}

function connectorRow(name) {
  return [...connectorsBody().rows].find((tr) => tr.dataset.connector === name);
}

function setMessage(text, isError) {
  const message = document.getElementById('connector-message');
  message.textContent = text;
  message.classList.toggle('error', Boolean(isError));
}

/** A new row for a connector: its cells are filled by updateConnectorRow. */
function newConnectorRow(name) {
  const tr = document.createElement('tr');
  tr.dataset.connector = name;
  const nameCell = el('th', 'connector-name');
  nameCell.scope = 'row';
  nameCell.append(el('span', 'name', name), el('span', 'topic muted'));
  const stateCell = cell(null, 'connector-state');
  stateCell.append(el('span', 'badge'));
  const actions = cell(null, 'actions');
  const buttons = el('div', 'buttons');
  actions.append(buttons);
  for (const { action, label } of CONNECTOR_ACTIONS) {
    const button = el('button', `action-${action}`, label);
    button.type = 'button';
    button.dataset.action = action;
    button.dataset.connector = name;
    if (label) button.setAttribute('aria-label', `${label} ${name}`);
    buttons.append(button);
  }
  tr.append(
    nameCell,
    cell(null, 'connector-type'),
    stateCell,
    cell(null, 'rows num'),
    cell(null, 'rate num'),
    cell(null, 'lag num'),
    cell(null, 'quarantined num'),
    cell(null, 'last-error'),
    actions,
  );
  return tr;
}

function updateConnectorRow(tr, c) {
  const name = tr.querySelector('.connector-name');
  name.querySelector('.topic').textContent = `→ ${c.topic}`;
  name.title = `schedule: ${c.schedule}`;
  tr.dataset.state = c.state;
  tr.querySelector('.connector-type').textContent = c.type;
  const badge = tr.querySelector('.connector-state .badge');
  badge.textContent = c.state;
  badge.className = `badge ${c.state}`;

  const rows = tr.querySelector('.rows');
  rows.textContent = formatCount(c.rows_total);
  rows.dataset.value = String(c.rows_total);
  tr.querySelector('.rate').textContent = Number(c.rows_per_sec).toFixed(1);
  const lag = tr.querySelector('.lag');
  lag.textContent = formatDuration(c.lag_ms);
  lag.title = c.caught_up_at_ms ? `caught up at ${isoTime(c.caught_up_at_ms)}` : 'not caught up yet';
  const quarantined = tr.querySelector('.quarantined');
  quarantined.textContent = formatCount(c.quarantined_total);
  quarantined.dataset.value = String(c.quarantined_total);

  const lastError = tr.querySelector('.last-error');
  if (c.last_error) {
    lastError.replaceChildren(el('span', 'error-message', c.last_error.message), el('br'),
      timeElement(c.last_error.at_ms));
  } else {
    lastError.replaceChildren(el('span', 'muted', '—'));
  }

  const toggle = tr.querySelector('button.action-pause-resume');
  if (!toggle.disabled) {
    const action = c.state === 'paused' || c.state === 'stopped' ? 'resume' : 'pause';
    const label = action === 'resume' ? 'Resume' : 'Pause';
    toggle.dataset.action = action;
    toggle.textContent = label;
    toggle.setAttribute('aria-label', `${label} ${c.name}`);
  }
}

/** Updates the table in place, so buttons keep their focus across refreshes. */
function renderConnectors(list) {
  const tbody = connectorsBody();
  const names = new Set(list.map((c) => c.name));
  for (const tr of [...tbody.rows]) {
    if (!names.has(tr.dataset.connector)) tr.remove();
  }
  list.forEach((c, i) => {
    let tr = connectorRow(c.name);
    if (!tr) tr = newConnectorRow(c.name);
    if (tbody.rows[i] !== tr) tbody.insertBefore(tr, tbody.rows[i] ?? null);
    updateConnectorRow(tr, c);
  });
}

async function refreshConnectors() {
  if (!token || connectorsLoading) return;
  connectorsLoading = true;
  const status = document.getElementById('connectors-status');
  const current = token;
  try {
    const list = await api('/api/v1/connectors');
    if (token !== current) return;
    renderConnectors(list);
    status.textContent = list.length === 0
      ? 'No connectors are configured on this node.'
      : `${list.length} connectors, refreshed every ${CONNECTORS_REFRESH_MS / 1000} seconds ` +
        `(last at ${new Date().toLocaleTimeString()}).`;
  } catch (err) {
    if (token !== current) return;
    status.textContent = `Cannot list the connectors: ${err.message}`;
    if (err.status === 401 || err.status === 403) stopConnectors();
  } finally {
    connectorsLoading = false;
  }
}

function startConnectors() {
  stopConnectors();
  refreshConnectors();
  connectorsTimer = setInterval(refreshConnectors, CONNECTORS_REFRESH_MS);
}

function stopConnectors() {
  if (connectorsTimer !== null) clearInterval(connectorsTimer);
  connectorsTimer = null;
}

/** Pause, resume or run now: the answer is the connector's status, shown right away. */
async function control(name, action, button) {
  const verb = { pause: 'Pausing', resume: 'Resuming', run: 'Starting a pass of' }[action];
  button.disabled = true;
  let status = null;
  try {
    status = await api(`/api/v1/connectors/${encodeURIComponent(name)}/${action}`, 'POST');
    setMessage(`${verb} ${name}.`, false);
  } catch (err) {
    setMessage(`${name}: ${err.message}`, true);
  } finally {
    button.disabled = false;
  }
  const tr = connectorRow(name);
  if (tr && status) updateConnectorRow(tr, status);
  refreshConnectors();
}

/** Opens the detail panel for one connector and view; returns a function that fills it. */
function openDetail(name, view, title) {
  const panel = document.getElementById('connector-detail');
  const request = ++detailRequest;
  panel.hidden = false;
  panel.dataset.connector = name;
  panel.dataset.view = view;
  panel.setAttribute('aria-busy', 'true');
  const heading = document.getElementById('connector-detail-title');
  heading.textContent = title;
  const body = document.getElementById('connector-detail-body');
  body.replaceChildren(el('p', 'muted', 'Loading…'));
  heading.focus();
  return (...children) => {
    if (request !== detailRequest) return;
    body.replaceChildren(...children);
    panel.setAttribute('aria-busy', 'false');
  };
}

function closeDetail() {
  detailRequest++;
  const panel = document.getElementById('connector-detail');
  panel.hidden = true;
  delete panel.dataset.connector;
  delete panel.dataset.view;
  document.getElementById('connector-detail-body').replaceChildren();
}

function errorParagraph(err) {
  return el('p', 'message error', err.message);
}

function simpleTable(className, headers, rows) {
  const table = el('table', className);
  const head = el('tr');
  for (const h of headers) {
    const th = el('th', null, h);
    th.scope = 'col';
    head.append(th);
  }
  table.append(el('thead'), el('tbody'));
  table.tHead.append(head);
  table.tBodies[0].append(...rows);
  return table;
}

async function testConnection(name) {
  const fill = openDetail(name, 'test', `Connection test of ${name}`);
  try {
    const outcome = await api(`/api/v1/connectors/${encodeURIComponent(name)}/test`, 'POST');
    const p = el('p', `test-result ${outcome.ok ? 'ok' : 'failed'}`);
    p.dataset.ok = String(outcome.ok);
    p.append(el('strong', null, outcome.ok ? 'Connection OK: ' : 'Connection failed: '),
      el('span', 'detail', outcome.detail));
    fill(p);
  } catch (err) {
    fill(errorParagraph(err));
  }
}

async function showTables(name) {
  const fill = openDetail(name, 'tables', `Tables of ${name}`);
  let tables;
  try {
    tables = await api(`/api/v1/connectors/${encodeURIComponent(name)}/tables`);
  } catch (err) {
    fill(errorParagraph(err));
    return;
  }
  if (tables.length === 0) {
    fill(el('p', 'muted', 'The source has no tables.'));
    return;
  }
  const note = el('p', 'muted', `${tables.length} tables. Open one to see its columns.`);
  fill(note, ...tables.map((t) => {
    // One line per table, its columns one click away: a legacy database has many tables.
    const details = el('details', 'source-table');
    details.dataset.table = t.name;
    details.open = tables.length === 1;
    const key = new Set(t.primary_key);
    const summary = el('summary');
    summary.append(el('span', 'table-name', t.name), ' · primary key ',
      el('span', 'primary-key', t.primary_key.length ? t.primary_key.join(', ') : 'none'),
      ` · ${t.columns.length} columns`);
    details.append(summary, simpleTable('columns',
      ['Column', 'Type on the bus', 'Source type', 'Nullable', 'Key'],
      t.columns.map((c) => {
        const tr = el('tr');
        tr.dataset.column = c.name;
        tr.append(cell(c.name, 'column-name'), cell(c.kind, 'kind'),
          cell(c.source_type, 'source-type'), cell(c.nullable ? 'yes' : 'no', 'nullable'),
          cell(key.has(c.name) ? 'primary key' : '', 'key'));
        return tr;
      })));
    return details;
  }));
}

async function showQuarantine(name) {
  const fill = openDetail(name, 'quarantine', `Quarantined records of ${name}`);
  let records;
  try {
    const query = new URLSearchParams({ source: name, limit: String(QUARANTINE_LIMIT) });
    records = await api(`/api/v1/quarantine?${query}`);
  } catch (err) {
    fill(errorParagraph(err));
    return;
  }
  if (records.length === 0) {
    fill(el('p', 'muted', `No quarantined records for ${name}.`));
    return;
  }
  const note = el('p', 'muted', records.length === QUARANTINE_LIMIT
    ? `The newest ${QUARANTINE_LIMIT} records.` : `${records.length} records, newest first.`);
  fill(note, simpleTable('quarantine',
    ['Id', 'Time', 'Stream', 'Position', 'Reason', 'Status', 'Record'],
    records.map((r) => {
      const tr = el('tr');
      tr.dataset.id = String(r.id);
      const time = cell(null, 'time');
      time.append(timeElement(r.created_at_ms));
      tr.append(cell(String(r.id)), time, cell(r.stream, 'stream'), cell(r.position, 'position'),
        cell(r.reason, 'reason'), cell(r.status, 'status'), cell(r.payload, 'data payload'));
      return tr;
    })));
}

async function showDetails(name) {
  const fill = openDetail(name, 'details', `Configuration and offsets of ${name}`);
  try {
    const detail = await api(`/api/v1/connectors/${encodeURIComponent(name)}`);
    fill(el('p', null, `Schedule: ${detail.status.schedule}`),
      el('h4', null, 'Configuration'), el('pre', 'data config', JSON.stringify(detail.config, null, 2)),
      el('h4', null, 'Offsets'), el('pre', 'data offsets', JSON.stringify(detail.offsets, null, 2)));
  } catch (err) {
    fill(errorParagraph(err));
  }
}

document.querySelector('#connectors tbody').addEventListener('click', (event) => {
  const button = event.target.closest('button[data-action]');
  if (!button || button.disabled) return;
  const name = button.dataset.connector;
  switch (button.dataset.action) {
    case 'pause':
    case 'resume':
    case 'run':
      control(name, button.dataset.action, button);
      break;
    case 'test':
      testConnection(name);
      break;
    case 'tables':
      showTables(name);
      break;
    case 'quarantine':
      showQuarantine(name);
      break;
    case 'details':
      showDetails(name);
      break;
    default:
      break;
  }
});

document.getElementById('connector-detail-close').addEventListener('click', closeDetail);

// --- Token -------------------------------------------------------------------------------------

async function useToken(candidate) {
  const accepted = await showEvents(candidate);
  if (!accepted) {
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    stopConnectors();
    replaceRows(connectorsBody(), []);
    closeDetail();
    setMessage('', false);
    document.getElementById('connectors-status').textContent =
      'Enter a valid admin token to see the connectors.';
    return;
  }
  token = candidate;
  sessionStorage.setItem(TOKEN_KEY, candidate);
  startConnectors();
}

document.getElementById('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const candidate = document.getElementById('token').value.trim();
  if (candidate) useToken(candidate);
});

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) {
  document.getElementById('token').value = saved;
  useToken(saved);
}
refreshHealth();
setInterval(refreshHealth, HEALTH_REFRESH_MS);
