// The screen-pop card: who is calling, whose client, which manager, what happened lately —
// and it follows the call (answered, transferred, ended, missed). Text only, never HTML.
import { api } from './api.js';
import { LIVE_STATES } from './calls.js';
import { ctx, userName } from './ctx.js';
import { append, clear, h, replace } from './dom.js';
import { callerNumber, dateTime, duration, interactionText } from './format.js';
import { has, t } from './i18n.js';
import { errorText, phoneLink, pickTransferTarget, presenceBadge, toast } from './widgets.js';

function label(prefix, value) {
  const key = `${prefix}.${value}`;
  return has(key) ? t(key) : String(value ?? '');
}

function extName(ext) {
  const user = ctx.users.find((u) => u.extension === ext);
  return user ? t('card.ext_named', { name: user.name, ext }) : ext;
}

export function isMine(entry) {
  const call = entry.call;
  return Boolean(ctx.me && call.originated_by === ctx.me.id && call.direction === 'outbound');
}

// Whether this card should pop (ring) for the logged-in user.
export function popsForMe(entry) {
  const call = entry.call;
  if (call.state !== 'ringing') return false;
  if (ctx.me.extension && (call.ringing || []).includes(ctx.me.extension)) return true;
  return ctx.me.role === 'secretary' && call.direction === 'inbound';
}

// A tie that the server filtered down to one client the user may see (a manager's own, when
// the other candidates are other managers'): that client's match, with nothing to choose.
function soleCandidate(match) {
  const candidates = match.candidates || [];
  const total = match.candidates_total ?? candidates.length;
  if (match.kind !== 'tie' || !candidates.length || total !== candidates.length) return null;
  if (!candidates.every((c) => c.client_id === candidates[0].client_id)) return null;
  // Two contacts of the one client: the client is known, the contact is not.
  return candidates.length === 1 ? candidates[0]
    : { ...candidates[0], contact_id: null, contact_name: null };
}

// The tie candidate the user picked, or the matched client/manager.
function chosen(entry) {
  const match = entry.match || {};
  const c = match.kind === 'tie' ? (entry.ui.candidate || soleCandidate(match)) : null;
  if (c) {
    const manager = ctx.usersById.get(c.manager_id);
    return {
      client: { id: c.client_id, name: c.client_name },
      contact: c.contact_id ? { id: c.contact_id, name: c.contact_name } : null,
      manager: manager ? { id: manager.id, name: manager.name, extension: manager.extension } : null,
    };
  }
  return { client: match.client, contact: match.contact, manager: match.manager };
}

export class CallCard {
  constructor(entry) {
    this.entry = entry;
    this.head = h('header', { class: 'card-head' });
    this.who = h('div', { class: 'card-who' });
    this.matchBox = h('section', { class: 'card-match' });
    this.status = h('section', { class: 'card-status', 'aria-live': 'polite' });
    this.actions = h('section', { class: 'card-actions' });
    this.el = h('article', { class: 'card', dataset: { callId: entry.id } },
      this.head, this.who, this.matchBox, this.status, this.actions);
    this.matchKey = null;
    this.update();
  }

  update() {
    const { entry } = this;
    const call = entry.call;
    const live = LIVE_STATES.has(call.state);
    this.el.className = `card state-${call.state} dir-${call.direction}`;
    this.el.classList.toggle('pop', popsForMe(entry));
    this.el.classList.toggle('mine', isMine(entry));
    this.el.dataset.state = call.state;
    this.renderHead(call, live);
    this.renderWho(call);
    const key = JSON.stringify([entry.match, entry.ui.candidate ?? null, entry.ui.created ?? null]);
    if (key !== this.matchKey) {
      this.matchKey = key;
      this.renderMatch();
    }
    this.renderStatus(call);
    this.renderActions(call, live);
  }

  renderHead(call, live) {
    const kind = isMine(this.entry) ? t('card.click_to_call') : label('direction', call.direction);
    let since = null;
    if (call.state === 'ringing') since = call.started_at;
    else if (call.state === 'answered') since = call.answered_at;
    replace(this.head,
      h('span', { class: 'badge badge-dir' }, kind),
      h('span', { class: `badge badge-state state-${call.state}`, dataset: { role: 'state' } },
        label('state', call.state)),
      since ? h('span', { class: 'timer', dataset: { since } }) : h('span', { class: 'timer' },
        call.talk_seconds != null ? duration(call.talk_seconds) : ''),
      live ? null : h('button', {
        type: 'button', class: 'dismiss', 'aria-label': t('card.dismiss'), title: t('card.dismiss'),
        onclick: () => ctx.store.remove(this.entry.id),
      }, '×'));
  }

