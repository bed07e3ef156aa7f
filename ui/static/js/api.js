// fetch wrapper: same-origin cookies, the CSRF header on every state-changing request, JSON.
import { has, t } from './i18n.js';

let csrfToken = '';

export function setCsrf(token) {
  csrfToken = token || '';
}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.error = (body && body.error) || 'http-error';
    this.body = body;
  }

  // The server's messages are English; known error ids have a translation.
  text() {
    const key = `error.${this.error}`;
    return has(key) ? t(key, { message: this.message }) : this.message;
  }
}

export function goToLogin() {
  const next = location.pathname + location.search;
  location.assign(`/login?next=${encodeURIComponent(next)}`);
}

export async function api(method, url, body) {
  const options = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (method !== 'GET' && method !== 'HEAD') options.headers['X-CSRF-Token'] = csrfToken;
  if (body !== undefined) {
    options.headers['Content-Type'] = 'application/json';
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, options);
  } catch (err) {
    throw new ApiError(0, { error: 'network', message: String(err) });
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (response.status === 401 && !url.startsWith('/api/session')) {
    goToLogin();
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== '') search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

// A multipart upload (a document to fax): same cookies, CSRF header and errors as api().
export async function upload(url, formData) {
  let response;
  try {
    response = await fetch(url, { method: 'POST', credentials: 'same-origin', body: formData,
      headers: { Accept: 'application/json', 'X-CSRF-Token': csrfToken } });
  } catch (err) {
    throw new ApiError(0, { error: 'network', message: String(err) });
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}
