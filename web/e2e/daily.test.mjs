// Browser tests of the web client in daily use (issue 19): the bugs three
// new users met on desktop and phone, in English and Persian, and reading
// (the unread divider, drafts kept per chat, last-message previews).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  launchBrowser, openUser, register, openChat, send, waitForMessage,
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
    await alice.click('[data-testid=connection-banner] button');
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
