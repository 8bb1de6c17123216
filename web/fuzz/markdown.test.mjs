// Fuzz test of the web client's Markdown renderer (web/static/markdown.js):
// every input of the corpus in corpus/markdown/, then FUZZ_COUNT inputs
// mutated from it by a PRNG seeded with FUZZ_SEED (fixed by default, so a
// plain run is repeatable; make fuzz passes a fresh one, and the seed is
// printed). The renderer runs on the minimal DOM of dom.mjs. A failing
// input is shrunk and saved to the corpus, where every later run replays it.
//
// What must hold for every input (see check below):
//   - render and plain never throw;
//   - the output holds only the elements markdown.js builds, each where it
//     builds them (contentModel), with only its attributes and their values
//     (attributes), and every href is http, https or mailto;
//   - nothing is invented or reordered: the output's text is a subsequence
//     of the input (with \r\n and \r read as \n);
//   - nothing is dropped but markup: every character that is not markup
//     (markupChars) appears in the text at least as often as in the input
//     outside link destinations and fence lines, the only places whose
//     characters leave the text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { fakeDocument, Element, Fragment, Text } from './dom.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const corpusDir = join(here, 'corpus', 'markdown');
const source = join(here, '..', 'static', 'markdown.js');

globalThis.document = fakeDocument;
const { render, plain } = await loadMarkdown();

// loadMarkdown imports markdown.js. Node before 20.19 reads a .js file
// outside a "type": "module" package as CommonJS, so it gets the source as
// a data: URL there.
async function loadMarkdown() {
  try {
    return await import(pathToFileURL(source).href);
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
    const code = Buffer.from(readFileSync(source)).toString('base64');
    return import(`data:text/javascript;base64,${code}`);
  }
}

// Where each element may appear: the children a parent may have. '#text'
// is a text node; the fragment is render's result.
const block = ['p', 'pre', 'blockquote', 'ul', 'ol'];
const inline = ['#text', 'strong', 'em', 'del', 'u', 'sup', 'sub', 'span', 'code', 'a'];
const contentModel = {
  '#fragment': block,
  blockquote: block,
  p: [...inline, 'br'],
  li: inline,
  strong: inline,
  em: inline,
  del: inline,
  u: inline,
  sup: inline,
  sub: inline,
  span: inline,
  a: ['#text'],
  code: ['#text'],
  pre: ['code'],
  ul: ['li'],
  ol: ['li'],
  br: [],
};

// The attributes each element may carry, with a test of the value.
const isAuto = (v) => v === 'auto';
// A span's class names a colour of the palette, nothing else.
const paletteClass = (v) => /^md-color-(red|orange|green|blue|purple|gray)$|^md-highlight-(yellow|green|blue|pink)$/.test(v);
const attributes = {
  p: { dir: isAuto, class: (v) => /^md-heading md-h[123]$/.test(v) },
  blockquote: { dir: isAuto },
  ul: { dir: isAuto },
  ol: { dir: isAuto, start: (v) => /^\d{1,9}$/.test(v) },
  li: { dir: isAuto },
  pre: { dir: (v) => v === 'ltr' },
  // Inline elements are isolated (dir=auto), so a bidi control inside one
  // ends with it.
  strong: { dir: isAuto },
  em: { dir: isAuto },
  del: { dir: isAuto },
  u: { dir: isAuto },
  sup: { dir: isAuto },
  sub: { dir: isAuto },
  span: { dir: isAuto, class: paletteClass },
  code: { dir: isAuto },
  a: {
    dir: isAuto,
    target: (v) => v === '_blank',
    rel: (v) => v === 'noopener noreferrer',
    href: (v) => {
      try {
        return ['http:', 'https:', 'mailto:'].includes(new URL(v).protocol);
      } catch {
        return false;
      }
    },
  },
};

