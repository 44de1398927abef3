// ledgerbridge admin UI: node status, the connectors, the alerts and the node's own event log.
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

/** The API's own error message of a failed response (its JSON envelope), or the HTTP status. */
function errorMessage(response, body) {
  return body && body.error && body.error.message ? body.error.message : `HTTP ${response.status}`;
}

/**
 * Calls the API with the admin token; resolves to the JSON body, rejects with an ApiError.
 * `json`, when given, is sent as the JSON request body.
 */
async function api(path, method = 'GET', bearer = token, json = undefined) {
  const headers = { Authorization: `Bearer ${bearer}` };
  const init = { method, headers };
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'the node is unreachable');
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) throw new ApiError(response.status, errorMessage(response, body));
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

// --- Alerts ------------------------------------------------------------------------------------
//
// The newest alerts from GET /api/v1/alerts (the rule filter is the API's, the status filter is
// applied here: the API has none), then new ones live from GET /api/v1/alerts/stream. EventSource
// cannot send the Authorization header, so the stream is read with fetch() and its server-sent
// events framing parsed by SseParser; a dropped stream is reopened with backoff and the
// Last-Event-ID of the last alert seen, so nothing raised in between is missed.

const ALERTS_PAGE = 100;
// The table keeps at most this many alerts; "Load older alerts" pages further back.
const ALERTS_KEPT = 1000;
const STREAM_RETRY_MIN_MS = 1000;
const STREAM_RETRY_MAX_MS = 30_000;
// The node sends a keep-alive comment every 15 seconds; silence this long means a dead stream.
const STREAM_SILENCE_MS = 45_000;
const SEVERITIES = ['critical', 'high', 'medium', 'low'];
const STATUS_LABELS = {
  open: 'open',
  acknowledged: 'acknowledged',
  resolved: 'resolved',
  false_positive: 'false positive',
};
// The buttons offered in each status; the API itself accepts any of the four statuses.
// A comment (`comment`) can be added in any status.
const STATUS_ACTIONS = {
  open: ['acknowledged', 'assign', 'resolved', 'false_positive', 'comment'],
  acknowledged: ['assign', 'resolved', 'false_positive', 'open', 'comment'],
  resolved: ['open', 'comment'],
  false_positive: ['open', 'comment'],
};
const ACTION_DONE = {
  acknowledged: 'acknowledged',
  assign: 'assigned',
  resolved: 'resolved',
  false_positive: 'marked a false positive',
  open: 'reopened',
};
const ALERT_HASH = /^#alert-(\d+)$/;

/**
 * Server-sent events framing, as the HTML standard's EventSource parses it: lines end with CRLF,
 * LF or CR (also across chunks); `:` starts a comment; `data:` lines accumulate, joined by LF;
 * `id:` sets the last event id (kept across events); a blank line dispatches the event, if it has
 * data. Fed decoded text chunks as they arrive.
 */
class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = '';
    this.skipLf = false;
    this.data = [];
    this.type = '';
    this.lastEventId = '';
    this.retry = null;
  }

  feed(text) {
    let chunk = text;
    if (this.skipLf && chunk.startsWith('\n')) chunk = chunk.slice(1);
    this.skipLf = false;
    const buffer = this.buffer + chunk;
    let start = 0;
    for (let i = 0; i < buffer.length; i++) {
      const c = buffer[i];
      if (c !== '\n' && c !== '\r') continue;
      this.line(buffer.slice(start, i));
      if (c === '\r') {
        if (i + 1 === buffer.length) this.skipLf = true;
        else if (buffer[i + 1] === '\n') i++;
      }
      start = i + 1;
    }
    this.buffer = buffer.slice(start);
  }

  line(line) {
    if (line === '') {
      this.dispatch();
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.type = value;
        break;
      case 'data':
        this.data.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) this.lastEventId = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
      default:
        break;
    }
  }

  dispatch() {
    const type = this.type || 'message';
    const data = this.data;
    this.type = '';
    this.data = [];
    if (data.length === 0) return;
    this.onEvent({ type, id: this.lastEventId, data: data.join('\n') });
  }
}

const alertsState = {
  // The alerts of the current rule filter, newest (highest id) first.
  list: [],
  // Ids that arrived through the stream and have not been opened yet.
  fresh: new Set(),
  rules: new Set(),
  // Whether an older page may exist.
  more: false,
  // Incremented whenever the list is replaced, so that a slow answer cannot overwrite a newer one.
  generation: 0,
  // The alert shown in the detail panel and its request counter.
  detail: null,
  detailRequest: 0,
};

const stream = {
  // Highest alert id seen from the API (list or stream): the Last-Event-ID of a reconnection.
  lastId: null,
  controller: null,
  timer: null,
  retryMs: STREAM_RETRY_MIN_MS,
  // Incremented by every start and stop: a finished run only reconnects if it is still current.
  run: 0,
};

function alertsBody() {
  return document.querySelector('#alerts tbody');
}

function ruleFilter() {
  return document.getElementById('alert-rule-filter').value;
}

function statusFilter() {
  return document.getElementById('alert-status-filter').value;
}

function statusMatches(status, filter) {
  if (!filter) return true;
  if (filter === 'active') return status === 'open' || status === 'acknowledged';
  return status === filter;
}

function severityBadge(severity) {
  const badge = el('span', `badge severity severity-${severity}`, severity);
  badge.dataset.severity = severity;
  return badge;
}

function statusBadge(status) {
  const badge = el('span', `badge status status-${status}`, STATUS_LABELS[status] ?? status);
  badge.dataset.status = status;
  return badge;
}

function setLive(state, text, isError) {
  const live = document.getElementById('alerts-live');
  live.dataset.state = state;
  live.textContent = text;
  live.classList.toggle('error', Boolean(isError));
  live.classList.toggle('muted', !isError);
}

function noteRules(alerts) {
  const select = document.getElementById('alert-rule-filter');
  let added = false;
  for (const a of alerts) {
    if (!alertsState.rules.has(a.rule_id)) {
      alertsState.rules.add(a.rule_id);
      added = true;
    }
  }
  if (!added) return;
  const chosen = select.value;
  const options = [...alertsState.rules].sort().map((rule) => {
    const option = el('option', null, rule);
    option.value = rule;
    return option;
  });
  const all = el('option', null, 'All rules');
  all.value = '';
  select.replaceChildren(all, ...options);
  select.value = chosen;
}

function noteLastId(id) {
  if (stream.lastId === null || id > stream.lastId) stream.lastId = id;
}

/** A new row for an alert: its cells are filled by updateAlertRow. */
function newAlertRow(id) {
  const tr = document.createElement('tr');
  tr.dataset.alert = String(id);
  const idCell = el('th', 'alert-id num');
  idCell.scope = 'row';
  idCell.append(el('span', 'number', String(id)));
  const open = el('button', 'action-open', 'Open');
  open.type = 'button';
  open.dataset.alert = String(id);
  open.setAttribute('aria-label', `Open alert ${id}`);
  const actions = cell(null, 'actions');
  actions.append(open);
  tr.append(
    idCell,
    cell(null, 'alert-detected'),
    cell(null, 'alert-severity'),
    cell(null, 'alert-rule'),
    cell(null, 'alert-key'),
    cell(null, 'alert-explanation'),
    cell(null, 'alert-status'),
    cell(null, 'alert-assignee'),
    actions,
  );
  return tr;
}

