// Settings sections about me and this browser: profile (display name and
// picture), appearance (theme and language) and notifications (desktop
// ones in this browser, and each chat's level, kept on the server).

import { h, userText } from '../dom.js';
import { t, languages, language, setLanguage } from '../i18n.js';
import { state } from '../store.js';
import * as store from '../store.js';
import * as controller from '../controller.js';
import * as profiles from '../profiles.js';
import { theme, setTheme, themes } from '../theme.js';
import { notificationState, askPermission, desktopEnabled, setDesktopEnabled } from '../notify.js';
import { uid } from './common.js';
import { openSettings } from './settings.js';

const maxDisplayName = 64;
const avatarOut = 512; // pixels of the square sent; the server keeps 256

/** profileSections: see settings.js for a section's shape. */
export const profileSections = [
  { id: 'profile', icon: 'person', label: () => t('profile.section'), build: profilePanel },
  { id: 'appearance', icon: 'settings', label: () => t('appearance.section'), build: appearancePanel },
  { id: 'notifications', icon: 'bell', label: () => t('notifications.section'), build: notificationsPanel },
];

function status() {
  return h('p', { class: 'settings-status', role: 'status', 'aria-live': 'polite' });
}

function profilePanel() {
  const me = state.me || '';
  const nameId = uid('display-name');
  const input = h('input', {
    id: nameId, type: 'text', class: 'input', dir: 'auto', autocomplete: 'nickname', maxlength: String(maxDisplayName * 2),
    'data-testid': 'display-name', 'aria-describedby': `${nameId}-hint`, value: profiles.profileOf(me)?.display_name || '',
  });
  const saved = status();
  const form = h('form', {
    class: 'settings-form', 'data-testid': 'display-name-form',
    onsubmit: async (event) => {
      event.preventDefault();
      const value = input.value.trim();
      if (Array.from(value).length > maxDisplayName) {
        saved.textContent = t('profile.tooLong');
        return;
      }
      try {
        await profiles.saveDisplayName(value);
        saved.textContent = t('profile.saved');
      } catch (err) {
        saved.textContent = controller.errorText(err);
      }
    },
  },
  h('label', { for: nameId, text: t('profile.displayName') }),
  h('div', { class: 'settings-row' }, input, h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'display-name-save', text: t('action.save') })),
  h('p', { class: 'hint', id: `${nameId}-hint`, text: t('profile.displayNameHint') }),
  h('p', { class: 'hint' }, userText('span', t('profile.username', { name: me }), { 'data-testid': 'profile-username' })),
  saved);

  const preview = h('span', { class: 'settings-avatar', 'data-testid': 'avatar-preview' });
  const showPreview = () => preview.replaceChildren(profiles.personAvatar(me, 'xl'));
  const avatarStatus = status();
  const fileInput = h('input', {
    type: 'file', accept: 'image/png,image/jpeg,image/gif,image/webp', class: 'visually-hidden-file', 'data-testid': 'avatar-file', tabindex: '-1', 'aria-label': t('profile.choose'),
    onchange: async () => {
      const file = fileInput.files?.[0];
      fileInput.value = '';
      if (!file) return;
      let bitmap;
      try { bitmap = await createImageBitmap(file); } catch { avatarStatus.textContent = t('profile.notImage'); return; }
      cropHolder.replaceChildren(cropper(bitmap, async (blob) => {
        cropHolder.replaceChildren();
        try {
          await profiles.saveAvatar(blob);
          avatarStatus.textContent = t('profile.saved');
        } catch (err) {
          avatarStatus.textContent = controller.errorText(err);
        }
      }, () => cropHolder.replaceChildren()));
    },
  });
  const remove = h('button', {
    type: 'button', class: 'btn btn-secondary', 'data-testid': 'avatar-remove', text: t('profile.remove'),
    onclick: async () => {
      try { await profiles.removeAvatar(); avatarStatus.textContent = t('profile.saved'); } catch (err) { avatarStatus.textContent = controller.errorText(err); }
    },
  });
  const cropHolder = h('div', { class: 'crop-holder' });
  const renderAvatar = () => {
    showPreview();
    remove.hidden = !profiles.profileOf(me)?.avatar;
  };
  renderAvatar();
  const off = store.on('profiles', renderAvatar);
  const panel = h('div', { class: 'settings-section', 'data-testid': 'profile-section' },
    form,
    h('div', { class: 'settings-form' },
      h('span', { class: 'settings-label', text: t('profile.avatar') }),
      h('div', { class: 'settings-row' }, preview,
        h('button', { type: 'button', class: 'btn btn-secondary', 'data-testid': 'avatar-choose', text: t('profile.choose'), onclick: () => fileInput.click() }),
        remove, fileInput),
      h('p', { class: 'hint', text: t('profile.avatarHint') }),
      cropHolder, avatarStatus));
  // The section is rebuilt each time its tab opens; stop listening once it is gone.
  const watch = new MutationObserver(() => { if (!panel.isConnected) { off(); watch.disconnect(); } });
  queueMicrotask(() => { if (panel.parentNode) watch.observe(panel.parentNode, { childList: true }); });
  profiles.loadMine().then(() => { if (!input.value && document.activeElement !== input) input.value = profiles.profileOf(me)?.display_name || ''; }, () => {});
  return panel;
}

