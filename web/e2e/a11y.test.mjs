// Browser tests of accessibility: axe-core (pinned in package.json,
// injected from node_modules) finds no violation on any screen or dialog,
// light and dark, desktop and phone width; the message history is one tab
// stop with arrow keys inside it; a skip link leads past the sidebar.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { launchBrowser, register, setupKeys, login, restoreKeys, openChat, send, waitForMessage, withServer, noProblems } from './lib.mjs';

const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

const sizes = { desktop: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } };

// open starts a user's page. Injecting axe takes an inline script, which
// the app's Content-Security-Policy forbids, so these contexts bypass it.
async function open(server) {
  const context = await browser.newContext({ viewport: sizes.desktop, bypassCSP: true, reducedMotion: 'reduce' });
  const page = await context.newPage();
  page.problems = [];
  page.on('console', (msg) => { if (msg.type() === 'error') page.problems.push(`console.error: ${msg.text()}`); });
  page.on('pageerror', (err) => page.problems.push(`page error: ${err.message}`));
  await page.goto(server.url + '/');
  return page;
}

const frames = (page) => page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))));

// audit runs axe on what the page shows in both colour schemes at both
// widths, and returns every violation found, one line each.
async function audit(page, what) {
  const found = [];
  for (const scheme of ['light', 'dark']) {
    for (const [size, viewport] of Object.entries(sizes)) {
      await page.emulateMedia({ colorScheme: scheme });
      await page.setViewportSize(viewport);
      await frames(page);
      // Colours are final once every finite transition has run.
      await page.evaluate(() => Promise.all(document.getAnimations()
        .filter((a) => Number.isFinite(a.effect?.getComputedTiming().endTime))
        .map((a) => a.finished.catch(() => {}))));
      if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.addScriptTag({ path: axePath });
      // Transitions are off (reduced motion), so colours are final here.
      const { violations } = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
      for (const v of violations) {
        found.push(`${what}, ${scheme}, ${size}: ${v.id} (${v.impact}) ${v.help}: ${v.nodes.slice(0, 4).map((n) => `${n.target.join(' ')} ${n.any[0]?.message || ''}`.slice(0, 240)).join(' | ')}`);
      }
    }
  }
  await page.emulateMedia({ colorScheme: 'light' });
  await page.setViewportSize(sizes.desktop);
  await frames(page);
  return found;
}

// png makes a small image in the page, as a user's photo.
async function png(page) {
  const data = await page.evaluate(() => {
    const canvas = document.createElement('canvas');
    canvas.width = 200;
    canvas.height = 120;
    const g = canvas.getContext('2d');
    g.fillStyle = '#2a7';
    g.fillRect(0, 0, 200, 120);
    g.fillStyle = '#fd4';
    g.fillRect(40, 30, 60, 60);
    return canvas.toDataURL('image/png').split(',')[1];
  });
  return Buffer.from(data, 'base64');
}

