// Browser tests of media in messages: audio and video play inline from a
// blob: URL (decrypted in the browser in an end-to-end encrypted chat),
// images open in a lightbox that Left and Right (mirrored right to left)
// step through and Escape closes with the focus given back, and a PDF
// opens in a new tab from a blob of its bytes, never inline from the
// server. In English on a desktop and in Persian on a phone. Run with
// `make test-web`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  launchBrowser, png, pageToken, openUser, register, openChat, withServer, noProblems, screenshot, apiUser,
} from './lib.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

// wav makes `seconds` of a 440 Hz tone as 8 kHz 16-bit mono PCM.
function wav(seconds) {
  const rate = 8000;
  const samples = Math.round(rate * seconds);
  const b = Buffer.alloc(44 + samples * 2);
  b.write('RIFF', 0); b.writeUInt32LE(36 + samples * 2, 4); b.write('WAVE', 8);
  b.write('fmt ', 12); b.writeUInt32LE(16, 16); b.writeUInt16LE(1, 20); b.writeUInt16LE(1, 22);
  b.writeUInt32LE(rate, 24); b.writeUInt32LE(rate * 2, 28); b.writeUInt16LE(2, 32); b.writeUInt16LE(16, 34);
  b.write('data', 36); b.writeUInt32LE(samples * 2, 40);
  for (let i = 0; i < samples; i++) b.writeInt16LE(Math.round(8000 * Math.sin(2 * Math.PI * 440 * i / rate)), 44 + i * 2);
  return b;
}

// pdf is a one-page PDF.
const pdf = Buffer.from('%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n'
  + '3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n');

// webm records a short WebM video of a canvas in page (MediaRecorder).
async function webm(page) {
  const base64 = await page.evaluate(async () => {
    const canvas = document.createElement('canvas');
    canvas.width = 64; canvas.height = 48;
    const ctx = canvas.getContext('2d');
    const rec = new MediaRecorder(canvas.captureStream(15), { mimeType: 'video/webm' });
    const parts = [];
    rec.ondataavailable = (e) => parts.push(e.data);
    const stopped = new Promise((resolve) => { rec.onstop = resolve; });
    rec.start();
    for (let i = 0; i < 10; i++) {
      ctx.fillStyle = `hsl(${i * 36} 80% 50%)`;
      ctx.fillRect(0, 0, 64, 48);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    rec.stop();
    await stopped;
    const bytes = new Uint8Array(await new Blob(parts).arrayBuffer());
    let s = '';
    for (const x of bytes) s += String.fromCharCode(x);
    return btoa(s);
  });
  return Buffer.from(base64, 'base64');
}

// sendFiles attaches files in the open chat and waits for each to be sent.
async function sendFiles(page, list) {
  await page.setInputFiles('[data-testid=file-input]', list);
  for (const f of list) {
    await page.waitForSelector(`[data-testid=message][data-id] [data-testid=file-link]:text-is("${f.name}")`, { timeout: 30_000 });
  }
}

// message is the selector of the message that carries the file called name.
const message = (name) => `[data-testid=message][data-id]:has([data-testid=file-link]:text-is("${name}"))`;

// playsInline presses a file's play button and waits for its player to
// have loaded the media from a blob: URL; it returns what the player says.
async function playsInline(page, name, kind) {
  await page.click(`${message(name)} [data-testid=media-play]`);
  const sel = `${message(name)} [data-testid=media-${kind}]`;
  await page.waitForSelector(sel);
  await page.waitForFunction((el) => el.readyState >= 1, await page.$(sel), { timeout: 20_000 });
  return page.$eval(sel, (el) => ({
    src: el.src.slice(0, 5), duration: el.duration, width: el.videoWidth ?? 0, controls: el.controls, focused: document.activeElement === el,
  }));
}

// opensPdf presses a PDF's open button and returns what the new tab
// shows: its URL, its document's type, whether it has an opener, and the
// console errors it logged (a CSP that blocked the viewer would be one).
async function opensPdf(page, name) {
  const problems = [];
  const [tab] = await Promise.all([
    page.context().waitForEvent('page'),
    page.click(`${message(name)} [data-testid=file-open-pdf]`),
  ]);
  tab.on('console', (msg) => { if (msg.type() === 'error') problems.push(msg.text()); });
  await tab.waitForURL(/^blob:/, { timeout: 20_000 });
  await tab.waitForLoadState();
  const shown = await tab.evaluate(() => ({ type: document.contentType, opener: window.opener === null }));
  return { url: tab.url(), tab, problems, ...shown };
}

// downloaded clicks a file's link and resolves to the bytes saved.
async function downloaded(page, name) {
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.click(`${message(name)} [data-testid=file-link]`),
  ]);
  return readFileSync(await download.path());
}

