// Reports: one page per report with its filters, a chart, and the table under it; CSV, XLSX
// and PNG downloads. Chart, table and files all come from the one GET /api/reports/{name}
// answer (the files from the same route with .csv/.xlsx), so their figures agree.
import { api, query } from '../api.js';
import { loadChartJs, chartConfig } from '../charts.js';
import { ctx } from '../ctx.js';
import { h, replace } from '../dom.js';
import { has, language, t } from '../i18n.js';
import { errorText } from '../widgets.js';
import { duration } from '../format.js';

const FILTERS = ['from', 'to', 'user', 'group', 'line', 'direction', 'group_by'];
let listing = null;

export async function reportList() {
  if (!listing) listing = await api('GET', '/api/reports');
  return listing;
}

// A label key translated; an unknown one (a new fax failure reason) shows its last part.
export function labelText(key) {
  if (has(key)) return t(key);
  const text = String(key ?? '');
  return text.includes('.') ? text.slice(text.lastIndexOf('.') + 1).replace(/_/g, ' ') : text;
}

function number(value) {
  return new Intl.NumberFormat(language()).format(value);
}

// A cell as the table shows it. Strangers' text (client, campaign names) is put in with
// textContent by h(), never parsed.
export function cellText(column, value, zone) {
  if (value === null || value === undefined) return '—';
  switch (column.kind) {
    case 'int': return number(value);
    case 'duration_s': return duration(value);
    case 'percent': return `${new Intl.NumberFormat(language(), { minimumFractionDigits: 1,
      maximumFractionDigits: 1 }).format(value * 100)} %`;
    case 'datetime': return new Intl.DateTimeFormat(language(), { dateStyle: 'short',
      timeStyle: 'short', timeZone: zone || undefined }).format(new Date(value));
    case 'label': return labelText(value);
    default: return String(value);
  }
}

function headText(column) {
  return labelText(column.label);
}

function dataTable(table, zone, role) {
  if (!table.rows.length) return h('p', { class: 'muted', dataset: { role: `${role}-empty` } }, t('reports.empty'));
  const numeric = (c) => ['int', 'duration_s', 'percent'].includes(c.kind);
  const cells = (row, tag) => table.columns.map((c, i) => h(tag, {
    class: numeric(c) ? 'num' : null,
    dataset: { key: c.key, value: row[i] === null ? '' : String(row[i]) },
  }, cellText(c, row[i], zone)));
  return h('div', { class: 'table-scroll' }, h('table', { class: 'grid report-table', dataset: { role } },
    h('thead', {}, h('tr', {}, table.columns.map((c) => h('th', { scope: 'col', class: numeric(c) ? 'num' : null,
      dataset: { key: c.key } }, headText(c))))),
    h('tbody', {}, table.rows.map((row) => h('tr', { class: 'report-row' }, cells(row, 'td')))),
    table.totals ? h('tfoot', {}, h('tr', { class: 'report-total' }, table.columns.map((c, i) => {
      const value = table.totals[i];
      const first = i === 0 && (value === null || value === '');
      return h('td', { class: numeric(c) ? 'num' : null,
        dataset: { key: c.key, value: value === null ? '' : String(value) } },
      first ? t('report.total') : value === null ? '' : cellText(c, value, zone));
    }))) : null));
}

function fromUrl() {
  const params = new URLSearchParams(location.search);
  const out = {};
  for (const key of FILTERS) if (params.get(key)) out[key] = params.get(key);
  return out;
}

function today(zone) {
  // The office's date, as the server counts periods.
  const parts = new Intl.DateTimeFormat('en-CA', { timeZone: zone, year: 'numeric', month: '2-digit',
    day: '2-digit' }).format(new Date());
  return parts;
}

function select(name, options, value) {
  return h('select', { name, 'aria-label': t(`reports.filter.${name}`) },
    options.map(([v, text]) => h('option', { value: v, selected: v === value }, text)));
}

async function groupsForAdmin() {
  if (ctx.me.role !== 'admin') return [];
  try {
    return (await api('GET', '/api/routing')).groups;
  } catch {
    return [];
  }
}

