// Browser tests of the Settings dialog: its tabs (the ARIA tabs pattern)
// and the sections gathered in it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, openUser, register, withServer, noProblems, screenshot } from './lib.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

test('settings: the gear opens the dialog, arrow keys move between tabs, Escape gives focus back', async () => {
  await withServer({}, async (server) => {
    const page = await openUser(browser, server);
    await register(page, 'alice');
    await page.click('[data-testid=open-settings]');
    await page.waitForSelector('[data-testid=settings-dialog]');
    const selected = () => page.evaluate(() => ({
      tab: document.querySelector('[role=tab][aria-selected=true]')?.dataset.testid,
      focused: document.activeElement?.dataset.testid,
      panel: document.querySelector('.settings-panel')?.dataset.section,
      tabs: [...document.querySelectorAll('[role=tab]')].map((b) => b.dataset.testid),
    }));
    const first = await selected();
    assert.ok(first.tabs.length >= 1);
    assert.equal(first.tab, first.tabs[0]);
    assert.equal(first.focused, first.tabs[0]);
    // End goes to the last tab (my devices), which lists this browser.
    await page.keyboard.press('End');
    const last = await selected();
    assert.equal(last.tab, 'settings-tab-devices');
    assert.equal(last.panel, 'devices');
    await page.waitForSelector('[data-testid=settings-dialog] [data-testid=device-row]');
    // ArrowDown from the last wraps to the first.
    await page.keyboard.press('ArrowDown');
    assert.equal((await selected()).tab, first.tabs[0]);
    await screenshot(page, 'settings');
    await page.keyboard.press('Escape');
    await page.waitForSelector('[data-testid=settings-dialog]', { state: 'detached' });
    assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'open-settings');
    noProblems(page);
  });
});
