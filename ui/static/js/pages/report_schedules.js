// Scheduled reports (admin): which reports go to whom, when, for which period; the state of
// the last sending; the SMTP settings (the password is write-only).
import { api } from '../api.js';
import { h, replace } from '../dom.js';
import { dateTime } from '../format.js';
import { t } from '../i18n.js';
import { errorText, toast } from '../widgets.js';
import { section } from './shared.js';

const REPORTS = ['calls_by_manager', 'missed_calls', 'load', 'sms', 'faxes'];
const PERIODS = ['yesterday', 'last_7_days', 'last_month'];

function field(labelKey, input, params) {
  return h('label', {}, t(labelKey, params), input);
}

function scheduleForm(schedule, tz, onSaved) {
  const s = schedule || { name: '', reports: ['missed_calls'], recipients: [], frequency: 'daily',
    time_of_day: '08:00', weekday: 0, period: 'yesterday', language: 'en', enabled: true };
  const name = h('input', { name: 'name', required: true, value: s.name, maxlength: 100 });
  const reports = h('fieldset', { class: 'checks', dataset: { role: 'reports' } },
    h('legend', {}, t('schedules.reports')),
    REPORTS.map((r) => h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'report', value: r,
      checked: s.reports.includes(r) }), t(`report.name.${r}`))));
  const recipients = h('textarea', { name: 'recipients', rows: 2, required: true },
    s.recipients.join('\n'));
  const frequency = h('select', { name: 'frequency' }, ['daily', 'weekly'].map((f) =>
    h('option', { value: f, selected: s.frequency === f }, t(`schedules.frequency.${f}`))));
  const time = h('input', { type: 'time', name: 'time_of_day', required: true, value: s.time_of_day });
  const weekday = h('select', { name: 'weekday' }, [0, 1, 2, 3, 4, 5, 6].map((d) =>
    h('option', { value: String(d), selected: (s.weekday ?? 0) === d }, t(`weekday.${d}`))));
  const weekdayLabel = field('schedules.weekday', weekday);
  const period = h('select', { name: 'period' }, PERIODS.map((p) =>
    h('option', { value: p, selected: s.period === p }, t(`schedules.period.${p}`))));
  const language = h('select', { name: 'language' }, ['en', 'ru'].map((l) =>
    h('option', { value: l, selected: s.language === l }, t(`lang.${l}`))));
  const enabled = h('input', { type: 'checkbox', name: 'enabled', checked: s.enabled });
  const sync = () => { weekdayLabel.hidden = frequency.value !== 'weekly'; };
  frequency.addEventListener('change', sync);
  sync();
  const save = h('button', { type: 'submit' }, schedule ? t('schedules.save') : t('schedules.add'));
  const form = h('form', { class: 'filters schedule-form', dataset: { role: schedule ? 'edit-schedule' : 'add-schedule' },
    onsubmit: async (ev) => {
      ev.preventDefault();
      const body = {
        name: name.value, recipients: recipients.value.split(/[\s,;]+/).filter(Boolean),
        reports: [...reports.querySelectorAll('input:checked')].map((i) => i.value),
        frequency: frequency.value, time_of_day: time.value,
        weekday: frequency.value === 'weekly' ? Number(weekday.value) : null,
        period: period.value, language: language.value, enabled: enabled.checked,
      };
      save.disabled = true;
      try {
        await (schedule ? api('PATCH', `/api/admin/report-schedules/${Number(schedule.id)}`, body)
          : api('POST', '/api/admin/report-schedules', body));
        toast(t('schedules.saved'));
        onSaved();
      } catch (err) {
        toast(errorText(err), 'error');
      } finally {
        save.disabled = false;
      }
    } },
  field('schedules.name', name), reports, field('schedules.recipients', recipients),
  field('schedules.frequency', frequency), field('schedules.time_of_day', time, { tz }), weekdayLabel,
  field('schedules.period', period), field('schedules.language', language),
  h('label', { class: 'check' }, enabled, t('schedules.enabled')), save);
  return form;
}

