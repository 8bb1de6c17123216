// The controller turns server frames into store changes and user actions
// into REST calls and frames. Views call these functions and render the store.

import * as api from './api.js';
import * as session from './session.js';
import * as store from './store.js';
import { state } from './store.js';
import { Socket } from './socket.js';
import { notify, setUnreadTitle } from './notify.js';
import { t, isolate } from './i18n.js';
import { plain } from './markdown.js';
import * as files from './files.js';
import * as secure from './secure.js';
import * as local from './local.js';
import * as profiles from './profiles.js';
import { displayName, setProfile } from './profiles.js';
import { errorText } from './account.js';

export { errorText, signIn, register } from './account.js';

const outboxKey = 'mapsim.outbox';
const chatKey = 'mapsim.chat';

let socket = null;
let signedOut = () => {};
let synced = new Set(); // chats whose sync was sent on this connection
let confirmed = new Set(); // chats whose sync the server has finished
let typing = { chat: null, at: 0 };
let maxMessageBytes = 8192; // the server's default, until its hello says
let uploadMaxBytes = 0; // 0: not known yet, the server decides
let unsubscribers = [];
let ending = false;

/** onSignedOut sets what happens when the session ends (logout, or a rejected token). */
export function onSignedOut(fn) {
  signedOut = fn;
}

/** toast shows a short message; kind is 'error' or 'info'. */
export function toast(text, kind = 'error') {
  if (text) store.emit('toast', { text, kind });
}

// chatPath is a chat's REST path. Chat names contain ':' (direct:4:5,
// group:…); it stays literal because the router matches the raw path and
// does not unescape %3A in path parameters.
function chatPath(name, rest = '') {
  return `/chats/${encodeURIComponent(name).replace(/%3A/gi, ':')}${rest}`;
}

function newClientId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return 'w-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

// ---- session ----

/** start loads the chats, opens the WebSocket and restores unsent messages. */
export async function start(current) {
  ending = false;
  state.me = current.username;
  local.use(current.username);
  api.onUnauthorized(() => end(t('auth.expired')));
  session.onExpired(() => end(t('auth.expired')));
  socket = new Socket({
    ticket: connectTicket,
    onOpen: syncAll,
    onFrame: handleFrame,
    onState: (value) => store.setConnection(value),
    onFailed: handleFailed,
  });
  unsubscribers = [
    store.on('chats', () => setUnreadTitle(store.totalUnread())),
    store.on('pending', persistOutbox),
    store.on('timeline', rememberPreview),
  ];
  document.addEventListener('visibilitychange', onVisibility);
  try {
    await loadChats();
  } catch (err) {
    if (err.status === 401) return;
    // The socket keeps retrying; the list comes with it.
  }
  restoreOutbox();
  socket.start();
  let first = null;
  try { first = sessionStorage.getItem(chatKey); } catch { /* none */ }
  if (!first || !state.chats.has(first)) first = state.chats.has('global') ? 'global' : store.sortedChats()[0]?.name;
  if (first) openChat(first);
}

function onVisibility() {
  if (document.visibilityState === 'visible' && state.current) markRead(state.current);
}

/** logout revokes the session on the server and signs out here. */
export async function logout() {
  try {
    await api.post('/logout/');
  } catch { /* signed out here regardless */ }
  local.forget();
  end();
}

function end(message) {
  if (ending) return;
  ending = true;
  socket?.stop();
  socket = null;
  for (const off of unsubscribers) off();
  unsubscribers = [];
  document.removeEventListener('visibilitychange', onVisibility);
  store.reset();
  profiles.reset();
  files.forgetAll();
  secure.close();
  session.clearSession();
  setUnreadTitle(0);
  signedOut(message);
}

// ---- chats ----

async function loadChats() {
  const answer = await api.get('/chats/');
  for (const chat of answer.chats || []) secure.noteChat(chat);
  store.replaceChats(answer.chats || []);
  if (state.current && !state.chats.has(state.current)) openChat(state.chats.has('global') ? 'global' : null);
}

// Every (re)connect refreshes the chat list, so chats added or removed
// during an outage are right before the syncs go out.
async function connectTicket() {
  await loadChats();
  const answer = await api.post('/ws-ticket/');
  return answer.ticket;
}

function syncAll() {
  synced = new Set();
  confirmed = new Set();
  for (const name of state.chats.keys()) syncChat(name);
  retryUndecryptable();
}

// retryUndecryptable opens again, once the connection is back, the
// messages whose keys could not be fetched for want of a network.
function retryUndecryptable() {
  for (const [name, tl] of state.timelines) {
    const failed = [...tl.byId.values()].filter((m) => m.undecryptable === 'network' && m.cipher);
    if (!failed.length) continue;
    reveal(name, failed.map((m) => {
      const copy = { ...m, text: m.cipher };
      delete copy.undecryptable;
      delete copy.cipher;
      delete copy._v;
      return copy;
    })).then((shown) => { if (state.timelines.get(name) === tl) store.putMessages(name, shown); });
  }
}

