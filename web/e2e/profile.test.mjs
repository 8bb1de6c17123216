// Browser tests of names in every script and of the profile settings:
// a Persian username registered and chatted with; display name and
// picture set in Settings and seen live by the other side; theme and
// language; per-chat notification levels (mentions only, in an end-to-end
// encrypted chat) and desktop notifications on or off. English and
// Persian, desktop and phone width, light and dark.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, png, openUser, register, send, waitForMessage, withServer, noProblems, screenshot, switchLanguage } from './lib.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

// recordNotifications replaces the page's Notification with one that
// records what would be shown (permission granted) and lets the test hide
// the tab, so the client's decisions can be watched.
async function recordNotifications(page) {
  await page.addInitScript(() => {
    window.__shown = [];
    window.__hidden = false;
    class Recorder {
      static permission = 'granted';
      static requestPermission() { return Promise.resolve('granted'); }
      constructor(title, options) { window.__shown.push({ title, body: options?.body || '' }); }
      close() {}
    }
    window.Notification = Recorder;
    Object.defineProperty(document, 'visibilityState', { get: () => (window.__hidden ? 'hidden' : 'visible') });
  });
  await page.reload();
}

const dark = () => getComputedStyle(document.documentElement).getPropertyValue('--bg').trim() === '#0f1218';

test('a Persian username: registered, found by either yeh, chatted with; display name and picture reach the other side live', async () => {
  await withServer({}, async (server) => {
    // Maryam uses the Persian interface on a phone; Bob English on a desktop.
    const maryam = await openUser(browser, server, { locale: 'fa-IR', viewport: { width: 390, height: 844 } });
    const bob = await openUser(browser, server);
    await register(maryam, 'مریم');
    assert.equal(await maryam.textContent('[data-testid=me]'), 'مریم');
    // A name that mixes scripts is refused with the server's sentence.
    const mallory = await openUser(browser, server);
    await mallory.click('[data-testid=mode-register]');
    await mallory.fill('[data-testid=auth-form] input[name=username]', 'p\u0430ypal');
    await mallory.fill('[data-testid=auth-form] input[name=password]', 'staple-Horse-battery-42');
    await mallory.click('[data-testid=register]');
    await mallory.waitForSelector('[data-testid=auth-form] [role=alert]:not([hidden])');
    await mallory.context().close();
    await register(bob, 'bob');

    // Bob finds her typing the Arabic yeh (مري), and writes to her.
    await bob.click('[data-testid=new-direct]');
    await bob.fill('[data-testid=user-search]', 'مري');
    await bob.click('[data-testid=user-result][data-username="مریم"]');
    await bob.waitForSelector('[data-testid=chat-dialog]', { state: 'detached' });
    await bob.waitForSelector('[data-testid=chat-header] .head-title:text("مریم")');
    await send(bob, 'سلام مریم');
    await waitForMessage(bob, 'سلام مریم');

    const direct = await bob.$eval('[data-testid=chat-item][aria-current=true]', (el) => el.dataset.chatName);
    await maryam.click(`[data-testid=chat-item][data-chat-name="${direct}"]`);
    await waitForMessage(maryam, 'سلام مریم');
    await send(maryam, 'hello bob');
    await waitForMessage(bob, 'hello bob');
    // Her name runs right to left wherever it shows.
    const author = bob.locator('[data-testid=message]:has-text("hello bob") [data-testid=message-author]');
    assert.equal(await author.getAttribute('dir'), 'auto');
    assert.equal(await author.evaluate((el) => getComputedStyle(el).direction), 'rtl');

    // Settings → Profile: a display name, then a picture cropped square.
    // (On a phone the open chat covers the sidebar: back to the list first.)
    await maryam.click('[data-testid=chat-header] .back-btn');
    await maryam.click('[data-testid=open-settings]');
    await maryam.waitForSelector('[data-testid=profile-section]');
    await maryam.fill('[data-testid=display-name]', '  مریم رضایی  ');
    await maryam.click('[data-testid=display-name-save]');
    await maryam.waitForSelector('[data-testid=display-name-form] [role=status]:text("ذخیره شد.")');
    // Bob sees it at once, in the header, the list and her message, and
    // her username stays beside it in the search.
    await bob.waitForSelector('[data-testid=chat-header] .head-title:text("مریم رضایی")');
    await bob.waitForSelector('[data-testid=message]:has-text("hello bob") [data-testid=message-author]:text("مریم رضایی")');
    await bob.waitForSelector(`[data-testid=chat-item][data-chat-name="${direct}"]:has-text("مریم رضایی")`);
    await maryam.setInputFiles('[data-testid=avatar-file]', { name: 'me.png', mimeType: 'image/png', buffer: png(300, 200, 'halves') });
    await maryam.waitForSelector('[data-testid=avatar-crop]');
    await maryam.fill('[data-testid=avatar-zoom]', '2');
    await maryam.focus('[data-testid=avatar-crop]');
    await maryam.keyboard.press('ArrowLeft');
    await screenshot(maryam, 'profile-crop-fa-390');
    await maryam.click('[data-testid=avatar-use]');
    await maryam.waitForSelector('[data-testid=avatar-preview] img.avatar-img');
    await maryam.waitForSelector('[data-testid=avatar-remove]:not([hidden])');
    // Bob's page shows her picture instead of her initial.
    await bob.waitForSelector('[data-testid=chat-header] .avatar img.avatar-img');
    const served = await bob.evaluate(async () => {
      const img = document.querySelector('[data-testid=chat-header] .avatar img');
      await img.decode();
      return [img.naturalWidth, img.naturalHeight];
    });
    assert.deepEqual(served, [256, 256]);
    await screenshot(bob, 'profile-live-en-1280');

    // A display name of 65 characters is refused before it is sent.
    await maryam.fill('[data-testid=display-name]', 'ب'.repeat(65));
    await maryam.click('[data-testid=display-name-save]');
    await maryam.waitForSelector('[data-testid=display-name-form] [role=status]:text("۶۴")');

    // Removing the picture brings the letter back on both sides.
    await maryam.click('[data-testid=avatar-remove]');
    await maryam.waitForSelector('[data-testid=avatar-preview] .avatar:not(.has-img)');
    await bob.waitForFunction(() => !document.querySelector('[data-testid=chat-header] .avatar img'));
    await bob.reload();
    await bob.waitForSelector('[data-testid=app]');
    await bob.click(`[data-testid=chat-item][data-chat-name="${direct}"]`);
    await bob.waitForSelector('[data-testid=chat-header] .head-title:text("مریم رضایی")');
    noProblems(maryam, bob);
  });
});

