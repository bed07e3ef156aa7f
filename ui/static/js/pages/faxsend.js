// Faxes on the client card: pick or type a fax number, upload a document (page count and
// thumbnail shown before anything is dialled), send, then follow it page by page.
import { api, query, upload } from '../api.js';
import { h, replace } from '../dom.js';
import { dateTime } from '../format.js';
import { language, t } from '../i18n.js';
import { errorText, toast } from '../widgets.js';
import { section, table } from './shared.js';

// Every fax event the live socket delivers (see main.js) reaches these listeners.
export function onFaxEvent(main, listener) {
  const handler = (ev) => {
    if (!main.isConnected) {
      window.removeEventListener('callcenter:event', handler);
      return;
    }
    const event = ev.detail;
    if (event && event.type && event.type.startsWith('fax.')) listener(event);
  };
  window.addEventListener('callcenter:event', handler);
}

export function words(map) {
  return (map && (map[language()] || map.en)) || '';
}

export const JOB_HEAD = ['fax.when', 'fax.number', 'fax.file', 'fax.pages', 'fax.state',
  'fax.station', 'fax.result', ''];

export function jobRow(job, onChange) {
  const active = ['queued', 'dialing', 'sending', 'retry_scheduled'].includes(job.state);
  const cancel = active ? h('button', { type: 'button', class: 'small', dataset: { action: 'cancel-fax' },
    onclick: async () => {
      try {
        await api('POST', `/api/faxes/${Number(job.id)}/cancel`);
        if (onChange) onChange();
      } catch (err) {
        toast(errorText(err), 'error');
      }
    } }, t('fax.cancel')) : null;
  return h('tr', { dataset: { faxJob: String(job.id), state: job.state } },
    h('td', {}, dateTime(job.created_at)),
    h('td', {}, job.number),
    h('td', {}, job.file_name || ''),
    h('td', { dataset: { role: 'fax-pages' } }, t('fax.pages_of', { done: job.pages_confirmed, total: job.pages })),
    h('td', { dataset: { role: 'fax-state' } }, words(job.state_words)),
    h('td', {}, job.remote_station || ''),
    h('td', { dataset: { role: 'fax-result' } }, words(job.words)),
    h('td', {}, cancel));
}

export function faxSection(client) {
  const numbers = [];
  for (const contact of client.contacts || []) {
    for (const phone of contact.phones || []) {
      numbers.push({ value: phone.e164 || phone.raw, label: `${phone.raw} · ${contact.name}` });
    }
  }
  const pick = h('select', { name: 'fax-number-pick', 'aria-label': t('fax.pick_number'), dataset: { role: 'fax-pick' } },
    h('option', { value: '' }, t('fax.type_number')),
    numbers.map((n) => h('option', { value: n.value }, n.label)));
  const number = h('input', { name: 'fax-number', required: true, placeholder: t('fax.number'),
    'aria-label': t('fax.number'), dataset: { role: 'fax-number' }, value: numbers.length ? numbers[0].value : '' });
  if (numbers.length) pick.value = numbers[0].value;
  pick.addEventListener('change', () => {
    if (pick.value) number.value = pick.value;
  });
  const file = h('input', { type: 'file', name: 'file', accept: '.pdf,.png,.jpg,.jpeg,.tif,.tiff,application/pdf,image/*',
    'aria-label': t('fax.document'), dataset: { role: 'fax-file' } });
  const preview = h('div', { class: 'fax-preview', dataset: { role: 'fax-preview' } });
  const send = h('button', { type: 'submit', disabled: true, dataset: { action: 'send-fax' } }, t('fax.send'));
  const jobsBox = h('div', { dataset: { role: 'client-faxes' } });
  let prepared = null;

  file.addEventListener('change', async () => {
    prepared = null;
    send.disabled = true;
    replace(preview);
    if (!file.files || !file.files.length) return;
    const form = new FormData();
    form.append('file', file.files[0]);
    replace(preview, h('span', { class: 'muted' }, t('fax.converting')));
    try {
      prepared = await upload('/api/fax-documents', form);
      replace(preview,
        h('img', { src: prepared.thumbnail_url, alt: t('fax.thumbnail'), class: 'fax-thumb' }),
        h('span', { dataset: { role: 'fax-doc-pages' } }, t('fax.doc_pages', { pages: prepared.pages })));
      send.disabled = false;
    } catch (err) {
      replace(preview, h('span', { class: 'error', role: 'alert', dataset: { role: 'fax-rejected' } }, errorText(err)));
    }
  });

  async function loadJobs() {
    try {
      const jobs = await api('GET', `/api/faxes${query({ client_id: client.id, limit: 50 })}`);
      replace(jobsBox, table(JOB_HEAD, jobs.map((j) => jobRow(j, loadJobs)), 'fax.none_sent'));
    } catch (err) {
      replace(jobsBox, h('p', { class: 'error' }, errorText(err)));
    }
  }

  const form = h('form', { class: 'fax-form', dataset: { role: 'fax-form' }, onsubmit: async (ev) => {
    ev.preventDefault();
    if (!prepared) return;
    send.disabled = true;
    try {
      await api('POST', '/api/faxes', { document: prepared.document, number: number.value, client_id: client.id });
      toast(t('fax.queued'));
      file.value = '';
      replace(preview);
      prepared = null;
      loadJobs();
    } catch (err) {
      toast(errorText(err), 'error');
      send.disabled = false;
    }
  } }, pick, number, file, send, preview);

  const box = section('fax.title', form, jobsBox);
  onFaxEvent(box, (event) => {
    const fax = event.data && event.data.fax;
    if (event.type === 'fax.status' && fax && fax.client_id === client.id) loadJobs();
  });
  loadJobs();
  return box;
}
