// One message as the chat view shows it: author, reply quote, safe
// Markdown or a file, edited and deleted markers, time, status, actions.

import { h, userText } from '../dom.js';
import { displayName, personAvatar } from '../profiles.js';
import { icon } from '../icons.js';
import { t, tNodes, list } from '../i18n.js';
import { render, isEmojiOnly, plain } from '../markdown.js';
import { time, fullDateTime, fileSize } from '../format.js';
import * as files from '../files.js';
import * as controller from '../controller.js';
import { iconButton } from './common.js';
import { openImage } from './dialogs.js';
import { addShortcuts } from './format-bar.js';

const systemKeys = { added: 'system.added', removed: 'system.removed', left: 'system.left', renamed: 'system.renamed', owner: 'system.owner' };

function systemKey(s) {
  if (s.event === 'created') return s.users && s.users.length ? 'system.createdWith' : 'system.created';
  return systemKeys[s.event] || null;
}

function systemParams(s) {
  return { actor: s.actor || '', users: list(s.users || []), title: s.title || '' };
}

/** systemText renders a system event in the language in use, falling back to the server's English. */
export function systemText(m) {
  const key = m.system && systemKey(m.system);
  return key ? t(key, systemParams(m.system)) : m.text || '';
}

/** systemNodes is systemText as DOM, with names and titles isolated (<bdi>). */
export function systemNodes(m) {
  const key = m.system && systemKey(m.system);
  if (!key) return h('bdi', { text: m.text || '' });
  return tNodes(key, systemParams(m.system));
}

/** renderSystem is a centred note for a system message, written in the UI's direction. */
export function renderSystem(m) {
  return h('div', { class: 'system', 'data-testid': 'system-message', 'data-id': String(m.id) },
    h('span', { title: fullDateTime(m.timestamp) }, systemNodes(m)));
}

/** renderDay is a day separator. */
export function renderDay(label) {
  return h('div', { class: 'day', 'data-testid': 'day-separator', role: 'separator' }, h('span', { text: label }));
}

function thumbSize(file) {
  const w = Number(file.width) || 320;
  const hgt = Number(file.height) || 240;
  const scale = Math.min(1, 320 / w, 320 / hgt);
  return [Math.max(1, Math.round(w * scale)), Math.max(1, Math.round(hgt * scale))];
}

function fileLink(file) {
  const a = h('a', { class: 'file-link', 'data-testid': 'file-link', href: file.url, download: file.name || 'file', dir: 'auto', text: file.name || t('message.file') });
  a.addEventListener('click', (event) => {
    event.preventDefault();
    a.classList.add('is-busy');
    files.download(file)
      .catch((err) => controller.toast(err.status === 410 ? t('message.fileExpired') : err.reason ? t('e2ee.fileFailed', { reason: t(`e2ee.reason.${err.reason}`) }) : controller.errorText(err)))
      .finally(() => a.classList.remove('is-busy'));
  });
  return a;
}

function renderFile(file) {
  if (file.expired) {
    return h('div', { class: 'file-card is-expired' }, icon('file', 'file-icon'),
      h('div', { class: 'file-info' }, userText('span', file.name || '', { class: 'file-name' }),
        h('span', { class: 'file-expired', 'data-testid': 'file-expired', text: t('message.fileExpired') })));
  }
  const parts = [];
  if (file.thumbnail_url) {
    const [w, hgt] = thumbSize(file);
    const img = h('img', { class: 'thumb', 'data-testid': 'file-thumb', alt: file.name || t('message.image'), width: String(w), height: String(hgt), decoding: 'async' });
    files.thumbURL(file).then((url) => { img.src = url; }, () => img.classList.add('is-broken'));
    parts.push(h('button', { type: 'button', class: 'thumb-btn', 'aria-label': t('message.openImage', { name: file.name || '' }), onclick: () => openImage(file) }, img));
  }
  const kind = file.thumbnail_url ? '' : files.mediaKind(file);
  const card = h('div', { class: 'file-card' }, icon(file.thumbnail_url ? 'download' : 'file', 'file-icon'),
    h('div', { class: 'file-info' }, fileLink(file), h('span', { class: 'file-size', text: file.size ? fileSize(file.size) : '' })));
  if (kind === 'audio' || kind === 'video') card.appendChild(playButton(file, kind, card));
  if (kind === 'pdf') card.appendChild(pdfButton(file));
  parts.push(card);
  return h('div', { class: `file${kind ? ` is-${kind}` : ''}` }, parts);
}

