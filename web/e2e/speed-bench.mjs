// A benchmark of the web client's speed in Chromium against a real server
// (`make bench-web`; not a test, nothing here fails on a slow machine):
// the bytes transferred for a first load of the sign-in page (empty
// cache), for signing up through to the chat view, and for a repeat load
// of the app (warm cache), counted from Chromium's own network events
// (headers included, as on the wire over HTTP/1.1); then the frame times
// while scrolling through a chat of 2,000 loaded messages, from
// requestAnimationFrame, and the time to show that chat again.
import { launchBrowser, register, startServer, api, apiUser, sendFrames, openChat } from './lib.mjs';

// `node speed-bench.mjs [messages] [--bytes] [--list]`: --bytes stops after
// the loads; --list prints each static response of the loads with its size.
const total = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a))) || 2000;
const bytesOnly = process.argv.includes('--bytes');
const list = process.argv.includes('--list');
const limits = {
  RATE_LIMIT_MESSAGES_PER_SECOND: '100000', RATE_LIMIT_MESSAGES_BURST: '100000',
  RATE_LIMIT_FRAMES_PER_SECOND: '100000', RATE_LIMIT_FRAMES_BURST: '100000',
  REGISTRATION_PER_HOUR: '1000000',
};

const step = (what) => console.error(`… ${what}`);
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
const ms = (x) => `${x.toFixed(1)} ms`;

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

// meter counts, through the DevTools protocol, the bytes each finished
// response took on the wire; take() returns the totals since the last take.
async function meter(page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: false });
  const urls = new Map();
  let counts = { all: 0, static: 0, requests: 0, fromNetwork: 0, files: [] };
  cdp.on('Network.requestWillBeSent', (e) => urls.set(e.requestId, e.request.url));
  cdp.on('Network.loadingFinished', (e) => {
    const url = new URL(urls.get(e.requestId) || 'http://x/');
    const isStatic = url.pathname === '/' || url.pathname.startsWith('/static/');
    counts.all += e.encodedDataLength;
    if (isStatic) {
      counts.static += e.encodedDataLength;
      counts.files.push(`${url.pathname} ${e.encodedDataLength}`);
    }
    counts.requests++;
    if (e.encodedDataLength > 0) counts.fromNetwork++;
  });
  return {
    cdp,
    take() {
      const out = counts;
      counts = { all: 0, static: 0, requests: 0, fromNetwork: 0, files: [] };
      if (list) console.error(out.files.join('\n'));
      return out;
    },
  };
}

async function settle(page) {
  await page.waitForLoadState('networkidle');
}