// lightbox reads the open lightbox: its position and title.
function lightbox(page) {
  return page.evaluate(() => {
    const d = document.querySelector('[data-testid=lightbox]');
    if (!d) return null;
    return { index: Number(d.dataset.index), count: d.querySelector('[data-testid=lightbox-count]').textContent.replace(/[\u2066-\u2069]/g, ''), title: d.querySelector('h2').textContent };
  });
}

async function lightboxWalk(page, { rtl }) {
  const forward = rtl ? 'ArrowLeft' : 'ArrowRight';
  const back = rtl ? 'ArrowRight' : 'ArrowLeft';
  const opener = `${message('b.png')} .thumb-btn`;
  await page.click(opener);
  await page.waitForSelector('[data-testid=lightbox] [data-testid=lightbox-img][src^="blob:"]');
  let box = await lightbox(page);
  assert.equal(box.index, 1);
  assert.equal(box.title, 'b.png');
  assert.equal(box.count, rtl ? '۲ از ۳' : '2 of 3');
  await page.keyboard.press(forward);
  box = await lightbox(page);
  assert.equal(box.title, 'c.png');
  await page.waitForSelector('[data-testid=lightbox] [data-testid=lightbox-img][src^="blob:"]');
  // At the last image, forward stays.
  await page.keyboard.press(forward);
  assert.equal((await lightbox(page)).index, 2);
  await page.keyboard.press(back);
  await page.keyboard.press(back);
  box = await lightbox(page);
  assert.equal(box.title, 'a.png');
  assert.equal(await page.isDisabled('[data-testid=lightbox-prev]'), true);
  // The on-screen buttons step too.
  await page.click('[data-testid=lightbox-next]');
  assert.equal((await lightbox(page)).title, 'b.png');
  await page.keyboard.press('Escape');
  await page.waitForSelector('[data-testid=lightbox]', { state: 'detached' });
  assert.equal(await page.$eval(opener, (el) => el === document.activeElement), true, 'focus back on the thumbnail');
}

async function sendAll(page) {
  const video = await webm(page);
  await sendFiles(page, [
    { name: 'a.png', mimeType: 'image/png', buffer: png(40, 30) },
    { name: 'b.png', mimeType: 'image/png', buffer: png(30, 40) },
    { name: 'c.png', mimeType: 'image/png', buffer: png(50, 50) },
    { name: 'tone.wav', mimeType: 'audio/wav', buffer: wav(1) },
    { name: 'clip.webm', mimeType: 'video/webm', buffer: video },
    { name: 'report.pdf', mimeType: 'application/pdf', buffer: pdf },
  ]);
}

