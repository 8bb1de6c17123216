// The client's state: chats, each chat's messages (deduplicated by id, in
// id order), messages waiting for their ack, presence, typing and unread
// counts. Views subscribe to topics and re-render what changed.

const listeners = new Map();

/** on calls fn(arg) whenever topic is emitted; it returns the unsubscriber. */
export function on(topic, fn) {
  if (!listeners.has(topic)) listeners.set(topic, new Set());
  listeners.get(topic).add(fn);
  return () => listeners.get(topic)?.delete(fn);
}

/** emit tells the topic's listeners. */
export function emit(topic, arg) {
  for (const fn of [...(listeners.get(topic) || [])]) fn(arg);
}

/** state is read by views; only this module and the controller change it. */
export const state = {
  me: null,
  chats: new Map(), // name → chat as GET /chats/ gives it
  timelines: new Map(), // name → {byId, ids, loaded, hasMore, loadingOlder}
  pending: new Map(), // client_id → an unacknowledged message, edit or delete
  cursors: new Map(), // name → highest id received from the stream (for sync)
  online: new Set(),
  typing: new Map(), // name → Map(username → timer)
  current: null, // name of the open chat
  connection: 'idle', // idle | connecting | open | reconnecting
  chatVisible: true, // false while a narrow screen shows the chat list instead
};

/** reset forgets everything (on logout). */
export function reset() {
  state.me = null;
  state.chats.clear();
  state.timelines.clear();
  state.pending.clear();
  state.cursors.clear();
  state.online.clear();
  for (const users of state.typing.values()) for (const timer of users.values()) clearTimeout(timer);
  state.typing.clear();
  state.current = null;
  state.connection = 'idle';
}

// ---- chats ----

function activity(chat) {
  return Date.parse(chat.last_message_at || chat.created_at || 0) || 0;
}

/** sortedChats lists chats by last activity, newest first. */
export function sortedChats() {
  return [...state.chats.values()].sort((a, b) => activity(b) - activity(a) || (a.id || 0) - (b.id || 0));
}

/**
 * upsertChat adds or merges a chat. Frames sent to all members lack the
 * viewer's own fields (unread, read marker), so those are kept.
 */
export function upsertChat(chat) {
  const old = state.chats.get(chat.name);
  const merged = { unread: 0, last_read_id: 0, last_message_id: 0, ...old, ...stripUndefined(chat) };
  if (old) {
    for (const key of ['unread', 'last_read_id', 'last_message_id', 'last_message_at', 'role']) {
      if (chat[key] === undefined || chat[key] === null) merged[key] = old[key];
    }
    merged.last_message_id = Math.max(old.last_message_id || 0, merged.last_message_id || 0);
  }
  if (Array.isArray(merged.members) && state.me) {
    const mine = merged.members.find((m) => m.username.toLowerCase() === state.me.toLowerCase());
    if (mine) merged.role = mine.role;
  }
  state.chats.set(chat.name, merged);
  if (!state.cursors.has(chat.name)) state.cursors.set(chat.name, merged.last_message_id || 0);
  emit('chats');
  return merged;
}

function stripUndefined(obj) {
  const out = {};
  for (const [k, v] of Object.entries(obj)) if (v !== undefined) out[k] = v;
  return out;
}

/** replaceChats takes a full list from GET /chats/: chats not in it are gone. */
export function replaceChats(list) {
  const names = new Set(list.map((c) => c.name));
  for (const name of [...state.chats.keys()]) if (!names.has(name)) removeChat(name, false);
  for (const chat of list) upsertChat(chat);
  emit('chats');
}

/** removeChat forgets a chat and its messages. */
export function removeChat(name, notify = true) {
  state.chats.delete(name);
  state.timelines.delete(name);
  state.cursors.delete(name);
  state.typing.delete(name);
  for (const [id, p] of state.pending) if (p.chatName === name) state.pending.delete(id);
  if (notify) emit('chats');
}

/** totalUnread adds every chat's unread count. */
export function totalUnread() {
  let n = 0;
  for (const chat of state.chats.values()) n += chat.unread || 0;
  return n;
}

// ---- timelines ----

/** timeline returns a chat's message store, making it on first use. */
export function timeline(name) {
  let tl = state.timelines.get(name);
  if (!tl) {
    tl = { byId: new Map(), ids: [], loaded: false, hasMore: true, loadingOlder: false };
    state.timelines.set(name, tl);
  }
  return tl;
}

function insertId(ids, id) {
  if (ids.length === 0 || ids[ids.length - 1] < id) {
    ids.push(id);
    return;
  }
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ids[mid] < id) lo = mid + 1;
    else hi = mid;
  }
  ids.splice(lo, 0, id);
}

/**
 * putMessages stores messages of one chat, replacing any with the same id;
 * it returns those that were new.
 */
