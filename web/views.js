// shopwatch dashboard, part 1 of 3 (views.js, charts.js, app.js; loaded in that order, one
// global scope): the cards each KPI declares, rendered generically from the `views` message.
'use strict';

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
    const a = el('article', null, 'card' + (c.rows ? ' has-rows' : ''));
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
      if (c.rows) chartWithRows(svg, c);
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