// syncChat asks for everything after the last id this client holds for a
// chat. With resume=1 the server holds the chat's live messages until then.
function syncChat(name) {
  if (!socket?.isOpen() || synced.has(name) || !state.chats.has(name)) return;
  synced.add(name);
  const chat = state.chats.get(name);
  const tl = state.timelines.get(name);
  let after = state.cursors.get(name) || 0;
  if (!tl || !tl.loaded) after = Math.max(after, chat.last_message_id || 0);
  socket.send({ type: 'sync', chat_name: name, after_id: after });
}

/** openChat shows a chat, loads its latest page and marks it read. */
export async function openChat(name) {
  if (state.current && state.current !== name) stopTyping();
  store.setCurrent(name);
  if (!name) return;
  try { sessionStorage.setItem(chatKey, name); } catch { /* not kept */ }
  await ensureLoaded(name);
  markRead(name);
}

/** ensureLoaded fetches a chat's newest page once. */
export async function ensureLoaded(name) {
  const tl = store.timeline(name);
  if (tl.loaded || tl.loading) return;
  tl.loading = true;
  tl.error = null;
  store.emit('timeline', name);
  try {
    let answer = await api.get('/messages/', { chat_id: name, limit: 50 });
    let page = answer.messages || [];
    // A chat with more unread than a page opens at its first unread
    // message: fetch back to it (a few large pages at most).
    const chat = state.chats.get(name);
    const readTo = chat?.unread ? (chat.last_read_id || 0) : null;
    for (let more = 0; readTo !== null && more < 5 && answer.has_more && page.length && page[0].id > readTo; more++) {
      answer = await api.get('/messages/', { chat_id: name, before: page[0].id, limit: 200 });
      page = [...(answer.messages || []), ...page];
    }
    const shown = await reveal(name, page);
    tl.loaded = true;
    tl.hasMore = !!answer.has_more;
    store.putMessages(name, shown);
  } catch (err) {
    tl.error = errorText(err);
  } finally {
    tl.loading = false;
    store.emit('timeline', name);
  }
}

/** loadOlder fetches the page before the oldest message held (keyset, before=). */
export async function loadOlder(name) {
  const tl = store.timeline(name);
  if (!tl.loaded || !tl.hasMore || tl.loadingOlder || !tl.ids.length) return false;
  tl.loadingOlder = true;
  store.emit('timeline', name);
  try {
    const answer = await api.get('/messages/', { chat_id: name, before: tl.ids[0], limit: 50 });
    const shown = await reveal(name, answer.messages || []);
    tl.hasMore = !!answer.has_more;
    store.putMessages(name, shown);
    return true;
  } catch (err) {
    toast(errorText(err));
    return false;
  } finally {
    tl.loadingOlder = false;
    store.emit('timeline', name);
  }
}

// isReading says whether the user can see a chat's newest messages now.
function isReading(name) {
  return state.current === name && document.visibilityState === 'visible' && state.chatVisible !== false;
}

/** markRead tells the server the open chat is read up to its newest message. */
export function markRead(name) {
  const chat = state.chats.get(name);
  if (!chat || !isReading(name)) return;
  const newest = store.newestMessageId(name);
  const tl = state.timelines.get(name);
  if (!tl?.loaded) return;
  if (chat.unread) {
    chat.unread = 0;
    store.emit('chats');
  }
  if (newest <= (chat.last_read_id || 0)) return;
  chat.last_read_id = newest;
  if (!socket?.send({ type: 'read', chat_name: name, message_id: newest })) {
    api.post(chatPath(name, '/read'), { message_id: newest }).catch(() => {});
  }
}

/** createChat makes a direct chat or a group, end-to-end encrypted, and opens it. */
export async function createChat(kind, members, title) {
  const body = kind === 'group' ? { kind, title, members } : { kind, members };
  const chat = await api.post('/chats/', body);
  secure.noteChat(chat);
  store.upsertChat(chat);
  syncChat(chat.name);
  openChat(chat.name);
  return chat;
}

// leaving holds the groups I am leaving: the chat_removed frame that
// the leave causes says nothing (the leaver is told once, by the view).
const leaving = new Set();

/** leaveChat leaves a group. */
export async function leaveChat(name) {
  leaving.add(name);
  try {
    await api.post(chatPath(name, '/leave'));
    dropChat(name);
  } finally {
    leaving.delete(name);
  }
}

/** renameChat renames a group (owners only). */
export async function renameChat(name, title) {
  const chat = await api.request('PATCH', chatPath(name), { title });
  store.upsertChat(chat);
}

