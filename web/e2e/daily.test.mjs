// Browser tests of the web client in daily use (issue 19): the bugs three
// new users met on desktop and phone, in English and Persian, and reading
// (the unread divider, drafts kept per chat, last-message previews).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  launchBrowser, pageToken, openUser, register, openChat, send, waitForMessage,
  api, apiUser, sendFrames, withServer, noProblems,
} from './lib.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

const noLimits = {
  RATE_LIMIT_MESSAGES_PER_SECOND: '1000', RATE_LIMIT_MESSAGES_BURST: '1000',
  RATE_LIMIT_FRAMES_PER_SECOND: '1000', RATE_LIMIT_FRAMES_BURST: '1000',
};
const phone = { width: 390, height: 844 };

// startDirect has page start a direct chat with username from the dialog
// and resolves to the chat's name once it is open.
async function startDirect(page, username) {
  await page.click('[data-testid=new-direct]');
  await page.fill('[data-testid=user-search]', username);
  await page.click(`[data-testid=user-result][data-username=${username}]`);
  await page.waitForSelector(`[data-testid=chat-header]:has-text("${username}")`);
  return page.$eval('[data-testid=chat-item][aria-current=true]', (el) => el.dataset.chatName);
}

// withoutOutageNoise drops the console errors a stopped server causes.
function withoutOutageNoise(...pages) {
  for (const p of pages) p.problems = p.problems.filter((m) => !/ERR_CONNECTION_REFUSED|ERR_INTERNET_DISCONNECTED|WebSocket|Failed to load resource|net::ERR/.test(m));
}

test('an open chat is read after a reconnect: no badge, no (1) in the title', async () => {
  await withServer({}, async (server) => {
    const alice = await openUser(browser, server);
    const bob = await openUser(browser, server);
    await register(alice, 'alice');
    await register(bob, 'bob');
    const name = await startDirect(alice, 'bob');
    await openChat(bob, name);
    await send(alice, 'before the restart');
    await waitForMessage(bob, 'before the restart');

    // alice cannot reconnect (her tickets are refused) while the server
    // restarts and bob writes.
    await alice.route('**/ws-ticket/', (route) => route.abort());
    await server.restart();
    await alice.waitForSelector('[data-testid=connection-banner]', { state: 'visible' });
    await bob.waitForSelector('[data-testid=connection-banner]', { state: 'hidden', timeout: 40_000 });
    await send(bob, 'sent meanwhile');
    await bob.waitForSelector('[data-testid=message-status]', { state: 'detached' });
    await alice.unroute('**/ws-ticket/');
    // Retry now, unless her own backoff has already reconnected her.
    await alice.evaluate(() => document.querySelector('[data-testid=connection-banner]:not([hidden]) button')?.click());
    await alice.waitForSelector('[data-testid=connection-banner]', { state: 'hidden', timeout: 40_000 });
    await waitForMessage(alice, 'sent meanwhile', 40_000);
    await alice.waitForFunction(() => document.title === 'Mapsim Chat', null, { timeout: 10_000 });
    await alice.locator(`[data-testid=chat-item][data-chat-name="${name}"] [data-testid=unread]`).waitFor({ state: 'hidden' });
    // The server was told too: a reload still shows the chat read.
    await alice.reload();
    await alice.waitForSelector(`[data-testid=chat-item][data-chat-name="${name}"]`);
    await waitForMessage(alice, 'sent meanwhile');
    assert.equal(await alice.title(), 'Mapsim Chat');
    withoutOutageNoise(alice, bob);
    noProblems(alice, bob);
  });
});

// messageWith is the message whose text is exactly text.
function messageWith(page, text) {
  const exact = new RegExp(`^\\s*${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*$`);
  return page.locator('[data-testid=message]', { has: page.locator('[data-testid=message-text]', { hasText: exact }) });
}

// replyTo clicks the reply action of the message whose text is text.
async function replyTo(page, text) {
  const msg = messageWith(page, text);
  await msg.hover();
  await msg.locator('.msg-actions button').first().click();
}

