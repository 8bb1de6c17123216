// Browser tests of what the admin commands change for people in the web
// client: a deleted account.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  launchBrowser, openUser, register, openChat, send, waitForMessage, apiUser, api, withServer, noProblems, screenshot,
} from './lib.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

test('a deleted account: its open page is signed out, its messages stay and read "deleted user"', async () => {
  await withServer({}, async (server) => {
    const alice = await openUser(browser, server);
    const bob = await openUser(browser, server);
    await register(alice, 'alice');
    await register(bob, 'bob');
    await openChat(alice, 'global');
    await openChat(bob, 'global');
    await send(alice, 'written before I left');
    await waitForMessage(bob, 'written before I left');
    const author = () => bob.evaluate(() => {
      const msg = [...document.querySelectorAll('[data-testid=message]')]
        .find((el) => el.querySelector('[data-testid=message-text]')?.textContent.trim() === 'written before I left');
      const a = msg.querySelector('[data-testid=message-author]');
      return { text: a.textContent, deleted: a.classList.contains('is-deleted-user') };
    });
    assert.deepEqual(await author(), { text: 'alice', deleted: false });

    const out = server.admin('delete-user', '-username', 'alice');
    assert.match(out, /alice is deleted/);

    // Alice's page loses its session: back to the sign-in form.
    await alice.waitForSelector('[data-testid=auth-form]', { timeout: 15_000 });
    // Bob, on his next load, reads the message under "deleted user".
    await bob.reload();
    await openChat(bob, 'global');
    await waitForMessage(bob, 'written before I left');
    assert.deepEqual(await author(), { text: 'deleted user', deleted: true });
    await screenshot(bob, 'deleted-user');

    // The name cannot be taken over.
    const taken = await api(server, 'POST', '/register/', '', { username: 'alice', password: 'staple-Horse-battery-42' });
    assert.equal(taken.status, 409);
    const token = await apiUser(server, 'carol');
    const page = await api(server, 'GET', '/messages/?chat_id=global', token);
    assert.deepEqual(page.body.messages.map((m) => m.username), ['deleted user']);
    noProblems(bob);
  });
});