function updateAlertRow(tr, a) {
  tr.dataset.severity = a.severity;
  tr.dataset.status = a.status;
  tr.dataset.rule = a.rule_id;
  tr.className = `severity-${a.severity}`;
  const isNew = alertsState.fresh.has(a.id);
  tr.classList.toggle('new', isNew);
  tr.dataset.new = String(isNew);
  const idCell = tr.querySelector('.alert-id');
  const marker = idCell.querySelector('.new-marker');
  if (isNew && !marker) idCell.prepend(el('span', 'new-marker', 'new'));
  if (!isNew && marker) marker.remove();

  tr.querySelector('.alert-detected').replaceChildren(timeElement(a.detected_at_ms));
  tr.querySelector('.alert-severity').replaceChildren(severityBadge(a.severity));
  const rule = tr.querySelector('.alert-rule');
  rule.replaceChildren(el('span', 'rule-id', a.rule_id), el('span', 'muted', ` v${a.rule_version}`));
  const key = tr.querySelector('.alert-key');
  key.textContent = a.key;
  key.title = a.key;
  const explanation = tr.querySelector('.alert-explanation');
  explanation.replaceChildren(el('span', 'text', a.explanation));
  explanation.title = a.explanation;
  const status = tr.querySelector('.alert-status');
  status.replaceChildren(statusBadge(a.status));
  if (a.suppressed_by !== null && a.suppressed_by !== undefined) {
    const muted = el('span', 'muted-tag', 'muted');
    muted.title = `muted by suppression ${a.suppressed_by}: not delivered by e-mail or webhook`;
    status.append(' ', muted);
  }
  const assignee = tr.querySelector('.alert-assignee');
  if (a.assignee) assignee.textContent = a.assignee;
  else assignee.replaceChildren(el('span', 'muted', '—'));
}

function renderCounters(shown) {
  const counts = new Map(SEVERITIES.map((s) => [s, 0]));
  for (const a of shown) counts.set(a.severity, (counts.get(a.severity) ?? 0) + 1);
  document.getElementById('alert-counters').replaceChildren(...[...counts].map(([severity, n]) => {
    const li = el('li', `counter severity-${severity}`);
    li.dataset.severity = severity;
    li.dataset.count = String(n);
    li.append(el('span', 'count', formatCount(n)), ' ', el('span', 'label', severity));
    return li;
  }));
}

/** Shows the list through the status filter; rows are updated in place, keeping focus. */
function renderAlerts() {
  const filter = statusFilter();
  const shown = alertsState.list.filter((a) => statusMatches(a.status, filter));
  const tbody = alertsBody();
  const ids = new Set(shown.map((a) => String(a.id)));
  const rows = new Map();
  for (const tr of [...tbody.rows]) {
    if (ids.has(tr.dataset.alert)) rows.set(tr.dataset.alert, tr);
    else tr.remove();
  }
  shown.forEach((a, i) => {
    const tr = rows.get(String(a.id)) ?? newAlertRow(a.id);
    if (tbody.rows[i] !== tr) tbody.insertBefore(tr, tbody.rows[i] ?? null);
    updateAlertRow(tr, a);
  });
  renderCounters(shown);
  const total = alertsState.list.length;
  const rule = ruleFilter();
  const scope = rule ? ` of rule ${rule}` : '';
  let text;
  if (total === 0) text = rule ? `No alerts of rule ${rule}.` : 'No alerts yet.';
  else if (shown.length === total) text = `${total} alerts${scope}, newest first.`;
  else text = `${shown.length} of ${total} loaded alerts${scope} match the status filter.`;
  document.getElementById('alerts-status').textContent = text;
  document.getElementById('alerts-older').hidden = !alertsState.more;
}

/** Replaces the list with the newest page of the current rule filter. */
async function loadAlerts() {
  const generation = ++alertsState.generation;
  const current = token;
  const query = new URLSearchParams({ limit: String(ALERTS_PAGE) });
  const rule = ruleFilter();
  if (rule) query.set('rule', rule);
  const status = document.getElementById('alerts-status');
  status.textContent = 'Loading the alerts…';
  document.getElementById('alerts').setAttribute('aria-busy', 'true');
  try {
    const page = await api(`/api/v1/alerts?${query}`);
    if (generation !== alertsState.generation || token !== current) return false;
    alertsState.list = page;
    alertsState.more = page.length === ALERTS_PAGE;
    noteRules(page);
    if (page.length) noteLastId(page[0].id);
    renderAlerts();
    return true;
  } catch (err) {
    if (generation !== alertsState.generation || token !== current) return false;
    status.textContent = `Cannot list the alerts: ${err.message}`;
    return false;
  } finally {
    if (generation === alertsState.generation) {
      document.getElementById('alerts').setAttribute('aria-busy', 'false');
    }
  }
}

async function loadOlderAlerts(button) {
  const list = alertsState.list;
  if (list.length === 0) return;
  const generation = alertsState.generation;
  const query = new URLSearchParams({
    limit: String(ALERTS_PAGE),
    before: String(list[list.length - 1].id),
  });
  const rule = ruleFilter();
  if (rule) query.set('rule', rule);
  button.disabled = true;
  try {
    const page = await api(`/api/v1/alerts?${query}`);
    if (generation !== alertsState.generation) return;
    alertsState.list = list.concat(page).slice(0, ALERTS_KEPT);
    alertsState.more = page.length === ALERTS_PAGE && alertsState.list.length < ALERTS_KEPT;
    noteRules(page);
    renderAlerts();
  } catch (err) {
    document.getElementById('alerts-status').textContent = `Cannot list older alerts: ${err.message}`;
  } finally {
    button.disabled = false;
  }
}

/** An alert from the stream: at the top of the table, marked new, announced. */
function receiveAlert(a) {
  noteLastId(a.id);
  noteRules([a]);
  const known = alertsState.list.some((b) => b.id === a.id);
  const rule = ruleFilter();
  const listed = !known && (!rule || rule === a.rule_id);
  if (listed) {
    alertsState.fresh.add(a.id);
    alertsState.list = [a, ...alertsState.list].sort((x, y) => y.id - x.id).slice(0, ALERTS_KEPT);
    renderAlerts();
  }
  if (known) return;
  const hidden = !listed || !statusMatches(a.status, statusFilter()) ? ' (hidden by the filters)' : '';
  const announce = document.getElementById('alerts-new');
  announce.dataset.alert = String(a.id);
  announce.textContent = `New ${a.severity} alert ${a.id}: ${a.rule_id}, ${a.key}${hidden}.`;
}