test('reply quotes, the reply bar and list previews show text without Markdown markers (English and Persian)', async () => {
  await withServer({}, async (server) => {
    const alice = await openUser(browser, server);
    const bob = await openUser(browser, server, { locale: 'fa-IR' });
    await register(alice, 'alice');
    await register(bob, 'bob');
    await openChat(alice, 'global');
    await openChat(bob, 'global');
    const marked = '**bold** *italic* _under_ ~~gone~~ `code` [a link](https://example.com/x)';
    const shown = 'bold italic under gone code a link';
    await send(alice, marked);
    await bob.waitForSelector('[data-testid=message-text] em:text-is("italic")');
    await replyTo(bob, shown);
    assert.equal((await bob.textContent('.reply-bar .rb-text')).trim(), shown);
    await send(bob, '*sure*, **شروع** کنیم');
    await alice.waitForSelector('[data-testid=message-reply]');
    for (const page of [alice, bob]) {
      await page.waitForSelector('[data-testid=message-reply] .rq-text');
      assert.equal((await page.textContent('[data-testid=message-reply] .rq-text')).trim(), shown);
    }
    // The chat list previews the last message as plain text too.
    await alice.waitForFunction(() => document.querySelector('[data-chat-name=global] .ci-preview')?.textContent.includes('sure, شروع کنیم'));
    assert.doesNotMatch(await alice.textContent('[data-chat-name=global] .ci-preview'), /\*/);
    noProblems(alice, bob);
  });
});

// luminance and contrast follow WCAG 2.x.
function luminance([r, g, b]) {
  const c = (v) => { const s = v / 255; return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4; };
  return 0.2126 * c(r) + 0.7152 * c(g) + 0.0722 * c(b);
}
function contrast(a, b) {
  const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}

// codeColours reads, for every code element in the open chat's messages,
// its text colour and the colour behind it (its and its ancestors'
// backgrounds composited), and whether it is in one of my bubbles.
function codeColours(page) {
  return page.evaluate(() => {
    const parse = (s) => {
      const m = s.match(/rgba?\(([^)]+)\)/);
      if (!m) return [0, 0, 0, 0];
      const p = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
      return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
    };
    const behind = (el) => {
      const layers = [];
      for (let n = el; n; n = n.parentElement) {
        const c = parse(getComputedStyle(n).backgroundColor);
        if (c[3] > 0) layers.push(c);
        if (c[3] >= 1) break;
      }
      let rgb = [255, 255, 255];
      for (const [r, g, b, a] of layers.reverse()) rgb = [r * a + rgb[0] * (1 - a), g * a + rgb[1] * (1 - a), b * a + rgb[2] * (1 - a)];
      return rgb;
    };
    return [...document.querySelectorAll('[data-testid=message] .msg-text code')].map((el) => ({
      own: !!el.closest('.msg.own'),
      block: !!el.closest('pre'),
      text: parse(getComputedStyle(el).color).slice(0, 3),
      bg: behind(el),
      bubble: behind(el.closest('.bubble')),
    }));
  });
}

test('code in message bubbles keeps WCAG AA contrast in both themes and does not look selected', async () => {
  await withServer({}, async (server) => {
    const alice = await openUser(browser, server);
    await register(alice, 'alice');
    await openChat(alice, 'global');
    const token = await apiUser(server, 'bob');
    const code = 'run `make test` then\n```\ngo vet ./...\n```';
    await send(alice, code);
    await sendFrames(alice, token, [{ type: 'text', chat_name: 'global', text: code, client_id: 'code-1' }]);
    await alice.waitForFunction(() => document.querySelectorAll('[data-testid=message] pre code').length === 2);
    await alice.waitForSelector('[data-testid=message-status]', { state: 'detached' });
    for (const colorScheme of ['light', 'dark']) {
      await alice.emulateMedia({ colorScheme });
      const all = await codeColours(alice);
      assert.equal(all.length, 4);
      assert.deepEqual(all.map((c) => c.own).sort(), [false, false, true, true]);
      for (const c of all) {
        const ratio = contrast(c.text, c.bg);
        assert.ok(ratio >= 4.5, `${colorScheme}: ${c.own ? 'own' : 'other'} ${c.block ? 'code block' : 'inline code'} contrast ${ratio.toFixed(2)} < 4.5`);
        // In my bubbles code sits on a darker inset, not a light wash that
        // reads as selected text.
        if (c.own) assert.ok(luminance(c.bg) < luminance(c.bubble), `${colorScheme}: own code is lighter than its bubble`);
      }
    }
    noProblems(alice);
  });
});

