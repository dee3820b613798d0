// shopwatch dashboard: one websocket, JSON messages {type, v, seq, ts, ts_ms, data}.
// Every value from events is written with textContent, never as HTML.
'use strict';

const state = { clockOffset: 0, lastMessage: 0, dataAsOf: null, kpisAsOf: null, latestOrders: [], latestErrors: [] };
const $ = (id) => document.getElementById(id);
// Numbers in the page's locale (`http.locale`; empty: the browser's) and amounts in the
// shop's currency (`http.currency`), both from the `views` message.
let fmtInt, fmtMoney, fmtMoneyShort, fmtPct, fmtCompact;
function setNumbers(n) {
  const locale = (n && n.locale) || undefined;
  const currency = (n && n.currency) || 'USD';
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

// ---- what the page shows: every KPI's declared cards and charts (the `views` message) ----
const FORMATS = {
  count: (v) => fmtInt.format(v),
  money: (v) => (Math.abs(v) >= 1e6 ? fmtMoneyShort.format(v) : fmtMoney.format(v)),
  percent: (v) => fmtPct.format(v),
};
const COMPACT = {
  count: (v) => fmtCompact.format(v),
  money: (v) => fmtMoneyShort.format(v),
  percent: (v) => fmtPct.format(v),
};
const domId = (key) => key.replace('.', '-');
let layout = null;

function renderViews(v) {
  layout = v;
  setNumbers(v.numbers);
  const cards = $('cards');
  cards.replaceChildren(...v.cards.map((c) => {
    const a = el('article', null, 'card' + (c.rows ? ' drillable' : ''));
    a.id = 'kpi-' + c.id;
    if (c.rows) { a.tabIndex = 0; a.setAttribute('role', 'button'); a.setAttribute('aria-label', 'show the rows behind this figure'); }
    const h = el('h2', c.title + ' ');
    const small = el('small');
    small.append('/ ', el('span', '5 min', 'per'), c.note ? ', ' + c.note : '');
    h.appendChild(small);
    a.append(h, el('div', '–', 'value'), el('span', '', 'badge'), el('div', '', 'delta'), el('div', '', 'note'));
    if (c.rows) {
      const open = () => cardRows(c);
      a.addEventListener('click', open);
      a.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); open(); } });
    }
    return a;
  }));
  const charts = $('charts'), panels = $('panels');
  charts.replaceChildren();
  panels.replaceChildren();
  for (const c of v.charts) {
    const caption = () => {
      const f = el('figcaption', c.title + ' ');
      f.append(el('small', c.note), ' ');
      if (c.kind === 'line') f.append(el('small', RANGES[state.range], 'range-label'));
      return f;
    };
    if (c.kind === 'line') {
      const fig = el('figure', null, 'chart');
      const svg = document.createElementNS(SVG, 'svg');
      svg.id = 'chart-' + domId(c.key);
      svg.setAttribute('viewBox', '0 0 600 180');
      svg.setAttribute('role', 'img');
      svg.setAttribute('aria-label', c.title);
      fig.append(caption(), svg, el('p', '', 'legend'));
      charts.appendChild(fig);
      if (c.rows) drillableChart(svg, c);
    } else {
      const sec = el('section', null, 'panel');
      sec.id = 'panel-' + domId(c.key);
      const h = el('h2', c.title + ' ');
      h.append(el('small', c.note, 'window'));
      sec.append(h);
      if (c.kind === 'table') {
        const t = el('table');
        t.id = 'table-' + domId(c.key);
        const tr = document.createElement('tr');
        for (const col of c.columns) tr.appendChild(el('th', col.replace(/_/g, ' ')));
        t.append(document.createElement('thead'), document.createElement('tbody'));
        t.tHead.appendChild(tr);
        sec.append(t, el('p', 'No closed minute yet.', 'empty'));
      } else {
        const f = el('div', null, 'funnel');
        f.id = 'funnel-' + domId(c.key);
        sec.append(f, el('p', 'No closed minute yet.', 'empty'));
      }
      panels.appendChild(sec);
    }
  }
  if (lastKpis) renderKpis(lastKpis);
  if (lastSeries) renderSeries(lastSeries);
}

