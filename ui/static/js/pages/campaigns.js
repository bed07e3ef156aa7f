// SMS campaigns: a new draft with a template, an audience and a send window; its preview
// (count, rendered messages with encoding and parts); the campaigns with their progress,
// pause / resume / cancel and the CSV report. Admins and managers (their own clients) only.
import { api } from '../api.js';
import { ctx } from '../ctx.js';
import { h, replace } from '../dom.js';
import { dateTime } from '../format.js';
import { t } from '../i18n.js';
import { errorText, toast } from '../widgets.js';
import { label, section, table } from './shared.js';

const LIST_HEAD = ['camp.name', 'camp.state', 'camp.created', 'camp.window', ''];
const RECIPIENT_HEAD = ['camp.number', 'camp.client', 'camp.status', 'camp.parts', 'camp.replies',
  'camp.error'];
const REPORT_KEYS = ['recipients', 'sent', 'delivered', 'failed', 'unknown', 'opted_out', 'cancelled',
  'waiting', 'replies', 'unsubscribed'];
const REFRESH_MS = 5000;

function field(key, input) {
  return h('label', { class: 'field' }, h('span', {}, t(key)), input);
}

function formData(form) {
  const get = (name) => form.elements[name].value.trim();
  const audience = {};
  if (get('search')) audience.search = get('search');
  if (form.elements.manager_id && get('manager_id')) audience.manager_id = Number(get('manager_id'));
  if (get('custom_field') && get('custom_value')) audience.custom = { [get('custom_field')]: get('custom_value') };
  const data = { name: get('name'), template: form.elements.template.value, audience };
  if (get('per_minute') !== '') data.per_minute = Number(get('per_minute'));
  for (const key of ['window_start', 'window_end']) if (get(key)) data[key] = get(key);
  return data;
}

function previewView(p) {
  return h('div', { dataset: { role: 'camp-preview' } },
    h('p', { dataset: { role: 'camp-count', count: String(p.count) } },
      t('camp.preview_count', { n: p.count, parts: p.parts_total })),
    h('p', { class: 'muted' }, t('camp.skipped', {
      without: p.skipped.without_mobile, dupes: p.skipped.duplicates, empty: p.skipped.empty_text })),
    h('ul', { class: 'camp-samples' }, p.samples.map((s) => h('li', { dataset: { encoding: s.encoding, parts: String(s.parts) } },
      h('div', { class: 'muted' }, s.number, ' · ', s.encoding.toUpperCase(), ' · ',
        t('sms.parts_n', { n: s.parts })),
      h('div', { class: 'sms-text' }, s.text)))));
}

async function newCampaignForm(onSaved) {
  const [fields, users, customFields] = await Promise.all([
    api('GET', '/api/campaigns/fields'), Promise.resolve(ctx.users || []), api('GET', '/api/custom-fields')]);
  const previewBox = h('div', { class: 'camp-preview' });
  const template = h('textarea', { name: 'template', rows: 4, maxlength: 1000, required: true,
    placeholder: t('camp.template_placeholder') });
  const managers = ctx.me.role === 'admin'
    ? field('camp.manager', h('select', { name: 'manager_id' }, h('option', { value: '' }, t('camp.any_manager')),
      users.filter((u) => u.role === 'manager').map((u) => h('option', { value: String(u.id) }, u.name))))
    : null;
  const form = h('form', { class: 'camp-form', dataset: { role: 'camp-form' } },
    field('camp.name', h('input', { name: 'name', required: true, maxlength: 100 })),
    field('camp.template', template),
    h('p', { class: 'muted camp-fields' }, t('camp.fields'), ' ',
      fields.fields.map((f) => h('button', { type: 'button', class: 'link', title: f.description,
        onclick: () => { template.setRangeText(`{${f.name}}`, template.selectionStart, template.selectionEnd, 'end'); template.focus(); } },
      `{${f.name}}`))),
    h('fieldset', {}, h('legend', {}, t('camp.audience')),
      managers,
      field('camp.search', h('input', { name: 'search', type: 'search', maxlength: 200 })),
      field('camp.custom_field', h('select', { name: 'custom_field' }, h('option', { value: '' }, '—'),
        customFields.map((f) => h('option', { value: f.name }, f.label)))),
      field('camp.custom_value', h('input', { name: 'custom_value', maxlength: 200 }))),
    h('fieldset', {}, h('legend', {}, t('camp.sending')),
      field('camp.per_minute', h('input', { name: 'per_minute', type: 'number', min: 0, max: 6000, placeholder: '30' })),
      field('camp.window_start', h('input', { name: 'window_start', type: 'time', value: '09:00' })),
      field('camp.window_end', h('input', { name: 'window_end', type: 'time', value: '21:00' }))),
    h('div', { class: 'camp-buttons' },
      h('button', { type: 'button', dataset: { action: 'camp-preview' }, onclick: async () => {
        try {
          replace(previewBox, previewView(await api('POST', '/api/campaigns/preview', formData(form))));
        } catch (err) {
          replace(previewBox, h('p', { class: 'error' }, errorText(err)));
        }
      } }, t('camp.preview')),
      h('button', { type: 'submit' }, t('camp.save'))),
    previewBox);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const saved = await api('POST', '/api/campaigns', formData(form));
      toast(t('camp.saved'));
      form.reset();
      replace(previewBox);
      onSaved(saved.id);
    } catch (err) {
      replace(previewBox, h('p', { class: 'error' }, errorText(err)));
    }
  });
  return form;
}

