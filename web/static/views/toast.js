// Short notes at the bottom of the screen (errors, "you left the group").

import { h } from '../dom.js';
import * as store from '../store.js';
import { iconButton } from './common.js';
import { t } from '../i18n.js';

/** mountToasts returns the toast region; it listens until off() is called. */
export function mountToasts() {
  const region = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
  const off = store.on('toast', ({ text, kind }) => {
    const close = iconButton('close', t('action.dismiss'), { onclick: () => item.remove() });
    const item = h('div', { class: `toast toast-${kind}`, 'data-testid': 'toast' }, h('span', { dir: 'auto', text }), close);
    region.appendChild(item);
    while (region.children.length > 3) region.firstChild.remove();
    setTimeout(() => item.remove(), kind === 'error' ? 8000 : 5000);
  });
  return { element: region, off };
}
