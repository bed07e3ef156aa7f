// The console's start page: find a client, my open tasks. The live cards sit in the dock.
import { api, query } from '../api.js';
import { ctx, userName } from '../ctx.js';
import { h, replace } from '../dom.js';
import { t } from '../i18n.js';
import { errorText, phoneLink } from '../widgets.js';
import { section, table, TASK_HEAD, taskRow } from './shared.js';

function clientResult(client) {
  const phones = client.contacts.flatMap((c) => c.phones.map((p) => ({ contact: c.name, phone: p })));
  return h('li', { class: 'client-result', dataset: { clientId: client.id } },
    h('a', { href: `/clients/${Number(client.id)}`, class: 'client-link' }, client.name),
    client.manager_id ? h('span', { class: 'muted' }, ` · ${userName(client.manager_id)}`) : null,
    h('div', { class: 'phones' }, phones.map(({ contact, phone }) =>
      h('span', { class: 'phone-item' }, h('span', { class: 'muted' }, contact), ' ',
        phoneLink(phone.e164 || phone.raw, phone.raw)))));
}

export async function render(main) {
  const results = h('ul', { class: 'client-results' });
  const input = h('input', { type: 'search', name: 'search', placeholder: t('home.search'),
    'aria-label': t('home.search'), autocomplete: 'off' });
  let timer = null;
  let counter = 0;
  async function search() {
    const mine = ++counter;
    try {
      const list = await api('GET', `/api/clients${query({ search: input.value.trim(), limit: 20 })}`);
      if (mine !== counter) return;
      replace(results, list.length ? list.map(clientResult) : h('li', { class: 'muted' }, t('home.no_clients')));
    } catch (err) {
      replace(results, h('li', { class: 'error' }, errorText(err)));
    }
  }
  input.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(search, 200);
  });
  const tasksBox = h('div');
  async function loadTasks() {
    try {
      const tasks = await api('GET', '/api/tasks?mine=true&done=false');
      replace(tasksBox, table(TASK_HEAD, tasks.map((task) => taskRow(task, loadTasks)), 'tasks.none'));
    } catch (err) {
      replace(tasksBox, h('p', { class: 'error' }, errorText(err)));
    }
  }
  replace(main,
    h('h1', {}, t('home.title', { name: ctx.me.name })),
    section('home.clients', h('form', { class: 'search', onsubmit: (ev) => { ev.preventDefault(); search(); } }, input), results),
    section('home.my_tasks', tasksBox));
  await Promise.all([search(), loadTasks()]);
}
