// The browser's side of end-to-end encryption, between the protocol
// (e2ee.js), the keys kept on this profile (keystore.js) and the server's
// key endpoints (E2EE.md, "The API"): key setup and restore, the users'
// identity keys and devices, epochs and their room keys, and the messages
// and files of encrypted chats. The controller calls it; views read what
// it reports through the store's 'keys' topic.

import * as e2ee from './e2ee.js';
import { openKeystore, deleteKeystore } from './keystore.js';
import * as api from './api.js';
import { emit } from './store.js';

/** EPOCH_MESSAGES is how many messages an epoch carries before a client starts the next. */
export const EPOCH_MESSAGES = 100;
/** EPOCH_AGE is how long (ms) an epoch lasts before a client starts the next. */
export const EPOCH_AGE = 7 * 24 * 3600 * 1000;
/** PASSPHRASE_MIN is the shortest recovery passphrase a user may choose (a generated one is about 60 characters). */
export const PASSPHRASE_MIN = 16;

let ks = null;
let me = null;
let identity = null;
let device = null;
let backupKey = null;

// users: lower-cased username → Promise of what we know of their keys
// ({username, identityKey, status, verified, devices: Map(deviceId → device)}).
const users = new Map();
// changed: lower-cased username → {username, identityKey}, a new identity
// key not accepted yet; sends to chats with them wait.
const changed = new Map();
// epochs: chat name → {current, min, stale, counted, localStale}.
const epochs = new Map();
const roomKeys = new Map(); // `${chat} ${epoch}` → Promise<CryptoKey|null>
const locks = new Map(); // chat name → the tail of its epoch work
const seenMaps = new Map(); // chat name → Promise<Map> for checkReplay
const checked = new Set(); // chats whose members' keys were checked on this page

/** HeldError is a send that waits until the user accepts someone's new identity key. */
export class HeldError extends Error {
  constructor(usernames) {
    super(`The identity key of ${usernames.join(', ')} changed; accept it before sending.`);
    this.name = 'HeldError';
    this.code = 'key_changed';
    this.usernames = usernames;
  }
}

/** SetupError is a failed key setup or restore with a reason the view can word. */
export class SetupError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'SetupError';
    this.code = code;
  }
}

function lower(name) {
  return String(name || '').toLowerCase();
}

function chatPath(name, rest = '') {
  return `/chats/${encodeURIComponent(name).replace(/%3A/gi, ':')}${rest}`;
}

function userPath(name) {
  return `/keys/users/${encodeURIComponent(name)}`;
}

function sameKey(a, b) {
  if (!a || !b || a.alg !== b.alg || a.pub.length !== b.pub.length) return false;
  for (let i = 0; i < a.pub.length; i++) if (a.pub[i] !== b.pub[i]) return false;
  return true;
}

/** deviceName describes this browser for the device list ("Chrome on Linux"). */
export function deviceName(ua = navigator.userAgent) {
  const browser = /Edg\//.test(ua) ? 'Edge' : /Firefox\//.test(ua) ? 'Firefox' : /OPR\//.test(ua) ? 'Opera'
    : /Chrom(e|ium)\//.test(ua) ? 'Chrome' : /Safari\//.test(ua) ? 'Safari' : 'A browser';
  const system = /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS' : /Mac OS X/.test(ua) ? 'macOS'
    : /Windows/.test(ua) ? 'Windows' : /CrOS/.test(ua) ? 'ChromeOS' : /Linux/.test(ua) ? 'Linux' : 'an unknown system';
  return `${browser} on ${system}`;
}

// ---- session ----

/**
 * prepare opens the signed-in user's keys on this profile and compares
 * them with the server's. It resolves to 'ready' (this browser has a live
 * device of the account's identity), 'setup' (the account has no keys yet)
 * or 'restore' (it has, and this browser must restore them with the
 * recovery passphrase).
 */
