// shopwatch dashboard, part 3 of 3: state, tables, alerts, health, the socket. One websocket,
// JSON messages {type, v, seq, ts, ts_ms, data}. Every value from events is written with textContent, never as HTML.
'use strict';

const state = { clockOffset: 0, lastMessage: 0, dataAsOf: null, kpisAsOf: null, latestOrders: [], latestErrors: [] };
const $ = (id) => document.getElementById(id);
// Numbers in the page's locale (`http.locale`; empty: the browser's) and amounts in the
// shop's currency (`http.currency`), both from the `views` message.
let fmtInt, fmtMoney, fmtMoneyShort, fmtPct, fmtCompact;
function setNumbers(n) {
  let locale = (n && n.locale) || undefined;
  let currency = (n && n.currency) || 'USD';
  // The server checks both; a browser that still refuses one falls back to its own defaults.
  try { new Intl.NumberFormat(locale, { style: 'currency', currency }); } catch (e) { locale = undefined; currency = 'USD'; }
  fmtInt = new Intl.NumberFormat(locale, { maximumFractionDigits: 0 });
  fmtMoney = new Intl.NumberFormat(locale, { style: 'currency', currency });
  fmtMoneyShort = new Intl.NumberFormat(locale, { style: 'currency', currency, notation: 'compact', maximumFractionDigits: 2 });
  fmtPct = new Intl.NumberFormat(locale, { style: 'percent', maximumFractionDigits: 2 });
  fmtCompact = new Intl.NumberFormat(locale, { notation: 'compact', maximumFractionDigits: 1 });
}
setNumbers(null);

