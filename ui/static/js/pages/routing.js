// Routing (admin): secretary groups and their DIDs, queues and lines; the default region;
// office hours and holidays; extensions imported from the PBX's endpoint list.
import { api } from '../api.js';
import { ctx, loadUsers } from '../ctx.js';
import { h, replace } from '../dom.js';
import { t } from '../i18n.js';
import { errorText, toast } from '../widgets.js';
import { section, table } from './shared.js';

const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

function list(text) {
  return text.split(',').map((s) => s.trim()).filter(Boolean);
}

async function act(button, work, done) {
  button.disabled = true;
  try {
    const result = await work();
    if (done) await done(result);
  } catch (err) {
    toast(errorText(err), 'error');
  } finally {
    button.disabled = false;
  }
}

function groupForm(group, reload) {
  const name = h('input', { name: 'name', value: group ? group.name : '', required: true });
  const members = ctx.users.filter((u) => u.role === 'secretary').map((u) => h('label',
    { class: 'check' }, h('input', { type: 'checkbox', name: 'member', value: u.id,
      checked: Boolean(group && group.members.includes(u.id)) }), u.name));
  const field = (key) => h('input', { name: key, size: 30,
    value: group ? group[key].join(', ') : '', placeholder: t(`routing.${key}_hint`) });
  const dids = field('dids');
  const queues = field('queues');
  const lines = field('lines');
  const save = h('button', { type: 'submit', class: 'btn-small' },
    group ? t('routing.save') : t('routing.add_group'));
  const form = h('form', { class: 'filters group-form', dataset: { group: group ? group.id : 'new' },
    onsubmit: (ev) => {
      ev.preventDefault();
      const body = { name: name.value, dids: list(dids.value), queues: list(queues.value),
        lines: list(lines.value),
        members: [...form.querySelectorAll('input[name=member]:checked')].map((i) => Number(i.value)) };
      act(save, () => (group ? api('PATCH', `/api/routing/groups/${Number(group.id)}`, body)
        : api('POST', '/api/routing/groups', body)), async (saved) => {
        await reload();
        toast(t('routing.group_saved', { name: saved.name }));
      });
    } },
  h('label', {}, t('routing.group'), name), h('label', {}, t('routing.dids'), dids),
  h('label', {}, t('routing.queues'), queues), h('label', {}, t('routing.lines'), lines),
  h('fieldset', { class: 'members' }, h('legend', {}, t('routing.members')), members), save,
  group ? h('button', { type: 'button', class: 'btn-small', dataset: { action: 'delete' },
    onclick: (ev) => act(ev.currentTarget, () => api('DELETE',
      `/api/routing/groups/${Number(group.id)}`), reload) }, t('routing.delete')) : null);
  return form;
}

function hoursText(hours, day) {
  const intervals = (hours && hours.week[day]) || [];
  return intervals.map(([a, b]) => `${a}-${b}`).join(', ');
}

function settingsForm(settings, reload) {
  const region = h('input', { name: 'default_region', value: settings.default_region, size: 3,
    maxlength: 2 });
  const hours = settings.hours;
  const tz = h('input', { name: 'timezone', value: hours ? hours.timezone : '',
    placeholder: 'Europe/Moscow' });
  const days = Object.fromEntries(DAYS.map((d) => [d, h('input', { name: d, size: 22,
    value: hoursText(hours, d), placeholder: '09:00-18:00' })]));
  const holidays = h('input', { name: 'holidays', size: 40,
    value: hours ? hours.holidays.join(', ') : '', placeholder: '2026-12-31, 2027-01-01' });
  const save = h('button', { type: 'submit' }, t('routing.save'));
  return h('form', { class: 'filters', dataset: { role: 'routing-settings' }, onsubmit: (ev) => {
    ev.preventDefault();
    const week = {};
    for (const d of DAYS) {
      const intervals = list(days[d].value).map((iv) => iv.split('-').map((s) => s.trim()));
      if (intervals.length) week[d] = intervals;
    }
    const body = { hours: tz.value.trim()
      ? { timezone: tz.value.trim(), week, holidays: list(holidays.value) } : null };
    // Sent only when changed: saving the hours must not pin the file's region in the database.
    if (region.value.trim().toUpperCase() !== settings.default_region) {
      body.default_region = region.value.trim() || null;
    }
    act(save, () => api('PATCH', '/api/routing/settings', body), async () => {
      await reload();
      toast(t('routing.settings_saved'));
    });
  } },
  h('label', {}, `${t('routing.region')} (${t(`routing.source_${settings.default_region_source}`)})`, region),
  h('label', {}, t('routing.timezone'), tz),
  DAYS.map((d) => h('label', {}, t(`day.${d}`), days[d])),
  h('label', {}, t('routing.holidays'), holidays), save);
}

function extensions() {
  const box = h('div', { dataset: { role: 'endpoints' } });
  const load = h('button', { type: 'button', dataset: { action: 'import' }, onclick: async () => {
    let found;
    try {
      found = await api('GET', '/api/routing/endpoints');
    } catch (err) {
      toast(errorText(err), 'error');
      return;
    }
    const rows = found.filter((e) => e.name).map((e) => {
      const pick = h('select', { name: 'user', dataset: { extension: e.name } },
        h('option', { value: '' }, t('routing.nobody')),
        ctx.users.map((u) => h('option', { value: u.id, selected: u.id === e.user_id }, u.name)));
      return h('tr', {}, h('td', {}, e.line), h('td', {}, e.name), h('td', {}, e.state), h('td', {}, pick));
    });
    const errors = found.filter((e) => e.error).map((e) => h('p', { class: 'error' }, `${e.line}: ${e.error}`));
    const apply = h('button', { type: 'button', dataset: { action: 'apply' }, onclick: () => act(apply,
      () => api('POST', '/api/routing/extensions', { extensions: [...box.querySelectorAll('select[name=user]')]
        .map((s) => ({ extension: s.dataset.extension, user_id: s.value ? Number(s.value) : null })) }),
      async (changed) => {
        await loadUsers();
        toast(t('routing.extensions_saved', { n: changed.length }));
      }) }, t('routing.apply'));
    replace(box, errors, table(['routing.line', 'routing.endpoint', 'routing.state', 'routing.user'], rows,
      'routing.no_endpoints'), rows.length ? apply : null);
  } }, t('routing.import'));
  return [h('p', { class: 'muted' }, t('routing.import_help')), load, box];
}

export async function render(main) {
  const groups = h('div', { dataset: { role: 'groups' } });
  const settings = h('div');
  async function reload() {
    try {
      const data = await api('GET', '/api/routing');
      replace(groups, data.groups.map((g) => groupForm(g, reload)), h('h3', {}, t('routing.new_group')),
        groupForm(null, reload));
      replace(settings, settingsForm(data.settings, reload));
    } catch (err) {
      replace(groups, h('p', { class: 'error' }, errorText(err)));
    }
  }
  replace(main, h('h1', {}, t('nav.routing')),
    section('routing.groups', h('p', { class: 'muted' }, t('routing.groups_help')), groups),
    section('routing.settings', settings), section('routing.extensions', extensions()));
  await reload();
}
