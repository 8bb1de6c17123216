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
  const messages = h('div', { class: 'messages', 'data-testid': 'messages', role: 'log', tabindex: '0', 'aria-label': t('chat.history') }, top);
  const jump = h('button', { type: 'button', class: 'jump', hidden: true, 'aria-label': t('chat.jump'), title: t('chat.jump'), onclick: () => scrollToBottom(true) }, icon('down'));
  const dropZone = h('div', { class: 'drop-zone', hidden: true }, icon('attach'), h('span', { text: t('composer.drop') }));
  const typing = h('div', { class: 'typing', 'data-testid': 'typing', hidden: true, 'aria-live': 'polite' });
  const typingRow = h('div', { class: 'typing-row' }, typing);
  const composer = mountComposer({ onEditLast: editLast, onSent: () => scrollToBottom(false) });
  const empty = h('div', { class: 'chat-empty' },
    h('img', { src: '/static/icon.svg', alt: '', width: '72', height: '72' }),
    h('h2', { text: t('chat.pickTitle') }), h('p', { text: t('chat.pickText') }));
  const keyBanner = h('div', { class: 'key-changed', 'data-testid': 'key-changed', role: 'alert', hidden: true });
  const body = h('div', { class: 'chat-body' }, keyBanner, h('div', { class: 'messages-wrap' }, messages, jump, dropZone), typingRow, composer.element);
  const element = h('section', { class: 'chat', 'aria-label': t('chat.label') }, header, body, empty);

  let name = null;
  let editing = null; // id of the message being edited
  let cache = new Map(); // key → {el, sig}
  const keys = new WeakMap(); // element → key
  let forceBottom = true;
  let wasLoaded = false;

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
            const title = chat.title || chat.name;
            try {
              await controller.leaveChat(name);
              controller.toast(t('group.left', { title }), 'info');
            } catch (err) { controller.toast(controller.errorText(err)); }
          },
        }, icon('logout', 'flip-rtl'), h('span', { text: t('group.leave') })));
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

  // captureAnchor remembers the topmost visible item and where it is, so a
  // render that adds older messages above (or changes heights) keeps it in place.
  function captureAnchor() {
    const scrollTop = messages.scrollTop;
    for (const el of messages.children) {
      if (el === top || el.classList.contains('day')) continue;
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
    if (tl) for (const id of tl.ids) push(tl.byId.get(id), null);
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

    // The top of the history: loading, the beginning, or an error.
    top.replaceChildren();
    if (tl.loading || tl.loadingOlder) top.appendChild(h('span', { class: 'spinner', role: 'img', 'aria-label': t('chat.loading') }));
    else if (tl.error) top.append(h('span', { text: tl.error }), h('button', { type: 'button', class: 'link-btn', text: t('message.retry'), onclick: () => controller.ensureLoaded(name) }));
    else if (tl.loaded && !tl.hasMore) top.appendChild(h('span', { class: 'history-start', text: list.length ? t('chat.beginning') : t('chat.empty') }));

    if (tl.loaded && !wasLoaded) {
      wasLoaded = true;
      forceBottom = true;
    }
    if (forceBottom || stick) {
      messages.scrollTop = messages.scrollHeight;
      if (tl.loaded) forceBottom = false;
    } else if (anchor && next.has(anchor.key)) {
      messages.scrollTop = next.get(anchor.key).el.offsetTop - anchor.offset;
    }
    jump.hidden = isNearBottom();
    // A short history that does not fill the view cannot be scrolled, and a
    // reader still near the top when a page lands (a scroll that came while
    // the page was loading is not repeated) wants the next one: load more now.
    const nearTop = !stick && !forceBottom && messages.scrollTop < 300;
    if (tl.loaded && tl.hasMore && !tl.loadingOlder && (nearTop || messages.scrollHeight <= messages.clientHeight + 40)) controller.loadOlder(name);
  }

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
      // A member's identity key may have changed since we last looked.
      if (name && state.chats.get(name)?.e2ee) secure.checkMembers(name).catch(() => {});
      for (const entry of cache.values()) entry.el.remove();
      cache = new Map();
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
    if (!name) return;
    const tl = state.timelines.get(name);
    if (tl?.loaded && tl.hasMore && !tl.loadingOlder && messages.scrollTop < 300) controller.loadOlder(name);
  }, { passive: true });

  // Touch screens have no hover: a tap on a message shows its actions.
  messages.addEventListener('click', (event) => {
    const msg = event.target.closest('.msg');
    if (!msg || event.target.closest('button, a, textarea')) return;
    for (const other of messages.querySelectorAll('.msg.show-actions')) if (other !== msg) other.classList.remove('show-actions');
    msg.classList.toggle('show-actions');
  });

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
    unmount() {
      for (const off of offs) off();
      resizeObserver.disconnect();
      window.removeEventListener('resize', onResize);
    },
  };
}