function renderCard(def, card) {
  const root = $('kpi-' + def.id);
  if (!root || !card) return;
  // A running value of a window still open: marked by a word and a style, not colour alone.
  root.classList.toggle('provisional', Boolean(card.provisional));
  root.dataset.provisional = card.provisional ? 'true' : 'false';
  root.querySelector('.badge').textContent = card.provisional ? 'provisional' : '';
  const fmt = FORMATS[def.format];
  const value = root.querySelector('.value');
  value.textContent = card.value === null ? '–' : fmt(card.value);
  value.dataset.value = card.value === null ? '' : String(card.value);
  const delta = root.querySelector('.delta');
  delta.className = 'delta';
  if (card.delta === null || card.delta === undefined) {
    delta.textContent = card.value === null ? '' : 'no previous period';
    delta.classList.add('flat');
  } else if (card.delta === 0) {
    delta.textContent = `= previous ${perText()}`;
    delta.classList.add('flat');
  } else {
    const up = card.delta > 0;
    const good = up !== Boolean(card.inverse);
    delta.textContent = (up ? '▲ +' : '▼ −') + fmt(Math.abs(card.delta)) + ` vs previous ${perText()}`;
    delta.classList.add((up ? 'up-' : 'down-') + (good ? 'good' : 'bad'));
  }
  delta.dataset.delta = card.delta === null || card.delta === undefined ? '' : String(card.delta);
  root.querySelector('.note').textContent =
    card.previous === null || card.previous === undefined ? '' : 'previous: ' + fmt(card.previous);
}

let lastKpis = null;
function perText() {
  const s = lastKpis ? lastKpis.period_s : 300;
  return s >= 3600 ? `${s / 3600} h` : `${s / 60} min`;
}
function renderKpis(k) {
  lastKpis = k;
  if (layout) for (const c of layout.cards) renderCard(c, (k.cards || {})[c.id]);
  state.kpisAsOf = k.as_of_ms;
  const open = k.as_of_ms && k.exact_as_of_ms !== k.as_of_ms;
  for (const e of document.querySelectorAll('.per')) e.textContent = perText();
  $('period').textContent = !k.as_of_ms ? 'No windows yet.'
    : `Each figure covers the whole minutes of the ${perText()} ending ${utcTime(k.as_of_ms)} ${tzName()}, against the ${perText()} before; each event is counted once. ` +
      (open ? `Minutes after ${utcTime(k.exact_as_of_ms)} are still open: their values are provisional (running, straight from the pipeline) and turn exact when the lake has them.`
        : 'All of them are closed windows read back from the lake.');
}