test('group details stay current after removing a member; leaving asks first, says so once, with its own icon (Persian)', async () => {
  await withServer({}, async (server) => {
    const alice = await openUser(browser, server);
    const bob = await openUser(browser, server, { locale: 'fa-IR' });
    const carol = await openUser(browser, server);
    await register(alice, 'alice');
    await register(bob, 'bob');
    await register(carol, 'carol');
    await alice.click('[data-testid=new-group]');
    await alice.fill('[data-testid=group-title]', 'Ops team');
    for (const name of ['bob', 'carol']) {
      await alice.fill('[data-testid=user-search]', name);
      await alice.click(`[data-testid=user-result][data-username=${name}]`);
    }
    await alice.click('[data-testid=create-chat]');
    await alice.waitForSelector('[data-testid=chat-header]:has-text("Ops team")');

    // Remove carol: the dialog counts two, and finds her to add back.
    await alice.click('[data-testid=chat-header] .head-actions .icon-btn');
    await alice.waitForSelector('dialog[open] h3.section-title:text-is("3 members")');
    await alice.click('dialog[open] .member-list li:has-text("carol") button[aria-label*="Remove"]');
    await alice.waitForSelector('dialog[open] .member-list li:has-text("carol")', { state: 'detached' });
    await alice.waitForSelector('dialog[open] h3.section-title:text-is("2 members")');
    await alice.fill('dialog[open] [data-testid=user-search]', 'car');
    await alice.click('dialog[open] [data-testid=user-result][data-username=carol]');
    await alice.click('dialog[open] .dialog-actions .btn-primary');
    await alice.waitForSelector('dialog[open]', { state: 'detached' });
    await alice.click('[data-testid=chat-header] .head-actions .icon-btn');
    await alice.waitForSelector('dialog[open] .member-list li:has-text("carol")');
    await alice.waitForSelector('dialog[open] h3.section-title:text-is("3 members")');
    await alice.keyboard.press('Escape');

    // bob leaves, in Persian: a confirmation first (Cancel keeps him in),
    // then one toast; the button's icon is not log out's.
    const group = bob.locator('[data-testid=chat-item]', { hasText: 'Ops team' });
    await group.click();
    await bob.waitForSelector('[data-testid=leave-chat]');
    const icons = await bob.evaluate(() => [
      document.querySelector('[data-testid=leave-chat] svg path').getAttribute('d'),
      document.querySelector('[data-testid=logout] svg path').getAttribute('d'),
    ]);
    assert.notEqual(icons[0], icons[1], 'Leave has the log out icon');
    await bob.click('[data-testid=leave-chat]');
    await bob.waitForSelector('dialog[open] .btn-danger:text-is("ترک گروه")');
    await bob.click('dialog[open] .btn-secondary');
    await bob.waitForSelector('dialog[open]', { state: 'detached' });
    assert.equal(await group.count(), 1);
    await bob.click('[data-testid=leave-chat]');
    await bob.click('dialog[open] .btn-danger');
    await group.waitFor({ state: 'detached' });
    // A message sent and acknowledged afterwards comes over the same
    // socket as the chat_removed frame: by then every toast has shown.
    await openChat(bob, 'global');
    await send(bob, 'still here');
    await waitForMessage(bob, 'still here');
    await bob.waitForSelector('[data-testid=message-status]', { state: 'detached' });
    const toasts = await bob.$$eval('[data-testid=toast]', (els) => els.map((el) => el.textContent));
    assert.equal(toasts.length, 1, `toasts: ${JSON.stringify(toasts)}`);
    assert.match(toasts[0], /Ops team/);
    noProblems(alice, bob, carol);
  });
});

