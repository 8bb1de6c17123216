// Browser tests of the web client, against a real server, in Debian's
// Chromium. Run with `make test` (or `npm test` in web/e2e).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  launchBrowser, png, openUser, register, openChat, send, waitForMessage,
  screenshot, api, apiUser, countMessages, sendFrames, withServer, noProblems, switchLanguage, evalOn,
} from './lib.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

const noLimits = {
  RATE_LIMIT_MESSAGES_PER_SECOND: '1000', RATE_LIMIT_MESSAGES_BURST: '1000',
  RATE_LIMIT_FRAMES_PER_SECOND: '1000', RATE_LIMIT_FRAMES_BURST: '1000',
};

test('two users register and chat in global; screenshots', async () => {
  await withServer({}, async (server) => {
    const alice = await openUser(browser, server);
    const bob = await openUser(browser, server);
    await register(alice, 'alice');
    await register(bob, 'bob');
    await openChat(alice, 'global');
    await openChat(bob, 'global');

    await send(alice, 'Hello **bob**, welcome!');
    await bob.waitForSelector('[data-testid=message-text] strong:text-is("bob")');
    await send(bob, 'Hi alice');
    await waitForMessage(alice, 'Hi alice');
    // Presence: each sees the other online.
    await alice.waitForSelector('[data-testid=online-user][data-username=bob]');
    // Multi-line: Shift+Enter makes a new line, Enter sends.
    await alice.fill('[data-testid=composer]', 'line one');
    await alice.press('[data-testid=composer]', 'Shift+Enter');
    await alice.type('[data-testid=composer]', 'line two');
    await alice.press('[data-testid=composer]', 'Enter');
    await bob.waitForFunction(() => [...document.querySelectorAll('[data-testid=message-text]')]
      .some((el) => el.textContent.includes('line one') && el.textContent.includes('line two')));

    await screenshot(alice, 'global-1280x800');
    await alice.setViewportSize({ width: 390, height: 844 });
    await screenshot(alice, 'global-390x844');
    await alice.setViewportSize({ width: 1280, height: 800 });

    // Logging out returns to the sign-in form; a reload keeps bob signed in.
    await alice.click('[data-testid=logout]');
    await alice.waitForSelector('[data-testid=auth-form]');
    await bob.reload();
    await bob.waitForSelector('[data-testid=app]');
    noProblems(alice, bob);
  });
});

test('sign-in errors are shown clearly', async () => {
  await withServer({}, async (server) => {
    await apiUser(server, 'carol');
    const page = await openUser(browser, server);
    await page.fill('[data-testid=auth-form] input[name=username]', 'carol');
    await page.fill('[data-testid=auth-form] input[name=password]', 'wrong password here');
    await page.click('[data-testid=login]');
    await page.waitForSelector('[data-testid=auth-error]:not(:empty)');
    // Five more failures lock the name: the 429 sentence says how long.
    for (let i = 0; i < 5; i++) await api(server, 'POST', '/login/', '', { username: 'carol', password: 'still wrong' });
    await page.click('[data-testid=login]');
    await page.waitForFunction(() => /\d+ seconds/.test(document.querySelector('[data-testid=auth-error]')?.textContent || ''));
    // A name the server refuses is explained, not swallowed.
    await page.click('[data-testid=mode-register]');
    await page.fill('[data-testid=auth-form] input[name=username]', '<b>x</b>');
    await page.fill('[data-testid=auth-form] input[name=password]', 'wrong password here');
    await page.click('[data-testid=register]');
    await page.waitForFunction(() => /username|name/i.test(document.querySelector('[data-testid=auth-error]')?.textContent || ''));
  });
});