// markupChars are the characters markdown.js may consume as markup:
// emphasis, underline, superscript, subscript, code and link markers,
// quote, heading and list markers (with the numbers of ordered lists,
// which become start), and whitespace. The letters of a colour tag are
// exempt (see exempt).
const markupChars = /[\s*_~`^#[\]()>\-+.)0-9]/;

// nodeName names a node the way contentModel does.
function nodeName(node) {
  if (node instanceof Text) return '#text';
  if (node instanceof Fragment) return '#fragment';
  if (node instanceof Element) return node.localName;
  return String(node);
}

// checkTree walks the output, collecting its text in document order, and
// returns the first rule it breaks.
function checkTree(node, texts) {
  const name = nodeName(node);
  if (node instanceof Text) {
    texts.push(node.data);
    return null;
  }
  const allowedChildren = contentModel[name];
  if (!allowedChildren) return `element <${name}> is not one markdown.js builds`;
  if (node instanceof Element) {
    const allowed = attributes[name] || {};
    for (const [attr, value] of node.attributes) {
      if (!allowed[attr]) return `<${name}> has attribute ${attr}`;
      if (!allowed[attr](value)) return `<${name} ${attr}=${JSON.stringify(value)}> is not an allowed value`;
    }
    if (name === 'a' && !node.attributes.has('href')) return '<a> without href';
    if (name === 'span' && !node.attributes.has('class')) return '<span> without a palette class';
    if (name === 'pre' && node.childNodes.length !== 1) return `<pre> with ${node.childNodes.length} children`;
  }
  for (const child of node.childNodes) {
    if (!allowedChildren.includes(nodeName(child))) return `<${nodeName(child)}> inside <${name}>`;
    if (child.parentNode !== node) return `<${nodeName(child)}> has the wrong parent`;
    const problem = checkTree(child, texts);
    if (problem) return problem;
  }
  return null;
}

// exempt marks the input's characters whose leaving the text is allowed:
// every possible link destination (what follows "](" up to ")", as
// markdown.js's link pattern reads it), every fence line, also inside
// quotes, and every colour tag ({color:red}, {/highlight}).
function exempt(input) {
  const marks = new Uint8Array(input.length);
  for (const m of input.matchAll(/\{(color|highlight):[a-z]{1,20}\}|\{\/(color|highlight)\}/g)) {
    marks.fill(1, m.index, m.index + m[0].length);
  }
  for (let i = input.indexOf(']('); i >= 0; i = input.indexOf('](', i + 1)) {
    const m = /^[^()\s]{1,2000}\)/.exec(input.slice(i + 2, i + 2 + 2001));
    if (m) marks.fill(1, i + 2, i + 2 + m[0].length);
  }
  let start = 0;
  for (const line of input.split('\n')) {
    if (/^[\s>]*```/.test(line)) marks.fill(1, start, start + line.length);
    start += line.length + 1;
  }
  return marks;
}

// check returns why input breaks a rule, or null.
function check(input) {
  let out;
  try {
    out = render(input);
    const preview = plain(input);
    if (typeof preview !== 'string' || preview.includes('\n')) return `plain returned ${JSON.stringify(preview)}`;
  } catch (err) {
    return `threw ${err && err.stack ? err.stack : err}`;
  }
  const texts = [];
  const problem = checkTree(out, texts);
  if (problem) return problem;

  const text = texts.join('');
  const normal = input.replace(/\r\n?/g, '\n');
  let j = 0;
  for (let i = 0; i < text.length; i++, j++) {
    while (j < normal.length && normal[j] !== text[i]) j++;
    if (j === normal.length) {
      return `the output's text is not a subsequence of the input: ${JSON.stringify(text.slice(Math.max(0, i - 10), i + 10))} at ${i}`;
    }
  }
  const marks = exempt(normal);
  const need = new Map();
  for (let i = 0; i < normal.length; i++) {
    // By UTF-16 code unit, as the subsequence test above, so a lone
    // surrogate counts as well as a pair.
    const c = normal[i];
    if (!marks[i] && !markupChars.test(c)) need.set(c, (need.get(c) || 0) + 1);
  }
  const units = new Map();
  for (let i = 0; i < text.length; i++) units.set(text[i], (units.get(text[i]) || 0) + 1);
  for (const [c, n] of need) {
    if ((units.get(c) || 0) < n) {
      return `dropped ${JSON.stringify(c)} (U+${c.charCodeAt(0).toString(16).toUpperCase()}): ${n} in the input, ${units.get(c) || 0} in the output`;
    }
  }
  return null;
}

// readCorpus returns the corpus: *.md files as they are, *.json files as
// one JSON string each (for inputs a text file cannot hold exactly, such
// as lone surrogates).
function readCorpus() {
  return readdirSync(corpusDir)
    .sort()
    .filter((f) => f.endsWith('.md') || f.endsWith('.json'))
    .map((name) => {
      const raw = readFileSync(join(corpusDir, name), 'utf8');
      return { name, input: name.endsWith('.json') ? JSON.parse(raw) : raw };
    });
}

