// People's profiles: display names and avatars, fetched in batches as names
// appear (GET /users/profiles) and kept up to date by `user` frames. Views
// ask displayName(username) and personAvatar(username) and re-render on
// the store's 'profiles' topic.

import { get, request, fetchBlob, ApiError } from './api.js';
import { currentToken } from './session.js';
import { h, avatar } from './dom.js';
import * as store from './store.js';

const profiles = new Map(); // username → {username, display_name, avatar}
const asked = new Set(); // usernames asked for (answered or not)
let batch = new Set();
let timer = 0;
const images = new Map(); // avatar path → Promise of an object URL

/** profileOf is the profile of a username, or undefined while unknown. */
export function profileOf(username) {
  if (!username) return undefined;
  const p = profiles.get(username);
  if (!p) want(username);
  return p;
}

/** displayName is what people are called on screen: the display name, else the username. */
export function displayName(username) {
  return profileOf(username)?.display_name || username || '';
}

/** setProfile records a profile (from a frame or an answer) and tells the views. */
export function setProfile(p) {
  if (!p || !p.username) return;
  profiles.set(p.username, { username: p.username, display_name: p.display_name || '', avatar: p.avatar || '' });
  asked.add(p.username);
  store.emit('profiles');
}

/** want queues a username for the next batch; unknown names are asked for once. */
function want(username) {
  if (asked.has(username) || username.includes(' ')) return; // "deleted user" has a space
  asked.add(username);
  batch.add(username);
  if (!timer) timer = setTimeout(flush, 30);
}

async function flush() {
  timer = 0;
  const names = [...batch].slice(0, 100);
  for (const n of names) batch.delete(n);
  if (batch.size) timer = setTimeout(flush, 30);
  if (!names.length || !currentToken()) return;
  const query = new URLSearchParams();
  for (const n of names) query.append('u', n);
  try {
    const answer = await get(`/users/profiles?${query}`);
    for (const p of answer.users || []) profiles.set(p.username, p);
    store.emit('profiles');
  } catch {
    for (const n of names) asked.delete(n); // asked again when next seen
  }
}

/** reset forgets every profile (on logout). */
export function reset() {
  profiles.clear();
  asked.clear();
  batch = new Set();
  for (const p of images.values()) p.then((url) => url && URL.revokeObjectURL(url));
  images.clear();
}

function imageURL(path) {
  if (!images.has(path)) images.set(path, fetchBlob(path).then((b) => URL.createObjectURL(b), () => null));
  return images.get(path);
}

/**
 * personAvatar is a person's avatar: their picture when they set one,
 * else the letters badge (which also shows while the picture loads, and
 * if it fails to).
 */
export function personAvatar(username, size = 'md') {
  const el = avatar(displayName(username), size);
  const path = profileOf(username)?.avatar;
  if (path) {
    imageURL(path).then((url) => {
      if (!url) return;
      el.replaceChildren(h('img', { src: url, alt: '', class: 'avatar-img', draggable: 'false' }));
      el.classList.add('has-img');
    });
  }
  return el;
}

/** saveDisplayName sets my display name ('' removes it). */
export async function saveDisplayName(name) {
  const me = await request('PATCH', '/profile', { display_name: name });
  setProfile(me);
  return me;
}

/** saveAvatar uploads my avatar (a Blob, already cropped square). */
export async function saveAvatar(blob) {
  let response;
  try {
    response = await fetch('/profile/avatar', { method: 'PUT', headers: { Authorization: `Bearer ${currentToken()}`, 'Content-Type': blob.type || 'image/png' }, body: blob });
  } catch {
    throw new ApiError(0, '', 'network');
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, body.detail || response.statusText, body.code || `http_${response.status}`);
  setProfile(body);
  return body;
}

/** removeAvatar removes my avatar. */
export async function removeAvatar() {
  const me = await request('DELETE', '/profile/avatar');
  setProfile(me);
  return me;
}

/** loadMine fetches my own profile. */
export async function loadMine() {
  const me = await get('/profile');
  setProfile(me);
  return me;
}

/** version counts profile changes, for views that cache rendered names. */
let changes = 0;
store.on('profiles', () => { changes += 1; });
export function version() {
  return changes;
}

/**
 * personName is a person's name for lists: the display name, then their
 * @username set apart when the two differ, so people stay findable and
 * distinguishable by the name that is unique.
 */
export function personName(username, props = {}) {
  const shown = displayName(username);
  const el = h('span', { ...props });
  el.append(h('bdi', { dir: 'auto', class: 'pn-name', text: shown }));
  if (shown !== username) el.append(' ', h('bdi', { dir: 'auto', class: 'pn-handle', text: `@${username}` }));
  return el;
}