test('a direct chat and a three-person group, with unread badges', async () => {
  await withServer({}, async (server) => {
    const alice = await openUser(browser, server);
    const bob = await openUser(browser, server);
    const carol = await openUser(browser, server);
    await register(alice, 'alice');
    await register(bob, 'bob');
    await register(carol, 'carol');

    // Direct chat from the dialog's user search.
    await alice.click('[data-testid=new-direct]');
    await alice.fill('[data-testid=user-search]', 'bo');
    await alice.click('[data-testid=user-result][data-username=bob]');
    await alice.waitForSelector('[data-testid=chat-header]:has-text("bob")');
    await send(alice, 'just between us');
    // bob gets the chat with an unread badge and the title counts it.
    const directItem = bob.locator('[data-testid=chat-item]', { hasText: 'alice' });
    await directItem.locator('[data-testid=unread]:text-is("1")').waitFor();
    await bob.waitForFunction(() => /^\(\d+\) /.test(document.title));
    await directItem.click();
    await waitForMessage(bob, 'just between us');
    await directItem.locator('[data-testid=unread]').waitFor({ state: 'hidden' });

    // A group of three.
    await alice.click('[data-testid=new-group]');
    await alice.fill('[data-testid=group-title]', 'Ops team');
    for (const name of ['bob', 'carol']) {
      await alice.fill('[data-testid=user-search]', name);
      await alice.click(`[data-testid=user-result][data-username=${name}]`);
    }
    await alice.click('[data-testid=create-chat]');
    await alice.waitForSelector('[data-testid=chat-header]:has-text("Ops team")');
    await send(alice, 'welcome to ops');
    for (const p of [bob, carol]) {
      const item = p.locator('[data-testid=chat-item]', { hasText: 'Ops team' });
      await item.click();
      await waitForMessage(p, 'welcome to ops');
    }
    await send(carol, 'thanks!');
    await waitForMessage(alice, 'thanks!');
    await waitForMessage(bob, 'thanks!');
    noProblems(alice, bob, carol);
  });
});

test('the typing indicator appears and disappears', async () => {
  await withServer({}, async (server) => {
    const alice = await openUser(browser, server);
    const bob = await openUser(browser, server);
    await register(alice, 'alice');
    await register(bob, 'bob');
    await openChat(alice, 'global');
    await openChat(bob, 'global');
    await bob.type('[data-testid=composer]', 'I am writ');
    await alice.waitForSelector('[data-testid=typing]:has-text("bob")');
    await bob.press('[data-testid=composer]', 'Enter');
    await waitForMessage(alice, 'I am writ');
    await alice.waitForFunction(() => !/bob/.test(document.querySelector('[data-testid=typing]')?.textContent || ''));
    // Typing, then clearing the composer, ends it too.
    await bob.type('[data-testid=composer]', 'hmm');
    await alice.waitForSelector('[data-testid=typing]:has-text("bob")');
    await bob.fill('[data-testid=composer]', '');
    await alice.waitForFunction(() => !/bob/.test(document.querySelector('[data-testid=typing]')?.textContent || ''));
    noProblems(alice, bob);
  });
});

test('a file upload shows progress, and a preview at the other side', async () => {
  await withServer({}, async (server) => {
    const alice = await openUser(browser, server);
    const bob = await openUser(browser, server);
    await register(alice, 'alice');
    await register(bob, 'bob');
    await openChat(alice, 'global');
    await openChat(bob, 'global');

    // Slow the upload down so that its progress is visible.
    const cdp = await alice.context().newCDPSession(alice);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 256 * 1024 });
    const image = png(500, 400);
    assert.ok(image.length > 400_000, `test image is only ${image.length} bytes`);
    await alice.setInputFiles('[data-testid=file-input]', { name: 'sunset.png', mimeType: 'image/png', buffer: image });
    await alice.waitForSelector('[data-testid=upload-progress]', { state: 'visible' });
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });

    const thumb = bob.locator('img[data-testid=file-thumb]').last();
    await thumb.waitFor();
    await bob.waitForFunction(() => {
      const imgs = document.querySelectorAll('img[data-testid=file-thumb]');
      const img = imgs[imgs.length - 1];
      return img && img.complete && img.naturalWidth > 0 && img.naturalWidth <= 320;
    });
    await bob.waitForSelector('[data-testid=file-link]:has-text("sunset.png")');
    await alice.waitForSelector('[data-testid=upload-progress]', { state: 'hidden' });

    // A document goes up with the attach button's input too, and shows as a link.
    await alice.setInputFiles('[data-testid=file-input]', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('meeting notes') });
    await bob.waitForSelector('[data-testid=file-link]:has-text("notes.txt")');
    noProblems(alice, bob);
  });
});

