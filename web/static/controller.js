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

/** errorText is what to tell the user about a failed call. */
export function errorText(err) {
  if (!err) return t('error.generic');
  if (err.code === 'network') return t('error.network');
  return err.detail || t('error.generic');
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

/** signIn logs in and starts the session. */
export async function signIn(username, password) {
  const answer = await api.post('/login/', { username, password });
  session.saveSession({ token: answer.access_token, username: answer.username || username });
  return session.loadSession();
}

/** register makes an account and logs in with it. */
export async function register(username, password) {
  await api.post('/register/', { username, password });
  return signIn(username, password);
}

/** start loads the chats, opens the WebSocket and restores unsent messages. */
export async function start(current) {
  ending = false;
  state.me = current.username;
  api.onUnauthorized(() => end(t('auth.expired')));
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
  files.forgetAll();
  session.clearSession();
  setUnreadTitle(0);
  signedOut(message);
}

// ---- chats ----

async function loadChats() {
  const answer = await api.get('/chats/');
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
    const answer = await api.get('/messages/', { chat_id: name, limit: 50 });
    tl.loaded = true;
    tl.hasMore = !!answer.has_more;
    store.putMessages(name, answer.messages || []);
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
    tl.hasMore = !!answer.has_more;
    store.putMessages(name, answer.messages || []);
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

/** createChat makes a direct chat or a group and opens it. */
export async function createChat(kind, members, title) {
  // Not end-to-end encrypted until the browser's E2EE lands: the server
  // makes new chats encrypted unless asked otherwise.
  const body = kind === 'group' ? { kind, title, members, e2ee: false } : { kind, members, e2ee: false };
  const chat = await api.post('/chats/', body);
  store.upsertChat(chat);
  syncChat(chat.name);
  openChat(chat.name);
  return chat;
}

/** leaveChat leaves a group. */
export async function leaveChat(name) {
  await api.post(chatPath(name, '/leave'));
  dropChat(name);
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
}

function dropChat(name) {
  const wasOpen = state.current === name;
  store.removeChat(name);
  if (wasOpen) openChat(state.chats.has('global') ? 'global' : store.sortedChats()[0]?.name || null);
}

/** searchUsers finds users whose names start with q. */
export async function searchUsers(q) {
  const answer = await api.get('/users/search', { q, limit: 20 });
  return answer.users || [];
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
  socket?.enqueue(frameFor(p));
  stopTyping();
  return true;
}

/** sendFile posts an uploaded file's message. */
export function sendFile(name, uploaded, replyTo = 0) {
  const p = {
    clientId: newClientId(), kind: 'file', chatName: name, fileUrl: uploaded.file_url, createdAt: Date.now(), status: 'sending',
    file: { id: uploaded.file_id, name: uploaded.name, size: uploaded.size, mime_type: uploaded.mime_type, url: uploaded.file_url, thumbnail_url: uploaded.thumbnail_url, width: uploaded.width, height: uploaded.height },
  };
  if (replyTo) {
    p.replyTo = replyTo;
    p.reply = replyPreview(name, replyTo);
  }
  store.addPending(p);
  socket?.enqueue(frameFor(p));
}

/** upload sends a file to the open chat's upload route; see api.upload. */
export function upload(name, file, onProgress) {
  return api.upload(name, file, onProgress);
}

/** editMessage changes one of my messages; the new text shows at once. */
export function editMessage(name, messageId, text) {
  if (tooLong(text)) {
    toast(t('composer.tooLong'));
    return false;
  }
  const p = { clientId: newClientId(), kind: 'edit', chatName: name, messageId, text, createdAt: Date.now(), status: 'sending' };
  store.addPending(p);
  socket?.enqueue(frameFor(p));
  return true;
}

/** deleteMessage deletes one of my messages. */
export function deleteMessage(name, messageId) {
  const p = { clientId: newClientId(), kind: 'delete', chatName: name, messageId, createdAt: Date.now(), status: 'sending' };
  store.addPending(p);
  socket?.enqueue(frameFor(p));
}

/** retryPending sends a failed message again, with the same client_id. */
export function retryPending(clientId) {
  const p = state.pending.get(clientId);
  if (!p) return;
  store.updatePending(clientId, { status: 'sending', error: null });
  socket?.enqueue(frameFor(p));
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
    store.addPending({ ...p, status: 'sending' });
    socket.enqueue(frameFor(p));
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
      handleMessage(frame);
      break;
    case 'edit':
    case 'delete':
      store.advanceCursor(frame.chat_name, frame.id);
      store.applyChange(frame);
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
      if (frame.chat && state.chats.has(frame.chat.name)) store.upsertChat(frame.chat);
      break;
    case 'chat_removed':
      if (state.chats.has(frame.chat_name)) {
        const chat = state.chats.get(frame.chat_name);
        if (chat.kind === 'group' && state.current === frame.chat_name) toast(t('chat.removedFrom', { title: chat.title || chat.name }), 'info');
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

function handleMessage(m) {
  const name = m.chat_name;
  store.advanceCursor(name, m.id);
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
  if (m.id > (chat.last_message_id || 0)) {
    chat.last_message_id = m.id;
    chat.last_message_at = m.timestamp;
    if (countsAsUnread(m) && m.id > (chat.last_read_id || 0)) {
      if (isReading(name)) {
        markRead(name);
      } else {
        chat.unread = (chat.unread || 0) + 1;
        const body = m.type === 'file' ? (m.file?.name || t('message.file')) : plain(m.text);
        notify(isolate(chatLabel(chat)), `${m.username}: ${isolate(body.slice(0, 180))}`, name, () => openChat(name));
      }
    }
    store.emit('chats');
  }
}

/** chatLabel is a chat's title as the list shows it. */
export function chatLabel(chat) {
  if (!chat) return '';
  if (chat.kind === 'global') return t('chat.global');
  if (chat.kind === 'direct') {
    const other = (chat.members || []).find((m) => m.username.toLowerCase() !== (state.me || '').toLowerCase());
    return other ? other.username : (chat.title || chat.name);
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
        _local: true, type: p.kind, id: ack.id, chat_name: p.chatName, username: state.me, text: p.kind === 'file' ? p.fileUrl : p.text,
        timestamp: new Date(p.createdAt).toISOString(), client_id: p.clientId, reply_to: p.replyTo, reply: p.reply, file: p.file,
      }]);
    }
    const chat = state.chats.get(p.chatName);
    if (chat) {
      chat.last_message_at = new Date(p.createdAt).toISOString();
      store.emit('chats');
    }
  } else {
    store.applyChange({ type: p.kind, chat_name: p.chatName, message_id: p.messageId, text: p.text, edited_at: p.kind === 'edit' ? new Date().toISOString() : undefined });
  }
  store.removePending(ack.client_id);
}

function handleFailed(clientId, frame, error) {
  const p = state.pending.get(clientId);
  const detail = error.detail || t('error.generic');
  if (!p) return;
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
  if (!state.chats.has(chat.name)) store.upsertChat({ ...chat, unread: 0 });
  try {
    const summary = await api.get(chatPath(chat.name));
    if (state.chats.has(chat.name)) store.upsertChat(summary);
  } catch {
    // It may be gone again; the next chat list says.
  }
  syncChat(chat.name);
}

/** setChatVisible records whether the chat pane is on screen (narrow layouts show one pane). */
export function setChatVisible(visible) {
  state.chatVisible = visible;
  if (visible && state.current) markRead(state.current);
}