test('on a phone, a tapped message puts its actions away when something else is sent', async () => {
  await withServer({}, async (server) => {
    const context = await browser.newContext({ viewport: phone, isMobile: true, hasTouch: true });
    const page = await context.newPage();
    page.problems = [];
    page.on('pageerror', (err) => page.problems.push(`page error: ${err.message}`));
    await page.goto(server.url + '/');
    await register(page, 'alice');
    await page.click('[data-testid=chat-item][data-chat-name=global]');
    await send(page, 'first message');
    await waitForMessage(page, 'first message');
    const first = messageWith(page, 'first message');
    await first.locator('[data-testid=message-text]').tap();
    const actionsShown = () => first.evaluate((el) => {
      const a = el.querySelector('.msg-actions');
      const s = getComputedStyle(a);
      return s.display !== 'none' && s.visibility !== 'hidden';
    });
    assert.equal(await actionsShown(), true, 'a tap does not show the actions');
    await send(page, 'second message');
    await waitForMessage(page, 'second message');
    await page.waitForSelector('[data-testid=message-status]', { state: 'detached' });
    assert.equal(await actionsShown(), false, 'the tapped message still shows its actions');
    noProblems(page);
    await context.close();
  });
});

test('the sign-in form does what its chosen tab says, Enter included; the composer has the focus after signing in', async () => {
  await withServer({}, async (server) => {
    // Persian, on a phone: a new user presses Enter on the default tab.
    const dara = await openUser(browser, server, { locale: 'fa-IR', viewport: phone });
    await dara.waitForSelector('[data-testid=mode-login][aria-selected=true]:text-is("ورود")');
    await dara.fill('[data-testid=auth-form] input[name=username]', 'dara');
    await dara.fill('[data-testid=auth-form] input[name=password]', 'staple-Horse-battery-42');
    await dara.press('[data-testid=auth-form] input[name=password]', 'Enter');
    await dara.waitForSelector('[data-testid=auth-error]:not([hidden])');
    // The failure offers the other tab; on it, Enter creates the account.
    await dara.click('[data-testid=offer-register]');
    await dara.waitForSelector('[data-testid=mode-register][aria-selected=true]');
    assert.equal(await dara.getAttribute('[data-testid=auth-form] input[name=password]', 'autocomplete'), 'new-password');
    await dara.press('[data-testid=auth-form] input[name=password]', 'Enter');
    await dara.waitForSelector('[data-testid=key-setup][data-mode=setup]');
    await dara.check('[data-testid=passphrase-saved]');
    await dara.click('[data-testid=key-setup-submit]');
    await dara.waitForSelector('[data-testid=chat-item][aria-current=true]');
    // A phone shows the chat list first: the open chat's entry has the focus.
    await dara.waitForFunction(() => document.activeElement?.dataset.testid === 'chat-item');

    // English, on a desktop: the tabs switch with the keyboard too.
    const erin = await openUser(browser, server);
    await erin.focus('[data-testid=mode-login]');
    await erin.keyboard.press('ArrowRight');
    await erin.waitForSelector('[data-testid=mode-register][aria-selected=true]');
    assert.equal(await erin.textContent('[data-testid=register]'), 'Create account');
    await erin.fill('[data-testid=auth-form] input[name=username]', 'erin');
    await erin.fill('[data-testid=auth-form] input[name=password]', 'staple-Horse-battery-42');
    await erin.press('[data-testid=auth-form] input[name=username]', 'Enter');
    await erin.waitForSelector('[data-testid=key-setup][data-mode=setup]');
    await erin.check('[data-testid=passphrase-saved]');
    await erin.click('[data-testid=key-setup-submit]');
    await erin.waitForSelector('[data-testid=chat-item][aria-current=true]');
    await erin.waitForFunction(() => document.activeElement?.dataset.testid === 'composer');
    // Logged out and in again with Enter on the login tab: the same.
    await erin.click('[data-testid=logout]');
    await erin.waitForSelector('[data-testid=mode-login][aria-selected=true]');
    await erin.fill('[data-testid=auth-form] input[name=username]', 'erin');
    await erin.fill('[data-testid=auth-form] input[name=password]', 'staple-Horse-battery-42');
    await erin.press('[data-testid=auth-form] input[name=password]', 'Enter');
    await erin.waitForSelector('[data-testid=chat-item][aria-current=true]');
    await erin.waitForFunction(() => document.activeElement?.dataset.testid === 'composer');
    // The wrong-tab login's 401 is the one expected console error.
    dara.problems = dara.problems.filter((m) => !/401 \(Unauthorized\)/.test(m));
    noProblems(dara, erin);
  });
});

