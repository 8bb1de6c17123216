// Browser tests of formatting: the composer's toolbar and shortcuts write
// the Markdown subset (web/static/formatting.js), messages show it as DOM
// nodes (markdown.js), and the colour palette keeps WCAG AA contrast on
// both kinds of bubble in the light and the dark theme; in English on a
// desktop and in Persian on a phone (right to left, the toolbar on demand).
// Run with `make test-web`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  launchBrowser, openUser, register, openChat, send, withServer, noProblems, screenshot, evalOn,
} from './lib.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

// typeSelected fills the composer with text and selects needle in it.
async function typeSelected(page, text, needle) {
  await page.fill('[data-testid=composer]', text);
  await page.$eval('[data-testid=composer]', (el, n) => {
    const at = el.value.indexOf(n);
    el.focus();
    el.setSelectionRange(at, at + n.length);
  }, needle);
}

function composer(page) {
  return page.$eval('[data-testid=composer]', (el) => ({
    value: el.value, selected: el.value.slice(el.selectionStart, el.selectionEnd), focused: document.activeElement === el,
  }));
}

function focused(page) {
  return page.evaluate(() => document.activeElement?.dataset.format || document.activeElement?.dataset.color || document.activeElement?.dataset.testid || '');
}

// contrasts measures, for every palette span in the messages, the
// contrast of its text with what is drawn behind it (its own background,
// else its bubble's), by the WCAG formula on computed colours.
function contrasts(page) {
  return page.evaluate(() => {
    const rgb = (css) => css.match(/[\d.]+/g).slice(0, 4).map(Number);
    const lum = ([r, g, b]) => {
      const f = (c) => { const s = c / 255; return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4; };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const out = [];
    for (const span of document.querySelectorAll('[data-testid=message-text] [class^="md-"]')) {
      if (!/^md-(color|highlight)-/.test(span.className)) continue;
      const own = span.closest('[data-testid=message]').classList.contains('own');
      let bg = rgb(getComputedStyle(span).backgroundColor);
      if (bg.length === 4 && bg[3] === 0) bg = rgb(getComputedStyle(span.closest('.bubble')).backgroundColor);
      const fg = rgb(getComputedStyle(span).color);
      const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
      out.push({ name: span.className, own, ratio: (a + 0.05) / (b + 0.05) });
    }
    return out;
  });
}

const everything = [
  '# Plan',
  '**bold** *italic* ++under++ ~~gone~~ `code` H~2~O x^2^',
  '{color:red}red{/color} {color:orange}orange{/color} {color:green}green{/color} {color:blue}blue{/color} {color:purple}purple{/color} {color:gray}gray{/color}',
  '{highlight:yellow}yellow{/highlight} {highlight:green}green{/highlight} {highlight:blue}blue{/highlight} {highlight:pink}pink{/highlight}',
  '[bad](javascript:alert(1)) {color:red" onmouseover="alert(1)}x{/color} <b>not bold</b>',
].join('\n');

test('formatting: shortcuts and the toolbar write Markdown; messages render it; the palette keeps AA contrast in both themes', async () => {
  await withServer({}, async (server) => {
    const alice = await openUser(browser, server);
    const bob = await openUser(browser, server);
    await register(alice, 'alice');
    await register(bob, 'bob');
    await openChat(alice, 'global');
    await openChat(bob, 'global');

    // The toolbar is shown on a desktop, as one tab stop.
    await alice.waitForSelector('[data-testid=format-bar][role=toolbar]', { state: 'visible' });
    assert.equal(await alice.$$eval('[data-testid=format-bar] button[tabindex="0"]', (b) => b.length), 1);

    // Ctrl+B wraps the selection and keeps it selected; again unwraps it;
    // Ctrl+Z undoes like typing.
    await typeSelected(alice, 'hello world', 'world');
    await alice.keyboard.press('Control+b');
    assert.deepEqual(await composer(alice), { value: 'hello **world**', selected: 'world', focused: true });
    await alice.keyboard.press('Control+b');
    assert.equal((await composer(alice)).value, 'hello world');
    await alice.keyboard.press('Control+z');
    assert.equal((await composer(alice)).value, 'hello **world**');
    // With nothing selected, the markers go around the caret.
    await alice.fill('[data-testid=composer]', 'a ');
    await alice.keyboard.press('Control+i');
    await alice.keyboard.type('b');
    assert.equal((await composer(alice)).value, 'a *b*');
    // Ctrl+U, Ctrl+E, Ctrl+K, Ctrl+. and Ctrl+, each write their format.
    for (const [key, want] of [['Control+u', '++x++'], ['Control+e', '`x`'], ['Control+.', '^x^'], ['Control+,', '~x~'], ['Control+Shift+x', '~~x~~'], ['Control+Alt+2', '## x']]) {
      await typeSelected(alice, 'x', 'x');
      await alice.keyboard.press(key);
      assert.equal((await composer(alice)).value, want, key);
    }
    await typeSelected(alice, 'docs', 'docs');
    await alice.keyboard.press('Control+k');
    assert.deepEqual(await composer(alice), { value: '[docs](https://)', selected: 'https://', focused: true });

    // The toolbar by mouse wraps the selection without losing it.
    await typeSelected(alice, 'make it plain', 'it');
    await alice.click('[data-testid=format-underline]');
    assert.deepEqual(await composer(alice), { value: 'make ++it++ plain', selected: 'it', focused: true });

    // The toggles say, with aria-pressed, which formats the caret is in,
    // following the caret as it moves and the text as it changes.
    const pressed = () => alice.$$eval('[data-testid=format-bar] button[aria-pressed="true"]', (bs) => bs.map((b) => b.dataset.format).sort().join(' '));
    const waitPressed = async (want, what) => {
      await alice.waitForFunction((w) => [...document.querySelectorAll('[data-testid=format-bar] button[aria-pressed="true"]')]
        .map((b) => b.dataset.format).sort().join(' ') === w, want, { timeout: 5000 }).catch(() => {});
      assert.equal(await pressed(), want, what);
    };
    assert.equal(await alice.$$eval('[data-testid=format-bar] button[aria-pressed]', (bs) => bs.length), 11, 'every toggle has aria-pressed');
    assert.equal(await alice.$$eval('[data-testid=format-color][aria-pressed], [data-testid=format-link][aria-pressed]', (bs) => bs.length), 0);
    await waitPressed('underline', 'the selection inside ++…++');
    await alice.fill('[data-testid=composer]', '**bold *both*** plain `co*de*`');
    await alice.$eval('[data-testid=composer]', (ta) => ta.setSelectionRange(3, 3));
    await waitPressed('bold', 'caret in bold');
    await alice.$eval('[data-testid=composer]', (ta) => ta.setSelectionRange(10, 10));
    await waitPressed('bold italic', 'caret in bold and italic');
    await alice.keyboard.press('End');
    await alice.keyboard.press('ArrowLeft');
    await alice.keyboard.press('ArrowLeft');
    await waitPressed('code', 'caret in code, its * being text');
    await alice.keyboard.press('Home');
    await waitPressed('', 'caret before the markers');
    // Typing a format at the caret presses it; leaving it releases it.
    await alice.fill('[data-testid=composer]', 'x ');
    await alice.keyboard.press('Control+b');
    await waitPressed('bold', 'markers typed at the caret');
    await alice.keyboard.type('y');
    await alice.keyboard.press('End');
    await waitPressed('', 'caret after the closing markers');
    await alice.click('[data-testid=format-quote]');
    await waitPressed('quote', 'a quoted line');
    await alice.click('[data-testid=format-quote]');
    await waitPressed('', 'the quote taken off');

    // By keyboard: Shift+Tab from the composer reaches the toolbar's one
    // stop; arrows move, Home and End jump, Enter on colour opens the
    // palette menu, arrows pick, Enter applies and the focus goes back.
    await typeSelected(alice, 'colour me', 'me');
    await alice.focus('[data-testid=format-bar] button[tabindex="0"]');
    assert.equal(await focused(alice), 'bold');
    await alice.keyboard.press('ArrowRight');
    assert.equal(await focused(alice), 'italic');
    await alice.keyboard.press('ArrowLeft');
    await alice.keyboard.press('ArrowLeft');
    assert.equal(await focused(alice), 'numbers', 'ArrowLeft from the first wraps to the last');
    await alice.keyboard.press('Home');
    for (let i = 0; i < 9; i++) await alice.keyboard.press('ArrowRight');
    assert.equal(await focused(alice), 'color');
    await alice.keyboard.press('Enter');
    await alice.waitForSelector('[data-testid=palette-color][role=menu]');
    assert.equal(await focused(alice), 'red');
    await alice.keyboard.press('ArrowDown');
    await alice.keyboard.press('ArrowDown');
    await alice.keyboard.press('ArrowDown');
    assert.equal(await focused(alice), 'blue');
    await alice.keyboard.press('Enter');
    await alice.waitForSelector('[data-testid=palette-color]', { state: 'detached' });
    assert.deepEqual(await composer(alice), { value: 'colour {color:blue}me{/color}', selected: 'me', focused: true });
    // Escape closes the menu and gives the focus back to its button.
    await alice.click('[data-testid=format-highlight]');
    await alice.waitForSelector('[data-testid=palette-highlight]');
    await alice.keyboard.press('Escape');
    await alice.waitForSelector('[data-testid=palette-highlight]', { state: 'detached' });
    assert.equal(await focused(alice), 'highlight');

    // Every format arrives as elements, and hostile markup as text.
    await send(alice, everything);
    const last = '[data-testid=message]:last-child [data-testid=message-text]';
    await bob.waitForSelector(`${last} .md-highlight-pink`);
    const shape = (page) => evalOn(page, last, (el) => ({
      heading: el.querySelector('p.md-heading.md-h1')?.textContent,
      tags: ['strong', 'em', 'u', 'del', 'code', 'sub', 'sup'].map((t) => el.querySelector(t)?.textContent),
      colors: [...el.querySelectorAll('span')].map((s) => s.className),
      links: [...el.querySelectorAll('a')].map((a) => a.getAttribute('href')),
      styled: el.querySelectorAll('[style], [onmouseover], b').length,
      text: el.textContent,
    }));
    for (const page of [alice, bob]) {
      const got = await shape(page);
      assert.equal(got.heading, 'Plan');
      assert.deepEqual(got.tags, ['bold', 'italic', 'under', 'gone', 'code', '2', '2']);
      assert.deepEqual(got.colors, ['md-color-red', 'md-color-orange', 'md-color-green', 'md-color-blue', 'md-color-purple', 'md-color-gray',
        'md-highlight-yellow', 'md-highlight-green', 'md-highlight-blue', 'md-highlight-pink']);
      assert.deepEqual(got.links, []);
      assert.equal(got.styled, 0);
      assert.ok(got.text.includes('[bad](javascript:alert(1))') && got.text.includes('<b>not bold</b>'));
    }

    // Contrast: my own (accent) bubble on alice's page, the other bubble on
    // bob's, each in the light and the dark theme.
    for (const scheme of ['light', 'dark']) {
      for (const page of [alice, bob]) {
        await page.emulateMedia({ colorScheme: scheme });
        const list = await contrasts(page);
        assert.equal(list.length, 10);
        for (const c of list) assert.ok(c.ratio >= 4.5, `${scheme} ${c.own ? 'own' : 'other'} ${c.name}: ${c.ratio.toFixed(2)}:1`);
        // The palette's theme really changed the colours.
        page[`red-${scheme}`] = await evalOn(page, `${last} .md-color-red`, (el) => getComputedStyle(el).color);
      }
      await screenshot(alice, `format-${scheme}`);
      await screenshot(bob, `format-other-${scheme}`);
    }
    assert.notEqual(bob['red-light'], bob['red-dark']);

    // The chat list's preview and a reply quote show the text without markup.
    await alice.hover(`${last}`);
    await alice.click('[data-testid=message]:last-child [aria-label=Reply]');
    const quote = await alice.textContent('.reply-bar .rb-text');
    assert.ok(quote.startsWith('Plan bold') && quote.includes('under gone code H2O x2 red orange green blue purple gray yellow'), quote);
    assert.ok(!/[{}^~#+]/.test(quote.split('bad')[0]), quote);
    await alice.keyboard.press('Escape');

    // The shortcuts work in an edit too.
    await send(alice, 'fix this word');
    const mine = alice.locator('[data-testid=message][data-id]', { hasText: 'fix this word' });
    await mine.hover();
    await mine.locator('[aria-label=Edit]').click();
    await alice.waitForSelector('.edit-input');
    await alice.$eval('.edit-input', (el) => { el.focus(); el.setSelectionRange(4, 8); });
    await alice.keyboard.press('Control+u');
    assert.equal(await alice.inputValue('.edit-input'), 'fix ++this++ word');
    await alice.keyboard.press('Enter');
    await bob.waitForSelector('[data-testid=message-text] u:text-is("this")');
    noProblems(alice, bob);
  });
});

test('formatting in Persian on a phone: the toolbar on demand, mirrored arrows, shortcuts on a Persian layout', async () => {
  await withServer({}, async (server) => {
    const page = await openUser(browser, server, { locale: 'fa-IR', viewport: { width: 390, height: 844 } });
    await register(page, 'dara');
    await page.waitForFunction(() => document.documentElement.dir === 'rtl');
    // A phone shows the chat instead of the list.
    await page.click('[data-testid=chat-item][data-chat-name="global"]');
    await page.waitForSelector('[data-testid=composer]', { state: 'visible' });
    // Hidden at phone width until the toggle shows it.
    await page.waitForSelector('[data-testid=format-toggle][aria-expanded=false]');
    assert.equal(await page.isVisible('[data-testid=format-bar]'), false);
    await page.click('[data-testid=format-toggle]');
    await page.waitForSelector('[data-testid=format-bar]', { state: 'visible' });
    assert.equal(await page.getAttribute('[data-testid=format-bar]', 'aria-label'), 'قالب‌بندی');
    assert.equal(await focused(page), 'bold');
    // Right to left: ArrowLeft goes to the next button, ArrowRight back.
    await page.keyboard.press('ArrowLeft');
    assert.equal(await focused(page), 'italic');
    await page.keyboard.press('ArrowRight');
    assert.equal(await focused(page), 'bold');
    // One row that scrolls inside the composer; the page does not scroll sideways.
    const fit = await page.evaluate(() => {
      const bar = document.querySelector('[data-testid=format-bar]').getBoundingClientRect();
      return { bar: [bar.left, bar.right, bar.height], page: document.documentElement.scrollWidth, width: innerWidth };
    });
    assert.ok(fit.bar[0] >= 0 && fit.bar[1] <= fit.width, JSON.stringify(fit));
    assert.ok(fit.bar[2] < 60, `one row: ${JSON.stringify(fit)}`);
    assert.ok(fit.page <= fit.width, JSON.stringify(fit));
    // The choice is remembered.
    await page.reload();
    await page.click('[data-testid=chat-item][data-chat-name="global"]');
    await page.waitForSelector('[data-testid=composer]', { state: 'visible' });
    await page.waitForSelector('[data-testid=format-bar]', { state: 'visible' });

    // Ctrl+B on a Persian layout types "ذ" with the B key: still bold.
    await typeSelected(page, 'سلام دنیا', 'دنیا');
    await page.$eval('[data-testid=composer]', (el) => el.dispatchEvent(new KeyboardEvent('keydown', { key: 'ذ', code: 'KeyB', ctrlKey: true, bubbles: true, cancelable: true })));
    assert.equal((await composer(page)).value, 'سلام **دنیا**');
    await typeSelected(page, 'سلام دنیا', 'سلام');
    await page.click('[data-testid=format-color]');
    await page.click('[data-testid=palette-color] [data-color=green]');
    assert.equal((await composer(page)).value, '{color:green}سلام{/color} دنیا');
    await page.press('[data-testid=composer]', 'Enter');
    await page.waitForSelector('[data-testid=message-text] .md-color-green:text-is("سلام")');
    await send(page, '# عنوان\n++زیرخط++ و H~۲~O');
    await page.waitForSelector('[data-testid=message-text] p.md-h1:text-is("عنوان")');
    assert.equal(await page.textContent('[data-testid=message]:last-child [data-testid=message-text] u'), 'زیرخط');
    assert.equal(await page.textContent('[data-testid=message]:last-child [data-testid=message-text] sub'), '۲');
    await screenshot(page, 'format-fa-phone');
    noProblems(page);
  });
});
