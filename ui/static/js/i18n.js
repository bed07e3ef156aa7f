// Message catalogs: every text the console shows comes from /static/i18n/<lang>.json.

export const LANGUAGES = ['en', 'ru'];
let catalog = {};
let current = 'en';

export function language() {
  return current;
}

export async function loadLanguage(lang) {
  current = LANGUAGES.includes(lang) ? lang : 'en';
  const response = await fetch(`/static/i18n/${current}.json`, { credentials: 'same-origin' });
  catalog = await response.json();
  document.documentElement.lang = current;
}

export function has(key) {
  return Object.prototype.hasOwnProperty.call(catalog, key);
}

export function t(key, params) {
  let text = has(key) ? catalog[key] : key;
  if (params) {
    text = text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
  }
  return text;
}

// Fills the static shells: data-i18n (text), data-i18n-placeholder, data-i18n-title,
// data-i18n-aria-label.
export function translateTree(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) {
    el.setAttribute('placeholder', t(el.dataset.i18nPlaceholder));
  }
  for (const el of root.querySelectorAll('[data-i18n-title]')) {
    el.setAttribute('title', t(el.dataset.i18nTitle));
  }
  for (const el of root.querySelectorAll('[data-i18n-aria-label]')) {
    el.setAttribute('aria-label', t(el.dataset.i18nAriaLabel));
  }
}

export function browserLanguage() {
  const wanted = (navigator.language || 'en').slice(0, 2).toLowerCase();
  return LANGUAGES.includes(wanted) ? wanted : 'en';
}