test('settings: theme and language are remembered; the sidebar has no language picker or notification button', async () => {
  await withServer({}, async (server) => {
    const page = await openUser(browser, server);
    await register(page, 'Наташа');
    assert.equal(await page.$('[data-testid=app] .side-foot [data-testid=lang]'), null);
    assert.equal(await page.$('.notify-btn'), null);
    const systemDark = await page.evaluate(dark);
    await page.click('[data-testid=open-settings]');
    await page.click('[data-testid=settings-tab-appearance]');
    await page.check('[data-testid=theme-dark]');
    assert.ok(await page.evaluate(dark), 'dark theme applies at once');
    await screenshot(page, 'settings-appearance-dark-en');
    await page.selectOption('[data-testid=settings-dialog] [data-testid=lang]', 'fa');
    await page.waitForSelector('html[lang=fa][dir=rtl] [data-testid=settings-dialog] [data-testid=appearance-section]');
    assert.ok(await page.isChecked('[data-testid=theme-dark]'));
    await screenshot(page, 'settings-appearance-dark-fa');
    await page.keyboard.press('Escape');
    await page.reload();
    await page.waitForSelector('html[lang=fa] [data-testid=app]');
    assert.ok(await page.evaluate(dark), 'dark theme remembered');
    await page.setViewportSize({ width: 390, height: 844 });
    await page.click('[data-testid=open-settings]');
    await page.click('[data-testid=settings-tab-appearance]');
    await page.check('[data-testid=theme-light]');
    assert.ok(!(await page.evaluate(dark)), 'light theme applies');
    await screenshot(page, 'settings-appearance-light-fa-390');
    await page.check('[data-testid=theme-system]');
    assert.equal(await page.evaluate(dark), systemDark);
    await page.keyboard.press('Escape');
    await switchLanguage(page, 'en');
    noProblems(page);
  });
});

