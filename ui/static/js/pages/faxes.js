// The fax inbox (received faxes, with filters and the PDF) and the outgoing faxes.
import { api, query } from '../api.js';
import { h, replace } from '../dom.js';
import { dateTime } from '../format.js';
import { t } from '../i18n.js';
import { errorText } from '../widgets.js';
import { JOB_HEAD, jobRow, onFaxEvent } from './faxsend.js';
import { section, table } from './shared.js';

const INBOX_HEAD = ['fax.when', 'fax.from', 'fax.station', 'fax.client', 'fax.pages', 'fax.status', ''];

function inboxRow(fax) {
  const client = fax.client_id
    ? h('a', { href: `/clients/${Number(fax.client_id)}` }, fax.client_name || String(fax.client_id))
    : h('span', { class: 'muted' }, t('fax.no_client'));
  return h('tr', { dataset: { faxIn: String(fax.id) } },
    h('td', {}, dateTime(fax.received_at)),
    h('td', {}, fax.caller || t('caller.unknown')),
    h('td', { dataset: { role: 'fax-station' } }, fax.remote_station || ''),
    h('td', {}, client),
    h('td', { dataset: { role: 'fax-pages' } }, String(fax.pages)),
    h('td', {}, fax.ok ? t('fax.received_ok') : t('fax.received_bad')),
    h('td', {}, h('a', { href: fax.pdf_url, target: '_blank', rel: 'noopener', dataset: { role: 'fax-pdf' } },
      t('fax.open_pdf'))));
}

export async function render(main) {
  const search = h('input', { name: 'search', placeholder: t('fax.search'), 'aria-label': t('fax.search') });
  const state = h('select', { name: 'state', 'aria-label': t('fax.status') },
    h('option', { value: '' }, t('fax.any')),
    h('option', { value: 'ok' }, t('fax.received_ok')),
    h('option', { value: 'failed' }, t('fax.received_bad')));
  const inboxBox = h('div', { dataset: { role: 'fax-inbox' } });
  const outBox = h('div', { dataset: { role: 'fax-outgoing' } });

  async function loadInbox() {
    try {
      const rows = await api('GET', `/api/fax-inbox${query({ search: search.value.trim(), state: state.value })}`);
      replace(inboxBox, table(INBOX_HEAD, rows.map(inboxRow), 'fax.inbox_empty'));
    } catch (err) {
      replace(inboxBox, h('p', { class: 'error' }, errorText(err)));
    }
  }
  async function loadOutgoing() {
    try {
      const rows = await api('GET', `/api/faxes${query({ limit: 50 })}`);
      replace(outBox, table(JOB_HEAD, rows.map((j) => jobRow(j, loadOutgoing)), 'fax.none_sent'));
    } catch (err) {
      replace(outBox, h('p', { class: 'error' }, errorText(err)));
    }
  }
  const filters = h('form', { class: 'filters', onsubmit: (ev) => {
    ev.preventDefault();
    loadInbox();
  } }, search, state, h('button', { type: 'submit' }, t('calls.apply')));
  replace(main, h('h1', {}, t('fax.inbox')), section('fax.inbox', filters, inboxBox), section('fax.outgoing', outBox));
  onFaxEvent(main, (event) => {
    if (event.type === 'fax.received') loadInbox();
    else loadOutgoing();
  });
  await Promise.all([loadInbox(), loadOutgoing()]);
}
