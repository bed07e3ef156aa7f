// Login form: POST /api/session, then back to the page that sent us here.
import { api, ApiError } from './api.js';
import { $ } from './dom.js';
import { browserLanguage, loadLanguage, t, translateTree } from './i18n.js';

function nextPage() {
  const next = new URLSearchParams(location.search).get('next') || '/';
  // Only pages of this site: resolve the way the browser will (it drops tabs and newlines,
  // so "/\t/evil.example" is another site) and compare the origin.
  try {
    const url = new URL(next, location.origin);
    if (url.origin === location.origin) return url.pathname + url.search + url.hash;
  } catch {
    // not a URL at all
  }
  return '/';
}

async function boot() {
  await loadLanguage(browserLanguage());
  translateTree(document);
  document.title = t('login.title');
  const form = $('#login-form');
  const error = $('#login-error');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    const button = form.querySelector('button');
    button.disabled = true;
    try {
      await api('POST', '/api/session', { login: form.login.value.trim(), password: form.password.value });
      location.assign(nextPage());
    } catch (err) {
      error.textContent = err instanceof ApiError && err.status === 401 ? t('login.bad_credentials')
        : err instanceof ApiError ? err.text() : String(err);
      button.disabled = false;
    }
  });
  document.body.classList.remove('booting');
}

boot();
