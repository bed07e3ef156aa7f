// Users (admin): add, change role and extension, disable/enable, reset a password, hand over.
import { api } from '../api.js';
import { ctx, loadUsers } from '../ctx.js';
import { h, replace } from '../dom.js';
import { t } from '../i18n.js';
import { errorText, toast } from '../widgets.js';
import { section, table } from './shared.js';

const ROLES = ['secretary', 'manager', 'supervisor', 'admin'];
const HEAD = ['users.login', 'users.name', 'users.role', 'users.extension', 'users.state', ''];

// A password the admin hands on: made in the browser, so the server never sends one back.
export function randomPassword() {
  const alphabet = 'abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789';
  const bytes = new Uint32Array(14);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join('');
}

function roleSelect(value) {
  return h('select', { name: 'role', 'aria-label': t('users.role') },
    ROLES.map((r) => h('option', { value: r, selected: r === value }, t(`role.${r}`))));
}

function passwordField() {
  const input = h('input', { type: 'text', name: 'password', autocomplete: 'new-password',
    minlength: 8, required: true, 'aria-label': t('users.password') });
  const gen = h('button', { type: 'button', class: 'btn-small', dataset: { action: 'generate' },
    onclick: () => { input.value = randomPassword(); } }, t('users.generate'));
  return { input, field: h('span', { class: 'password-field' }, input, gen) };
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

function userRow(user, reload) {
  const role = roleSelect(user.role);
  const ext = h('input', { name: 'extension', value: user.extension || '', size: 6,
    inputmode: 'numeric', 'aria-label': t('users.extension') });
  const name = h('input', { name: 'name', value: user.name, 'aria-label': t('users.name') });
  const extra = h('div', { class: 'row-extra' });
  const save = h('button', { type: 'button', class: 'btn-small', dataset: { action: 'save' },
    onclick: () => act(save, () => api('PATCH', `/api/users/${Number(user.id)}`,
      { name: name.value, role: role.value, extension: ext.value }), async () => {
      await reload();
      toast(t('users.saved', { login: user.login }));
    }) }, t('users.save'));
  const toggle = h('button', { type: 'button', class: 'btn-small',
    dataset: { action: user.active ? 'disable' : 'enable' },
    onclick: () => act(toggle, () => api('PATCH', `/api/users/${Number(user.id)}`,
      { active: !user.active }), reload) }, user.active ? t('users.disable') : t('users.enable'));
  const reset = h('button', { type: 'button', class: 'btn-small', dataset: { action: 'reset' },
    onclick: () => {
      const { input, field } = passwordField();
      const once = h('input', { type: 'checkbox', name: 'one_time', checked: true });
      const go = h('button', { type: 'submit', class: 'btn-small' }, t('users.set_password'));
      const form = h('form', { class: 'inline-form', dataset: { role: 'reset-form' },
        onsubmit: (ev) => {
          ev.preventDefault();
          act(go, () => api('POST', `/api/users/${Number(user.id)}/password`,
            { password: input.value, one_time: once.checked }), () => {
            toast(t('users.password_reset', { login: user.login }));
            replace(extra);
          });
        } }, t('users.new_password'), ' ', field, ' ',
        h('label', { class: 'check' }, once, t('users.one_time')), ' ', go);
      replace(extra, form);
      input.focus();
    } }, t('users.reset_password'));
  const handover = h('button', { type: 'button', class: 'btn-small', dataset: { action: 'handover' },
    onclick: () => {
      const to = h('select', { name: 'to_user', 'aria-label': t('users.handover_to') },
        ctx.users.filter((u) => u.id !== user.id && u.active)
          .map((u) => h('option', { value: u.id }, `${u.name} (${u.login})`)));
      const go = h('button', { type: 'submit', class: 'btn-small' }, t('users.handover_go'));
      replace(extra, h('form', { class: 'inline-form', dataset: { role: 'handover-form' },
        onsubmit: (ev) => {
          ev.preventDefault();
          act(go, () => api('POST', `/api/users/${Number(user.id)}/handover`,
            { to_user: Number(to.value) }), (done) => {
            toast(t('users.handed_over', { tasks: done.tasks.length, clients: done.clients.length }));
            replace(extra);
          });
        } }, t('users.handover_to'), ' ', to, ' ', go));
    } }, t('users.handover'));
  return h('tr', { class: `user-row${user.active ? '' : ' disabled'}`, dataset: { login: user.login } },
    h('td', {}, user.login),
    h('td', {}, name),
    h('td', {}, role),
    h('td', {}, ext),
    h('td', { dataset: { role: 'state' } }, user.active ? t('users.enabled') : t('users.disabled')),
    h('td', {}, save, ' ', toggle, ' ', reset, ' ', handover, extra));
}

function addForm(reload) {
  const login = h('input', { name: 'login', required: true, maxlength: 64 });
  const name = h('input', { name: 'name', required: true });
  const role = roleSelect('secretary');
  const ext = h('input', { name: 'extension', size: 6, inputmode: 'numeric' });
  const { input: password, field } = passwordField();
  const go = h('button', { type: 'submit' }, t('users.add'));
  const form = h('form', { class: 'filters', dataset: { role: 'add-user' },
    onsubmit: (ev) => {
      ev.preventDefault();
      act(go, () => api('POST', '/api/users', { login: login.value.trim(), name: name.value,
        role: role.value, extension: ext.value, password: password.value }), async (user) => {
        form.reset();
        await reload();
        toast(t('users.created', { login: user.login }));
      });
    } },
  h('label', {}, t('users.login'), login), h('label', {}, t('users.name'), name),
  h('label', {}, t('users.role'), role), h('label', {}, t('users.extension'), ext),
  h('label', {}, t('users.password'), field), go);
  return form;
}

export async function render(main) {
  const box = h('div', { dataset: { role: 'users' } });
  async function reload() {
    try {
      const users = await loadUsers();
      replace(box, table(HEAD, users.map((u) => userRow(u, reload)), 'users.none'));
    } catch (err) {
      replace(box, h('p', { class: 'error' }, errorText(err)));
    }
  }
  replace(main, h('h1', {}, t('nav.users')),
    section('users.list', box), section('users.add_title', addForm(reload)));
  await reload();
}
