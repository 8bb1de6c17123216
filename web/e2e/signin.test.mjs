// Browser tests of a sign-in that lasts: the refresh cookie keeps a reload,
// a new tab and a browser restart signed in, with no bearer token where
// page script could keep it; logout, a replayed cookie, ending sessions
// and a new password end it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { launchBrowser, openUser, register, login, restoreKeys, withServer, noProblems, screenshot, send, waitForMessage } from './lib.mjs';

const password = 'staple-Horse-battery-42';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

// signedIn waits for the app (not the sign-in or key screen).
async function signedIn(page) {
  await page.waitForSelector('[data-testid=app]', { timeout: 30_000 });
  await page.waitForSelector('[data-testid=connection-banner]', { state: 'hidden' });
  assert.equal(await page.locator('[data-testid=key-setup]').count(), 0, 'the key screen showed');
}

// signedOut waits for the sign-in screen.
function signedOut(page) {
  return page.waitForSelector('[data-testid=auth-form]', { timeout: 30_000 });
}

// refreshCookie is the browser's refresh cookie, as the browser keeps it.
async function refreshCookie(context) {
  return (await context.cookies()).find((c) => c.name === 'mapsim_refresh');
}

// noBearerInReach fails unless page script can find no token: nothing in
// web storage looks like one, and the cookie is HttpOnly.
async function noBearerInReach(page) {
  const found = await page.evaluate(() => {
    const values = [];
    for (const s of [localStorage, sessionStorage]) {
      for (let i = 0; i < s.length; i++) values.push(s.getItem(s.key(i)) || '');
    }
    return { storage: values.filter((v) => /eyJ[\w-]+\.[\w-]+\./.test(v)).length, cookie: document.cookie };
  });
  assert.equal(found.storage, 0, 'a token is in web storage');
  assert.ok(!found.cookie.includes('mapsim_refresh'), 'page script can read the refresh cookie');
}

// watch collects a page's console and page errors, as openUser does.
function watch(page) {
  page.problems = [];
  page.on('console', (msg) => { if (msg.type() === 'error') page.problems.push(`console.error: ${msg.text()}`); });
  page.on('pageerror', (err) => page.problems.push(`page error: ${err.message}`));
  return page;
}

// openSection opens Settings at one of its sections.
async function openSection(page, id) {
  await page.click('[data-testid=open-settings]');
  await page.click(`[data-testid=settings-tab-${id}]`);
  await page.waitForSelector(`[data-testid=${id}-panel]`);
}

// confirm presses the danger button of the confirmation dialog.
async function confirm(page) {
  await page.click('dialog.dialog-small .btn-danger');
}

test('signin: a reload, a new tab and a browser restart stay signed in; logout ends it everywhere', async () => {
  await withServer({}, async (server) => {
    const profile = mkdtempSync(join(tmpdir(), 'mapsim-e2e-profile-'));
    const launch = () => chromium.launchPersistentContext(profile, {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium', viewport: { width: 1280, height: 800 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'],
    });
    try {
      let context = await launch();
      let page = watch(context.pages()[0] || await context.newPage());
      await page.goto(server.url + '/');
      await register(page, 'alice');
      const cookie = await refreshCookie(context);
      assert.ok(cookie?.httpOnly && cookie.secure && cookie.sameSite === 'Strict' && cookie.path === '/session/refresh', JSON.stringify(cookie));
      assert.ok(cookie.expires > Date.now() / 1000 + 29 * 24 * 3600, 'the cookie outlives the browser');
      await noBearerInReach(page);

      await page.reload();
      await signedIn(page);
      await send(page, 'after a reload');
      await waitForMessage(page, 'after a reload');

      const tab = watch(await context.newPage());
      await tab.goto(server.url + '/');
      await signedIn(tab);
      await waitForMessage(tab, 'after a reload');
      await noBearerInReach(tab);
      noProblems(page, tab);

      // A restart: the same profile, a new browser process. The keys are
      // in IndexedDB, so no recovery passphrase is asked for.
      await context.close();
      context = await launch();
      page = watch(context.pages()[0] || await context.newPage());
      await page.goto(server.url + '/');
      await signedIn(page);
      await waitForMessage(page, 'after a reload');
      const other = watch(await context.newPage());
      await other.goto(server.url + '/');
      await signedIn(other);

      // Logout ends the browser's session: this tab and the other one.
      await page.click('[data-testid=logout]');
      await signedOut(page);
      await signedOut(other);
      assert.equal(await refreshCookie(context), undefined, 'logout left the cookie');
      await page.reload();
      await signedOut(page);
      noProblems(page);
      await context.close();
    } finally {
      rmSync(profile, { recursive: true, force: true });
    }
  });
});

