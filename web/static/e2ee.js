// End-to-end encryption of direct chats and groups, as E2EE.md specifies:
// keys, device certificates, room-key envelopes, messages, files, the key
// backup and safety numbers. WebCrypto only, and nothing else: no DOM and no
// storage (keystore.js keeps the keys), so the same module runs in the
// browser and in Node's globalThis.crypto, where the tests run it against
// the Go implementation's vectors.
//
// Bytes are Uint8Arrays; the JSON bodies the server carries hold them as
// b64u strings. Usernames keep their case in JSON and are lower-cased in
// transcripts. Every failure is an E2EEError whose reason is one of
// `reasons`, so that a view can say why a message did not open.

import { words } from './wordlist.js';

/** reasons names why something did not open or verify. */
export const reasons = Object.freeze({
  unknownDevice: 'unknown_device',
  missingEpochKey: 'missing_epoch_key',
  badSignature: 'bad_signature',
  alteredCiphertext: 'altered_ciphertext',
  malformed: 'malformed',
  replay: 'replay',
  wrongDevice: 'wrong_device',
  tooLarge: 'too_large',
  truncated: 'truncated',
  badCertificate: 'bad_certificate',
  wrongPassphrase: 'wrong_passphrase',
  unsupportedAlgorithm: 'unsupported_algorithm',
});

/** E2EEError is every failure of this module; reason is one of `reasons`. */
export class E2EEError extends Error {
  constructor(reason, message) {
    super(message);
    this.name = 'E2EEError';
    this.reason = reason;
  }
}

function fail(reason, message) {
  throw new E2EEError(reason, message);
}

// The transcript labels of E2EE.md, one per use, so that a signature or a
// ciphertext made for one use never passes for another.
const label = Object.freeze({
  device: 'mapsim-e2ee/v1/device',
  roomKey: 'mapsim-e2ee/v1/room-key',
  envelope: 'mapsim-e2ee/v1/room-key-envelope',
  message: 'mapsim-e2ee/v1/message',
  fileChunk: 'mapsim-e2ee/v1/file-chunk',
  backupIdentity: 'mapsim-e2ee/v1/backup-identity',
  backupRoomKey: 'mapsim-e2ee/v1/backup-room-key',
  safety: 'mapsim-e2ee/v1/safety',
  safetyNumber: 'mapsim-e2ee/v1/safety-number',
});

/** FILE_CHUNK is the plaintext size of every file chunk but the last. */
export const FILE_CHUNK = 64 * 1024;

/** BACKUP_ITERATIONS is the PBKDF2 count of a new key backup, and the least one a backup may have. */
export const BACKUP_ITERATIONS = 600_000;

// MAX_BACKUP_ITERATIONS bounds the count a backup header may ask for, so
// that a bad header cannot keep a tab deriving for hours.
const MAX_BACKUP_ITERATIONS = 50_000_000;

const TAG_BYTES = 16;
const IV_BYTES = 12;
const KEY_BYTES = 32;
const DEVICE_ID_BYTES = 16;
const NONCE_PREFIX_BYTES = 8;
const SALT_BYTES = 16;
const SIGNATURE_BYTES = 64;
const REPLY_PREVIEW_BYTES = 200;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

function subtle() {
  const s = globalThis.crypto?.subtle;
  if (!s) fail(reasons.unsupportedAlgorithm, 'WebCrypto is not available here (it needs https or localhost).');
  return s;
}

/** randomBytes is n bytes from the platform's CSPRNG. */
export function randomBytes(n) {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) globalThis.crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  return out;
}

// ---- notation ----

const b64uAlphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const b64uValue = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) b64uValue[b64uAlphabet.charCodeAt(i)] = i;

/** b64u is bytes as base64url without padding. */
export function b64u(bytes) {
  const b = bytesOf(bytes);
  let out = '';
  let i = 0;
  for (; i + 3 <= b.length; i += 3) {
    const n = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
    out += b64uAlphabet[n >> 18] + b64uAlphabet[(n >> 12) & 63] + b64uAlphabet[(n >> 6) & 63] + b64uAlphabet[n & 63];
  }
  if (b.length - i === 1) {
    const n = b[i] << 16;
    out += b64uAlphabet[n >> 18] + b64uAlphabet[(n >> 12) & 63];
  } else if (b.length - i === 2) {
    const n = (b[i] << 16) | (b[i + 1] << 8);
    out += b64uAlphabet[n >> 18] + b64uAlphabet[(n >> 12) & 63] + b64uAlphabet[(n >> 6) & 63];
  }
  return out;
}

/**
 * fromB64u decodes base64url without padding, strictly: any other
 * character, padding, an impossible length or stray low bits are
 * malformed, and so is a length other than `length` when one is given.
 */
export function fromB64u(text, length) {
  if (typeof text !== 'string' || text.length % 4 === 1) fail(reasons.malformed, 'not base64url');
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? b64uValue[c] : -1;
    if (v < 0) fail(reasons.malformed, 'not base64url');
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  if (bits > 0 && (acc & ((1 << bits) - 1)) !== 0) fail(reasons.malformed, 'not canonical base64url');
  if (length !== undefined && out.length !== length) fail(reasons.malformed, `expected ${length} bytes, got ${out.length}`);
  return out;
}

