// Browser test of bidirectional controls in user text: an override
// (U+202E turns "gpj.exe" into "exe.jpg") stays inside the message, title
// or sentence part that holds it, and reorders nothing around it, in the
// left-to-right and the right-to-left layout. Run with `make test-web`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  launchBrowser, openUser, register, openChat, api, apiUser, sendFrames, withServer, noProblems, switchLanguage, evalOn, evalOnAll,
} from './lib.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

const rlo = '\u202E';

// leaks lists the text with a bidi control in the regions named by the
// selectors that could reorder what follows it: text whose element is an
// inline box that is not isolated (unicode-bidi isolate, isolate-override
// or plaintext; <bdi> and dir="auto" are). A block ends every embedding
// and override. found counts the text nodes with a bidi control.
function leaks(page, selectors) {
  return page.evaluate((list) => {
    const controls = /[\u202A-\u202E\u2066-\u2069]/;
    const out = { found: 0, leaking: [] };
    for (const sel of list) {
      for (const root of document.querySelectorAll(sel)) {
        const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
        for (let n = walker.nextNode(); n; n = walker.nextNode()) {
          if (!controls.test(n.data)) continue;
          out.found++;
          const style = getComputedStyle(n.parentElement);
          if (style.display === 'inline' && !/isolate|plaintext/.test(style.unicodeBidi)) {
            out.leaking.push(`${sel}: <${n.parentElement.tagName.toLowerCase()}> ${JSON.stringify(n.data)} (unicode-bidi: ${style.unicodeBidi})`);
          }
        }
      }
    }
    return out;
  }, selectors);
}

// isolation is the computed unicode-bidi of every element matched.
function isolation(page, selector) {
  return evalOnAll(page, selector, (els) => els.map((el) => getComputedStyle(el).unicodeBidi));
}

// boxes finds each needle in the text of the element matched by selector
// and returns where it is drawn: {needle: {left, right}}.
function boxes(page, selector, needles) {
  return evalOn(page, selector, (el, list) => {
    const out = {};
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      for (const needle of list) {
        const i = n.data.indexOf(needle);
        if (i < 0 || out[needle]) continue;
        const range = document.createRange();
        range.setStart(n, i);
        range.setEnd(n, i + needle.length);
        const b = range.getBoundingClientRect();
        out[needle] = { left: b.left, right: b.right };
      }
    }
    return out;
  }, needles);
}

// timeSide says on which side of a message's text its time is drawn.
function timeSide(page, id) {
  return evalOn(page, `[data-testid=message][data-id="${id}"]`, (msg) => {
    const text = msg.querySelector('[data-testid=message-text]').getBoundingClientRect();
    const time = msg.querySelector('time').getBoundingClientRect();
    if (time.left >= text.right - 1) return 'right';
    if (time.right <= text.left + 1) return 'left';
    return 'overlapping';
  });
}

test('bidi overrides in messages and sentences stay inside their element', async () => {
  // Files over 10 KB are refused in the browser, with a sentence that
  // names the file.
  await withServer({ UPLOAD_MAX_FILE_MB: '0.01' }, async (server) => {
    const alice = await openUser(browser, server);
    await register(alice, 'alice');
    // The server refuses an override in a group title (usernames are a-z,
    // digits, '_', '.' and '-' only); a title may still start with an
    // invisible mark.
    const token = await apiUser(server, 'mallory');
    const refused = await api(server, 'POST', '/chats/', token, { e2ee: false, kind: 'group', title: `${rlo}gpj.exe`, members: ['alice'] });
    assert.equal(refused.status, 400);
    assert.equal(refused.body.code, 'invalid');
    const group = await api(server, 'POST', '/chats/', token, { e2ee: false, kind: 'group', title: '\u200EGroup', members: ['alice'] });
    assert.equal(group.status, 201);
    const name = group.body.name;
    await sendFrames(alice, token, [
      { type: 'text', chat_name: name, text: 'plain.txt', client_id: 'bidi-1' },
      { type: 'text', chat_name: name, text: `${rlo}gpj.exe`, client_id: 'bidi-2' },
      { type: 'text', chat_name: name, text: `see **${rlo}gpj.exe** now`, client_id: 'bidi-3' },
    ]);
    await openChat(alice, name);
    await alice.waitForFunction(() => document.querySelectorAll('[data-testid=message][data-id]').length === 3);
    const ids = await alice.$$eval('[data-testid=message][data-id]', (els) => els.map((el) => el.dataset.id));

    const regions = ['[data-testid=messages]', '[data-testid=chat-list]', '[data-testid=chat-header]'];
    const check = async (layout) => {
      const found = await leaks(alice, regions);
      assert.deepEqual(found.leaking, [], `${layout}: text with a bidi control that can reorder what follows it`);
      assert.ok(found.found >= 2, `${layout}: only ${found.found} text nodes with a bidi control were found`);
      // Every element that holds user text in the list, the sidebar and
      // the header is isolated.
      for (const sel of ['[data-testid=message-text]', '[data-testid=message-author]', '[data-testid=chat-title]', '[data-testid=chat-header] h2']) {
        const values = await isolation(alice, sel);
        assert.ok(values.length > 0, `${layout}: no ${sel}`);
        for (const v of values) assert.match(v, /^(isolate|isolate-override|plaintext)$/, `${layout}: ${sel} has unicode-bidi ${v}`);
      }
      // The text after bold text with an override stays after it.
      const b = await boxes(alice, `[data-testid=message][data-id="${ids[2]}"] [data-testid=message-text]`, ['gpj', 'now']);
      assert.ok(b.now.left >= b.gpj.right - 1, `${layout}: "now" is drawn before the bold text: ${JSON.stringify(b)}`);
      // The time sits beside a message with an override as beside a plain one.
      const plainSide = await timeSide(alice, ids[0]);
      assert.equal(await timeSide(alice, ids[1]), plainSide, `${layout}: the time moved`);
      return plainSide;
    };
    assert.equal(await check('left-to-right'), 'right');

    // The group's avatar shows a letter, not the invisible mark.
    for (const sel of [`[data-testid=chat-item][data-chat-name="${name}"] .avatar`, '[data-testid=chat-header] .avatar']) {
      assert.equal(await alice.$eval(sel, (el) => el.textContent), 'G', `the avatar of ${sel}`);
    }

    await switchLanguage(alice, 'fa');
    await alice.waitForFunction(() => document.documentElement.dir === 'rtl');
    await alice.waitForSelector('[data-testid=leave-chat]:has-text("ترک")');
    assert.equal(await check('right-to-left'), 'left');
    await switchLanguage(alice, 'en');
    await alice.waitForFunction(() => document.documentElement.dir === 'ltr');
    await alice.waitForSelector('[data-testid=leave-chat]:has-text("Leave")');

    // A sentence with user text in it ("“…” was not sent: …") keeps what
    // follows after that text.
    await alice.setInputFiles('[data-testid=file-input]', { name: `${rlo}gpj.exe`, mimeType: 'application/octet-stream', buffer: Buffer.alloc(20000, 1) });
    await alice.waitForSelector('[data-testid=toast]:has-text("gpj.exe")');
    const b = await boxes(alice, '[data-testid=toast]', ['gpj.exe', '” was']);
    assert.ok(b['” was'].left >= b['gpj.exe'].right - 1, `the rest of the sentence is drawn before the name: ${JSON.stringify(b)}`);
    noProblems(alice);
  });
});
