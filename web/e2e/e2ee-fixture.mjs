// The cross-implementation fixture in the JavaScript-to-Go direction: run
// with `node web/e2e/e2ee-fixture.mjs`, it writes
// internal/e2ee/testdata/js-artifacts.json, made by web/static/e2ee.js with
// fresh random keys, for the Go implementation's tests to open. For each
// algorithm set: two identities, a certified device each, an envelope of
// the room key from Alice's device to Bob's, a message from Alice's device,
// (with a small encrypted file), the safety number of the two, and Alice's
// key backup; and, for both sets, two more encrypted files (files do not
// depend on the algorithms): one of two chunks, and the empty file. The
// private keys the Go side needs are included: Bob's device keys (PKCS#8,
// and JWK "d", the raw scalar or seed), both identities' PKCS#8, and the
// backup's passphrase. Keys are fresh on every run, so the file changes on
// every run; the committed one is one run's output.
//
// openArtifacts checks an artifacts object with the same code, so that a
// committed file is known to open (e2ee.test.mjs runs it).
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as e2ee from '../static/e2ee.js';

const { b64u, fromB64u } = e2ee;
const subtle = globalThis.crypto.subtle;

const chat = 'group:js-fixture';
const epoch = 1;
const clientId = 'web:1700000000000.fixture';
const passphrase = 'apple river candle orbit maple tiger frost lemon anchor velvet';

// fileSizes: a file of a full chunk and a bit, and the empty file.
const fileSizes = [e2ee.FILE_CHUNK + 100, 0];

// pattern is the plaintext of a fixture file: byte i is (7i + 3) mod 256.
function pattern(size) {
  return Uint8Array.from({ length: size }, (_, i) => (7 * i + 3) & 0xff);
}

const webcrypto = {
  ed25519: { name: 'Ed25519' },
  x25519: { name: 'X25519' },
  p256sig: { name: 'ECDSA', namedCurve: 'P-256' },
  p256dh: { name: 'ECDH', namedCurve: 'P-256' },
};

// exportablePair makes a key pair whose private half can be written out:
// Bob's device keys, which the Go side must hold to open the envelope.
async function exportablePair(kind, alg) {
  const params = webcrypto[alg === 'p256' ? `p256${kind}` : alg];
  const pair = await subtle.generateKey(params, true, kind === 'sig' ? ['sign', 'verify'] : ['deriveBits']);
  const jwk = await subtle.exportKey('jwk', pair.privateKey);
  return {
    alg,
    pub: new Uint8Array(await subtle.exportKey('raw', pair.publicKey)),
    privateKey: pair.privateKey,
    pkcs8: new Uint8Array(await subtle.exportKey('pkcs8', pair.privateKey)),
    d: jwk.d,
  };
}

async function artifactSet(algs) {
  e2ee.forceAlgorithms(algs);
  try {
    const alice = await e2ee.generateIdentity();
    const bob = await e2ee.generateIdentity();
    const aliceDevice = await e2ee.generateDevice({ username: 'Alice', identity: alice.identity });
    const bobDevice = {
      username: 'bob',
      deviceId: b64u(e2ee.randomBytes(16)),
      dh: await exportablePair('dh', algs.dh),
      sig: await exportablePair('sig', algs.sig),
    };
    bobDevice.cert = await e2ee.certifyDevice(bob.identity, bobDevice);

    const roomKey = e2ee.generateRoomKey();
    const envelope = await e2ee.sealEnvelope({ chat, epoch, roomKey, sender: aliceDevice, recipient: bobDevice });
    const file = await e2ee.encryptFile(pattern(1000));
    const content = {
      text: 'Hello from the browser ✓ <&>',
      reply: { id: 41, username: 'bob', text: 'an earlier message' },
      file: { id: 1, name: 'fixture.bin', mime: 'application/octet-stream', ...file.descriptor },
      rev: 0,
    };
    const message = await e2ee.encryptMessage({ chat, epoch, device: aliceDevice, clientId, roomKey, content });
    const { header, backupKey } = await e2ee.createBackup({
      passphrase, username: 'Alice', identity: alice.identity, pkcs8: alice.pkcs8,
    });
    const roomKeyItem = await e2ee.backupRoomKey({ backupKey, username: 'Alice', chat, epoch, roomKey });
    const aliceKey = { username: 'Alice', alg: alice.identity.alg, pub: alice.identity.pub };
    const bobKey = { username: 'bob', alg: bob.identity.alg, pub: bob.identity.pub };

    return {
      algs,
      chat,
      epoch,
      alice: {
        username: 'Alice',
        identity: { ...e2ee.identityBody(alice.identity), pkcs8: b64u(alice.pkcs8) },
        device: e2ee.deviceBody(aliceDevice),
      },
      bob: {
        username: 'bob',
        identity: { ...e2ee.identityBody(bob.identity), pkcs8: b64u(bob.pkcs8) },
        device: e2ee.deviceBody(bobDevice),
        device_private: {
          dh: { pkcs8: b64u(bobDevice.dh.pkcs8), d: bobDevice.dh.d },
          sig: { pkcs8: b64u(bobDevice.sig.pkcs8), d: bobDevice.sig.d },
        },
      },
      room_key: b64u(roomKey),
      envelope: { sender: 'Alice', sender_device: aliceDevice.deviceId, ...envelope },
      message: {
        sender: 'Alice',
        client_id: clientId,
        text: message,
        plaintext: JSON.stringify({ v: 1, ...content }),
        file_ciphertext: b64u(file.ciphertext),
      },
      safety_number: await e2ee.safetyNumber(aliceKey, bobKey),
      backup: {
        username: 'Alice',
        passphrase,
        header,
        room_key_items: [roomKeyItem],
      },
    };
  } finally {
    e2ee.forceAlgorithms(null);
  }
}