/** addMembers adds people to a group (owners only). */
export async function addMembers(name, members) {
  const chat = await api.post(chatPath(name, '/members'), { members });
  store.upsertChat(chat);
}

/** removeMember removes someone from a group (owners only). */
export async function removeMember(name, username) {
  await api.request('DELETE', chatPath(name, `/members/${encodeURIComponent(username)}`));
  // Shown at once; the chat_updated frame that follows agrees.
  const chat = state.chats.get(name);
  if (chat) store.upsertChat({ ...chat, members: (chat.members || []).filter((m) => m.username.toLowerCase() !== username.toLowerCase()) });
}

function dropChat(name) {
  const wasOpen = state.current === name;
  local.drop(name);
  store.removeChat(name);
  if (wasOpen) openChat(state.chats.has('global') ? 'global' : store.sortedChats()[0]?.name || null);
}

/** searchUsers finds users whose username or display name starts with q. */
export async function searchUsers(q) {
  const answer = await api.get('/users/search', { q, limit: 20 });
  const users = answer.users || [];
  for (const u of users) setProfile(u);
  return users;
}

// ---- sending ----

function frameFor(p) {
  switch (p.kind) {
    case 'text': {
      const frame = { type: 'text', chat_name: p.chatName, text: p.text, client_id: p.clientId };
      if (p.replyTo) frame.reply_to = p.replyTo;
      return frame;
    }
    case 'file': {
      const frame = { type: 'file', chat_name: p.chatName, text: p.fileUrl, client_id: p.clientId };
      if (p.replyTo) frame.reply_to = p.replyTo;
      return frame;
    }
    case 'edit':
      return { type: 'edit', chat_name: p.chatName, message_id: p.messageId, text: p.text, client_id: p.clientId };
    default:
      return { type: 'delete', chat_name: p.chatName, message_id: p.messageId, client_id: p.clientId };
  }
}

function replyPreview(name, id) {
  const m = state.timelines.get(name)?.byId.get(id);
  return m ? { id, username: m.username, text: m.file ? m.file.name : (m.text || '').slice(0, 200), deleted: !!m.deleted } : { id, username: '', text: '' };
}

/** tooLong says whether a text is over the server's message size. */
export function tooLong(text) {
  return new TextEncoder().encode(text).length > maxMessageBytes;
}

/** tooLarge says whether a file is over the server's upload limit (as its last hello said). */
export function tooLarge(file) {
  return uploadMaxBytes > 0 && file.size > uploadMaxBytes;
}

/** uploadLimit is the largest file the server accepts, in bytes (0: not known). */
export function uploadLimit() {
  return uploadMaxBytes;
}

// applyLimits takes the sizes a hello announced; every hello does, so a
// reconnect to a reconfigured server takes its new limits. (The socket
// takes the rates.)
function applyLimits(hello) {
  const limits = hello.limits || {};
  const bytes = Number(limits.max_message_bytes || hello.max_message_bytes);
  if (bytes > 0) maxMessageBytes = bytes;
  const upload = Number(limits.upload_max_bytes);
  if (upload > 0) uploadMaxBytes = upload;
}

/** sendText sends a message to the open chat; it shows as "sending…" until acknowledged. */
export function sendText(text, replyTo = 0) {
  const name = state.current;
  if (!name || !text.trim()) return false;
  if (tooLong(text)) {
    toast(t('composer.tooLong'));
    return false;
  }
  const p = { clientId: newClientId(), kind: 'text', chatName: name, text, createdAt: Date.now(), status: 'sending' };
  if (replyTo) {
    p.replyTo = replyTo;
    p.reply = replyPreview(name, replyTo);
  }
  store.addPending(p);
  dispatch(p);
  stopTyping();
  return true;
}

/** sendFile posts an uploaded file's message (in an encrypted chat, an encrypted message that carries the file's key). */
export function sendFile(name, uploaded, replyTo = 0) {
  const p = uploaded.e2ee
    ? { clientId: newClientId(), kind: 'file', chatName: name, createdAt: Date.now(), status: 'sending', e2eeFile: uploaded.file, file: viewFile(uploaded.file) }
    : {
      clientId: newClientId(), kind: 'file', chatName: name, fileUrl: uploaded.file_url, createdAt: Date.now(), status: 'sending',
      file: { id: uploaded.file_id, name: uploaded.name, size: uploaded.size, mime_type: uploaded.mime_type, url: uploaded.file_url, thumbnail_url: uploaded.thumbnail_url, width: uploaded.width, height: uploaded.height },
    };
  if (replyTo) {
    p.replyTo = replyTo;
    p.reply = replyPreview(name, replyTo);
  }
  store.addPending(p);
  dispatch(p);
}

