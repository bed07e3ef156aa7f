// The page a user with a one-time password sees: nothing else opens until they choose their own.
import { api } from '../api.js';
import { ctx } from '../ctx.js';
import { h, replace } from '../dom.js';
import { t } from '../i18n.js';
import { errorText } from '../widgets.js';

export async function render(main) {
  const field = (name, key) => h('label', {}, t(key), h('input', { type: 'password', name,
    required: true, autocomplete: name === 'current' ? 'current-password' : 'new-password' }));
  const message = h('p', { class: 'error', dataset: { role: 'password-error' } });
  const form = h('form', { class: 'filters', dataset: { role: 'password-change' },
    onsubmit: async (ev) => {
      ev.preventDefault();
      const value = (name) => form.querySelector(`input[name=${name}]`).value;
      if (value('new') !== value('repeat')) {
        message.textContent = t('password.mismatch');
        return;
      }
      try {
        await api('PATCH', `/api/users/${Number(ctx.me.id)}`,
          { password: value('new'), current_password: value('current') });
        location.assign('/');
      } catch (err) {
        message.textContent = errorText(err);
      }
    } },
  field('current', 'password.current'), field('new', 'password.new'),
  field('repeat', 'password.repeat'), h('button', { type: 'submit' }, t('password.save')));
  replace(main, h('h1', {}, t('password.title')),
    h('section', { class: 'panel' }, h('p', {}, t('password.help')), form, message));
}
