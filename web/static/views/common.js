// Pieces shared by the sign-in screen and the main screen.

import { h } from '../dom.js';
import { icon } from '../icons.js';
import { languages, language, setLanguage, t } from '../i18n.js';

let ids = 0;

/** uid returns a unique id for label/control pairs. */
export function uid(prefix) {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** languagePicker is the labelled select[data-testid=lang]; switching applies at once and is remembered. */
export function languagePicker() {
  const id = uid('lang');
  const select = h('select', {
    id, 'data-testid': 'lang', class: 'lang-select',
    onchange: () => setLanguage(select.value, true),
  }, languages.map((l) => h('option', { value: l.code, lang: l.code, selected: l.code === language().code, text: l.name })));
  return h('div', { class: 'lang-picker' },
    h('label', { for: id, class: 'lang-label' }, icon('language'), h('span', { text: t('settings.language') })),
    select);
}

/** iconButton is a button that shows only an icon; label names it for everyone. */
export function iconButton(name, label, props = {}) {
  return h('button', { type: 'button', class: 'icon-btn', 'aria-label': label, title: label, ...props }, icon(name));
}