/**
 * upload sends a file to a chat's upload route; see api.upload. In an
 * encrypted chat the file is encrypted here first (and an image gets an
 * encrypted thumbnail made here); the server receives opaque bytes named
 * file.bin, and the answer is {e2ee: true, file: descriptor}.
 */
export function upload(name, file, onProgress) {
  if (!isEncrypted(name)) return api.upload(name, file, onProgress);
  let current = null;
  let aborted = false;
  const step = (request) => {
    if (aborted) throw new api.ApiError(0, '', 'aborted');
    current = request;
    return request.promise;
  };
  const promise = (async () => {
    const sealed = await secure.encryptFile(file);
    const thumb = await makeThumbnail(file);
    const share = thumb ? 0.9 : 1;
    const up = await step(api.upload(name, opaque(sealed.ciphertext), (f) => onProgress(f * share)));
    const descriptor = {
      id: up.file_id, name: file.name || 'file', mime: file.type || 'application/octet-stream', ...sealed.descriptor,
    };
    if (thumb) {
      descriptor.width = thumb.width;
      descriptor.height = thumb.height;
      const sealedThumb = await secure.encryptFile(thumb.bytes);
      const tu = await step(api.upload(name, opaque(sealedThumb.ciphertext), (f) => onProgress(share + f * (1 - share))));
      const { key, nonce_prefix: noncePrefix, sha256 } = sealedThumb.descriptor;
      descriptor.thumb = { id: tu.file_id, mime: 'image/jpeg', key, nonce_prefix: noncePrefix, sha256, width: thumb.thumbWidth, height: thumb.thumbHeight };
    }
    return { e2ee: true, file: descriptor };
  })();
  return { promise, abort: () => { aborted = true; current?.abort(); } };
}

function opaque(bytes) {
  return new File([bytes], 'file.bin', { type: 'application/octet-stream' });
}

const thumbnailTypes = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/bmp']);

// makeThumbnail draws an image at most 320×320 as a JPEG, here in the
// browser, since the server cannot see an encrypted image. A file that
// does not decode as an image has none.
async function makeThumbnail(file) {
  if (!thumbnailTypes.has(file.type) || typeof createImageBitmap !== 'function') return null;
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    return null;
  }
  const scale = Math.min(1, 320 / bitmap.width, 320 / bitmap.height);
  const w = Math.max(1, Math.round(bitmap.width * scale));
  const h = Math.max(1, Math.round(bitmap.height * scale));
  const canvas = document.createElement('canvas');
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, w, h);
  ctx.drawImage(bitmap, 0, 0, w, h);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', 0.82));
  const result = { width: bitmap.width, height: bitmap.height, thumbWidth: w, thumbHeight: h };
  bitmap.close();
  if (!blob) return null;
  result.bytes = new Uint8Array(await blob.arrayBuffer());
  return result;
}

/** viewFile is an encrypted message's file descriptor in the form the views show (with e2ee: the descriptor). */
export function viewFile(d) {
  if (!d || typeof d !== 'object' || typeof d.id !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(d.id)) return null;
  const thumbOk = d.thumb && typeof d.thumb.id === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(d.thumb.id);
  return {
    id: d.id, name: typeof d.name === 'string' ? d.name : '', size: Number(d.size) || 0, mime_type: typeof d.mime === 'string' ? d.mime : '',
    url: `/file/${d.id}`, thumbnail_url: thumbOk ? `/file/${d.thumb.id}` : undefined,
    width: Number(d.width) || undefined, height: Number(d.height) || undefined, e2ee: d,
  };
}

/** isEncrypted says whether a chat is end-to-end encrypted. */
export function isEncrypted(name) {
  return Boolean(state.chats.get(name)?.e2ee);
}

/** editMessage changes one of my messages; the new text shows at once. */
export function editMessage(name, messageId, text) {
  if (tooLong(text)) {
    toast(t('composer.tooLong'));
    return false;
  }
  const p = { clientId: newClientId(), kind: 'edit', chatName: name, messageId, text, createdAt: Date.now(), status: 'sending' };
  if (isEncrypted(name)) {
    // The edit is encrypted under the message's own client_id, one rev higher.
    const m = state.timelines.get(name)?.byId.get(messageId);
    if (!m?.client_id) return false;
    p.origClientId = m.client_id;
    p.rev = (m.rev || 0) + 1;
    if (m.reply) p.reply = { id: m.reply.id, username: m.reply.username, text: m.reply.text };
  }
  store.addPending(p);
  dispatch(p);
  return true;
}

/** deleteMessage deletes one of my messages. */
export function deleteMessage(name, messageId) {
  const p = { clientId: newClientId(), kind: 'delete', chatName: name, messageId, createdAt: Date.now(), status: 'sending' };
  store.addPending(p);
  dispatch(p);
}

