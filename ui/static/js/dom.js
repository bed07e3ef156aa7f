// DOM helpers. Every string becomes a text node: nothing here ever parses HTML, so a caller
// name like "<img onerror=...>" is shown as those characters and never runs.

const SAFE_HREF = /^(\/(?!\/)|#|tel:)/;

export function safeHref(value) {
  const text = String(value ?? '');
  // Browsers drop tabs and newlines and read "\" as "/": "/\t/evil" would leave the site.
  return SAFE_HREF.test(text) && !/[\s\\]/.test(text) ? text : '#';
}

export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = String(value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on')) {
      if (typeof value !== 'function') throw new Error(`handler ${key} must be a function`);
      el.addEventListener(key.slice(2), value);
    } else if (key === 'href' || key === 'src') el.setAttribute(key, safeHref(value));
    else if (key === 'value' || key === 'checked' || key === 'disabled' || key === 'selected') {
      el[key] = value;
    } else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, ...children);
  return el;
}

export function append(el, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

export function replace(el, ...children) {
  clear(el);
  return append(el, ...children);
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}
