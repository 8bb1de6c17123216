// Modal dialogs on <dialog>: new direct chat / new group with user search,
// confirmations, the image viewer, group details, a contact's safety
// number and my devices. Escape closes each.

import { h, debounce, userText } from '../dom.js';
import { personAvatar, personName } from '../profiles.js';
import { icon } from '../icons.js';
import { t } from '../i18n.js';
import { state, on } from '../store.js';
import * as controller from '../controller.js';
import * as files from '../files.js';
import * as secure from '../secure.js';
import { shortWhen } from '../format.js';
import { iconButton, uid } from './common.js';

export function openDialog(dialog, { onClose } = {}) {
  const opener = document.activeElement;
  document.body.appendChild(dialog);
  dialog.addEventListener('close', () => {
    dialog.remove();
    onClose?.();
    if (opener && opener.isConnected) opener.focus();
  });
  // Escape always closes, even from a search box (where Chromium would
  // spend the first Escape on clearing the text).
  dialog.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && !event.defaultPrevented) {
      event.preventDefault();
      dialog.close();
    }
  });
  // A click on the backdrop (outside the dialog's box) closes it.
  dialog.addEventListener('mousedown', (event) => {
    if (event.target !== dialog) return;
    const r = dialog.getBoundingClientRect();
    const inside = event.clientX >= r.left && event.clientX <= r.right && event.clientY >= r.top && event.clientY <= r.bottom;
    if (!inside) dialog.close();
  });
  dialog.showModal();
  return dialog;
}

export function dialogHead(titleId, title, dialog) {
  return h('header', { class: 'dialog-head' },
    h('h2', { id: titleId, text: title }),
    iconButton('close', t('action.close'), { onclick: () => dialog.close() }));
}

/** confirmDialog asks a yes/no question; it resolves to true when confirmed. */
export function confirmDialog({ title, message, confirm, danger = false }) {
  return new Promise((resolve) => {
    const titleId = uid('confirm');
    let answer = false;
    const dialog = h('dialog', { class: 'dialog dialog-small', 'aria-labelledby': titleId });
    const yes = h('button', {
      type: 'button', class: `btn ${danger ? 'btn-danger' : 'btn-primary'}`, text: confirm,
      onclick: () => { answer = true; dialog.close(); },
    });
    dialog.append(
      h('h2', { id: titleId, text: title }),
      message ? h('p', { class: 'dialog-text', dir: 'auto', text: message }) : null,
      h('div', { class: 'dialog-actions' },
        h('button', { type: 'button', class: 'btn btn-secondary', text: t('action.cancel'), onclick: () => dialog.close() }),
        yes));
    openDialog(dialog, { onClose: () => resolve(answer) });
    yes.focus();
  });
}

function userRow(user, { selected, onClick }) {
  return h('li', {},
    h('button', {
      type: 'button', class: 'user-result', 'data-testid': 'user-result', 'data-username': user.username,
      'aria-pressed': selected === undefined ? null : String(selected), onclick: onClick,
    },
    h('span', { class: 'avatar-wrap' }, personAvatar(user.username, 'sm'), h('span', { class: `presence-dot ${user.online ? 'on' : ''}`, 'aria-hidden': 'true' })),
    personName(user.username, { class: 'ur-name' }),
    h('span', { class: 'ur-state', text: user.online ? t('presence.online') : '' }),
    selected === undefined ? null : h('span', { class: 'ur-check', 'aria-hidden': 'true' }, icon('check'))));
}