// inView says whether the message with this text is inside the history's view.
function inView(page, text) {
  return page.evaluate((t) => {
    const list = document.querySelector('[data-testid=messages]').getBoundingClientRect();
    const el = [...document.querySelectorAll('[data-testid=message]')].find((m) => m.querySelector('[data-testid=message-text]')?.textContent.trim() === t);
    if (!el) return false;
    const r = el.getBoundingClientRect();
    return r.bottom > list.top && r.top < list.bottom;
  }, text);
}

test('a chat with hundreds unread opens at a "new messages" divider, with a button back to it', async () => {
  await withServer(noLimits, async (server) => {
    const alice = await openUser(browser, server);
    await register(alice, 'alice');
    await openChat(alice, 'global');
    await send(alice, 'read up to here');
    await alice.waitForSelector('[data-testid=message-status]', { state: 'detached' });
    await alice.goto('about:blank');

    const token = await apiUser(server, 'bob');
    const seeder = await openUser(browser, server);
    await sendFrames(seeder, token, Array.from({ length: 300 }, (_, i) => ({ type: 'text', chat_name: 'global', text: `unread ${i}`, client_id: `u-${i}` })));
    await seeder.context().close();

    await alice.goto(server.url + '/');
    // Three pages of history to fetch and draw: give a busy machine time.
    await alice.waitForSelector('[data-testid=unread-divider]', { timeout: 60_000 });
    await waitForMessage(alice, 'unread 0');
    const next = await alice.evaluate(() => {
      let el = document.querySelector('[data-testid=unread-divider]').nextElementSibling;
      while (el && el.dataset.testid !== 'message') el = el.nextElementSibling;
      return el?.querySelector('[data-testid=message-text]').textContent.trim();
    });
    assert.equal(next, 'unread 0', 'the divider is not before the first unread message');
    await alice.waitForFunction(() => {
      const list = document.querySelector('[data-testid=messages]').getBoundingClientRect();
      const r = document.querySelector('[data-testid=unread-divider]').getBoundingClientRect();
      return r.top >= list.top && r.bottom < list.top + list.height / 2;
    });
    assert.equal(await inView(alice, 'unread 0'), true, 'the first unread message is not in view');
    assert.equal(await inView(alice, 'unread 299'), false, 'the chat opened at the bottom');
    assert.equal(await alice.textContent('[data-testid=unread-divider]'), 'New messages');
    await alice.waitForFunction(() => document.title === 'Mapsim Chat');

    // At the bottom, a button leads back to the divider.
    await alice.$eval('[data-testid=messages]', (el) => { el.scrollTop = el.scrollHeight; });
    await alice.waitForSelector('[data-testid=to-unread]', { state: 'visible' });
    await alice.click('[data-testid=to-unread]');
    await alice.waitForFunction(() => {
      const list = document.querySelector('[data-testid=messages]').getBoundingClientRect();
      const r = document.querySelector('[data-testid=unread-divider]').getBoundingClientRect();
      return r.top >= list.top && r.bottom <= list.bottom;
    });
    await alice.waitForSelector('[data-testid=to-unread]', { state: 'hidden' });
    noProblems(alice);
  });
});

