// Small DOM helpers. Every piece of user text reaches the page through
// textContent or text nodes made here, never through innerHTML.

const properties = new Set(['value', 'checked', 'disabled', 'hidden', 'selected', 'indeterminate', 'multiple', 'open']);

/**
 * h builds an element. props: `class`, `text` (textContent), `dataset`,
 * `on<event>` listeners, DOM properties such as `hidden`, and any other
 * key as an attribute. Children may be nodes, strings, arrays or nullish.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) setProps(el, props);
  append(el, children);
  return el;
}

/** setProps applies h-style props to an existing element. */
export function setProps(el, props) {
  for (const [key, value] of Object.entries(props)) {
    if (key === 'class') el.className = value ?? '';
    else if (key === 'text') el.textContent = value ?? '';
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (properties.has(key)) el[key] = value;
    else if (value === null || value === undefined || value === false) el.removeAttribute(key);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  return el;
}

/** append adds children: nodes, strings (as text), arrays; nullish is skipped. */
export function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
  return el;
}

/** clear removes every child of el. */
export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** replaceChildren empties el and appends children. */
export function fill(el, ...children) {
  clear(el);
  return append(el, children);
}

/** userText is an element for user-controlled text, direction chosen by its content. */
export function userText(tag, text, props = {}) {
  return h(tag, { dir: 'auto', ...props, text });
}

/** debounce runs fn once calls stop for ms. */
export function debounce(fn, ms) {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** scheduler coalesces many calls in one task into a single run of fn. */
export function scheduler(fn) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    queueMicrotask(() => {
      queued = false;
      fn();
    });
  };
}

const palette = ['#1f5fbf', '#2e7d32', '#7b3fa0', '#ad1457', '#c62828', '#00695c', '#5d4037', '#455a64', '#3949ab', '#8e4b00'];

/**
 * avatar is a round badge with a name's first letter in a colour derived
 * from the name. Invisible characters (a bidi control, a zero-width space)
 * are skipped: the badge shows a letter.
 */
export function avatar(name, size = 'md') {
  const letter = Array.from((name || '').replace(/[\p{C}\p{Z}]/gu, ''))[0] || '?';
  const el = h('span', { class: `avatar avatar-${size}`, 'aria-hidden': 'true', text: letter.toLocaleUpperCase() });
  el.style.backgroundColor = colourFor(name || '');
  return el;
}

/** colourFor picks a stable palette colour for a name (white text on each passes WCAG AA). */
export function colourFor(name) {
  let hash = 0;
  for (const ch of name.toLowerCase()) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return palette[hash % palette.length];
}
