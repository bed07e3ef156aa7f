// Audit log (admin): who changed what, when, from where, before and after; filters; CSV.
import { api, query } from '../api.js';
import { ctx } from '../ctx.js';
import { h, replace } from '../dom.js';
import { dateTime } from '../format.js';
import { t } from '../i18n.js';
import { errorText } from '../widgets.js';
import { isoFromInput, label, section, table } from './shared.js';

const KINDS = ['user', 'client', 'contact', 'phone', 'task', 'custom_field', 'group', 'setting',
  'line', 'trunk'];
const HEAD = ['audit.when', 'audit.who', 'audit.address', 'audit.action', 'audit.target',
  'audit.changes'];

function shown(value) {
  if (value === null || value === undefined) return '—';
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

function changes(entry) {
  const before = entry.before || {};
  const after = entry.after || {};
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])];
  return h('ul', { class: 'changes' }, keys.map((key) => h('li', {},
    h('span', { class: 'change-key' }, key), ': ',
    entry.before ? h('span', { class: 'before' }, shown(before[key])) : null,
    entry.before && entry.after ? ' → ' : null,
    entry.after ? h('span', { class: 'after' }, shown(after[key])) : null)));
}

function row(entry) {
  return h('tr', { class: 'audit-row', dataset: { action: entry.action, kind: entry.target_kind } },
    h('td', {}, dateTime(entry.at)),
    h('td', {}, entry.actor_label),
    h('td', {}, entry.address || ''),
    h('td', {}, label('audit.action', entry.action)),
    h('td', {}, label('audit.kind', entry.target_kind), entry.target_id ? ` #${entry.target_id}` : ''),
    h('td', {}, changes(entry)));
}

export async function render(main) {
  const who = h('select', { name: 'who', 'aria-label': t('audit.who') },
    h('option', { value: '' }, t('audit.anyone')),
    h('option', { value: 'cli' }, t('audit.cli')),
    ctx.users.map((u) => h('option', { value: `id:${u.id}` }, `${u.name} (${u.login})`)));
  const kind = h('select', { name: 'kind', 'aria-label': t('audit.kind') },
    h('option', { value: '' }, t('audit.any_kind')),
    KINDS.map((k) => h('option', { value: k }, label('audit.kind', k))));
  const target = h('input', { name: 'target', size: 8, 'aria-label': t('audit.target') });
  const since = h('input', { type: 'date', name: 'since' });
  const until = h('input', { type: 'date', name: 'until' });
  const csv = h('a', { class: 'button', dataset: { role: 'csv' }, download: '' }, t('audit.csv'));
  const box = h('div', { dataset: { role: 'audit' } });
  function params() {
    const p = { target_kind: kind.value, target_id: target.value.trim(),
      since: isoFromInput(since.value), until: isoFromInput(until.value, true) };
    if (who.value === 'cli') p.actor = 'cli';
    else if (who.value.startsWith('id:')) p.actor_id = who.value.slice(3);
    return p;
  }
  async function load() {
    const p = params();
    csv.setAttribute('href', `/api/audit.csv${query(p)}`);
    try {
      const entries = await api('GET', `/api/audit${query({ ...p, limit: 500 })}`);
      replace(box, table(HEAD, entries.map(row), 'audit.none'));
    } catch (err) {
      replace(box, h('p', { class: 'error' }, errorText(err)));
    }
  }
  const form = h('form', { class: 'filters', onsubmit: (ev) => { ev.preventDefault(); load(); } },
    h('label', {}, t('audit.who'), who), h('label', {}, t('audit.kind'), kind),
    h('label', {}, t('audit.target'), target), h('label', {}, t('calls.since'), since),
    h('label', {}, t('calls.until'), until),
    h('button', { type: 'submit' }, t('calls.apply')), csv);
  replace(main, h('h1', {}, t('nav.audit')), section('audit.log', form, box));
  await load();
}
