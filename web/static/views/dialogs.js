// Modal dialogs on <dialog>: new direct chat / new group with user search,
// confirmations, the image viewer, group details, a contact's safety
// number and my devices. Escape closes each.

import { h, debounce, userText } from '../dom.js';
import { personAvatar, personName } from '../profiles.js';
import { icon } from '../icons.js';
import { t, formatNumber } from '../i18n.js';
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

/**
 * userPicker is a search box with results; multi picks several users.
 * exclude() names the users not to offer, asked at every search (a group's
 * members change while its dialog is open).
 */
function userPicker({ multi, onPick, exclude = () => [] }) {
  const searchId = uid('search');
  const results = h('ul', { class: 'user-results', role: 'list', 'aria-live': 'polite' });
  const chips = h('ul', { class: 'chips', role: 'list', 'aria-label': t('dialog.selected') });
  const status = h('p', { class: 'hint search-status' });
  const picked = new Map();
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
      const skip = new Set([state.me, ...exclude()].map((n) => (n || '').toLowerCase()));
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
    /** refresh searches again (the users to leave out changed). */
    refresh: () => search(),
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

// chatImages lists the images of the open chat, oldest first: the files
// with a thumbnail that the message list shows as pictures.
function chatImages() {
  const tl = state.timelines.get(state.current);
  if (!tl) return [];
  return tl.ids.map((id) => tl.byId.get(id))
    .filter((m) => m && !m.deleted && m.type === 'file' && m.file?.thumbnail_url && !m.file.expired)
    .map((m) => m.file);
}

/**
 * openImage shows a picture full size with a download link. Left and
 * Right (mirrored right to left) and the arrow buttons go through the
 * chat's other images; Escape closes and the focus goes back.
 */
export function openImage(file) {
  const titleId = uid('image');
  const images = chatImages();
  let at = images.findIndex((f) => f.url === file.url);
  if (at < 0) { images.splice(0, images.length, file); at = 0; }
  const dialog = h('dialog', { class: 'dialog dialog-image', 'data-testid': 'lightbox', 'aria-labelledby': titleId });
  const img = h('img', { class: 'lightbox-img', 'data-testid': 'lightbox-img' });
  const title = userText('h2', '', { id: titleId });
  const count = h('span', { class: 'lightbox-count', 'data-testid': 'lightbox-count', 'aria-live': 'polite' });
  const save = h('button', { type: 'button', class: 'btn btn-secondary' }, icon('download'), h('span', { text: t('message.download') }));
  save.addEventListener('click', () => files.download(images[at]).catch((err) => controller.toast(controller.errorText(err))));
  const prev = iconButton('chevronStart', t('lightbox.previous'), { class: 'icon-btn lightbox-nav lightbox-prev', 'data-testid': 'lightbox-prev', onclick: () => go(-1) });
  const next = iconButton('chevronEnd', t('lightbox.next'), { class: 'icon-btn lightbox-nav lightbox-next', 'data-testid': 'lightbox-next', onclick: () => go(1) });
  prev.firstChild.classList.add('flip-rtl');
  next.firstChild.classList.add('flip-rtl');
  dialog.append(
    h('header', { class: 'dialog-head' }, title,
      h('div', { class: 'dialog-head-actions' }, count, save, iconButton('close', t('action.close'), { onclick: () => dialog.close() }))),
    h('div', { class: 'lightbox' }, img, images.length > 1 ? [prev, next] : null));

  function show() {
    const f = images[at];
    title.textContent = f.name || t('message.file');
    img.alt = f.name || '';
    img.removeAttribute('src');
    if (f.width && f.height) { img.width = f.width; img.height = f.height; } else { img.removeAttribute('width'); img.removeAttribute('height'); }
    count.textContent = images.length > 1 ? t('lightbox.position', { n: formatNumber(at + 1), total: formatNumber(images.length) }) : '';
    prev.disabled = at === 0;
    next.disabled = at === images.length - 1;
    dialog.dataset.index = String(at);
    files.fileURL(f).then((url) => { if (images[at] === f) img.src = url; }, (err) => controller.toast(controller.errorText(err)));
  }
  function go(step) {
    const to = at + step;
    if (to < 0 || to >= images.length) return;
    // A disabled button loses the focus; keep it in the dialog.
    at = to;
    show();
    if (document.activeElement?.disabled || !dialog.contains(document.activeElement)) (step < 0 ? next : prev).focus();
  }
  dialog.addEventListener('keydown', (event) => {
    if (event.key !== 'ArrowLeft' && event.key !== 'ArrowRight') return;
    if (event.target.closest?.('input, textarea, select')) return;
    event.preventDefault();
    const rtl = getComputedStyle(dialog).direction === 'rtl';
    go((event.key === 'ArrowRight') !== rtl ? 1 : -1);
  });
  openDialog(dialog);
  show();
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

  const count = h('h3', { class: 'section-title', 'data-testid': 'member-count' });
  let picker = null;
  let shown = '';
  const renderMembers = () => {
    const current = state.chats.get(name);
    if (!current) { dialog.close(); return; }
    const list = (current.members || []).map((m) => m.username);
    count.textContent = t('chat.members', { count: list.length });
    if (list.join('\n') !== shown) {
      // Someone left or joined: the search offers whom it may add now.
      if (shown) picker?.refresh();
      shown = list.join('\n');
    }
    members.replaceChildren(...(current.members || []).map((m) => h('li', { class: 'member', 'data-testid': 'member', 'data-username': m.username },
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
  parts.push(count, members);
  if (owner) {
    picker = userPicker({ multi: true, exclude: () => (state.chats.get(name)?.members || []).map((m) => m.username) });
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
