// Browser tests of end-to-end encryption in the web client (E2EE.md),
// against a real server, in Debian's Chromium: key setup and restore,
// encrypted direct chats and groups with files, what the server keeps,
// removal, a changed identity key, safety numbers and devices.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  launchBrowser, png, pageToken, openUser, register, login, restoreKeys, openChat, send, waitForMessage,
  api, withServer, noProblems, screenshot,
} from './lib.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

const token = pageToken;

// startDirect opens a direct chat with other from the dialog and resolves to its name.
async function startDirect(page, other) {
  await page.click('[data-testid=new-direct]');
  await page.fill('[data-testid=user-search]', other);
  await page.click(`[data-testid=user-result][data-username=${other}]`);
  await page.waitForSelector(`[data-testid=chat-header]:has-text("${other}")`);
  return page.evaluate(() => sessionStorage.getItem('mapsim.chat'));
}

// startGroup makes a group from the dialog and resolves to its name.
async function startGroup(page, title, members) {
  await page.click('[data-testid=new-group]');
  await page.fill('[data-testid=group-title]', title);
  for (const name of members) {
    await page.fill('[data-testid=user-search]', name);
    await page.click(`[data-testid=user-result][data-username=${name}]`);
  }
  await page.click('[data-testid=create-chat]');
  await page.waitForSelector(`[data-testid=chat-header]:has-text("${title}")`);
  return page.evaluate(() => sessionStorage.getItem('mapsim.chat'));
}

// filesUnder lists every file below dir.
function filesUnder(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(path));
    else if (statSync(path).isFile()) out.push(path);
  }
  return out;
}

// sendFile attaches a file in the open chat and waits for its message to be acknowledged.
async function sendFile(page, name, bytes, mimeType) {
  await page.setInputFiles('[data-testid=file-input]', { name, mimeType, buffer: bytes });
  await page.waitForSelector(`[data-testid=message][data-id] [data-testid=file-link]:text-is("${name}")`, { timeout: 30_000 });
}

// downloaded clicks a file link and resolves to the bytes saved.
async function downloaded(page, name) {
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.click(`[data-testid=file-link]:text-is("${name}")`),
  ]);
  return readFileSync(await download.path());
}

