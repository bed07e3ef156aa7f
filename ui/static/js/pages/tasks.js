// Tasks: callbacks from missed calls and reminders; due times; done / undo.
import { api, query } from '../api.js';
import { h, replace } from '../dom.js';
import { t } from '../i18n.js';
import { errorText } from '../widgets.js';
import { section, table, TASK_HEAD, taskRow } from './shared.js';

export async function render(main) {
  const show = h('select', { name: 'show', 'aria-label': t('tasks.show') },
    h('option', { value: 'open' }, t('tasks.show_open')),
    h('option', { value: 'done' }, t('tasks.show_done')),
    h('option', { value: 'all' }, t('tasks.show_all')));
  const mine = h('input', { type: 'checkbox', name: 'mine', checked: true });
  const box = h('div', { dataset: { role: 'tasks' } });
  async function load() {
    const done = show.value === 'open' ? 'false' : show.value === 'done' ? 'true' : '';
    try {
      const tasks = await api('GET', `/api/tasks${query({ done, mine: mine.checked ? 'true' : '', limit: 500 })}`);
      tasks.sort((a, b) => (a.due_at || '9').localeCompare(b.due_at || '9'));
      replace(box, table(TASK_HEAD, tasks.map((task) => taskRow(task, load)), 'tasks.none'));
    } catch (err) {
      replace(box, h('p', { class: 'error' }, errorText(err)));
    }
  }
  show.addEventListener('change', load);
  mine.addEventListener('change', load);
  replace(main, h('h1', {}, t('nav.tasks')),
    section('tasks.list', h('div', { class: 'filters' },
      h('label', {}, t('tasks.show'), show),
      h('label', { class: 'check' }, mine, t('tasks.mine'))), box));
  await load();
}
