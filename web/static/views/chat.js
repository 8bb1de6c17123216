// The chat view: header, history (older pages load as you scroll up, with
// the viewport kept in place), day separators, grouped messages, typing
// indicator and the composer.

import { h, scheduler, userText } from '../dom.js';
import { icon } from '../icons.js';
import { t } from '../i18n.js';
import * as store from '../store.js';
import { version as profileVersion } from '../profiles.js';
import { notifyPicker } from './settings-profile.js';
import { state } from '../store.js';
import * as controller from '../controller.js';
import { dayKey, dayLabel } from '../format.js';
import { iconButton } from './common.js';
import { chatAvatar, directPartner, typingLine, typingNodes } from './sidebar.js';
import { renderMessage, renderSystem, renderDay } from './message.js';
import { mountComposer } from './composer.js';
import { confirmDialog, openGroupInfo, openSafetyNumber } from './dialogs.js';
import * as secure from '../secure.js';

const groupWindow = 5 * 60 * 1000;
const nearBottom = 80;

/** mountChat builds the chat pane; onBack() returns to the chat list on narrow screens. */
export function mountChat({ onBack }) {
  const header = h('header', { class: 'chat-head', 'data-testid': 'chat-header' });
  const top = h('div', { class: 'history-top' });
  // The history is one tab stop: the active message (the newest until the
  // reader moves) has tabindex 0, the others and every control inside
  // them -1; arrow keys move between messages, Enter or Tab reaches the
  // focused message's own controls (roving tabindex).
  const messages = h('div', { class: 'messages', 'data-testid': 'messages', role: 'log', 'aria-label': t('chat.history'), 'aria-keyshortcuts': 'ArrowUp ArrowDown Home End' }, top);
  const jump = h('button', { type: 'button', class: 'jump', hidden: true, 'aria-label': t('chat.jump'), title: t('chat.jump'), onclick: () => scrollToBottom(true) }, icon('down'));
  const toUnread = h('button', {
    type: 'button', class: 'to-unread', 'data-testid': 'to-unread', hidden: true, title: t('chat.toFirstUnread'),
    onclick: () => scrollToDivider(true),
  }, icon('down'), h('span', { text: t('chat.newMessages') }));
  const dropZone = h('div', { class: 'drop-zone', hidden: true }, icon('attach'), h('span', { text: t('composer.drop') }));
  const typing = h('div', { class: 'typing', 'data-testid': 'typing', hidden: true, 'aria-live': 'polite' });
  const typingRow = h('div', { class: 'typing-row' }, typing);
  const composer = mountComposer({ onEditLast: editLast, onSent: () => { hideActions(); scrollToBottom(false); } });
  const empty = h('div', { class: 'chat-empty' },
    h('img', { src: '/static/icon.svg', alt: '', width: '72', height: '72' }),
    h('h2', { text: t('chat.pickTitle') }), h('p', { text: t('chat.pickText') }));
  const keyBanner = h('div', { class: 'key-changed', 'data-testid': 'key-changed', role: 'alert', hidden: true });
  const body = h('div', { class: 'chat-body' }, keyBanner, h('div', { class: 'messages-wrap' }, messages, toUnread, jump, dropZone), typingRow, composer.element);
  const element = h('section', { class: 'chat', id: 'chat-pane', tabindex: '-1', 'aria-label': t('chat.label') }, header, body, empty);

  let name = null;
  let editing = null; // id of the message being edited
  let cache = new Map(); // key → {el, sig}
  const keys = new WeakMap(); // element → key
  let forceBottom = true;
  let wasLoaded = false;
  // unreadAfter is the read marker when the chat was opened with unread
  // messages (else null): the "new messages" divider goes before the
  // first message from others after it, and the chat opens there.
  let unreadAfter = null;
  let activeKey = null; // the item holding the history's tab stop; null: the newest
  let stopEl = null;

  // ---- header ----
  function renderHeader() {
    const chat = state.chats.get(name);
    if (!chat) { header.replaceChildren(); return; }
    let sub;
    if (chat.kind === 'direct') {
      const online = state.online.has(directPartner(chat));
      sub = h('span', { class: `presence-text ${online ? 'on' : ''}`, text: online ? t('presence.online') : t('presence.offline') });
    } else if (chat.kind === 'group') {
      sub = h('span', { text: t('chat.members', { count: (chat.members || []).length }) });
    } else {
      sub = h('span', { text: t('chat.globalNote') });
    }
    const actions = h('div', { class: 'head-actions' });
    actions.append(notifyPicker(chat, { class: 'notify-picker head-notify' }));
    if (chat.kind === 'group') {
      actions.append(
        iconButton('info', t('group.info'), { onclick: () => openGroupInfo(name) }),
        h('button', {
          type: 'button', class: 'btn btn-ghost btn-sm', 'data-testid': 'leave-chat',
          onclick: async () => {
            const chatName = name;
            const title = chat.title || chat.name;
            const ok = await confirmDialog({
              title: t('group.leaveTitle', { title }), message: t('group.leaveText'), confirm: t('group.leave'), danger: true,
            });
            if (!ok) return;
            try {
              await controller.leaveChat(chatName);
              controller.toast(t('group.left', { title }), 'info');
            } catch (err) { controller.toast(controller.errorText(err)); }
          },
        }, icon('leave', 'flip-rtl'), h('span', { text: t('group.leave') })));
    }
    const partner = chat.kind === 'direct' ? directPartner(chat) : null;
    if (chat.e2ee && partner) {
      const mark = h('span', { class: 'verified-mark', 'data-testid': 'verified-mark', hidden: true }, icon('check', 'note-icon'), h('span', { text: t('e2ee.verified') }));
      secure.isVerified(partner).then((yes) => { mark.hidden = !yes; }, () => {});
      actions.prepend(mark, h('button', {
        type: 'button', class: 'btn btn-ghost btn-sm', 'data-testid': 'safety-number-open', onclick: () => openSafetyNumber(partner),
      }, icon('lock'), h('span', { text: t('e2ee.verify') })));
    }
    const note = chat.e2ee
      ? h('span', { class: 'e2ee-note is-on', 'data-testid': 'e2ee-state', 'data-e2ee': 'on', title: t('chat.e2eeOnExplain') }, icon('lock', 'note-icon'), h('span', { text: t('chat.e2ee') }))
      : h('span', { class: 'e2ee-note', 'data-testid': 'e2ee-state', 'data-e2ee': 'off', title: t('chat.e2eeExplain') }, icon('lockOpen', 'note-icon'), h('span', { text: t('chat.notE2ee') }));
    header.replaceChildren(
      iconButton('back', t('chat.back'), { class: 'icon-btn back-btn', onclick: onBack }),
      chatAvatar(chat),
      h('div', { class: 'head-titles' },
        userText('h2', controller.chatLabel(chat), { class: 'head-title' }),
        h('p', { class: 'head-sub' }, sub, h('span', { class: 'dot-sep', 'aria-hidden': 'true', text: '·' }), note)),
      actions);
    renderKeyBanner();
  }

  // A member's changed identity key is shown loudly, and what is sent to
  // the chat waits until the user accepts it.
  function renderKeyBanner() {
    const chat = state.chats.get(name);
    const held = chat?.e2ee ? secure.heldFor(chat.members) : [];
    keyBanner.hidden = !held.length;
    if (!held.length) { keyBanner.replaceChildren(); return; }
    keyBanner.replaceChildren(...held.map((username) => h('div', { class: 'key-changed-row', 'data-username': username },
      icon('error', 'key-icon'),
      h('p', {}, h('strong', { text: t('e2ee.keyChangedTitle', { name: username }) }), ' ', h('span', { text: t('e2ee.keyChangedText', { name: username }) })),
      h('div', { class: 'key-actions' },
        h('button', { type: 'button', class: 'btn btn-secondary btn-sm', text: t('e2ee.showNumber'), onclick: () => openSafetyNumber(username) }),
        h('button', {
          type: 'button', class: 'btn btn-primary btn-sm', 'data-testid': 'accept-key', text: t('e2ee.acceptKey'),
          onclick: () => controller.acceptKey(username).catch((err) => controller.toast(controller.errorText(err))),
        })))));
  }

  // ---- history ----
  function isNearBottom() {
    return messages.scrollHeight - messages.scrollTop - messages.clientHeight < nearBottom;
  }

  function scrollToBottom(smooth) {
    messages.scrollTo({ top: messages.scrollHeight, behavior: smooth ? 'smooth' : 'auto' });
    jump.hidden = true;
  }

  function dividerEl() {
    return cache.get('unread-divider')?.el || null;
  }

  // scrollToDivider puts the "new messages" divider near the top of the view.
  function scrollToDivider(smooth) {
    const el = dividerEl();
    if (!el) return;
    const top = messages.scrollTop + el.getBoundingClientRect().top - messages.getBoundingClientRect().top - 8;
    messages.scrollTo({ top: Math.max(0, top), behavior: smooth ? 'smooth' : 'auto' });
  }

  // renderToUnread offers the way back to the divider while it is above the view.
  function renderToUnread() {
    const el = dividerEl();
    toUnread.hidden = !el || el.getBoundingClientRect().bottom > messages.getBoundingClientRect().top;
  }

  // captureAnchor remembers the topmost visible item and where it is, so a
  // render that adds older messages above (or changes heights) keeps it in
  // place. Never the oldest item loaded: an older page that lands above
  // groups it with the message before it, and its author line goes, so
  // the view would move by that line; the item after it stays as it is.
  function captureAnchor() {
    const scrollTop = messages.scrollTop;
    let oldest = true;
    for (const el of messages.children) {
      if (el === top || el.classList.contains('day')) continue;
      if (oldest) { oldest = false; continue; }
      if (el.offsetTop + el.offsetHeight > scrollTop) {
        const key = keys.get(el);
        return key ? { key, offset: el.offsetTop - scrollTop } : null;
      }
    }
    return null;
  }

  function handlers() {
    return {
      onReply: (m) => { composer.setReply(m); composer.focus(); },
      onEdit: (m) => { editing = m.id; renderTimeline(); },
      onSaveEdit: (m, text) => { if (controller.editMessage(name, m.id, text)) { editing = null; renderTimeline(); composer.focus(); } },
      onCancelEdit: () => { editing = null; renderTimeline(); composer.focus(); },
      onDelete: async (m) => {
        const ok = await confirmDialog({ title: t('message.deleteTitle'), message: t('message.deleteText'), confirm: t('message.delete'), danger: true });
        if (ok) controller.deleteMessage(name, m.id);
      },
      onJump: (id) => {
        const el = messages.querySelector(`[data-id="${Number(id)}"]`);
        if (!el) { controller.toast(t('message.notLoaded'), 'info'); return; }
        el.scrollIntoView({ block: 'center', behavior: 'smooth' });
        el.classList.remove('flash');
        void el.offsetWidth;
        el.classList.add('flash');
      },
      onRetry: (p) => controller.retryPending(p.clientId),
      onDiscard: (p) => controller.discardPending(p.clientId),
    };
  }

  function items() {
    const tl = state.timelines.get(name);
    const out = [];
    let prev = null;
    let day = '';
    const push = (m, pending) => {
      const dk = dayKey(m.timestamp);
      if (dk !== day) {
        day = dk;
        out.push({ key: `day-${dk}`, kind: 'day', ts: m.timestamp });
        prev = null;
      }
      if (m.type === 'system') {
        out.push({ key: `m${m.id}`, kind: 'system', m });
        prev = null;
        return;
      }
      const ts = Date.parse(m.timestamp);
      const grouped = !!prev && prev.username === m.username && ts - prev.ts < groupWindow && !m.reply;
      out.push({ key: pending ? `p${pending.clientId}` : `m${m.id}`, kind: 'message', m, pending, grouped });
      prev = { username: m.username, ts };
    };
    let divided = unreadAfter === null;
    if (tl) {
      for (const id of tl.ids) {
        const m = tl.byId.get(id);
        if (!divided && id > unreadAfter && m.type !== 'system' && m.username !== state.me) {
          divided = true;
          out.push({ key: 'unread-divider', kind: 'divider' });
        }
        push(m, null);
      }
    }
    for (const p of store.pendingMessages(name)) {
      push({
        type: p.kind, id: 0, username: state.me, text: p.text || '', timestamp: new Date(p.createdAt).toISOString(),
        reply: p.reply, file: p.file, client_id: p.clientId,
      }, p);
    }
    return out;
  }

  function renderTimeline() {
    if (!name) return;
    const tl = store.timeline(name);
    const stick = forceBottom || isNearBottom();
    const anchor = stick ? null : captureAnchor();
    const act = handlers();
    const next = new Map();
    let cursor = top.nextSibling;
    const list = items();
    for (const item of list) {
      let sig;
      let make;
      if (item.kind === 'day') {
        sig = 'day';
        make = () => renderDay(dayLabel(item.ts));
      } else if (item.kind === 'divider') {
        sig = 'divider';
        make = () => h('div', { class: 'unread-divider', 'data-testid': 'unread-divider', role: 'separator' }, h('span', { text: t('chat.newMessages') }));
      } else if (item.kind === 'system') {
        sig = `s${item.m._v}`;
        make = () => renderSystem(item.m);
      } else {
        const m = item.m;
        const own = m.username === state.me;
        const change = item.pending ? null : store.pendingChange(m.id);
        const isEditing = !item.pending && editing === m.id;
        sig = [m._v, item.grouped, own, item.pending ? `${item.pending.status}:${item.pending._v || 0}` : '', change ? `${change.clientId}:${change.kind}` : '', isEditing, profileVersion()].join('|');
        make = () => renderMessage(m, { own, grouped: item.grouped, change, editing: isEditing, pending: item.pending, ...act });
      }
      let entry = cache.get(item.key);
      if (entry && entry.sig !== sig) {
        const el = make();
        if (entry.el === cursor) cursor = el;
        entry.el.replaceWith(el);
        entry = { el, sig };
      } else if (!entry) {
        entry = { el: make(), sig };
      }
      if (entry.el !== stopEl) setStop(entry.el, false);
      keys.set(entry.el, item.key);
      next.set(item.key, entry);
      if (entry.el !== cursor) messages.insertBefore(entry.el, cursor);
      else cursor = cursor.nextSibling;
    }
    for (const [key, entry] of cache) if (!next.has(key) || next.get(key) !== entry) {
      if (!next.has(key)) entry.el.remove();
    }
    const live = new Set([...next.values()].map((e) => e.el));
    while (cursor) {
      const after = cursor.nextSibling;
      if (!live.has(cursor)) cursor.remove();
      cursor = after;
    }
    cache = next;
    placeStop();

    // The top of the history: loading, the beginning, or an error.
    top.replaceChildren();
    if (tl.loading || tl.loadingOlder) top.appendChild(h('span', { class: 'spinner', role: 'img', 'aria-label': t('chat.loading') }));
    else if (tl.error) top.append(h('span', { text: tl.error }), h('button', { type: 'button', class: 'link-btn', text: t('message.retry'), onclick: () => controller.ensureLoaded(name) }));
    else if (tl.loaded && !tl.hasMore) top.appendChild(h('span', { class: 'history-start', text: list.length ? t('chat.beginning') : t('chat.empty') }));

    if (tl.loaded && !wasLoaded) {
      wasLoaded = true;
      forceBottom = true;
    }
    if (forceBottom && tl.loaded && next.has('unread-divider')) {
      // Opened with unread messages: at the first of them, not the bottom.
      forceBottom = false;
      scrollToDivider(false);
    } else if (forceBottom || stick) {
      messages.scrollTop = messages.scrollHeight;
      if (tl.loaded) forceBottom = false;
    } else if (anchor && next.has(anchor.key)) {
      messages.scrollTop = next.get(anchor.key).el.offsetTop - anchor.offset;
    }
    jump.hidden = isNearBottom();
    renderToUnread();
    // A short history that does not fill the view cannot be scrolled, and a
    // reader still near the top when a page lands (a scroll that came while
    // the page was loading is not repeated) wants the next one: load more now.
    const nearTop = !stick && !forceBottom && messages.scrollTop < 300;
    if (tl.loaded && tl.hasMore && !tl.loadingOlder && (nearTop || messages.scrollHeight <= messages.clientHeight + 40)) controller.loadOlder(name);
  }

  // ---- keyboard: the history as one tab stop ----
  const controls = 'a[href], button, textarea, input, select, [tabindex]';
  const isItem = (el) => !!el && (el.classList.contains('msg') || el.classList.contains('system'));
  const itemsShown = () => [...messages.children].filter(isItem);

  // setStop makes el (a message or note) the tab stop, or takes it away
  // together with every control inside it.
  function setStop(el, on) {
    if (!isItem(el)) return;
    el.tabIndex = on ? 0 : -1;
    for (const c of el.querySelectorAll(controls)) {
      if (on && c.dataset.rove) {
        c.removeAttribute('tabindex');
        delete c.dataset.rove;
      } else if (!on && !c.dataset.rove && c.getAttribute('tabindex') !== '-1') {
        c.tabIndex = -1;
        c.dataset.rove = '1';
      }
    }
  }

  // placeStop puts the tab stop on the active item, or on the newest when
  // the reader has not moved (or the active one is gone); a focused item
  // that was drawn again keeps the focus.
  function placeStop() {
    const focused = !!stopEl && !stopEl.isConnected && (document.activeElement === document.body || !document.activeElement);
    let target = activeKey ? cache.get(activeKey)?.el : null;
    if (!isItem(target)) {
      activeKey = null;
      const shown = itemsShown();
      target = shown[shown.length - 1] || null;
    }
    if (target === stopEl) return;
    if (stopEl) setStop(stopEl, false);
    stopEl = target;
    if (stopEl) {
      setStop(stopEl, true);
      if (focused) stopEl.focus({ preventScroll: true });
    }
  }

  function moveTo(el) {
    const shown = itemsShown();
    activeKey = el === shown[shown.length - 1] ? null : keys.get(el);
    if (stopEl !== el) {
      if (stopEl) setStop(stopEl, false);
      stopEl = el;
      setStop(el, true);
    }
    el.focus({ preventScroll: true });
    el.scrollIntoView({ block: 'nearest' });
  }

  messages.addEventListener('keydown', (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    const target = event.target;
    if (!isItem(target)) {
      // Escape from a message's control goes back to the message.
      const item = target.closest('.msg, .system');
      if (event.key === 'Escape' && item && !target.matches('textarea')) {
        event.preventDefault();
        moveTo(item);
      }
      return;
    }
    const shown = itemsShown();
    const i = shown.indexOf(target);
    let next;
    switch (event.key) {
      case 'ArrowUp': next = shown[i - 1]; break;
      case 'ArrowDown': next = shown[i + 1]; break;
      case 'Home': next = shown[0]; break;
      case 'End': next = shown[shown.length - 1]; break;
      case 'Enter': next = target.querySelector(controls); if (next) { event.preventDefault(); next.focus(); } return;
      default: return;
    }
    event.preventDefault();
    if (next) moveTo(next);
  });

  // A click or a focused control inside a message moves the stop there.
  messages.addEventListener('focusin', (event) => {
    const item = event.target.closest('.msg, .system');
    if (!item || item === stopEl || !messages.contains(item)) return;
    const shown = itemsShown();
    activeKey = item === shown[shown.length - 1] ? null : keys.get(item);
    if (stopEl) setStop(stopEl, false);
    stopEl = item;
    setStop(item, true);
  });

  function renderTyping() {
    const line = name ? typingLine(name) : '';
    typing.replaceChildren(line ? typingNodes(name) : '');
    typing.hidden = !line;
  }

  function showChat() {
    const next = state.current;
    const changed = next !== name;
    name = next;
    element.classList.toggle('is-empty', !name);
    if (changed) {
      editing = null;
      const chat = state.chats.get(name);
      unreadAfter = chat && chat.unread > 0 && (chat.last_read_id || 0) < (chat.last_message_id || 0) ? (chat.last_read_id || 0) : null;
      // A member's identity key may have changed since we last looked.
      if (name && state.chats.get(name)?.e2ee) secure.checkMembers(name).catch(() => {});
      hideActions();
      for (const entry of cache.values()) entry.el.remove();
      cache = new Map();
      activeKey = null;
      stopEl = null;
      forceBottom = true;
      wasLoaded = !!state.timelines.get(name)?.loaded;
      composer.showChat();
    }
    renderHeader();
    renderTimeline();
    renderTyping();
  }

  function editLast() {
    const tl = state.timelines.get(name);
    if (!tl) return false;
    for (let i = tl.ids.length - 1; i >= 0; i--) {
      const m = tl.byId.get(tl.ids[i]);
      if (m.username === state.me && m.type === 'text' && !m.deleted) {
        editing = m.id;
        renderTimeline();
        messages.querySelector(`[data-id="${m.id}"]`)?.scrollIntoView({ block: 'nearest' });
        return true;
      }
    }
    return false;
  }

  messages.addEventListener('scroll', () => {
    jump.hidden = isNearBottom();
    renderToUnread();
    if (!name) return;
    const tl = state.timelines.get(name);
    if (tl?.loaded && tl.hasMore && !tl.loadingOlder && messages.scrollTop < 300) controller.loadOlder(name);
  }, { passive: true });

  // Touch screens have no hover: a tap on a message shows its actions,
  // until a tap elsewhere, the composer or a send puts them away.
  function hideActions(except = null) {
    for (const other of messages.querySelectorAll('.msg.show-actions')) if (other !== except) other.classList.remove('show-actions');
  }
  messages.addEventListener('click', (event) => {
    const msg = event.target.closest('.msg');
    if (event.target.closest('button, a, textarea')) return;
    hideActions(msg);
    msg?.classList.toggle('show-actions');
  });
  composer.element.addEventListener('focusin', () => hideActions());

  // Files dropped anywhere on the chat are sent to it.
  let dragDepth = 0;
  const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes('Files');
  element.addEventListener('dragenter', (event) => {
    if (!hasFiles(event) || !name) return;
    event.preventDefault();
    dragDepth++;
    dropZone.hidden = false;
  });
  element.addEventListener('dragover', (event) => {
    if (!hasFiles(event) || !name) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = 'copy';
  });
  element.addEventListener('dragleave', () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) dropZone.hidden = true;
  });
  element.addEventListener('drop', (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    dragDepth = 0;
    dropZone.hidden = true;
    composer.addFiles([...event.dataTransfer.files]);
  });
  element.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && editing) {
      editing = null;
      renderTimeline();
    }
  });

  const scheduleTimeline = scheduler(renderTimeline);
  const scheduleHeader = scheduler(renderHeader);
  const offs = [
    store.on('current', showChat),
    store.on('timeline', (chatName) => { if (chatName === name) scheduleTimeline(); }),
    store.on('chats', () => {
      if (name && !state.chats.has(name)) return;
      scheduleHeader();
    }),
    store.on('online', scheduleHeader),
    store.on('profiles', () => { scheduleHeader(); scheduleTimeline(); }),
    store.on('keys', () => { scheduleHeader(); scheduleTimeline(); }),
    store.on('typing', (chatName) => { if (chatName === name) renderTyping(); }),
  ];
  const onResize = () => { if (isNearBottom()) messages.scrollTop = messages.scrollHeight; };
  const resizeObserver = new ResizeObserver(() => {
    if (forceBottom || isNearBottom()) messages.scrollTop = messages.scrollHeight;
  });
  resizeObserver.observe(messages);
  window.addEventListener('resize', onResize);
  queueMicrotask(showChat);

  return {
    element,
    focusComposer() { if (window.matchMedia('(hover: hover)').matches) composer.focus(); },
    // focusMain is the skip link's target: the history's tab stop, or the
    // pane itself when no chat is open.
    focusMain() {
      if (stopEl?.isConnected) moveTo(stopEl);
      else element.focus();
    },
    unmount() {
      for (const off of offs) off();
      resizeObserver.disconnect();
      window.removeEventListener('resize', onResize);
    },
  };
}