// ---- charts (inline SVG; no library) ----
const SVG = 'http://www.w3.org/2000/svg';
function svgEl(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

// `domain` [from, to] fixes the time axis (a 6 h or 24 h view spans its range, however little
// data there is); without it the axis spans the points.
function drawChart(svg, points, series, format, openFrom, domain) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  // Draw in the element's own pixels, so text is never stretched.
  const W = Math.max(280, Math.round(svg.getBoundingClientRect().width) || 600), H = 180, L = 52, R = 10, T = 10, B = 22;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  if (!points.length) {
    svg.appendChild(svgEl('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'axis' }, 'no data yet'));
    return;
  }
  // Points from `openFrom` on are still open (provisional): drawn dashed, after the solid part.
  const firstOpen = openFrom === null || openFrom === undefined ? -1 : points.findIndex((p) => p[0] >= openFrom);
  const cut = firstOpen < 0 ? points.length : firstOpen;
  const xs = points.map((p) => p[0]);
  const x0 = domain ? Math.min(domain[0], ...xs) : Math.min(...xs);
  const x1 = domain ? Math.max(domain[1], ...xs) : Math.max(x0 + 60000, Math.max(...xs));
  let ymax = 0;
  for (const s of series) for (const p of points) ymax = Math.max(ymax, Number(p[s.index]) || 0);
  ymax = ymax > 0 ? ymax * 1.1 : 1;
  const px = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  // Where each point sits in the element's pixels, for the rows behind a point.
  svg.shopwatchPoints = points.map((p) => ({ t: p[0], x: px(p[0]) * (svg.getBoundingClientRect().width || W) / W }));
  const py = (y) => T + (1 - y / ymax) * (H - T - B);
  for (const f of [0, 0.5, 1]) {
    const y = py(ymax * f);
    svg.appendChild(svgEl('line', { x1: L, x2: W - R, y1: y, y2: y, class: 'grid' }));
    svg.appendChild(svgEl('text', { x: L - 4, y: y + 4, 'text-anchor': 'end', class: 'axis' }, format(ymax * f)));
  }
  // A day-long axis names the day too: "05:54" alone could be either end.
  const day = (ms) => new Date(ms).toLocaleDateString((layout && layout.numbers && layout.numbers.locale) || undefined, { weekday: 'short', timeZone: state.utc ? 'UTC' : undefined });
  const tick = (ms) => (x1 - x0 > 12 * 3600e3 ? day(ms) + ' ' : '') + utcTime(ms).slice(0, 5);
  svg.appendChild(svgEl('text', { x: L, y: H - 6, class: 'axis' }, tick(x0)));
  svg.appendChild(svgEl('text', { x: W - R, y: H - 6, 'text-anchor': 'end', class: 'axis' }, tick(x1) + (cut < points.length ? ' (dashed: open)' : '')));
  series.forEach((s, i) => {
    const y = (p) => (p[s.index] === null ? null : Number(p[s.index]) || 0);
    const path = (pts) => pts.filter((p) => y(p) !== null).map((p, j) => `${j ? 'L' : 'M'}${px(p[0]).toFixed(1)},${py(y(p)).toFixed(1)}`).join(' ');
    const solid = points.slice(0, cut), open = points.slice(Math.max(0, cut - 1));
    if (solid.length) svg.appendChild(svgEl('path', { d: path(solid), class: `line s${s.cls ?? i}` }));
    if (cut < points.length) svg.appendChild(svgEl('path', { d: path(open), class: `line open s${s.cls ?? i}` }));
    if (points.length < 3) {
      for (const p of points) if (y(p) !== null) svg.appendChild(svgEl('circle', { cx: px(p[0]), cy: py(y(p)), r: 3, class: `dot s${s.cls ?? i}` }));
    }
  });
}

let lastSeries = null;
window.addEventListener('resize', () => { if (lastSeries) renderSeries(lastSeries); });
function renderSeries(s) {
  lastSeries = s;
  if (!layout) return;
  const open = s.provisional_from;
  const span = { '6h': 6 * 3600e3, '24h': 24 * 3600e3 }[state.range];
  const domain = span ? [serverNow() - span, serverNow() - state.bucketMs] : null;
  for (const c of layout.charts) {
    const data = (s.charts || {})[c.key];
    if (c.kind === 'line') {
      const svg = $('chart-' + domId(c.key));
      if (!svg) continue;
      // Split by a column (devices): one line each; otherwise one per declared series.
      const points = c.split ? (data && data.points) || [] : data || [];
      const labels = c.split ? (data && data.values) || [] : c.series;
      const series = labels.map((_, i) => ({ index: i + 1, cls: i }));
      drawChart(svg, points, series, COMPACT[c.format], c.split ? null : open, domain);
      const legend = svg.parentElement.querySelector('.legend');
      legend.replaceChildren(...(labels.length > 1 ? labels.map((name, i) => el('span', '— ' + name, 'key s' + i)) : []));
    } else if (c.kind === 'funnel') {
      renderFunnel(c, data || {});
    } else {
      renderTable(c, data || {});
    }
  }
}

// A funnel: one bar per step, its users and its rate to the step before; a step opens its rows.
function renderFunnel(c, d) {
  const box = $('funnel-' + domId(c.key));
  if (!box) return;
  const steps = d.steps || [];
  const has = steps.some((s) => s.value !== null);
  box.parentElement.querySelector('.empty').hidden = has;
  const top = Math.max(1, ...steps.map((s) => s.value || 0));
  box.replaceChildren(...(has ? steps : []).map((s, i) => {
    const row = el('div', null, 'step drillable');
    row.tabIndex = 0;
    row.dataset.step = s.label;
    row.dataset.value = String(s.value);
    const bar = el('span', null, 'bar');
    bar.style.width = `${Math.round(((s.value || 0) / top) * 100)}%`;
    const prev = i ? steps[i - 1].value : null;
    const rate = i && prev ? ` · ${fmtPct.format(s.value / prev)} of ${steps[i - 1].label}` : '';
    row.append(el('span', s.label, 'label'), bar, el('span', FORMATS[c.format](s.value || 0) + rate, 'num'));
    const open = () => {
      const p = i < steps.length - 1 ? { what: 'clicks', step: i } : { what: 'orders' };
      showRows(`${s.label}: ${i < steps.length - 1 ? 'clicks' : 'orders'} of the minute ${utcTime(d.window_start).slice(0, 5)}`,
        { ...p, from: d.window_start, to: d.window_end });
    };
    row.addEventListener('click', open);
    row.addEventListener('keydown', (e) => { if (e.key === 'Enter') open(); });
    return row;
  }));
  box.parentElement.querySelector('small.window').textContent = (d.window_end ? `minute ending ${utcTime(d.window_end).slice(0, 5)} ${tzName()}` + (d.provisional ? ' (provisional)' : '') + ' — ' : '') + c.note;
}

// A table of the newest window's rows; a row with a product opens that product's orders.
function renderTable(c, d) {
  const t = $('table-' + domId(c.key));
  if (!t) return;
  const rows = d.rows || [];
  t.parentElement.querySelector('.empty').hidden = rows.length > 0;
  t.parentElement.querySelector('small.window').textContent = (d.window_end ? `minute ending ${utcTime(d.window_end).slice(0, 5)} ${tzName()} — ` : '') + c.note;
  const num = (col) => /(count|quantity|products|rank)$/.test(col);
  fillTable(t.id, rows, (r) => r.map((v, i) => {
    const col = c.columns[i];
    if (v === null) return [col === 'product_id' ? `other (${fmtInt.format(r[c.columns.indexOf('products')] || 0)} products)` : '–'];
    if (typeof v === 'number') return [num(col) ? fmtInt.format(v) : FORMATS[c.format](v), 'num'];
    return [v, 'wrap'];
  }));
  const pid = c.columns.indexOf('product_id');
  [...t.querySelectorAll('tbody tr')].forEach((tr, i) => {
    const product = pid >= 0 ? rows[i][pid] : null;
    if (!c.rows || product === null || !d.window_start) return;
    tr.classList.add('drillable');
    tr.tabIndex = 0;
    const open = () => showRows(`Orders of ${product}, minute ${utcTime(d.window_start).slice(0, 5)}`,
      { what: 'orders', from: d.window_start, to: d.window_end, product });
    tr.addEventListener('click', open);
    tr.addEventListener('keydown', (e) => { if (e.key === 'Enter') open(); });
  });
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
function drillableChart(svg, c) {
  svg.classList.add('drillable');
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

// This instance among several: derived-tables ownership, its partitions, the group's members.
function instanceText(inst) {
  const e = inst.election || {};
  const role = e.derived_owner ? 'computes the KPI and alert tables'
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