test('axe finds no violations on any screen or dialog, light and dark, desktop and phone', { timeout: 600_000 }, async () => {
  await withServer({}, async (server) => {
    const found = [];
    const bob = await open(server);
    await register(bob, 'bob');

    const page = await open(server);
    await page.waitForSelector('[data-testid=auth-form]');
    found.push(...await audit(page, 'sign-in'));

    await page.click('[data-testid=mode-register]');
    found.push(...await audit(page, 'sign-in, create account'));
    await page.fill('[data-testid=auth-form] input[name=username]', 'alice');
    await page.fill('[data-testid=auth-form] input[name=password]', 'staple-Horse-battery-42');
    await page.click('[data-testid=register]');
    await page.waitForSelector('[data-testid=key-setup][data-mode=setup]', { timeout: 30_000 });
    found.push(...await audit(page, 'key setup'));
    const passphrase = await setupKeys(page);
    await page.waitForSelector('[data-testid=app]');
    await page.waitForSelector('[data-testid=connection-banner]', { state: 'hidden' });
    found.push(...await audit(page, 'chat list, no chat open'));

    // New chat: a direct chat with bob.
    await page.click('[data-testid=new-direct]');
    await page.waitForSelector('[data-testid=chat-dialog]');
    await page.fill('[data-testid=user-search]', 'bo');
    await page.waitForSelector('[data-testid=user-result][data-username=bob]');
    found.push(...await audit(page, 'new chat dialog'));
    await page.click('[data-testid=user-result][data-username=bob]');
    await page.waitForSelector('[data-testid=chat-dialog]', { state: 'detached' });
    await page.waitForSelector('[data-testid=composer]');
    await send(page, 'Hello **bob**, see `make test` and _this_');
    await waitForMessage(page, 'Hello bob, see make test and this');
    await send(page, '> a quote\n\n- one\n- two');
    await page.waitForSelector('[data-testid=message] blockquote');
    found.push(...await audit(page, 'direct chat'));

    // Safety number.
    await page.click('[data-testid=safety-number-open]');
    await page.waitForSelector('[data-testid=safety-dialog] [data-testid=safety-number]:not([aria-busy]) .safety-line');
    found.push(...await audit(page, 'safety number dialog'));
    await page.keyboard.press('Escape');
    await page.waitForSelector('[data-testid=safety-dialog]', { state: 'detached' });

    // New group, then its details.
    await page.click('[data-testid=new-group]');
    await page.waitForSelector('[data-testid=chat-dialog]');
    await page.fill('[data-testid=group-title]', 'Team');
    await page.fill('[data-testid=user-search]', 'bo');
    await page.click('[data-testid=user-result][data-username=bob]');
    found.push(...await audit(page, 'new group dialog'));
    await page.click('[data-testid=create-chat]');
    await page.waitForSelector('[data-testid=chat-dialog]', { state: 'detached' });
    await send(page, 'Welcome to the team');
    await waitForMessage(page, 'Welcome to the team');
    await page.getByRole('button', { name: 'Group details' }).click();
    await page.waitForSelector('dialog[open] [data-testid=member-safety-number]');
    found.push(...await audit(page, 'group details dialog'));
    await page.keyboard.press('Escape');
    await page.waitForSelector('dialog[open]', { state: 'detached' });

    // An image, opened in the viewer.
    await page.setInputFiles('[data-testid=file-input]', { name: 'square.png', mimeType: 'image/png', buffer: await png(page) });
    await page.waitForFunction(() => {
      const img = document.querySelector('img[data-testid=file-thumb]');
      return img && img.complete && img.naturalWidth > 0;
    }, null, { timeout: 30_000 });
    found.push(...await audit(page, 'group chat with an image'));
    await page.click('.thumb-btn');
    await page.waitForSelector('dialog.dialog-image[open] img');
    found.push(...await audit(page, 'image viewer'));
    await page.keyboard.press('Escape');
    await page.waitForSelector('dialog[open]', { state: 'detached' });

    // Confirm: deleting a message.
    const mine = page.locator('[data-testid=message]', { hasText: 'Welcome to the team' });
    await mine.hover();
    await mine.getByRole('button', { name: 'Delete' }).click();
    await page.waitForSelector('dialog[open] .btn-danger');
    found.push(...await audit(page, 'confirm dialog'));
    await page.keyboard.press('Escape');
    await page.waitForSelector('dialog[open]', { state: 'detached' });

    // Settings, and its last section, my devices.
    await page.click('[data-testid=open-settings]');
    await page.waitForSelector('[data-testid=settings-dialog]');
    found.push(...await audit(page, 'settings dialog'));
    await page.keyboard.press('End');
    await page.waitForSelector('[data-testid=settings-dialog] [data-testid=device-row]');
    found.push(...await audit(page, 'settings: my devices'));
    await page.keyboard.press('Escape');
    await page.waitForSelector('[data-testid=settings-dialog]', { state: 'detached' });
    noProblems(page, bob);

    // A new browser: the key restore screen.
    const fresh = await open(server);
    await login(fresh, 'alice');
    await fresh.waitForSelector('[data-testid=key-setup][data-mode=restore]', { timeout: 30_000 });
    found.push(...await audit(fresh, 'key restore'));
    await restoreKeys(fresh, passphrase);
    await fresh.waitForSelector('[data-testid=app]');
    noProblems(fresh);

    assert.deepEqual(found, [], `axe violations:\n${found.join('\n')}`);
  });
});