function onStreamEvent(event) {
  if (event.type !== 'alert' && event.type !== 'message') return;
  let a;
  try {
    a = JSON.parse(event.data);
  } catch (err) {
    setLive('connected', `Live: an event ${event.id} could not be read (${err.message}).`, true);
    return;
  }
  if (!a || typeof a.id !== 'number') {
    setLive('connected', `Live: event ${event.id} is not an alert.`, true);
    return;
  }
  receiveAlert(a);
}

/** One connection of the stream; schedules the next one when it ends, unless it was stopped. */
async function streamOnce(run) {
  const controller = new AbortController();
  stream.controller = controller;
  let silent = false;
  let watchdog = null;
  const quietFor = () => {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => {
      silent = true;
      controller.abort();
    }, STREAM_SILENCE_MS);
  };
  const headers = { Authorization: `Bearer ${token}`, Accept: 'text/event-stream' };
  if (stream.lastId !== null) headers['Last-Event-ID'] = String(stream.lastId);
  let reason;
  let retryMs = null;
  try {
    quietFor();
    const response = await fetch('/api/v1/alerts/stream', {
      headers,
      cache: 'no-store',
      signal: controller.signal,
    });
    if (!response.ok) {
      let body = null;
      try {
        body = await response.json();
      } catch {
        body = null;
      }
      throw new ApiError(response.status, errorMessage(response, body));
    }
    if (!response.body) throw new ApiError(0, 'this browser cannot read a streamed response');
    stream.retryMs = STREAM_RETRY_MIN_MS;
    setLive('connected', 'Live: new alerts appear at the top as the node raises them.', false);
    const parser = new SseParser(onStreamEvent);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      quietFor();
      const { value, done } = await reader.read();
      if (done) break;
      parser.feed(value);
      retryMs = parser.retry;
    }
    reason = 'the node ended the stream';
  } catch (err) {
    if (controller.signal.aborted && !silent) return;
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
      setLive('stopped', `Live updates stopped: ${err.message}`, true);
      return;
    }
    if (silent) reason = `nothing received for ${STREAM_SILENCE_MS / 1000} seconds`;
    else if (err instanceof ApiError) reason = err.message;
    else reason = `the connection was lost: ${err.message}`;
  } finally {
    clearTimeout(watchdog);
  }
  if (run !== stream.run) return;
  // Backoff with jitter, so that many dashboards do not reconnect in step after a restart.
  const base = Math.max(retryMs ?? 0, stream.retryMs);
  const wait = Math.round(base * (0.75 + Math.random() * 0.5));
  stream.retryMs = Math.min(stream.retryMs * 2, STREAM_RETRY_MAX_MS);
  setLive('reconnecting',
    `Live updates interrupted (${reason}); reconnecting in ${Math.ceil(wait / 1000)} s.`, true);
  stream.timer = setTimeout(() => {
    stream.timer = null;
    if (run === stream.run) streamOnce(run);
  }, wait);
}

function startStream() {
  stopStream();
  if (!token) return;
  setLive('connecting', 'Live: connecting…', false);
  streamOnce(stream.run);
}

function stopStream() {
  stream.run++;
  if (stream.timer !== null) clearTimeout(stream.timer);
  stream.timer = null;
  if (stream.controller) stream.controller.abort();
  stream.controller = null;
}

/** The list, then the stream from the newest alert the node had before the list was read. */
async function startAlerts() {
  stopStream();
  const current = token;
  stream.lastId = null;
  stream.retryMs = STREAM_RETRY_MIN_MS;
  alertsState.fresh.clear();
  try {
    // Whatever the rule filter, the stream resumes after the newest alert of any rule.
    const newest = await api('/api/v1/alerts?limit=1');
    if (token !== current) return;
    stream.lastId = newest.length ? newest[0].id : 0;
  } catch (err) {
    if (token !== current) return;
    document.getElementById('alerts-status').textContent = `Cannot list the alerts: ${err.message}`;
    return;
  }
  await loadAlerts();
  if (token !== current) return;
  if (document.visibilityState !== 'hidden') startStream();
  const hash = location.hash.match(ALERT_HASH);
  if (hash) openAlert(Number(hash[1]));
}

function clearAlerts() {
  stopStream();
  alertsState.generation++;
  alertsState.list = [];
  alertsState.more = false;
  alertsState.fresh.clear();
  replaceRows(alertsBody(), []);
  renderCounters([]);
  closeAlert();
  setLive('stopped', '', false);
  document.getElementById('alerts-new').textContent = '';
  document.getElementById('alerts-older').hidden = true;
  document.getElementById('alerts-status').textContent = 'Enter a valid admin token to see the alerts.';
}

// --- Alert detail ------------------------------------------------------------------------------

function setAlertMessage(text, isError) {
  const message = document.getElementById('alert-message');
  message.textContent = text;
  message.classList.toggle('error', Boolean(isError));
}

function definition(list, term, ...value) {
  const dd = el('dd');
  dd.append(...value);
  list.append(el('dt', null, term), dd);
  return dd;
}

function provenanceView(p) {
  const view = el('div', 'provenance-body');
  const dl = el('dl', 'facts');
  definition(dl, 'Ledger', `channel ${p.channel}, entry ${p.index}`).className = 'ledger-position';
  definition(dl, 'Event type', p.event_type);
  const source = p.source ?? {};
  definition(dl, 'Source', [source.connector, source.table, source.key && `key ${source.key}`,
    source.position].filter(Boolean).join(' · ')).className = 'source';
  if (p.raw) definition(dl, 'Raw record', `${p.raw.topic} partition ${p.raw.partition} offset ${p.raw.offset}`);
  if (p.mapping) definition(dl, 'Mapping', `${p.mapping.name} version ${p.mapping.version ?? '?'}`);
  if (p.entry && p.entry.accepted_at_ms) definition(dl, 'Anchored', timeElement(p.entry.accepted_at_ms));
  const canonical = el('details', 'canonical');
  canonical.append(el('summary', null, 'Canonical event'),
    el('pre', 'data', p.canonical === null ? 'erased (its data subject was erased)' : JSON.stringify(p.canonical, null, 2)));
  const proof = el('details', 'proof');
  const download = el('a', 'download', 'Download the proof file');
  download.href = `data:text/plain;charset=utf-8,${encodeURIComponent(p.proof)}`;
  download.download = `${p.event_id.replace(/[^A-Za-z0-9._-]/g, '_')}.tlog-proof`;
  proof.append(el('summary', null, 'Inclusion proof (c2sp.org/tlog-proof@v1)'),
    el('pre', 'data', p.proof), download);
  view.append(dl, canonical, proof);
  return view;
}

