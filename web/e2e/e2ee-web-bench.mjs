// A benchmark of the web client's end-to-end encryption in Chromium against
// a real server (`make bench-e2ee`; not a test, nothing here fails on a
// slow machine): the median time to encrypt and sign a 1 KiB message and
// to verify and decrypt it, to start an epoch of a 50-member group (one
// device each: the members' keys fetched and their certificates checked,
// 50 envelopes wrapped and signed, uploaded, the answer awaited), and to
// open a direct chat of 500 encrypted messages: the newest page decrypted
// and shown, then all 500 (scrolling up through the history).
import { launchBrowser, openUser, register, startServer, api } from './lib.mjs';
import * as e2ee from '../static/e2ee.js';

const runs = Number(process.argv[2]) || 300;
const limits = {
  RATE_LIMIT_MESSAGES_PER_SECOND: '100000', RATE_LIMIT_MESSAGES_BURST: '100000',
  RATE_LIMIT_FRAMES_PER_SECOND: '100000', RATE_LIMIT_FRAMES_BURST: '100000',
  REGISTRATION_PER_HOUR: '1000000',
};

function median(times) {
  const sorted = [...times].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function ms(x) {
  return `${x.toFixed(3)} ms`;
}

// member registers a user through the API and publishes an identity key
// and one device made in Node's WebCrypto, as another client would.
async function member(server, username) {
  const password = 'staple-Horse-battery-42';
  const r = await api(server, 'POST', '/register/', '', { username, password });
  if (r.status !== 201) throw new Error(`register ${username}: ${r.status} ${JSON.stringify(r.body)}`);
  const token = (await api(server, 'POST', '/login/', '', { username, password })).body.access_token;
  const { identity } = await e2ee.generateIdentity();
  const device = await e2ee.generateDevice({ username, identity });
  const id = await api(server, 'PUT', '/keys/identity', token, e2ee.identityBody(identity));
  if (id.status >= 300) throw new Error(`identity of ${username}: ${id.status} ${JSON.stringify(id.body)}`);
  const dev = await api(server, 'POST', '/keys/devices', token, { ...e2ee.deviceBody(device), name: 'bench' });
  if (dev.status >= 300) throw new Error(`device of ${username}: ${dev.status} ${JSON.stringify(dev.body)}`);
  return token;
}

const server = await startServer(limits);
const browser = await launchBrowser();
const rows = [];
try {
  const alice = await openUser(browser, server);
  const bob = await openUser(browser, server);
  await register(alice, 'alice');
  await register(bob, 'bob');
  const algorithms = await alice.evaluate(async () => (await import('/static/e2ee.js')).detectAlgorithms());

  // 1. One 1 KiB message, encrypted and signed; verified and decrypted.
  // Chromium's clock ticks in 0.1 ms steps here, so messages are timed in
  // batches of 20 and the median batch divided by 20.
  const micro = await alice.evaluate(async (n) => {
    const e2ee = await import('/static/e2ee.js');
    const { identity } = await e2ee.generateIdentity();
    const device = await e2ee.generateDevice({ username: 'alice', identity });
    const roomKey = await e2ee.importRoomKey(e2ee.generateRoomKey());
    const text = 'x'.repeat(1024);
    const batch = 20;
    const enc = [];
    const dec = [];
    for (let b = 0; b < Math.ceil(n / batch) + 2; b++) {
      const ids = Array.from({ length: batch }, (_, i) => `bench-${b}-${i}`);
      const sealed = [];
      const t0 = performance.now();
      for (const clientId of ids) {
        sealed.push(await e2ee.encryptMessage({ chat: 'group:bench', epoch: 1, device, clientId, roomKey, content: { text } }));
      }
      const t1 = performance.now();
      for (let i = 0; i < batch; i++) {
        const opened = await e2ee.openMessage({ chat: 'group:bench', sender: 'alice', clientId: ids[i], text: sealed[i], device, roomKey });
        if (opened.content.text !== text) throw new Error('the round trip changed the text');
      }
      const t2 = performance.now();
      if (b >= 2) { enc.push((t1 - t0) / batch); dec.push((t2 - t1) / batch); }
    }
    return { enc, dec };
  }, runs);
  rows.push(['encrypt and sign a 1 KiB message (median)', ms(median(micro.enc))]);
  rows.push(['verify and decrypt it (median)', ms(median(micro.dec))]);

  // 2. A new epoch of a 50-member group, wrapped and uploaded.
  const names = Array.from({ length: 49 }, (_, i) => `member${String(i).padStart(2, '0')}`);
  for (let i = 0; i < names.length; i += 8) await Promise.all(names.slice(i, i + 8).map((n) => member(server, n)));
  // The page keeps its access token in memory only (session.js).
  const aliceToken = await alice.evaluate(async () => (await import('/static/session.js')).currentToken());
  const group = await api(server, 'POST', '/chats/', aliceToken, { kind: 'group', title: 'Fifty', members: names });
  if (group.status !== 201) throw new Error(`group: ${group.status} ${JSON.stringify(group.body)}`);
  const epochTimes = await alice.evaluate(async (name) => {
    const secure = await import('/static/secure.js');
    const times = [];
    for (let i = 0; i < 7; i++) {
      secure.markStale(name);
      const t0 = performance.now();
      await secure.startEpoch(name);
      times.push(performance.now() - t0);
    }
    return times;
  }, group.body.name);
  rows.push(['new epoch for 50 members, wrapped and uploaded (median of 7)', ms(median(epochTimes))]);

  // 3. A direct chat of 500 encrypted messages, opened by bob.
  const direct = await api(server, 'POST', '/chats/', aliceToken, { kind: 'direct', members: ['bob'] });
  if (direct.status !== 201) throw new Error(`direct: ${direct.status} ${JSON.stringify(direct.body)}`);
  await alice.evaluate(async ({ chat, token }) => {
    const secure = await import('/static/secure.js');
    const t = await fetch('/ws-ticket/', { method: 'POST', headers: { Authorization: `Bearer ${token}` } }).then((r) => r.json());
    const ws = new WebSocket(`ws://${location.host}/ws?ticket=${t.ticket}`);
    await new Promise((resolve) => { ws.onopen = resolve; });
    const filler = ' lorem ipsum dolor sit amet'.repeat(4);
    for (let i = 0; i < 500; i++) {
      const clientId = `bench-msg-${i}`;
      for (;;) {
        const text = await secure.encrypt(chat, clientId, { text: `message ${i}${filler}` });
        const answer = new Promise((resolve) => {
          ws.onmessage = (e) => {
            const f = JSON.parse(e.data);
            if (f.client_id === clientId && (f.type === 'ack' || f.type === 'error')) resolve(f);
          };
        });
        ws.send(JSON.stringify({ type: 'text', chat_name: chat.name, text, client_id: clientId }));
        const f = await answer;
        if (f.type === 'ack') break;
        if (f.code !== 'stale_epoch') throw new Error(`message ${i}: ${f.code} ${f.detail}`);
        secure.markStale(chat.name);
      }
    }
    ws.close();
  }, { chat: { name: direct.body.name, members: direct.body.members }, token: aliceToken });

  await bob.reload();
  await bob.waitForSelector(`[data-testid=chat-item][data-chat-name="${direct.body.name}"]`);
  const opened = await bob.evaluate(async (name) => {
    const shown = (text) => [...document.querySelectorAll('[data-testid=message-text]')].some((el) => el.textContent.startsWith(text));
    const until = (fn) => new Promise((resolve) => {
      const check = () => (fn() ? resolve() : requestAnimationFrame(check));
      check();
    });
    const t0 = performance.now();
    document.querySelector(`[data-testid=chat-item][data-chat-name="${name}"]`).click();
    await until(() => shown('message 499 '));
    const first = performance.now() - t0;
    const list = document.querySelector('[data-testid=messages]');
    await until(() => { list.scrollTop = 0; return shown('message 0 '); });
    const all = performance.now() - t0;
    return { first, all, count: document.querySelectorAll('[data-testid=message-text]').length, broken: document.querySelectorAll('[data-testid=message-undecryptable]').length };
  }, direct.body.name);
  rows.push(['open a chat of 500 encrypted messages: newest page (50) decrypted and shown', ms(opened.first)]);
  rows.push([`… all 500 decrypted and shown (${opened.count} shown, ${opened.broken} undecryptable)`, ms(opened.all)]);
  const revealed = await bob.evaluate(async (name) => {
    const controller = await import('/static/controller.js');
    const token = (await import('/static/session.js')).currentToken();
    let messages = [];
    let before = '';
    for (;;) {
      const page = await fetch(`/messages/?chat_id=${encodeURIComponent(name)}&limit=200${before}`, { headers: { Authorization: `Bearer ${token}` } }).then((r) => r.json());
      messages = page.messages.concat(messages);
      if (!page.has_more) break;
      before = `&before=${page.messages[0].id}`;
    }
    const t0 = performance.now();
    const shown = await controller.reveal(name, messages);
    return { ms: performance.now() - t0, n: shown.filter((m) => !m.undecryptable && m.type === 'text').length };
  }, direct.body.name);
  rows.push([`… the ${revealed.n} verified and decrypted again in one batch (keys in memory)`, ms(revealed.ms)]);

  console.log(`Chromium, ${algorithms.sig}/${algorithms.dh}, ${runs} runs for the message medians`);
  for (const [what, value] of rows) console.log(`${what.padEnd(84)} ${value}`);
} finally {
  await browser.close();
  await server.close();
}