test('each chat keeps its draft across reloads, marked in the chat list (Persian)', async () => {
  await withServer({}, async (server) => {
    await apiUser(server, 'bob');
    const dara = await openUser(browser, server, { locale: 'fa-IR' });
    await register(dara, 'dara');
    const direct = await startDirect(dara, 'bob');
    await dara.fill('[data-testid=composer]', 'پیش‌نویس **مهم**');
    await openChat(dara, 'global');
    assert.equal(await dara.inputValue('[data-testid=composer]'), '');
    await dara.fill('[data-testid=composer]', 'hello draft');
    const marker = dara.locator(`[data-testid=chat-item][data-chat-name="${direct}"] .ci-preview`);
    await marker.locator('[data-testid=chat-draft]:text-is("پیش‌نویس:")').waitFor();
    assert.equal((await marker.textContent()).trim(), 'پیش‌نویس: پیش‌نویس مهم');

    await dara.reload();
    await dara.waitForSelector('[data-testid=chat-item][data-chat-name=global][aria-current=true]');
    await dara.waitForFunction(() => document.querySelector('[data-testid=composer]').value === 'hello draft');
    await marker.locator('[data-testid=chat-draft]').waitFor();
    await openChat(dara, direct);
    assert.equal(await dara.inputValue('[data-testid=composer]'), 'پیش‌نویس **مهم**');
    // The open chat's entry does not repeat its draft; global's now shows one.
    await dara.locator('[data-testid=chat-item][data-chat-name=global] [data-testid=chat-draft]').waitFor();
    assert.equal(await marker.locator('[data-testid=chat-draft]').count(), 0);
    // Sent, the draft is gone.
    await dara.press('[data-testid=composer]', 'Enter');
    await waitForMessage(dara, 'پیش‌نویس مهم');
    await openChat(dara, 'global');
    await marker.locator(':text("پیش‌نویس مهم")').waitFor();
    assert.equal(await marker.locator('[data-testid=chat-draft]').count(), 0);
    await dara.reload();
    await dara.waitForSelector('[data-testid=chat-item][data-chat-name=global][aria-current=true]');
    assert.equal(await dara.locator(`[data-testid=chat-item][data-chat-name="${direct}"] [data-testid=chat-draft]`).count(), 0);
    // On a phone the list and the chat take turns: back in the list, the
    // chat just left shows its draft.
    await dara.setViewportSize(phone);
    await dara.click('[data-testid=chat-item][data-chat-name=global]');
    await dara.fill('[data-testid=composer]', 'on the phone');
    await dara.click('[data-testid=chat-header] .back-btn');
    await dara.locator('[data-testid=chat-item][data-chat-name=global] [data-testid=chat-draft]').waitFor();
    assert.equal((await dara.textContent('[data-testid=chat-item][data-chat-name=global] .ci-preview')).trim(), 'پیش‌نویس: on the phone');
    await dara.click('[data-testid=chat-item][data-chat-name=global]');
    await dara.locator('[data-testid=chat-item][data-chat-name=global] [data-testid=chat-draft]').waitFor({ state: 'detached' });
    assert.equal(await dara.inputValue('[data-testid=composer]'), 'on the phone');
    await dara.fill('[data-testid=composer]', '');
    await dara.setViewportSize({ width: 1280, height: 800 });
    // Logging out forgets the drafts kept in this browser.
    await dara.click('[data-testid=logout]');
    await dara.waitForSelector('[data-testid=auth-form]');
    assert.equal(await dara.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('mapsim.local.')).length), 0);
    noProblems(dara);
  });
});