async function toggleProvenance(button) {
  const li = button.closest('li[data-event]');
  const panel = li.querySelector('.provenance');
  if (button.getAttribute('aria-expanded') === 'true') {
    button.setAttribute('aria-expanded', 'false');
    panel.hidden = true;
    return;
  }
  button.setAttribute('aria-expanded', 'true');
  panel.hidden = false;
  panel.setAttribute('aria-busy', 'true');
  panel.replaceChildren(el('p', 'muted', 'Loading…'));
  const eventId = li.dataset.event;
  try {
    const p = await api(`/api/v1/provenance/${encodeURIComponent(eventId)}`);
    panel.replaceChildren(provenanceView(p));
    panel.dataset.ok = 'true';
  } catch (err) {
    panel.replaceChildren(errorParagraph(err));
    panel.dataset.ok = 'false';
  } finally {
    panel.setAttribute('aria-busy', 'false');
  }
}

function eventsList(eventIds) {
  if (eventIds.length === 0) return el('p', 'muted', 'The alert names no events.');
  const ul = el('ul', 'alert-events');
  for (const id of eventIds) {
    const li = el('li');
    li.dataset.event = id;
    const button = el('button', 'action-provenance', 'Provenance');
    button.type = 'button';
    button.setAttribute('aria-label', `Provenance of ${id}`);
    button.setAttribute('aria-expanded', 'false');
    const panel = el('div', 'provenance');
    panel.hidden = true;
    panel.id = `provenance-${id.replace(/[^A-Za-z0-9_-]/g, '-')}`;
    button.setAttribute('aria-controls', panel.id);
    li.append(el('code', 'event-id', id), ' ', button,
      el('span', 'muted api-path', ` GET /api/v1/provenance/${id}`), panel);
    ul.append(li);
  }
  return ul;
}

function ledgerIndex(index) {
  return index === null || index === undefined ? 'not yet' : `alerts channel, entry ${index}`;
}

/** Every change (`kind` status) and comment (`kind` comment), oldest first. */
function historyTable(history) {
  if (history.length === 0) {
    return el('p', 'muted no-history', 'No changes yet: the alert is as the rule raised it.');
  }
  return simpleTable('alert-history', ['Time', 'Change', 'Assignee', 'Comment', 'By', 'Anchored'],
    history.map((h) => {
      const tr = el('tr');
      const kind = h.kind ?? 'status';
      tr.dataset.kind = kind;
      tr.dataset.status = h.status;
      const time = cell(null, 'time');
      time.append(timeElement(h.at_ms));
      const change = cell(null, 'change');
      change.append(kind === 'comment' ? el('span', 'kind-comment', 'comment') : statusBadge(h.status));
      tr.append(time, change, cell(kind === 'comment' ? '' : h.assignee ?? '', 'assignee'),
        cell(h.comment, 'comment'), cell(h.actor, 'actor'), cell(ledgerIndex(h.ledger_index), 'anchored'));
      return tr;
    }));
}

/** The alert's e-mail and webhook deliveries. */
function deliveriesTable(deliveries) {
  return simpleTable('alert-deliveries', ['Channel', 'Recipient', 'Mode', 'Status', 'Attempts', 'Last error', 'Sent'],
    deliveries.map((d) => {
      const tr = el('tr');
      tr.dataset.status = d.status;
      const sent = cell(null, 'sent');
      if (d.sent_at_ms) sent.append(timeElement(d.sent_at_ms));
      tr.append(cell(d.channel, 'channel'), cell(d.recipient, 'recipient'), cell(d.mode, 'mode'),
        cell(d.status, 'status'), cell(String(d.attempts), 'attempts num'),
        cell(d.last_error ?? '', 'last-error'), sent);
      return tr;
    }));
}

function renderAlertDetail(detail) {
  const a = detail.alert;
  alertsState.detail = a;
  const panel = document.getElementById('alert-detail');
  panel.dataset.alert = String(a.id);
  panel.dataset.status = a.status;
  panel.dataset.severity = a.severity;
  panel.classList.toggle('critical', a.severity === 'critical');
  document.getElementById('alert-detail-title').textContent = `Alert ${a.id}: ${a.rule_id}`;

  const facts = el('dl', 'facts');
  definition(facts, 'Rule', el('code', 'rule-id', a.rule_id), ` version ${a.rule_version}`)
    .className = 'rule';
  definition(facts, 'Severity', severityBadge(a.severity));
  definition(facts, 'Status', statusBadge(a.status)).className = 'status';
  definition(facts, 'Assignee', a.assignee ?? '—').className = 'assignee';
  definition(facts, 'Key', a.key).className = 'key';
  if (a.event_at_ms !== null && a.event_at_ms !== undefined) {
    definition(facts, 'Event time', timeElement(a.event_at_ms));
  }
  definition(facts, 'Detected', timeElement(a.detected_at_ms));
  definition(facts, 'Anchored', ledgerIndex(a.ledger_index)).className = 'anchored';
  if (a.suppressed_by !== null && a.suppressed_by !== undefined) {
    definition(facts, 'Muted', `by suppression ${a.suppressed_by}: shown here, not delivered by e-mail or webhook`)
      .className = 'suppressed';
  }

  const similar = el('button', 'action-suppress-similar', 'Suppress similar');
  similar.type = 'button';
  similar.title = 'Fill in the suppression form with this alert\'s rule and key';
  const similarLine = el('p', 'similar');
  similarLine.append(similar, el('span', 'muted', ' mute alerts of this rule and key for a while'));
  const parts = [el('h4', null, 'Why'), el('p', 'explanation', a.explanation), facts, similarLine];
  if (a.evidence !== null && a.evidence !== undefined) {
    parts.push(el('h4', null, 'Evidence'), el('pre', 'data evidence', JSON.stringify(a.evidence, null, 2)));
  }
  parts.push(el('h4', null, `Events (${a.event_ids.length})`), eventsList(a.event_ids),
    el('h4', null, 'History'), historyTable(detail.history));
  if (detail.deliveries && detail.deliveries.length > 0) {
    parts.push(el('h4', null, 'Deliveries'), deliveriesTable(detail.deliveries));
  }
  document.getElementById('alert-detail-body').replaceChildren(...parts);

  const form = document.getElementById('alert-actions');
  form.hidden = false;
  const allowed = STATUS_ACTIONS[a.status] ?? Object.keys(ACTION_DONE);
  for (const button of form.querySelectorAll('button[data-status-action]')) {
    button.hidden = !allowed.includes(button.dataset.statusAction);
    button.disabled = false;
  }
  document.getElementById('alert-assignee').placeholder = a.assignee ?? 'nobody yet';
  panel.setAttribute('aria-busy', 'false');
}