export async function prepare(username) {
  close();
  me = username;
  ks = await openKeystore(username);
  const mine = await api.get(userPath(username), { all: 1 });
  const serverIdentity = mine.identity ? e2ee.parseIdentityKey(mine.identity) : null;
  if (!serverIdentity) {
    // Keys left by an account of the same name on a server that forgot it
    // would only confuse: start clean.
    ks.close();
    await deleteKeystore(username);
    ks = await openKeystore(username);
    return 'setup';
  }
  const localIdentity = await ks.identity();
  const localDevice = await ks.device();
  if (localIdentity && localDevice && sameKey(localIdentity, serverIdentity)) {
    const listed = (mine.devices || []).find((d) => d.device_id === localDevice.deviceId);
    if (listed && !listed.revoked_at) {
      identity = localIdentity;
      device = localDevice;
      backupKey = await ks.backupKey();
      return 'ready';
    }
  }
  return 'restore';
}

/** close forgets the keys in memory (sign-out); the key store stays on the profile. */
export function close() {
  ks?.close();
  ks = me = identity = device = backupKey = null;
  users.clear();
  changed.clear();
  epochs.clear();
  roomKeys.clear();
  locks.clear();
  seenMaps.clear();
  checked.clear();
}

/** ready says whether this browser has its keys. */
export function ready() {
  return Boolean(device);
}

/** myDeviceId is this browser's device id (null before setup). */
export function myDeviceId() {
  return device?.deviceId || null;
}

/** suggestPassphrase is a new generated recovery passphrase (10 words). */
export function suggestPassphrase() {
  return e2ee.generatePassphrase(10);
}

async function publishDevice(id) {
  const dev = await e2ee.generateDevice({ username: me, identity: id });
  await api.post('/keys/devices', { ...e2ee.deviceBody(dev), name: deviceName() });
  return dev;
}

/**
 * createKeys makes the account's identity key and this browser's device,
 * publishes them and stores the key backup under the recovery passphrase.
 * replace makes a new identity in place of one whose passphrase is lost
 * (every other device is revoked and the old backup deleted).
 */
export async function createKeys(passphrase, { replace = false } = {}) {
  if (typeof passphrase !== 'string' || passphrase.trim().length < PASSPHRASE_MIN) {
    throw new SetupError('passphrase_short', `A recovery passphrase has at least ${PASSPHRASE_MIN} characters.`);
  }
  const { identity: id, pkcs8 } = await e2ee.generateIdentity();
  const { header, backupKey: bk } = await e2ee.createBackup({ passphrase, username: me, identity: id, pkcs8 });
  try {
    await api.request('PUT', '/keys/identity', replace ? { ...e2ee.identityBody(id), replace: true } : e2ee.identityBody(id));
  } catch (err) {
    if (err.code === 'identity_exists') throw new SetupError('identity_exists', err.detail);
    throw err;
  }
  const dev = await publishDevice(id);
  await api.request('PUT', '/keys/backup', header);
  if (replace) {
    // Room keys of the old identity stay readable here; nothing else is kept.
    users.clear();
  }
  await ks.setIdentity(id);
  await ks.setDevice(dev);
  await ks.setBackupKey(bk);
  identity = id;
  device = dev;
  backupKey = bk;
  emit('keys');
}

/**
 * restore opens the key backup with the recovery passphrase, certifies a
 * new device for this browser and takes every backed-up room key, so that
 * old history reads. A wrong passphrase is SetupError wrong_passphrase.
 */
export async function restore(passphrase) {
  let header;
  try {
    header = await api.get('/keys/backup');
  } catch (err) {
    if (err.code === 'no_backup') throw new SetupError('no_backup', err.detail);
    throw err;
  }
  let opened;
  try {
    opened = await e2ee.openBackup({ passphrase, username: me, header });
  } catch (err) {
    if (err instanceof e2ee.E2EEError) throw new SetupError(err.reason, err.message);
    throw err;
  }
  const mine = await api.get(userPath(me));
  const serverIdentity = mine.identity ? e2ee.parseIdentityKey(mine.identity) : null;
  if (!sameKey(serverIdentity, opened.identity)) {
    throw new SetupError('backup_mismatch', 'The key backup holds another identity key than the account publishes.');
  }
  const dev = await publishDevice(opened.identity);
  await ks.setIdentity(opened.identity);
  await ks.setDevice(dev);
  await ks.setBackupKey(opened.backupKey);
  identity = opened.identity;
  device = dev;
  backupKey = opened.backupKey;
  await restoreRoomKeys();
  emit('keys');
}