function actions(c, act) {
  const b = (name) => h('button', { type: 'button', dataset: { action: `camp-${name}` }, onclick: () => act(name) },
    t(`camp.${name}`));
  const out = [];
  if (c.state === 'draft') out.push(b('start'), b('delete'));
  if (c.state === 'running') out.push(b('pause'), b('cancel'));
  if (c.state === 'paused') out.push(b('resume'), b('cancel'));
  if (c.state !== 'draft') {
    out.push(h('a', { href: `/api/campaigns/${Number(c.id)}/report.csv`, download: '', class: 'button',
      dataset: { role: 'camp-csv' }, target: '_blank' }, t('camp.csv')));
  }
  return out;
}

function recipientRow(r) {
  const delivered = r.parts.filter((p) => p.state === 'delivered').length;
  return h('tr', { class: `camp-recipient status-${r.status}`, dataset: { status: r.status } },
    h('td', {}, r.number),
    h('td', {}, r.client_id ? h('a', { href: `/clients/${Number(r.client_id)}` }, r.client_name || `#${r.client_id}`) : ''),
    h('td', {}, label('camp.status', r.status)),
    h('td', {}, r.parts.length ? `${delivered} / ${r.parts.length}` : ''),
    h('td', {}, r.replies ? String(r.replies) : ''),
    h('td', {}, r.error || r.parts.filter((p) => p.error).map((p) => `${p.seq}: ${p.error}`).join('; ')));
}

async function detailView(id, reloadList) {
  const box = h('div', { class: 'camp-detail', dataset: { role: 'camp-detail', campaign: String(id) } });
  async function load() {
    try {
      const p = await api('GET', `/api/campaigns/${Number(id)}/progress?limit=500`);
      const c = p.campaign;
      const act = async (name) => {
        try {
          if (name === 'delete') await api('DELETE', `/api/campaigns/${Number(id)}`);
          else await api('POST', `/api/campaigns/${Number(id)}/${name}`);
          reloadList();
          if (name !== 'delete') await load(); else replace(box);
        } catch (err) {
          toast(errorText(err), 'error');
        }
      };
      replace(box,
        h('h3', {}, c.name, ' ', h('span', { class: `camp-state state-${c.state}`, dataset: { role: 'camp-state', state: c.state } },
          label('camp.state', c.state))),
        h('p', { class: 'muted' }, t('camp.window_text', { start: c.window_start, end: c.window_end, zone: c.time_zone }),
          ' · ', c.per_minute ? t('camp.rate', { n: c.per_minute }) : t('camp.rate_sims')),
        h('div', { class: 'sms-text pre' }, c.template),
        h('div', { class: 'camp-buttons' }, actions(c, act)),
        h('dl', { class: 'camp-report', dataset: { role: 'camp-report' } },
          REPORT_KEYS.map((k) => [h('dt', {}, t(`camp.report.${k}`)),
            h('dd', { dataset: { key: k } }, String(p.report[k]))])),
        table(RECIPIENT_HEAD, p.recipients.map(recipientRow), 'camp.no_recipients'));
    } catch (err) {
      replace(box, h('p', { class: 'error' }, errorText(err)));
    }
  }
  await load();
  // Progress moves with the modems: looked at again while the page is open.
  const timer = setInterval(() => (box.isConnected ? load() : clearInterval(timer)), REFRESH_MS);
  box.reload = load;
  return box;
}

export async function render(main) {
  const listBox = h('div', { class: 'table-wrap', dataset: { role: 'camp-list' } });
  const detailBox = h('div');
  async function open(id) {
    replace(detailBox, await detailView(id, loadList));
  }
  async function loadList() {
    try {
      const rows = await api('GET', '/api/campaigns');
      replace(listBox, table(LIST_HEAD, rows.map((c) => h('tr', { class: 'camp-row', dataset: { campaign: String(c.id) } },
        h('td', {}, c.name),
        h('td', {}, label('camp.state', c.state)),
        h('td', {}, dateTime(c.created_at)),
        h('td', {}, `${c.window_start}–${c.window_end}`),
        h('td', {}, h('button', { type: 'button', dataset: { action: 'camp-open' }, onclick: () => open(c.id) },
          t('camp.open'))))), 'camp.none'));
    } catch (err) {
      replace(listBox, h('p', { class: 'error' }, errorText(err)));
    }
  }
  let form;
  try {
    form = await newCampaignForm(async (id) => { await loadList(); await open(id); });
  } catch (err) {
    form = h('p', { class: 'error' }, errorText(err));
  }
  replace(main, h('h1', {}, t('nav.campaigns')),
    section('camp.new', form),
    section('camp.list', listBox, detailBox));
  await loadList();
  // campaign.status (main.js passes every live event on): the list and the open campaign
  const onEvent = (e) => {
    if (!listBox.isConnected) { document.removeEventListener('callcenter:event', onEvent); return; }
    if (!e.detail || e.detail.type !== 'campaign.status') return;
    loadList();
    const box = detailBox.firstChild;
    const id = e.detail.data && e.detail.data.campaign && e.detail.data.campaign.id;
    if (box && box.reload && box.dataset.campaign === String(id)) box.reload();
  };
  document.addEventListener('callcenter:event', onEvent);
}