/** Opens the detail panel of one alert (also reached by the link `#alert-<id>`). */
async function openAlert(id) {
  const panel = document.getElementById('alert-detail');
  const request = ++alertsState.detailRequest;
  alertsState.detail = null;
  panel.hidden = false;
  panel.dataset.alert = String(id);
  delete panel.dataset.status;
  panel.setAttribute('aria-busy', 'true');
  const heading = document.getElementById('alert-detail-title');
  heading.textContent = `Alert ${id}`;
  document.getElementById('alert-detail-body').replaceChildren(el('p', 'muted', 'Loading…'));
  document.getElementById('alert-actions').hidden = true;
  document.getElementById('alert-comment').value = '';
  document.getElementById('alert-comment').removeAttribute('aria-invalid');
  document.getElementById('alert-assignee').value = '';
  setAlertMessage('', false);
  heading.focus();
  if (location.hash !== `#alert-${id}`) history.replaceState(null, '', `#alert-${id}`);
  if (alertsState.fresh.delete(id)) renderAlerts();
  try {
    const detail = await api(`/api/v1/alerts/${id}`);
    if (request !== alertsState.detailRequest) return;
    renderAlertDetail(detail);
  } catch (err) {
    if (request !== alertsState.detailRequest) return;
    document.getElementById('alert-detail-body').replaceChildren(errorParagraph(err));
    panel.setAttribute('aria-busy', 'false');
  }
}

/** Closes the detail panel; `forget` also drops the `#alert-<id>` link from the address. */
function closeAlert(forget = false) {
  alertsState.detailRequest++;
  alertsState.detail = null;
  const panel = document.getElementById('alert-detail');
  panel.hidden = true;
  delete panel.dataset.alert;
  delete panel.dataset.status;
  document.getElementById('alert-detail-body').replaceChildren();
  document.getElementById('alert-actions').hidden = true;
  setAlertMessage('', false);
  if (forget && ALERT_HASH.test(location.hash)) {
    history.replaceState(null, '', location.pathname + location.search);
  }
}

/**
 * Acknowledge, assign, resolve, false positive or reopen, always with a comment; or (`comment`)
 * only a comment.
 */
async function changeAlert(action) {
  const a = alertsState.detail;
  if (!a) return;
  const commentField = document.getElementById('alert-comment');
  const assigneeField = document.getElementById('alert-assignee');
  const comment = commentField.value.trim();
  const assignee = assigneeField.value.trim();
  if (!comment) {
    commentField.setAttribute('aria-invalid', 'true');
    setAlertMessage('A comment is required: say why, it is kept in the alert\'s history.', true);
    commentField.focus();
    return;
  }
  commentField.removeAttribute('aria-invalid');
  if (action === 'assign' && !assignee) {
    setAlertMessage('Enter who the alert is assigned to.', true);
    assigneeField.focus();
    return;
  }
  let path = `/api/v1/alerts/${a.id}/status`;
  let change = { status: action === 'assign' ? a.status : action, comment };
  if (assignee) change.assignee = assignee;
  if (action === 'comment') {
    path = `/api/v1/alerts/${a.id}/comments`;
    change = { comment };
  }
  const buttons = document.querySelectorAll('#alert-actions button[data-status-action]');
  for (const button of buttons) button.disabled = true;
  const request = alertsState.detailRequest;
  let detail;
  try {
    detail = await api(path, 'POST', token, change);
  } catch (err) {
    if (request !== alertsState.detailRequest) return;
    setAlertMessage(`Alert ${a.id} was not changed: ${err.message}`, true);
    for (const button of buttons) button.disabled = false;
    return;
  }
  alertsState.list = alertsState.list.map((b) => (b.id === detail.alert.id ? detail.alert : b));
  renderAlerts();
  if (request !== alertsState.detailRequest) return;
  renderAlertDetail(detail);
  commentField.value = '';
  if (action === 'comment') {
    setAlertMessage(`Comment added to alert ${a.id}.`, false);
    return;
  }
  assigneeField.value = '';
  const who = action === 'assign' || (assignee && action === 'acknowledged') ? ` (assigned to ${assignee})` : '';
  setAlertMessage(`Alert ${a.id} ${ACTION_DONE[action]}${who}.`, false);
}

alertsBody().addEventListener('click', (event) => {
  const button = event.target.closest('button.action-open');
  if (button) openAlert(Number(button.dataset.alert));
});

document.getElementById('alert-detail-body').addEventListener('click', (event) => {
  const button = event.target.closest('button.action-provenance');
  if (button) toggleProvenance(button);
  if (event.target.closest('button.action-suppress-similar') && alertsState.detail) {
    suppressSimilar(alertsState.detail);
  }
});

document.getElementById('alert-actions').addEventListener('click', (event) => {
  const button = event.target.closest('button[data-status-action]');
  if (button && !button.disabled) changeAlert(button.dataset.statusAction);
});

document.getElementById('alert-actions').addEventListener('submit', (event) => event.preventDefault());
document.getElementById('alert-detail-close').addEventListener('click', () => closeAlert(true));
document.getElementById('alert-filters').addEventListener('submit', (event) => event.preventDefault());
document.getElementById('alert-rule-filter').addEventListener('change', () => {
  if (token) loadAlerts();
});
document.getElementById('alert-status-filter').addEventListener('change', renderAlerts);
document.getElementById('alerts-refresh').addEventListener('click', () => {
  if (token) loadAlerts();
});
document.getElementById('alerts-older').addEventListener('click', (event) => {
  if (token) loadOlderAlerts(event.currentTarget);
});

window.addEventListener('hashchange', () => {
  const hash = location.hash.match(ALERT_HASH);
  if (hash && token) openAlert(Number(hash[1]));
});

// A hidden page needs no live stream; on return it resumes after the last alert it saw.
document.addEventListener('visibilitychange', () => {
  if (!token) return;
  if (document.visibilityState === 'hidden') {
    stopStream();
    setLive('paused', 'Live updates paused while the page is hidden.', false);
  } else {
    startStream();
  }
});

// --- Suppressions ------------------------------------------------------------------------------
//
// GET /api/v1/suppressions (in force; ?all=true also expired and lifted), POST to add one, POST
// …/{id}/lift to end one early. The API checks what is posted (a rule or a key, a reason, a
// duration); the page shows its message.

const SUPPRESSION_STATES = { in_force: 'in force', expired: 'expired', lifted: 'lifted' };

const suppressionsState = { generation: 0 };

function showMessage(id, text, isError) {
  const message = document.getElementById(id);
  message.textContent = text;
  message.classList.toggle('error', Boolean(isError));
}

function suppressionsBody() {
  return document.querySelector('#suppressions tbody');
}

function suppressionState(s, now = Date.now()) {
  if (s.lifted_at_ms !== null && s.lifted_at_ms !== undefined) return 'lifted';
  return s.expires_at_ms <= now ? 'expired' : 'in_force';
}

/** A cell with `value`, or a muted `fallback` when the value is absent. */
function optionalCell(value, fallback, className) {
  if (value !== null && value !== undefined) return cell(value, className);
  const td = cell(null, className);
  td.append(el('span', 'muted', fallback));
  return td;
}

function timeCell(ms, className) {
  const td = cell(null, className);
  td.append(timeElement(ms));
  return td;
}