// Times show in the browser's local time; `?tz=utc` (the toggle) shows UTC.
const params = new URLSearchParams(location.search);
state.utc = params.get('tz') === 'utc';
function tzName() { return state.utc ? 'UTC' : 'local'; }
function utcTime(ms) {
  if (ms === null || ms === undefined) return '–';
  const d = new Date(ms);
  if (state.utc) return d.toISOString().slice(11, 19);
  const p = (n) => String(n).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
function setParam(name, value) {
  const q = new URLSearchParams(location.search);
  if (value) q.set(name, value); else q.delete(name);
  history.replaceState(null, '', location.pathname + (q.toString() ? '?' + q : ''));
}
function setUtc(utc) {
  state.utc = utc;
  setParam('tz', utc ? 'utc' : null);
  for (const t of document.querySelectorAll('.tz')) t.textContent = tzName();
  $('tz-toggle').textContent = utc ? 'Show local time' : 'Show UTC';
  $('tz-toggle').setAttribute('aria-pressed', String(utc));
  rerender();
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

// ---- the rows behind a figure, through the same Flight SQL path ----
const ROWS_PARAMS = { orders: { what: 'orders' }, serious_errors: { what: 'errors', serious: true }, clicks: { what: 'clicks' } };
const ROWS_TITLE = { orders: 'Orders', serious_errors: 'Errors (ERROR+FATAL)', clicks: 'Clicks' };
async function showRows(title, params) {
  const box = $('rows');
  box.hidden = false;
  $('rows-title').textContent = title;
  $('rows-status').textContent = 'loading…';
  box.dataset.state = 'loading';
  let d;
  try {
    const r = await fetch('/api/rows?' + new URLSearchParams(params));
    d = await r.json();
    if (!r.ok) throw new Error(d.error || String(r.status));
  } catch (e) {
    $('rows-status').textContent = 'not available: ' + e.message;
    box.dataset.state = 'error';
    return;
  }
  $('rows-status').textContent = `${fmtInt.format(d.count)} rows` + (d.more ? `, the newest ${d.rows.length} shown` : '') +
    `, ${utcTime(d.from)}–${utcTime(d.to)} ${tzName()}`;
  const head = document.createElement('tr');
  for (const c of d.columns) head.appendChild(el('th', c.endsWith('_ts') ? `${c} (${tzName()})` : c));
  $('rows-table').querySelector('thead').replaceChildren(head);
  fillTable('rows-table', d.rows, (row) => d.columns.map((c) => {
    const v = row[c];
    if (c.endsWith('_ts')) return [utcTime(v)];
    if (typeof v === 'number') return [c === 'order_total' ? fmtMoney.format(v) : String(v), 'num'];
    return [v === null ? '–' : v, 'wrap'];
  }));
  box.dataset.state = 'done';
  box.dataset.count = String(d.count);
  box.scrollIntoView({ block: 'nearest' });
}
$('rows-close').addEventListener('click', () => { $('rows').hidden = true; });

// A card: the period it covers.
function cardRows(c) {
  const k = lastKpis;
  if (!k || !k.as_of_ms) return;
  const to = k.as_of_ms, from = to - k.period_s * 1000;
  showRows(`${ROWS_TITLE[c.rows]} behind the ${c.title.toLowerCase()} card`, { ...ROWS_PARAMS[c.rows], from, to });
}

// Chart points: the minute (or bucket) nearest the click.
function chartWithRows(svg, c) {
  svg.classList.add('has-rows');
  svg.addEventListener('click', (ev) => {
    const pts = svg.shopwatchPoints;
    if (!pts || !pts.length) return;
    const box = svg.getBoundingClientRect();
    const x = ev.clientX - box.left;
    let best = pts[0];
    for (const p of pts) if (Math.abs(p.x - x) < Math.abs(best.x - x)) best = p;
    const from = best.t, to = best.t + state.bucketMs;
    showRows(`${ROWS_TITLE[c.rows]} of ${utcTime(from).slice(0, 5)}–${utcTime(to).slice(0, 5)}`, { ...ROWS_PARAMS[c.rows], from, to });
  });
}

// Alert groups: the events of the rule's key over the group's span.
function alertRows(g) {
  const from = g.first_at - 60000, to = g.last_at + 1000;
  if (g.alert_type === 'ORDERS_DROP' || g.alert_type === 'REVENUE_DROP') return { what: 'orders', from, to };
  if (g.alert_type === 'NO_DATA') return null;
  const p = { what: 'errors', from, to, serious: true };
  if (g.alert_key && g.alert_key !== 'all' && (g.alert_type === 'FATAL_ERROR' || g.alert_type === 'ERROR_SPIKE')) p.service = g.alert_key;
  return p;
}

// ---- tables ----
function fillTable(id, rows, cells) {
  const body = $(id).querySelector('tbody');
  const fresh = document.createElement('tbody');
  for (const r of rows) {
    const tr = document.createElement('tr');
    for (const [text, cls] of cells(r)) tr.appendChild(el('td', text, cls));
    fresh.appendChild(tr);
  }
  body.replaceWith(fresh);
}

let lastAlerts = null;
function renderAlerts(rows) {
  lastAlerts = rows;
  $('alerts-empty').hidden = rows.length > 0;
  fillTable('alerts', rows, (a) => [
    [utcTime(a.alert_timestamp)],
    [a.alert_type, 'sev-' + (a.alert_type === 'FATAL_ERROR' ? 'FATAL' : 'WARN')],
    [a.description, 'wrap'],
    [a.metric_value === null ? '' : fmtInt.format(a.metric_value), 'num'],
  ]);
}

// ---- who is looking: viewers see no buttons; state changes carry the session's CSRF token ----
const session = { auth: false, user: null, role: 'operator', csrf: null };
async function loadSession() {
  try {
    const r = await fetch('/api/session');
    if (r.status === 401) { location.href = '/login'; return; }
    Object.assign(session, await r.json());
  } catch { return; }
  if (!session.auth) return;
  const who = $('who');
  who.hidden = false;
  who.querySelector('span').textContent = `${session.user} (${session.role})`;
  if (session.role !== 'operator') $('alert-note').closest('p').hidden = true;
  if (lastAlertGroups) renderAlertGroups(lastAlertGroups);
}
async function logout() {
  await fetch('/logout', { method: 'POST', headers: { 'X-CSRF-Token': session.csrf || '' } }).catch(() => {});
  location.href = '/login';
}

// ---- alert groups: state from the operators' actions, and the buttons that record them ----
let lastAlertGroups = null;
const SILENCE_S = 3600;
function renderAlertGroups(rows) {
  lastAlertGroups = rows;
  $('alert-groups-empty').hidden = rows.length > 0;
  const body = $('alert-groups').querySelector('tbody');
  const fresh = document.createElement('tbody');
  for (const g of rows) {
    const tr = document.createElement('tr');
    tr.dataset.key = g.alert_type + '|' + g.alert_key;
    tr.dataset.state = g.state;
    if (g.state !== 'open') tr.className = 'muted';
    tr.appendChild(el('td', utcTime(g.last_at)));
    tr.appendChild(el('td', g.alert_type, 'sev-' + (g.alert_type === 'FATAL_ERROR' ? 'FATAL' : 'WARN')));
    tr.appendChild(el('td', g.alert_key, 'wrap'));
    tr.appendChild(el('td', g.alert_count === null ? '' : fmtInt.format(g.alert_count), 'num'));
    tr.appendChild(el('td', utcTime(g.first_at)));
    tr.appendChild(el('td', g.description, 'wrap'));
    const a = g.action || {};
    let said = 'open';
    if (g.state === 'silenced') said = `silenced until ${utcTime(a.until)} by ${a.by}`;
    else if (g.state === 'acknowledged') {
      said = `acknowledged ${utcTime(a.at)} by ${a.by}`;
      if (a.through < g.last_at) said += '; newer alerts since';
    } else if (a.through) said = `open: newer than the acknowledgement of ${utcTime(a.through)}`;
    if (a.note) said += ` — “${a.note}”`;
    tr.appendChild(el('td', said, 'wrap state-' + g.state));
    const acts = el('td', null, 'actions');
    const button = (label, action, extra) => {
      if (session.role !== 'operator') return;
      const b = el('button', label);
      b.type = 'button';
      b.dataset.action = action;
      b.addEventListener('click', () => act(b, { action, alert_type: g.alert_type, alert_key: g.alert_key, ...extra }));
      acts.appendChild(b);
    };
    const rows = alertRows(g);
    if (rows) {
      // A link, not a button: it only shows rows, and viewers get it too.
      const a = el('a', 'Rows', 'rows-link');
      a.href = '#rows';
      a.dataset.rows = 'alert';
      a.addEventListener('click', (e) => { e.preventDefault(); showRows(`Rows behind ${g.alert_type} ${g.alert_key}`, rows); });
      acts.appendChild(a);
    }
    if (g.state === 'silenced') button('Unsilence', 'unsilence', {});
    else button('Silence 1 h', 'silence', { duration_s: SILENCE_S });
    if (g.state === 'acknowledged') button('Undo acknowledge', 'unacknowledge', {});
    else if (g.state === 'open') button('Acknowledge', 'acknowledge', { through: g.last_at * 1000 + 999 });
    tr.appendChild(acts);
    fresh.appendChild(tr);
  }
  body.replaceWith(fresh);
}

async function act(button, body) {
  const note = $('alert-note').value.trim();
  if (note && body.action !== 'unsilence' && body.action !== 'unacknowledge') body.note = note;
  button.disabled = true;
  $('alert-action-status').textContent = 'saving…';
  try {
    const headers = { 'Content-Type': 'application/json' };
    if (session.csrf) headers['X-CSRF-Token'] = session.csrf;
    const r = await fetch('/api/alerts/actions', { method: 'POST', headers, body: JSON.stringify(body) });
    const answer = await r.json().catch(() => ({}));
    $('alert-action-status').textContent = r.ok
      ? `${body.action} recorded for ${body.alert_type} ${body.alert_key}; the table follows within seconds`
      : `not recorded: ${answer.error || r.status}`;
    if (r.ok) $('alert-note').value = '';
  } catch (e) {
    $('alert-action-status').textContent = 'not recorded: the server did not answer';
  } finally {
    button.disabled = false;
  }
}

function renderOrders(rows) {
  state.latestOrders = rows;
  fillTable('orders', rows, (o) => [
    [o.order_id, 'wrap'], [o.user_id], [o.order_total === null ? '–' : fmtMoney.format(o.order_total), 'num'],
    [o.status], [utcTime(o.order_ts)],
  ]);
  updateDataAsOf();
}

function renderErrors(rows) {
  state.latestErrors = rows;
  fillTable('errors', rows, (e) => [
    [e.service_name], [e.severity, 'sev-' + e.severity], [e.error_message, 'wrap'], [utcTime(e.error_ts)],
  ]);
  updateDataAsOf();
}

function updateDataAsOf() {
  const times = [...state.latestOrders.map((o) => o.order_ts), ...state.latestErrors.map((e) => e.error_ts)]
    .filter((t) => typeof t === 'number');
  state.dataAsOf = times.length ? Math.max(...times) : null;
  renderFreshness();
}

// Maintenance steps that failed: the lake is not being kept small; name the worst.
function maintenanceText(failing) {
  const broken = failing.filter((m) => m.consecutive > 0);
  if (!broken.length) return '';
  const w = broken[0];
  return ` · maintenance failing: ${w.step} of ${w.table} (${w.consecutive}× in a row: ${w.last_error || '?'})` +
    (broken.length > 1 ? ` and ${broken.length - 1} more` : '');
}

// This instance among several: rollup ownership, its partitions, the group's members.
function instanceText(inst) {
  const e = inst.election || {};
  const role = e.rollup_owner ? 'computes the KPI and alert tables'
    : e.elected ? 'standby for the KPI and alert tables (another instance computes them)' : '';
  const parts = Object.entries(inst.assigned_partitions || {})
    .map(([t, ps]) => `${t} ${ps.length ? ps.join(',') : 'none'}`).join(' · ');
  const members = (e.members || []).length
    ? `group: ${e.members.map((m) => `${m.client_id}@${m.host}${m.owner ? ' (owner)' : ''}`).join(', ')}`
    : e.members_error ? `group members unknown (${e.members_error})` : '';
  return ['This instance ' + (role || 'runs alone'), parts && `partitions: ${parts}`, members]
    .filter(Boolean).join(' · ');
}

function renderHealth(h) {
  const lastCommit = h.last_commit_ms ? `${((serverNow() - h.last_commit_ms) / 1000).toFixed(1)} s ago` : 'none yet';
  const q = h.query || {};
  $('health-summary').textContent =
    `${(h.pipelines || []).length} pipelines · ${h.restarts} restarts · consumer lag ${fmtInt.format(h.consumer_lag || 0)} records · ` +
    `last commit ${lastCommit} · KPI reads via ${q.backend || '?'}` +
    (q.last_error ? ` — last read failed: ${q.last_error}` : q.last_duration_ms ? ` (${q.last_duration_ms.toFixed(0)} ms)` : '') +
    maintenanceText(h.maintenance_failing || []);
  $('instance-summary').textContent = instanceText(h.instance || {});
  const lag = h.lag_by_topic || {};
  fillTable('pipelines', h.pipelines || [], (p) => {
    const st = typeof p.state === 'string' ? p.state : Object.keys(p.state || {})[0] || '?';
    return [[p.pipeline], [p.topic], [st, 'state-' + st.toLowerCase()], [p.restarts, 'num'],
      [fmtInt.format(lag[p.topic] || 0), 'num'], [p.last_error || '', 'wrap']];
  });
}

// ---- freshness and connection state ----
function serverNow() { return Date.now() + state.clockOffset; }

function renderFreshness() {
  const f = $('freshness');
  if (state.dataAsOf === null) { f.textContent = 'waiting for data'; return; }
  const behind = Math.max(0, (serverNow() - state.dataAsOf) / 1000);
  f.textContent = `data as of ${utcTime(state.dataAsOf)} ${tzName()}, ${behind.toFixed(1)} s behind`;
}

const STALE_AFTER_MS = 25000; // 2.5 heartbeats
function setConn(kind, text) {
  const c = $('conn');
  c.className = 'conn ' + kind;
  c.textContent = text;
  const stale = kind === 'stale';
  document.body.classList.toggle('stale', stale);
  $('stale-banner').hidden = !stale;
}

setInterval(() => {
  renderFreshness();
  if (state.lastMessage && Date.now() - state.lastMessage > STALE_AFTER_MS && $('conn').className.includes('live')) {
    setConn('stale', 'stale: no message for ' + Math.round((Date.now() - state.lastMessage) / 1000) + ' s');
    if (ws) ws.close();
  }
}, 500);

// ---- time range: 30 min is live over the socket; 6 h and 24 h are read on request ----
const RANGES = { '30m': 'per minute, last 30 min', '6h': 'per 5 min, last 6 h', '24h': 'per 15 min, last 24 h' };
state.range = RANGES[params.get('range')] ? params.get('range') : '30m';
state.bucketMs = 60000;
let wsKpis = null, wsSeries = null, rangeTimer = null;
async function loadRange() {
  const asked = state.range;
  $('range-status').textContent = 'loading…';
  try {
    const r = await fetch('/api/trends?range=' + asked);
    const v = await r.json();
    if (!r.ok) throw new Error(v.error || String(r.status));
    if (state.range !== asked) return;
    state.bucketMs = v.bucket_s * 1000;
    renderKpis(v.kpis);
    renderSeries(v.series);
    $('range-status').textContent = `read ${utcTime(serverNow())} ${tzName()}`;
  } catch (e) {
    $('range-status').textContent = 'not available: ' + e.message;
  }
}
function setRange(range) {
  state.range = range;
  setParam('range', range === '30m' ? null : range);
  for (const b of document.querySelectorAll('.ranges button')) b.setAttribute('aria-pressed', String(b.dataset.range === range));
  for (const e of document.querySelectorAll('.range-label')) e.textContent = RANGES[range];
  document.body.dataset.range = range;
  clearInterval(rangeTimer);
  if (range === '30m') {
    state.bucketMs = 60000;
    $('range-status').textContent = '';
    if (wsKpis) renderKpis(wsKpis);
    if (wsSeries) renderSeries(wsSeries);
  } else {
    loadRange();
    rangeTimer = setInterval(loadRange, 30000);
  }
}
for (const b of document.querySelectorAll('.ranges button')) b.addEventListener('click', () => setRange(b.dataset.range));

const HANDLERS = {
  views: renderViews,
  kpis: (k) => { wsKpis = k; if (state.range === '30m') renderKpis(k); },
  series: (v) => { wsSeries = v; if (state.range === '30m') renderSeries(v); }, alerts: renderAlerts, alert_groups: renderAlertGroups,
  latest_orders: renderOrders, latest_errors: renderErrors, health: renderHealth,
  heartbeat: () => {},
  // The layout first: the cards and charts the other messages fill.
  snapshot: (d) => {
    if (d.views) renderViews(d.views);
    for (const [k, v] of Object.entries(d)) if (HANDLERS[k] && k !== 'snapshot' && k !== 'views') HANDLERS[k](v);
  },
};

// ---- the socket: reconnect with exponential backoff and jitter ----
let ws = null, attempt = 0, openedAt = 0, retryTimer = null;
function connect() {
  const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
  setConn(attempt ? 'stale' : 'connecting', attempt ? 'reconnecting…' : 'connecting…');
  ws = new WebSocket(url);
  ws.onopen = () => { openedAt = Date.now(); };
  ws.onmessage = (ev) => {
    let m;
    try { m = JSON.parse(ev.data); } catch { return; }
    state.lastMessage = Date.now();
    if (typeof m.ts_ms === 'number') state.clockOffset = m.ts_ms - Date.now();
    if (!$('conn').className.includes('live')) setConn('live', 'live');
    const h = HANDLERS[m.type];
    if (h) h(m.data);
    window.shopwatchLastSeq = m.seq;
  };
  ws.onclose = () => {
    ws = null;
    // A connection that stayed up 5 s resets the backoff.
    if (openedAt && Date.now() - openedAt > 5000) attempt = 0;
    openedAt = 0;
    const delay = Math.min(15000, 1000 * Math.pow(1.5, attempt)) + Math.random() * 1000;
    attempt += 1;
    setConn('stale', 'disconnected');
    $('retry').textContent = `Reconnecting in ${(delay / 1000).toFixed(1)} s…`;
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, delay);
  };
  ws.onerror = () => { /* onclose follows and schedules the retry */ };
}
// Everything showing a time is drawn again when the time zone flips.
function rerender() {
  if (lastKpis) renderKpis(lastKpis);
  if (lastSeries) renderSeries(lastSeries);
  if (lastAlertGroups) renderAlertGroups(lastAlertGroups);
  if (lastAlerts) renderAlerts(lastAlerts);
  renderOrders(state.latestOrders);
  renderErrors(state.latestErrors);
}
$('tz-toggle').addEventListener('click', () => setUtc(!state.utc));
setUtc(state.utc);
setRange(state.range);
$('logout').addEventListener('click', logout);
loadSession();
connect();