test('three users: an encrypted direct chat and group with files; the server keeps no plaintext', async () => {
  await withServer({}, async (server) => {
    const alice = await openUser(browser, server);
    const bob = await openUser(browser, server);
    const carol = await openUser(browser, server);
    await register(alice, 'alice');
    await register(bob, 'bob');
    await register(carol, 'carol');

    // The global chat says it is not end-to-end encrypted.
    await openChat(alice, 'global');
    await alice.waitForSelector('[data-testid=chat-header] [data-testid=e2ee-state][data-e2ee=off]');

    const marker = `marker-${randomBytes(8).toString('hex')}`;
    const direct = await startDirect(alice, 'bob');
    await alice.waitForSelector('[data-testid=chat-header] [data-testid=e2ee-state][data-e2ee=on]');
    await send(alice, `direct ${marker}`);
    const directItem = bob.locator(`[data-testid=chat-item][data-chat-name="${direct}"]`);
    await directItem.locator('[data-testid=chat-lock]').waitFor();
    await directItem.click();
    await waitForMessage(bob, `direct ${marker}`);

    // A reply carries its preview inside the message; an edit carries a higher rev.
    await bob.hover(`[data-testid=message]:has-text("direct ${marker}")`);
    await bob.click(`[data-testid=message]:has-text("direct ${marker}") button[aria-label=Reply]`);
    await send(bob, 'a reply from bob');
    await waitForMessage(alice, 'a reply from bob');
    await alice.waitForSelector(`[data-testid=message]:has-text("a reply from bob") [data-testid=message-reply]:has-text("direct ${marker}")`);
    await send(alice, 'to be edited');
    await waitForMessage(bob, 'to be edited');
    await alice.hover('[data-testid=message][data-id]:has-text("to be edited")');
    await alice.click('[data-testid=message][data-id]:has-text("to be edited") button[aria-label=Edit]');
    await alice.fill('.edit-input', `edited ${marker}`);
    await alice.press('.edit-input', 'Enter');
    await waitForMessage(bob, `edited ${marker}`);
    await bob.waitForSelector(`[data-testid=message]:has-text("edited ${marker}") [data-testid=message-edited]`);

    // A group of three with a file and an image.
    const group = await startGroup(alice, 'Secret team', ['bob', 'carol']);
    await send(alice, `group ${marker}`);
    for (const p of [bob, carol]) {
      await p.click(`[data-testid=chat-item][data-chat-name="${group}"]`);
      await waitForMessage(p, `group ${marker}`);
    }
    const fileBytes = Buffer.concat([randomBytes(100_000), Buffer.from(`file ${marker}`), randomBytes(100_000)]);
    const fileName = `report-${marker}.bin`;
    await sendFile(carol, fileName, fileBytes, 'application/octet-stream');
    const image = png(600, 400);
    await sendFile(carol, `photo-${marker}.png`, image, 'image/png');
    for (const p of [alice, bob]) {
      await p.waitForSelector(`[data-testid=file-link]:text-is("${fileName}")`, { timeout: 30_000 });
      assert.ok(fileBytes.equals(await downloaded(p, fileName)), 'the downloaded file differs from the one sent');
      // The thumbnail was made and encrypted in carol's browser, and decrypted here.
      await p.waitForFunction(() => {
        const img = document.querySelector('[data-testid=file-thumb]');
        return img && img.complete && img.naturalWidth > 0 && img.src.startsWith('blob:');
      }, null, { timeout: 30_000 });
      assert.ok(image.equals(await downloaded(p, `photo-${marker}.png`)), 'the downloaded image differs from the one sent');
    }
    await send(bob, 'got both');
    await waitForMessage(carol, 'got both');
    await screenshot(alice, 'e2ee-group');

    // What the server hands out is ciphertext.
    const bobToken = await token(bob);
    for (const chat of [direct, group]) {
      const history = await api(server, 'GET', `/messages/?chat_id=${encodeURIComponent(chat)}&limit=50`, bobToken);
      assert.equal(history.status, 200);
      const texts = history.body.messages.filter((m) => m.type !== 'system').map((m) => m.text);
      assert.ok(texts.length >= 3 && texts.every((t) => t.startsWith('mse1.')), `plaintext in ${chat}: ${JSON.stringify(texts).slice(0, 300)}`);
    }

    // Nothing the server keeps holds the marker or the file's bytes.
    await server.stop();
    const needles = [Buffer.from(marker), fileBytes.subarray(50_000, 50_064), image.subarray(image.length - 200, image.length - 136)];
    const places = [...filesUnder(join(server.dir, 'data')), ...filesUnder(join(server.dir, 'uploads'))];
    assert.ok(places.some((p) => p.endsWith('chat.db')), 'the database file was not found');
    for (const path of places) {
      const bytes = readFileSync(path);
      for (const needle of needles) assert.equal(bytes.indexOf(needle), -1, `${path} holds plaintext`);
    }
    for (const log of [server.logs, server.out]) {
      for (const needle of needles) assert.equal(Buffer.from(log).indexOf(needle), -1, 'the server log holds plaintext');
    }
    noProblems(alice, bob, carol);
  });
});

test('a removed member cannot decrypt what is sent after the removal', async () => {
  await withServer({}, async (server) => {
    const alice = await openUser(browser, server);
    const bob = await openUser(browser, server);
    const carol = await openUser(browser, server);
    await register(alice, 'alice');
    await register(bob, 'bob');
    await register(carol, 'carol');
    const group = await startGroup(alice, 'Shrinking', ['bob', 'carol']);
    await send(alice, 'before the removal');
    await carol.click(`[data-testid=chat-item][data-chat-name="${group}"]`);
    await waitForMessage(carol, 'before the removal');
    const aliceToken = await token(alice);
    const removed = await api(server, 'DELETE', `/chats/${group}/members/carol`, aliceToken);
    assert.ok(removed.status >= 200 && removed.status < 300, `removing carol: ${removed.status}`);
    await carol.waitForSelector(`[data-testid=chat-item][data-chat-name="${group}"]`, { state: 'detached' });
    await alice.waitForSelector('[data-testid=system-message]:has-text("carol")');
    await send(alice, 'after the removal');
    await bob.click(`[data-testid=chat-item][data-chat-name="${group}"]`);
    await waitForMessage(bob, 'after the removal');

    // carol's own client, given both ciphertexts, opens the first and not the second.
    const history = await api(server, 'GET', `/messages/?chat_id=${encodeURIComponent(group)}&limit=50`, aliceToken);
    const before = history.body.messages.find((m) => m.type === 'text' && m.id === Math.min(...history.body.messages.filter((x) => x.type === 'text').map((x) => x.id)));
    const afterMsg = history.body.messages.filter((m) => m.type === 'text').at(-1);
    assert.notEqual(before.id, afterMsg.id);
    const results = await carol.evaluate(async ({ chat, messages }) => {
      const secure = await import('/static/secure.js');
      const out = [];
      for (const m of messages) out.push(await secure.decrypt(chat, m));
      return out;
    }, { chat: group, messages: [before, afterMsg] });
    assert.equal(results[0].content?.text, 'before the removal');
    assert.equal(results[1].error, 'missing_epoch_key');
    assert.notEqual(JSON.parse(afterMsg.text.split('.')[1]), JSON.parse(before.text.split('.')[1]), 'no new epoch after the removal');
    // (carol's page logged the server's 403 for the envelope it may no longer fetch.)
    noProblems(alice, bob);
  });
});