function suppressionRow(s) {
  const state = suppressionState(s);
  const tr = el('tr');
  tr.dataset.suppression = String(s.id);
  tr.dataset.state = state;
  const idCell = el('th', 'suppression-id num', String(s.id));
  idCell.scope = 'row';
  const stateCell = cell(null, 'suppression-state');
  const badge = el('span', `badge suppression-${state}`, SUPPRESSION_STATES[state]);
  badge.dataset.state = state;
  stateCell.append(badge);
  if (state === 'lifted') {
    stateCell.append(el('br'), el('span', 'muted lifted', `by ${s.lifted_by} `), timeElement(s.lifted_at_ms));
  }
  const actions = cell(null, 'actions');
  if (state === 'in_force') {
    const lift = el('button', 'action-lift', 'Lift');
    lift.type = 'button';
    lift.dataset.suppression = String(s.id);
    lift.setAttribute('aria-label', `Lift suppression ${s.id}`);
    actions.append(lift);
  }
  tr.append(idCell, optionalCell(s.rule_id, 'any rule', 'suppression-rule rule-id'),
    optionalCell(s.alert_key, 'any key', 'suppression-key'), cell(s.reason, 'reason'),
    cell(s.created_by, 'actor'), timeCell(s.created_at_ms, 'created'),
    timeCell(s.expires_at_ms, 'expires'), stateCell, actions);
  return tr;
}

async function loadSuppressions() {
  const generation = ++suppressionsState.generation;
  const current = token;
  const all = document.getElementById('suppressions-all').checked;
  const table = document.getElementById('suppressions');
  const status = document.getElementById('suppressions-status');
  table.setAttribute('aria-busy', 'true');
  try {
    const list = await api(`/api/v1/suppressions${all ? '?all=true' : ''}`);
    if (generation !== suppressionsState.generation || token !== current) return;
    replaceRows(suppressionsBody(), list.map((s) => suppressionRow(s)));
    if (list.length === 0) {
      status.textContent = all ? 'No suppressions yet.' : 'No suppression in force: every alert is delivered.';
    } else {
      status.textContent = `${list.length} suppressions${all ? '' : ' in force'}, newest first.`;
    }
  } catch (err) {
    if (generation !== suppressionsState.generation || token !== current) return;
    status.textContent = `Cannot list the suppressions: ${err.message}`;
  } finally {
    if (generation === suppressionsState.generation) table.setAttribute('aria-busy', 'false');
  }
}

function clearSuppressions() {
  suppressionsState.generation++;
  replaceRows(suppressionsBody(), []);
  showMessage('suppression-message', '', false);
  document.getElementById('suppressions-status').textContent = 'Enter a valid admin token to see the suppressions.';
}

/** What a suppression mutes, in words. */
function suppressionScope(s) {
  const rule = s.rule_id ? `rule ${s.rule_id}` : 'any rule';
  return s.alert_key ? `${rule} with key ${s.alert_key}` : rule;
}

async function addSuppression() {
  const field = (id) => document.getElementById(id).value.trim();
  const request = { reason: field('suppression-reason'), duration: field('suppression-duration') };
  if (field('suppression-rule')) request.rule_id = field('suppression-rule');
  if (field('suppression-key')) request.key = field('suppression-key');
  const button = document.getElementById('suppression-add');
  button.disabled = true;
  try {
    const s = await api('/api/v1/suppressions', 'POST', token, request);
    showMessage('suppression-message',
      `Suppression ${s.id} added: alerts of ${suppressionScope(s)} are muted until ${isoTime(s.expires_at_ms)}.`, false);
    for (const id of ['suppression-rule', 'suppression-key', 'suppression-reason']) {
      document.getElementById(id).value = '';
    }
  } catch (err) {
    showMessage('suppression-message', `No suppression added: ${err.message}`, true);
    return;
  } finally {
    button.disabled = false;
  }
  await loadSuppressions();
}

async function liftSuppression(button) {
  const id = Number(button.dataset.suppression);
  button.disabled = true;
  try {
    await api(`/api/v1/suppressions/${id}/lift`, 'POST');
    showMessage('suppression-message', `Suppression ${id} lifted: its alerts are delivered again.`, false);
  } catch (err) {
    button.disabled = false;
    showMessage('suppression-message', `Suppression ${id} was not lifted: ${err.message}`, true);
  }
  await loadSuppressions();
}

/** "Suppress similar" on an alert: the form, filled in with its rule and key. */
function suppressSimilar(a) {
  document.getElementById('suppression-rule').value = a.rule_id;
  document.getElementById('suppression-key').value = a.key;
  showMessage('suppression-message',
    `Rule and key of alert ${a.id} filled in: give a reason and a duration, then Add suppression.`, false);
  const form = document.getElementById('suppression-form');
  form.scrollIntoView({ block: 'center' });
  document.getElementById('suppression-reason').focus();
}

document.getElementById('suppression-form').addEventListener('submit', (event) => {
  event.preventDefault();
  if (token) addSuppression();
});
suppressionsBody().addEventListener('click', (event) => {
  const button = event.target.closest('button.action-lift');
  if (button && !button.disabled && token) liftSuppression(button);
});
document.getElementById('suppressions-all').addEventListener('change', () => {
  if (token) loadSuppressions();
});
document.getElementById('suppressions-refresh').addEventListener('click', () => {
  if (token) loadSuppressions();
});

// --- Rules -------------------------------------------------------------------------------------
//
// GET /api/v1/rules (the rules in force, shipped or edited, and those disabled), GET
// /api/v1/rules/{id} (the version in force and the versions stored through the API), an editor
// for the rule's TOML with POST …/dry-run (what it would have raised over the events already
// anchored; nothing is stored) and PUT (a new version, with a comment). The API checks the rule
// and names every mistake with its line: its message is shown as it is, line breaks included.

const DRY_RUN_SHOWN = 20;

const rulesState = {
  list: [],
  generation: 0,
  // The rule in the editor (null: a new one) and the request counter of the panel.
  rule: null,
  detailRequest: 0,
};

function rulesBody() {
  return document.querySelector('#rules tbody');
}

function ruleRow(r) {
  const tr = el('tr');
  tr.dataset.rule = r.id;
  tr.dataset.origin = r.origin;
  tr.dataset.enabled = String(r.enabled);
  tr.dataset.version = String(r.version);
  const name = el('th', 'rule-name');
  name.scope = 'row';
  name.append(el('span', 'rule-id', r.id));
  const severity = cell(null, 'rule-severity');
  if (r.severity) severity.append(severityBadge(r.severity));
  const open = el('button', 'action-open-rule', 'Open');
  open.type = 'button';
  open.dataset.rule = r.id;
  open.setAttribute('aria-label', `Open rule ${r.id}`);
  const actions = cell(null, 'actions');
  actions.append(open);
  tr.append(name, cell(String(r.version), 'rule-version num'), severity,
    cell(r.event_types.join(', '), 'rule-event-types'), cell(r.explanation, 'rule-explanation'),
    cell(r.origin === 'builtin' ? 'shipped' : 'API', 'rule-origin'),
    cell(r.enabled ? 'yes' : 'no (disabled)', 'rule-enabled'), actions);
  return tr;
}