test('the message history is one tab stop: arrows, Home and End move, Enter and Tab reach the actions, a skip link leads there', { timeout: 240_000 }, async () => {
  await withServer({}, async (server) => {
    const page = await open(server);
    await register(page, 'alice');
    await openChat(page, 'global');
    for (const text of ['first', 'second', 'third']) {
      await send(page, text);
      await waitForMessage(page, text);
    }
    const focused = () => page.evaluate(() => {
      const el = document.activeElement;
      const msg = el?.closest('[data-testid=message]');
      return {
        text: msg?.querySelector('[data-testid=message-text]')?.textContent || null,
        isMessage: el?.dataset.testid === 'message',
        label: el?.getAttribute('aria-label') || el?.dataset.testid || el?.tagName,
      };
    });
    // One tab stop in the whole history, on the newest message; only its
    // own controls follow it in the tab order.
    const stops = await page.evaluate(() => [...document.querySelectorAll('[data-testid=messages] *')]
      .filter((el) => el.tabIndex >= 0 && !el.closest('[hidden]'))
      .map((el) => `${el.closest('[data-testid=message]')?.querySelector('[data-testid=message-text]')?.textContent}:${el.dataset.testid || el.getAttribute('aria-label')}`));
    assert.deepEqual(stops, ['third:message', 'third:Reply', 'third:Edit', 'third:Delete']);

    // Every message names its author to a screen reader, and my own say
    // they were sent, though the author line shows only above a group's
    // first message (the hidden text must stay in the accessibility tree).
    await page.waitForSelector('[data-testid=message-status]', { state: 'detached' });
    const tree = await page.locator('[data-testid=messages]').ariaSnapshot();
    for (const text of ['first', 'second', 'third']) {
      assert.match(tree, new RegExp(`alice\\s*\\n\\s*- paragraph: ${text}\\n\\s*- time: [^\\n]+\\n\\s*- text: Sent`), tree);
    }

    // The skip link comes before everything else of the app (Shift+Tab
    // from the sidebar's first control), and leads to that message.
    assert.equal(await page.evaluate(() => document.querySelector('[data-testid=app]')
      .querySelector('a[href], button, input, textarea, select, [tabindex]')?.dataset.testid), 'skip-link');
    await page.focus('[data-testid=open-settings]');
    await page.keyboard.press('Shift+Tab');
    assert.equal((await focused()).label, 'skip-link');
    assert.ok(await page.locator('[data-testid=skip-link]').isVisible(), 'the focused skip link is visible');
    await page.keyboard.press('Enter');
    assert.deepEqual(await focused(), { text: 'third', isMessage: true, label: 'message' });

    await page.keyboard.press('ArrowUp');
    assert.equal((await focused()).text, 'second');
    await page.keyboard.press('ArrowUp');
    assert.equal((await focused()).text, 'first');
    await page.keyboard.press('End');
    assert.equal((await focused()).text, 'third');
    await page.keyboard.press('Home');
    const home = await focused();
    assert.ok(home.isMessage || home.label === 'system-message', `Home focused ${JSON.stringify(home)}`);
    await page.keyboard.press('End');
    await page.keyboard.press('ArrowUp');

    // Enter reaches the focused message's actions; Escape comes back.
    await page.keyboard.press('Enter');
    assert.deepEqual(await focused(), { text: 'second', isMessage: false, label: 'Reply' });
    await page.keyboard.press('Escape');
    assert.deepEqual(await focused(), { text: 'second', isMessage: true, label: 'message' });
    // Tab goes through that message's actions only, then out of the history.
    const order = [];
    for (let i = 0; i < 5; i++) {
      await page.keyboard.press('Tab');
      const f = await focused();
      order.push(f.text === null ? `out:${f.label}` : `${f.text}:${f.label}`);
    }
    assert.deepEqual(order.slice(0, 3), ['second:Reply', 'second:Edit', 'second:Delete']);
    assert.ok(order[3].startsWith('out:'), `after the actions: ${order[3]}`);

    // The stop stays on the message the reader chose when another arrives.
    for (let i = 0; i < 5; i++) await page.keyboard.press('Shift+Tab');
    assert.deepEqual(await focused(), { text: 'second', isMessage: true, label: 'message' });
    await page.evaluate(() => document.activeElement.blur());
    await send(page, 'fourth');
    await waitForMessage(page, 'fourth');
    const stop = await page.evaluate(() => [...document.querySelectorAll('[data-testid=messages] [tabindex="0"]')]
      .map((el) => el.querySelector('[data-testid=message-text]')?.textContent));
    assert.deepEqual(stop, ['second']);
    noProblems(page);
  });
});