/** u32 is n as 4 bytes, big-endian. */
export function u32(n) {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) fail(reasons.malformed, `not a u32: ${n}`);
  return new Uint8Array([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
}

/** LP is u32(len(x)) || x, a string being its UTF-8 bytes. */
export function LP(x) {
  const b = typeof x === 'string' ? encoder.encode(x) : bytesOf(x);
  return concat(u32(b.length), b);
}

/** T is the transcript LP(label) || LP(f1) || … || LP(fn). */
export function T(labelText, ...fields) {
  return concat(LP(labelText), ...fields.map(LP));
}

/** concat joins byte strings. */
export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

// bytesOf views a BufferSource as a Uint8Array (without copying).
function bytesOf(x) {
  if (x instanceof Uint8Array) return x;
  if (x instanceof ArrayBuffer) return new Uint8Array(x);
  if (ArrayBuffer.isView(x)) return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  fail(reasons.malformed, 'expected bytes');
}

// bytesOrB64u accepts bytes, or their b64u as JSON carries them.
function bytesOrB64u(x, length) {
  const b = typeof x === 'string' ? fromB64u(x) : bytesOf(x);
  if (length !== undefined && b.length !== length) fail(reasons.malformed, `expected ${length} bytes, got ${b.length}`);
  return b;
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

// lower lower-cases a username's ASCII letters for transcripts. Only ASCII
// is lower-cased, so that every implementation does it alike; a name in
// another script enters as the server spells it. Control characters and
// lone surrogates are refused.
function lower(username) {
  if (typeof username !== 'string' || username === '' || /[\x00-\x1f\x7f]/.test(username)) {
    fail(reasons.malformed, 'a username has no control characters');
  }
  checkString(username, 'a username');
  return username.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
}

function checkEpoch(epoch) {
  if (!Number.isInteger(epoch) || epoch < 1 || epoch > 0xffffffff) fail(reasons.malformed, `not an epoch: ${epoch}`);
  return epoch;
}

// checkString refuses an empty string, and one with a lone surrogate,
// which TextEncoder would turn into U+FFFD and so into another transcript.
// (A loop rather than isWellFormed, which the browsers that need the P-256
// fallback may lack.)
function checkString(s, what) {
  if (typeof s !== 'string' || s === '') fail(reasons.malformed, `${what} must be a non-empty string`);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) i++;
    else if (c >= 0xd800 && c <= 0xdfff) fail(reasons.malformed, `${what} holds a lone surrogate`);
  }
  return s;
}

// ---- algorithms ----