  renderWho(call) {
    const outbound = call.direction === 'outbound';
    const number = outbound ? call.called : (call.caller.e164 || call.caller.raw);
    const shown = outbound ? call.called : callerNumber(call.caller);
    const withheld = !outbound && call.caller.withheld;
    replace(this.who,
      h('div', { class: 'caller-number', dataset: { role: 'number' } },
        withheld ? h('span', { class: 'withheld' }, t('caller.withheld')) : phoneLink(number, shown)),
      !outbound && call.caller.name
        ? h('div', { class: 'caller-name', dataset: { role: 'caller-name' } }, call.caller.name) : null);
  }

  renderMatch() {
    const { entry } = this;
    const match = entry.match || { kind: 'unknown' };
    const box = clear(this.matchBox);
    box.dataset.kind = match.kind;
    if (match.kind === 'withheld') {
      box.append(h('p', { class: 'note' }, t('match.withheld')));
      return;
    }
    if (match.kind === 'user' && match.user) {
      box.append(h('p', { class: 'internal' },
        t('match.internal', { name: match.user.name, ext: match.user.extension || '' })));
      return;
    }
    const sole = soleCandidate(match);
    if (match.kind === 'tie' && !entry.ui.candidate && !sole) {
      box.append(this.tieChooser(match));
      return;
    }
    if (match.kind === 'unknown' && !entry.ui.created) {
      box.append(this.newClientForm());
      return;
    }
    const pick = entry.ui.created || chosen(entry);
    if (match.kind === 'tie' && !sole) {
      box.append(h('p', { class: 'warning' }, t('match.tie_chosen'),
        ' ', h('button', { type: 'button', class: 'link', onclick: () => {
          entry.ui.candidate = null;
          this.update();
        } }, t('match.tie_change'))));
    }
    box.append(this.clientBlock(pick));
    if (match.kind === 'client') {
      append(box, this.listBlock('card.last_interactions', match.last_interactions || [],
        (i) => [h('span', { class: 'when' }, dateTime(i.at)), ' ',
          h('span', { class: 'kind' }, label('interaction', i.kind)), ' ', interactionText(i)]));
      append(box, this.listBlock('card.open_tasks', match.open_tasks || [],
        (task) => [task.title, task.due_at ? h('span', { class: 'when' }, ` · ${dateTime(task.due_at)}`) : null]));
    }
  }

  clientBlock(pick) {
    const rows = [];
    if (pick.client) {
      rows.push(h('div', { class: 'client-line' },
        h('a', { class: 'client-link', href: `/clients/${Number(pick.client.id)}` }, pick.client.name)));
    }
    if (pick.contact) rows.push(h('div', { class: 'contact-line' }, pick.contact.name));
    const manager = pick.manager;
    if (manager) {
      const busy = manager.busy === true ? 'busy' : manager.busy === false ? 'free' : null;
      rows.push(h('div', { class: 'manager-line', dataset: { role: 'manager' } },
        h('span', { class: 'label' }, t('card.manager')), ' ',
        h('span', { class: 'manager-name' }, manager.name),
        manager.extension ? h('span', { class: 'ext' }, manager.extension) : null,
        busy ? presenceBadge(busy) : null));
    } else if (pick.client) {
      rows.push(h('div', { class: 'manager-line muted' }, t('card.no_manager')));
    }
    return h('div', { class: 'client-block' }, rows);
  }

  listBlock(titleKey, items, render) {
    if (!items.length) return null;
    return h('div', { class: 'list-block' },
      h('h4', {}, t(titleKey)),
      h('ul', {}, items.map((item) => h('li', {}, render(item)))));
  }

  tieChooser(match) {
    const candidates = match.candidates || [];
    // The server lists a bounded number of candidates and counts them all.
    const total = Math.max(match.candidates_total ?? 0, candidates.length);
    const more = total - candidates.length;
    return h('div', { class: 'tie' },
      h('p', { class: 'warning', role: 'alert' }, t('match.tie', { count: total })),
      h('ul', { class: 'candidates' }, candidates.map((c) => h('li', {},
        h('button', { type: 'button', class: 'candidate', dataset: { clientId: c.client_id },
          onclick: () => {
            this.entry.ui.candidate = c;
            this.update();
          } },
        h('span', { class: 'candidate-client' }, c.client_name),
        c.contact_name ? h('span', { class: 'candidate-contact' }, c.contact_name) : null,
        c.manager_id ? h('span', { class: 'candidate-manager' }, userName(c.manager_id)) : null)))),
      more > 0 ? h('p', { class: 'candidates-more note' }, t('match.tie_more', { count: more })) : null);
  }