test('chats not opened yet preview their last message: the server\'s text, or what this browser decrypted', async () => {
  await withServer({}, async (server) => {
    const alice = await openUser(browser, server);
    const carol = await openUser(browser, server);
    await register(alice, 'alice');
    await register(carol, 'carol');
    const token = await apiUser(server, 'bob');
    const group = await api(server, 'POST', '/chats/', token, { e2ee: false, kind: 'group', title: 'Plain group', members: ['alice', 'carol'] });
    assert.equal(group.status, 201);
    await sendFrames(carol, token, [{ type: 'text', chat_name: group.body.name, text: '**hello** team', client_id: 'p-1' }]);
    // alice is away while carol writes to her: her browser has decrypted nothing.
    await alice.goto('about:blank');
    const direct = await startDirect(carol, 'alice');
    await send(carol, 'secret *plan*');
    await carol.waitForSelector('[data-testid=message-status]', { state: 'detached' });

    await alice.goto(server.url + '/');
    await alice.waitForSelector('[data-testid=app]');
    // What GET /chats/ says.
    const aliceToken = await pageToken(alice);
    const list = await api(server, 'GET', '/chats/', aliceToken);
    const byName = Object.fromEntries(list.body.chats.map((c) => [c.name, c]));
    assert.equal(byName[group.body.name].last_message.text, '**hello** team');
    assert.equal(byName[group.body.name].last_message.username, 'bob');
    assert.equal(byName[direct].last_message.username, 'carol');
    assert.equal(byName[direct].last_message.text, '');

    await alice.waitForSelector('[data-testid=chat-item][data-chat-name=global][aria-current=true]');
    const preview = (name) => alice.textContent(`[data-testid=chat-item][data-chat-name="${name}"] .ci-preview`);
    await alice.waitForFunction((n) => document.querySelector(`[data-testid=chat-item][data-chat-name="${n}"] .ci-preview`)?.textContent === 'bob: hello team', group.body.name);
    assert.equal(await preview(direct), 'carol: Encrypted message');
    // Once read here, the encrypted chat's preview is kept in this browser.
    await openChat(alice, direct);
    await waitForMessage(alice, 'secret plan');
    await openChat(alice, 'global');
    await alice.reload();
    await alice.waitForSelector('[data-testid=chat-item][data-chat-name=global][aria-current=true]');
    await alice.waitForFunction((n) => document.querySelector(`[data-testid=chat-item][data-chat-name="${n}"] .ci-preview`)?.textContent === 'carol: secret plan', direct);

    // carol edits it while alice's browser is away: the kept preview is of
    // the old text, so it no longer counts ("Encrypted message") until
    // alice's browser has decrypted the new one, which the reconnect's sync
    // brings as an edit frame.
    const previewIs = (want) => alice.waitForFunction(([n, w]) => document.querySelector(`[data-testid=chat-item][data-chat-name="${n}"] .ci-preview`)?.textContent === w, [direct, want], { timeout: 15_000 })
      .catch(async () => assert.equal(await preview(direct), want));
    const edit = async (from, to) => {
      const msg = `[data-testid=message][data-id]:has-text("${from}")`;
      await carol.hover(msg);
      await carol.click(`${msg} button[aria-label=Edit]`);
      await carol.fill('.edit-input', to);
      await carol.press('.edit-input', 'Enter');
      await carol.waitForSelector(`[data-testid=message]:has-text("${to}") [data-testid=message-edited]`);
    };
    await alice.goto('about:blank');
    await edit('secret plan', 'revised plan');
    await alice.goto(server.url + '/');
    await alice.waitForSelector('[data-testid=chat-item][data-chat-name=global][aria-current=true]');
    await alice.waitForSelector(`[data-testid=chat-item][data-chat-name="${direct}"] .ci-preview`);
    await previewIs('carol: revised plan');
    await openChat(alice, direct);
    await waitForMessage(alice, 'revised plan');
    await openChat(alice, 'global');
    await alice.reload();
    await alice.waitForSelector('[data-testid=chat-item][data-chat-name=global][aria-current=true]');
    await previewIs('carol: revised plan');
    // An edit while alice is here, the chat not loaded: the preview follows.
    await edit('revised plan', 'final plan');
    await previewIs('carol: final plan');
    noProblems(alice, carol);
  });
});