test('a new browser restores the keys with the passphrase and reads the history; a wrong one says so', async () => {
  await withServer({}, async (server) => {
    const alice = await openUser(browser, server);
    const bob = await openUser(browser, server);
    const passphrase = await register(alice, 'alice');
    await register(bob, 'bob');
    const direct = await startDirect(alice, 'bob');
    await send(alice, 'history from the first browser');
    await bob.click(`[data-testid=chat-item][data-chat-name="${direct}"]`);
    await waitForMessage(bob, 'history from the first browser');
    await send(bob, 'and an answer');
    await waitForMessage(alice, 'and an answer');

    const fresh = await openUser(browser, server);
    await login(fresh, 'alice');
    await fresh.waitForSelector('[data-testid=key-setup][data-mode=restore]');
    await restoreKeys(fresh, 'wrong words entirely here please');
    await fresh.waitForSelector('[data-testid=key-error]:has-text("wrong")');
    await restoreKeys(fresh, passphrase);
    await fresh.waitForSelector('[data-testid=app]');
    await openChat(fresh, direct);
    await waitForMessage(fresh, 'history from the first browser');
    await waitForMessage(fresh, 'and an answer');
    assert.equal(await fresh.locator('[data-testid=message-undecryptable]').count(), 0);

    // The new browser is a new device: its first message starts an epoch that bob reads.
    await send(fresh, 'from the new browser');
    await waitForMessage(bob, 'from the new browser');

    // My devices: two; the old one revoked from the new one.
    await fresh.click('[data-testid=my-devices]');
    await fresh.waitForFunction(() => document.querySelectorAll('[data-testid=device-row]').length === 2);
    await fresh.click('[data-testid=device-row] [data-testid=revoke-device]');
    await fresh.click('dialog[open].dialog-small .btn-danger');
    await fresh.waitForSelector('[data-testid=device-row][data-revoked=true]');
    await fresh.keyboard.press('Escape');
    // The revoked browser asks for the passphrase again on its next start.
    await alice.reload();
    await alice.waitForSelector('[data-testid=key-setup][data-mode=restore]');

    // The passphrase offered at setup stays the same through a language switch.
    const erin = await openUser(browser, server);
    await erin.click('[data-testid=mode-register]');
    await erin.fill('[data-testid=auth-form] input[name=username]', 'erin');
    await erin.fill('[data-testid=auth-form] input[name=password]', 'staple-Horse-battery-42');
    await erin.click('[data-testid=register]');
    await erin.waitForSelector('[data-testid=key-setup][data-mode=setup]');
    const offered = await erin.inputValue('[data-testid=recovery-passphrase]');
    assert.match(offered, /^[a-z]+( [a-z]+){9}$/);
    await erin.selectOption('[data-testid=lang]', 'fa');
    await erin.waitForSelector('html[lang=fa] [data-testid=key-setup][data-mode=setup]');
    assert.equal(await erin.inputValue('[data-testid=recovery-passphrase]'), offered);
    await screenshot(erin, 'e2ee-key-setup-fa');
    // Submitting without confirming the passphrase was written down is refused.
    await erin.click('[data-testid=key-setup-submit]');
    await erin.waitForSelector('[data-testid=key-error]:not([hidden])');
    await erin.check('[data-testid=passphrase-saved]');
    await erin.click('[data-testid=key-setup-submit]');
    await erin.waitForSelector('[data-testid=app]');
    noProblems(bob, fresh, erin);
  });
});