test('notifications: mentions only in an end-to-end encrypted chat, muted, and desktop notifications off', async () => {
  await withServer({}, async (server) => {
    const alice = await openUser(browser, server);
    const bob = await openUser(browser, server, { locale: 'fa-IR' });
    await register(alice, 'alice');
    await register(bob, 'بابک');
    await recordNotifications(alice);
    await alice.waitForSelector('[data-testid=app]');

    await bob.click('[data-testid=new-direct]');
    await bob.fill('[data-testid=user-search]', 'ali');
    await bob.click('[data-testid=user-result][data-username="alice"]');
    await bob.waitForSelector('[data-testid=chat-dialog]', { state: 'detached' });
    const direct = await bob.$eval('[data-testid=chat-item][aria-current=true]', (el) => el.dataset.chatName);
    await alice.waitForSelector(`[data-testid=chat-item][data-chat-name="${direct}"]`);
    await alice.click(`[data-testid=chat-item][data-chat-name="${direct}"]`);
    assert.equal(await alice.getAttribute('[data-testid=chat-header] [data-testid=e2ee-state]', 'data-e2ee'), 'on');

    // From the chat's header: mentions only. It is kept on the server,
    // so a reload (which reads the chats again) shows it.
    await alice.selectOption('[data-testid=chat-header] [data-testid=notify-level]', 'mentions');
    await alice.waitForFunction(() => !document.querySelector('[data-testid=chat-header] [data-testid=notify-level]').disabled);
    await alice.reload();
    await alice.waitForSelector('[data-testid=app]');
    await alice.click(`[data-testid=chat-item][data-chat-name="${direct}"]`);
    await alice.waitForFunction(() => document.querySelector('[data-testid=chat-header] [data-testid=notify-level]')?.value === 'mentions');
    await alice.click('[data-testid=chat-item][data-chat-name=global]');
    await alice.evaluate(() => { window.__hidden = true; });

    let sent = 0;
    const sendTo = async (text) => {
      await send(bob, text);
      await waitForMessage(bob, text);
      sent += 1;
      await alice.waitForSelector(`[data-testid=chat-item][data-chat-name="${direct}"] [data-testid=unread]:text-is("${sent}")`);
    };
    await sendTo('no mention here');
    await sendTo('hey @ALICE, look');
    await alice.waitForFunction(() => window.__shown.length >= 1);
    const shown = await alice.evaluate(() => window.__shown.map((n) => n.body));
    assert.equal(shown.length, 1, `notified for ${JSON.stringify(shown)}`);
    assert.match(shown[0], /@ALICE, look/);
    await sendTo('email alice@example.com is no mention');
    assert.equal(await alice.evaluate(() => window.__shown.length), 1);

    // Muted: nothing. Then all again, but desktop notifications off in Settings.
    await alice.evaluate(() => { window.__hidden = false; });
    await alice.click('[data-testid=open-settings]');
    await alice.click('[data-testid=settings-tab-notifications]');
    await alice.selectOption(`[data-testid=notifications-section] [data-testid=notify-level][data-chat="${direct}"]`, 'muted');
    await alice.waitForFunction((name) => document.querySelector(`[data-testid=notify-level][data-chat="${name}"]`).value === 'muted', direct);
    await screenshot(alice, 'settings-notifications-en');
    await alice.keyboard.press('Escape');
    await alice.evaluate(() => { window.__hidden = true; });
    await sendTo('muted now @alice');
    await alice.evaluate(() => { window.__hidden = false; });
    await alice.click('[data-testid=open-settings]');
    await alice.click('[data-testid=settings-tab-notifications]');
    await alice.selectOption(`[data-testid=notifications-section] [data-testid=notify-level][data-chat="${direct}"]`, 'all');
    await alice.uncheck('[data-testid=desktop-notifications]');
    await alice.keyboard.press('Escape');
    await alice.evaluate(() => { window.__hidden = true; });
    await sendTo('desktop notifications are off');
    assert.equal(await alice.evaluate(() => window.__shown.length), 1);

    noProblems(alice, bob);
  });
});