test('media in a plain chat: audio and video inline, the lightbox by keyboard, a PDF in a new tab (English, desktop; Persian, phone)', async () => {
  await withServer({}, async (server) => {
    const alice = await openUser(browser, server);
    await register(alice, 'alice');
    await openChat(alice, 'global');
    await sendAll(alice);

    // Not end-to-end encrypted: played from the server's signed URL.
    const audio = await playsInline(alice, 'tone.wav', 'audio');
    assert.deepEqual({ ...audio, duration: Math.round(audio.duration) }, { src: 'http:', duration: 1, width: 0, controls: true, focused: true });
    const video = await playsInline(alice, 'clip.webm', 'video');
    assert.equal(video.src, 'http:');
    assert.equal(video.width, 64);
    await lightboxWalk(alice, { rtl: false });
    const opened = await opensPdf(alice, 'report.pdf');
    assert.ok(opened.url.startsWith(`blob:${server.url}/`), opened.url);
    assert.deepEqual([opened.type, opened.opener, opened.problems], ['application/pdf', true, []]);
    await screenshot(opened.tab, 'media-pdf-tab');
    await opened.tab.close();
    // The tab's blob is the one a download saves: the PDF's bytes.
    assert.deepEqual(await downloaded(alice, 'report.pdf'), pdf);
    await screenshot(alice, 'media-en');

    // The server itself never shows the PDF: an attachment, in a sandbox.
    const token = await pageToken(alice);
    const url = await alice.evaluate(() => {
      const tl = [...document.querySelectorAll('[data-testid=file-link]')].find((a) => a.textContent === 'report.pdf');
      return tl.getAttribute('href');
    });
    const served = await fetch(server.url + url, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(served.headers.get('content-type'), 'application/pdf');
    assert.match(served.headers.get('content-disposition'), /^attachment/);
    assert.match(served.headers.get('content-security-policy'), /sandbox/);

    // Persian on a phone: the same, with the arrows mirrored.
    const dara = await openUser(browser, server, { locale: 'fa-IR', viewport: { width: 390, height: 844 } });
    await register(dara, 'dara');
    await dara.click('[data-testid=chat-item][data-chat-name="global"]');
    await dara.waitForSelector(`${message('report.pdf')}`);
    const heard = await playsInline(dara, 'tone.wav', 'audio');
    assert.equal(heard.src, 'http:');
    const seen = await playsInline(dara, 'clip.webm', 'video');
    assert.equal(seen.width, 64);
    const box = await dara.$eval(`${message('clip.webm')} [data-testid=media-video]`, (el) => el.getBoundingClientRect().right);
    assert.ok(box <= 390, `the video fits the phone: ${box}`);
    await lightboxWalk(dara, { rtl: true });
    const fromPhone = await opensPdf(dara, 'report.pdf');
    assert.equal(fromPhone.type, 'application/pdf');
    await fromPhone.tab.close();
    await screenshot(dara, 'media-fa-phone');
    noProblems(alice, dara);
  });
});

test('media in an end-to-end encrypted chat: decrypted in the browser into blob: URLs', async () => {
  await withServer({}, async (server) => {
    const alice = await openUser(browser, server);
    const bob = await openUser(browser, server, { locale: 'fa-IR', viewport: { width: 390, height: 844 } });
    await register(alice, 'alice');
    await register(bob, 'bob');
    await alice.click('[data-testid=new-direct]');
    await alice.fill('[data-testid=user-search]', 'bob');
    await alice.click('[data-testid=user-result][data-username=bob]');
    await alice.waitForSelector('[data-testid=chat-header] [data-testid=e2ee-state][data-e2ee=on]');
    const direct = await alice.evaluate(() => sessionStorage.getItem('mapsim.chat'));
    await sendAll(alice);

    await bob.click(`[data-testid=chat-item][data-chat-name="${direct}"]`);
    await bob.waitForSelector(`${message('report.pdf')}`, { timeout: 30_000 });
    const heard = await playsInline(bob, 'tone.wav', 'audio');
    assert.deepEqual([heard.src, Math.round(heard.duration)], ['blob:', 1]);
    const seen = await playsInline(bob, 'clip.webm', 'video');
    assert.equal(seen.width, 64);
    await lightboxWalk(bob, { rtl: true });
    const opened = await opensPdf(bob, 'report.pdf');
    assert.ok(opened.url.startsWith(`blob:${server.url}/`), opened.url);
    assert.deepEqual([opened.type, opened.opener, opened.problems], ['application/pdf', true, []]);
    await opened.tab.close();
    assert.deepEqual(await downloaded(bob, 'report.pdf'), pdf);
    // What the server holds for the PDF is ciphertext, an attachment.
    const token = await apiUser(server, 'eve');
    const url = await bob.$eval(`${message('report.pdf')} [data-testid=file-link]`, (a) => a.getAttribute('href'));
    const denied = await fetch(server.url + url, { headers: { Authorization: `Bearer ${token}` } });
    assert.notEqual(denied.status, 200, 'a stranger cannot fetch the file');
    const bobToken = await pageToken(bob);
    const served = await fetch(server.url + url, { headers: { Authorization: `Bearer ${bobToken}` } });
    const bytes = Buffer.from(await served.arrayBuffer());
    assert.ok(!bytes.subarray(0, 5).equals(Buffer.from('%PDF-')), 'the server keeps no plaintext PDF');
    assert.match(served.headers.get('content-disposition'), /^attachment/);
    await screenshot(bob, 'media-e2ee-fa-phone');
    noProblems(alice, bob);
  });
});

// mediaTraffic watches, through the DevTools protocol, the page's requests
// for media URLs: each one's Range header, status and bytes received.
async function mediaTraffic(page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  const requests = new Map();
  cdp.on('Network.requestWillBeSent', (e) => {
    if (/\/file\/[0-9a-f]{32}\/media\?sig=/.test(e.request.url)) requests.set(e.requestId, { range: e.request.headers.Range || '', status: 0, bytes: 0 });
  });
  cdp.on('Network.responseReceived', (e) => { const r = requests.get(e.requestId); if (r) r.status = e.response.status; });
  cdp.on('Network.dataReceived', (e) => { const r = requests.get(e.requestId); if (r) r.bytes += e.dataLength; });
  return { cdp, list: () => [...requests.values()].map((r) => ({ ...r })) };
}

test('audio in a plain chat streams by range from a signed URL: it plays before the whole file is fetched, and seeks', async () => {
  await withServer({ UPLOAD_MAX_FILE_MB: '20' }, async (server) => {
    const alice = await openUser(browser, server);
    await register(alice, 'alice');
    await openChat(alice, 'global');
    const long = wav(240); // 4 minutes, 3.8 MB
    await sendFiles(alice, [{ name: 'long.wav', mimeType: 'audio/wav', buffer: long }]);

    const bob = await openUser(browser, server);
    await register(bob, 'bob');
    await openChat(bob, 'global');
    await bob.waitForSelector(message('long.wav'));
    const traffic = await mediaTraffic(bob);
    // 512 kB/s: the whole file would take over 7 s to arrive.
    await traffic.cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: 512 * 1024, uploadThroughput: -1 });
    await bob.click(`${message('long.wav')} [data-testid=media-play]`);
    const sel = `${message('long.wav')} [data-testid=media-audio]`;
    const player = await bob.waitForSelector(sel);
    await bob.waitForFunction((el) => !el.paused && el.currentTime > 0.2, player, { timeout: 30_000 });
    const atStart = traffic.list();
    const fetched = atStart.reduce((n, r) => n + r.bytes, 0);
    assert.ok(atStart.length >= 1 && atStart.every((r) => r.range.startsWith('bytes=')), JSON.stringify(atStart));
    assert.ok(fetched < long.length / 2, `playing after ${fetched} of ${long.length} bytes`);
    const src = await player.evaluate((el) => el.src);
    assert.ok(src.startsWith(`${server.url}/file/`) && src.includes('/media?sig='), src);

    // Seeking near the end asks for the bytes there, by range.
    const target = 200;
    await player.evaluate((el, t) => { el.currentTime = t; }, target);
    await bob.waitForFunction(([el, t]) => !el.seeking && el.currentTime >= t && el.readyState >= 2, [player, target], { timeout: 30_000 });
    await bob.waitForFunction(([el, t]) => el.currentTime > t + 0.2, [player, target], { timeout: 30_000 });
    const seekStart = Math.floor(44 + target * 16000 * 0.9);
    const seeks = traffic.list().filter((r) => Number(/^bytes=(\d+)-/.exec(r.range)?.[1]) > seekStart);
    assert.ok(seeks.length >= 1 && seeks.every((r) => r.status === 206), JSON.stringify(traffic.list()));
    const total = traffic.list().reduce((n, r) => n + r.bytes, 0);
    assert.ok(total < long.length, `seeking fetched ${total} of ${long.length} bytes`);

    // The server answered ranges, and its log never holds the signature.
    assert.match(server.logs, /path=\/file\/[0-9a-f]{32}\/media .*status=206/);
    const sig = new URL(src).searchParams.get('sig');
    assert.ok(!server.logs.includes(sig), 'the signed token reached the log');
    assert.match(server.logs, /sig=REDACTED/);
    await traffic.cdp.detach();
    noProblems(alice, bob);
  });
});

