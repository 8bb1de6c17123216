// What this browser keeps for a signed-in user across reloads, in
// localStorage under the user's name: each chat's unsent draft, and the
// last message of each end-to-end encrypted chat as this browser decrypted
// it (the server cannot preview those). Logging out forgets both.

const prefix = 'mapsim.local.';
let user = '';
let drafts = new Map(); // chat name → text
let previews = new Map(); // chat name → {id, username, text}
let timer = 0;

function key() {
  return prefix + user.toLowerCase();
}

function read() {
  try {
    const kept = JSON.parse(localStorage.getItem(key()) || '{}');
    drafts = new Map(Object.entries(kept.drafts || {}).filter(([, v]) => typeof v === 'string' && v));
    previews = new Map(Object.entries(kept.previews || {}).filter(([, v]) => v && typeof v.text === 'string' && Number(v.id) > 0));
  } catch {
    drafts = new Map();
    previews = new Map();
  }
}

function write() {
  timer = 0;
  if (!user) return;
  try {
    if (!drafts.size && !previews.size) localStorage.removeItem(key());
    else localStorage.setItem(key(), JSON.stringify({ drafts: Object.fromEntries(drafts), previews: Object.fromEntries(previews) }));
  } catch { /* full or unavailable: kept in memory only */ }
}

// save writes soon; a burst of keystrokes is one write.
function save() {
  if (!timer) timer = setTimeout(write, 250);
}

/** use loads what is kept for username (on sign-in). */
export function use(username) {
  if (timer) { clearTimeout(timer); write(); }
  user = username || '';
  read();
}

/** forget deletes what is kept for the user now signed in (on logout). */
export function forget() {
  if (timer) clearTimeout(timer);
  timer = 0;
  try { if (user) localStorage.removeItem(key()); } catch { /* nothing kept */ }
  user = '';
  drafts = new Map();
  previews = new Map();
}

/** flush writes what is pending now (the page is going away). */
export function flush() {
  if (timer) { clearTimeout(timer); write(); }
}

/** draft is a chat's unsent text ('' when none). */
export function draft(chatName) {
  return drafts.get(chatName) || '';
}

/** setDraft keeps (or, for blank text, drops) a chat's unsent text. */
export function setDraft(chatName, text) {
  if (!chatName) return;
  if (text && text.trim()) drafts.set(chatName, text);
  else if (drafts.has(chatName)) drafts.delete(chatName);
  else return;
  save();
}

/** preview is the last decrypted message of an encrypted chat, if kept. */
export function preview(chatName) {
  return previews.get(chatName) || null;
}

/**
 * setPreview keeps an encrypted chat's last decrypted message, {id,
 * edited, username, text}: edited is its edited_at ('' if never), so that
 * a preview of a message edited since is not taken for the current one.
 */
export function setPreview(chatName, value) {
  const old = previews.get(chatName);
  const edited = value.edited || '';
  if (old && old.id === value.id && (old.edited || '') === edited && old.text === value.text && old.username === value.username) return;
  previews.set(chatName, { id: value.id, edited, username: value.username, text: value.text });
  save();
}

/** drop forgets a chat (it is gone, or I left it). */
export function drop(chatName) {
  const had = drafts.delete(chatName) | previews.delete(chatName);
  if (had) save();
}

addEventListener('pagehide', flush);