/** userPicker is a search box with results; multi picks several users. */
function userPicker({ multi, onPick, exclude = [] }) {
  const searchId = uid('search');
  const results = h('ul', { class: 'user-results', role: 'list', 'aria-live': 'polite' });
  const chips = h('ul', { class: 'chips', role: 'list', 'aria-label': t('dialog.selected') });
  const status = h('p', { class: 'hint search-status' });
  const picked = new Map();
  const skip = new Set([state.me, ...exclude].map((n) => (n || '').toLowerCase()));
  const input = h('input', {
    id: searchId, type: 'search', class: 'input', 'data-testid': 'user-search', autocomplete: 'off',
    autocapitalize: 'none', spellcheck: 'false', dir: 'auto', placeholder: t('dialog.searchPlaceholder'),
  });
  let last = [];
  let seq = 0;

  const renderChips = () => {
    chips.replaceChildren(...[...picked.keys()].map((name) => h('li', { class: 'chip' },
      userText('span', name),
      iconButton('close', t('dialog.unselect', { name }), { class: 'icon-btn chip-x', onclick: () => { picked.delete(name); renderChips(); renderResults(); } }))));
    chips.hidden = picked.size === 0;
  };
  const renderResults = () => {
    results.replaceChildren(...last.map((user) => userRow(user, {
      selected: multi ? picked.has(user.username) : undefined,
      onClick: () => {
        if (!multi) return onPick(user.username);
        if (picked.has(user.username)) picked.delete(user.username);
        else picked.set(user.username, user);
        renderChips();
        renderResults();
        input.focus();
      },
    })));
  };
  const search = debounce(async () => {
    const q = input.value.trim();
    const mine = ++seq;
    try {
      const users = await controller.searchUsers(q);
      if (mine !== seq) return;
      last = users.filter((u) => !skip.has(u.username.toLowerCase()));
      status.textContent = last.length ? '' : t('dialog.noUsers');
      renderResults();
    } catch (err) {
      if (mine === seq) status.textContent = controller.errorText(err);
    }
  }, 150);
  input.addEventListener('input', search);
  input.addEventListener('keydown', (event) => {
    if (event.key === 'ArrowDown') {
      results.querySelector('button')?.focus();
      event.preventDefault();
    }
  });
  results.addEventListener('keydown', (event) => {
    if (event.key !== 'ArrowDown' && event.key !== 'ArrowUp') return;
    const buttons = [...results.querySelectorAll('button')];
    const i = buttons.indexOf(document.activeElement);
    const next = event.key === 'ArrowDown' ? buttons[i + 1] : (i > 0 ? buttons[i - 1] : input);
    next?.focus();
    event.preventDefault();
  });
  renderChips();
  search();
  return {
    element: h('div', { class: 'picker' },
      h('label', { for: searchId, class: 'field-label', text: t('dialog.searchLabel') }),
      h('div', { class: 'search-box' }, icon('search', 'filter-icon'), input),
      chips, results, status),
    input,
    picked: () => [...picked.keys()],
  };
}

/** openChatDialog starts a direct chat or a group. */
export function openChatDialog(kind) {
  const titleId = uid('new-chat');
  const dialog = h('dialog', { class: 'dialog', 'data-testid': 'chat-dialog', 'aria-labelledby': titleId });
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const fail = (err) => { error.textContent = controller.errorText(err); error.hidden = false; };
  const isGroup = kind === 'group';
  let busy = false;

  const picker = userPicker({
    multi: isGroup,
    onPick: async (username) => {
      if (busy) return;
      busy = true;
      try {
        await controller.createChat('direct', [username]);
        dialog.close();
      } catch (err) { fail(err); } finally { busy = false; }
    },
  });

  const body = [dialogHead(titleId, isGroup ? t('dialog.newGroup') : t('dialog.newDirect'), dialog)];
  let titleInput = null;
  if (isGroup) {
    const id = uid('group-title');
    titleInput = h('input', { id, class: 'input', 'data-testid': 'group-title', maxlength: '100', dir: 'auto', autocomplete: 'off', placeholder: t('dialog.groupTitlePlaceholder') });
    body.push(h('div', { class: 'field' }, h('label', { for: id, class: 'field-label', text: t('dialog.groupTitle') }), titleInput));
  } else {
    body.push(h('p', { class: 'dialog-text', text: t('dialog.directHelp') }));
  }
  body.push(picker.element, error);
  if (isGroup) {
    body.push(h('div', { class: 'dialog-actions' },
      h('button', { type: 'button', class: 'btn btn-secondary', text: t('action.cancel'), onclick: () => dialog.close() }),
      h('button', {
        type: 'button', class: 'btn btn-primary', 'data-testid': 'create-chat', text: t('dialog.create'),
        onclick: async () => {
          const title = titleInput.value.trim();
          if (!title) { error.textContent = t('dialog.needTitle'); error.hidden = false; titleInput.focus(); return; }
          if (busy) return;
          busy = true;
          try {
            await controller.createChat('group', picker.picked(), title);
            dialog.close();
          } catch (err) { fail(err); } finally { busy = false; }
        },
      })));
  }
  dialog.append(...body);
  openDialog(dialog);
  (titleInput || picker.input).focus();
}