// failText says why a file did not open.
function failText(err) {
  return err.status === 410 ? t('message.fileExpired') : err.reason ? t('e2ee.fileFailed', { reason: t(`e2ee.reason.${err.reason}`) }) : controller.errorText(err);
}

// playButton puts a player with the browser's controls in place of the
// button when asked: streaming by range from a signed URL, or, in an
// encrypted chat, from the file fetched and decrypted whole.
function playButton(file, kind, card) {
  const b = iconButton('play', t('message.play', { name: file.name || '' }), { class: 'icon-btn play-btn', 'data-testid': 'media-play' });
  b.addEventListener('click', () => {
    b.disabled = true;
    b.classList.add('is-busy');
    const player = h(kind, { class: `media-${kind}`, 'data-testid': `media-${kind}`, controls: '', preload: 'metadata', 'aria-label': file.name || t('message.file') });
    if (kind === 'video') player.setAttribute('playsinline', '');
    files.attachMedia(player, file, (err) => controller.toast(failText(err))).then(() => {
      card.after(player);
      b.remove();
      player.focus();
      player.play().catch(() => { /* the browser wants another gesture: the controls are there */ });
    }, (err) => {
      b.disabled = false;
      b.classList.remove('is-busy');
      controller.toast(failText(err));
    });
  });
  return b;
}

// pdfButton opens a PDF in a new tab from a blob of its bytes.
function pdfButton(file) {
  const b = iconButton('pdf', t('message.openPdf', { name: file.name || '' }), { class: 'icon-btn', 'data-testid': 'file-open-pdf' });
  b.addEventListener('click', () => {
    files.openInTab(file).then((how) => {
      if (how === 'downloaded') controller.toast(t('message.popupBlocked', { name: file.name || '' }), 'info');
    }, (err) => controller.toast(failText(err)));
  });
  return b;
}

// deletedUser is the name the server gives a deleted account's messages
// (no real username has a space); the client shows it in the reader's
// language, set apart from real names.
const deletedUser = 'deleted user';

function author(username, cls, props = {}) {
  if (username === deletedUser) {
    return h('span', { class: `${cls} is-deleted-user`, text: t('user.deleted'), ...props });
  }
  return userText('span', displayName(username), { class: cls, title: `@${username}`, ...props });
}

function replyQuote(reply, onJump) {
  return h('button', { type: 'button', class: 'reply-quote', 'data-testid': 'message-reply', onclick: () => onJump(reply.id) },
    author(reply.username || '', 'rq-author'),
    reply.deleted
      ? h('span', { class: 'rq-text is-deleted', text: t('message.deleted') })
      : userText('span', plain(reply.text || ''), { class: 'rq-text' }));
}

function editForm(m, opts) {
  const area = h('textarea', { class: 'edit-input', dir: 'auto', rows: '2', 'aria-label': t('message.editLabel'), value: m.text });
  const save = () => {
    const text = area.value;
    if (!text.trim() || text === m.text) { opts.onCancelEdit(); return; }
    opts.onSaveEdit(m, text);
  };
  addShortcuts(area);
  area.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) { event.preventDefault(); save(); }
    if (event.key === 'Escape') { event.preventDefault(); event.stopPropagation(); opts.onCancelEdit(); }
  });
  const grow = () => { area.style.height = 'auto'; area.style.height = `${Math.min(area.scrollHeight, 240)}px`; };
  area.addEventListener('input', grow);
  requestAnimationFrame(() => { grow(); area.focus(); area.setSelectionRange(area.value.length, area.value.length); });
  return h('div', { class: 'edit-form' }, area,
    h('div', { class: 'edit-actions' },
      h('span', { class: 'hint', text: t('message.editHint') }),
      h('button', { type: 'button', class: 'btn btn-secondary btn-sm', text: t('action.cancel'), onclick: () => opts.onCancelEdit() }),
      h('button', { type: 'button', class: 'btn btn-primary btn-sm', text: t('action.save'), onclick: save })));
}

/**
 * renderMessage draws a message. opts: own, grouped, change (a pending edit
 * or delete), editing, pending (an unacknowledged message), and the
 * handlers onReply, onEdit, onDelete, onSaveEdit, onCancelEdit, onJump,
 * onRetry, onDiscard.
 */
