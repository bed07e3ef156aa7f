// Lines (admin): add, edit, disable, delete a line of any registered kind; "Test connection"
// runs the line's live check on the form as it is; every save is checked by the server first.
// Secrets are write-only: the form never gets them back (empty on edit keeps the stored one).
// An Asterisk line also shows its SIP trunks and takes a new trunk with its registration.
import { api } from '../api.js';
import { h, replace } from '../dom.js';
import { has, t } from '../i18n.js';
import { errorText, toast } from '../widgets.js';
import { section, table } from './shared.js';

const POLL_MS = 3000;

function fieldLabel(spec, kind) {
  // A kind's own words first (a SIP line's "username" is no AMI user).
  const own = kind ? `lines.field.${kind}.${spec.name}` : '';
  if (own && has(own)) return t(own);
  const key = `lines.field.${spec.name}`;
  return has(key) ? t(key) : spec.label || spec.name;
}

function stateBadge(status) {
  return h('span', { class: `line-state line-state-${status.state}`, dataset: { role: 'line-state', state: status.state } },
    has(`lines.state.${status.state}`) ? t(`lines.state.${status.state}`) : status.state);
}

function checkText(result) {
  if (result.ok) return t('lines.check_ok', { summary: result.summary });
  return [result.error || result.summary, result.hint].filter(Boolean).join(' — ');
}

function input(spec, value, editing) {
  const name = `f-${spec.name}`;
  if (spec.secret) {
    return h('input', { type: 'password', name, autocomplete: 'new-password', value: '',
      placeholder: editing ? t('lines.secret_keep') : '' });
  }
  if (spec.type === 'bool') return h('input', { type: 'checkbox', name, checked: Boolean(value) });
  if (spec.choices && spec.choices.length) {
    return h('select', { name }, spec.choices.map((c) => h('option', { value: c, selected: c === value },
      has(`lines.choice.${c}`) ? t(`lines.choice.${c}`) : c)));
  }
  if (spec.type === 'int' || spec.type === 'float') {
    return h('input', { type: 'number', name, value: value ?? '', step: spec.type === 'int' ? '1' : 'any',
      min: spec.minimum ?? null, max: spec.maximum ?? null });
  }
  if (spec.type === 'list' && spec.multiline) {
    return h('textarea', { name, rows: 4 }, (value || []).join('\n'));
  }
  if (spec.type === 'list') return h('input', { type: 'text', name, value: (value || []).join(', ') });
  return h('input', { type: 'text', name, value: value ?? '' });
}

function readForm(form, kind) {
  const settings = {};
  const secrets = {};
  for (const spec of kind.fields) {
    const el = form.querySelector(`[name="f-${spec.name}"]`);
    if (spec.secret) secrets[spec.name] = el.value;
    else if (spec.type === 'bool') settings[spec.name] = el.checked;
    else if (spec.type === 'int') settings[spec.name] = el.value === '' ? spec.default : parseInt(el.value, 10);
    else if (spec.type === 'float') settings[spec.name] = el.value === '' ? spec.default : parseFloat(el.value);
    else if (spec.type === 'list') settings[spec.name] = el.value.split(/[,\r\n]+/).map((s) => s.trim()).filter(Boolean);
    else settings[spec.name] = el.value;
  }
  return { settings, secrets };
}