// dispatch sends a pending message, edit or delete: as it is in a chat
// that is not end-to-end encrypted, else encrypted first (which may start
// an epoch, or wait while a member's changed identity key is not accepted).
function dispatch(p) {
  if (!isEncrypted(p.chatName) || p.kind === 'delete') {
    socket?.enqueue(frameFor(p));
    return;
  }
  encryptedFrame(p).then((frame) => {
    if (state.pending.get(p.clientId) !== p) return; // discarded meanwhile
    if (p.status !== 'sending') store.updatePending(p.clientId, { status: 'sending', error: null });
    socket?.enqueue(frame);
  }, (err) => {
    if (state.pending.get(p.clientId) !== p) return;
    if (err instanceof secure.HeldError) {
      store.updatePending(p.clientId, { status: 'held', error: t('e2ee.heldFor', { users: err.usernames.join(', ') }) });
      return;
    }
    if (p.kind === 'edit') {
      store.removePending(p.clientId);
      toast(e2eeErrorText(err));
      return;
    }
    store.updatePending(p.clientId, { status: 'failed', error: e2eeErrorText(err) });
  });
}

/** e2eeErrorText is what to tell the user about a failure to encrypt or send encrypted. */
export function e2eeErrorText(err) {
  if (err instanceof secure.HeldError) return t('e2ee.heldFor', { users: err.usernames.join(', ') });
  if (err?.reason) return t('e2ee.sendFailed', { reason: t(`e2ee.reason.${err.reason}`) });
  return errorText(err);
}

async function encryptedFrame(p) {
  const chat = state.chats.get(p.chatName);
  if (!chat) throw new api.ApiError(0, t('error.generic'), 'not_found');
  if (p.kind === 'edit') {
    const content = { text: p.text, rev: p.rev };
    if (p.reply) content.reply = p.reply;
    const text = await secure.encrypt(chat, p.origClientId, content);
    return { type: 'edit', chat_name: p.chatName, message_id: p.messageId, text, client_id: p.clientId };
  }
  const content = { text: p.kind === 'file' ? '' : p.text };
  if (p.kind === 'file') content.file = p.e2eeFile;
  if (p.reply && p.replyTo) content.reply = { id: p.replyTo, username: p.reply.username, text: p.reply.text };
  const frame = { type: 'text', chat_name: p.chatName, text: await secure.encrypt(chat, p.clientId, content), client_id: p.clientId };
  if (p.replyTo) frame.reply_to = p.replyTo;
  return frame;
}

/** acceptKey accepts a member's new identity key; the sends held for it go. */
export async function acceptKey(username) {
  await secure.acceptKey(username);
  for (const p of [...state.pending.values()]) if (p.status === 'held') dispatch(p);
}

/**
 * reveal opens the encrypted messages of a chat for display: text, reply
 * preview and file from inside the message, or the reason it does not
 * open (m.undecryptable), never a blank.
 */
export async function reveal(name, messages) {
  const chat = state.chats.get(name);
  return Promise.all(messages.map(async (m) => {
    if (m.type === 'system' && chat?.e2ee && ['added', 'removed', 'left'].includes(m.system?.event)) secure.markStale(name);
    if (m.type !== 'text' || m.deleted || !(chat?.e2ee || secure.isEncryptedText(m.text))) return m;
    if (!secure.isEncryptedText(m.text)) return { ...m, text: '', undecryptable: 'malformed' };
    const opened = await secure.decrypt(name, m);
    // The ciphertext stays, so that a failure of the network can be tried again.
    if (opened.error) return { ...m, text: '', cipher: m.text, reply: undefined, undecryptable: opened.error };
    const c = opened.content;
    const shown = { ...m, text: c.text, rev: c.rev, e2ee: true, reply: undefined };
    if (c.reply) shown.reply = { id: Number(c.reply.id) || m.reply_to || 0, username: c.reply.username, text: c.reply.text };
    if (c.file) {
      shown.type = 'file';
      shown.file = viewFile(c.file);
      if (!shown.file) return { ...m, text: '', undecryptable: 'malformed' };
    }
    return shown;
  }));
}

/** retryPending sends a failed message again, with the same client_id. */
export function retryPending(clientId) {
  const p = state.pending.get(clientId);
  if (!p) return;
  store.updatePending(clientId, { status: 'sending', error: null });
  dispatch(p);
}

/** discardPending drops an unsent message. */
export function discardPending(clientId) {
  socket?.discard(clientId);
  store.removePending(clientId);
}

/** typingChanged tells the chat I am typing (at most every 3 s), or that I stopped. */
export function typingChanged(text) {
  const name = state.current;
  if (!name || !socket) return;
  if (text.trim()) {
    const now = Date.now();
    if (typing.chat !== name || now - typing.at > 3000) {
      if (typing.chat && typing.chat !== name) stopTyping();
      typing = { chat: name, at: now };
      socket.send({ type: 'typing', chat_name: name, typing: true });
    }
  } else {
    stopTyping();
  }
}