async function restoreRoomKeys() {
  let after = 0;
  for (;;) {
    const page = await api.get('/keys/backup/room-keys', { after, limit: 500 });
    const items = page.items || [];
    await Promise.all(items.map(async (item) => {
      try {
        const raw = await e2ee.openBackupRoomKey({ backupKey, username: me, item });
        await ks.setRoomKey(item.chat, item.epoch, await e2ee.importRoomKey(raw));
      } catch {
        // An item that does not open is skipped; its messages say
        // "missing epoch key" rather than stopping the restore.
      }
    }));
    if (!page.has_more || !items.length) return;
    after = items[items.length - 1].id;
  }
}

// ---- users and their keys ----

/**
 * learn takes a user's keys as the server lists them ({username,
 * identity, devices}), pins the identity key on first sight and keeps the
 * devices its pinned key certifies. A different identity key is recorded
 * as changed: none of its devices is trusted until the user accepts it.
 */
async function learn(entry) {
  const username = entry.username;
  const info = { username, identityKey: null, status: 'none', verified: false, devices: new Map() };
  if (entry.identity) {
    info.identityKey = e2ee.parseIdentityKey(entry.identity);
    if (lower(username) === lower(me)) {
      info.status = sameKey(info.identityKey, identity) ? 'same' : 'changed';
    } else {
      info.status = await ks.checkPin(username, info.identityKey);
      info.verified = Boolean((await ks.pin(username))?.verified) && info.status !== 'changed';
    }
  }
  if (info.status === 'changed') {
    if (!changed.has(lower(username))) {
      changed.set(lower(username), { username, identityKey: info.identityKey });
      emit('keys');
    }
  } else if (info.identityKey) {
    if (changed.delete(lower(username))) emit('keys');
    for (const d of entry.devices || []) {
      if (d.revoked_at) continue;
      try {
        info.devices.set(d.device_id, await e2ee.verifyDevice(info.identityKey, username, d));
      } catch {
        // A device its owner's identity did not certify is not theirs.
      }
    }
  }
  users.set(lower(username), Promise.resolve(info));
  return info;
}

/** userKeys resolves to what is known of a user's keys; refresh asks the server again. */
export function userKeys(username, { refresh = false } = {}) {
  const key = lower(username);
  if (refresh || !users.has(key)) {
    const p = api.get(userPath(username)).then(learn);
    users.set(key, p);
    p.catch(() => { if (users.get(key) === p) users.delete(key); });
  }
  return users.get(key);
}

/** forgetUser drops a user's cached keys (a keys frame said they changed). */
export function forgetUser(username) {
  users.delete(lower(username));
}

async function senderDevice(username, deviceId) {
  let info = await userKeys(username);
  if (!info.devices.has(deviceId)) info = await userKeys(username, { refresh: true });
  return info.devices.get(deviceId) || null;
}

/** keyChanges lists the users whose identity key changed and is not accepted yet. */
export function keyChanges() {
  return [...changed.values()].map((c) => c.username);
}

/** hasKeyChange says whether a user's identity key changed and waits for acceptance. */
export function hasKeyChange(username) {
  return changed.has(lower(username));
}

/** acceptKey pins a user's new identity key (not verified); held sends may go. */
export async function acceptKey(username) {
  const c = changed.get(lower(username));
  if (!c) return;
  await ks.replacePin(username, c.identityKey);
  changed.delete(lower(username));
  users.delete(lower(username));
  for (const e of epochs.values()) e.localStale = true;
  emit('keys');
}