test('safety numbers agree; a swapped identity key is shown loudly and holds sends', async () => {
  await withServer({}, async (server) => {
    const alice = await openUser(browser, server);
    const bob = await openUser(browser, server);
    await register(alice, 'alice');
    await register(bob, 'bob');
    const direct = await startDirect(alice, 'bob');
    await send(alice, 'hello before the swap');
    await bob.click(`[data-testid=chat-item][data-chat-name="${direct}"]`);
    await waitForMessage(bob, 'hello before the swap');

    // Both sides show the same 60 digits; alice marks bob verified.
    const numbers = [];
    for (const p of [alice, bob]) {
      await p.click('[data-testid=safety-number-open]');
      await p.waitForFunction(() => /^(\d{5} ?){12}$/.test(document.querySelector('[data-testid=safety-number]')?.textContent.replace(/\s+/g, ' ').trim() || ''));
      numbers.push(await p.evaluate(() => document.querySelector('[data-testid=safety-number]').textContent.replace(/\s+/g, '')));
    }
    assert.equal(numbers[0], numbers[1]);
    assert.equal(numbers[0].length, 60);
    await alice.click('[data-testid=mark-verified]');
    await alice.waitForSelector('[data-testid=unmark-verified]');
    await bob.keyboard.press('Escape');
    await alice.keyboard.press('Escape');
    await alice.waitForSelector('[data-testid=verified-mark]:visible');

    // The server (here: the test, in the database) swaps bob's identity key.
    await swapIdentityKey(server, 'bob');
    await alice.reload();
    await alice.waitForSelector('[data-testid=app]');
    await openChat(alice, direct);
    await alice.waitForSelector('[data-testid=key-changed]:has-text("bob")');
    await alice.waitForSelector('[data-testid=verified-mark]', { state: 'hidden' });
    await send(alice, 'held until accepted');
    await alice.waitForSelector('[data-testid=message][data-client-id] [data-testid=message-status][data-status=held]');
    await screenshot(alice, 'e2ee-key-changed');
    const history = await api(server, 'GET', `/messages/?chat_id=${encodeURIComponent(direct)}&limit=50`, await token(bob));
    assert.equal(history.body.messages.filter((m) => m.type === 'text').length, 1, 'a held message reached the server');
    // Accepting clears the warning.
    await alice.click('[data-testid=accept-key]');
    await alice.waitForSelector('[data-testid=key-changed]', { state: 'hidden' });
    noProblems(bob);
  });
});

test('a message that does not open is shown with the reason, never as a blank', async () => {
  await withServer({}, async (server) => {
    const alice = await openUser(browser, server);
    const bob = await openUser(browser, server);
    await register(alice, 'alice');
    await register(bob, 'bob');
    const direct = await startDirect(alice, 'bob');
    await send(alice, 'the original');
    await bob.click(`[data-testid=chat-item][data-chat-name="${direct}"]`);
    await waitForMessage(bob, 'the original');
    const history = await api(server, 'GET', `/messages/?chat_id=${encodeURIComponent(direct)}&limit=50`, await token(bob));
    const original = history.body.messages.find((m) => m.type === 'text');
    // Forgeries of the message as a server could serve them: its ciphertext
    // again under another id (a replay), a changed ciphertext, and a device
    // alice never published.
    const parts = original.text.split('.');
    const flip = (b64) => (b64[5] === 'A' ? `${b64.slice(0, 5)}B${b64.slice(6)}` : `${b64.slice(0, 5)}A${b64.slice(6)}`);
    const forged = [
      { ...original, id: original.id + 1000, reason: 'replay' },
      { ...original, id: original.id + 1001, client_id: 'w-forged-1', text: [...parts.slice(0, 4), flip(parts[4]), parts[5]].join('.'), reason: 'bad_signature' },
      { ...original, id: original.id + 1002, client_id: 'w-forged-2', text: [parts[0], parts[1], 'AAAAAAAAAAAAAAAAAAAAAA', ...parts.slice(3)].join('.'), reason: 'unknown_device' },
    ];
    await bob.evaluate(async ({ chat, messages }) => {
      const controller = await import('/static/controller.js');
      const store = await import('/static/store.js');
      store.putMessages(chat, await controller.reveal(chat, messages));
    }, { chat: direct, messages: forged });
    for (const f of forged) {
      const line = bob.locator(`[data-testid=message][data-id="${f.id}"] [data-testid=message-undecryptable][data-reason=${f.reason}]`);
      await line.waitFor();
      assert.match(await line.textContent(), /cannot be decrypted: .{10,}/);
    }
    assert.match(await bob.locator('[data-testid=message-undecryptable][data-reason=replay]').textContent(), /replay/);
    await waitForMessage(bob, 'the original');
    await screenshot(bob, 'e2ee-undecryptable');

    // An edit that comes while its message still waits for its key (a new
    // epoch's envelope, slow to arrive) is applied, not lost.
    await bob.route('**/epochs/**', async (route) => {
      await new Promise((resolve) => { setTimeout(resolve, 1500); });
      await route.continue();
    });
    await alice.evaluate(async (chat) => (await import('/static/secure.js')).markStale(chat), direct);
    await send(alice, 'quick one');
    await alice.hover('[data-testid=message][data-id]:has-text("quick one")');
    await alice.click('[data-testid=message][data-id]:has-text("quick one") button[aria-label=Edit]');
    await alice.fill('.edit-input', 'quick one, edited');
    await alice.press('.edit-input', 'Enter');
    await waitForMessage(bob, 'quick one, edited');
    assert.equal(await bob.locator('[data-testid=message-text]:text-is("quick one")').count(), 0);
    await bob.unroute('**/epochs/**');
    noProblems(alice, bob);
  });
});

