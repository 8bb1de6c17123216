// The device's end-to-end encryption keys in IndexedDB, one database per
// account on this browser profile: the identity and device keys (their
// private halves non-extractable CryptoKeys, which IndexedDB stores as
// they are and no script can read out), the backup key, room keys by chat
// and epoch, the pinned identity key of each user, and the (device,
// client_id) pairs already accepted in each chat, for replay detection.
// Browser-only; e2ee.js does the cryptography.

import { replayKey } from './e2ee.js';

const VERSION = 1;

/** SEEN_PER_CHAT bounds the pairs remembered per chat; the oldest go first. */
export const SEEN_PER_CHAT = 10000;

function databaseName(username) {
  return `mapsim-e2ee:${username.toLowerCase()}`;
}

function done(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function committed(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error('keystore: transaction aborted'));
  });
}

/**
 * openKeystore opens the key store of one account on this browser
 * profile, creating it on first use.
 */
export async function openKeystore(username) {
  const request = indexedDB.open(databaseName(username), VERSION);
  request.onupgradeneeded = () => {
    const db = request.result;
    db.createObjectStore('keys'); // 'identity', 'device', 'backupKey'
    db.createObjectStore('roomKeys', { keyPath: ['chat', 'epoch'] });
    db.createObjectStore('pins', { keyPath: 'username' });
    const seen = db.createObjectStore('seen', { keyPath: ['chat', 'key'] });
    seen.createIndex('bySeq', ['chat', 'seq']);
  };
  return new Keystore(await done(request));
}

/** deleteKeystore removes an account's key store from this profile (on sign-out of a shared computer). */
export function deleteKeystore(username) {
  return done(indexedDB.deleteDatabase(databaseName(username)));
}

let seq = 0;

// nextSeq orders remembered pairs, oldest first, across page loads.
function nextSeq() {
  seq = Math.max(seq + 1, Date.now() * 1000);
  return seq;
}

/** Keystore is one account's key store; openKeystore makes it. */
export class Keystore {
  constructor(db) {
    this.db = db;
  }

  /** close closes the database. */
  close() {
    this.db.close();
  }

  async #get(store, key) {
    return (await done(this.db.transaction(store).objectStore(store).get(key))) ?? null;
  }

  async #put(store, value, key) {
    const tx = this.db.transaction(store, 'readwrite');
    tx.objectStore(store).put(value, key);
    await committed(tx);
  }

  /** identity resolves to the stored identity ({alg, pub, privateKey, key}) or null. */
  identity() {
    return this.#get('keys', 'identity');
  }

  /** setIdentity stores the identity (with its non-extractable private key). */
  setIdentity(identity) {
    return this.#put('keys', identity, 'identity');
  }

  /** device resolves to this device ({username, deviceId, dh, sig, cert}) or null. */
  device() {
    return this.#get('keys', 'device');
  }

  /** setDevice stores this device. */
  setDevice(device) {
    return this.#put('keys', device, 'device');
  }

  /** backupKey resolves to the non-extractable key backup key, or null. */
  backupKey() {
    return this.#get('keys', 'backupKey');
  }

  /** setBackupKey stores the key backup key. */
  setBackupKey(key) {
    return this.#put('keys', key, 'backupKey');
  }

  /** roomKey resolves to a chat's room key (a CryptoKey) of an epoch, or null. */
  async roomKey(chat, epoch) {
    return (await this.#get('roomKeys', [chat, epoch]))?.key ?? null;
  }

  /** setRoomKey stores a chat's room key of an epoch (importRoomKey's CryptoKey). */
  setRoomKey(chat, epoch, key) {
    return this.#put('roomKeys', { chat, epoch, key });
  }

  /** latestEpoch resolves to the highest epoch of a chat this device has the key of, or 0. */
  async latestEpoch(chat) {
    const range = IDBKeyRange.bound([chat, 0], [chat, Infinity]);
    const cursor = await done(this.db.transaction('roomKeys').objectStore('roomKeys').openCursor(range, 'prev'));
    return cursor ? cursor.value.epoch : 0;
  }

  /** pin resolves to the identity key pinned for a user ({username, alg, pub, verified}), or null. */
  pin(username) {
    return this.#get('pins', username.toLowerCase());
  }

  /**
   * checkPin compares a user's identity key (parseIdentityKey's {alg, pub}) with the pinned
   * one: 'new' pins it (trust on first use), 'same' changes nothing, and
   * 'changed' changes nothing either: the user must accept the new key
   * (replacePin) before anything is sent to that user again.
   */
  async checkPin(username, identityKey) {
    const name = username.toLowerCase();
    const tx = this.db.transaction('pins', 'readwrite');
    const pins = tx.objectStore('pins');
    const pinned = await done(pins.get(name));
    let status = 'same';
    if (!pinned) {
      status = 'new';
      pins.put({ username: name, alg: identityKey.alg, pub: identityKey.pub, verified: false });
    } else if (pinned.alg !== identityKey.alg || !sameBytes(pinned.pub, identityKey.pub)) {
      status = 'changed';
    }
    await committed(tx);
    return status;
  }

  /** replacePin pins a user's new identity key, accepted by the user; it is not verified. */
  replacePin(username, identityKey) {
    return this.#put('pins', { username: username.toLowerCase(), alg: identityKey.alg, pub: identityKey.pub, verified: false });
  }

  /** setVerified marks a pinned user verified (the safety numbers matched) or not. */
  async setVerified(username, verified) {
    const tx = this.db.transaction('pins', 'readwrite');
    const pins = tx.objectStore('pins');
    const pinned = await done(pins.get(username.toLowerCase()));
    if (pinned) pins.put({ ...pinned, verified: Boolean(verified) });
    await committed(tx);
    if (!pinned) throw new Error(`keystore: no identity key is pinned for ${username}`);
  }

  /**
   * seen resolves to the pairs remembered for a chat, as the Map that
   * e2ee.js's checkReplay reads and adds to.
   */
  async seen(chat) {
    const range = IDBKeyRange.bound([chat, -Infinity], [chat, Infinity]);
    const rows = await done(this.db.transaction('seen').objectStore('seen').index('bySeq').getAll(range));
    return new Map(rows.map((r) => [r.key, { messageId: r.messageId, rev: r.rev }]));
  }

  /**
   * rememberSeen stores a pair checkReplay accepted, and forgets the
   * chat's oldest pairs beyond SEEN_PER_CHAT.
   */
  rememberSeen(chat, pair) {
    return this.rememberSeenMany(chat, [pair]);
  }

  /** rememberSeenMany is rememberSeen for many pairs of one chat, in one transaction. */
  async rememberSeenMany(chat, pairs) {
    const tx = this.db.transaction('seen', 'readwrite');
    const store = tx.objectStore('seen');
    for (const { deviceId, clientId, messageId, rev = 0 } of pairs) {
      store.put({ chat, key: replayKey(deviceId, clientId), messageId, rev, seq: nextSeq() });
    }
    const range = IDBKeyRange.bound([chat, -Infinity], [chat, Infinity]);
    let excess = (await done(store.index('bySeq').count(range))) - SEEN_PER_CHAT;
    if (excess > 0) {
      const request = store.index('bySeq').openCursor(range);
      request.onsuccess = () => {
        const cursor = request.result;
        if (!cursor || excess <= 0) return;
        cursor.delete();
        excess--;
        cursor.continue();
      };
    }
    await committed(tx);
  }
}

function sameBytes(a, b) {
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
