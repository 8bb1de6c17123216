// The composer's formatting toolbar and shortcuts: each button or key
// writes the Markdown of formatting.js around the selection (or markers at
// the caret) as one undoable edit. The toolbar is one tab stop with arrow
// keys inside it (mirrored right to left); colour and highlight open a
// small palette menu.

import { h } from '../dom.js';
import { icon } from '../icons.js';
import { t } from '../i18n.js';
import { textColors, highlightColors } from '../markdown.js';
import * as fmt from '../formatting.js';
import { uid } from './common.js';

const mac = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);

// actions: id, icon (or a glyph), the edit, and the shortcut (a key with
// Mod, Shift and Alt; the key is the letter on the US layout, so that a
// Persian layout's Ctrl+B is bold too).
const actions = [
  { id: 'bold', icon: 'bold', keys: 'Mod+B', run: (v, s, e) => fmt.toggleInline(v, s, e, 'bold') },
  { id: 'italic', icon: 'italic', keys: 'Mod+I', run: (v, s, e) => fmt.toggleInline(v, s, e, 'italic') },
  { id: 'underline', icon: 'underline', keys: 'Mod+U', run: (v, s, e) => fmt.toggleInline(v, s, e, 'underline') },
  { id: 'strike', icon: 'strike', keys: 'Mod+Shift+X', run: (v, s, e) => fmt.toggleInline(v, s, e, 'strike') },
  { id: 'code', icon: 'code', keys: 'Mod+E', run: (v, s, e) => fmt.toggleInline(v, s, e, 'code') },
  { id: 'link', icon: 'link', keys: 'Mod+K', run: fmt.link },
  { id: 'heading', icon: 'heading', keys: 'Mod+Alt+1', run: (v, s, e) => fmt.toggleLines(v, s, e, 'heading1') },
  { id: 'superscript', icon: 'superscript', keys: 'Mod+.', run: (v, s, e) => fmt.toggleInline(v, s, e, 'superscript') },
  { id: 'subscript', icon: 'subscript', keys: 'Mod+,', run: (v, s, e) => fmt.toggleInline(v, s, e, 'subscript') },
  { id: 'color', icon: 'textColor', palette: 'color' },
  { id: 'highlight', icon: 'highlight', palette: 'highlight' },
  { id: 'quote', icon: 'quote', keys: 'Mod+Shift+9', run: (v, s, e) => fmt.toggleLines(v, s, e, 'quote') },
  { id: 'bullets', icon: 'bullets', keys: 'Mod+Shift+8', run: (v, s, e) => fmt.toggleLines(v, s, e, 'bullets') },
  { id: 'numbers', icon: 'numbers', keys: 'Mod+Shift+7', run: (v, s, e) => fmt.toggleLines(v, s, e, 'numbers') },
];

// toggles are the buttons that show, with aria-pressed, whether the caret
// is inside their format (formatting.activeFormats).
const toggles = new Set(['bold', 'italic', 'underline', 'strike', 'code', 'heading', 'superscript', 'subscript', 'quote', 'bullets', 'numbers']);

// Headings 2 and 3 have shortcuts only.
const extraKeys = [
  { keys: 'Mod+Alt+2', run: (v, s, e) => fmt.toggleLines(v, s, e, 'heading2') },
  { keys: 'Mod+Alt+3', run: (v, s, e) => fmt.toggleLines(v, s, e, 'heading3') },
];

// keyName is the key an event names, on the US layout when the layout's
// own key is not a Latin letter, digit or the punctuation used here.
function keyName(event) {
  if (/^[a-z0-9.,]$/i.test(event.key)) return event.key.toUpperCase();
  const m = /^(?:Key|Digit)([A-Z0-9])$/.exec(event.code || '');
  if (m) return m[1];
  return { Period: '.', Comma: ',' }[event.code] || '';
}

function matches(keys, event) {
  const parts = keys.split('+');
  const key = parts.pop();
  const mod = mac ? event.metaKey : event.ctrlKey;
  if (!mod || (mac && event.ctrlKey)) return false;
  if (parts.includes('Shift') !== event.shiftKey || parts.includes('Alt') !== event.altKey) return false;
  // Shift+digit types a symbol; the code says which digit it was.
  const name = event.shiftKey && /^Digit\d$/.test(event.code || '') ? event.code.slice(5) : keyName(event);
  return name === key;
}

function shortcutText(keys) {
  return keys.replace('Mod', mac ? '⌘' : 'Ctrl').replace('Alt', mac ? '⌥' : 'Alt');
}