function stopTyping() {
  if (typing.chat && socket) socket.send({ type: 'typing', chat_name: typing.chat, typing: false });
  typing = { chat: null, at: 0 };
}

/** reconnectNow skips the wait before the next connection attempt. */
export function reconnectNow() {
  socket?.reconnectNow();
}

// Unsent messages survive a reload of the tab: they are kept in
// sessionStorage and resent with the same client_id.
function persistOutbox() {
  const kept = [...state.pending.values()].filter((p) => p.status !== 'failed').map((p) => {
    const copy = { ...p };
    delete copy._v;
    return copy;
  });
  try {
    if (kept.length) sessionStorage.setItem(outboxKey, JSON.stringify(kept));
    else sessionStorage.removeItem(outboxKey);
  } catch { /* memory only */ }
}

function restoreOutbox() {
  let kept = [];
  try { kept = JSON.parse(sessionStorage.getItem(outboxKey) || '[]'); } catch { kept = []; }
  for (const p of kept) {
    if (!p || !p.clientId || !state.chats.has(p.chatName)) continue;
    const restored = { ...p, status: 'sending' };
    store.addPending(restored);
    dispatch(restored);
  }
}

// ---- frames ----

function handleFrame(frame) {
  switch (frame.type) {
    case 'hello':
      applyLimits(frame);
      break;
    case 'online_users':
      store.setOnline(frame.users || []);
      break;
    case 'presence':
      store.setPresence(frame.username, !!frame.online);
      break;
    case 'text':
    case 'file':
    case 'system':
      store.advanceCursor(frame.chat_name, frame.id);
      inOrder(frame.chat_name, async () => handleMessage((await reveal(frame.chat_name, [frame]))[0]));
      break;
    case 'edit':
      store.advanceCursor(frame.chat_name, frame.id);
      inOrder(frame.chat_name, async () => {
        const change = await revealEdit(frame);
        if (change) store.applyChange(change);
      });
      break;
    case 'delete':
      store.advanceCursor(frame.chat_name, frame.id);
      inOrder(frame.chat_name, () => store.applyChange(frame));
      break;
    case 'epoch':
      secure.noteEpoch(frame.chat_name, Number(frame.epoch) || 0);
      break;
    case 'keys':
      // Someone's devices or identity changed: the epochs of the chats
      // shared with them must not carry new messages.
      secure.forgetUser(frame.username);
      for (const chat of state.chats.values()) {
        if (chat.e2ee && (chat.members || []).some((m) => m.username.toLowerCase() === String(frame.username).toLowerCase())) secure.markStale(chat.name);
      }
      if (state.current && isEncrypted(state.current)) secure.checkMembers(state.current).catch(() => {});
      break;
    case 'ack':
      handleAck(frame);
      break;
    case 'typing':
      if (frame.username && frame.username !== state.me) store.setTyping(frame.chat_name, frame.username, !!frame.typing, frame.expires_in || 5);
      break;
    case 'read':
      handleRead(frame);
      break;
    case 'chat_added':
      handleChatAdded(frame.chat);
      break;
    case 'chat_updated':
      if (frame.chat && state.chats.has(frame.chat.name)) {
        secure.noteChat(frame.chat);
        store.upsertChat(frame.chat);
      }
      break;
    case 'user':
      setProfile(frame.user);
      break;
    case 'chat_removed':
      if (state.chats.has(frame.chat_name)) {
        const chat = state.chats.get(frame.chat_name);
        if (chat.kind === 'group' && state.current === frame.chat_name && !leaving.has(frame.chat_name)) toast(t('chat.removedFrom', { title: chat.title || chat.name }), 'info');
        dropChat(frame.chat_name);
      }
      break;
    case 'synced':
      confirmed.add(frame.chat_name);
      store.advanceCursor(frame.chat_name, frame.last_id || 0);
      break;
    case 'error':
      handleError(frame);
      break;
    default:
      break; // pong, joined, left
  }
}

function countsAsUnread(m) {
  return (m.type === 'text' || m.type === 'file') && !m.deleted && m.username !== state.me;
}

// inOrder runs a chat's message, edit and delete frames one after the
// other: opening a message may wait for its key, and an edit or delete
// that overtook it would find nothing to change.
const frameQueues = new Map(); // chat name → the tail of its queue
function inOrder(name, fn) {
  const run = (frameQueues.get(name) || Promise.resolve()).then(fn);
  const tail = run.catch(() => {}); // a failure is the page's error, and the queue goes on
  frameQueues.set(name, tail);
  tail.then(() => { if (frameQueues.get(name) === tail) frameQueues.delete(name); });
  return run;
}

