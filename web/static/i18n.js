// UI strings: one catalogue per language under i18n/, each exporting a plain
// object. Adding a language is adding its file and one line to `languages`.

/** languages lists the catalogues: code (file i18n/<code>.js), native name, writing direction. */
export const languages = [
  { code: 'en', name: 'English', dir: 'ltr' },
  { code: 'fa', name: 'فارسی', dir: 'rtl' },
];

const storageKey = 'mapsim.lang';
const catalogues = new Map();
let current = languages[0];
let plural = new Intl.PluralRules('en');
const listeners = new Set();

async function load(code) {
  if (!catalogues.has(code)) {
    const mod = await import(`/static/i18n/${code}.js`);
    catalogues.set(code, mod.default);
  }
  return catalogues.get(code);
}

/** preferredLanguage is the remembered choice, else the first of navigator.languages we have. */
export function preferredLanguage() {
  let saved = null;
  try { saved = localStorage.getItem(storageKey); } catch { /* storage may be off */ }
  if (saved && languages.some((l) => l.code === saved)) return saved;
  for (const tag of navigator.languages || [navigator.language || 'en']) {
    const base = String(tag).toLowerCase().split('-')[0];
    if (languages.some((l) => l.code === base)) return base;
  }
  return languages[0].code;
}

/**
 * setLanguage loads a catalogue, applies <html lang dir>, remembers the choice
 * (when remember is true) and tells listeners.
 */
export async function setLanguage(code, remember = false) {
  const lang = languages.find((l) => l.code === code) || languages[0];
  await load('en');
  await load(lang.code);
  current = lang;
  plural = new Intl.PluralRules(lang.code);
  document.documentElement.lang = lang.code;
  document.documentElement.dir = lang.dir;
  if (remember) {
    try { localStorage.setItem(storageKey, lang.code); } catch { /* storage may be off */ }
  }
  for (const fn of listeners) fn(lang);
}

/** language is the language in use. */
export function language() {
  return current;
}

/** onLanguage calls fn after every switch; it returns the unsubscriber. */
export function onLanguage(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function lookup(catalogue, key) {
  return catalogue ? catalogue[key] : undefined;
}

/** has says whether the language in use has its own string for key (not the English fallback). */
export function has(key) {
  return lookup(catalogues.get(current.code), key) !== undefined;
}

function template(key, params) {
  let value = lookup(catalogues.get(current.code), key);
  if (value === undefined) value = lookup(catalogues.get('en'), key);
  if (value === undefined) return key;
  if (typeof value === 'object') {
    const form = plural.select(Number(params.count ?? 0));
    value = value[form] ?? value.other;
  }
  return value;
}

function param(params, name) {
  const v = params[name];
  return typeof v === 'number' ? formatNumber(v) : String(v);
}

/**
 * isolate wraps text in U+2068 FIRST STRONG ISOLATE and U+2069 POP
 * DIRECTIONAL ISOLATE: plain text's <bdi>. Inside a sentence (a toast, a
 * tooltip, a notification) the text runs in its own direction, and a bidi
 * control in it (U+202E turning "gpj.exe" into "exe.jpg") ends at the PDI
 * instead of reordering the rest of the sentence.
 */
export function isolate(text) {
  return `\u2068${text}\u2069`;
}

/**
 * t returns the string for key in the language in use (falling back to
 * English, then to the key), with {name} placeholders filled from params.
 * A value that is an object is a plural: it is chosen by params.count.
 * Text values (names, titles, file names) are isolated; numbers are
 * written with the language's digits.
 */
export function t(key, params = {}) {
  return template(key, params).replace(/\{(\w+)\}/g, (match, name) => {
    if (!(name in params)) return match;
    return typeof params[name] === 'number' ? param(params, name) : isolate(param(params, name));
  });
}

/**
 * tNodes is t as DOM: each filled-in value (a username, a group title) is a
 * <bdi>, so a Latin name inside a Persian sentence, or the reverse, keeps
 * its own direction without reordering the sentence around it.
 */
export function tNodes(key, params = {}) {
  const out = document.createDocumentFragment();
  const parts = template(key, params).split(/\{(\w+)\}/);
  parts.forEach((part, i) => {
    if (i % 2 === 0) {
      if (part) out.appendChild(document.createTextNode(part));
    } else if (part in params) {
      const bdi = document.createElement('bdi');
      bdi.textContent = param(params, part);
      out.appendChild(bdi);
    } else {
      out.appendChild(document.createTextNode(`{${part}}`));
    }
  });
  return out;
}

/** formatNumber writes a number with the digits of the language in use. */
export function formatNumber(n) {
  return new Intl.NumberFormat(current.code).format(n);
}

/** list joins names the way the language in use does ("a, b and c"). */
export function list(names) {
  try {
    return new Intl.ListFormat(current.code, { style: 'long', type: 'conjunction' }).format(names);
  } catch {
    return names.join(', ');
  }
}
