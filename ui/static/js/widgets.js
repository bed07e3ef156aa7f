// Small shared pieces: toasts, click-to-call phone links, the transfer target picker.
import { api, ApiError } from './api.js';
import { ctx } from './ctx.js';
import { $, clear, h } from './dom.js';
import { t } from './i18n.js';

export function toast(text, kind = 'info') {
  const box = $('#toasts');
  if (!box) return;
  const item = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
  box.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 9000 : 5000);
}

export function errorText(err) {
  return err instanceof ApiError ? err.text() : String(err);
}

// Click-to-call: the user's own phone rings first, then the number. Progress shows up as an
// outbound card through the live events (call.originated_by == me).
export async function originate(number) {
  try {
    await api('POST', '/api/originate', { number });
    toast(t('originate.started', { ext: ctx.me.extension || '' }));
    return true;
  } catch (err) {
    toast(t('originate.failed', { reason: errorText(err) }), 'error');
    return false;
  }
}

export function phoneLink(number, label) {
  const text = label || number;
  if (!number) return h('span', { class: 'muted' }, text || '');
  return h('button', {
    type: 'button',
    class: 'phone',
    title: t('phone.call', { number }),
    dataset: { number },
    onclick: (ev) => {
      ev.preventDefault();
      ev.stopPropagation();
      originate(number);
    },
  }, h('span', { class: 'phone-icon', 'aria-hidden': 'true' }), text);
}

export function presenceBadge(state) {
  const value = state || 'free';
  return h('span', { class: `presence presence-${value}` }, t(`presence.${value}`));
}

// A dialog listing users with extensions (searchable, with presence); resolves to
// {extension, kind} or null.
export function pickTransferTarget({ attended = true } = {}) {
  return new Promise((resolve) => {
    const list = h('ul', { class: 'picker-list' });
    const search = h('input', {
      type: 'search', class: 'picker-search', placeholder: t('picker.search'),
      'aria-label': t('picker.search'),
    });
    let presence = {};
    const dialog = h('dialog', { class: 'picker' },
      h('h2', {}, t('picker.title')), search, list,
      h('div', { class: 'picker-actions' },
        h('button', { type: 'button', onclick: () => finish(null) }, t('common.cancel'))));
    let done = false;
    function finish(value) {
      if (done) return;
      done = true;
      dialog.close();
      dialog.remove();
      resolve(value);
    }
    dialog.addEventListener('close', () => finish(null));
    function render() {
      const needle = search.value.trim().toLowerCase();
      clear(list);
      const users = ctx.users.filter((u) => u.extension && u.active !== false && u.id !== ctx.me.id)
        .filter((u) => !needle || u.name.toLowerCase().includes(needle) || u.extension.includes(needle)
          || u.login.toLowerCase().includes(needle));
      if (!users.length) list.append(h('li', { class: 'muted' }, t('picker.none')));
      for (const user of users) {
        list.append(h('li', { class: 'picker-item', dataset: { extension: user.extension } },
          h('span', { class: 'picker-name' }, user.name),
          h('span', { class: 'ext' }, user.extension),
          presenceBadge(presence[user.extension]),
          h('button', { type: 'button', class: 'btn-small', dataset: { kind: 'blind' },
            onclick: () => finish({ extension: user.extension, kind: 'blind', name: user.name }) },
          t('transfer.blind')),
          attended ? h('button', { type: 'button', class: 'btn-small', dataset: { kind: 'attended' },
            onclick: () => finish({ extension: user.extension, kind: 'attended', name: user.name }) },
          t('transfer.attended')) : null));
      }
    }
    search.addEventListener('input', render);
    document.body.append(dialog);
    render();
    dialog.showModal();
    search.focus();
    api('GET', '/api/presence').then((p) => { presence = p || {}; render(); }).catch(() => {});
  });
}