export async function render(main, params) {
  const list = await reportList();
  if (!list.reports.length) {
    replace(main, h('h1', {}, t('reports.title')), h('p', { class: 'muted' }, t('reports.no_access')));
    return;
  }
  const visible = list.reports.filter((r) => r.name !== 'client_summary');
  const current = visible.find((r) => r.name === params.name) || visible[0];
  if (!params.name || params.name !== current.name) {
    history.replaceState(null, '', `/reports/${current.name}${location.search}`);
  }
  const zone = list.timezone;
  const tabs = h('nav', { class: 'tabs report-tabs', 'aria-label': t('reports.choose') },
    visible.map((r) => h('a', { href: `/reports/${r.name}`, class: r.name === current.name ? 'active' : null,
      'aria-current': r.name === current.name ? 'page' : null, dataset: { report: r.name } }, t(r.label))));

  const initial = fromUrl();
  const end = initial.to || today(zone);
  const start = initial.from || `${end.slice(0, 8)}01`;
  const from = h('input', { type: 'date', name: 'from', value: start, required: true });
  const to = h('input', { type: 'date', name: 'to', value: end, required: true });
  const any = ['', t('reports.filter.any')];
  const user = select('user', [any, ...ctx.users.map((u) => [String(u.id), u.name])], initial.user || '');
  const groups = await groupsForAdmin();
  const group = groups.length ? select('group', [any, ...groups.map((g) => [String(g.id), g.name])],
    initial.group || '') : null;
  const line = h('input', { name: 'line', size: 10, value: initial.line || '', 'aria-label': t('reports.filter.line') });
  const direction = select('direction', [any, ...['inbound', 'outbound', 'internal'].map((d) =>
    [d, t(`reports.direction.${d}`)])], initial.direction || '');
  const groupings = current.groupings;
  const groupBy = groupings.length > 1 ? select('group_by', groupings.map((g) => [g, labelText(`report.col.${g}`)]),
    initial.group_by || groupings[0]) : null;

  const csv = h('a', { class: 'button', dataset: { role: 'export-csv' }, download: '' }, t('reports.export.csv'));
  const xlsx = h('a', { class: 'button', dataset: { role: 'export-xlsx' }, download: '' }, t('reports.export.xlsx'));
  const png = h('button', { type: 'button', dataset: { role: 'export-png' }, disabled: true }, t('reports.export.png'));
  const period = h('p', { class: 'muted', dataset: { role: 'period' } });
  const canvas = h('canvas', { role: 'img', dataset: { role: 'chart' } });
  const chartBox = h('div', { class: 'chart-box' }, canvas);
  const tableBox = h('div', { dataset: { role: 'report-table' } });
  const sectionsBox = h('div');
  let chart = null;

  function filters() {
    const p = { from: from.value, to: to.value, user: user.value, line: line.value.trim(),
      direction: direction.value };
    if (group) p.group = group.value;
    if (groupBy) p.group_by = groupBy.value;
    return p;
  }

  png.addEventListener('click', () => {
    if (!chart) return;
    const link = document.createElement('a');
    link.download = `${current.name}_${from.value}_${to.value}.png`;
    // A data: URL of our own canvas, not a link from outside (h() would refuse it).
    link.setAttribute('href', chart.toBase64Image('image/png', 1));
    link.click();
  });

  async function load() {
    const p = filters();
    const q = query(p);
    history.replaceState(null, '', `/reports/${current.name}${q}`);
    // Another report opens on the same period.
    for (const link of tabs.querySelectorAll('a[data-report]')) {
      link.setAttribute('href', `/reports/${link.dataset.report}${query({ from: p.from, to: p.to })}`);
    }
    csv.setAttribute('href', `/api/reports/${current.name}.csv${q}`);
    xlsx.setAttribute('href', `/api/reports/${current.name}.xlsx${q}`);
    main.dataset.state = 'loading';
    let report;
    try {
      report = await api('GET', `/api/reports/${current.name}${q}`);
    } catch (err) {
      replace(tableBox, h('p', { class: 'error', role: 'alert' }, errorText(err)));
      main.dataset.state = 'error';
      return;
    }
    period.textContent = t('reports.period', { from: report.filter.from, to: report.filter.to,
      tz: report.filter.timezone });
    replace(tableBox, dataTable(report, zone, 'report-table'));
    replace(sectionsBox, Object.entries(report.sections || {}).map(([key, table]) =>
      h('section', { class: 'panel', dataset: { section: key } }, h('h2', {}, labelText(`report.section.${key}`)),
        dataTable(table, zone, `section-${key}`))));
    const Chart = await loadChartJs();
    if (chart) chart.destroy();
    const config = chartConfig(report, (c, v) => cellText(c, v, zone), headText);
    canvas.setAttribute('aria-label', t('reports.chart', { name: t(current.label) }));
    chart = new Chart(canvas, config);
    png.disabled = false;
    main.dataset.state = 'ready';
    main.dataset.generated = report.generated_at;
  }

  const form = h('form', { class: 'filters', dataset: { role: 'report-filters' },
    onsubmit: (ev) => { ev.preventDefault(); load(); } },
  h('label', {}, t('reports.filter.from'), from), h('label', {}, t('reports.filter.to'), to),
  h('label', {}, t('reports.filter.user'), user), group ? h('label', {}, t('reports.filter.group'), group) : null,
  h('label', {}, t('reports.filter.line'), line), h('label', {}, t('reports.filter.direction'), direction),
  groupBy ? h('label', {}, t('reports.filter.group_by'), groupBy) : null,
  h('button', { type: 'submit' }, t('reports.filter.apply')));
  for (const el of [from, to, user, group, direction, groupBy].filter(Boolean)) {
    el.addEventListener('change', () => { if (from.value && to.value) load(); });
  }
  replace(main, h('h1', {}, t('reports.title')), tabs,
    h('section', { class: 'panel report', dataset: { report: current.name } },
      h('h2', {}, t(current.label)), form, period,
      h('div', { class: 'report-actions' }, csv, xlsx, png),
      chartBox, tableBox),
    sectionsBox);
  await load();
}
