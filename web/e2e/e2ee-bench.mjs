// A benchmark of web/static/e2ee.js in Node's WebCrypto, run by hand
// (`node web/e2e/e2ee-bench.mjs [runs]`; not a test): the median time to
// encrypt and sign a 1 KiB message, to verify and decrypt it, and to start
// an epoch for 50 member devices (50 ephemeral key agreements, HKDFs,
// AES-GCM wraps and signatures), with each algorithm set. The browser's
// numbers are measured in Chromium by the browser tests' engineer.
import * as e2ee from '../static/e2ee.js';

const runs = Number(process.argv[2]) || 400;
const epochRuns = Math.max(10, Math.round(runs / 20));
const chat = 'group:bench';

// median runs fn n times (after a few warm-up runs) and returns the median
// in milliseconds.
async function median(n, fn) {
  for (let i = 0; i < 5; i++) await fn(i);
  const times = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn(i);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(n / 2)];
}

const rows = [];
for (const algs of [{ sig: 'ed25519', dh: 'x25519' }, { sig: 'p256', dh: 'p256' }]) {
  e2ee.forceAlgorithms(algs);
  const { identity } = await e2ee.generateIdentity();
  const device = await e2ee.generateDevice({ username: 'alice', identity });
  const verified = await e2ee.verifyDevice(e2ee.identityBody(identity), 'alice', e2ee.deviceBody(device));
  const roomKey = await e2ee.importRoomKey(e2ee.generateRoomKey());
  const content = { text: 'x'.repeat(1024) };
  const texts = [];
  const encrypt = await median(runs, async (i) => {
    texts[i % 16] = await e2ee.encryptMessage({ chat, epoch: 1, device, clientId: `c${i % 16}`, roomKey, content });
  });
  const decrypt = await median(runs, async (i) => {
    await e2ee.openMessage({ chat, sender: 'alice', clientId: `c${i % 16}`, text: texts[i % 16], device: verified, roomKey });
  });
  const members = [];
  for (let i = 0; i < 50; i++) {
    const { identity: id } = await e2ee.generateIdentity();
    const d = await e2ee.generateDevice({ username: `member${i}`, identity: id });
    members.push(await e2ee.verifyDevice(e2ee.identityBody(id), d.username, e2ee.deviceBody(d)));
  }
  let epoch = 1;
  const startEpoch = await median(epochRuns, async () => {
    await e2ee.startEpoch({ chat, epoch: epoch++, device, recipients: members });
  });
  rows.push({ algs: `${algs.sig}/${algs.dh}`, encrypt, decrypt, startEpoch });
}
e2ee.forceAlgorithms(null);

console.log(`e2ee.js in Node ${process.version} WebCrypto; medians of ${runs} runs (${epochRuns} for epochs), in ms`);
console.log('algorithms        encrypt+sign 1 KiB   verify+decrypt 1 KiB   new epoch, 50 devices');
for (const r of rows) {
  console.log(`${r.algs.padEnd(18)}${r.encrypt.toFixed(3).padStart(18)}${r.decrypt.toFixed(3).padStart(23)}${r.startEpoch.toFixed(2).padStart(24)}`);
}