/** openImage shows a picture full size with a download link. */
export function openImage(file) {
  const titleId = uid('image');
  const dialog = h('dialog', { class: 'dialog dialog-image', 'aria-labelledby': titleId });
  const img = h('img', { class: 'lightbox-img', alt: file.name || '' });
  if (file.width && file.height) { img.width = file.width; img.height = file.height; }
  const save = h('button', { type: 'button', class: 'btn btn-secondary' }, icon('download'), h('span', { text: t('message.download') }));
  save.addEventListener('click', () => files.download(file).catch((err) => controller.toast(controller.errorText(err))));
  dialog.append(
    h('header', { class: 'dialog-head' },
      userText('h2', file.name || t('message.file'), { id: titleId }),
      h('div', { class: 'dialog-head-actions' }, save, iconButton('close', t('action.close'), { onclick: () => dialog.close() }))),
    h('div', { class: 'lightbox' }, img));
  openDialog(dialog);
  files.fileURL(file).then((url) => { img.src = url; }, (err) => controller.toast(controller.errorText(err)));
}

// memberSafety is a group member's verified mark and safety-number button.
function memberSafety(username) {
  const mark = h('span', { class: 'verified-mark', 'data-testid': 'member-verified', hidden: true }, icon('check', 'note-icon'), h('span', { class: 'sr-only', text: t('e2ee.verified') }));
  secure.isVerified(username).then((yes) => { mark.hidden = !yes; }, () => {});
  return h('span', { class: 'member-safety' }, mark,
    iconButton('lock', t('e2ee.safetyTitle', { name: username }), { 'data-testid': 'member-safety-number', onclick: () => openSafetyNumber(username) }));
}

/** openGroupInfo shows a group's members; owners rename it and add or remove people. */
export function openGroupInfo(name) {
  const chat = state.chats.get(name);
  if (!chat) return;
  const owner = chat.role === 'owner';
  const titleId = uid('group-info');
  const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': titleId });
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const fail = (err) => { error.textContent = controller.errorText(err); error.hidden = false; };
  const members = h('ul', { class: 'member-list', role: 'list' });

  const renderMembers = () => {
    const current = state.chats.get(name);
    if (!current) { dialog.close(); return; }
    members.replaceChildren(...(current.members || []).map((m) => h('li', { class: 'member' },
      h('span', { class: 'avatar-wrap' }, personAvatar(m.username, 'sm'), h('span', { class: `presence-dot ${state.online.has(m.username) ? 'on' : ''}`, 'aria-hidden': 'true' })),
      personName(m.username, { class: 'ur-name' }),
      h('span', { class: 'member-role', text: m.role === 'owner' ? t('group.owner') : '' }),
      current.e2ee && m.username !== state.me ? memberSafety(m.username) : null,
      owner && m.username !== state.me
        ? iconButton('close', t('group.remove', { name: m.username }), {
          onclick: async () => {
            try { await controller.removeMember(name, m.username); } catch (err) { fail(err); }
          },
        })
        : null)));
  };

  const parts = [dialogHead(titleId, t('group.info'), dialog)];
  if (owner) {
    const id = uid('rename');
    const input = h('input', { id, class: 'input', value: chat.title || '', maxlength: '100', dir: 'auto' });
    parts.push(h('form', {
      class: 'field inline-form',
      onsubmit: async (event) => {
        event.preventDefault();
        try { await controller.renameChat(name, input.value.trim()); controller.toast(t('group.renamed'), 'info'); } catch (err) { fail(err); }
      },
    }, h('label', { for: id, class: 'field-label', text: t('dialog.groupTitle') }),
    h('div', { class: 'inline-row' }, input, h('button', { type: 'submit', class: 'btn btn-secondary', text: t('action.save') }))));
  } else {
    parts.push(userText('p', chat.title || '', { class: 'dialog-text group-name' }));
  }
  parts.push(h('h3', { class: 'section-title', text: t('chat.members', { count: (chat.members || []).length }) }), members);
  if (owner) {
    const picker = userPicker({ multi: true, exclude: (chat.members || []).map((m) => m.username) });
    parts.push(h('h3', { class: 'section-title', text: t('group.add') }), picker.element,
      h('div', { class: 'dialog-actions' }, h('button', {
        type: 'button', class: 'btn btn-primary', text: t('group.addButton'),
        onclick: async () => {
          if (!picker.picked().length) return;
          try { await controller.addMembers(name, picker.picked()); dialog.close(); } catch (err) { fail(err); }
        },
      })));
  }
  parts.push(error);
  dialog.append(...parts);
  renderMembers();
  const off = on('chats', renderMembers);
  openDialog(dialog, { onClose: off });
}

/**
 * openSafetyNumber shows the safety number of my identity key and a
 * contact's, to compare out of band, and marks the contact verified (or
 * not) when the user says so.
 */