test('a signed media URL refused mid-playback (expired) is renewed, and playback goes on from the same point; a refused renewal says so', async () => {
  await withServer({ UPLOAD_MAX_FILE_MB: '20' }, async (server) => {
    const alice = await openUser(browser, server);
    await register(alice, 'alice');
    await openChat(alice, 'global');
    const long = wav(240);
    await sendFiles(alice, [{ name: 'long.wav', mimeType: 'audio/wav', buffer: long }]);

    const bob = await openUser(browser, server);
    await register(bob, 'bob');
    await openChat(bob, 'global');
    await bob.waitForSelector(message('long.wav'));
    let asked = 0;
    bob.on('request', (r) => { if (r.method() === 'POST' && /\/file\/[0-9a-f]{32}\/media-url$/.test(r.url())) asked++; });
    const traffic = await mediaTraffic(bob);
    // Slow enough that a seek far ahead needs a new request.
    await traffic.cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: 512 * 1024, uploadThroughput: -1 });
    await bob.click(`${message('long.wav')} [data-testid=media-play]`);
    const player = await bob.waitForSelector(`${message('long.wav')} [data-testid=media-audio]`);
    await bob.waitForFunction((el) => !el.paused && el.currentTime > 0.2, player, { timeout: 30_000 });
    const first = await player.evaluate((el) => el.src);
    assert.equal(asked, 1);

    // The URL expires: the server refuses it from now on, as it would
    // after five minutes (401, the answer to an expired signature).
    const sig = new URL(first).searchParams.get('sig');
    await bob.route((url) => url.searchParams.get('sig') === sig, (route) => route.fulfill({
      status: 401, contentType: 'application/json', body: JSON.stringify({ error: 'This media link is not valid (it has expired, or is for another file); open the file again.' }),
    }));
    const target = 150;
    await player.evaluate((el, t) => { el.currentTime = t; }, target);
    await bob.waitForFunction(([el, old, t]) => el.src !== old && !el.seeking && !el.paused && el.currentTime > t + 0.2 && el.currentTime < t + 30,
      [player, first, target], { timeout: 30_000 });
    const second = await player.evaluate((el) => el.src);
    assert.ok(second.includes('/media?sig=') && new URL(second).searchParams.get('sig') !== sig, second);
    assert.equal(asked, 2, 'one new signed URL for the renewal');
    assert.ok(traffic.list().some((r) => r.status === 401), JSON.stringify(traffic.list()));
    assert.equal(await bob.$$eval('[data-testid=toast]', (els) => els.length), 0, 'a renewal that worked showed an error');

    // A seek made while the new URL is being asked for is where playback
    // goes on, not the place the refusal came at: the renewal is held
    // until the second seek has been made.
    const sig2 = new URL(second).searchParams.get('sig');
    await bob.route((url) => url.searchParams.get('sig') === sig2, (route) => route.fulfill({ status: 401, contentType: 'application/json', body: '{"error":"expired"}' }));
    let release;
    const held = new Promise((resolve) => { release = resolve; });
    const holdRenewal = async (route) => { await held; await route.continue(); };
    await bob.route(/\/media-url$/, holdRenewal);
    const renewal = bob.waitForRequest((r) => r.method() === 'POST' && /\/media-url$/.test(r.url()), { timeout: 30_000 });
    await player.evaluate((el) => { el.currentTime = 60; });
    await renewal;
    const later = 100;
    await player.evaluate((el, t) => { el.currentTime = t; }, later);
    release();
    await bob.waitForFunction(([el, old, t]) => el.src !== old && !el.seeking && !el.paused && el.currentTime > t + 0.2 && el.currentTime < t + 30,
      [player, second, later], { timeout: 30_000 });
    await bob.unroute(/\/media-url$/, holdRenewal);
    assert.equal(asked, 3, 'one new signed URL for the held renewal');

    // A seek made while the new URL loads its metadata is kept too: the
    // new URL's first request is held until the seek has been made.
    const third = await player.evaluate((el) => el.src);
    const sig3 = new URL(third).searchParams.get('sig');
    await bob.route((url) => url.searchParams.get('sig') === sig3, (route) => route.fulfill({ status: 401, contentType: 'application/json', body: '{"error":"expired"}' }));
    let releaseLoad;
    const heldLoad = new Promise((resolve) => { releaseLoad = resolve; });
    const isFresh = (url) => url.pathname.endsWith('/media') && ![sig, sig2, sig3].includes(url.searchParams.get('sig'));
    const holdLoad = async (route) => { await heldLoad; await route.continue(); };
    await bob.route(isFresh, holdLoad);
    const load = bob.waitForRequest((r) => isFresh(new URL(r.url())), { timeout: 30_000 });
    await player.evaluate((el) => { el.currentTime = 40; });
    await load;
    const latest = 120;
    await player.evaluate((el, t) => { el.currentTime = t; }, latest);
    releaseLoad();
    await bob.waitForFunction(([el, old, t]) => el.src !== old && !el.seeking && !el.paused && el.currentTime > t + 0.2 && el.currentTime < t + 30,
      [player, third, latest], { timeout: 30_000 });
    await bob.unroute(isFresh, holdLoad);
    assert.equal(asked, 4, 'one new signed URL for the renewal whose load was held');

    // Every URL refused: one renewal, then a clear error, not a loop.
    await bob.route('**/media?sig=*', (route) => route.fulfill({ status: 401, contentType: 'application/json', body: '{"error":"refused"}' }));
    await player.evaluate((el) => { el.currentTime = 20; });
    await bob.waitForSelector('[data-testid=toast]', { timeout: 30_000 });
    assert.equal(asked, 5, 'a refused renewal was retried');
    await traffic.cdp.detach();
    bob.problems = bob.problems.filter((m) => !/401|Failed to load resource/.test(m));
    noProblems(alice, bob);
  });
});