/**
 * applyEdit replaces the textarea's text with an edit's answer as one
 * undoable change (only the part that differs), then selects what the edit
 * selected.
 */
export function applyEdit(textarea, out) {
  const old = textarea.value;
  let a = 0;
  while (a < old.length && a < out.value.length && old[a] === out.value[a]) a++;
  let b = 0;
  while (b < old.length - a && b < out.value.length - a && old[old.length - 1 - b] === out.value[out.value.length - 1 - b]) b++;
  textarea.focus();
  textarea.setSelectionRange(a, old.length - b);
  const replacement = out.value.slice(a, out.value.length - b);
  // execCommand keeps the browser's undo history; where it is gone, the
  // value is set (and the edit is not undoable).
  let done = false;
  try {
    done = replacement ? document.execCommand('insertText', false, replacement) : document.execCommand('delete');
  } catch { /* not supported */ }
  if (!done || textarea.value !== out.value) {
    textarea.value = out.value;
    textarea.dispatchEvent(new Event('input'));
  }
  textarea.setSelectionRange(out.start, out.end);
}

/** addShortcuts makes the formatting shortcuts work in textarea (the composer, an edit). */
export function addShortcuts(textarea) {
  textarea.addEventListener('keydown', (event) => {
    if (event.isComposing) return;
    for (const action of [...actions, ...extraKeys]) {
      if (action.keys && action.run && matches(action.keys, event)) {
        event.preventDefault();
        applyEdit(textarea, action.run(textarea.value, textarea.selectionStart, textarea.selectionEnd));
        return;
      }
    }
  });
}

/**
 * mountFormatBar builds the toolbar for textarea and its show/hide toggle,
 * and handles the shortcuts on textarea. It returns { toolbar, toggle }.
 */
