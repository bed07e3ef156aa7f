// SMS in the console: live SMS events, the compose box with its part counter, message rows.
// Every SMS text comes from a stranger or a user: it is only ever set as text (dom.js).
import { api } from './api.js';
import { h, replace } from './dom.js';
import { dateTime } from './format.js';
import { has, t } from './i18n.js';
import { errorText, phoneLink, toast } from './widgets.js';

const listeners = new Set();

export function onSms(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

// Called by main.js for every live event: sms.received and sms.status go to the SMS views.
export function smsEvent(event) {
  if (!event || !event.type || !event.type.startsWith('sms.') || !event.data || !event.data.sms) return;
  const sms = event.data.sms;
  if (event.type === 'sms.received') {
    toast(t('sms.toast_received', { who: sms.client_name || sms.display || sms.number }));
  }
  for (const fn of listeners) fn(sms, event.type);
}

function stateLabel(state) {
  const key = `sms.state.${state}`;
  return has(key) ? t(key) : String(state ?? '');
}

export function stateBadge(sms) {
  return h('span', { class: `badge sms-state state-${sms.state}`, dataset: { role: 'sms-state' } },
    stateLabel(sms.state));
}

// "part 2 of 3: delivered" for every part of an outbound message.
export function partList(sms) {
  if (sms.direction !== 'out' || !sms.parts || sms.parts.length < 1) return null;
  return h('ol', { class: 'sms-parts', dataset: { role: 'sms-parts' } }, sms.parts.map((p) =>
    h('li', { class: `state-${p.state}`, dataset: { seq: p.seq } },
      t('sms.part', { seq: p.seq, total: p.total }), ' ', stateLabel(p.state),
      p.error ? h('span', { class: 'muted' }, ` — ${p.error}`) : null)));
}

export const SMS_HEAD = ['sms.when', 'sms.direction', 'sms.number', 'sms.client', 'sms.text', 'sms.status'];

export function smsRow(sms, { showClient = true, onOpen = null } = {}) {
  const text = h('div', { class: 'sms-text pre' }, sms.text);
  return h('tr', { class: `sms-row dir-${sms.direction} state-${sms.state}`, dataset: { smsId: sms.id } },
    h('td', {}, dateTime(sms.created_at)),
    h('td', {}, t(`sms.dir.${sms.direction === 'in' ? 'in' : 'out'}`)),
    h('td', { class: 'phone' }, /\d/.test(sms.number) ? phoneLink(sms.number, sms.display || sms.number) : sms.number),
    showClient ? h('td', {}, sms.client_id
      ? h('a', { href: `/clients/${Number(sms.client_id)}` }, sms.client_name || `#${Number(sms.client_id)}`) : '') : null,
    h('td', {}, text),
    h('td', {}, stateBadge(sms),
      sms.error ? h('div', { class: 'muted', dataset: { role: 'sms-error' } }, sms.error) : null,
      sms.direction === 'out' && sms.parts_total > 1
        ? h('div', { class: 'muted' }, t('sms.parts_n', { n: sms.parts_total })) : null,
      onOpen ? h('button', { type: 'button', class: 'btn-small', dataset: { action: 'sms-detail' },
        onclick: () => onOpen(sms) }, t('sms.details')) : null));
}

// The character and part counter: asks the server (segments.py decides), debounced.
export function counter(textarea) {
  const out = h('span', { class: 'sms-counter muted', dataset: { role: 'sms-counter' }, 'aria-live': 'polite' });
  let timer = null;
  let asked = 0;
  async function update() {
    const mine = ++asked;
    try {
      const c = await api('POST', '/api/sms/count', { text: textarea.value });
      if (mine !== asked) return; // a later keystroke's answer wins
      out.dataset.encoding = c.encoding;
      out.dataset.parts = String(c.parts);
      out.textContent = t('sms.counter', { chars: c.chars, encoding: c.encoding === 'gsm7' ? 'GSM 7-bit' : 'UCS2',
        parts: c.parts, left: c.remaining });
    } catch (err) {
      if (mine === asked) out.textContent = errorText(err);
    }
  }
  textarea.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(update, 150);
  });
  update();
  return out;
}