  newClientForm() {
    const call = this.entry.call;
    const number = call.direction === 'outbound' ? call.called : (call.caller.raw || call.caller.e164 || '');
    const name = h('input', { name: 'name', required: true, placeholder: t('newclient.name'),
      'aria-label': t('newclient.name'), value: '' });
    const contact = h('input', { name: 'contact', placeholder: t('newclient.contact'),
      'aria-label': t('newclient.contact'), value: call.caller.name || '' });
    const phone = h('input', { name: 'phone', placeholder: t('newclient.phone'),
      'aria-label': t('newclient.phone'), value: number });
    const error = h('p', { class: 'error', role: 'alert' });
    const form = h('form', { class: 'new-client', onsubmit: async (ev) => {
      ev.preventDefault();
      error.textContent = '';
      const body = { name: name.value.trim(), kind: 'company',
        contacts: [{ name: contact.value.trim() || name.value.trim(), phones: phone.value.trim() ? [phone.value.trim()] : [] }] };
      if (ctx.me.role === 'manager') body.manager_id = ctx.me.id;
      try {
        const client = await api('POST', '/api/clients', body);
        this.entry.ui.created = { client: { id: client.id, name: client.name },
          contact: client.contacts && client.contacts[0] ? { name: client.contacts[0].name } : null,
          manager: null };
        toast(t('newclient.created', { name: client.name }));
        this.update();
      } catch (err) {
        error.textContent = errorText(err);
      }
    } },
    h('p', { class: 'note' }, t('match.unknown')),
    name, contact, phone,
    h('button', { type: 'submit', class: 'btn-small' }, t('newclient.save')), error);
    return form;
  }

  renderStatus(call) {
    const lines = [];
    if (isMine(this.entry)) lines.push(h('p', { class: 'progress' }, this.originateProgress(call)));
    if (call.state === 'ringing' && (call.ringing || []).length) {
      lines.push(h('p', {}, t('card.ringing_at', { who: call.ringing.map(extName).join(', ') })));
    }
    const answered = call.answered_by;
    if (answered && (answered.extension || answered.user_name) && !isMine(this.entry)) {
      lines.push(h('p', { dataset: { role: 'answered-by' } }, t('card.answered_by', {
        who: answered.user_name ? `${answered.user_name} (${answered.extension || ''})` : answered.extension,
      })));
    }
    for (const tr of call.transfers || []) {
      lines.push(h('p', { class: `transfer result-${tr.result}`, dataset: { role: 'transfer' } },
        t('card.transfer_line', { kind: label('transfer.kind', tr.kind), from: tr.from ? extName(tr.from) : '—',
          to: extName(tr.to), result: label('transfer.result', tr.result) })));
    }
    if (call.state === 'missed') {
      lines.push(h('p', { class: 'missed' }, t('card.missed', { reason: label('reason', call.reason || 'no_answer') })));
    } else if (call.state === 'ended' && call.handled_by_pbx) {
      lines.push(h('p', { dataset: { role: 'pbx-answered' } },
        t('card.pbx_answered', { ivr: duration(call.ivr_seconds) || '0:00' })));
    } else if (call.state === 'ended') {
      lines.push(h('p', {}, t('card.ended', { talk: duration(call.talk_seconds) || '0:00' })));
    } else if (call.state === 'failed') {
      lines.push(h('p', { class: 'missed' }, t('card.failed', { reason: label('reason', call.reason || 'failed') })));
    }
    if (call.voicemail) lines.push(h('p', { class: 'voicemail', dataset: { role: 'voicemail' } }, t('card.voicemail')));
    const pending = this.entry.ui.transfer;
    if (pending) {
      lines.push(h('p', { class: `transfer-request ${pending.state}`, dataset: { role: 'transfer-result' } },
        pending.text));
    }
    replace(this.status, lines);
  }

  originateProgress(call) {
    if (call.state === 'ringing') return t('originate.your_phone', { ext: ctx.me.extension || '' });
    if (call.state === 'answered') return t('originate.connected', { number: call.called });
    if ((call.state === 'failed' || call.state === 'missed') && !call.answered_at) return t('originate.not_picked_up');
    if (call.state === 'failed' || call.state === 'missed') return t('originate.no_answer');
    return t('originate.done');
  }