export async function render(main) {
  const kinds = await api('GET', '/api/admin/line-kinds');
  const listBox = h('div', { dataset: { role: 'lines' } });
  const formBox = h('div', { dataset: { role: 'line-form' } });
  const trunkBox = h('div', { dataset: { role: 'trunks' } });
  let poll = null;

  async function load() {
    try {
      const lines = await api('GET', '/api/admin/lines');
      replace(listBox, table(['lines.name', 'lines.kind', 'lines.state', 'lines.detail', ''],
        lines.map(lineRow), 'lines.none'));
    } catch (err) {
      replace(listBox, h('p', { class: 'error' }, errorText(err)));
    }
  }

  function lineRow(line) {
    const buttons = [
      h('button', { type: 'button', dataset: { action: 'edit' }, onclick: () => openForm(line) }, t('lines.edit')),
      h('button', { type: 'button', dataset: { action: line.enabled ? 'disable' : 'enable' },
        onclick: () => setEnabled(line, !line.enabled) }, t(line.enabled ? 'lines.disable' : 'lines.enable')),
      h('button', { type: 'button', dataset: { action: 'delete' }, onclick: () => remove(line) }, t('lines.delete')),
    ];
    const kind = kinds.find((k) => k.kind === line.kind);
    if (kind && (kind.capabilities || []).includes('trunks') && line.status.connected) {
      buttons.push(h('button', { type: 'button', dataset: { action: 'trunks' }, onclick: () => openTrunks(line) }, t('lines.trunks')));
    }
    const detail = [line.status.detail];
    if (line.status.last_error && line.status.last_error !== line.status.detail) {
      detail.push(h('br'), h('span', { class: 'muted' }, t('lines.last_error', { error: line.status.last_error })));
    }
    return h('tr', { dataset: { line: line.name } },
      h('td', {}, line.name), h('td', {}, line.kind), h('td', {}, stateBadge(line.status)),
      h('td', {}, detail), h('td', { class: 'actions' }, buttons));
  }

  async function setEnabled(line, enabled) {
    try {
      await api('PATCH', `/api/admin/lines/${encodeURIComponent(line.name)}`, { enabled });
      toast(t(enabled ? 'lines.enabled' : 'lines.disabled', { name: line.name }));
    } catch (err) {
      toast(errorText(err), 'error');
    }
    await load();
  }

  async function remove(line) {
    if (!window.confirm(t('lines.confirm_delete', { name: line.name }))) return;
    try {
      await api('DELETE', `/api/admin/lines/${encodeURIComponent(line.name)}`);
      toast(t('lines.deleted', { name: line.name }));
    } catch (err) {
      toast(errorText(err), 'error');
    }
    replace(formBox);
    await load();
  }

  function openForm(line) {
    const editing = Boolean(line);
    const kindSelect = h('select', { name: 'kind', disabled: editing },
      kinds.map((k) => h('option', { value: k.kind, selected: line ? line.kind === k.kind : false }, k.label)));
    const name = h('input', { type: 'text', name: 'name', value: line ? line.name : '', required: true });
    const fieldsBox = h('div', { class: 'line-fields' });
    const saveDisabled = h('input', { type: 'checkbox', name: 'save_disabled' });
    const result = h('p', { class: 'check-result', dataset: { role: 'check-result' } });
    const kindOf = () => kinds.find((k) => k.kind === kindSelect.value) || kinds[0];
    function drawFields() {
      const kind = kindOf();
      replace(fieldsBox, kind.fields.map((spec) => {
        const value = line && spec.name in line.settings ? line.settings[spec.name] : spec.default;
        const el = input(spec, value, editing && (line.secrets_set || []).includes(spec.name));
        return h('label', { class: spec.type === 'bool' ? 'check' : 'field', title: spec.help || '' },
          spec.type === 'bool' ? [el, fieldLabel(spec, kind.kind)] : [fieldLabel(spec, kind.kind), el]);
      }));
    }
    kindSelect.addEventListener('change', drawFields);
    drawFields();
    function show(outcome, ok) {
      result.textContent = outcome;
      result.dataset.ok = ok ? 'true' : 'false';
      result.className = `check-result ${ok ? 'ok' : 'error'}`;
    }
    async function test() {
      const { settings, secrets } = readForm(form, kindOf());
      show(t('lines.checking'), true);
      try {
        const body = { kind: kindOf().kind, name: name.value.trim() || 'check', settings, secrets };
        if (editing) body.stored = line.name;
        const res = await api('POST', '/api/admin/lines/check', body);
        show(checkText(res), res.ok);
      } catch (err) {
        show(errorText(err), false);
      }
    }
    async function save(ev) {
      ev.preventDefault();
      const { settings, secrets } = readForm(form, kindOf());
      show(t('lines.checking'), true);
      try {
        let res;
        if (editing) {
          res = await api('PATCH', `/api/admin/lines/${encodeURIComponent(line.name)}`,
            { name: name.value.trim(), settings, secrets, save_disabled: saveDisabled.checked });
        } else {
          res = await api('POST', '/api/admin/lines', { name: name.value.trim(), kind: kindOf().kind,
            settings, secrets, save_disabled: saveDisabled.checked });
        }
        const checked = res.check ? checkText(res.check) : '';
        if (res.start_error) {
          show(t('lines.saved_not_started', { name: res.line.name, error: res.start_error }), false);
        } else {
          show(t(res.line.enabled ? 'lines.saved' : 'lines.saved_disabled', { name: res.line.name, check: checked }),
            res.line.enabled);
        }
        await load();
      } catch (err) {
        show(errorText(err), false);
      }
    }
    const form = h('form', { class: 'line-form', onsubmit: save },
      h('h3', {}, editing ? t('lines.edit_title', { name: line.name }) : t('lines.add_title')),
      h('label', { class: 'field' }, t('lines.name'), name),
      h('label', { class: 'field' }, t('lines.kind'), kindSelect),
      fieldsBox,
      h('label', { class: 'check' }, saveDisabled, t('lines.save_disabled')),
      h('div', { class: 'buttons' },
        h('button', { type: 'button', dataset: { action: 'test' }, onclick: test }, t('lines.test')),
        h('button', { type: 'submit', dataset: { action: 'save' } }, t('lines.save')),
        h('button', { type: 'button', onclick: () => replace(formBox) }, t('lines.cancel'))),
      result);
    replace(formBox, section(editing ? 'lines.edit_section' : 'lines.add_section', form));
  }

  async function openTrunks(line) {
    if (poll) clearInterval(poll);
    const base = `/api/admin/lines/${encodeURIComponent(line.name)}`;
    const tables = h('div', { dataset: { role: 'trunk-tables' } });
    const result = h('p', { class: 'check-result', dataset: { role: 'trunk-result' } });
    let version = null;
    async function loadTrunks() {
      try {
        const data = await api('GET', `${base}/trunks`);
        replace(tables,
          h('h3', {}, t('lines.endpoints')),
          table(['lines.name', 'lines.device_state', 'lines.contacts', 'lines.registration'],
            data.endpoints.filter((e) => e.trunk).map((e) => h('tr', { dataset: { endpoint: e.name } },
              h('td', {}, e.name), h('td', {}, e.reachable || e.state), h('td', {}, e.contacts.join(', ')),
              h('td', {}, e.registration))), 'lines.no_trunks'),
          h('h3', {}, t('lines.registrations')),
          table(['lines.name', 'lines.server', 'lines.client', 'lines.registration', ''],
            data.registrations.map((r) => h('tr', { dataset: { registration: r.name } },
              h('td', {}, r.name), h('td', {}, r.server_uri), h('td', {}, r.client_uri),
              h('td', { dataset: { role: 'registration-status' } }, r.status),
              h('td', {}, r.name.endsWith('-reg') ? h('button', { type: 'button', dataset: { action: 'edit-trunk' },
                onclick: () => prefill(r) }, t('lines.edit')) : null))), 'lines.no_registrations'),
          h('p', { class: 'muted' }, t('lines.other_endpoints', { count: data.endpoints.filter((e) => !e.trunk).length })));
      } catch (err) {
        replace(tables, h('p', { class: 'error' }, errorText(err)));
      }
    }
    const fields = {
      trunk: h('input', { type: 'text', name: 't-name', required: true }),
      host: h('input', { type: 'text', name: 't-host', required: true }),
      port: h('input', { type: 'number', name: 't-port', value: 5060, min: 1, max: 65535 }),
      username: h('input', { type: 'text', name: 't-username' }),
      password: h('input', { type: 'password', name: 't-password', autocomplete: 'new-password' }),
      context: h('input', { type: 'text', name: 't-context', value: 'from-trunk' }),
      registration: h('input', { type: 'checkbox', name: 't-registration', checked: true }),
    };
    // An edit starts from what the PBX has: sip:<user>@<host>:<port> of the registration.
    function prefill(reg) {
      const m = /^sip:(?:([^@]*)@)?([^:;]+)(?::(\d+))?/.exec(reg.client_uri || reg.server_uri || '');
      fields.trunk.value = reg.name.replace(/-reg$/, '');
      if (m) {
        fields.username.value = m[1] || '';
        fields.host.value = m[2];
        fields.port.value = m[3] || '5060';
      }
      fields.password.value = '';
      fields.registration.checked = true;
      fields.trunk.focus();
    }
    async function saveTrunk(ev) {
      ev.preventDefault();
      result.textContent = t('lines.trunk_saving');
      result.className = 'check-result';
      try {
        const res = await api('PUT', `${base}/trunks/${encodeURIComponent(fields.trunk.value.trim())}`, {
          host: fields.host.value.trim(), port: parseInt(fields.port.value, 10) || 5060,
          username: fields.username.value.trim(), password: fields.password.value,
          context: fields.context.value.trim(), registration: fields.registration.checked });
        result.textContent = t('lines.trunk_saved', { message: res.message });
        result.className = 'check-result ok';
        result.dataset.ok = 'true';
      } catch (err) {
        result.textContent = errorText(err);
        result.className = 'check-result error';
        result.dataset.ok = 'false';
      }
      fields.password.value = '';
      await loadTrunks();
    }
    const form = h('form', { class: 'line-form', onsubmit: saveTrunk },
      h('h3', {}, t('lines.trunk_add')),
      h('label', { class: 'field' }, t('lines.trunk_name'), fields.trunk),
      h('label', { class: 'field' }, t('lines.trunk_host'), fields.host),
      h('label', { class: 'field' }, t('lines.trunk_port'), fields.port),
      h('label', { class: 'field' }, t('lines.trunk_username'), fields.username),
      h('label', { class: 'field' }, t('lines.trunk_password'), fields.password),
      h('label', { class: 'field' }, t('lines.trunk_context'), fields.context),
      h('label', { class: 'check' }, fields.registration, t('lines.trunk_register')),
      h('div', { class: 'buttons' }, h('button', { type: 'submit', dataset: { action: 'save-trunk' } }, t('lines.trunk_save'))),
      result);
    replace(trunkBox, section('lines.trunks_section', h('p', {}, t('lines.trunks_of', { name: line.name })), tables, form));
    await loadTrunks();
    // Registry/ContactStatus events move the line's live version: re-read when it moves.
    poll = setInterval(async () => {
      if (!document.body.contains(trunkBox)) {
        clearInterval(poll);
        return;
      }
      try {
        const live = await api('GET', `${base}/trunks/live`);
        if (version !== null && live.version !== version) await loadTrunks();
        version = live.version;
      } catch {
        /* the line went away: the next load shows it */
      }
    }, POLL_MS);
  }

  // The states change on their own (a line connects, drops, reconnects): re-read them.
  const statusPoll = setInterval(() => {
    if (!document.body.contains(listBox)) clearInterval(statusPoll);
    else load();
  }, POLL_MS);
  replace(main, h('h1', {}, t('nav.lines')),
    section('lines.list', h('div', { class: 'buttons' },
      h('button', { type: 'button', dataset: { action: 'add' }, onclick: () => openForm(null) }, t('lines.add'))), listBox),
    formBox, trunkBox);
  await load();
}