// A template's placeholders filled from the card: {client.name}, {contact.name},
// {contact.first_name}; unknown ones stay as typed (the user sees and edits them).
export function fillTemplate(text, fields) {
  return String(text).replace(/\{(client\.name|contact\.name|contact\.first_name)\}/g,
    (whole, key) => (fields[key] ? String(fields[key]) : whole));
}

function templatePicker(textarea, fieldsFor) {
  const select = h('select', { name: 'template', 'aria-label': t('sms.template'), dataset: { role: 'sms-template' } },
    h('option', { value: '' }, t('sms.free_text')));
  api('GET', '/api/sms/templates').then((list) => {
    for (const tpl of list) select.append(h('option', { value: String(tpl.id) }, tpl.text.slice(0, 60)));
    select.hidden = !list.length;
    select.addEventListener('change', () => {
      const tpl = list.find((x) => String(x.id) === select.value);
      if (!tpl) return;
      textarea.value = fillTemplate(tpl.text, fieldsFor());
      textarea.dispatchEvent(new Event('input'));
    });
  }).catch(() => { select.hidden = true; });
  return select;
}

// The compose box: a number (or a choice of the client's numbers), a template or free text,
// the counter.
export function composeBox({ numbers = [], clientId = null, onSent = () => {} } = {}) {
  const to = numbers.length
    ? h('select', { name: 'to', 'aria-label': t('sms.to') }, numbers.map((n) => h('option', { value: n.value }, n.label)))
    : h('input', { name: 'to', required: true, placeholder: t('sms.to'), 'aria-label': t('sms.to') });
  const text = h('textarea', { name: 'text', rows: 3, required: true, maxlength: 1600,
    'aria-label': t('sms.text'), placeholder: t('sms.placeholder') });
  const count = counter(text);
  const picker = templatePicker(text, () => {
    const chosen = numbers.find((n) => n.value === to.value) || numbers[0] || {};
    return chosen.fields || {};
  });
  const button = h('button', { type: 'submit' }, t('sms.send'));
  async function send(confirm) {
    const body = { to: to.value, text: text.value, confirm_opted_out: confirm };
    if (clientId) body.client_id = clientId;
    return api('POST', '/api/sms', body);
  }
  const form = h('form', { class: 'sms-compose', dataset: { role: 'sms-compose' }, onsubmit: async (ev) => {
    ev.preventDefault();
    button.disabled = true;
    try {
      let sent;
      try {
        sent = await send(false);
      } catch (err) {
        if (err.error !== 'sms-opted-out' || !window.confirm(t('sms.confirm_opted_out'))) throw err;
        sent = await send(true);
      }
      text.value = '';
      text.dispatchEvent(new Event('input'));
      toast(t('sms.queued'));
      onSent(sent);
    } catch (err) {
      toast(errorText(err), 'error');
    } finally {
      button.disabled = false;
    }
  } }, to, picker, text, h('div', { class: 'sms-compose-bar' }, count, button));
  return form;
}

export function detailBox() {
  const box = h('div', { class: 'sms-detail', dataset: { role: 'sms-detail' } });
  async function open(sms) {
    try {
      const full = await api('GET', `/api/sms/${Number(sms.id)}`);
      replace(box, h('h3', {}, t('sms.message', { id: full.id })),
        h('p', { class: 'pre sms-text' }, full.text), stateBadge(full),
        full.modem ? h('span', { class: 'muted' }, ` · ${full.modem}`) : null,
        full.error ? h('p', { class: 'error' }, full.error) : null, partList(full),
        ['failed', 'expired', 'unknown'].includes(full.state) && full.direction === 'out'
          && !full.resent_as ? h('button', { type: 'button', dataset: { action: 'sms-resend' }, onclick: async (ev) => {
            const button = ev.currentTarget;
            if (button.disabled) return;
            const unknown = full.state === 'unknown';
            if (unknown && !window.confirm(t('sms.confirm_resend_unknown'))) return;
            button.disabled = true; // a double click must not queue it twice
            try {
              const again = await api('POST', `/api/sms/${Number(full.id)}/resend`,
                { confirm_unknown: unknown });
              toast(t('sms.queued'));
              open(again);
            } catch (err) {
              button.disabled = false;
              toast(errorText(err), 'error');
            }
          } }, t('sms.resend')) : null);
    } catch (err) {
      replace(box, h('p', { class: 'error' }, errorText(err)));
    }
  }
  return { box, open };
}