/**
 * cropper lets the user choose the square of an image to keep: drag (or
 * arrow keys) to move it, a slider to zoom. onDone gets a PNG Blob of
 * avatarOut pixels square.
 */
function cropper(bitmap, onDone, onCancel) {
  const view = 240;
  const canvas = h('canvas', {
    width: String(view), height: String(view), class: 'crop-canvas', tabindex: '0', role: 'img',
    'aria-label': t('profile.crop'), 'data-testid': 'avatar-crop',
  });
  const ctx = canvas.getContext('2d');
  const cover = Math.max(view / bitmap.width, view / bitmap.height);
  let zoom = 1;
  let x = (view - bitmap.width * cover) / 2;
  let y = (view - bitmap.height * cover) / 2;
  const clamp = () => {
    const s = cover * zoom;
    x = Math.min(0, Math.max(view - bitmap.width * s, x));
    y = Math.min(0, Math.max(view - bitmap.height * s, y));
  };
  const draw = () => {
    clamp();
    const s = cover * zoom;
    ctx.clearRect(0, 0, view, view);
    ctx.drawImage(bitmap, x, y, bitmap.width * s, bitmap.height * s);
  };
  let drag = null;
  canvas.addEventListener('pointerdown', (e) => { drag = { px: e.clientX, py: e.clientY, x, y }; canvas.setPointerCapture(e.pointerId); });
  canvas.addEventListener('pointermove', (e) => {
    if (!drag) return;
    x = drag.x + (e.clientX - drag.px);
    y = drag.y + (e.clientY - drag.py);
    draw();
  });
  canvas.addEventListener('pointerup', () => { drag = null; });
  canvas.addEventListener('keydown', (e) => {
    const step = e.shiftKey ? 20 : 5;
    const move = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] }[e.key];
    if (!move) return;
    e.preventDefault();
    x += move[0];
    y += move[1];
    draw();
  });
  const zoomId = uid('zoom');
  const slider = h('input', {
    id: zoomId, type: 'range', min: '1', max: '4', step: '0.01', value: '1', 'data-testid': 'avatar-zoom',
    oninput: () => {
      // Zoom about the centre of the view.
      const before = cover * zoom;
      zoom = Number(slider.value) || 1;
      const after = cover * zoom;
      x = view / 2 - (view / 2 - x) * (after / before);
      y = view / 2 - (view / 2 - y) * (after / before);
      draw();
    },
  });
  draw();
  const use = h('button', {
    type: 'button', class: 'btn btn-primary', 'data-testid': 'avatar-use', text: t('profile.useThis'),
    onclick: () => {
      const out = document.createElement('canvas');
      out.width = avatarOut;
      out.height = avatarOut;
      const k = avatarOut / view;
      const s = cover * zoom * k;
      out.getContext('2d').drawImage(bitmap, x * k, y * k, bitmap.width * s, bitmap.height * s);
      use.disabled = true;
      out.toBlob((blob) => { if (blob) onDone(blob); else use.disabled = false; }, 'image/png');
    },
  });
  return h('div', { class: 'cropper' },
    h('p', { class: 'hint', text: t('profile.crop') }),
    canvas,
    h('div', { class: 'settings-row' }, h('label', { for: zoomId, text: t('profile.zoom') }), slider),
    h('div', { class: 'settings-row' }, use, h('button', { type: 'button', class: 'btn btn-secondary', text: t('action.cancel'), onclick: onCancel })));
}