// revealEdit opens an edit frame of an encrypted chat under the message's
// own client_id; an edit whose rev is not above the one shown is refused.
async function revealEdit(frame) {
  if (!isEncrypted(frame.chat_name) && !secure.isEncryptedText(frame.text)) return frame;
  const target = state.timelines.get(frame.chat_name)?.byId.get(frame.message_id);
  if (!target) {
    // Not loaded: the history brings its latest text; the list's preview
    // of the chat follows now, if the edit is of its last message.
    await revealListedEdit(frame);
    return null;
  }
  const opened = secure.isEncryptedText(frame.text)
    ? await secure.decrypt(frame.chat_name, { ...frame, id: frame.message_id, client_id: target.client_id })
    : { error: 'malformed' };
  if (opened.error) return { ...frame, text: '', undecryptable: opened.error };
  if (!target.undecryptable && opened.content.rev <= (target.rev || 0)) return null;
  return { ...frame, text: opened.content.text, rev: opened.content.rev, undecryptable: null };
}

// revealListedEdit applies an edit of an encrypted chat's last message,
// not loaded here, to the chat list: its edited_at (so the kept preview
// of the old text no longer counts) and, when it opens, the new text kept
// as the preview.
async function revealListedEdit(frame) {
  const chat = state.chats.get(frame.chat_name);
  const last = chat?.last_message;
  if (!last || last.id !== frame.message_id) return;
  chat.last_message = { ...last, edited_at: frame.edited_at || last.edited_at };
  if (secure.isEncryptedText(frame.text)) {
    const opened = await secure.decrypt(frame.chat_name, { ...frame, id: frame.message_id, client_id: last.client_id });
    if (!opened.error && chat.last_message.id === frame.message_id) {
      const text = plain(opened.content.text || '').slice(0, 200);
      local.setPreview(frame.chat_name, { id: last.id, edited: chat.last_message.edited_at || '', username: last.username, text });
    }
  }
  store.emit('chats');
}

function handleMessage(m) {
  const name = m.chat_name;
  if (m.client_id && m.username === state.me && state.pending.has(m.client_id)) {
    socket?.discard(m.client_id);
    store.removePending(m.client_id);
  }
  store.putMessages(name, [m]);
  const chat = state.chats.get(name);
  if (!chat) {
    loadChats().catch(() => {});
    return;
  }
  // A chat list fetched on a reconnect may already count a message the
  // sync delivers after it: it is not new then, but an open chat still
  // has to be marked read.
  const isNew = m.id > (chat.last_message_id || 0);
  if (isNew) {
    chat.last_message_id = m.id;
    chat.last_message_at = m.timestamp;
  }
  if (countsAsUnread(m) && m.id > (chat.last_read_id || 0)) {
    if (isReading(name)) {
      markRead(name);
    } else if (isNew) {
      chat.unread = (chat.unread || 0) + 1;
      const body = m.undecryptable ? t('e2ee.undecryptablePreview') : m.type === 'file' ? (m.file?.name || t('message.file')) : plain(m.text);
      if (notifies(chat, m)) notify(isolate(chatLabel(chat)), `${displayName(m.username)}: ${isolate(body.slice(0, 180))}`, name, () => openChat(name));
    }
  }
  if (isNew) store.emit('chats');
}

// rememberPreview keeps, for the list after a reload, the newest message
// of an encrypted chat as this browser decrypted it: the server's preview
// of such a chat has no text.
function rememberPreview(name) {
  const chat = state.chats.get(name);
  const tl = state.timelines.get(name);
  if (!chat?.e2ee || !tl?.ids.length) return;
  const m = tl.byId.get(tl.ids[tl.ids.length - 1]);
  if (m.type === 'system' || m.deleted || m.undecryptable) return;
  const text = m.type === 'file' ? `📎 ${m.file?.name || t('message.file')}` : plain(m.text || '').slice(0, 200);
  local.setPreview(name, { id: m.id, edited: m.edited_at || '', username: m.username, text });
}

/**
 * notifies reports whether a new message of chat should notify me, by my
 * level for the chat: all, mentions (only a message naming me as
 * @username; the client sees the plaintext, so this works in end-to-end
 * encrypted chats too) or muted.
 */
export function notifies(chat, m) {
  const level = chat.notify || 'all';
  if (level === 'muted') return false;
  if (level === 'mentions') return m.type === 'text' && mentions(m.text || '', state.me || '');
  return true;
}

/** mentions reports whether text names username as @username, ignoring case and width. */
export function mentions(text, username) {
  if (!username) return false;
  const fold = (s) => s.normalize('NFKC').toLowerCase();
  const hay = fold(text);
  const needle = `@${fold(username)}`;
  for (let at = hay.indexOf(needle); at >= 0; at = hay.indexOf(needle, at + 1)) {
    const before = hay.slice(0, at).match(/[\p{L}\p{N}_.-]$/u);
    const after = hay.slice(at + needle.length).match(/^[\p{L}\p{M}\p{N}_]/u);
    if (!before && !after) return true;
  }
  return false;
}