test('scrolling up loads older pages without losing the place', async () => {
  await withServer(noLimits, async (server) => {
    const token = await apiUser(server, 'seeder');
    // 130 messages, sent over a WebSocket from a page of their own before
    // alice is online, so that she meets them as history.
    const seeder = await openUser(browser, server);
    await sendFrames(seeder, token, Array.from({ length: 130 }, (_, i) => ({ type: 'text', text: `seed ${i}`, client_id: `seed-${i}` })));
    await seeder.context().close();
    const alice = await openUser(browser, server);
    await register(alice, 'alice');
    await openChat(alice, 'global');
    await waitForMessage(alice, 'seed 129');
    const count = () => alice.locator('[data-testid=message]').count();
    const first = await count();
    assert.ok(first < 130, `the first page already holds ${first} messages`);
    for (let i = 0; i < 10 && !(await countMessages(alice, 'seed 0')); i++) {
      // Count and scroll in one step, so a page that lands at once is
      // not mistaken for the starting point.
      const [anchor, before] = await alice.evaluate(() => {
        const list = document.querySelector('[data-testid=messages]');
        const all = [...list.querySelectorAll('[data-testid=message]')];
        list.scrollTop = 0;
        return [all[0].dataset.id, all.length];
      });
      await alice.waitForFunction((n) => document.querySelectorAll('[data-testid=message]').length > n, before);
      // The message that was on top is still in view: no jump to the top.
      const visible = await alice.evaluate((id) => {
        const list = document.querySelector('[data-testid=messages]').getBoundingClientRect();
        const el = document.querySelector(`[data-testid=message][data-id="${id}"]`).getBoundingClientRect();
        return el.bottom > list.top && el.top < list.bottom;
      }, anchor);
      assert.ok(visible, 'the viewport jumped when older messages loaded');
    }
    await waitForMessage(alice, 'seed 0');
    assert.equal(await countMessages(alice, 'seed 64'), 1, 'a message shows twice');
    await alice.waitForSelector('[data-testid=day-separator]');
    noProblems(alice);
  });
});

test('a server restart mid-conversation loses and repeats nothing', async () => {
  await withServer({}, async (server) => {
    const alice = await openUser(browser, server);
    const bob = await openUser(browser, server);
    await register(alice, 'alice');
    await register(bob, 'bob');
    await openChat(alice, 'global');
    await openChat(bob, 'global');
    await send(alice, 'before the restart');
    await waitForMessage(bob, 'before the restart');

    await server.stop();
    await alice.waitForSelector('[data-testid=connection-banner]', { state: 'visible' });
    // Typed during the outage: shown as sending, sent once when back.
    await send(alice, 'typed while down');
    await alice.waitForSelector('[data-testid=message-status]:has-text("sending")');
    await server.start();
    for (const p of [alice, bob]) {
      await p.waitForSelector('[data-testid=connection-banner]', { state: 'hidden', timeout: 40_000 });
    }
    await waitForMessage(bob, 'typed while down', 40_000);
    await send(bob, 'after the restart');
    await waitForMessage(alice, 'after the restart');
    await alice.waitForSelector('[data-testid=message-status]', { state: 'detached' });
    for (const p of [alice, bob]) {
      for (const text of ['before the restart', 'typed while down', 'after the restart']) {
        const n = await countMessages(p, text);
        assert.equal(n, 1, `"${text}" shows ${n} times`);
      }
    }
    // Connection errors while the server was down are expected; nothing else.
    for (const p of [alice, bob]) p.problems = p.problems.filter((m) => !/ERR_CONNECTION_REFUSED|WebSocket|Failed to load resource|net::ERR/.test(m));
    noProblems(alice, bob);
  });
});