test('signin: a replayed refresh cookie ends the sign-in; tabs refreshing at once do not', async () => {
  await withServer({}, async (server) => {
    const page = await openUser(browser, server);
    const context = page.context();
    await register(page, 'alice');
    const first = (await refreshCookie(context)).value;

    // Four tabs load at once: each trades the cookie for its own token,
    // taking turns, and none of it counts as a replay.
    const tabs = [page];
    for (let i = 0; i < 3; i++) {
      const tab = watch(await context.newPage());
      tabs.push(tab);
    }
    await Promise.all(tabs.map((tab, i) => (i === 0 ? tab.reload() : tab.goto(server.url + '/'))));
    await Promise.all(tabs.map((tab) => signedIn(tab)));
    // And all of them renew their tokens at the same moment, three times
    // over (as their timers or a wake from sleep would have them do).
    for (let round = 0; round < 3; round++) {
      const renewed = await Promise.all(tabs.map((tab) => tab.evaluate(async () => (await import('/static/session.js')).refreshSession())));
      assert.deepEqual(renewed, [true, true, true, true], `round ${round}`);
    }
    assert.ok(!server.logs.includes('refresh token replayed'), 'tabs refreshing together tripped the replay detection');
    assert.notEqual((await refreshCookie(context)).value, first);
    await send(tabs[3], 'from the fourth tab');
    await waitForMessage(page, 'from the fourth tab');
    noProblems(...tabs);

    // Someone who copied the first cookie uses it now: the whole family
    // ends, here too.
    const stolen = await fetch(server.url + '/session/refresh', {
      method: 'POST', headers: { Origin: server.url, Cookie: `mapsim_refresh=${first}` },
    });
    assert.equal(stolen.status, 401);
    assert.match((await stolen.json()).detail, /somewhere else/);
    await Promise.all(tabs.map((tab) => signedOut(tab)));
    await page.reload();
    await signedOut(page);
  });
});

test('signin: settings list my sessions; ending one or all others signs them out at once', async () => {
  await withServer({}, async (server) => {
    const here = await openUser(browser, server);
    const passphrase = await register(here, 'alice');
    const phones = [];
    for (let i = 0; i < 2; i++) {
      const phone = await openUser(browser, server, { viewport: { width: 390, height: 800 } });
      await login(phone, 'alice');
      await restoreKeys(phone, passphrase);
      await signedIn(phone);
      phones.push(phone);
    }
    await openSection(here, 'sessions');
    await here.waitForFunction(() => document.querySelectorAll('[data-testid=session-row]').length === 3);
    const rows = await here.$$eval('[data-testid=session-row]', (els) => els.map((el) => ({
      current: el.dataset.current, id: el.dataset.sessionId, name: el.querySelector('.device-name').textContent,
    })));
    assert.equal(rows.filter((r) => r.current === 'true').length, 1);
    // (The names are isolated with Unicode bidi marks, for right-to-left.)
    assert.ok(rows.every((r) => /^Chrom(e|ium) on Linux$/.test(r.name.replace(/[\u2066-\u2069]/g, ''))), JSON.stringify(rows));
    await here.waitForSelector('[data-testid=session-row][data-current=true] [data-testid=this-session]');
    assert.equal(await here.locator('[data-testid=session-row][data-current=true] [data-testid=end-session]').count(), 0);
    await screenshot(here, 'settings-sessions');

    // End one: the last one signed in (listed first among the others).
    const victim = rows.find((r) => r.current === 'false').id;
    await here.click(`[data-testid=session-row][data-session-id="${victim}"] [data-testid=end-session]`);
    await confirm(here);
    await here.waitForFunction(() => document.querySelectorAll('[data-testid=session-row]').length === 2);
    await signedOut(phones[1]);
    // End all others.
    await here.click('[data-testid=end-other-sessions]');
    await confirm(here);
    await here.waitForSelector('[data-testid=sessions-status]:not([hidden])');
    await here.waitForFunction(() => document.querySelectorAll('[data-testid=session-row]').length === 1);
    await signedOut(phones[0]);
    await phones[0].reload();
    await signedOut(phones[0]);
    // This one goes on.
    await here.keyboard.press('Escape');
    await send(here, 'still here');
    await waitForMessage(here, 'still here');
    noProblems(here);
  });
});

