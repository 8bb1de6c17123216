// Helpers for the browser tests: a real Mapsim Chat server on a loopback
// port with a temp data dir, and Debian's Chromium driven by playwright-core.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomFillSync } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
export const artifacts = join(here, 'artifacts');

const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

let builtBinary;

// binary returns the server binary: MAPSIM_BIN when make built it, or a
// fresh build into a temp folder.
function binary() {
  if (process.env.MAPSIM_BIN) return process.env.MAPSIM_BIN;
  if (!builtBinary) {
    const out = join(mkdtempSync(join(tmpdir(), 'mapsim-e2e-bin-')), 'mapsim-chat');
    execFileSync('go', ['build', '-o', out, './cmd/mapsim-chat'], {
      cwd: root, stdio: 'inherit', env: { ...process.env, GOTOOLCHAIN: process.env.GOTOOLCHAIN || 'auto' },
    });
    builtBinary = out;
  }
  return builtBinary;
}

// freePort asks the kernel for a free loopback port.
function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// startServer runs the server until stop(); restart(changes) stops it and
// starts it again on the same port and data, as a deploy would, with the
// environment changed by changes (a reconfigured server).
export async function startServer(extraEnv = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'mapsim-e2e-'));
  const port = await freePort();
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    LISTEN_ADDR: `127.0.0.1:${port}`,
    DATA_DIR: join(dir, 'data'),
    UPLOAD_DIR: join(dir, 'uploads'),
    SECRET_KEY: 'TWFwc2ltQ2hhdEUyRVRlc3RTZWNyZXRLZXkwMTIzNDU2',
    LOG_FORMAT: 'text',
    ...extraEnv,
  };
  const server = { url: `http://127.0.0.1:${port}`, dir, logs: '', out: '', proc: null, env };

  // admin runs `mapsim-chat admin args…` beside the server, on its data.
  server.admin = (...args) => execFileSync(binary(), ['admin', ...args], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

  server.start = async () => {
    const proc = spawn(binary(), ['serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    server.proc = proc;
    proc.stderr.on('data', (d) => { server.logs += d; });
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not listen within 30 s:\n${server.logs}`)), 30_000);
      let out = '';
      proc.stdout.on('data', (d) => {
        out += d;
        server.out += d;
        if (out.includes('listening on')) { clearTimeout(timer); resolve(); }
      });
      proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited with ${code}:\n${server.logs}`)); });
    });
  };
  server.stop = async () => {
    const proc = server.proc;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  };
  server.restart = async (changes = {}) => {
    await server.stop();
    Object.assign(env, changes);
    await server.start();
  };
  server.close = async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  await server.start();
  return server;
}

// withServer runs fn against a fresh server and always stops it; a failure
// carries the end of the server's log.
export async function withServer(env, fn) {
  const server = await startServer(env);
  try {
    await fn(server);
  } catch (err) {
    err.message += `\n--- server log ---\n${server.logs.slice(-4000)}`;
    throw err;
  } finally {
    await server.close();
  }
}

// noProblems fails when a page logged a console error or threw.
export function noProblems(...pages) {
  for (const p of pages) assert.deepEqual(p.problems, [], 'console errors or page errors');
}

