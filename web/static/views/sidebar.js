// The sidebar: me, my chats with unread badges and last activity, who is
// online, new chat buttons and settings.

import { h, avatar, scheduler, userText } from '../dom.js';
import { displayName, personAvatar, personName, version as profileVersion } from '../profiles.js';
import { icon } from '../icons.js';
import { t, tNodes, formatNumber } from '../i18n.js';
import * as store from '../store.js';
import { state } from '../store.js';
import * as controller from '../controller.js';
import { shortWhen, fullDateTime } from '../format.js';
import { plain } from '../markdown.js';
import * as local from '../local.js';
import { iconButton, uid } from './common.js';
import { openChatDialog, openDevices } from './dialogs.js';
import { openSettings } from './settings.js';
import { systemText, systemNodes } from './message.js';

/** directPartner is the other member of a direct chat. */
export function directPartner(chat) {
  return (chat.members || []).find((m) => m.username.toLowerCase() !== (state.me || '').toLowerCase())?.username || '';
}

/** chatAvatar is a chat's picture: a globe for global, letters otherwise, a presence dot for direct chats. */
export function chatAvatar(chat, size = 'md') {
  const wrap = h('span', { class: 'avatar-wrap' });
  if (chat.kind === 'global') {
    wrap.appendChild(h('span', { class: `avatar avatar-${size} avatar-global`, 'aria-hidden': 'true' }, icon('globe')));
  } else if (chat.kind === 'group') {
    const a = avatar(chat.title || chat.name, size);
    a.classList.add('avatar-group');
    wrap.appendChild(a);
  } else {
    const partner = directPartner(chat);
    wrap.appendChild(personAvatar(partner, size));
    wrap.appendChild(h('span', { class: `presence-dot ${state.online.has(partner) ? 'on' : ''}`, 'aria-hidden': 'true' }));
  }
  return wrap;
}

/**
 * lastOf describes the last known message of a chat for its preview:
 * {who, text} for a message, {system} for a system message, or null.
 */
function lastOf(name) {
  const pending = store.pendingMessages(name);
  if (pending.length) {
    const p = pending[pending.length - 1];
    return { who: t('chat.you'), text: p.kind === 'file' ? `📎 ${p.file?.name || ''}` : plain(p.text) };
  }
  // The newest of what this client holds and what the chat list said.
  const chat = state.chats.get(name);
  const tl = state.timelines.get(name);
  let m = tl?.ids.length ? tl.byId.get(tl.ids[tl.ids.length - 1]) : null;
  const listed = chat?.last_message;
  if (listed && (!m || listed.id > m.id)) m = listed;
  if (!m) return null;
  if (m.type === 'system') return { system: m };
  const who = m.username === state.me ? t('chat.you') : displayName(m.username);
  if (m.deleted) return { who, text: t('message.deleted') };
  if (m.undecryptable) return { who, text: t('e2ee.undecryptablePreview') };
  if (m === listed && chat.e2ee) {
    // The server cannot read it: what this browser decrypted, if it did
    // and the message has not been edited since.
    const kept = local.preview(name);
    const current = kept && kept.id === m.id && (kept.edited || '') === (m.edited_at || '');
    return { who, text: current ? kept.text : t('chat.encryptedPreview') };
  }
  if (m.type === 'file') return { who, text: `📎 ${m.file?.name || t('message.file')}` };
  return { who, text: plain(m.text) };
}

// draftOf is a chat's unsent draft as the list marks it, except for the
// chat whose composer is on screen (it shows the draft).
function draftOf(name) {
  return state.current === name && state.chatVisible !== false ? '' : plain(local.draft(name));
}

/** previewOf is the last known message of a chat as one line of text ('' when unknown). */
export function previewOf(name) {
  const last = lastOf(name);
  if (!last) return '';
  return last.system ? systemText(last.system) : `${last.who}: ${last.text}`;
}

function previewNodes(name) {
  const last = lastOf(name);
  if (!last) return null;
  if (last.system) return systemNodes(last.system);
  const frag = document.createDocumentFragment();
  frag.append(h('bdi', { text: last.who }), ': ', h('bdi', { text: last.text }));
  return frag;
}

function kindLine(chat) {
  if (chat.kind === 'global') return t('chat.globalNote');
  if (chat.kind === 'group') return t('chat.members', { count: (chat.members || []).length });
  return t('chat.direct');
}

function typingArgs(name) {
  const users = store.typingIn(name);
  if (!users.length) return null;
  if (users.length === 1) return ['typing.one', { name: users[0] }];
  if (users.length === 2) return ['typing.two', { a: users[0], b: users[1] }];
  return ['typing.many', { count: users.length }];
}