test('signin: change password in Persian on a phone; the other browser is signed out, this one stays', async () => {
  await withServer({}, async (server) => {
    const phone = await openUser(browser, server, { locale: 'fa-IR', viewport: { width: 390, height: 800 } });
    const passphrase = await register(phone, 'alice');
    assert.equal(await phone.evaluate(() => document.documentElement.dir), 'rtl');
    const desk = await openUser(browser, server);
    await login(desk, 'alice');
    await restoreKeys(desk, passphrase);
    await signedIn(desk);

    await openSection(phone, 'password');
    const error = () => phone.textContent('[data-testid=password-error]');
    await phone.fill('[data-testid=current-password]', 'not-my-Password-9');
    await phone.fill('[data-testid=new-password]', 'quiet-Lantern-river-58');
    await phone.fill('[data-testid=new-password-again]', 'quiet-Lantern-river-58');
    await phone.click('[data-testid=change-password]');
    await phone.waitForSelector('[data-testid=password-error]:not([hidden])');
    assert.ok((await error()).length > 0);
    await phone.fill('[data-testid=current-password]', password);
    await phone.fill('[data-testid=new-password-again]', 'something-Else-entirely-3');
    await phone.click('[data-testid=change-password]');
    assert.equal(await error(), 'دو گذرواژهٔ تازه یکسان نیستند.');
    // A new password checked as at registration: a common one is refused.
    const mismatch = await error();
    await phone.fill('[data-testid=new-password]', 'password');
    await phone.fill('[data-testid=new-password-again]', 'password');
    await phone.click('[data-testid=change-password]');
    await phone.waitForFunction((before) => {
      const text = document.querySelector('[data-testid=password-error]').textContent;
      return text && text !== before;
    }, mismatch);
    await phone.fill('[data-testid=new-password]', 'quiet-Lantern-river-58');
    await phone.fill('[data-testid=new-password-again]', 'quiet-Lantern-river-58');
    await phone.click('[data-testid=change-password]');
    await phone.waitForSelector('[data-testid=password-done]:not([hidden])');
    await screenshot(phone, 'settings-password-fa');
    await signedOut(desk);

    // This browser stays signed in, across a reload too.
    await phone.keyboard.press('Escape');
    await phone.reload();
    await signedIn(phone);
    // The new password is the one that logs in.
    await login(desk, 'alice', password);
    await desk.waitForSelector('[data-testid=auth-error]:not(:empty)');
    await login(desk, 'alice', 'quiet-Lantern-river-58');
    await signedIn(desk);
    // The refusals above are the only failed loads (the wrong and the
    // common password): nothing else went wrong.
    assert.deepEqual(phone.problems.filter((p) => !/status of (403|400)/.test(p)), []);
  });
});
