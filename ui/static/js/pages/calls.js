// Calls: the live calls and the call log with filters (date, user, client, missed only).
import { api, query } from '../api.js';
import { LIVE_STATES } from '../calls.js';
import { ctx } from '../ctx.js';
import { h, replace } from '../dom.js';
import { callerNumber, since } from '../format.js';
import { t } from '../i18n.js';
import { errorText, phoneLink } from '../widgets.js';
import { CALL_HEAD, callRow, isoFromInput, label, section, table } from './shared.js';

const PAGE = 50;

function liveRow(entry) {
  const call = entry.call;
  const match = entry.match || {};
  const outbound = call.direction === 'outbound';
  const answered = call.answered_by;
  return h('tr', { class: `call-row state-${call.state}`, dataset: { callId: call.id } },
    h('td', { class: 'timer', dataset: { since: call.started_at } }, since(call.started_at)),
    h('td', {}, label('direction', call.direction)),
    h('td', {}, outbound ? phoneLink(call.called) : call.caller.withheld ? t('caller.withheld')
      : phoneLink(call.caller.e164 || call.caller.raw, callerNumber(call.caller)),
    !outbound && call.caller.name ? h('div', { class: 'caller-name' }, call.caller.name) : null),
    h('td', {}, match.client ? h('a', { href: `/clients/${Number(match.client.id)}` }, match.client.name) : ''),
    h('td', {}, label('state', call.state)),
    h('td', {}, answered ? (answered.user_name || answered.extension || '') : (call.ringing || []).join(', ')));
}

export async function render(main) {
  const liveBox = h('div', { class: 'table-wrap', dataset: { role: 'live-calls' } });
  function renderLive() {
    const live = ctx.store.all().filter((e) => LIVE_STATES.has(e.call.state));
    replace(liveBox, table(['calls.duration', 'calls.direction', 'calls.number', 'calls.client', 'calls.state',
      'calls.who'], live.map(liveRow), 'calls.no_live'));
  }
  const unsubscribe = ctx.store.subscribe(() => (main.isConnected ? renderLive() : unsubscribe()));
  renderLive();

  const sinceInput = h('input', { type: 'date', name: 'since', 'aria-label': t('calls.since') });
  const untilInput = h('input', { type: 'date', name: 'until', 'aria-label': t('calls.until') });
  const userSelect = h('select', { name: 'user_id', 'aria-label': t('calls.user') },
    h('option', { value: '' }, t('calls.any_user')),
    ctx.users.map((u) => h('option', { value: String(u.id) }, u.name)));
  const clientSearch = h('input', { type: 'search', name: 'client', placeholder: t('calls.client_search'),
    'aria-label': t('calls.client_search'), list: 'client-options', autocomplete: 'off' });
  const clientOptions = h('datalist', { id: 'client-options' });
  const numberInput = h('input', { type: 'search', name: 'number', placeholder: t('calls.number'),
    'aria-label': t('calls.number') });
  const missed = h('input', { type: 'checkbox', name: 'missed' });
  let clientChoices = new Map();
  clientSearch.addEventListener('input', async () => {
    const text = clientSearch.value.trim();
    if (clientChoices.has(text) || text.length < 2) return;
    try {
      const list = await api('GET', `/api/clients${query({ search: text, limit: 20 })}`);
      clientChoices = new Map(list.map((c) => [c.name, c.id]));
      replace(clientOptions, list.map((c) => h('option', { value: c.name })));
    } catch {
      /* the filter still works by number */
    }
  });

  const logBox = h('div', { class: 'table-wrap', dataset: { role: 'call-log' } });
  const more = h('button', { type: 'button', hidden: true, onclick: () => load(false) }, t('calls.more'));
  let offset = 0;
  let rows = [];
  async function load(fresh) {
    if (fresh) {
      offset = 0;
      rows = [];
    }
    const clientText = clientSearch.value.trim();
    let clientId = clientChoices.get(clientText);
    if (clientText && !clientId) {
      // Typed, not picked: one match is meant; none or several must not silently show all.
      const found = await api('GET', `/api/clients${query({ search: clientText, limit: 2 })}`)
        .catch(() => []);
      if (found.length !== 1) {
        replace(logBox, h('p', { class: 'error' },
          t(found.length ? 'calls.client_ambiguous' : 'calls.client_unknown', { text: clientText })));
        more.hidden = true;
        return;
      }
      clientId = found[0].id;
    }
    const params = {
      since: isoFromInput(sinceInput.value), until: isoFromInput(untilInput.value, true),
      user_id: userSelect.value, client_id: clientId || '', number: numberInput.value.trim(),
      state: missed.checked ? 'missed' : '', limit: PAGE, offset,
    };
    try {
      const page = await api('GET', `/api/calls${query(params)}`);
      rows = rows.concat(page);
      offset += page.length;
      more.hidden = page.length < PAGE;
      replace(logBox, table(CALL_HEAD, rows.map((r) => callRow(r)), 'calls.none'));
    } catch (err) {
      replace(logBox, h('p', { class: 'error' }, errorText(err)));
    }
  }
  const filters = h('form', { class: 'filters', onsubmit: (ev) => { ev.preventDefault(); load(true); } },
    h('label', {}, t('calls.since'), sinceInput),
    h('label', {}, t('calls.until'), untilInput),
    h('label', {}, t('calls.user'), userSelect),
    h('label', {}, t('calls.client'), clientSearch, clientOptions),
    h('label', {}, t('calls.number'), numberInput),
    h('label', { class: 'check' }, missed, t('calls.missed_only')),
    h('button', { type: 'submit' }, t('calls.apply')));
  replace(main, h('h1', {}, t('nav.calls')), section('calls.live', liveBox),
    section('calls.log', filters, logBox, more));
  await load(true);
}
