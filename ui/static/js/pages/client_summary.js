// The client card's summary (calls, last contact, open tasks) from the client_summary report:
// the same figures the report page and its exports show.
import { api, query } from '../api.js';
import { h } from '../dom.js';
import { t } from '../i18n.js';
import { cellText, reportList } from './reports.js';

function yearAgo(end) {
  const d = new Date(`${end}T12:00:00Z`);
  d.setUTCDate(d.getUTCDate() - 364);
  return d.toISOString().slice(0, 10);
}

export function clientSummarySection(client) {
  const box = h('dl', { class: 'client-summary', dataset: { role: 'client-summary' } });
  const panel = h('section', { class: 'panel', hidden: true }, h('h2', {}, t('reports.client.title')), box);
  (async () => {
    const list = await reportList();
    if (!list.reports.some((r) => r.name === 'client_summary')) return;
    const end = new Intl.DateTimeFormat('en-CA', { timeZone: list.timezone, year: 'numeric',
      month: '2-digit', day: '2-digit' }).format(new Date());
    const report = await api('GET', `/api/reports/client_summary${query({ client: client.id,
      from: yearAgo(end), to: end, group_by: 'none' })}`);
    const summary = report.sections && report.sections.summary;
    const row = summary && summary.rows[0];
    if (!row) return;
    const col = (key) => summary.columns.findIndex((c) => c.key === key);
    const shown = (key, emptyKey) => {
      const i = col(key);
      const value = row[i];
      if ((value === null || value === undefined) && emptyKey) return t(emptyKey);
      return cellText(summary.columns[i], value, list.timezone);
    };
    const kind = row[col('last_contact_kind')];
    box.append(
      h('dt', {}, t('reports.client.calls')), h('dd', { dataset: { key: 'calls', value: row[col('calls')] } }, shown('calls')),
      h('dt', {}, t('reports.client.last_contact')), h('dd', { dataset: { key: 'last_contact' } },
        shown('last_contact', 'reports.client.never'), kind ? ` · ${cellText({ kind: 'label' }, kind)}` : ''),
      h('dt', {}, t('reports.client.open_tasks')), h('dd', { dataset: { key: 'open_tasks', value: row[col('open_tasks')] } },
        shown('open_tasks')));
    panel.hidden = false;
  })().catch(() => { panel.hidden = true; });
  return panel;
}