// sigAlgorithms and dhAlgorithms describe each algorithm name of E2EE.md
// in WebCrypto's terms.
const sigAlgorithms = {
  ed25519: { key: { name: 'Ed25519' }, sign: { name: 'Ed25519' }, pubBytes: 32 },
  p256: { key: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' }, pubBytes: 65 },
};
const dhAlgorithms = {
  x25519: { key: { name: 'X25519' }, derive: 'X25519', pubBytes: 32 },
  p256: { key: { name: 'ECDH', namedCurve: 'P-256' }, derive: 'ECDH', pubBytes: 65 },
};

let detected = null;
let forced = null;

/**
 * detectAlgorithms resolves to {sig, dh}: the first choice of E2EE.md that
 * this platform can generate (ed25519, x25519), else the P-256 fallback.
 * forceAlgorithms overrides it.
 */
export function detectAlgorithms() {
  if (forced) return Promise.resolve(forced);
  detected ??= (async () => ({
    sig: (await generates({ name: 'Ed25519' }, ['sign', 'verify'])) ? 'ed25519' : 'p256',
    dh: (await generates({ name: 'X25519' }, ['deriveBits'])) ? 'x25519' : 'p256',
  }))();
  return detected;
}

async function generates(algorithm, usages) {
  try {
    await subtle().generateKey(algorithm, false, usages);
    return true;
  } catch {
    return false;
  }
}

/**
 * forceAlgorithms makes detectAlgorithms answer choice ({sig, dh}, e.g.
 * {sig: 'p256', dh: 'p256'} to test the fallback); null detects again.
 */
export function forceAlgorithms(choice) {
  if (choice === null) {
    forced = null;
    return;
  }
  if (!sigAlgorithms[choice?.sig] || !dhAlgorithms[choice?.dh]) fail(reasons.unsupportedAlgorithm, 'unknown algorithm');
  forced = Object.freeze({ sig: choice.sig, dh: choice.dh });
}

function sigAlgorithm(alg) {
  const a = Object.prototype.hasOwnProperty.call(sigAlgorithms, alg) ? sigAlgorithms[alg] : null;
  if (!a) fail(reasons.unsupportedAlgorithm, `unknown signing algorithm ${String(alg).slice(0, 20)}`);
  return a;
}

function dhAlgorithm(alg) {
  const a = Object.prototype.hasOwnProperty.call(dhAlgorithms, alg) ? dhAlgorithms[alg] : null;
  if (!a) fail(reasons.unsupportedAlgorithm, `unknown key agreement algorithm ${String(alg).slice(0, 20)}`);
  return a;
}

function checkPub(pub, bytes) {
  if (pub.length !== bytes || (bytes === 65 && pub[0] !== 4)) fail(reasons.malformed, 'a public key of the wrong form');
  return pub;
}

// publicKey normalizes {alg, pub} (pub as bytes or b64u) of one kind.
function publicKey(kind, k) {
  const a = kind === 'sig' ? sigAlgorithm(k?.alg) : dhAlgorithm(k?.alg);
  return { alg: k.alg, pub: checkPub(bytesOrB64u(k.pub), a.pubBytes) };
}

async function importPublic(kind, k) {
  const a = kind === 'sig' ? sigAlgorithm(k.alg) : dhAlgorithm(k.alg);
  try {
    return await subtle().importKey('raw', k.pub, a.key, true, kind === 'sig' ? ['verify'] : []);
  } catch (err) {
    if (err instanceof E2EEError) throw err;
    fail(reasons.malformed, `a ${k.alg} public key that does not import: ${err.message}`);
  }
}

// verifyKey is k's CryptoKey for verifying: its own when it has one.
function verifyKey(k) {
  return k.key ? Promise.resolve(k.key) : importPublic('sig', k);
}

async function sign(privateKey, alg, data) {
  return new Uint8Array(await subtle().sign(sigAlgorithm(alg).sign, privateKey, data));
}

async function verify(k, signature, data) {
  if (signature.length !== SIGNATURE_BYTES) return false;
  try {
    return await subtle().verify(sigAlgorithm(k.alg).sign, await verifyKey(k), signature, data);
  } catch (err) {
    if (err instanceof E2EEError) throw err;
    return false;
  }
}

async function exportRaw(key) {
  return new Uint8Array(await subtle().exportKey('raw', key));
}

// ---- identity ----

/**
 * generateIdentity makes an account's identity key. It resolves to
 * {identity: {alg, pub, privateKey}, pkcs8}: the private key is a
 * non-extractable re-import, and pkcs8 is its only export, for
 * createBackup; drop it once the backup is made.
 */
export async function generateIdentity(alg) {
  alg ??= (await detectAlgorithms()).sig;
  const a = sigAlgorithm(alg);
  const pair = await subtle().generateKey(a.key, true, ['sign', 'verify']);
  const pkcs8 = new Uint8Array(await subtle().exportKey('pkcs8', pair.privateKey));
  const pub = await exportRaw(pair.publicKey);
  const privateKey = await subtle().importKey('pkcs8', pkcs8, a.key, false, ['sign']);
  return { identity: { alg, pub, privateKey, key: pair.publicKey }, pkcs8 };
}

/**
 * importIdentity makes an identity from its PKCS#8 private key and raw
 * public key (as a backup holds them), non-extractable, after checking
 * that the two belong together.
 */
export async function importIdentity({ alg, pkcs8, pub }) {
  const k = publicKey('sig', { alg, pub });
  let privateKey;
  try {
    privateKey = await subtle().importKey('pkcs8', bytesOrB64u(pkcs8), sigAlgorithm(alg).key, false, ['sign']);
  } catch (err) {
    if (err instanceof E2EEError) throw err;
    fail(reasons.malformed, `an identity key that does not import: ${err.message}`);
  }
  const probe = T('mapsim-e2ee/v1/identity-check', k.pub);
  if (!(await verify(k, await sign(privateKey, alg, probe), probe))) {
    fail(reasons.malformed, 'the identity private key does not match its public key');
  }
  return { alg, pub: k.pub, privateKey, key: await importPublic('sig', k) };
}

/** identityBody is the body of PUT /keys/identity. */
export function identityBody(identity) {
  return { alg: identity.alg, pub: b64u(identity.pub) };
}

/** parseIdentityKey reads an identity key as the server gives it ({alg, pub}). */
export function parseIdentityKey(body) {
  return publicKey('sig', body);
}

// ---- devices ----

function deviceTranscript(username, deviceId, dh, sig) {
  return T(label.device, lower(username), deviceId, dh.alg, dh.pub, sig.alg, sig.pub);
}

/**
 * generateDevice makes this device's keys (non-extractable private halves)
 * and certifies them with the identity: {username, deviceId, dh, sig,
 * cert}, where dh and sig are {alg, pub, privateKey, key}. The algorithms
 * default to detectAlgorithms'.
 */
export async function generateDevice({ username, identity, dhAlg, sigAlg }) {
  const algs = await detectAlgorithms();
  dhAlg ??= algs.dh;
  sigAlg ??= algs.sig;
  const dhPair = await subtle().generateKey(dhAlgorithm(dhAlg).key, false, ['deriveBits']);
  const sigPair = await subtle().generateKey(sigAlgorithm(sigAlg).key, false, ['sign', 'verify']);
  const device = {
    username,
    deviceId: b64u(randomBytes(DEVICE_ID_BYTES)),
    dh: { alg: dhAlg, pub: await exportRaw(dhPair.publicKey), privateKey: dhPair.privateKey, key: dhPair.publicKey },
    sig: { alg: sigAlg, pub: await exportRaw(sigPair.publicKey), privateKey: sigPair.privateKey, key: sigPair.publicKey },
  };
  device.cert = await certifyDevice(identity, device);
  return device;
}

/**
 * certifyDevice is the identity's certificate (64 bytes) of a device
 * ({username, deviceId, dh: {alg, pub}, sig: {alg, pub}}).
 */
export async function certifyDevice(identity, { username, deviceId, dh, sig }) {
  fromB64u(checkString(deviceId, 'device_id'), DEVICE_ID_BYTES);
  return sign(identity.privateKey, identity.alg,
    deviceTranscript(username, deviceId, publicKey('dh', dh), publicKey('sig', sig)));
}

/** deviceBody is the body of POST /keys/devices for a device. */
export function deviceBody(device) {
  return {
    device_id: device.deviceId,
    dh: { alg: device.dh.alg, pub: b64u(device.dh.pub) },
    sig: { alg: device.sig.alg, pub: b64u(device.sig.pub) },
    cert: b64u(device.cert),
  };
}

/**
 * verifyDevice checks a device as the server lists it ({device_id, dh,
 * sig, cert}) against the pinned identity key ({alg, pub}) of its owner,
 * and resolves to {username, deviceId, dh, sig, cert} with the public keys
 * imported; a certificate that does not verify is bad_certificate.
 */
export async function verifyDevice(identityKey, username, body) {
  const owner = publicKey('sig', identityKey);
  const deviceId = checkString(body?.device_id, 'device_id');
  fromB64u(deviceId, DEVICE_ID_BYTES);
  const dh = publicKey('dh', body.dh);
  const sig = publicKey('sig', body.sig);
  const cert = fromB64u(body.cert, SIGNATURE_BYTES);
  if (!(await verify(owner, cert, deviceTranscript(username, deviceId, dh, sig)))) {
    fail(reasons.badCertificate, `device ${deviceId} of ${username} is not certified by the identity key`);
  }
  dh.key = await importPublic('dh', dh);
  sig.key = await importPublic('sig', sig);
  return { username, deviceId, dh, sig, cert };
}

// ---- symmetric helpers ----

// aesKey imports a 32-byte key for AES-256-GCM, non-extractable; a
// CryptoKey passes through.
async function aesKey(key) {
  if (globalThis.CryptoKey && key instanceof globalThis.CryptoKey) return key;
  const raw = bytesOf(key);
  if (raw.length !== KEY_BYTES) fail(reasons.malformed, 'an AES-256 key is 32 bytes');
  return subtle().importKey('raw', raw, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
}

async function seal(key, iv, plaintext, aad) {
  const k = await aesKey(key);
  return new Uint8Array(await subtle().encrypt({ name: 'AES-GCM', iv, additionalData: aad, tagLength: 128 }, k, plaintext));
}

// open is AES-GCM decryption; a wrong key, IV, AAD or a changed byte all
// fail the tag, and say altered_ciphertext (or what the caller names).
async function open(key, iv, ciphertext, aad, reason = reasons.alteredCiphertext, message = 'the ciphertext was altered') {
  const k = await aesKey(key);
  if (ciphertext.length < TAG_BYTES) fail(reasons.malformed, 'a ciphertext shorter than its tag');
  try {
    return new Uint8Array(await subtle().decrypt({ name: 'AES-GCM', iv, additionalData: aad, tagLength: 128 }, k, ciphertext));
  } catch {
    fail(reason, message);
  }
}

async function sha(name, data) {
  return new Uint8Array(await subtle().digest(name, data));
}

// ---- room keys and envelopes ----

/** generateRoomKey makes the 32 random bytes of a new epoch's room key. */
export function generateRoomKey() {
  return randomBytes(KEY_BYTES);
}

/** importRoomKey makes a room key's bytes a non-extractable AES-GCM CryptoKey, to keep. */
export function importRoomKey(raw) {
  return aesKey(bytesOrB64u(raw, KEY_BYTES));
}

function roomKeyInfo(chat, epoch, recipientUsername, recipientDeviceId) {
  return T(label.roomKey, chat, u32(epoch), lower(recipientUsername), recipientDeviceId);
}

function envelopeTranscript(chat, epoch, sender, recipientUsername, recipientDeviceId, ephPub, iv, ct) {
  return T(label.envelope, chat, u32(epoch), lower(sender.username), sender.deviceId,
    lower(recipientUsername), recipientDeviceId, ephPub, iv, ct);
}

async function deriveBits(alg, privateKey, publicKeyObject) {
  const a = dhAlgorithm(alg);
  try {
    return new Uint8Array(await subtle().deriveBits({ name: a.derive, public: publicKeyObject }, privateKey, 256));
  } catch (err) {
    fail(reasons.malformed, `key agreement failed: ${err.message}`);
  }
}

async function hkdf(ikm, salt, info) {
  const k = await subtle().importKey('raw', ikm, 'HKDF', false, ['deriveBits']);
  return new Uint8Array(await subtle().deriveBits({ name: 'HKDF', hash: 'SHA-256', salt, info }, k, 256));
}

/**
 * sealEnvelope wraps an epoch's room key (32 bytes) for one recipient
 * device ({username, deviceId, dh}) and signs it with the sender's own
 * device: the envelope object of POST /chats/{chat}/epochs. ephemeral
 * ({privateKey, pub}) and iv are for reproducing test vectors; left out,
 * both are fresh.
 */
export async function sealEnvelope({ chat, epoch, roomKey, sender, recipient, ephemeral, iv }) {
  checkString(chat, 'chat');
  checkEpoch(epoch);
  const key = bytesOrB64u(roomKey, KEY_BYTES);
  const dh = publicKey('dh', recipient.dh);
  const recipientDeviceId = checkString(recipient.deviceId, 'recipient device');
  if (!ephemeral) {
    const pair = await subtle().generateKey(dhAlgorithm(dh.alg).key, false, ['deriveBits']);
    ephemeral = { privateKey: pair.privateKey, pub: await exportRaw(pair.publicKey) };
  }
  const ephPub = checkPub(bytesOf(ephemeral.pub), dhAlgorithm(dh.alg).pubBytes);
  iv = iv ? bytesOrB64u(iv, IV_BYTES) : randomBytes(IV_BYTES);
  const z = await deriveBits(dh.alg, ephemeral.privateKey, recipient.dh.key || await importPublic('dh', dh));
  const info = roomKeyInfo(chat, epoch, recipient.username, recipientDeviceId);
  const k = await hkdf(z, concat(ephPub, dh.pub), info);
  const ct = await seal(k, iv, key, info);
  const sig = await sign(sender.sig.privateKey, sender.sig.alg,
    envelopeTranscript(chat, epoch, sender, recipient.username, recipientDeviceId, ephPub, iv, ct));
  return {
    recipient: recipient.username,
    recipient_device: recipientDeviceId,
    eph_pub: b64u(ephPub),
    iv: b64u(iv),
    ct: b64u(ct),
    sig: b64u(sig),
  };
}

/**
 * startEpoch makes a new room key and the body of POST /chats/{chat}/epochs:
 * one envelope for every device in recipients (every device of every
 * current member, the sender's own included). It resolves to {body,
 * roomKey}; the caller keeps roomKey (and backs it up) once the server
 * answers 201.
 */
export async function startEpoch({ chat, epoch, device, recipients }) {
  const ids = new Set(recipients.map((r) => `${lower(r.username)} ${r.deviceId}`));
  if (ids.size !== recipients.length) fail(reasons.malformed, 'a device is listed twice');
  const roomKey = generateRoomKey();
  const envelopes = await Promise.all(recipients.map((recipient) =>
    sealEnvelope({ chat, epoch, roomKey, sender: device, recipient })));
  return { body: { epoch, sender_device: device.deviceId, envelopes }, roomKey };
}

// readEnvelope checks an envelope's shape (malformed) and returns its
// bytes: the first of the checks, in the order the vectors' README fixes.
async function readEnvelope({ chat, epoch, envelope }) {
  checkString(chat, 'chat');
  checkEpoch(epoch);
  const recipient = checkString(envelope?.recipient, 'recipient');
  lower(recipient);
  const recipientDeviceId = checkString(envelope.recipient_device, 'recipient_device');
  fromB64u(recipientDeviceId, DEVICE_ID_BYTES);
  const ephPub = fromB64u(envelope.eph_pub);
  if (ephPub.length !== 32) await importPublic('dh', { alg: 'p256', pub: checkPub(ephPub, 65) });
  const iv = fromB64u(envelope.iv, IV_BYTES);
  const ct = fromB64u(envelope.ct, KEY_BYTES + TAG_BYTES);
  const signature = fromB64u(envelope.sig, SIGNATURE_BYTES);
  return { recipient, recipientDeviceId, ephPub, iv, ct, signature };
}

// checkEnvelopeSignature is bad_signature unless the sending device signed e.
async function checkEnvelopeSignature({ chat, epoch, sender }, e) {
  const transcript = envelopeTranscript(chat, epoch, sender, e.recipient, e.recipientDeviceId, e.ephPub, e.iv, e.ct);
  if (!(await verify(sender.sig, e.signature, transcript))) {
    fail(reasons.badSignature, `the room key envelope is not signed by device ${sender.deviceId}`);
  }
}

/**
 * verifyEnvelope checks an envelope's shape and its signature by the
 * sending device ({username, deviceId, sig}, as verifyDevice gives it),
 * as the server does, without opening it: malformed or bad_signature.
 */
export async function verifyEnvelope({ chat, epoch, envelope, sender }) {
  await checkEnvelopeSignature({ chat, epoch, sender }, await readEnvelope({ chat, epoch, envelope }));
}

/**
 * openEnvelope checks an envelope's signature by the sending device (one
 * verifyDevice accepted) and opens it with this device's agreement key,
 * resolving to the room key's 32 bytes. An envelope addressed to another
 * device is wrong_device; one whose signature fails is bad_signature; one
 * whose ciphertext fails is altered_ciphertext.
 */
export async function openEnvelope({ chat, epoch, envelope, sender, device }) {
  const e = await readEnvelope({ chat, epoch, envelope });
  if (lower(e.recipient) !== lower(device.username) || e.recipientDeviceId !== device.deviceId) {
    fail(reasons.wrongDevice, 'this envelope is for another device');
  }
  await checkEnvelopeSignature({ chat, epoch, sender }, e);
  const { ephPub, iv, ct } = e;
  checkPub(ephPub, dhAlgorithm(device.dh.alg).pubBytes);
  const z = await deriveBits(device.dh.alg, device.dh.privateKey, await importPublic('dh', { alg: device.dh.alg, pub: ephPub }));
  const info = roomKeyInfo(chat, epoch, device.username, device.deviceId);
  const k = await hkdf(z, concat(ephPub, device.dh.pub), info);
  return open(k, iv, ct, info);
}

// ---- messages ----

/** MESSAGE_PREFIX starts the text of every end-to-end encrypted message. */
export const MESSAGE_PREFIX = 'mse1.';

/**
 * encryptedMessageLimit is the longest mse1 text the server takes when
 * MAX_MESSAGE_BYTES is maxMessageBytes (the hello frame's limit).
 */
export function encryptedMessageLimit(maxMessageBytes) {
  return Math.ceil((maxMessageBytes * 4) / 3) + 1024;
}

/**
 * parseMessage splits an mse1 text into {epoch, deviceId, iv, ct, sig};
 * anything else is malformed, and a text of more than maxBytes bytes (when
 * given) is too_large.
 */
export function parseMessage(text, maxBytes) {
  if (typeof text !== 'string') fail(reasons.malformed, 'not an mse1 message');
  if (maxBytes !== undefined && text.length > maxBytes / 3 && encoder.encode(text).length > maxBytes) {
    fail(reasons.tooLarge, `the message is more than ${maxBytes} bytes`);
  }
  if (!text.startsWith(MESSAGE_PREFIX)) fail(reasons.malformed, 'not an mse1 message');
  const parts = text.slice(MESSAGE_PREFIX.length).split('.');
  if (parts.length !== 5 || !/^[1-9][0-9]{0,9}$/.test(parts[0])) fail(reasons.malformed, 'not an mse1 message');
  const epoch = checkEpoch(Number(parts[0]));
  fromB64u(parts[1], DEVICE_ID_BYTES);
  const ct = fromB64u(parts[3]);
  if (ct.length < TAG_BYTES) fail(reasons.malformed, 'a ciphertext shorter than its tag');
  return { epoch, deviceId: parts[1], iv: fromB64u(parts[2], IV_BYTES), ct, sig: fromB64u(parts[4], SIGNATURE_BYTES) };
}

function messageAad(chat, epoch, sender, deviceId, clientId) {
  checkString(chat, 'chat');
  checkString(clientId, 'client_id');
  return T(label.message, chat, u32(epoch), lower(sender), deviceId, clientId);
}

// truncateUtf8 cuts text to at most max UTF-8 bytes on a character boundary.
function truncateUtf8(text, max) {
  const b = encoder.encode(text);
  if (b.length <= max) return text;
  let end = max;
  while (end > 0 && (b[end] & 0xc0) === 0x80) end--;
  return decoder.decode(b.subarray(0, end));
}

// messagePlaintext is the JSON of E2EE.md's plaintext, in its field order.
function messagePlaintext({ text, reply, file, rev }) {
  if (typeof text !== 'string') fail(reasons.malformed, 'a message text is a string');
  const body = { v: 1, text };
  if (reply) {
    body.reply = { id: reply.id, username: reply.username, text: truncateUtf8(String(reply.text ?? ''), REPLY_PREVIEW_BYTES) };
  }
  if (file) body.file = file;
  if (rev !== undefined) {
    if (!Number.isInteger(rev) || rev < 0) fail(reasons.malformed, 'rev is a whole number');
    body.rev = rev;
  }
  return encoder.encode(JSON.stringify(body));
}

function readPlaintext(plaintext) {
  let body;
  try {
    body = JSON.parse(decoder.decode(plaintext));
  } catch {
    fail(reasons.malformed, 'the plaintext is not JSON');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body) || body.v !== 1 || typeof body.text !== 'string') {
    fail(reasons.malformed, 'the plaintext is not a version 1 message');
  }
  const content = { text: body.text, rev: 0 };
  if (body.rev !== undefined) {
    if (!Number.isInteger(body.rev) || body.rev < 0) fail(reasons.malformed, 'rev is a whole number');
    content.rev = body.rev;
  }
  if (body.reply !== undefined) {
    const r = body.reply;
    if (r === null || typeof r !== 'object' || typeof r.username !== 'string' || typeof r.text !== 'string') {
      fail(reasons.malformed, 'a reply preview is {id, username, text}');
    }
    content.reply = { id: r.id, username: r.username, text: truncateUtf8(r.text, REPLY_PREVIEW_BYTES) };
  }
  if (body.file !== undefined) {
    if (body.file === null || typeof body.file !== 'object' || Array.isArray(body.file)) fail(reasons.malformed, 'file is an object');
    content.file = body.file;
  }
  return content;
}

/**
 * encryptMessage makes the mse1 text of a message (or of an edit, which
 * keeps the message's clientId and raises content.rev) from this device on
 * an epoch's room key. content is {text, reply?, file?, rev?}; plaintext
 * (bytes) may replace it and iv be given, to reproduce test vectors.
 */
export async function encryptMessage({ chat, epoch, device, clientId, roomKey, content, plaintext, iv }) {
  checkEpoch(epoch);
  const body = plaintext ? bytesOf(plaintext) : messagePlaintext(content);
  iv = iv ? bytesOrB64u(iv, IV_BYTES) : randomBytes(IV_BYTES);
  const aad = messageAad(chat, epoch, device.username, device.deviceId, clientId);
  const ct = await seal(roomKey, iv, body, aad);
  const sig = await sign(device.sig.privateKey, device.sig.alg, concat(aad, LP(iv), LP(ct)));
  return `${MESSAGE_PREFIX}${epoch}.${device.deviceId}.${b64u(iv)}.${b64u(ct)}.${b64u(sig)}`;
}

/**
 * openMessage checks and opens an mse1 text sent by sender (the frame's
 * username) with clientId. device is the sending device as verifyDevice
 * gave it, or null when the sender has no such device; roomKey is the
 * epoch's key (bytes or CryptoKey), or null when this device lacks it. It
 * resolves to {content: {text, rev, reply?, file?}, plaintext, epoch,
 * deviceId}; the failures, in the order they are checked: malformed,
 * unknown_device, bad_signature, missing_epoch_key, altered_ciphertext,
 * then malformed again for a plaintext that is not a message. Replays are
 * checkReplay's.
 */
export async function openMessage({ chat, sender, clientId, text, device, roomKey }) {
  const m = parseMessage(text);
  const aad = messageAad(chat, m.epoch, sender, m.deviceId, clientId);
  if (!device || device.deviceId !== m.deviceId || lower(device.username) !== lower(sender)) {
    fail(reasons.unknownDevice, `device ${m.deviceId} is not a known device of ${sender}`);
  }
  if (!(await verify(device.sig, m.sig, concat(aad, LP(m.iv), LP(m.ct))))) {
    fail(reasons.badSignature, `the message is not signed by device ${m.deviceId}`);
  }
  if (!roomKey) fail(reasons.missingEpochKey, `no room key for epoch ${m.epoch}`);
  const plaintext = await open(roomKey, m.iv, m.ct, aad);
  return { content: readPlaintext(plaintext), plaintext, epoch: m.epoch, deviceId: m.deviceId };
}

/** replayKey is the key of a (device, client_id) pair in checkReplay's Map. */
export function replayKey(deviceId, clientId) {
  return `${deviceId} ${clientId}`;
}

/**
 * checkReplay records that (deviceId, clientId) was accepted as messageId
 * at rev, in seen (a Map the caller keeps per chat; keystore.js persists
 * it). The same pair under another message id is a replay, and so is a
 * rev lower than the one recorded; the same message at the same rev again
 * (history loaded anew) is not.
 */
export function checkReplay(seen, { deviceId, clientId, messageId, rev = 0 }) {
  const key = replayKey(deviceId, clientId);
  const was = seen.get(key);
  if (was && String(was.messageId) !== String(messageId)) {
    fail(reasons.replay, `client id ${clientId} of device ${deviceId} was already used by message ${was.messageId}`);
  }
  if (was && rev < was.rev) fail(reasons.replay, `an older version (rev ${rev}) of message ${messageId}`);
  if (!was || rev > was.rev) seen.set(key, { messageId, rev });
}

// ---- files ----

function chunkAad(index, last) {
  return T(label.fileChunk, u32(index), last ? '1' : '0');
}

function chunkIv(noncePrefix, index) {
  return concat(noncePrefix, u32(index));
}

async function readAll(data) {
  if (globalThis.Blob && data instanceof globalThis.Blob) return new Uint8Array(await data.arrayBuffer());
  return bytesOf(data);
}

/**
 * encryptFile encrypts a file (Blob, ArrayBuffer or bytes) in 64 KiB
 * chunks under a fresh key and nonce prefix. It resolves to {ciphertext,
 * sha256, descriptor}, descriptor being {size, key, nonce_prefix, sha256}
 * in b64u for the message's "file" (or "thumb"). A file of no bytes is one
 * empty last chunk. key and noncePrefix may be given, to reproduce test
 * vectors.
 */
export async function encryptFile(data, { key, noncePrefix } = {}) {
  const plain = await readAll(data);
  key = key ? bytesOrB64u(key, KEY_BYTES) : randomBytes(KEY_BYTES);
  noncePrefix = noncePrefix ? bytesOrB64u(noncePrefix, NONCE_PREFIX_BYTES) : randomBytes(NONCE_PREFIX_BYTES);
  const aes = await aesKey(key);
  const chunks = Math.max(1, Math.ceil(plain.length / FILE_CHUNK));
  const ciphertext = new Uint8Array(plain.length + chunks * TAG_BYTES);
  for (let i = 0; i < chunks; i++) {
    const chunk = plain.subarray(i * FILE_CHUNK, (i + 1) * FILE_CHUNK);
    ciphertext.set(await seal(aes, chunkIv(noncePrefix, i), chunk, chunkAad(i, i === chunks - 1)), i * (FILE_CHUNK + TAG_BYTES));
  }
  const sha256 = await sha('SHA-256', ciphertext);
  return {
    ciphertext,
    sha256,
    descriptor: { size: plain.length, key: b64u(key), nonce_prefix: b64u(noncePrefix), sha256: b64u(sha256) },
  };
}

/**
 * decryptFile opens a file's ciphertext with its descriptor from the
 * message ({key, nonce_prefix, sha256, size?}). It checks the SHA-256
 * first, then every chunk, and returns the plaintext only when all of it
 * is authentic. A ciphertext that stops after a chunk that is not the last,
 * or inside a chunk's tag, is truncated; an empty last chunk after full
 * ones (which only the sender could make) is malformed; anything else that
 * does not open (a changed, reordered, dropped or appended chunk, another
 * size than the message says) is altered_ciphertext.
 */
export async function decryptFile(ciphertext, descriptor) {
  const ct = await readAll(ciphertext);
  const key = bytesOrB64u(descriptor?.key, KEY_BYTES);
  const noncePrefix = bytesOrB64u(descriptor.nonce_prefix, NONCE_PREFIX_BYTES);
  const want = bytesOrB64u(descriptor.sha256, 32);
  if (!equalBytes(await sha('SHA-256', ct), want)) fail(reasons.alteredCiphertext, 'the file does not match its SHA-256');
  const full = FILE_CHUNK + TAG_BYTES;
  const chunks = Math.max(1, Math.ceil(ct.length / full));
  const aes = await aesKey(key);
  const parts = [];
  for (let i = 0; i < chunks; i++) {
    const chunk = ct.subarray(i * full, (i + 1) * full);
    const last = i === chunks - 1;
    if (last && chunk.length < TAG_BYTES) fail(reasons.truncated, 'the file stops inside a chunk');
    const iv = chunkIv(noncePrefix, i);
    try {
      parts.push(await open(aes, iv, chunk, chunkAad(i, last)));
    } catch (err) {
      // Opening under the other last-chunk flag tells a cut file (its
      // final chunk was not the last) from bytes after the last chunk.
      const other = await open(aes, iv, chunk, chunkAad(i, !last)).then(() => true, () => false);
      if (other && last) fail(reasons.truncated, `the file stops after chunk ${i}, which is not its last`);
      if (other) fail(reasons.alteredCiphertext, `the file goes on after its last chunk (${i})`);
      throw err;
    }
  }
  if (chunks > 1 && parts[chunks - 1].length === 0) fail(reasons.malformed, 'the file ends with an empty chunk');
  const plain = concat(...parts);
  if (descriptor.size !== undefined && descriptor.size !== plain.length) {
    fail(reasons.alteredCiphertext, 'the file is not the size its message says');
  }
  return plain;
}

// ---- key backup ----

async function deriveBackupKey(passphrase, salt, iterations) {
  if (typeof passphrase !== 'string' || passphrase === '') fail(reasons.wrongPassphrase, 'the recovery passphrase is empty');
  const k = await subtle().importKey('raw', encoder.encode(passphrase), 'PBKDF2', false, ['deriveKey']);
  return subtle().deriveKey({ name: 'PBKDF2', hash: 'SHA-256', salt, iterations }, k,
    { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
}

/**
 * createBackup makes the key backup's header (the body of PUT
 * /keys/backup) from the recovery passphrase and the identity's PKCS#8
 * (generateIdentity's pkcs8). It resolves to {header, backupKey}, the
 * non-extractable key that backupRoomKey uses. iterations defaults to
 * BACKUP_ITERATIONS; salt and iv may be given, to reproduce test vectors.
 */
export async function createBackup({ passphrase, username, identity, pkcs8, iterations = BACKUP_ITERATIONS, salt, iv }) {
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_BACKUP_ITERATIONS) {
    fail(reasons.malformed, 'a PBKDF2 count out of range');
  }
  salt = salt ? bytesOrB64u(salt, SALT_BYTES) : randomBytes(SALT_BYTES);
  iv = iv ? bytesOrB64u(iv, IV_BYTES) : randomBytes(IV_BYTES);
  // A backup whose private key is not the identity's would fail only on
  // the day it is needed; importIdentity checks that they match.
  const k = await importIdentity({ alg: identity.alg, pkcs8, pub: identity.pub });
  const backupKey = await deriveBackupKey(passphrase, salt, iterations);
  const plaintext = encoder.encode(JSON.stringify({ alg: k.alg, private: b64u(bytesOrB64u(pkcs8)), pub: b64u(k.pub) }));
  const ct = await seal(backupKey, iv, plaintext, T(label.backupIdentity, lower(username)));
  return {
    header: {
      kdf: { alg: 'pbkdf2-sha256', iterations, salt: b64u(salt) },
      identity: { iv: b64u(iv), ct: b64u(ct) },
    },
    backupKey,
  };
}

/**
 * openBackup opens a backup header with the recovery passphrase: it
 * resolves to {identity, backupKey}, the identity non-extractable. A wrong
 * passphrase fails with wrong_passphrase. A header asking for fewer than
 * minIterations (BACKUP_ITERATIONS unless a test says otherwise) is
 * refused.
 */
export async function openBackup({ passphrase, username, header, minIterations = BACKUP_ITERATIONS }) {
  const kdf = header?.kdf;
  if (kdf?.alg !== 'pbkdf2-sha256') fail(reasons.unsupportedAlgorithm, 'the backup uses an unknown key derivation');
  if (!Number.isInteger(kdf.iterations) || kdf.iterations < minIterations || kdf.iterations > MAX_BACKUP_ITERATIONS) {
    fail(reasons.malformed, `the backup's PBKDF2 count ${kdf.iterations} is out of range`);
  }
  const salt = fromB64u(kdf.salt, SALT_BYTES);
  const iv = fromB64u(header.identity?.iv, IV_BYTES);
  const ct = fromB64u(header.identity.ct);
  const backupKey = await deriveBackupKey(passphrase, salt, kdf.iterations);
  const plaintext = await open(backupKey, iv, ct, T(label.backupIdentity, lower(username)),
    reasons.wrongPassphrase, 'The recovery passphrase is wrong: the key backup does not open with it.');
  let item;
  try {
    item = JSON.parse(decoder.decode(plaintext));
  } catch {
    fail(reasons.malformed, 'the backed-up identity is not JSON');
  }
  const identity = await importIdentity({ alg: item?.alg, pkcs8: item?.private, pub: item?.pub });
  return { identity, backupKey };
}

function backupRoomKeyAad(username, chat, epoch) {
  return T(label.backupRoomKey, lower(username), chat, u32(epoch));
}

/**
 * backupRoomKey makes a backup item ({chat, epoch, iv, ct}, for POST
 * /keys/backup/room-keys) of an epoch's room key.
 */
export async function backupRoomKey({ backupKey, username, chat, epoch, roomKey, iv }) {
  checkString(chat, 'chat');
  checkEpoch(epoch);
  iv = iv ? bytesOrB64u(iv, IV_BYTES) : randomBytes(IV_BYTES);
  const ct = await seal(backupKey, iv, bytesOrB64u(roomKey, KEY_BYTES), backupRoomKeyAad(username, chat, epoch));
  return { chat, epoch, iv: b64u(iv), ct: b64u(ct) };
}

/** openBackupRoomKey opens a backup item, resolving to the room key's 32 bytes. */
export async function openBackupRoomKey({ backupKey, username, item }) {
  checkString(item?.chat, 'chat');
  checkEpoch(item.epoch);
  const key = await open(backupKey, fromB64u(item.iv, IV_BYTES), fromB64u(item.ct, KEY_BYTES + TAG_BYTES),
    backupRoomKeyAad(username, item.chat, item.epoch));
  return key;
}

// ---- safety numbers ----

/** fingerprint is SHA-256 of a user's identity key transcript ({username, alg, pub}). */
export async function fingerprint({ username, alg, pub }) {
  const k = publicKey('sig', { alg, pub });
  return sha('SHA-256', T(label.safety, lower(username), k.alg, k.pub));
}

/**
 * safetyNumber is the 60 digits two users compare, in twelve groups of
 * five joined by spaces, the same whichever user is a. a and b are
 * {username, alg, pub}.
 */
export async function safetyNumber(a, b) {
  const pairs = [
    { name: lower(a.username), fp: await fingerprint(a) },
    { name: lower(b.username), fp: await fingerprint(b) },
  ];
  // Two names never tie between two users; the fingerprints break a tie
  // anyway, so that the order never depends on the argument order.
  pairs.sort((x, y) => compare(x.name, y.name) || compareBytes(x.fp, y.fp));
  const digest = await sha('SHA-512', T(label.safetyNumber, pairs[0].fp, pairs[1].fp));
  const view = new DataView(digest.buffer);
  const groups = [];
  for (let i = 0; i < 12; i++) groups.push(String(view.getUint32(4 * i) % 100000).padStart(5, '0'));
  return groups.join(' ');
}

function compare(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareBytes(a, b) {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

// ---- recovery passphrase ----

/**
 * generatePassphrase is count words (10 by default: 100 bits) drawn
 * uniformly from wordlist.js, joined by single spaces.
 */
export function generatePassphrase(count = 10) {
  if (words.length !== 1024) fail(reasons.malformed, 'the word list must hold 1024 words');
  if (!Number.isInteger(count) || count < 1 || count > 64) fail(reasons.malformed, 'a passphrase is 1 to 64 words');
  const picks = new Uint16Array(count);
  globalThis.crypto.getRandomValues(picks);
  return Array.from(picks, (n) => words[n & 1023]).join(' ');
}