test('a message whose key could not be fetched opens once the connection is back', async () => {
  await withServer({}, async (server) => {
    const alice = await openUser(browser, server);
    const bob = await openUser(browser, server);
    await register(alice, 'alice');
    await register(bob, 'bob');
    const direct = await startDirect(alice, 'bob');
    await send(alice, 'needs its key');
    // bob's network fails for the envelope: the message says so …
    await bob.route('**/epochs/**', (route) => route.abort());
    await bob.click(`[data-testid=chat-item][data-chat-name="${direct}"]`);
    await bob.waitForSelector('[data-testid=message-undecryptable][data-reason=network]');
    // … and opens when the connection comes back.
    await bob.unroute('**/epochs/**');
    await server.restart();
    await waitForMessage(bob, 'needs its key', 30_000);
    assert.equal(await bob.locator('[data-testid=message-undecryptable]').count(), 0);
  });
});

// openWithoutCurve25519 opens the app in a browser context whose WebCrypto
// refuses Ed25519 and X25519, as older browsers do, so that the client
// falls back to P-256.
async function openWithoutCurve25519(server) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.addInitScript(() => {
    const generateKey = crypto.subtle.generateKey.bind(crypto.subtle);
    crypto.subtle.generateKey = (algorithm, ...rest) => {
      const name = typeof algorithm === 'string' ? algorithm : algorithm?.name;
      if (/^(ed25519|x25519)$/i.test(name || '')) return Promise.reject(new DOMException('Unrecognized name', 'NotSupportedError'));
      return generateKey(algorithm, ...rest);
    };
  });
  const page = await context.newPage();
  page.problems = [];
  page.on('console', (msg) => { if (msg.type() === 'error') page.problems.push(`console.error: ${msg.text()}`); });
  page.on('pageerror', (err) => page.problems.push(`page error: ${err.message}`));
  await page.goto(server.url + '/');
  return page;
}

test('a browser without Ed25519 and X25519 falls back to P-256 and talks with one that has them', async () => {
  await withServer({}, async (server) => {
    const alice = await openUser(browser, server);
    const dave = await openWithoutCurve25519(server);
    await register(alice, 'alice');
    await register(dave, 'dave');
    const keys = await api(server, 'GET', '/keys/users/dave', await token(alice));
    assert.equal(keys.body.identity.alg, 'p256');
    assert.deepEqual(keys.body.devices.map((d) => [d.dh.alg, d.sig.alg]), [['p256', 'p256']]);
    const direct = await startDirect(alice, 'dave');
    await send(alice, 'to a P-256 device');
    await dave.click(`[data-testid=chat-item][data-chat-name="${direct}"]`);
    await waitForMessage(dave, 'to a P-256 device');
    await send(dave, 'from a P-256 device');
    await waitForMessage(alice, 'from a P-256 device');
    noProblems(alice, dave);
  });
});

// swapIdentityKey replaces a user's published identity key in the
// server's database with another valid key, as a malicious server would.
async function swapIdentityKey(server, username) {
  const { execFileSync } = await import('node:child_process');
  const pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']);
  const pub = Buffer.from(await crypto.subtle.exportKey('raw', pair.publicKey));
  const db = join(server.dir, 'data', 'chat.db');
  execFileSync('sqlite3', ['-cmd', '.timeout 10000', db,
    `UPDATE e2ee_identities SET pub = x'${pub.toString('hex')}' WHERE user_id = (SELECT id FROM users WHERE username = '${username}');`]);
}
