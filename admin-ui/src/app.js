// ledgerbridge admin UI: node status and the node's own event log.
// Plain browser JavaScript, served by the node itself; no build step.
'use strict';

const TOKEN_KEY = 'ledgerbridge.token';

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function replaceRows(tbody, rows) {
  tbody.replaceChildren(...rows);
}

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
  } catch (err) {
    overall.textContent = 'unreachable';
    overall.className = 'badge down';
  }
}

async function showEvents(token) {
  const status = document.getElementById('token-status');
  const response = await fetch('/api/v1/system/events?limit=100', {
    headers: { Authorization: `Bearer ${token}` },
  });
  const body = await response.json();
  if (!response.ok) {
    status.textContent = body.error ? body.error.message : `HTTP ${response.status}`;
    replaceRows(document.querySelector('#events tbody'), []);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  status.textContent = `${body.events.length} of ${body.end} events`;
  replaceRows(document.querySelector('#events tbody'), body.events.map((e) => {
    const tr = document.createElement('tr');
    tr.append(
      cell(String(e.offset)),
      cell(new Date(e.timestamp_ms).toISOString()),
      cell(e.type),
      cell(JSON.stringify(e.data), 'data'),
    );
    return tr;
  }));
}

document.getElementById('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const token = document.getElementById('token').value.trim();
  if (token) showEvents(token);
});

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) {
  document.getElementById('token').value = saved;
  showEvents(saved);
}
refreshHealth();
setInterval(refreshHealth, 5000);
