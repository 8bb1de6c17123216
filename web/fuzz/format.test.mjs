// Unit tests of the formatting the composer writes and markdown.js reads:
// each inline and block format as markup (serialised from the minimal DOM
// of dom.mjs), nesting, unclosed markers, right-to-left text and hostile
// input, plain() for previews, and the composer's edits (formatting.js)
// on a selection or at the caret. markdown.test.mjs fuzzes the renderer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { fakeDocument, Element, Text } from './dom.mjs';

const here = dirname(fileURLToPath(import.meta.url));
globalThis.document = fakeDocument;

// load imports a module of web/static (as markdown.test.mjs does, a data:
// URL where Node reads it as CommonJS).
async function load(name) {
  const source = join(here, '..', 'static', name);
  try {
    return await import(pathToFileURL(source).href);
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
    return import(`data:text/javascript;base64,${Buffer.from(readFileSync(source)).toString('base64')}`);
  }
}

const { render, plain, textColors, highlightColors } = await load('markdown.js');
const fmt = await load('formatting.js');

// markup writes a rendered tree as tags, with class and href shown and
// dir left out (every element has it).
function markup(node) {
  if (node instanceof Text) return node.data;
  const inner = node.childNodes.map(markup).join('');
  if (!(node instanceof Element)) return inner;
  const attrs = ['class', 'href'].filter((a) => node.attributes.has(a)).map((a) => ` ${a}="${node.attributes.get(a)}"`).join('');
  return `<${node.localName}${attrs}>${inner}</${node.localName}>`;
}

const md = (text) => markup(render(text));

test('each new inline format renders as its element', () => {
  const cases = [
    ['++under++', '<p><u>under</u></p>'],
    ['H~2~O', '<p>H<sub>2</sub>O</p>'],
    ['x^2^ and 2^10^', '<p>x<sup>2</sup> and 2<sup>10</sup></p>'],
    ['{color:red}alarm{/color}', '<p><span class="md-color-red">alarm</span></p>'],
    ['{highlight:yellow}note{/highlight}', '<p><span class="md-highlight-yellow">note</span></p>'],
    ['# One', '<p class="md-heading md-h1">One</p>'],
    ['## Two', '<p class="md-heading md-h2">Two</p>'],
    ['### Three', '<p class="md-heading md-h3">Three</p>'],
  ];
  for (const [input, want] of cases) assert.equal(md(input), want, input);
});

test('formats nest inside each other', () => {
  assert.equal(md('**++both++**'), '<p><strong><u>both</u></strong></p>');
  assert.equal(md('++*both*++'), '<p><u><em>both</em></u></p>');
  assert.equal(md('{color:blue}{highlight:pink}x **y**{/highlight}{/color}'),
    '<p><span class="md-color-blue"><span class="md-highlight-pink">x <strong>y</strong></span></span></p>');
  assert.equal(md('## a {color:green}green{/color} heading'), '<p class="md-heading md-h2">a <span class="md-color-green">green</span> heading</p>');
  assert.equal(md('> # quoted'), '<blockquote><p class="md-heading md-h1">quoted</p></blockquote>');
  assert.equal(md('- ++item++'), '<ul><li><u>item</u></li></ul>');
  // Code keeps its markers as text.
  assert.equal(md('`{color:red}x{/color} ++y++`'), '<p><code>{color:red}x{/color} ++y++</code></p>');
});

test('unclosed and stray markers stay text', () => {
  const same = [
    'C++ and x++ and a ++ b ++ c', '^_^ and ^^', '~5 minutes or ~10', '{color:red}never closed',
    'stray {/color} and {/highlight}', '{color:}x{/color}', '#hashtag', '#### four', '#', '++', '^', '~',
  ];
  for (const input of same) assert.equal(md(input), `<p>${input}</p>`, input);
  assert.equal(md('{color:red}a{/highlight}'), '<p>{color:red}a{/highlight}</p>');
});