export function putMessages(name, messages) {
  const tl = timeline(name);
  const added = [];
  for (const m of messages) {
    const old = tl.byId.get(m.id);
    const copy = { ...m, _v: (old?._v || 0) + 1 };
    if (old && old._local && !m._local) {
      // The server's copy replaces the one built from an ack.
    } else if (old && !m._local) {
      // An older page or a replay may carry a stale copy; keep the later state.
      if (old.deleted && !m.deleted) continue;
      if (old.edited_at && !m.edited_at) continue;
    } else if (old && m._local) {
      continue;
    }
    tl.byId.set(m.id, copy);
    if (!old) {
      insertId(tl.ids, m.id);
      added.push(copy);
    }
  }
  emit('timeline', name);
  return added;
}

/** applyChange applies an edit or delete frame to the message it names. */
export function applyChange(frame) {
  const tl = state.timelines.get(frame.chat_name);
  const target = tl?.byId.get(frame.message_id);
  if (target) {
    const next = { ...target, text: frame.text ?? '', _v: target._v + 1 };
    if (frame.edited_at) next.edited_at = frame.edited_at;
    // An encrypted chat's edit carries its rev, and whether it opened.
    if (frame.rev !== undefined) next.rev = frame.rev;
    if (frame.undecryptable !== undefined) {
      if (frame.undecryptable) next.undecryptable = frame.undecryptable;
      else delete next.undecryptable;
    }
    if (frame.deleted || frame.type === 'delete') {
      next.deleted = true;
      next.text = '';
      delete next.file;
      delete next.system;
    }
    tl.byId.set(target.id, next);
  }
  // The chat list's preview of a chat not loaded follows the change too.
  const chat = state.chats.get(frame.chat_name);
  if (chat?.last_message?.id === frame.message_id) {
    const deleted = frame.deleted || frame.type === 'delete';
    chat.last_message = { ...chat.last_message, text: deleted ? '' : (frame.text ?? ''), deleted };
    emit('chats');
  }
  if (!tl) return;
  // Replies quote the changed message: refresh their previews.
  for (const [id, m] of tl.byId) {
    if (m.reply && m.reply.id === frame.message_id) {
      const deleted = frame.deleted || frame.type === 'delete';
      tl.byId.set(id, { ...m, reply: { ...m.reply, text: deleted ? '' : (frame.text ?? '').slice(0, 200), deleted }, _v: m._v + 1 });
    }
  }
  emit('timeline', frame.chat_name);
}

/** newestMessageId is the highest message id held for a chat (0 when none). */
export function newestMessageId(name) {
  const tl = state.timelines.get(name);
  return tl && tl.ids.length ? tl.ids[tl.ids.length - 1] : 0;
}

/** advanceCursor records that the stream has delivered up to id for a chat. */
export function advanceCursor(name, id) {
  if (id > (state.cursors.get(name) || 0)) state.cursors.set(name, id);
}

// ---- pending ----

/** addPending shows an unacknowledged message or change. */
export function addPending(p) {
  state.pending.set(p.clientId, p);
  emit('timeline', p.chatName);
  emit('pending', p);
}

/** updatePending changes a pending entry. */
export function updatePending(clientId, patch) {
  const p = state.pending.get(clientId);
  if (!p) return;
  Object.assign(p, patch);
  p._v = (p._v || 0) + 1;
  emit('timeline', p.chatName);
}

/** removePending forgets a pending entry (acked or discarded). */
export function removePending(clientId) {
  const p = state.pending.get(clientId);
  if (!p) return;
  state.pending.delete(clientId);
  emit('timeline', p.chatName);
  emit('pending', p);
}

/** pendingMessages lists a chat's unacknowledged new messages, oldest first. */
export function pendingMessages(name) {
  return [...state.pending.values()].filter((p) => p.chatName === name && (p.kind === 'text' || p.kind === 'file'))
    .sort((a, b) => a.createdAt - b.createdAt);
}

/** pendingChange is the unacknowledged edit or delete of a message, if any. */
export function pendingChange(messageId) {
  for (const p of state.pending.values()) if ((p.kind === 'edit' || p.kind === 'delete') && p.messageId === messageId) return p;
  return null;
}

// ---- presence and typing ----

/** setOnline replaces the list of online users. */
export function setOnline(users) {
  state.online = new Set(users);
  emit('online');
}

/** setPresence marks one user online or offline. */
export function setPresence(username, online) {
  if (online) state.online.add(username);
  else state.online.delete(username);
  emit('online');
}

/** setTyping records that someone is typing in a chat, until the stop or the expiry. */
export function setTyping(name, username, typing, expiresIn = 6) {
  let users = state.typing.get(name);
  if (!users) {
    users = new Map();
    state.typing.set(name, users);
  }
  clearTimeout(users.get(username));
  if (typing) {
    users.set(username, setTimeout(() => setTyping(name, username, false), (expiresIn + 1) * 1000));
  } else {
    users.delete(username);
  }
  emit('typing', name);
}

/** typingIn lists who is typing in a chat. */
export function typingIn(name) {
  return [...(state.typing.get(name)?.keys() || [])];
}

/** setConnection records the WebSocket's state. */
export function setConnection(value) {
  if (state.connection === value) return;
  state.connection = value;
  emit('connection', value);
}

/** setCurrent opens a chat (or none). */
export function setCurrent(name) {
  state.current = name;
  emit('current', name);
  emit('chats');
}
