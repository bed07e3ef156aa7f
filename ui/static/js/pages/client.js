// The client card: details, contacts and phones, custom fields, calls with recordings,
// history, notes and tasks.
import { api, ApiError, query } from '../api.js';
import { ctx, userName } from '../ctx.js';
import { h, replace } from '../dom.js';
import { dateTime, interactionText } from '../format.js';
import { t } from '../i18n.js';
import { errorText, phoneLink, toast } from '../widgets.js';
import { faxSection } from './faxsend.js';
import { CALL_HEAD, callRow, isoFromInput, label, section, table, TASK_HEAD, taskRow } from './shared.js';
import { clientSmsSection } from './client_sms.js';
import { clientSummarySection } from './client_summary.js';

function customValue(value) {
  if (value === true) return t('common.yes');
  if (value === false) return t('common.no');
  return String(value ?? '');
}

export async function render(main, { id }) {
  let client;
  try {
    client = await api('GET', `/api/clients/${Number(id)}`);
  } catch (err) {
    const key = err instanceof ApiError && err.status === 403 ? 'client.forbidden'
      : err instanceof ApiError && err.status === 404 ? 'client.not_found' : null;
    replace(main, h('p', { class: 'error', role: 'alert', dataset: { role: 'client-error' } },
      key ? t(key) : errorText(err)));
    return;
  }
  document.title = `${client.name} · ${t('app.title')}`;
  const fields = await api('GET', '/api/custom-fields').catch(() => []);
  const labels = new Map(fields.map((f) => [f.name, f.label]));

  const contacts = table(['client.contact', 'client.position', 'client.email', 'client.phones'],
    client.contacts.map((c) => h('tr', {},
      h('td', {}, c.name), h('td', {}, c.position || ''), h('td', {}, c.email || ''),
      h('td', {}, c.phones.map((p) => h('div', { class: 'phone-item' }, phoneLink(p.e164 || p.raw, p.raw),
        p.kind ? h('span', { class: 'muted' }, ` ${label('phonekind', p.kind)}`) : null))))),
    'client.no_contacts');

  const custom = Object.entries(client.custom || {});
  const details = h('dl', { class: 'details' },
    h('dt', {}, t('client.kind')), h('dd', {}, label('clientkind', client.kind)),
    h('dt', {}, t('client.manager')), h('dd', { dataset: { role: 'manager' } }, client.manager_id ? userName(client.manager_id) : '—'),
    custom.map(([key, value]) => [h('dt', {}, labels.get(key) || key), h('dd', {}, customValue(value))]),
    client.notes ? [h('dt', {}, t('client.notes')), h('dd', { class: 'pre' }, client.notes)] : null);

  const callsBox = h('div', { dataset: { role: 'client-calls' } });
  const historyBox = h('div');
  const tasksBox = h('div');

  async function loadCalls() {
    try {
      const rows = await api('GET', `/api/calls${query({ client_id: client.id, limit: 100 })}`);
      const names = new Map([[client.id, client.name]]);
      replace(callsBox, table(CALL_HEAD, rows.map((r) => callRow(r, names)), 'calls.none'));
    } catch (err) {
      replace(callsBox, h('p', { class: 'error' }, errorText(err)));
    }
  }
  async function loadHistory() {
    try {
      const items = await api('GET', `/api/clients/${client.id}/interactions?limit=100`);
      replace(historyBox, items.length ? h('ul', { class: 'history' }, items.map((i) =>
        h('li', { class: `interaction kind-${i.kind}` },
          h('span', { class: 'when' }, dateTime(i.at)), ' ',
          h('span', { class: 'badge' }, label('interaction', i.kind)), ' ',
          h('span', { class: 'summary pre' }, interactionText(i)),
          i.user_id ? h('span', { class: 'muted' }, ` · ${userName(i.user_id)}`) : null)))
        : h('p', { class: 'muted' }, t('client.no_history')));
    } catch (err) {
      replace(historyBox, h('p', { class: 'error' }, errorText(err)));
    }
  }
  async function loadTasks() {
    try {
      const tasks = await api('GET', `/api/tasks${query({ client_id: client.id, limit: 200 })}`);
      replace(tasksBox, table(TASK_HEAD, tasks.map((task) => taskRow(task, loadTasks)), 'tasks.none'));
    } catch (err) {
      replace(tasksBox, h('p', { class: 'error' }, errorText(err)));
    }
  }

  const noteText = h('textarea', { name: 'note', rows: 3, required: true, 'aria-label': t('client.add_note'),
    placeholder: t('client.note_placeholder') });
  const noteForm = h('form', { class: 'note-form', onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      await api('POST', `/api/clients/${client.id}/notes`, { text: noteText.value });
      noteText.value = '';
      toast(t('client.note_saved'));
      loadHistory();
    } catch (err) {
      toast(errorText(err), 'error');
    }
  } }, noteText, h('button', { type: 'submit' }, t('client.add_note')));

  const taskTitle = h('input', { name: 'title', required: true, placeholder: t('tasks.title'), 'aria-label': t('tasks.title') });
  const taskDue = h('input', { name: 'due', type: 'datetime-local', 'aria-label': t('tasks.due') });
  const taskForm = h('form', { class: 'task-form', onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      await api('POST', '/api/tasks', { title: taskTitle.value, kind: 'reminder', client_id: client.id,
        due_at: isoFromInput(taskDue.value) || null });
      taskTitle.value = '';
      taskDue.value = '';
      loadTasks();
    } catch (err) {
      toast(errorText(err), 'error');
    }
  } }, taskTitle, taskDue, h('button', { type: 'submit' }, t('tasks.add')));

  replace(main,
    h('h1', { dataset: { role: 'client-name' } }, client.name),
    clientSummarySection(client),
    h('div', { class: 'columns' },
      section('client.details', details),
      section('client.contacts', contacts)),
    section('client.calls', callsBox),
    faxSection(client),
    clientSmsSection(client),
    h('div', { class: 'columns' },
      section('client.history', noteForm, historyBox),
      section('client.tasks', taskForm, tasksBox)));
  // Calls of this client that end while the card is open show up in its log.
  const unsubscribe = ctx.store.subscribe((entry, type) => {
    if (!main.isConnected) unsubscribe();
    else if ((type === 'call.ended' || type === 'call.missed') && entry.call && entry.match
      && entry.match.client && entry.match.client.id === client.id) setTimeout(loadCalls, 1500);
  });
  await Promise.all([loadCalls(), loadHistory(), loadTasks()]);
}