async function loadRules() {
  const generation = ++rulesState.generation;
  const current = token;
  const status = document.getElementById('rules-status');
  const table = document.getElementById('rules');
  table.setAttribute('aria-busy', 'true');
  try {
    const list = await api('/api/v1/rules');
    if (generation !== rulesState.generation || token !== current) return;
    rulesState.list = list;
    replaceRows(rulesBody(), list.map((r) => ruleRow(r)));
    document.getElementById('rule-ids').replaceChildren(...list.map((r) => {
      const option = el('option');
      option.value = r.id;
      return option;
    }));
    const disabled = list.filter((r) => !r.enabled).length;
    status.textContent = `${list.length} rules` +
      `${disabled ? `, ${disabled} of them disabled` : ''}; edited ones run on the node within seconds.`;
  } catch (err) {
    if (generation !== rulesState.generation || token !== current) return;
    status.textContent = `Cannot list the rules: ${err.message}`;
  } finally {
    if (generation === rulesState.generation) table.setAttribute('aria-busy', 'false');
  }
}

/** TOML for a new rule: a threshold rule to adapt. */
function ruleTemplate() {
  return [
    '[[rules]]',
    'id = "customs.new-rule"',
    'version = 1',
    'severity = "low"',
    'event_types = ["customs.declaration"]',
    'explanation = "declaration {key}: {values}"',
    '[rules.threshold]',
    'where = [{ field = "/data/declared_value_krw", ge = 10000000 }]',
    '',
  ].join('\n');
}

/**
 * TOML for a rule the API gives no text of (an API older than `toml` in the rule detail): the
 * fields it does give, and where the condition is.
 */
function ruleSkeleton(r) {
  const domain = r.id.split('.')[0];
  return [
    `# The shipped rule's condition is in monitoring/rules/${domain}.toml: copy its section`,
    '# ([rules.threshold], [rules.window], [rules.join] …) below before a dry-run or saving.',
    '[[rules]]',
    `id = ${JSON.stringify(r.id)}`,
    `version = ${r.version}`,
    `severity = ${JSON.stringify(r.severity)}`,
    `event_types = [${r.event_types.map((t) => JSON.stringify(t)).join(', ')}]`,
    `explanation = ${JSON.stringify(r.explanation)}`,
    '',
  ].join('\n');
}

function ruleFacts(r) {
  const facts = el('dl', 'facts');
  if (!r) {
    definition(facts, 'In force', 'no: the rule is disabled').className = 'rule-in-force';
    return facts;
  }
  definition(facts, 'Version in force', String(r.version)).className = 'rule-version';
  definition(facts, 'Severity', severityBadge(r.severity));
  definition(facts, 'Event types', r.event_types.join(', ')).className = 'rule-event-types';
  definition(facts, 'Explanation', r.explanation).className = 'rule-explanation';
  definition(facts, 'Origin', r.origin === 'builtin' ? 'shipped with ledgerbridge' : 'edited through the API')
    .className = 'rule-origin';
  return facts;
}

/** The versions stored through the API, newest first. */
function versionsTable(versions) {
  if (versions.length === 0) {
    return el('p', 'muted no-versions', 'No version stored through the API: the shipped definition is in force.');
  }
  return simpleTable('rule-versions', ['Version', 'Enabled', 'Comment', 'By', 'When', 'Rule'],
    [...versions].reverse().map((v) => {
      const tr = el('tr');
      tr.dataset.version = String(v.version);
      tr.dataset.enabled = String(v.enabled);
      const body = el('details', 'version-body');
      body.append(el('summary', null, 'TOML'), el('pre', 'data', v.body));
      const bodyCell = cell(null, 'body');
      bodyCell.append(body);
      tr.append(cell(String(v.version), 'version num'), cell(v.enabled ? 'yes' : 'no', 'enabled'),
        cell(v.comment, 'comment'), cell(v.created_by, 'actor'), timeCell(v.created_at_ms, 'time'), bodyCell);
      return tr;
    }));
}

function resetRuleOutput() {
  showMessage('rule-message', '', false);
  const dryRun = document.getElementById('rule-dry-run');
  dryRun.replaceChildren();
  for (const key of ['events', 'matching', 'alerts']) delete dryRun.dataset[key];
  document.getElementById('rule-comment').removeAttribute('aria-invalid');
}

/** Shows the panel for rule `id`, or (`id` null) for a new rule. */
async function openRule(id) {
  const panel = document.getElementById('rule-detail');
  const request = ++rulesState.detailRequest;
  rulesState.rule = id;
  panel.hidden = false;
  panel.setAttribute('aria-busy', 'true');
  panel.dataset.rule = id ?? '';
  panel.dataset.new = String(id === null);
  const heading = document.getElementById('rule-detail-title');
  const body = document.getElementById('rule-detail-body');
  const editor = document.getElementById('rule-editor');
  const idField = document.getElementById('rule-id');
  resetRuleOutput();
  document.getElementById('rule-comment').value = '';
  heading.textContent = id === null ? 'New rule' : `Rule ${id}`;
  heading.focus();
  if (id === null) {
    body.replaceChildren(el('p', 'muted', 'A new rule: name it, adapt the template, try it over the events ' +
      'already anchored, then save it with a comment.'));
    idField.value = '';
    idField.readOnly = false;
    document.getElementById('rule-toml').value = ruleTemplate();
    document.getElementById('rule-enabled').checked = true;
    editor.hidden = false;
    panel.setAttribute('aria-busy', 'false');
    return;
  }
  body.replaceChildren(el('p', 'muted', 'Loading…'));
  editor.hidden = true;
  let detail;
  try {
    detail = await api(`/api/v1/rules/${encodeURIComponent(id)}`);
  } catch (err) {
    if (request !== rulesState.detailRequest) return;
    body.replaceChildren(errorParagraph(err));
    panel.setAttribute('aria-busy', 'false');
    return;
  }
  if (request !== rulesState.detailRequest) return;
  renderRuleDetail(id, detail, true);
}

/** Fills the panel; `fillEditor` also replaces the editor's text with the newest version. */
function renderRuleDetail(id, detail, fillEditor) {
  const panel = document.getElementById('rule-detail');
  const { rule, versions } = detail;
  panel.dataset.versions = String(versions.length);
  document.getElementById('rule-detail-body').replaceChildren(ruleFacts(rule),
    el('h5', null, `Versions stored through the API (${versions.length})`), versionsTable(versions));
  if (fillEditor) {
    const idField = document.getElementById('rule-id');
    idField.value = id;
    idField.readOnly = true;
    const newest = versions.at(-1);
    document.getElementById('rule-toml').value = detail.toml ?? (newest ? newest.body : ruleSkeleton(rule));
    document.getElementById('rule-enabled').checked = newest ? newest.enabled : (rule?.enabled ?? true);
  }
  document.getElementById('rule-editor').hidden = false;
  panel.setAttribute('aria-busy', 'false');
}

