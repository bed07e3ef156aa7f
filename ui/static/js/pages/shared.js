// Rows shared by several pages: a call log row, a task row.
import { api } from '../api.js';
import { ctx, userName } from '../ctx.js';
import { h } from '../dom.js';
import { callerNumber, dateTime, duration, parseTime } from '../format.js';
import { has, t } from '../i18n.js';
import { errorText, phoneLink, toast } from '../widgets.js';

export function label(prefix, value) {
  const key = `${prefix}.${value}`;
  return has(key) ? t(key) : String(value ?? '');
}

export function section(titleKey, ...children) {
  return h('section', { class: 'panel' }, h('h2', {}, t(titleKey)), ...children);
}

export function table(headKeys, rows, emptyKey) {
  if (!rows.length) return h('p', { class: 'muted' }, t(emptyKey));
  return h('table', { class: 'grid' },
    h('thead', {}, h('tr', {}, headKeys.map((k) => h('th', { scope: 'col' }, k ? t(k) : '')))),
    h('tbody', {}, rows));
}

export function recordingPlayers(recordings) {
  return (recordings || []).map((rec) => {
    if (typeof rec === 'string') return null; // a live call's PBX path: not playable yet
    if (rec.url) {
      return h('audio', { controls: true, preload: 'none', src: rec.url, class: 'player',
        'aria-label': t('calls.recording') });
    }
    return h('span', { class: 'muted' }, label('recording', rec.state));
  });
}

export const CALL_HEAD = ['calls.when', 'calls.direction', 'calls.number', 'calls.client',
  'calls.state', 'calls.answered_by', 'calls.ring', 'calls.talk', 'calls.recording'];

export function callRow(row, clientNames = new Map()) {
  const outbound = row.direction === 'outbound';
  const number = outbound ? row.called : (row.caller && (row.caller.e164 || row.caller.raw));
  const shown = outbound ? row.called : callerNumber(row.caller);
  const withheld = !outbound && row.caller && row.caller.withheld;
  const answered = row.answered_by;
  const clientName = row.client_id
    ? (row.client_name || clientNames.get(row.client_id) || `#${row.client_id}`) : '';
  return h('tr', { class: `call-row state-${row.state}`, dataset: { callId: row.id } },
    h('td', {}, dateTime(row.started_at)),
    h('td', {}, label('direction', row.direction)),
    h('td', {}, withheld ? t('caller.withheld') : phoneLink(number, shown),
      !outbound && row.caller && row.caller.name ? h('div', { class: 'caller-name' }, row.caller.name) : null),
    h('td', {}, row.client_id ? h('a', { href: `/clients/${Number(row.client_id)}` }, clientName) : ''),
    h('td', {}, label('logstate', row.state), row.reason ? h('div', { class: 'muted' }, label('reason', row.reason)) : null,
      row.voicemail ? h('div', { class: 'voicemail', dataset: { role: 'voicemail' } }, t('calls.voicemail')) : null),
    h('td', {}, answered ? (answered.user_name || answered.extension || (answered.outside ? t('calls.outside') : ''))
      : row.handled_by_pbx ? t('calls.pbx') : ''),
    h('td', {}, duration(row.ring_seconds)),
    h('td', {}, duration(row.talk_seconds)),
    h('td', {}, recordingPlayers(row.recordings)));
}

export const TASK_HEAD = ['tasks.due', 'tasks.title', 'tasks.client', 'tasks.phone', 'tasks.assignee', ''];

export function taskRow(task, onChange) {
  const due = parseTime(task.due_at);
  const overdue = !task.done && due && due.getTime() < Date.now();
  const button = h('button', { type: 'button', class: 'btn-small', dataset: { action: task.done ? 'undo' : 'done' },
    onclick: async () => {
      button.disabled = true;
      try {
        const changed = await api('PATCH', `/api/tasks/${Number(task.id)}`, { done: !task.done });
        onChange(changed);
      } catch (err) {
        toast(errorText(err), 'error');
        button.disabled = false;
      }
    } }, task.done ? t('tasks.undo') : t('tasks.done'));
  return h('tr', { class: `task-row${task.done ? ' done' : ''}${overdue ? ' overdue' : ''}`, dataset: { taskId: task.id } },
    h('td', {}, due ? dateTime(task.due_at) : '—'),
    h('td', {}, h('span', { class: 'task-kind' }, label('taskkind', task.kind)), ' ', task.title,
      task.voicemail ? h('div', { class: 'voicemail', dataset: { role: 'voicemail' } }, t('tasks.voicemail')) : null),
    h('td', {}, task.client_id ? h('a', { href: `/clients/${Number(task.client_id)}` }, t('tasks.open_client')) : ''),
    h('td', {}, task.phone ? phoneLink(task.phone) : ''),
    h('td', {}, task.assignee_id ? userName(task.assignee_id)
      : task.assignee_role ? label('role', task.assignee_role) : ''),
    h('td', {}, button));
}

// datetime-local / date input value -> ISO string with the browser's offset.
export function isoFromInput(value, endOfDay = false) {
  if (!value) return '';
  const text = value.length === 10 ? `${value}T${endOfDay ? '23:59:59' : '00:00:00'}` : value;
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? '' : date.toISOString();
}

export function me() {
  return ctx.me;
}