test('a colour outside the palette, or an attempt at markup, is text', () => {
  assert.equal(md('{color:teal}x **y**{/color}'), '<p>{color:teal}x <strong>y</strong>{/color}</p>');
  const hostile = [
    '{color:red" onclick="alert(1)}x{/color}',
    '{color:RED}x{/color}',
    '{highlight:url(javascript:alert(1))}x{/highlight}',
    '{color:red;background:url(x)}x{/color}',
    '{color:hasOwnProperty}x{/color}',
    '{color:constructor}x{/color}',
  ];
  for (const input of hostile) {
    const out = render(input);
    const walk = (n) => {
      if (n instanceof Element) {
        assert.ok(n.localName !== 'span', `${input} made a span`);
        assert.ok(!n.attributes.has('style'), `${input} made a style`);
      }
      n.childNodes.forEach(walk);
    };
    walk(out);
    assert.equal(out.textContent, input.replace(/\*\*/g, ''), input);
  }
  // Links inside formats keep only safe schemes.
  assert.equal(md('++[x](javascript:alert(1))++'), '<p><u>[x](javascript:alert(1))</u></p>');
  assert.equal(md('{color:red}[x](https://a.example/)'), '<p>{color:red}<a href="https://a.example/">x</a></p>');
});

test('every palette name renders with its class', () => {
  for (const name of textColors) assert.equal(md(`{color:${name}}x{/color}`), `<p><span class="md-color-${name}">x</span></p>`);
  for (const name of highlightColors) assert.equal(md(`{highlight:${name}}x{/highlight}`), `<p><span class="md-highlight-${name}">x</span></p>`);
});

test('right-to-left text formats the same way', () => {
  assert.equal(md('++زیرخط++ و {color:red}قرمز{/color}'), '<p><u>زیرخط</u> و <span class="md-color-red">قرمز</span></p>');
  assert.equal(md('H~۲~O و x^۲^'), '<p>H<sub>۲</sub>O و x<sup>۲</sup></p>');
  assert.equal(md('# عنوان'), '<p class="md-heading md-h1">عنوان</p>');
  // A bidi override inside a colour ends with its (isolated) span.
  const span = render('\u202E{color:red}gpj.exe{/color}').childNodes[0].childNodes[1];
  assert.equal(span.attributes.get('dir'), 'auto');
});

test('plain strips the new markers for previews', () => {
  const cases = [
    ['++under++ and **bold**', 'under and bold'],
    ['H~2~O x^2^', 'H2O x2'],
    ['{color:red}red{/color} {highlight:yellow}marked{/highlight}', 'red marked'],
    ['# Title\n## Sub', 'Title Sub'],
    ['{color:teal}odd{/color}', '{color:teal}odd{/color}'],
    ['C++ ^_^ ~5', 'C++ ^_^ ~5'],
    ['# عنوان {color:red}قرمز{/color}', 'عنوان قرمز'],
  ];
  for (const [input, want] of cases) assert.equal(plain(input), want, input);
});

// edit runs a formatting.js edit on text with the selection written as
// [ and ] (or | for a caret) and returns the answer written the same way.
function edit(fn, marked, ...args) {
  const caret = marked.indexOf('|');
  const start = caret >= 0 ? caret : marked.indexOf('[');
  const end = caret >= 0 ? caret : marked.indexOf(']') - 1;
  const value = marked.replace(/[[\]|]/g, '');
  const out = fn(value, start, end, ...args);
  if (out.start === out.end) return `${out.value.slice(0, out.start)}|${out.value.slice(out.start)}`;
  return `${out.value.slice(0, out.start)}[${out.value.slice(out.start, out.end)}]${out.value.slice(out.end)}`;
}