/** checkMembers refreshes the keys of a chat's members, so a changed identity key shows at once. */
export async function checkMembers(chatName) {
  const answer = await api.get(chatPath(chatName, '/devices'));
  const list = Array.isArray(answer) ? answer : answer.members || [];
  const members = await Promise.all(list.map(learn));
  checked.add(chatName);
  return members;
}

/**
 * safety resolves to {number, verified} for a user: the safety number of
 * my identity key and theirs, and whether I marked them verified.
 */
export async function safety(username) {
  const info = await userKeys(username, { refresh: true });
  if (!info.identityKey) return { number: null, verified: false, changed: false };
  const key = changed.get(lower(username))?.identityKey || info.identityKey;
  const number = await e2ee.safetyNumber({ username: me, alg: identity.alg, pub: identity.pub }, { username, alg: key.alg, pub: key.pub });
  return { number, verified: info.verified, changed: changed.has(lower(username)) };
}

/** setVerified marks a user verified (the safety numbers matched) or not. */
export async function setVerified(username, verified) {
  await ks.setVerified(username, verified);
  users.delete(lower(username));
  emit('keys');
}

/** isVerified resolves to whether a user is marked verified. */
export async function isVerified(username) {
  const pin = await ks?.pin(username);
  return Boolean(pin?.verified) && !changed.has(lower(username));
}

// ---- devices ----

/** myDevices lists my devices, revoked ones too, newest first. */
export async function myDevices() {
  const answer = await api.get(userPath(me), { all: 1 });
  return (answer.devices || []).map((d) => ({ ...d, current: d.device_id === device?.deviceId }))
    .sort((a, b) => String(b.created_at || '').localeCompare(String(a.created_at || '')));
}

/** revokeDevice revokes one of my other devices. */
export async function revokeDevice(deviceId) {
  if (deviceId === device?.deviceId) throw new SetupError('current_device', 'This is the device you are using.');
  await api.request('DELETE', `/keys/devices/${encodeURIComponent(deviceId)}`);
  users.delete(lower(me));
  for (const e of epochs.values()) e.localStale = true;
}

// ---- epochs ----

function epochOf(chatName) {
  let e = epochs.get(chatName);
  if (!e) {
    e = { current: 0, min: 0, stale: false, counted: 0, localStale: false };
    epochs.set(chatName, e);
  }
  return e;
}

/** noteChat takes a chat's epoch state as the chat list gives it. */
export function noteChat(chat) {
  if (!chat?.e2ee || !chat.epoch) return;
  const e = epochOf(chat.name);
  const current = Number(chat.epoch.current) || 0;
  if (current !== e.current) e.counted = 0;
  if (current >= e.current) {
    e.current = current;
    e.min = Number(chat.epoch.min) || 0;
    e.stale = Boolean(chat.epoch.stale);
    if (!e.stale && current > 0) e.localStale = false;
  }
}

/** noteEpoch takes an epoch frame: another member started epoch n. */
export function noteEpoch(chatName, n) {
  const e = epochOf(chatName);
  if (n > e.current) {
    e.current = n;
    e.stale = false;
    e.localStale = false;
    e.counted = 0;
  }
}

/**
 * markStale records that a chat's current epoch must not carry new
 * messages: a member joined, left or was removed, a device changed, or
 * the server said stale_epoch.
 */
export function markStale(chatName) {
  epochOf(chatName).localStale = true;
}

// countMessage counts a message seen on an epoch, for the 100-message rule.
function countMessage(chatName, epoch) {
  const e = epochOf(chatName);
  if (epoch === e.current && ++e.counted >= EPOCH_MESSAGES) e.localStale = true;
}

function locked(chatName, fn) {
  const tail = locks.get(chatName) || Promise.resolve();
  const next = tail.then(fn, fn);
  locks.set(chatName, next.catch(() => {}));
  return next;
}

async function backupRoomKeys(items) {
  if (!backupKey || !items.length) return;
  const sealed = await Promise.all(items.map((i) => e2ee.backupRoomKey({ backupKey, username: me, ...i })));
  await api.post('/keys/backup/room-keys', { items: sealed });
}