test('the Persian interface is right-to-left, and switchable', async () => {
  await withServer({}, async (server) => {
    const page = await openUser(browser, server, { locale: 'fa-IR' });
    await page.waitForFunction(() => document.documentElement.dir === 'rtl' && document.documentElement.lang === 'fa');
    await register(page, 'dariush');
    await openChat(page, 'global');
    await send(page, 'سلام دنیا');
    await waitForMessage(page, 'سلام دنیا');
    const dir = await evalOn(page, '[data-testid=message-text]', (el) => getComputedStyle(el.firstElementChild || el).direction);
    assert.equal(dir, 'rtl');
    const sidebar = await page.locator('[data-testid=chat-list]').boundingBox();
    const messages = await page.locator('[data-testid=messages]').boundingBox();
    assert.ok(sidebar.x > messages.x, 'the sidebar is not on the right in the Persian layout');
    await screenshot(page, 'persian-1280x800');
    await page.setViewportSize({ width: 390, height: 844 });
    await screenshot(page, 'persian-390x844');
    await page.setViewportSize({ width: 1280, height: 800 });
    await switchLanguage(page, 'en');
    await page.waitForFunction(() => document.documentElement.dir === 'ltr' && document.documentElement.lang === 'en');
    noProblems(page);
  });
});

test('XSS payloads show as text and run nothing', async () => {
  await withServer(noLimits, async (server) => {
    const payloads = [
      '<img src=x onerror="window.__xss=1">',
      '<script>window.__xss=1</script>',
      '"><svg onload=window.__xss=1>',
      '[click me](javascript:window.__xss=1)',
      '<iframe srcdoc="<script>parent.__xss=1</script>"></iframe>',
      '`<img src=x onerror=window.__xss=1>`',
    ];
    const page = await openUser(browser, server);
    await register(page, 'victim');
    const token = await apiUser(server, 'mallory');
    // A group whose title is a payload, and a file whose name is one.
    const group = await api(server, 'POST', '/chats/', token, { e2ee: false, kind: 'group', title: payloads[0], members: ['victim'] });
    assert.equal(group.status, 201);
    const form = new FormData();
    form.append('chat_id', 'global');
    form.append('file', new Blob(['hi']), '<img src=x onerror=window.__xss=1>.txt');
    const up = await fetch(`${server.url}/upload/`, { method: 'POST', headers: { Authorization: `Bearer ${token}` }, body: form }).then((r) => r.json());
    assert.ok(up.file_url, JSON.stringify(up));

    await openChat(page, 'global');
    for (const p of payloads) await send(page, p);
    await sendFrames(page, token, [{ type: 'file', chat_name: 'global', text: up.file_url, client_id: 'xss-file' }]);
    await page.waitForSelector('[data-testid=file-link]:has-text("onerror")');
    await waitForMessage(page, payloads[1]);
    await page.locator(`[data-testid=chat-item][data-chat-name="${group.body.name}"]`).waitFor();
    await page.click(`[data-testid=chat-item][data-chat-name="${group.body.name}"]`);
    await page.waitForSelector(`[data-testid=chat-header]:has-text("onerror")`);
    const state = await page.evaluate(() => ({
      flag: window.__xss,
      injected: document.querySelectorAll('img[src="x"], svg[onload], iframe, script:not([src]):not([type=importmap])').length,
      jsLinks: [...document.querySelectorAll('a[href]')].filter((a) => a.href.startsWith('javascript:')).length,
    }));
    assert.deepEqual(state, { flag: undefined, injected: 0, jsLinks: 0 });
    noProblems(page);
  });
});
