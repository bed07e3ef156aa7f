// Console entry: session, language, header, live socket, dock, and the page router.
import { api, goToLogin, setCsrf } from './api.js';
import { Dock, startTimers } from './card.js';
import { ctx, loadUsers } from './ctx.js';
import { $ } from './dom.js';
import { loadLanguage, t, translateTree } from './i18n.js';
import { LiveSocket } from './live.js';
import { smsEvent } from './sms.js';
import { errorText, toast } from './widgets.js';

const ROUTES = [
  { pattern: /^\/$/, nav: 'home', load: () => import('./pages/home.js') },
  { pattern: /^\/calls$/, nav: 'calls', load: () => import('./pages/calls.js') },
  { pattern: /^\/tasks$/, nav: 'tasks', load: () => import('./pages/tasks.js') },
  { pattern: /^\/faxes$/, nav: 'faxes', load: () => import('./pages/faxes.js') },
  { pattern: /^\/sms$/, nav: 'sms', load: () => import('./pages/sms.js') },
  { pattern: /^\/campaigns$/, nav: 'campaigns', load: () => import('./pages/campaigns.js') },
  { pattern: /^\/clients\/(?<id>\d+)$/, nav: null, load: () => import('./pages/client.js') },
  { pattern: /^\/admin\/users$/, nav: 'users', load: () => import('./pages/users.js') },
  { pattern: /^\/admin\/audit$/, nav: 'audit', load: () => import('./pages/audit.js') },
  { pattern: /^\/admin\/routing$/, nav: 'routing', load: () => import('./pages/routing.js') },
  { pattern: /^\/admin\/lines$/, nav: 'lines', load: () => import('./pages/lines.js') },
  { pattern: /^\/reports(?:\/(?<name>[a-z_]+))?$/, nav: 'reports', load: () => import('./pages/reports.js') },
  { pattern: /^\/admin\/report-schedules$/, nav: 'report_schedules', load: () => import('./pages/report_schedules.js') },
];

async function route() {
  const main = $('#main');
  const path = location.pathname;
  const found = ROUTES.find((r) => r.pattern.test(path));
  for (const link of document.querySelectorAll('[data-nav]')) {
    link.classList.toggle('active', Boolean(found && link.dataset.nav === found.nav));
  }
  document.title = t('app.title');
  if (!found) {
    main.replaceChildren(document.createTextNode(t('app.not_found')));
    return;
  }
  const params = path.match(found.pattern).groups || {};
  const page = await found.load();
  // A fresh container per page, so a slow page that finishes late cannot draw over the next.
  const box = document.createElement('div');
  box.className = 'page';
  main.replaceChildren(box);
  try {
    await page.render(box, params);
  } catch (err) {
    toast(errorText(err), 'error');
  }
  document.body.dataset.page = found.nav || 'client';
}

// Same-origin links are followed without a page load: the live socket and the cards stay.
function interceptLinks() {
  document.addEventListener('click', (ev) => {
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    const link = ev.target.closest('a[href]');
    if (!link || link.target) return;
    const href = link.getAttribute('href');
    if (!href.startsWith('/') || href.startsWith('//') || href.startsWith('/static/')) return;
    ev.preventDefault();
    if (href !== location.pathname + location.search) history.pushState(null, '', href);
    route();
  });
  window.addEventListener('popstate', route);
}

function header() {
  const me = ctx.me;
  const role = t(`role.${me.role}`);
  $('#me').textContent = me.extension ? t('header.me_ext', { name: me.name, role, ext: me.extension })
    : t('header.me', { name: me.name, role });
  for (const link of document.querySelectorAll('[data-admin]')) link.hidden = me.role !== 'admin';
  const lang = $('#lang');
  lang.value = me.language;
  lang.addEventListener('change', async () => {
    try {
      await api('PATCH', `/api/users/${Number(me.id)}`, { language: lang.value });
      location.reload();
    } catch (err) {
      toast(errorText(err), 'error');
    }
  });
  $('#logout').addEventListener('click', async () => {
    try {
      await api('DELETE', '/api/session');
    } finally {
      location.assign('/login');
    }
  });
}

function connectionStatus(state) {
  const el = $('#conn');
  el.dataset.state = state;
  el.textContent = t(`conn.${state}`);
}

async function boot() {
  let session;
  try {
    session = await api('GET', '/api/session');
  } catch {
    goToLogin();
    return;
  }
  setCsrf(session.csrf_token);
  ctx.me = session.user;
  await loadLanguage(ctx.me.language);
  translateTree(document);
  if (ctx.me.one_time_login) {
    // An admin's one-time password: the only page is the one that replaces it.
    header();
    document.body.classList.remove('booting');
    await (await import('./pages/password.js')).render($('#main'));
    document.body.dataset.ready = 'true';
    return;
  }
  await loadUsers();
  header();
  // campaigns are for admins and managers (the API says the same)
  $('[data-nav=campaigns]').hidden = ctx.me.role === 'secretary';
  // reports: shown when the role may open any (the API decides, per report)
  await import('./pages/reports.js').then((m) => m.reportList())
    .then((list) => { $('[data-nav=reports]').hidden = !list.reports.length; }).catch(() => {});
  new Dock($('#cards'));
  startTimers();
  setInterval(() => ctx.store.prune(), 60000);
  ctx.socket = new LiveSocket({
    onEvent: (event) => {
      ctx.store.apply(event);
      // Pages other than the call views (faxes) listen here.
      window.dispatchEvent(new CustomEvent('callcenter:event', { detail: event }));
      smsEvent(event);
      document.dispatchEvent(new CustomEvent('callcenter:event', { detail: event }));
    },
    onReset: () => ctx.store.reload(),
    onStatus: connectionStatus,
    onUnauthorized: goToLogin,
  });
  ctx.socket.start();
  window.callcenterConsole = ctx; // for the end-to-end tests and for debugging in the browser
  interceptLinks();
  document.body.classList.remove('booting');
  await route();
  document.body.dataset.ready = 'true';
}

boot();
