// The Settings dialog: one tab a section, the sections listed in
// SECTIONS. A section is { id, label() → text, build({ close }) → Node };
// the account, profile, appearance and notification sections live in
// their own modules and are gathered here, with my devices last.

import { h } from '../dom.js';
import { icon } from '../icons.js';
import { t } from '../i18n.js';
import { openDialog, dialogHead, devicesPanel } from './dialogs.js';
import { accountSections } from './settings-account.js';
import { profileSections } from './settings-profile.js';
import { uid } from './common.js';

/** sections lists every section in the order the dialog shows them. */
export function sections() {
  return [
    ...profileSections,
    ...accountSections,
    { id: 'devices', icon: 'key', label: () => t('e2ee.myDevices'), build: () => devicesPanel() },
  ];
}

/**
 * openSettings opens the Settings dialog at the section named by id (the
 * first one by default). The tabs follow the ARIA tabs pattern: arrow
 * keys move between them, Home and End go to the ends.
 */
export function openSettings(id) {
  const titleId = uid('settings');
  const dialog = h('dialog', { class: 'dialog dialog-settings', 'data-testid': 'settings-dialog', 'aria-labelledby': titleId });
  const all = sections();
  const tabs = h('div', { class: 'settings-tabs', role: 'tablist', 'aria-orientation': 'vertical', 'aria-label': t('settings.title') });
  const panel = h('div', { class: 'settings-panel', role: 'tabpanel', tabindex: '-1' });
  const close = () => dialog.close();
  const buttons = all.map((section) => h('button', {
    type: 'button', role: 'tab', class: 'settings-tab', id: uid(`tab-${section.id}`),
    'data-testid': `settings-tab-${section.id}`, 'aria-selected': 'false', tabindex: '-1',
    onclick: () => select(section.id, false),
  }, icon(section.icon || 'settings'), h('span', { text: section.label() })));
  tabs.append(...buttons);

  function select(sectionId, focusTab) {
    const index = Math.max(0, all.findIndex((s) => s.id === sectionId));
    buttons.forEach((b, i) => {
      b.setAttribute('aria-selected', i === index ? 'true' : 'false');
      b.tabIndex = i === index ? 0 : -1;
    });
    panel.setAttribute('aria-labelledby', buttons[index].id);
    panel.dataset.section = all[index].id;
    panel.replaceChildren(all[index].build({ close }));
    if (focusTab) buttons[index].focus();
  }

  tabs.addEventListener('keydown', (event) => {
    const at = buttons.indexOf(document.activeElement);
    if (at < 0) return;
    const last = buttons.length - 1;
    const next = { ArrowDown: at + 1, ArrowRight: at + 1, ArrowUp: at - 1, ArrowLeft: at - 1, Home: 0, End: last }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    select(all[(next + buttons.length) % buttons.length].id, true);
  });

  dialog.append(dialogHead(titleId, t('settings.title'), dialog), h('div', { class: 'settings-body' }, tabs, panel));
  openDialog(dialog);
  select(id || all[0].id, true);
  return dialog;
}