/** typingLine says who is typing in a chat, or ''. */
export function typingLine(name) {
  const args = typingArgs(name);
  return args ? t(...args) : '';
}

/** typingNodes is typingLine as DOM with the names isolated. */
export function typingNodes(name) {
  const args = typingArgs(name);
  return args ? tNodes(...args) : document.createDocumentFragment();
}

/** mountSidebar builds the sidebar; onOpen(name) opens a chat. */
export function mountSidebar({ onOpen }) {
  const items = new Map(); // name → {li, button, parts}
  const list = h('ul', { class: 'chat-list', 'data-testid': 'chat-list', role: 'list' });
  const onlineList = h('ul', { class: 'online-list', 'data-testid': 'online-list', role: 'list' });
  const onlineHeadingId = uid('online');
  const onlineCount = h('span', { class: 'count' });
  const filterId = uid('filter');
  const filter = h('input', {
    id: filterId, type: 'search', class: 'filter', placeholder: t('sidebar.search'), 'aria-label': t('sidebar.search'),
    autocomplete: 'off', dir: 'auto', oninput: () => renderChats(),
  });
  const emptyNote = h('p', { class: 'empty-note', hidden: true, text: t('sidebar.noMatch') });

  const meAvatar = h('span', { class: 'me-avatar' });
  const meName = userText('span', state.me || '', { class: 'me-name', 'data-testid': 'me' });
  const renderMe = () => {
    meAvatar.replaceChildren(personAvatar(state.me || '', 'sm'));
    meName.textContent = displayName(state.me || '');
  };
  renderMe();

  const element = h('section', { class: 'sidebar', 'aria-label': t('sidebar.label') },
    h('header', { class: 'side-head' },
      h('div', { class: 'me' },
        meAvatar,
        h('div', { class: 'me-text' },
          meName,
          h('span', { class: 'me-brand', text: 'Mapsim Chat' }))),
      h('div', { class: 'side-head-actions' },
        iconButton('settings', t('settings.title'), { 'data-testid': 'open-settings', onclick: () => openSettings() }),
        iconButton('logout', t('auth.logout'), { 'data-testid': 'logout', onclick: () => controller.logout() }))),
    h('div', { class: 'side-actions' },
      h('button', { type: 'button', class: 'btn btn-soft', 'data-testid': 'new-direct', onclick: () => openChatDialog('direct') },
        icon('chat'), h('span', { text: t('sidebar.newDirect') })),
      h('button', { type: 'button', class: 'btn btn-soft', 'data-testid': 'new-group', onclick: () => openChatDialog('group') },
        icon('group'), h('span', { text: t('sidebar.newGroup') }))),
    h('div', { class: 'filter-wrap' }, icon('search', 'filter-icon'), filter),
    h('nav', { class: 'chat-nav', 'aria-label': t('sidebar.chats') }, list, emptyNote),
    h('section', { class: 'online', 'aria-labelledby': onlineHeadingId },
      h('h2', { id: onlineHeadingId, class: 'section-title' }, h('span', { text: t('sidebar.online') }), onlineCount),
      onlineList),
    h('footer', { class: 'side-foot' },
      h('button', { type: 'button', class: 'btn btn-ghost', 'data-testid': 'my-devices', onclick: () => openDevices() },
        icon('key'), h('span', { text: t('e2ee.myDevices') }))));

  function makeItem(name) {
    const parts = {
      avatar: h('span', { class: 'ci-avatar' }),
      title: h('span', { class: 'ci-title', 'data-testid': 'chat-title', dir: 'auto' }),
      time: h('time', { class: 'ci-time' }),
      preview: h('span', { class: 'ci-preview' }),
      badge: h('span', { class: 'badge', 'data-testid': 'unread', hidden: true }),
      badgeLabel: h('span', { class: 'sr-only' }),
      lock: h('span', { class: 'ci-lock', 'data-testid': 'chat-lock', title: t('chat.e2ee'), hidden: true }, icon('lock'), h('span', { class: 'sr-only', text: t('chat.e2ee') })),
    };
    const button = h('button', {
      type: 'button', class: 'chat-item', 'data-testid': 'chat-item', 'data-chat-name': name,
      onclick: () => onOpen(name),
    }, parts.avatar,
    h('span', { class: 'ci-main' },
      h('span', { class: 'ci-row' }, parts.lock, parts.title, parts.time),
      h('span', { class: 'ci-row' }, parts.preview, parts.badge, parts.badgeLabel)));
    const li = h('li', {}, button);
    const item = { li, button, parts, sig: '' };
    items.set(name, item);
    return item;
  }

  function updateItem(item, chat) {
    const { parts, button } = item;
    const title = controller.chatLabel(chat);
    const typing = typingLine(chat.name);
    const draft = typing ? '' : draftOf(chat.name);
    const preview = typing || (draft && `\u0000draft:${draft}`) || previewOf(chat.name) || kindLine(chat);
    const partnerOnline = chat.kind === 'direct' && state.online.has(directPartner(chat));
    const sig = [title, typing, preview, chat.unread, chat.last_message_at, state.current === chat.name, partnerOnline, !!chat.e2ee, profileVersion()].join('\u0000');
    if (sig === item.sig) return;
    item.sig = sig;
    parts.avatar.replaceChildren(chatAvatar(chat));
    parts.title.textContent = title;
    parts.lock.hidden = !chat.e2ee;
    parts.time.textContent = shortWhen(chat.last_message_at);
    if (chat.last_message_at) {
      parts.time.dateTime = chat.last_message_at;
      parts.time.title = fullDateTime(chat.last_message_at);
    }
    if (typing) parts.preview.replaceChildren(typingNodes(chat.name));
    else if (draft) parts.preview.replaceChildren(h('span', { class: 'ci-draft', 'data-testid': 'chat-draft', text: t('chat.draft') }), ' ', h('bdi', { text: draft }));
    else parts.preview.replaceChildren(previewNodes(chat.name) || kindLine(chat));
    parts.preview.classList.toggle('is-typing', !!typing);
    const unread = chat.unread || 0;
    parts.badge.textContent = String(unread);
    parts.badge.hidden = unread === 0;
    parts.badgeLabel.textContent = unread ? t('sidebar.unread', { count: unread }) : '';
    button.classList.toggle('has-unread', unread > 0);
    if (state.current === chat.name) button.setAttribute('aria-current', 'true');
    else button.removeAttribute('aria-current');
  }

  function renderChats() {
    const query = filter.value.trim().toLocaleLowerCase();
    const chats = store.sortedChats().filter((c) => !query || controller.chatLabel(c).toLocaleLowerCase().includes(query));
    const seen = new Set();
    const focused = document.activeElement;
    let cursor = list.firstChild;
    for (const chat of chats) {
      seen.add(chat.name);
      const item = items.get(chat.name) || makeItem(chat.name);
      updateItem(item, chat);
      if (item.li !== cursor) list.insertBefore(item.li, cursor);
      else cursor = cursor.nextSibling;
    }
    for (const [name, item] of items) {
      if (!seen.has(name)) {
        item.li.remove();
        if (!state.chats.has(name)) items.delete(name);
      }
    }
    emptyNote.hidden = chats.length > 0 || !query;
    if (focused && focused !== document.activeElement && element.contains(focused)) focused.focus();
  }

  function renderOnline() {
    const users = [...state.online].sort((a, b) => (a === state.me ? -1 : b === state.me ? 1 : a.localeCompare(b)));
    onlineCount.textContent = formatNumber(users.length);
    onlineList.replaceChildren(...users.map((name) => {
      const me = name === state.me;
      const body = [
        h('span', { class: 'avatar-wrap' }, personAvatar(name, 'sm'), h('span', { class: 'presence-dot on', 'aria-hidden': 'true' })),
        personName(name, { class: 'ou-name' }),
        me ? h('span', { class: 'ou-you', text: t('sidebar.youTag') }) : null,
      ];
      return h('li', { 'data-testid': 'online-user', 'data-username': name, class: 'online-user' },
        me ? h('span', { class: 'ou-row' }, body)
          : h('button', {
            type: 'button', class: 'ou-row', title: t('sidebar.messageUser', { name: displayName(name) }),
            onclick: async () => {
              try {
                const chat = await controller.createChat('direct', [name]);
                onOpen(chat.name);
              } catch (err) { controller.toast(controller.errorText(err)); }
            },
          }, body));
    }));
  }

  const scheduleChats = scheduler(renderChats);
  const offs = [
    store.on('chats', scheduleChats),
    store.on('timeline', scheduleChats),
    store.on('typing', scheduleChats),
    store.on('drafts', scheduleChats),
    store.on('online', () => { scheduleChats(); renderOnline(); }),
    store.on('profiles', () => { renderMe(); scheduleChats(); renderOnline(); }),
  ];
  renderChats();
  renderOnline();

  return {
    element,
    focusCurrent() {
      items.get(state.current)?.button.focus();
    },
    unmount() {
      for (const off of offs) off();
    },
  };
}