async function keepRoomKey(chatName, epoch, raw) {
  const key = await e2ee.importRoomKey(raw);
  await ks.setRoomKey(chatName, epoch, key);
  roomKeys.set(`${chatName} ${epoch}`, Promise.resolve(key));
  backupRoomKeys([{ chat: chatName, epoch, roomKey: raw }]).catch(() => {
    // The backup lacks this key until the next restore of keys; the
    // device itself has it. Nothing to tell the user now.
  });
  return key;
}

/**
 * roomKey resolves to a chat's room key of an epoch: from the key store,
 * else from this device's envelope on the server, checked and opened. It
 * throws E2EEError missing_epoch_key when there is none for this device.
 */
export function roomKey(chatName, epoch) {
  const id = `${chatName} ${epoch}`;
  if (!roomKeys.has(id)) {
    const p = (async () => {
      const kept = await ks.roomKey(chatName, epoch);
      if (kept) return kept;
      let answer;
      try {
        answer = await api.get(chatPath(chatName, `/epochs/${epoch}`), { device: device.deviceId });
      } catch (err) {
        if (err.code === 'no_envelope' || err.status === 404 || err.status === 403) {
          throw new e2ee.E2EEError(e2ee.reasons.missingEpochKey, `this device has no key for epoch ${epoch}`);
        }
        throw err;
      }
      const sender = await senderDevice(answer.sender, answer.sender_device);
      if (!sender) throw new e2ee.E2EEError(e2ee.reasons.unknownDevice, `the epoch was started by an unknown device of ${answer.sender}`);
      const raw = await e2ee.openEnvelope({ chat: chatName, epoch, envelope: answer.envelope, sender, device });
      return keepRoomKey(chatName, epoch, raw);
    })();
    roomKeys.set(id, p);
    p.catch(() => { if (roomKeys.get(id) === p) roomKeys.delete(id); });
  }
  return roomKeys.get(id);
}

/**
 * startEpoch starts the next epoch of a chat for every device of every
 * member, and resolves to its number. Another member's epoch that came
 * first (409) is taken instead.
 */
export function startEpoch(chatName) {
  return locked(chatName, () => startEpochNow(chatName, epochOf(chatName).current));
}

async function startEpochNow(chatName, seenCurrent, attempt = 0) {
  const e = epochOf(chatName);
  if (e.current > seenCurrent && !e.stale && !e.localStale) return e.current; // someone else's came meanwhile
  const members = await checkMembers(chatName);
  const held = members.filter((m) => m.status === 'changed').map((m) => m.username);
  if (held.length) throw new HeldError(held);
  const recipients = members.flatMap((m) => [...m.devices.values()]);
  if (!recipients.some((r) => r.deviceId === device.deviceId)) {
    recipients.push({ username: me, deviceId: device.deviceId, dh: device.dh, sig: device.sig });
  }
  const next = e.current + 1;
  const { body, roomKey: raw } = await e2ee.startEpoch({ chat: chatName, epoch: next, device, recipients });
  try {
    await api.post(chatPath(chatName, '/epochs'), body);
  } catch (err) {
    if (err.code === 'epoch_conflict') {
      const theirs = Number(err.body?.current) || next;
      noteEpoch(chatName, theirs);
      return theirs;
    }
    if (err.code === 'envelopes_mismatch' && attempt < 2) return startEpochNow(chatName, seenCurrent, attempt + 1);
    throw err;
  }
  await keepRoomKey(chatName, next, raw);
  noteEpoch(chatName, next);
  emit('keys');
  return next;
}

async function sendingEpoch(chatName) {
  const e = epochOf(chatName);
  if (e.current === 0 || e.stale || e.localStale) await startEpoch(chatName);
  try {
    return { epoch: e.current, key: await roomKey(chatName, e.current) };
  } catch (err) {
    if (!(err instanceof e2ee.E2EEError)) throw err;
    // This device has no envelope for the current epoch (it was added
    // since): a new epoch includes it.
    markStale(chatName);
    await startEpoch(chatName);
    return { epoch: e.current, key: await roomKey(chatName, e.current) };
  }
}