// launchBrowser starts Chromium headless. With CI=true a missing Chromium
// fails the run instead of skipping.
export async function launchBrowser() {
  if (!existsSync(chromiumPath)) {
    throw new Error(`Chromium not found at ${chromiumPath}; install it with: apt-get install chromium`);
  }
  return chromium.launch({
    executablePath: chromiumPath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

// openUser opens a new browser context (its own storage) on the app, and
// collects console errors and page errors so a test can insist on none.
export async function openUser(browser, server, { locale = 'en-US', viewport = { width: 1280, height: 800 } } = {}) {
  const context = await browser.newContext({ locale, viewport });
  const page = await context.newPage();
  page.problems = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') page.problems.push(`console.error: ${msg.text()}`);
  });
  page.on('pageerror', (err) => page.problems.push(`page error: ${err.message}`));
  await page.goto(server.url + '/');
  return page;
}

// register signs a new user up through the UI (on the "Create account"
// tab), sets up end-to-end encryption with the generated recovery
// passphrase, waits for the app and resolves to that passphrase.
export async function register(page, username, password = 'staple-Horse-battery-42') {
  await page.click('[data-testid=mode-register]');
  await page.fill('[data-testid=auth-form] input[name=username]', username);
  await page.fill('[data-testid=auth-form] input[name=password]', password);
  await page.click('[data-testid=register]');
  const passphrase = await setupKeys(page);
  await page.waitForSelector('[data-testid=app]');
  await page.waitForSelector('[data-testid=connection-banner]', { state: 'hidden' });
  return passphrase;
}

// setupKeys waits for the key setup screen, takes the generated recovery
// passphrase and submits it; it resolves to the passphrase.
export async function setupKeys(page) {
  await page.waitForSelector('[data-testid=key-setup][data-mode=setup]', { timeout: 30_000 });
  const passphrase = await page.inputValue('[data-testid=recovery-passphrase]');
  await page.check('[data-testid=passphrase-saved]');
  await page.click('[data-testid=key-setup-submit]');
  return passphrase;
}

// login signs in through the UI (without waiting for what comes next:
// the app, or the key restore screen on a new browser).
export async function login(page, username, password = 'staple-Horse-battery-42') {
  await page.click('[data-testid=mode-login]');
  await page.fill('[data-testid=auth-form] input[name=username]', username);
  await page.fill('[data-testid=auth-form] input[name=password]', password);
  await page.click('[data-testid=login]');
}

// restoreKeys enters a recovery passphrase on the restore screen.
export async function restoreKeys(page, passphrase) {
  await page.waitForSelector('[data-testid=key-setup][data-mode=restore]', { timeout: 30_000 });
  await page.fill('[data-testid=restore-passphrase]', passphrase);
  await page.click('[data-testid=restore-submit]');
}

// openChat opens a chat from the sidebar by its name.
export async function openChat(page, chatName) {
  await page.click(`[data-testid=chat-item][data-chat-name="${chatName}"]`);
  await page.waitForSelector(`[data-testid=chat-item][data-chat-name="${chatName}"][aria-current=true]`);
}

// switchLanguage switches a signed-in user's language in Settings →
// Appearance (the sidebar has no picker since the Settings dialog took it)
// and closes the dialog once the page is in that language.
export async function switchLanguage(page, code) {
  await page.click('[data-testid=open-settings]');
  await page.click('[data-testid=settings-tab-appearance]');
  await page.selectOption('[data-testid=settings-dialog] [data-testid=lang]', code);
  await page.waitForSelector(`html[lang=${code}] [data-testid=settings-dialog] [data-testid=appearance-section]`);
  await page.keyboard.press('Escape');
  await page.waitForSelector('[data-testid=settings-dialog]', { state: 'detached' });
}

// send types a message in the composer and presses Enter.
export async function send(page, text) {
  await page.fill('[data-testid=composer]', text);
  await page.press('[data-testid=composer]', 'Enter');
}

// waitForMessage waits for a message whose text is exactly text in the
// open chat.
export async function waitForMessage(page, text, timeout = 15_000) {
  await page.waitForFunction((t) => [...document.querySelectorAll('[data-testid=message] [data-testid=message-text]')]
    .some((el) => el.textContent.trim() === t), text, { timeout });
}

// evalOn finds the first element matching selector and runs fn(el, arg) on
// it in the same task of the page. Playwright's $eval finds the element in
// one call and runs fn in another; a message re-rendered in between (its
// pending status settling) is then detached, and its computed style reads
// '' and its box 0. Fails when nothing matches.
export async function evalOn(page, selector, fn, arg) {
  const result = await page.evaluate(`(() => {
    const el = document.querySelector(${JSON.stringify(selector)});
    if (!el) return { missing: true };
    return { value: (${fn})(el, ${JSON.stringify(arg ?? null)}) };
  })()`);
  if (result.missing) throw new Error(`no element matches ${selector}`);
  return result.value;
}

// evalOnAll runs fn(elements, arg) on every element matching selector, in
// the same task that found them (see evalOn).
export async function evalOnAll(page, selector, fn, arg) {
  return page.evaluate(`(${fn})([...document.querySelectorAll(${JSON.stringify(selector)})], ${JSON.stringify(arg ?? null)})`);
}

// countMessages counts the messages whose text is exactly text.
export async function countMessages(page, text) {
  return page.evaluate((t) => [...document.querySelectorAll('[data-testid=message] [data-testid=message-text]')]
    .filter((el) => el.textContent.trim() === t).length, text);
}

// screenshot saves a PNG into the git-ignored artifacts folder.
export async function screenshot(page, name) {
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, `${name}.png`) });
}