/** makeArtifacts makes the fixture with fresh keys. */
export async function makeArtifacts() {
  const sets = [];
  for (const algs of [{ sig: 'ed25519', dh: 'x25519' }, { sig: 'p256', dh: 'p256' }]) sets.push(await artifactSet(algs));
  const files = [];
  for (const size of fileSizes) {
    const { ciphertext, descriptor } = await e2ee.encryptFile(pattern(size));
    files.push({ plaintext: `byte i is (7i + 3) mod 256, ${size} bytes`, descriptor, ciphertext: b64u(ciphertext) });
  }
  return {
    about: 'Made by web/e2e/e2ee-fixture.mjs (web/static/e2ee.js in Node\'s WebCrypto) with fresh random keys, for internal/e2ee to open. '
      + 'Binary fields are b64u. In each set, Alice\'s device sends bob\'s device the room key (envelope) and a message whose '
      + '"file" is message.file_ciphertext; "plaintext" is the JSON the message encrypts (the same object; JSON is not canonical, so '
      + 'compare parsed). device_private holds bob\'s device keys as PKCS#8 and as the JWK "d" (the raw private scalar, or the Ed25519 seed). '
      + 'files[i].plaintext says how to rebuild the file. backup.header is the body of PUT /keys/backup, made with the default count.',
    sets,
    files,
  };
}

async function importBobDevice(set) {
  const { bob } = set;
  const import8 = (kind, alg, pkcs8) => subtle.importKey('pkcs8', fromB64u(pkcs8),
    webcrypto[alg === 'p256' ? `p256${kind}` : alg], false, kind === 'sig' ? ['sign'] : ['deriveBits']);
  return {
    username: bob.username,
    deviceId: bob.device.device_id,
    dh: { alg: bob.device.dh.alg, pub: fromB64u(bob.device.dh.pub), privateKey: await import8('dh', bob.device.dh.alg, bob.device_private.dh.pkcs8) },
    sig: { alg: bob.device.sig.alg, pub: fromB64u(bob.device.sig.pub), privateKey: await import8('sig', bob.device.sig.alg, bob.device_private.sig.pkcs8) },
  };
}

/**
 * openArtifacts opens and checks every artifact with e2ee.js, throwing on
 * the first that does not; it resolves to one {alg} per set.
 */
export async function openArtifacts(artifacts) {
  const out = [];
  for (const set of artifacts.sets) {
    const alice = await e2ee.verifyDevice(set.alice.identity, set.alice.username, set.alice.device);
    await e2ee.verifyDevice(set.bob.identity, set.bob.username, set.bob.device);
    const bobDevice = await importBobDevice(set);
    const { sender, sender_device: senderDevice, ...envelope } = set.envelope;
    if (sender !== set.alice.username || senderDevice !== alice.deviceId) throw new Error('the envelope is not from Alice\'s device');
    const roomKey = await e2ee.openEnvelope({ chat: set.chat, epoch: set.epoch, envelope, sender: alice, device: bobDevice });
    if (b64u(roomKey) !== set.room_key) throw new Error('the envelope holds another room key');
    const m = await e2ee.openMessage({
      chat: set.chat, sender: set.message.sender, clientId: set.message.client_id, text: set.message.text, device: alice, roomKey,
    });
    if (JSON.stringify(JSON.parse(new TextDecoder().decode(m.plaintext))) !== JSON.stringify(JSON.parse(set.message.plaintext))) {
      throw new Error('the message holds another plaintext');
    }
    const file = await e2ee.decryptFile(fromB64u(set.message.file_ciphertext), m.content.file);
    if (b64u(file) !== b64u(pattern(m.content.file.size))) throw new Error('the message\'s file holds other bytes');
    const number = await e2ee.safetyNumber(
      { username: set.alice.username, ...e2ee.parseIdentityKey(set.alice.identity) },
      { username: set.bob.username, ...e2ee.parseIdentityKey(set.bob.identity) });
    if (number !== set.safety_number) throw new Error('another safety number');
    const { identity, backupKey } = await e2ee.openBackup({ passphrase: set.backup.passphrase, username: set.backup.username, header: set.backup.header });
    if (b64u(identity.pub) !== set.alice.identity.pub) throw new Error('the backup holds another identity');
    for (const item of set.backup.room_key_items) {
      if (b64u(await e2ee.openBackupRoomKey({ backupKey, username: set.backup.username, item })) !== set.room_key) {
        throw new Error('the backup holds another room key');
      }
    }
    out.push({ alg: `${set.algs.sig}/${set.algs.dh}` });
  }
  for (const f of artifacts.files) {
    const plain = await e2ee.decryptFile(fromB64u(f.ciphertext), f.descriptor);
    if (b64u(plain) !== b64u(pattern(f.descriptor.size))) throw new Error('a file holds other bytes');
  }
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const here = dirname(fileURLToPath(import.meta.url));
  // An argument names another file: internal/e2ee's tests write a fresh one
  // to a temporary folder on every run.
  const out = process.argv[2] || join(here, '..', '..', 'internal', 'e2ee', 'testdata', 'js-artifacts.json');
  const artifacts = await makeArtifacts();
  await openArtifacts(artifacts);
  writeFileSync(out, `${JSON.stringify(artifacts, null, 2)}\n`);
  console.log(`wrote ${out}`);
}