// ---- messages ----

/** heldFor lists the members of a chat whose changed identity key waits for acceptance. */
export function heldFor(members) {
  return (members || []).map((m) => m.username || m).filter((name) => changed.has(lower(name)));
}

/**
 * encrypt makes the mse1 text of a message (content {text, reply?, file?,
 * rev?}) for a chat, starting an epoch when there is none or it is stale.
 * clientId is the message's own (an edit keeps it). It throws HeldError
 * while a member's changed identity key waits for acceptance.
 */
export async function encrypt(chat, clientId, content) {
  // The first send to a chat on this page looks at its members' keys, so
  // that a key changed since the last visit holds it.
  if (!checked.has(chat.name)) await checkMembers(chat.name);
  const held = heldFor(chat.members);
  if (held.length) throw new HeldError(held);
  const { epoch, key } = await sendingEpoch(chat.name);
  const text = await e2ee.encryptMessage({ chat: chat.name, epoch, device, clientId, roomKey: key, content });
  countMessage(chat.name, epoch);
  return text;
}

// remember keeps accepted pairs in the key store, a chat's pairs of one
// task in one transaction (opening a chat checks 50 at once).
const unsaved = new Map(); // chat name → pairs
function remember(chatName, pair) {
  if (!unsaved.has(chatName)) {
    unsaved.set(chatName, []);
    setTimeout(() => {
      const pairs = unsaved.get(chatName);
      unsaved.delete(chatName);
      ks?.rememberSeenMany(chatName, pairs).catch(() => {
        // The pairs stay remembered in memory, for this page only.
      });
    }, 0);
  }
  unsaved.get(chatName).push(pair);
}

function seenFor(chatName) {
  if (!seenMaps.has(chatName)) seenMaps.set(chatName, ks.seen(chatName));
  return seenMaps.get(chatName);
}

/**
 * decrypt opens a message of an encrypted chat (as the server stores it:
 * username, client_id, id, text). It resolves to {content, epoch} or
 * {error: reason}, reason being one of e2ee.reasons.
 */
export async function decrypt(chatName, m, clientId = m.client_id) {
  try {
    const parsed = e2ee.parseMessage(m.text);
    const sender = await senderDevice(m.username, parsed.deviceId);
    let key = null;
    try {
      key = await roomKey(chatName, parsed.epoch);
    } catch (err) {
      if (!(err instanceof e2ee.E2EEError)) throw err;
    }
    const opened = await e2ee.openMessage({ chat: chatName, sender: m.username, clientId, text: m.text, device: sender, roomKey: key });
    const seen = await seenFor(chatName);
    const pair = { deviceId: opened.deviceId, clientId, messageId: m.id, rev: opened.content.rev };
    e2ee.checkReplay(seen, pair);
    remember(chatName, pair);
    countMessage(chatName, parsed.epoch);
    return { content: opened.content, epoch: parsed.epoch };
  } catch (err) {
    if (err instanceof e2ee.E2EEError) return { error: err.reason };
    // The server or the network failed, not the message: worth another try.
    if (err?.code === 'network' || err?.status >= 500 || err?.status === 429) return { error: 'network' };
    if (err?.status === 404) return { error: e2ee.reasons.unknownDevice };
    return { error: e2ee.reasons.malformed };
  }
}

/** isEncryptedText says whether a message text is an mse1 message. */
export function isEncryptedText(text) {
  return typeof text === 'string' && text.startsWith(e2ee.MESSAGE_PREFIX);
}

// ---- files ----

/** encryptFile encrypts a file's bytes; see e2ee.encryptFile. */
export function encryptFile(data) {
  return e2ee.encryptFile(data);
}

/** decryptFile checks a downloaded ciphertext's SHA-256 and opens it; see e2ee.decryptFile. */
export function decryptFile(ciphertext, descriptor) {
  return e2ee.decryptFile(ciphertext, descriptor);
}