const server = await startServer(limits);
const browser = await launchBrowser();
const rows = [];
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const bytes = await meter(page);

  // 1. First load: an empty cache, the sign-in page.
  await page.goto(server.url + '/');
  await page.waitForSelector('[data-testid=auth-form]');
  await settle(page);
  let m = bytes.take();
  rows.push(['first load, sign-in page: static files', `${kib(m.static)} (${m.requests} responses)`]);

  step('signing up');
  // 2. Signing up, keys set up, the chat view shown.
  await register(page, 'alice');
  await settle(page);
  m = bytes.take();
  rows.push(['… then sign up through to the chat view: static files', kib(m.static)]);
  rows.push(['… all responses (API included)', kib(m.all)]);

  // 3. A repeat load of the app, signed in, warm cache.
  await page.goto(server.url + '/');
  await page.waitForSelector('[data-testid=app]');
  await settle(page);
  m = bytes.take();
  rows.push(['repeat load, signed in: static files', `${kib(m.static)} (${m.fromNetwork} of ${m.requests} responses from the network)`]);
  rows.push(['… all responses (API included)', kib(m.all)]);

  // 4. A load of the app, signed in (the refresh cookie), with the cache
  // emptied: a browser that signed in before a new version was deployed.
  await bytes.cdp.send('Network.clearBrowserCache');
  await page.goto(server.url + '/');
  await page.waitForSelector('[data-testid=app]');
  await settle(page);
  m = bytes.take();
  rows.push(['first load, signed in (empty cache): static files', `${kib(m.static)} (${m.requests} responses)`]);
  rows.push(['… all responses (API included)', kib(m.all)]);

  if (!bytesOnly) {
    step(`sending ${total} messages`);
    // 5. A group of `total` messages, sent by another member.
    const token = await apiUser(server, 'seeder');
    const group = await api(server, 'POST', '/chats/', token, { e2ee: false, kind: 'group', title: 'Long', members: ['alice'] });
    if (group.status !== 201) throw new Error(`group: ${group.status} ${JSON.stringify(group.body)}`);
    const filler = ['', ' lorem ipsum dolor sit amet', ' **bold** and `code` and a longer line that wraps on a narrow screen, '.repeat(3)];
    // Sent while alice is away, so that she meets them as history.
    await page.goto('about:blank');
    const seeder = await context.newPage();
    await seeder.goto(server.url + '/');
    for (let i = 0; i < total; i += 500) {
      await sendFrames(seeder, token, Array.from({ length: Math.min(500, total - i) }, (_, j) => ({
        type: 'text', chat_name: group.body.name, text: `message ${i + j}${filler[(i + j) % 3]}`, client_id: `bench-${i + j}`,
      })));
    }
    await seeder.close();
    await page.goto(server.url + '/');
    await page.waitForSelector('[data-testid=app]');
    bytes.take();
    step('opening the chat');
    await openChat(page, group.body.name);
    await page.waitForFunction((last) => [...document.querySelectorAll('[data-testid=message-text]')].some((el) => el.textContent.startsWith(last)), `message ${total - 1}`);
    const loaded = await page.evaluate(async (n) => {
      const list = document.querySelector('[data-testid=messages]');
      const count = () => list.querySelectorAll('[data-testid=message]').length;
      const t0 = performance.now();
      while (count() < n) {
        list.scrollTop = 0;
        await new Promise((resolve) => requestAnimationFrame(resolve));
        if (performance.now() - t0 > 120_000) break;
      }
      return { count: count(), ms: performance.now() - t0 };
    }, total);
    rows.push([`load all ${total} messages by scrolling up (${loaded.count} shown)`, ms(loaded.ms)]);

    step('scrolling');
    // 6. Scrolling: 600 frames from the top down at 40 px a frame (a quick
    // swipe), each frame's time taken between animation frames. The mouse
    // rests over the history, as it does for a wheel: after each frame
    // Chromium hit-tests under it and the hovered message changes.
    const box = await page.locator('[data-testid=messages]').boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    const frames = await page.evaluate(async () => {
      const list = document.querySelector('[data-testid=messages]');
      list.scrollTop = 0;
      await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
      const deltas = [];
      let last = 0;
      await new Promise((resolve) => {
        const step = (now) => {
          if (last) deltas.push(now - last);
          last = now;
          list.scrollTop += 40;
          if (deltas.length >= 600 || list.scrollTop + list.clientHeight >= list.scrollHeight) resolve();
          else requestAnimationFrame(step);
        };
        requestAnimationFrame(step);
      });
      return deltas;
    });
    rows.push([`scroll through ${total} messages, ${frames.length} frames: median frame`, ms(percentile(frames, 50))]);
    rows.push(['… 95th-percentile frame', ms(percentile(frames, 95))]);
    rows.push(['… longest frame', ms(Math.max(...frames))]);
    rows.push(['… frames over 20 ms', `${frames.filter((f) => f > 20).length} of ${frames.length}`]);

    step('showing the chat again');
    // 7. Rendering: leave the chat and come back, all messages in memory.
    const reopen = [];
    for (let i = 0; i < 5; i++) {
      await openChat(page, 'global');
      const t = await page.evaluate(async (name) => {
        const t0 = performance.now();
        document.querySelector(`[data-testid=chat-item][data-chat-name="${name}"]`).click();
        await new Promise((resolve) => {
          const check = () => {
            const list = document.querySelector('[data-testid=messages]');
            if (list.querySelectorAll('[data-testid=message]').length > 1000) resolve();
            else requestAnimationFrame(check);
          };
          check();
        });
        await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve)));
        return performance.now() - t0;
      }, group.body.name);
      reopen.push(t);
    }
    rows.push([`show the chat again, ${total} messages in memory (median of 5)`, ms(percentile(reopen, 50))]);
  }

  console.log(`Chromium ${browser.version()}, 1280×800`);
  for (const [what, value] of rows) console.log(`${what.padEnd(72)} ${value}`);
} finally {
  await browser.close();
  await server.close();
}