export function renderMessage(m, opts) {
  const { own, grouped, change, editing, pending } = opts;
  const held = pending?.status === 'held';
  const deleted = m.deleted || change?.kind === 'delete';
  const text = change?.kind === 'edit' ? change.text : m.text;
  const classes = ['msg'];
  if (own) classes.push('own');
  if (grouped) classes.push('grouped');
  if (deleted) classes.push('is-deleted');
  if (pending) classes.push('is-pending');
  if (pending?.status === 'failed' || pending?.status === 'held') classes.push('is-failed');

  const el = h('div', { class: classes.join(' '), 'data-testid': 'message' });
  if (pending) el.dataset.clientId = pending.clientId;
  else el.dataset.id = String(m.id);

  const gutter = h('div', { class: 'msg-gutter' }, !own && !grouped ? personAvatar(m.username, 'sm') : null);
  const bubble = h('div', { class: 'bubble' });
  bubble.appendChild(author(m.username, `msg-author${own || grouped ? ' sr-text' : ''}`, { 'data-testid': 'message-author' }));
  if (m.reply && !deleted) bubble.appendChild(replyQuote(m.reply, opts.onJump));

  let body;
  if (m.undecryptable && !deleted) {
    // Never a blank: say that the message did not open, and why.
    body = h('div', { class: 'msg-text undecryptable', 'data-testid': 'message-undecryptable', 'data-reason': m.undecryptable, role: 'note' },
      icon('error', 'status-icon'), h('span', { text: t('e2ee.undecryptable', { reason: t(`e2ee.reason.${m.undecryptable}`) }) }));
  } else if (deleted) {
    body = h('div', { class: 'msg-text is-deleted', 'data-testid': 'message-text', text: t('message.deleted') });
  } else if (editing) {
    body = editForm({ ...m, text }, opts);
  } else if (m.type === 'file') {
    body = m.file ? renderFile(m.file) : h('div', { class: 'msg-text', 'data-testid': 'message-text', text: t('message.file') });
  } else {
    body = h('div', { class: `msg-text${isEmojiOnly(text) ? ' jumbo' : ''}`, 'data-testid': 'message-text', dir: 'auto' }, render(text || ''));
  }
  bubble.appendChild(body);

  const meta = h('span', { class: 'msg-meta' });
  if ((m.edited_at || change?.kind === 'edit') && !deleted) meta.appendChild(h('span', { class: 'edited', 'data-testid': 'message-edited', text: t('message.edited') }));
  meta.appendChild(h('time', { datetime: m.timestamp, title: fullDateTime(m.timestamp), text: time(m.timestamp) }));
  if (pending || change) {
    const failed = pending?.status === 'failed';
    const held = pending?.status === 'held';
    const label = failed ? t('message.failed') : held ? t('e2ee.held') : change ? (change.kind === 'delete' ? t('message.deleting') : t('message.saving')) : t('message.sending');
    meta.appendChild(h('span', { class: `status${failed || held ? ' is-failed' : ''}`, 'data-testid': 'message-status', 'data-status': pending?.status || 'sending' },
      icon(failed || held ? 'error' : 'clock', 'status-icon'), h('span', { text: label })));
  } else if (own) {
    meta.appendChild(h('span', { class: 'sent-mark', title: t('message.sent') }, icon('check', 'status-icon'), h('span', { class: 'sr-text', text: t('message.sent') })));
  }
  bubble.appendChild(meta);

  const col = h('div', { class: 'msg-col' }, bubble);
  if (held) {
    col.appendChild(h('div', { class: 'failed-row' }, h('span', { dir: 'auto', text: pending.error || '' }),
      h('button', { type: 'button', class: 'link-btn', text: t('message.discard'), onclick: () => opts.onDiscard(pending) })));
  }
  if (pending?.status === 'failed') {
    col.appendChild(h('div', { class: 'failed-row' },
      pending.error ? h('span', { dir: 'auto', text: pending.error }) : null,
      h('button', { type: 'button', class: 'link-btn', text: t('message.retry'), onclick: () => opts.onRetry(pending) }),
      h('button', { type: 'button', class: 'link-btn', text: t('message.discard'), onclick: () => opts.onDiscard(pending) })));
  }

  const actions = h('div', { class: 'msg-actions', role: 'group', 'aria-label': t('message.actions') });
  if (!pending && !deleted && !editing) {
    if (!m.undecryptable) actions.appendChild(iconButton('reply', t('message.reply'), { onclick: () => opts.onReply(m) }));
    if (own && m.type === 'text' && !change && !m.undecryptable) actions.appendChild(iconButton('edit', t('message.edit'), { onclick: () => opts.onEdit(m) }));
    if (own && !change) actions.appendChild(iconButton('trash', t('message.delete'), { class: 'icon-btn danger', onclick: () => opts.onDelete(m) }));
  }
  el.append(gutter, col, actions);
  return el;
}
