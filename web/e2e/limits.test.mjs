// Browser tests of the limits the server announces in its hello: the client
// paces messages and frames under them, and refuses a file over the upload
// limit before sending it. Run with `make test-web`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  launchBrowser, openUser, register, openChat, send, withServer, noProblems,
} from './lib.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

// Far below the defaults (10 messages/s in bursts of 20, 40 frames/s in
// bursts of 80, 100 MB files), as an operator might set them.
const lowLimits = {
  RATE_LIMIT_MESSAGES_PER_SECOND: '1', RATE_LIMIT_MESSAGES_BURST: '2',
  RATE_LIMIT_FRAMES_PER_SECOND: '3', RATE_LIMIT_FRAMES_BURST: '5',
  UPLOAD_MAX_FILE_MB: '0.01',
};

// watchFrames collects the frames the server sends to a page's WebSockets.
// Call it before the page opens one.
function watchFrames(page) {
  const received = [];
  page.on('websocket', (ws) => ws.on('framereceived', ({ payload }) => {
    try { received.push(JSON.parse(payload)); } catch { /* not JSON */ }
  }));
  return received;
}

// watchUploads collects the upload requests a page makes.
function watchUploads(page) {
  const requests = [];
  page.on('request', (r) => { if (new URL(r.url()).pathname.startsWith('/upload')) requests.push(r.url()); });
  return requests;
}

// stored lists the acknowledged messages whose text starts with prefix, in
// the order the page shows them, once count of them are there and none of
// them is still pending.
async function stored(page, prefix, count) {
  await page.waitForFunction(({ p, n }) => {
    const all = [...document.querySelectorAll('[data-testid=message]')]
      .filter((el) => el.querySelector('[data-testid=message-text]')?.textContent.trim().startsWith(p));
    return all.length >= n && all.every((el) => el.dataset.id);
  }, { p: prefix, n: count }, { timeout: 30_000 });
  return page.evaluate((p) => [...document.querySelectorAll('[data-testid=message][data-id]')]
    .map((el) => ({ id: Number(el.dataset.id), text: el.querySelector('[data-testid=message-text]')?.textContent.trim() || '' }))
    .filter((m) => m.text.startsWith(p)), prefix);
}

function tooMany(frames) {
  return frames.filter((f) => f.type === 'error' && f.code === 'too_many');
}

test('a burst under low server limits arrives once, in order, without a too_many', async () => {
  await withServer(lowLimits, async (server) => {
    const alice = await openUser(browser, server);
    const bob = await openUser(browser, server);
    const toAlice = watchFrames(alice);
    const toBob = watchFrames(bob);
    await register(alice, 'alice');
    await register(bob, 'bob');
    await openChat(alice, 'global');
    await openChat(bob, 'global');

    // Eight messages typed as fast as the page takes them: four times the
    // server's burst of messages, and with the typing frames around each
    // more than three times its burst of frames.
    const texts = Array.from({ length: 8 }, (_, i) => `burst ${i + 1}`);
    for (const text of texts) await send(alice, text);
    for (const page of [alice, bob]) {
      const shown = await stored(page, 'burst ', texts.length);
      assert.deepEqual(shown.map((m) => m.text), texts, 'each message once, in the order sent');
      for (let i = 1; i < shown.length; i++) assert.ok(shown[i].id > shown[i - 1].id, `ids out of order: ${JSON.stringify(shown)}`);
    }
    assert.deepEqual(tooMany(toAlice), [], 'the server refused frames of alice\'s as too many');
    assert.deepEqual(tooMany(toBob), [], 'the server refused frames of bob\'s as too many');
    noProblems(alice, bob);
  });
});

test('a file over the upload limit is refused before it goes up; a reconfigured server\'s hello lifts it', async () => {
  await withServer(lowLimits, async (server) => {
    const alice = await openUser(browser, server);
    const uploads = watchUploads(alice);
    await register(alice, 'alice');
    await openChat(alice, 'global');

    // 20 000 bytes against a limit of 0.01 MB (10 485 bytes).
    const big = { name: 'big.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(20_000, 7) };
    await alice.setInputFiles('[data-testid=file-input]', big);
    const toast = alice.locator('[data-testid=toast]', { hasText: 'big.bin' });
    await toast.waitFor();
    assert.deepEqual(uploads, [], 'the file went up');
    assert.match(await toast.textContent(), /19\.5 KB.*10\.2 KB/);
    assert.equal(await alice.locator('[data-testid=upload-progress]').isVisible(), false, 'an upload started');

    // A file under the limit still goes up: the requests are watched.
    await alice.setInputFiles('[data-testid=file-input]', { name: 'small.txt', mimeType: 'text/plain', buffer: Buffer.from('small enough') });
    await alice.waitForSelector('[data-testid=file-link]:has-text("small.txt")');
    assert.equal(uploads.length, 1, `upload requests: ${uploads.join(', ')}`);

    // The operator raises the limit and restarts: the hello of the new
    // connection says so, and the same file goes up.
    await server.restart({ UPLOAD_MAX_FILE_MB: '1' });
    await alice.waitForSelector('[data-testid=connection-banner]', { state: 'hidden', timeout: 40_000 });
    await alice.setInputFiles('[data-testid=file-input]', big);
    await alice.waitForSelector('[data-testid=file-link]:has-text("big.bin")');
    assert.equal(uploads.length, 2, `upload requests: ${uploads.join(', ')}`);
    // Connection errors while the server was down are expected; nothing else.
    alice.problems = alice.problems.filter((m) => !/ERR_CONNECTION_REFUSED|WebSocket|Failed to load resource|net::ERR/.test(m));
    noProblems(alice);
  });
});