export function mountFormatBar(textarea) {
  const buttons = [];
  const run = (edit) => {
    applyEdit(textarea, edit(textarea.value, textarea.selectionStart, textarea.selectionEnd));
    updatePressed();
  };

  const toolbar = h('div', { id: uid('format-bar'), class: 'format-bar', role: 'toolbar', 'data-testid': 'format-bar', 'aria-label': t('format.toolbar'), 'aria-controls': textarea.id });
  let palette = null;
  for (const action of actions) {
    const label = t(`format.${action.id}`);
    const title = action.keys ? `${label} (${shortcutText(action.keys)})` : label;
    const b = h('button', {
      type: 'button', class: `format-btn fb-${action.id}`, 'data-testid': `format-${action.id}`, 'data-format': action.id,
      'aria-label': label, title, tabindex: buttons.length ? '-1' : '0',
      'aria-keyshortcuts': action.keys ? action.keys.replace('Mod', mac ? 'Meta' : 'Control') : null,
      'aria-haspopup': action.palette ? 'menu' : null, 'aria-expanded': action.palette ? 'false' : null,
      'aria-pressed': toggles.has(action.id) ? 'false' : null,
    }, icon(action.icon, ['bullets', 'numbers', 'quote'].includes(action.id) ? 'flip-rtl' : ''));
    // mousedown would move focus (and the selection) out of the textarea.
    b.addEventListener('mousedown', (event) => event.preventDefault());
    b.addEventListener('click', () => {
      if (action.palette) openPalette(action.palette, b);
      else run(action.run);
    });
    buttons.push(b);
    toolbar.appendChild(b);
  }

  toolbar.addEventListener('keydown', (event) => {
    const i = buttons.indexOf(document.activeElement);
    if (i < 0) return;
    const rtl = getComputedStyle(toolbar).direction === 'rtl';
    const next = {
      ArrowRight: rtl ? i - 1 : i + 1, ArrowLeft: rtl ? i + 1 : i - 1, Home: 0, End: buttons.length - 1,
    }[event.key];
    if (next === undefined) {
      if (event.key === 'Escape') { event.preventDefault(); textarea.focus(); }
      return;
    }
    event.preventDefault();
    focusButton((next + buttons.length) % buttons.length);
  });

  function focusButton(i) {
    for (const [n, b] of buttons.entries()) b.tabIndex = n === i ? 0 : -1;
    buttons[i].focus();
  }

  // ---- palette ----
  function openPalette(kind, opener) {
    if (palette) { const same = palette.kind === kind; closePalette(false); if (same) return; }
    const names = kind === 'color' ? textColors : highlightColors;
    const items = [...names.map((name) => ({ name, label: t(`format.${kind}.${name}`) })), { name: null, label: t('format.noColor') }];
    const menu = h('div', { class: 'format-palette', role: 'menu', 'data-testid': `palette-${kind}`, 'aria-label': t(`format.${kind}`) });
    const entries = items.map((item, n) => {
      const b = h('button', {
        type: 'button', role: 'menuitem', tabindex: n ? '-1' : '0', class: 'palette-item', 'data-color': item.name || 'none',
      }, h('span', { class: `swatch ${item.name ? `md-${kind}-${item.name}` : 'swatch-none'}`, 'aria-hidden': 'true', text: 'A' }), h('span', { text: item.label }));
      b.addEventListener('mousedown', (event) => event.preventDefault());
      b.addEventListener('click', () => {
        closePalette(false);
        run((v, s, e) => fmt.toggleColor(v, s, e, kind, item.name));
      });
      menu.appendChild(b);
      return b;
    });
    menu.addEventListener('keydown', (event) => {
      const i = entries.indexOf(document.activeElement);
      const rtl = getComputedStyle(menu).direction === 'rtl';
      const step = { ArrowDown: 1, ArrowUp: -1, ArrowRight: rtl ? -1 : 1, ArrowLeft: rtl ? 1 : -1 }[event.key];
      if (event.key === 'Escape' || event.key === 'Tab') {
        event.preventDefault();
        event.stopPropagation();
        closePalette(true);
      } else if (step && i >= 0) {
        event.preventDefault();
        entries[(i + step + entries.length) % entries.length].focus();
      } else if (event.key === 'Home' || event.key === 'End') {
        event.preventDefault();
        entries[event.key === 'Home' ? 0 : entries.length - 1].focus();
      }
    });
    const outside = (event) => { if (!menu.contains(event.target) && !opener.contains(event.target)) closePalette(false); };
    document.addEventListener('mousedown', outside, true);
    palette = { kind, menu, opener, outside };
    opener.setAttribute('aria-expanded', 'true');
    const form = toolbar.parentNode;
    form.appendChild(menu);
    // Above its button (which may have scrolled with the toolbar), inside the composer.
    const box = form.getBoundingClientRect();
    const at = opener.getBoundingClientRect();
    const start = getComputedStyle(form).direction === 'rtl' ? box.right - at.right : at.left - box.left;
    menu.style.insetInlineStart = `${Math.max(0, Math.min(start, box.width - menu.offsetWidth))}px`;
    entries[0].focus();
  }

  function closePalette(refocus) {
    if (!palette) return;
    const { menu, opener, outside } = palette;
    palette = null;
    document.removeEventListener('mousedown', outside, true);
    opener.setAttribute('aria-expanded', 'false');
    menu.remove();
    if (refocus) opener.focus();
  }

  addShortcuts(textarea);

  // ---- pressed ----
  // A toggle is pressed while the caret or selection is inside its format.
  function updatePressed() {
    const active = fmt.activeFormats(textarea.value, textarea.selectionStart, textarea.selectionEnd);
    for (const b of buttons) {
      if (!toggles.has(b.dataset.format)) continue;
      const pressed = String(active.has(b.dataset.format));
      if (b.getAttribute('aria-pressed') !== pressed) b.setAttribute('aria-pressed', pressed);
    }
  }
  for (const type of ['selectionchange', 'input', 'keyup', 'mouseup', 'focus']) textarea.addEventListener(type, updatePressed);
  updatePressed();

  // ---- show and hide ----
  // Shown by default where there is room; a phone shows it on demand. The
  // choice is remembered on this browser.
  const remembered = localStorage.getItem('mapsim.formatBar');
  let shown = remembered ? remembered === 'shown' : window.matchMedia('(min-width: 761px)').matches;
  const toggle = h('button', {
    type: 'button', class: 'icon-btn format-toggle', 'data-testid': 'format-toggle', 'aria-label': t('format.show'), title: t('format.show'),
    'aria-controls': toolbar.id, 'aria-expanded': String(shown),
  }, icon('textFormat'));
  toggle.addEventListener('click', () => {
    shown = !shown;
    localStorage.setItem('mapsim.formatBar', shown ? 'shown' : 'hidden');
    show();
    if (shown) focusButton(Math.max(0, buttons.findIndex((b) => b.tabIndex === 0)));
  });
  function show() {
    toolbar.hidden = !shown;
    toggle.setAttribute('aria-expanded', String(shown));
    if (!shown) closePalette(false);
  }
  show();

  return { toolbar, toggle, close: () => closePalette(false) };
}