// languageChoice is the language select of the Appearance section. The
// switch rebuilds the screen in the new language; the dialog, which lives
// outside it, is closed and opened again at this section, translated.
function languageChoice(close) {
  const id = uid('lang');
  const select = h('select', {
    id, 'data-testid': 'lang', class: 'input lang-select',
    onchange: async () => {
      await setLanguage(select.value, true);
      close();
      openSettings('appearance');
    },
  }, languages.map((l) => h('option', { value: l.code, lang: l.code, selected: l.code === language().code, text: l.name })));
  return h('div', { class: 'settings-form' }, h('label', { for: id, text: t('settings.language') }), select);
}

function appearancePanel({ close }) {
  const name = uid('theme');
  const group = h('fieldset', { class: 'settings-form theme-choice', 'data-testid': 'theme' },
    h('legend', { text: t('appearance.theme') }),
    themes.map((value) => h('label', { class: 'radio-row' },
      h('input', {
        type: 'radio', name, value, checked: theme() === value, 'data-testid': `theme-${value}`,
        onchange: () => setTheme(value),
      }),
      h('span', { text: t(`appearance.${value}`) }))));
  return h('div', { class: 'settings-section', 'data-testid': 'appearance-section' }, group, languageChoice(close));
}

/** notifyPicker is a select of a chat's notification level, saved on change. */
export function notifyPicker(chat, { label, labelClass, ...props } = {}) {
  const id = uid('notify');
  const select = h('select', {
    id, class: 'input notify-select', 'data-testid': 'notify-level', 'data-chat': chat.name,
    onchange: async () => {
      const was = chat.notify || 'all';
      try {
        await controller.setNotify(chat.name, select.value);
      } catch (err) {
        select.value = was;
        controller.toast(controller.errorText(err));
      }
    },
  }, ['all', 'mentions', 'muted'].map((level) => h('option', { value: level, selected: (chat.notify || 'all') === level, text: t(`notifications.${level}`) })));
  return h('span', { class: 'notify-picker', ...props },
    h('label', { for: id, class: labelClass || 'sr-only', text: label || t('notifications.level') }), select);
}

function notificationsPanel() {
  const desktopId = uid('desktop');
  const permission = h('div', { class: 'settings-row' });
  const renderPermission = () => {
    const st = notificationState();
    permission.replaceChildren(
      st === 'default' ? h('button', {
        type: 'button', class: 'btn btn-secondary', 'data-testid': 'notifications-allow', text: t('notifications.allow'),
        onclick: async () => { await askPermission(); renderPermission(); },
      }) : null,
      st === 'denied' ? h('p', { class: 'hint', text: t('notifications.denied') }) : null,
      st === 'unsupported' ? h('p', { class: 'hint', text: t('notifications.unsupported') }) : null);
  };
  renderPermission();
  const desktop = h('div', { class: 'settings-form' },
    h('label', { class: 'check-row', for: desktopId },
      h('input', {
        id: desktopId, type: 'checkbox', checked: desktopEnabled(), 'data-testid': 'desktop-notifications',
        onchange: (e) => setDesktopEnabled(e.target.checked),
      }),
      h('span', { text: t('notifications.desktop') })),
    h('p', { class: 'hint', text: t('notifications.desktopHint') }),
    permission);
  const rows = store.sortedChats().map((chat) => h('li', { class: 'notify-row' },
    userText('span', controller.chatLabel(chat), { class: 'notify-chat' }),
    notifyPicker(chat, { label: t('notifications.level') + ': ' + controller.chatLabel(chat) })));
  return h('div', { class: 'settings-section', 'data-testid': 'notifications-section' },
    desktop,
    h('div', { class: 'settings-form' },
      h('span', { class: 'settings-label', text: t('notifications.perChat') }),
      h('p', { class: 'hint', text: t('notifications.perChatHint') }),
      h('ul', { class: 'notify-list', role: 'list' }, rows)));
}