  renderActions(call, live) {
    clear(this.actions);
    if (!live || isMine(this.entry)) return;
    const { manager } = chosen(this.entry);
    const answered = call.state === 'answered';
    if (manager && manager.extension && manager.extension !== ctx.me.extension) {
      this.actions.append(h('button', { type: 'button', class: 'btn-primary', dataset: { action: 'transfer-manager' },
        onclick: () => this.transfer(manager.extension, 'blind', manager.name) },
      t('transfer.to_manager', { name: manager.name })));
      if (answered) {
        this.actions.append(h('button', { type: 'button', dataset: { action: 'attended-manager' },
          onclick: () => this.transfer(manager.extension, 'attended', manager.name) },
        t('transfer.attended_to', { name: manager.name })));
      }
    }
    this.actions.append(h('button', { type: 'button', dataset: { action: 'transfer-any' }, onclick: async () => {
      const target = await pickTransferTarget({ attended: answered });
      if (target) this.transfer(target.extension, target.kind, target.name);
    } }, t('transfer.to_anyone')));
    if (answered) {
      const recording = this.entry.ui.recording === true;
      this.actions.append(h('button', { type: 'button', dataset: { action: 'record' },
        onclick: () => this.callAction('recording', { on: !recording }, () => { this.entry.ui.recording = !recording; }) },
      t(recording ? 'card.record_stop' : 'card.record_start')));
    }
    this.actions.append(h('button', { type: 'button', class: 'btn-danger', dataset: { action: 'hangup' },
      onclick: () => this.callAction('hangup', {}) }, t('card.hangup')));
  }

  async callAction(path, body, done) {
    const entry = this.entry;
    try {
      await api('POST', `/api/calls/${encodeURIComponent(entry.id)}/${path}`, body);
      if (done) done();
    } catch (err) {
      entry.ui.transfer = { state: 'failed', text: t('card.action_error', { reason: errorText(err) }) };
    }
    if (!entry.removed) this.update();
  }

  async transfer(extension, kind, name) {
    const entry = this.entry;
    entry.ui.transfer = { state: 'pending', text: t('transfer.pending', { name }) };
    this.update();
    try {
      const result = await api('POST', `/api/calls/${encodeURIComponent(entry.id)}/transfer`, { to: extension, kind });
      const outcome = (result && result.result) || 'success';
      entry.ui.transfer = { state: outcome === 'success' || outcome === 'requested' ? 'ok' : 'failed',
        text: t('transfer.outcome', { name, result: label('transfer.result', outcome) }) };
    } catch (err) {
      entry.ui.transfer = { state: 'failed', text: t('transfer.error', { name, reason: errorText(err) }) };
    }
    if (!entry.removed) this.update();
  }
}

// Keeps one card per live call in a container; newest live calls first.
export class Dock {
  constructor(container, { filter } = {}) {
    this.container = container;
    this.filter = filter || (() => true);
    this.cards = new Map();
    this.empty = h('p', { class: 'muted dock-empty' }, t('dock.empty'));
    ctx.store.subscribe((entry, type) => this.changed(entry, type));
    for (const entry of ctx.store.all()) this.changed(entry, 'init');
    this.layout();
  }

  changed(entry, type) {
    let card = this.cards.get(entry.id);
    if (type === 'removed' || !this.filter(entry)) {
      if (card) {
        card.el.remove();
        this.cards.delete(entry.id);
      }
    } else if (card) {
      card.entry = entry;
      card.update();
    } else {
      card = new CallCard(entry);
      this.cards.set(entry.id, card);
    }
    this.layout();
  }

  layout() {
    const cards = [...this.cards.values()].sort((a, b) => {
      const la = LIVE_STATES.has(a.entry.call.state) ? 0 : 1;
      const lb = LIVE_STATES.has(b.entry.call.state) ? 0 : 1;
      return la - lb || b.entry.firstSeen - a.entry.firstSeen;
    });
    if (!cards.length) {
      this.container.replaceChildren(this.empty);
      return;
    }
    if (this.empty.isConnected) this.empty.remove();
    cards.forEach((card, index) => {
      if (this.container.children[index] !== card.el) this.container.insertBefore(card.el, this.container.children[index] || null);
    });
  }
}

// Ticks the "ringing for 0:12" / "talking 1:05" timers.
export function startTimers() {
  setInterval(() => {
    for (const el of document.querySelectorAll('.timer[data-since]')) {
      const start = Date.parse(el.dataset.since);
      if (!Number.isNaN(start)) el.textContent = duration((Date.now() - start) / 1000);
    }
  }, 1000);
}