/** setNotify sets my notification level for a chat: all, mentions or muted. */
export async function setNotify(name, level) {
  const answer = await api.request('PUT', `/chats/${encodeURIComponent(name)}/notify`, { notify: level });
  store.upsertChat(answer);
  return answer;
}

/** chatLabel is a chat's title as the list shows it. */
export function chatLabel(chat) {
  if (!chat) return '';
  if (chat.kind === 'global') return t('chat.global');
  if (chat.kind === 'direct') {
    const other = (chat.members || []).find((m) => m.username.toLowerCase() !== (state.me || '').toLowerCase());
    return other ? displayName(other.username) : (chat.title || chat.name);
  }
  return chat.title || chat.name;
}

function handleAck(ack) {
  const p = state.pending.get(ack.client_id);
  if (!p) return;
  if (p.kind === 'text' || p.kind === 'file') {
    const tl = store.timeline(p.chatName);
    if (!tl.byId.has(ack.id)) {
      store.putMessages(p.chatName, [{
        _local: true, type: p.kind, id: ack.id, chat_name: p.chatName, username: state.me, text: p.kind === 'file' ? (p.fileUrl || '') : p.text, rev: 0,
        timestamp: new Date(p.createdAt).toISOString(), client_id: p.clientId, reply_to: p.replyTo, reply: p.reply, file: p.file,
      }]);
    }
    const chat = state.chats.get(p.chatName);
    if (chat) {
      chat.last_message_at = new Date(p.createdAt).toISOString();
      store.emit('chats');
    }
  } else {
    store.applyChange({ type: p.kind, chat_name: p.chatName, message_id: p.messageId, text: p.text, rev: p.rev, edited_at: p.kind === 'edit' ? new Date().toISOString() : undefined });
  }
  store.removePending(ack.client_id);
}

function handleFailed(clientId, frame, error) {
  const p = state.pending.get(clientId);
  const detail = error.detail || t('error.generic');
  if (!p) return;
  if (error.code === 'stale_epoch' && (p.staleRetries || 0) < 3) {
    // The epoch this was encrypted on may carry no more messages: start
    // the next and send again, with the same client_id.
    p.staleRetries = (p.staleRetries || 0) + 1;
    secure.markStale(p.chatName);
    dispatch(p);
    return;
  }
  if (p.kind === 'edit' || p.kind === 'delete') {
    store.removePending(clientId);
    toast(detail);
  } else {
    store.updatePending(clientId, { status: 'failed', error: detail });
    persistOutbox();
  }
}

function handleError(frame) {
  if (frame.code === 'too_many') {
    // A sync (or a typing or read frame) was refused: resend the syncs the
    // server has not finished. A repeated replay is deduplicated by id.
    setTimeout(() => {
      for (const name of state.chats.keys()) {
        if (confirmed.has(name)) continue;
        synced.delete(name);
        syncChat(name);
      }
    }, Math.max(1000, (frame.retry_after || 1) * 1000));
    return;
  }
  if (frame.code === 'forbidden') {
    loadChats().catch(() => {});
  }
}

function handleRead(frame) {
  const chat = state.chats.get(frame.chat_name);
  if (!chat) return;
  chat.last_read_id = Math.max(chat.last_read_id || 0, frame.last_read_id || 0);
  if (chat.last_read_id >= (chat.last_message_id || 0)) {
    chat.unread = 0;
  } else {
    const tl = state.timelines.get(frame.chat_name);
    if (tl?.loaded) {
      let n = 0;
      for (const id of tl.ids) if (id > chat.last_read_id && countsAsUnread(tl.byId.get(id))) n++;
      chat.unread = n;
    }
  }
  store.emit('chats');
}

async function handleChatAdded(chat) {
  if (!chat?.name) return;
  secure.noteChat(chat);
  if (!state.chats.has(chat.name)) store.upsertChat({ ...chat, unread: 0 });
  try {
    const summary = await api.get(chatPath(chat.name));
    secure.noteChat(summary);
    if (state.chats.has(chat.name)) store.upsertChat(summary);
  } catch {
    // It may be gone again; the next chat list says.
  }
  syncChat(chat.name);
}

/** setChatVisible records whether the chat pane is on screen (narrow layouts show one pane). */
export function setChatVisible(visible) {
  const changed = state.chatVisible !== visible;
  state.chatVisible = visible;
  if (visible && state.current) markRead(state.current);
  // The list marks the open chat's draft while its composer is off screen.
  if (changed) store.emit('drafts', state.current);
}
