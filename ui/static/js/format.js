// Dates, durations and numbers in the user's language.
import { language, t } from './i18n.js';

export function parseTime(value) {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

export function dateTime(value) {
  const date = parseTime(value);
  if (!date) return '';
  return new Intl.DateTimeFormat(language(), { dateStyle: 'short', timeStyle: 'short' }).format(date);
}

export function clock(value) {
  const date = parseTime(value);
  if (!date) return '';
  return new Intl.DateTimeFormat(language(), { timeStyle: 'medium' }).format(date);
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(Number(seconds))) return '';
  const total = Math.max(0, Math.round(Number(seconds)));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

export function since(value) {
  const date = parseTime(value);
  return date ? duration((Date.now() - date.getTime()) / 1000) : '';
}

// The number as the call event formatted it, else the raw digits; "withheld" when hidden.
export function callerNumber(caller) {
  if (!caller || caller.withheld) return t('caller.withheld');
  return caller.display || caller.raw || caller.e164 || t('caller.unknown');
}

// A call in the history, told in the user's language from its data (the stored summary is
// the English fallback for integrators and older rows).
export function interactionText(item) {
  const d = item && item.data;
  if (item && item.kind === 'fax' && d && d.direction) return faxText(d) || item.summary || '';
  if (!item || item.kind !== 'call' || !d || !d.direction || !d.state) return (item && item.summary) || '';
  const by = d.answered_by ? (d.answered_by.user_name || d.answered_by.extension || t('calls.outside')) : '';
  const params = {
    who: d.caller_name || d.caller || t('caller.withheld'),
    number: d.called || '',
    by,
    talk: duration(d.talk_seconds),
    ivr: duration(d.ivr_seconds) || '0:00',
  };
  const key = d.handled_by_pbx ? 'history.call.inbound.pbx' : `history.call.${d.direction}.${d.state}`;
  let text = t(key, params);
  if (text === key) return item.summary || '';
  if (d.transfers && d.transfers.length) {
    text += ` · ${t('history.call.transferred', { to: d.transfers.map((x) => x.to).join(', ') })}`;
  }
  if (d.voicemail) text += ` · ${t('calls.voicemail')}`;
  return text;
}

// A fax in the client's history, in the user's language (the words come with the event).
function faxText(d) {
  if (d.direction === 'in') {
    return t(d.ok ? 'history.fax.in' : 'history.fax.in_bad', { number: d.number || t('caller.unknown'), pages: d.pages });
  }
  const words = d.words ? (d.words[language()] || d.words.en) : '';
  return words ? t('history.fax.out', { number: d.number || '', words }) : '';
}