// api calls the server directly, for setup the UI does not need to do.
export async function api(server, method, path, token, body) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const resp = await fetch(server.url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await resp.text();
  let json = {};
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: resp.status, body: json };
}

// apiUser registers and logs a user in through the API; returns the token.
export async function apiUser(server, username, password = 'staple-Horse-battery-42') {
  const r = await api(server, 'POST', '/register/', '', { username, password });
  if (r.status !== 201) throw new Error(`register ${username}: ${r.status} ${JSON.stringify(r.body)}`);
  const l = await api(server, 'POST', '/login/', '', { username, password });
  return l.body.access_token;
}

// sendFrames sends frames over a WebSocket of the user behind token, opened
// from page (same origin), and waits until every one is acknowledged. At
// most 32 are unacknowledged at a time: each comes back as an ack and as
// the message itself, and a burst of 130 filled the connection's send
// queue (256 frames) before a busy page read it, which the server answers
// by closing the socket as a slow client (1008).
export async function sendFrames(page, token, frames) {
  await page.evaluate(async ({ tok, list, inFlight }) => {
    const t = await fetch('/ws-ticket/', { method: 'POST', headers: { Authorization: `Bearer ${tok}` } }).then((r) => r.json());
    const ws = new WebSocket(`ws://${location.host}/ws?ticket=${t.ticket}`);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onclose = (e) => reject(new Error(`sendFrames: the socket did not open (${e.code} ${e.reason})`));
    });
    let acks = 0;
    let sent = 0;
    const more = () => { while (sent < list.length && sent - acks < inFlight) ws.send(JSON.stringify(list[sent++])); };
    const done = new Promise((resolve, reject) => {
      ws.onmessage = (e) => {
        const f = JSON.parse(e.data);
        if (f.type === 'ack' && ++acks === list.length) resolve();
        else if (f.type === 'ack') more();
        if (f.type === 'error') reject(new Error(`sendFrames: error frame after ${acks} acks: ${e.data}`));
      };
      ws.onclose = (e) => reject(new Error(`sendFrames: closed (${e.code} ${e.reason}) after ${acks} of ${list.length} acks`));
    });
    more();
    await done;
    ws.close();
  }, { tok: token, list: frames, inFlight: 32 });
}

// pageToken resolves to an access token of a signed-in page's session. The
// page keeps its own in memory only, so this trades the page's refresh
// cookie for another, as a new tab would (under the tabs' refresh lock).
export function pageToken(page) {
  return page.evaluate(() => navigator.locks.request('mapsim.refresh', () => fetch('/session/refresh', { method: 'POST' })
    .then((r) => r.json()).then((b) => b.access_token)));
}

// png makes an RGB PNG of w×h pixels: random noise (large, and slow to
// upload), or with pattern 'halves' the left half red and the right blue
// (for checking where a crop landed).
export function png(w, h, pattern = 'noise') {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const c = Buffer.alloc(4); c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; ihdr[9] = 2; // 8-bit RGB
  const stride = w * 3 + 1;
  const raw = pattern === 'noise' ? randomFillSync(Buffer.alloc(stride * h)) : Buffer.alloc(stride * h);
  for (let y = 0; y < h; y++) {
    raw[y * stride] = 0; // filter: none
    if (pattern !== 'halves') continue;
    for (let x = 0; x < w; x++) raw[y * stride + 1 + x * 3 + (x < w / 2 ? 0 : 2)] = 255;
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0)),
  ]);
}
