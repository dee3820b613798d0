// shopwatch dashboard, part 2 of 3: the charts, funnels and tables each KPI declares.
'use strict';

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
    const row = el('div', null, 'step has-rows');
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
    tr.classList.add('has-rows');
    tr.tabIndex = 0;
    const open = () => showRows(`Orders of ${product}, minute ${utcTime(d.window_start).slice(0, 5)}`,
      { what: 'orders', from: d.window_start, to: d.window_end, product });
    tr.addEventListener('click', open);
    tr.addEventListener('keydown', (e) => { if (e.key === 'Enter') open(); });
  });
}