test('a long history opens at the very bottom; scrolling up, older pages land without moving what is in view', async () => {
  await withServer(noLimits, async (server) => {
    const alice = await openUser(browser, server);
    await register(alice, 'alice');
    await alice.goto('about:blank');
    // Messages of one to five paragraphs, all from bob: the oldest of each
    // page is grouped with the one before it once that one arrives.
    const token = await apiUser(server, 'bob');
    const seeder = await openUser(browser, server);
    await sendFrames(seeder, token, Array.from({ length: 241 }, (_, i) => ({
      type: 'text', chat_name: 'global', client_id: `tall-${i}`,
      text: [`tall ${i}`, ...Array.from({ length: i % 5 }, (__, j) => `paragraph ${j + 2} of a taller message`)].join('\n\n'),
    })));
    await seeder.context().close();

    // Opened at the "new messages" divider, then read to the end.
    await alice.goto(server.url + '/');
    await openChat(alice, 'global');
    await alice.waitForSelector('[data-testid=unread-divider]');
    await waitForMessage(alice, 'tall 240'); // one paragraph, like every fifth
    await alice.$eval('[data-testid=messages]', (el) => { el.scrollTop = el.scrollHeight; });
    const aliceToken = await pageToken(alice);
    // The server has her read marker (polled, not hammered).
    for (let unread = -1; unread !== 0; await new Promise((resolve) => setTimeout(resolve, 50))) {
      const chats = await api(server, 'GET', '/chats/', aliceToken);
      unread = chats.body.chats.find((c) => c.name === 'global')?.unread;
    }

    // Opened again, with nothing unread: at the bottom.
    await alice.reload();
    await openChat(alice, 'global');
    await waitForMessage(alice, 'tall 240');
    // At the very bottom once drawn, the newest message wholly in view.
    await alice.waitForFunction(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => {
      const list = document.querySelector('[data-testid=messages]');
      resolve(list.scrollHeight - list.scrollTop - list.clientHeight < 2);
    }))));
    const last = await alice.evaluate(() => {
      const list = document.querySelector('[data-testid=messages]');
      const msgs = [...list.querySelectorAll('[data-testid=message]')];
      const r = msgs.at(-1).getBoundingClientRect();
      const box = list.getBoundingClientRect();
      return r.top >= box.top && r.bottom <= box.bottom;
    });
    assert.equal(last, true, 'the newest message is not wholly in view');

    // Up through every page, 150px at a time: a message in view moves by
    // exactly the distance scrolled, also when an older page lands above
    // (and the message that was the oldest loses its author line).
    for (let step = 0; step < 400; step++) {
      const r = await alice.evaluate(() => new Promise((resolve) => {
        const list = document.querySelector('[data-testid=messages]');
        const box = list.getBoundingClientRect();
        const el = [...list.querySelectorAll('[data-testid=message]')].findLast((m) => m.getBoundingClientRect().bottom <= box.bottom);
        const before = el.getBoundingClientRect().top;
        const delta = Math.min(150, list.scrollTop);
        list.scrollTop -= delta;
        const frames = (n, then) => (n ? requestAnimationFrame(() => frames(n - 1, then)) : then());
        frames(4, () => resolve({
          moved: el.getBoundingClientRect().top - before, delta, text: el.querySelector('[data-testid=message-text]').textContent.split('paragraph')[0],
          atStart: !!list.querySelector('.history-start') && list.scrollTop === 0,
        }));
      }));
      assert.ok(Math.abs(r.moved - r.delta) <= 1, `"${r.text}" moved ${r.moved}px for a scroll of ${r.delta}px`);
      if (r.atStart) break;
    }
    assert.equal(await inView(alice, 'tall 0'), true, 'the top of the history was not reached');
    noProblems(alice);
  });
});