// mulberry32 is a small seeded PRNG: the same seed, the same inputs.
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// tokens are the pieces mutations insert: the renderer's markers, URL
// schemes good and bad, line and block starts, and characters that have
// tripped up text handling elsewhere.
const tokens = [
  '*', '**', '***', '_', '__', '~~', '~', '++', '^', '# ', '### ', '#### ', '{color:red}', '{/color}', '{highlight:yellow}',
  '{/highlight}', '{color:javascript}', '{color:red', '{/', '`', '``', '```', '[', ']', '(', ')', '](', '[x](', '\\',
  'http://', 'https://', 'mailto:', 'javascript:', 'JAVASCRIPT:', 'data:', 'https://a.b/', ' ', '.', ',', '!', '?',
  '\n', '\r\n', '\r', '\n\n', '> ', '>', '- ', '* ', '+ ', '1. ', '2) ', '999999999. ', '   ', '\t',
  '<script>', '<b>', '"', "'", '&amp;', '\u0000', '\u202e', '\u2066', '\u200b', '\ufeff', '\u00a0', '\u2028', '\u2029',
  '\ud83d\ude00', '\ud83d', '\ude00', 'é', 'ש', 'م', '文',
];

// maxInput is the longest message the server accepts by default, in bytes;
// as a bound on UTF-16 length it is generous.
const maxInput = 8192;

// mutate returns a variation of input, with parts of other corpus entries.
function mutate(rand, input, corpus) {
  const pick = (n) => Math.floor(rand() * n);
  let s = input;
  for (let k = 1 + pick(8); k > 0; k--) {
    const at = pick(s.length + 1);
    switch (pick(7)) {
      case 0:
      case 1:
        s = s.slice(0, at) + tokens[pick(tokens.length)] + s.slice(at);
        break;
      case 2: // a random code unit, surrogates included
        s = s.slice(0, at) + String.fromCharCode(pick(0x10000)) + s.slice(at);
        break;
      case 3:
        s = s.slice(0, at) + s.slice(at + 1 + pick(16));
        break;
      case 4: {
        const end = at + pick(64);
        s = s.slice(0, end) + s.slice(at, end) + s.slice(end);
        break;
      }
      case 5: {
        const other = corpus[pick(corpus.length)].input;
        const from = pick(other.length + 1);
        s = s.slice(0, at) + other.slice(from, from + 1 + pick(80)) + s.slice(at);
        break;
      }
      case 6:
        s = s.slice(0, at) + tokens[pick(tokens.length)].repeat(2 + pick(30)) + s.slice(at);
        break;
    }
  }
  return s.slice(0, maxInput);
}

// shrink removes pieces of a failing input while it still fails, so that
// the saved input shows the problem rather than the noise around it.
function shrink(input) {
  let s = input;
  for (let size = Math.max(1, s.length >> 1); size >= 1; size >>= 1) {
    for (let at = 0; at < s.length; ) {
      const shorter = s.slice(0, at) + s.slice(at + size);
      if (check(shorter)) s = shorter;
      else at += size;
    }
  }
  return s;
}

test('the Markdown corpus renders safely and keeps its text', () => {
  const corpus = readCorpus();
  assert.ok(corpus.length > 0, `no corpus in ${corpusDir}`);
  for (const { name, input } of corpus) {
    const problem = check(input);
    assert.equal(problem, null, `${name}: ${problem}`);
  }
});

test('mutated Markdown renders safely and keeps its text', (t) => {
  const seed = Number(process.env.FUZZ_SEED || 1) >>> 0;
  const count = Number(process.env.FUZZ_COUNT || 2000);
  t.diagnostic(`FUZZ_SEED=${seed} FUZZ_COUNT=${count}`);
  const corpus = readCorpus();
  const rand = mulberry32(seed);
  for (let i = 0; i < count; i++) {
    const input = mutate(rand, corpus[Math.floor(rand() * corpus.length)].input, corpus);
    if (check(input) === null) continue;
    const small = shrink(input);
    const file = join(corpusDir, `failing-${seed}-${i}.json`);
    writeFileSync(file, `${JSON.stringify(small)}\n`);
    assert.fail(`input ${i} of seed ${seed} fails: ${check(small)}\nsaved (shrunk) to ${file}: ${JSON.stringify(small)}`);
  }
});