function closeRule() {
  rulesState.detailRequest++;
  rulesState.rule = null;
  const panel = document.getElementById('rule-detail');
  panel.hidden = true;
  delete panel.dataset.rule;
  document.getElementById('rule-detail-body').replaceChildren();
  document.getElementById('rule-editor').hidden = true;
  resetRuleOutput();
}

/** The rule id of the editor: the field, else the `id` of the TOML. */
function editedRuleId() {
  const field = document.getElementById('rule-id').value.trim();
  if (field) return field;
  const match = document.getElementById('rule-toml').value.match(/^\s*id\s*=\s*"([^"]+)"/m);
  return match ? match[1] : '';
}

/** An API refusal in the rule panel: a line of ours, then the API's message as it is. */
function showRuleError(prefix, err) {
  const message = document.getElementById('rule-message');
  message.classList.add('error');
  message.replaceChildren(el('strong', null, prefix), el('pre', 'api-message', err.message));
}

function dryRunView(run) {
  const count = (n, one, many) => `${formatCount(n)} ${n === 1 ? one : many}`;
  const parts = [el('p', 'dry-run-counts',
    `Replayed ${count(run.events, 'event', 'events')} already anchored: ` +
    `${count(run.matching_events, 'is', 'are')} of the rule's event types; ` +
    `it would have raised ${count(run.alerts.length, 'alert', 'alerts')}. Nothing was stored.`)];
  if (run.alerts.length > 0) {
    const shown = run.alerts.slice(0, DRY_RUN_SHOWN);
    parts.push(el('p', 'muted', run.alerts.length > shown.length
      ? `The first ${shown.length}, in the order of the events:` : 'In the order of the events:'));
    parts.push(simpleTable('dry-run-alerts', ['Severity', 'Key', 'Explanation', 'Events', 'Event time'],
      shown.map((a) => {
        const tr = el('tr');
        tr.dataset.key = a.key;
        const severity = cell(null, 'alert-severity');
        severity.append(severityBadge(a.severity));
        const time = a.event_time !== null && a.event_time !== undefined
          ? timeCell(a.event_time, 'time') : cell('', 'time');
        tr.append(severity, cell(a.key, 'alert-key'), cell(a.explanation, 'alert-explanation'),
          cell(String(a.event_ids.length), 'events num'), time);
        return tr;
      })));
  }
  return parts;
}

async function dryRunRule(button) {
  const id = editedRuleId();
  const output = document.getElementById('rule-dry-run');
  resetRuleOutput();
  if (!id) {
    showMessage('rule-message', 'Name the rule: its id, in the field or in the TOML.', true);
    return;
  }
  const request = rulesState.detailRequest;
  button.disabled = true;
  output.setAttribute('aria-busy', 'true');
  output.replaceChildren(el('p', 'muted', 'Replaying the events already anchored…'));
  try {
    const run = await api(`/api/v1/rules/${encodeURIComponent(id)}/dry-run`, 'POST', token,
      { toml: document.getElementById('rule-toml').value });
    if (request !== rulesState.detailRequest) return;
    output.dataset.events = String(run.events);
    output.dataset.matching = String(run.matching_events);
    output.dataset.alerts = String(run.alerts.length);
    output.replaceChildren(...dryRunView(run));
  } catch (err) {
    if (request !== rulesState.detailRequest) return;
    output.replaceChildren();
    showRuleError(`The dry-run of ${id} was refused:`, err);
  } finally {
    button.disabled = false;
    output.setAttribute('aria-busy', 'false');
  }
}

async function saveRule(button) {
  const id = editedRuleId();
  const commentField = document.getElementById('rule-comment');
  const comment = commentField.value.trim();
  resetRuleOutput();
  if (!id) {
    showMessage('rule-message', 'Name the rule: its id, in the field or in the TOML.', true);
    return;
  }
  if (!comment) {
    commentField.setAttribute('aria-invalid', 'true');
    showMessage('rule-message', 'A comment is required: say why the rule changes.', true);
    commentField.focus();
    return;
  }
  const request = rulesState.detailRequest;
  const enabled = document.getElementById('rule-enabled').checked;
  button.disabled = true;
  let saved;
  try {
    saved = await api(`/api/v1/rules/${encodeURIComponent(id)}`, 'PUT', token,
      { toml: document.getElementById('rule-toml').value, enabled, comment });
  } catch (err) {
    if (request === rulesState.detailRequest) showRuleError(`${id} was not saved:`, err);
    return;
  } finally {
    button.disabled = false;
  }
  loadRules();
  if (request !== rulesState.detailRequest) return;
  commentField.value = '';
  // The panel becomes the saved rule's, its history read again (the editor keeps the text).
  rulesState.rule = id;
  const panel = document.getElementById('rule-detail');
  panel.dataset.rule = id;
  panel.dataset.new = 'false';
  panel.setAttribute('aria-busy', 'true');
  document.getElementById('rule-detail-title').textContent = `Rule ${id}`;
  const idField = document.getElementById('rule-id');
  idField.value = id;
  idField.readOnly = true;
  showMessage('rule-message', `Saved version ${saved.version} of ${id}` +
    `${saved.enabled ? '; the node runs it within seconds' : ', disabled'}.`, false);
  try {
    const detail = await api(`/api/v1/rules/${encodeURIComponent(id)}`);
    if (request !== rulesState.detailRequest) return;
    renderRuleDetail(id, detail, false);
  } catch (err) {
    if (request !== rulesState.detailRequest) return;
    document.getElementById('rule-detail-body').replaceChildren(errorParagraph(err));
    panel.setAttribute('aria-busy', 'false');
  }
}

function clearRules() {
  rulesState.generation++;
  rulesState.list = [];
  replaceRows(rulesBody(), []);
  document.getElementById('rule-ids').replaceChildren();
  closeRule();
  document.getElementById('rules-status').textContent = 'Enter a valid admin token to see the rules.';
}

rulesBody().addEventListener('click', (event) => {
  const button = event.target.closest('button.action-open-rule');
  if (button && token) openRule(button.dataset.rule);
});
document.getElementById('rule-new').addEventListener('click', () => {
  if (token) openRule(null);
});
document.getElementById('rules-refresh').addEventListener('click', () => {
  if (token) loadRules();
});
document.getElementById('rule-detail-close').addEventListener('click', closeRule);
document.getElementById('rule-editor').addEventListener('submit', (event) => event.preventDefault());
document.getElementById('rule-dry-run-button').addEventListener('click', (event) => {
  if (token && !event.currentTarget.disabled) dryRunRule(event.currentTarget);
});
document.getElementById('rule-save').addEventListener('click', (event) => {
  if (token && !event.currentTarget.disabled) saveRule(event.currentTarget);
});

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
    clearAlerts();
    clearSuppressions();
    clearRules();
    return;
  }
  const changed = token !== candidate;
  token = candidate;
  sessionStorage.setItem(TOKEN_KEY, candidate);
  startConnectors();
  if (changed) {
    clearAlerts();
    startAlerts();
    clearSuppressions();
    loadSuppressions();
    clearRules();
    loadRules();
  }
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