function status(s) {
  const lines = [s.last_period ? t('schedules.last_sent', { period: s.last_period, at: dateTime(s.last_sent_at) })
    : t('schedules.never_sent')];
  const out = [h('div', { class: 'muted' }, lines)];
  if (s.last_error) {
    out.push(h('div', { class: 'error', dataset: { role: 'schedule-error' } },
      t('schedules.error', { n: s.attempts, error: s.last_error })));
  }
  return out;
}

function smtpForm(smtp, onSaved) {
  const host = h('input', { name: 'host', value: smtp.host });
  const port = h('input', { name: 'port', type: 'number', min: 1, max: 65535, value: String(smtp.port) });
  const user = h('input', { name: 'user', value: smtp.user, autocomplete: 'off' });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'new-password',
    placeholder: t(smtp.password_set ? 'schedules.smtp.password_set' : 'schedules.smtp.password_unset') });
  const starttls = h('input', { type: 'checkbox', name: 'starttls', checked: smtp.starttls });
  const ssl = h('input', { type: 'checkbox', name: 'ssl', checked: smtp.ssl });
  const from = h('input', { name: 'from_address', type: 'email', value: smtp.from_address });
  return h('form', { class: 'filters', dataset: { role: 'smtp' }, onsubmit: async (ev) => {
    ev.preventDefault();
    const body = { host: host.value.trim(), port: Number(port.value), user: user.value.trim(),
      starttls: starttls.checked, ssl: ssl.checked, from_address: from.value.trim() };
    if (password.value) body.password = password.value;
    try {
      await api('PATCH', '/api/admin/smtp', body);
      toast(t('schedules.smtp.saved'));
      onSaved();
    } catch (err) {
      toast(errorText(err), 'error');
    }
  } },
  field('schedules.smtp.host', host), field('schedules.smtp.port', port), field('schedules.smtp.user', user),
  field('schedules.smtp.password', password), h('label', { class: 'check' }, starttls, t('schedules.smtp.starttls')),
  h('label', { class: 'check' }, ssl, t('schedules.smtp.ssl')), field('schedules.smtp.from_address', from),
  h('button', { type: 'submit' }, t('schedules.save')));
}

export async function render(main) {
  async function load() {
    let data;
    try {
      data = await api('GET', '/api/admin/report-schedules');
    } catch (err) {
      replace(main, h('p', { class: 'error' }, errorText(err)));
      return;
    }
    const rows = data.schedules.map((s) => {
      const edit = h('div', { hidden: true }, scheduleForm(s, data.timezone, load));
      return h('li', { class: 'schedule', dataset: { scheduleId: s.id } },
        h('strong', {}, s.name), ' · ', s.reports.map((r) => t(`report.name.${r}`)).join(', '), ' · ',
        t(`schedules.frequency.${s.frequency}`), ' ', s.time_of_day,
        s.frequency === 'weekly' ? ` (${t(`weekday.${s.weekday}`)})` : '', ' · ',
        t(`schedules.period.${s.period}`), ' → ', s.recipients.join(', '),
        status(s),
        h('button', { type: 'button', class: 'btn-small', dataset: { action: 'edit' },
          onclick: () => { edit.hidden = !edit.hidden; } }, t('schedules.edit')),
        ' ',
        h('button', { type: 'button', class: 'btn-small', dataset: { action: 'delete' }, onclick: async () => {
          try {
            await api('DELETE', `/api/admin/report-schedules/${Number(s.id)}`);
            toast(t('schedules.deleted'));
            load();
          } catch (err) {
            toast(errorText(err), 'error');
          }
        } }, t('schedules.delete')),
        edit);
    });
    const smtpMissing = !data.smtp.host || !data.smtp.from_address;
    replace(main, h('h1', {}, t('schedules.title')),
      smtpMissing ? h('p', { class: 'error', dataset: { role: 'smtp-missing' } }, t('schedules.smtp.missing')) : null,
      section('schedules.title', rows.length ? h('ul', { class: 'schedules' }, rows)
        : h('p', { class: 'muted' }, t('schedules.none'))),
      section('schedules.add', scheduleForm(null, data.timezone, load)),
      section('schedules.smtp', smtpForm(data.smtp, load)));
  }
  await load();
}
