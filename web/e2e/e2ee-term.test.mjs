// A browser user and a terminal user (`mapsim-chat chat`) in one end-to-end
// encrypted direct chat, both ways: the two implementations of E2EE.md
// (web/static/e2ee.js in Chromium, internal/e2eeclient in Go) open each
// other's envelopes and messages through a real server, and show the same
// safety number.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  launchBrowser, openUser, register, openChat, send, waitForMessage, apiUser, withServer, noProblems,
} from './lib.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const password = 'staple-Horse-battery-42';

let browser;
let bin;
before(async () => {
  browser = await launchBrowser();
  bin = process.env.MAPSIM_BIN;
  if (!bin) {
    bin = join(mkdtempSync(join(tmpdir(), 'mapsim-term-bin-')), 'mapsim-chat');
    execFileSync('go', ['build', '-o', bin, './cmd/mapsim-chat'], {
      cwd: root, stdio: 'inherit', env: { ...process.env, GOTOOLCHAIN: process.env.GOTOOLCHAIN || 'auto' },
    });
  }
});
after(async () => { await browser?.close(); });

// terminal runs the terminal client; the password and the recovery
// passphrase come from the environment, so every line typed is a message.
function terminal(server, username, chat, passphrase) {
  const dir = mkdtempSync(join(tmpdir(), 'mapsim-term-keys-'));
  const keys = join(dir, `${username}.json`);
  const proc = spawn(bin, ['chat', '-url', server.url, '-username', username, '-chat', chat, '-keys', keys], {
    env: { PATH: process.env.PATH, HOME: dir, MAPSIM_CHAT_PASSWORD: password, MAPSIM_CHAT_PASSPHRASE: passphrase },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const term = { proc, keys, out: '', err: '' };
  proc.stdout.on('data', (d) => { term.out += d; });
  proc.stderr.on('data', (d) => { term.err += d; });
  term.type = (line) => proc.stdin.write(`${line}\n`);
  term.waitFor = (text, timeout = 30_000) => new Promise((resolve, reject) => {
    const check = () => {
      if (term.out.includes(text)) {
        proc.stdout.off('data', check);
        clearTimeout(timer);
        resolve();
      }
    };
    const timer = setTimeout(() => {
      proc.stdout.off('data', check);
      reject(new Error(`the terminal never showed ${JSON.stringify(text)}:\n${term.out}\n${term.err}`));
    }, timeout);
    proc.stdout.on('data', check);
    check();
  });
  term.quit = () => new Promise((resolve) => {
    if (proc.exitCode !== null) { resolve(proc.exitCode); return; }
    proc.once('exit', resolve);
    proc.stdin.end();
  });
  return term;
}

test('a browser user and a terminal user talk in one encrypted direct chat, both ways', async () => {
  await withServer({}, async (server) => {
    const alice = await openUser(browser, server);
    await register(alice, 'alice');
    await apiUser(server, 'bob', password);

    // The terminal makes bob's keys and the direct chat.
    const bob = terminal(server, 'bob', '@alice', 'bob recovery words maple orbit frost lemon');
    try {
      await bob.waitFor('-- new keys made, published and backed up');
      await bob.waitFor('-- connected to direct:');
      const chatName = /-- connected to (direct:\d+:\d+) as bob/.exec(bob.out)[1];
      assert.ok(statSync(bob.keys).mode % 0o1000 === 0o600, 'the key file is mode 0600');

      const fromTerminal = `from the terminal ${Date.now()}`;
      bob.type(fromTerminal);
      await bob.waitFor(`bob: ${fromTerminal}`);
      await alice.waitForSelector(`[data-testid=chat-item][data-chat-name="${chatName}"]`);
      await openChat(alice, chatName);
      await alice.waitForSelector('[data-testid=chat-header] [data-testid=e2ee-state][data-e2ee=on]');
      await waitForMessage(alice, fromTerminal);

      const fromBrowser = `from the browser ${Date.now()}`;
      await send(alice, fromBrowser);
      await bob.waitFor(`alice: ${fromBrowser}`);
      await waitForMessage(alice, fromBrowser);

      // And back again, on whatever epoch the browser left.
      bob.type('and back to the browser');
      await waitForMessage(alice, 'and back to the browser');

      // What the browser puts inside a message shows in the terminal: an
      // edit (a higher rev), a reply's preview, a file's name and size.
      await alice.hover(`[data-testid=message][data-id]:has-text("${fromBrowser}")`);
      await alice.click(`[data-testid=message][data-id]:has-text("${fromBrowser}") button[aria-label=Edit]`);
      await alice.fill('.edit-input', 'edited in the browser');
      await alice.press('.edit-input', 'Enter');
      await bob.waitFor('alice: (edited) edited in the browser');
      await alice.hover('[data-testid=message][data-id]:has-text("and back to the browser")');
      await alice.click('[data-testid=message][data-id]:has-text("and back to the browser") button[aria-label=Reply]');
      await send(alice, 'a reply from the browser');
      await bob.waitFor('alice: (replying to bob: "and back to the browser") a reply from the browser');
      await alice.setInputFiles('[data-testid=file-input]', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('twelve bytes') });
      await bob.waitFor('[encrypted file "notes.txt", 12 bytes: open it in the web client]');

      // The same safety number on both sides.
      bob.type('/verify alice');
      await bob.waitFor('-- safety number of you and alice');
      const terminalNumber = /-- safety number of you and alice[^\n]*\n--\s+([\d ]+)\n/.exec(bob.out)[1].trim();
      await alice.click('[data-testid=safety-number-open]');
      // The dialog lays the twelve groups out in rows; the digits are what
      // the users compare.
      await alice.waitForFunction(() => (document.querySelector('[data-testid=safety-dialog] [data-testid=safety-number]')
        ?.textContent ?? '').replace(/\D/g, '').length === 60);
      const browserNumber = await alice.textContent('[data-testid=safety-dialog] [data-testid=safety-number]');
      assert.equal(terminalNumber.length, 71);
      assert.equal(browserNumber.replace(/\D/g, ''), terminalNumber.replace(/\D/g, ''));

      assert.doesNotMatch(bob.out, /cannot decrypt|!!/, 'the terminal shows no refusal');
      assert.equal(await alice.locator('[data-testid=message-undecryptable]').count(), 0, 'the browser shows no undecryptable message');
      noProblems(alice);
    } finally {
      const code = await bob.quit();
      assert.equal(code, 0, `the terminal client exited with ${code}:\n${bob.err}`);
    }
  });
});