export function openSafetyNumber(username) {
  const titleId = uid('safety');
  const dialog = h('dialog', { class: 'dialog dialog-small', 'data-testid': 'safety-dialog', 'aria-labelledby': titleId });
  const number = h('p', { class: 'safety-number', 'data-testid': 'safety-number', dir: 'ltr', 'aria-busy': 'true' });
  const state = h('p', { class: 'dialog-text', 'data-testid': 'safety-state' });
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const actions = h('div', { class: 'dialog-actions' });
  const render = async () => {
    let info;
    try {
      info = await secure.safety(username);
    } catch (err) {
      error.textContent = controller.errorText(err);
      error.hidden = false;
      return;
    }
    number.removeAttribute('aria-busy');
    if (!info.number) {
      number.textContent = '';
      state.textContent = t('e2ee.noKeys', { name: username });
      actions.replaceChildren();
      return;
    }
    // Twelve groups of five, three to a line, as people read them aloud.
    const groups = info.number.split(' ');
    number.replaceChildren(...[0, 4, 8].map((i) => h('span', { class: 'safety-line', text: groups.slice(i, i + 4).join(' ') })));
    state.textContent = info.changed ? t('e2ee.keyChangedTitle', { name: username })
      : info.verified ? t('e2ee.verifiedText', { name: username }) : t('e2ee.compareText', { name: username });
    const toggle = info.verified
      ? h('button', { type: 'button', class: 'btn btn-secondary', 'data-testid': 'unmark-verified', text: t('e2ee.unmarkVerified') })
      : h('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'mark-verified', text: t('e2ee.markVerified'), disabled: info.changed });
    toggle.addEventListener('click', async () => {
      try {
        await secure.setVerified(username, !info.verified);
        render();
      } catch (err) {
        error.textContent = controller.errorText(err);
        error.hidden = false;
      }
    });
    actions.replaceChildren(h('button', { type: 'button', class: 'btn btn-secondary', text: t('action.close'), onclick: () => dialog.close() }), toggle);
  };
  dialog.append(dialogHead(titleId, t('e2ee.safetyTitle', { name: username }), dialog),
    h('p', { class: 'dialog-text', text: t('e2ee.safetyText', { name: username }) }), number, state, error, actions);
  openDialog(dialog);
  render();
}

/** devicesPanel lists my devices (this browser marked) and revokes one of the others. */
export function devicesPanel() {
  const list = h('ul', { class: 'device-list', role: 'list', 'aria-busy': 'true' });
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const fail = (err) => { error.textContent = controller.errorText(err); error.hidden = false; };
  const render = async () => {
    let devices;
    try {
      devices = await secure.myDevices();
    } catch (err) { fail(err); return; }
    list.removeAttribute('aria-busy');
    list.replaceChildren(...devices.map((d) => h('li', {
      class: `device${d.revoked_at ? ' is-revoked' : ''}`, 'data-testid': 'device-row', 'data-device-id': d.device_id,
      'data-revoked': d.revoked_at ? 'true' : 'false',
    },
    icon('key', 'device-icon'),
    h('div', { class: 'device-info' },
      userText('span', d.name || t('e2ee.unnamedDevice'), { class: 'device-name' }),
      h('span', { class: 'hint', text: d.current ? t('e2ee.thisDevice')
        : d.revoked_at ? t('e2ee.revokedAt', { when: shortWhen(d.revoked_at) }) : t('e2ee.addedAt', { when: shortWhen(d.created_at) }) })),
    d.current || d.revoked_at ? null : h('button', {
      type: 'button', class: 'btn btn-danger btn-sm', 'data-testid': 'revoke-device', text: t('e2ee.revoke'),
      onclick: async () => {
        const ok = await confirmDialog({ title: t('e2ee.revokeTitle'), message: t('e2ee.revokeText', { name: d.name || '' }), confirm: t('e2ee.revoke'), danger: true });
        if (!ok) return;
        try {
          await secure.revokeDevice(d.device_id);
          render();
        } catch (err) { fail(err); }
      },
    }))));
  };
  render();
  return h('div', { class: 'devices-panel', 'data-testid': 'devices-panel' },
    h('p', { class: 'dialog-text', text: t('e2ee.devicesText') }), list, error);
}

/** openDevices opens my devices in a dialog of their own. */
export function openDevices() {
  const titleId = uid('devices');
  const dialog = h('dialog', { class: 'dialog', 'data-testid': 'devices-dialog', 'aria-labelledby': titleId });
  dialog.append(dialogHead(titleId, t('e2ee.devicesTitle'), dialog), devicesPanel());
  openDialog(dialog);
}
