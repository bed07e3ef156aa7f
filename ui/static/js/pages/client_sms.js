// The client card's SMS section: the client's SMS with per-part status, and a compose box
// offering the client's phone numbers.
import { api } from '../api.js';
import { h, replace } from '../dom.js';
import { t } from '../i18n.js';
import { composeBox, detailBox, onSms, SMS_HEAD, smsRow } from '../sms.js';
import { errorText } from '../widgets.js';
import { section, table } from './shared.js';

export function clientSmsSection(client) {
  const numbers = client.contacts.flatMap((c) => c.phones.map((p) => ({
    value: p.e164 || p.raw,
    label: `${c.name}: ${p.raw}`,
    fields: { 'client.name': client.name, 'contact.name': c.name, 'contact.first_name': c.name.split(/\s+/)[0] },
  })));
  const listBox = h('div', { class: 'table-wrap', dataset: { role: 'client-sms' } });
  const detail = detailBox();
  const head = SMS_HEAD.filter((k) => k !== 'sms.client');
  async function load() {
    try {
      const rows = await api('GET', `/api/clients/${Number(client.id)}/sms`);
      replace(listBox, table(head, rows.map((r) => smsRow(r, { showClient: false, onOpen: detail.open })), 'sms.none'));
    } catch (err) {
      replace(listBox, h('p', { class: 'error' }, errorText(err)));
    }
  }
  const box = section('client.sms',
    numbers.length ? composeBox({ numbers, clientId: client.id, onSent: load }) : null,
    listBox, detail.box);
  let timer = null;
  const unsubscribe = onSms((sms) => {
    if (!box.isConnected) {
      unsubscribe();
      return;
    }
    if (sms.client_id !== client.id) return;
    clearTimeout(timer);
    timer = setTimeout(load, 200);
  });
  load();
  return box;
}