test('inline formats wrap the selection, and unwrap it again', () => {
  assert.equal(edit(fmt.toggleInline, 'say [hello] now', 'bold'), 'say **[hello]** now');
  assert.equal(edit(fmt.toggleInline, 'say **[hello]** now', 'bold'), 'say [hello] now');
  assert.equal(edit(fmt.toggleInline, 'say [**hello**] now', 'bold'), 'say [hello] now');
  assert.equal(edit(fmt.toggleInline, 'say [hello ]now', 'underline'), 'say ++[hello]++ now');
  assert.equal(edit(fmt.toggleInline, 'say |now', 'italic'), 'say *|*now');
  assert.equal(edit(fmt.toggleInline, '**[x]**', 'italic'), '***[x]***');
  assert.equal(edit(fmt.toggleInline, 'H[2]O', 'subscript'), 'H~[2]~O');
  assert.equal(edit(fmt.toggleInline, 'x[2]', 'superscript'), 'x^[2]^');
  assert.equal(edit(fmt.toggleInline, '[a\n\nb]', 'strike'), '[~~a~~\n\n~~b~~]');
  assert.equal(edit(fmt.toggleInline, 'run [a`b]', 'code'), 'run `` [a`b] ``');
  assert.equal(edit(fmt.toggleInline, '[a\nb]', 'code'), '```\n[a\nb]\n```');
  assert.equal(edit(fmt.toggleInline, 'سلام [دنیا]', 'bold'), 'سلام **[دنیا]**');
});

test('colours wrap, change and come off', () => {
  assert.equal(edit(fmt.toggleColor, 'a [b] c', 'color', 'red'), 'a {color:red}[b]{/color} c');
  assert.equal(edit(fmt.toggleColor, 'a {color:red}[b]{/color} c', 'color', 'red'), 'a [b] c');
  assert.equal(edit(fmt.toggleColor, 'a {color:red}[b]{/color} c', 'color', 'blue'), 'a {color:blue}[b]{/color} c');
  assert.equal(edit(fmt.toggleColor, 'a {color:red}[b]{/color} c', 'color', null), 'a [b] c');
  assert.equal(edit(fmt.toggleColor, 'a {color:red}[b]{/color} c', 'highlight', 'yellow'), 'a {color:red}{highlight:yellow}[b]{/highlight}{/color} c');
  assert.equal(edit(fmt.toggleColor, 'a |', 'highlight', 'pink'), 'a {highlight:pink}|{/highlight}');
});

test('links and line formats', () => {
  assert.equal(edit(fmt.link, 'see [docs] here'), 'see [docs]([https://]) here');
  assert.equal(edit(fmt.link, 'see [https://a.example/] here'), 'see [|](https://a.example/) here');
  assert.equal(edit(fmt.toggleLines, 'Tit|le', 'heading1'), '# Tit|le');
  assert.equal(edit(fmt.toggleLines, '# Tit|le', 'heading2'), '## Tit|le');
  assert.equal(edit(fmt.toggleLines, '## Tit|le', 'heading2'), 'Tit|le');
  assert.equal(edit(fmt.toggleLines, '[one\ntwo]', 'bullets'), '[- one\n- two]');
  assert.equal(edit(fmt.toggleLines, '[- one\n- two]', 'bullets'), '[one\ntwo]');
  assert.equal(edit(fmt.toggleLines, 'x\n[one\n\ntwo]', 'numbers'), 'x\n[1. one\n\n2. two]');
  assert.equal(edit(fmt.toggleLines, 'a\nb|', 'quote'), 'a\n> b|');
});

test('what the composer writes renders as the format it names', () => {
  for (const format of Object.keys(fmt.inlineMarkers)) {
    const out = fmt.toggleInline('word', 0, 4, format);
    const tag = { bold: 'strong', italic: 'em', underline: 'u', strike: 'del', code: 'code', superscript: 'sup', subscript: 'sub' }[format];
    assert.equal(md(out.value), `<p><${tag}>word</${tag}></p>`, format);
  }
});
