// The SMS page: compose, the modem pool, the SMS list with filters, the do-not-send list.
import { api, query } from '../api.js';
import { ctx } from '../ctx.js';
import { h, replace } from '../dom.js';
import { dateTime } from '../format.js';
import { t } from '../i18n.js';
import { composeBox, detailBox, onSms, SMS_HEAD, smsRow } from '../sms.js';
import { errorText, toast } from '../widgets.js';
import { section, table } from './shared.js';

const POOL_HEAD = ['sms.modem', 'sms.modem_state', 'sms.signal', 'sms.operator', 'sms.balance', 'sms.queue',
  'sms.sent_today', 'sms.last_error'];

function poolRow(m) {
  return h('tr', { class: `modem-row ${m.ready ? 'ready' : 'down'}`, dataset: { modem: m.name } },
    h('td', {}, m.name, m.model ? h('div', { class: 'muted' }, m.model) : null),
    h('td', {}, m.ready ? t('sms.modem_ready') : t('sms.modem_down'),
      m.detail ? h('div', { class: 'muted' }, m.detail) : null,
      m.in_window ? null : h('div', { class: 'muted' }, t('sms.outside_window'))),
    h('td', {}, m.signal_dbm === null || m.signal_dbm === undefined ? '—' : `${m.signal_dbm} dBm`),
    h('td', {}, m.operator || '—', m.roaming ? h('div', { class: 'muted' }, t('sms.roaming')) : null),
    h('td', { class: 'pre' }, m.balance || '—'),
    h('td', {}, String(m.queue)),
    h('td', {}, `${m.sent_today} / ${m.per_day}`),
    h('td', {}, m.last_error || ''));
}

export async function render(main) {
  const poolBox = h('div', { class: 'table-wrap', dataset: { role: 'sms-pool' } });
  const listBox = h('div', { class: 'table-wrap', dataset: { role: 'sms-list' } });
  const detail = detailBox();
  const direction = h('select', { name: 'direction', 'aria-label': t('sms.direction') },
    h('option', { value: '' }, t('sms.any_direction')),
    h('option', { value: 'in' }, t('sms.dir.in')), h('option', { value: 'out' }, t('sms.dir.out')));
  const state = h('select', { name: 'state', 'aria-label': t('sms.status') },
    h('option', { value: '' }, t('sms.any_state')),
    ['queued', 'sending', 'sent', 'delivered', 'failed', 'expired', 'unknown', 'received', 'incomplete']
      .map((s) => h('option', { value: s }, t(`sms.state.${s}`))));
  const number = h('input', { type: 'search', name: 'number', placeholder: t('sms.number'), 'aria-label': t('sms.number') });

  async function loadPool() {
    try {
      const pool = await api('GET', '/api/sms/pool');
      replace(poolBox, table(POOL_HEAD, pool.modems.map(poolRow), 'sms.no_modems'),
        h('p', { class: 'muted' }, t('sms.waiting', { n: pool.waiting })));
    } catch (err) {
      replace(poolBox, h('p', { class: 'error' }, errorText(err)));
    }
  }
  async function loadList() {
    try {
      const rows = await api('GET', `/api/sms${query({ direction: direction.value, state: state.value,
        number: number.value.trim(), limit: 200 })}`);
      replace(listBox, table(SMS_HEAD, rows.map((r) => smsRow(r, { onOpen: detail.open })), 'sms.none'));
    } catch (err) {
      replace(listBox, h('p', { class: 'error' }, errorText(err)));
    }
  }
  const filters = h('form', { class: 'filters', onsubmit: (ev) => { ev.preventDefault(); loadList(); } },
    direction, state, number, h('button', { type: 'submit' }, t('calls.apply')));

  const sections = [
    h('h1', {}, t('sms.title')),
    h('div', { class: 'columns' },
      section('sms.compose', composeBox({ onSent: () => loadList() })),
      section('sms.detail', detail.box)),
    section('sms.pool', poolBox),
    section('sms.list', filters, listBox),
  ];
  let loadOptOut = null;
  if (ctx.me.role === 'admin') {
    const optBox = h('div', { dataset: { role: 'sms-optout' } });
    const optNumber = h('input', { name: 'number', required: true, placeholder: t('sms.number'), 'aria-label': t('sms.number') });
    loadOptOut = async () => {
      try {
        const rows = await api('GET', '/api/sms/optout');
        replace(optBox, table(['sms.number', 'sms.when', 'sms.optout_source', ''], rows.map((r) => h('tr', {},
          h('td', {}, r.raw), h('td', {}, dateTime(r.at)),
          h('td', {}, r.keyword ? `${r.source} («${r.keyword}»)` : r.source),
          h('td', {}, h('button', { type: 'button', class: 'btn-small', onclick: async () => {
            try {
              await api('POST', '/api/sms/optout', { number: r.number, opted_out: false });
              loadOptOut();
            } catch (err) {
              toast(errorText(err), 'error');
            }
          } }, t('sms.optout_remove'))))), 'sms.optout_none'));
      } catch (err) {
        replace(optBox, h('p', { class: 'error' }, errorText(err)));
      }
    };
    const optForm = h('form', { class: 'filters', onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        await api('POST', '/api/sms/optout', { number: optNumber.value, opted_out: true });
        optNumber.value = '';
        loadOptOut();
      } catch (err) {
        toast(errorText(err), 'error');
      }
    } }, optNumber, h('button', { type: 'submit' }, t('sms.optout_add')));
    sections.push(section('sms.optout', optForm, optBox));
  }
  replace(main, ...sections);

  let timer = null;
  const unsubscribe = onSms(() => {
    if (!main.isConnected) {
      unsubscribe();
      clearInterval(poll);
      return;
    }
    clearTimeout(timer);
    timer = setTimeout(() => { loadList(); loadPool(); }, 300);
  });
  const poll = setInterval(() => {
    if (!main.isConnected) {
      clearInterval(poll);
      unsubscribe();
    } else loadPool();
  }, 15000);
  await Promise.all([loadPool(), loadList(), loadOptOut && loadOptOut()]);
}
