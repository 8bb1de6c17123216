// A safe Markdown subset, rendered by building DOM nodes: **bold** (and
// __bold__), *italic* and _italic_, ++underline++, ~~strikethrough~~,
// `code`, ^superscript^ and ~subscript~, {color:red}coloured{/color} and
// {highlight:yellow}highlighted{/highlight} text from a fixed palette, fenced
// code blocks, [links](url) and bare URLs (http, https and mailto only),
// # headings (one to three #), lists and > quotes. Text is only ever placed
// with text nodes; nothing is parsed as HTML, and a colour becomes a class
// name from the palette, never a style from the message.

const allowedSchemes = new Set(['http:', 'https:', 'mailto:']);
const maxDepth = 4;

/** safeURL returns a link's URL when its scheme is allowed, else null. */
export function safeURL(raw) {
  const text = String(raw).trim();
  if (!/^(https?:\/\/|mailto:)/i.test(text)) return null;
  try {
    const url = new URL(text);
    return allowedSchemes.has(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}

// Each inline element gets dir=auto, which isolates it (as <bdi> is): its
// direction comes from its own text, and a bidi control inside it (U+202E
// turning "gpj.exe" into "exe.jpg") ends with it instead of reordering the
// rest of the line.
function isolated(tag) {
  const el = document.createElement(tag);
  el.dir = 'auto';
  return el;
}

/**
 * textColors and highlightColors are the palette's names, in the order the
 * toolbar offers them. Each maps to a class (md-color-NAME,
 * md-highlight-NAME) whose colours app.css sets per theme.
 */
export const textColors = ['red', 'orange', 'green', 'blue', 'purple', 'gray'];
export const highlightColors = ['yellow', 'green', 'blue', 'pink'];

const palette = { color: new Set(textColors), highlight: new Set(highlightColors) };

function link(href, label) {
  const a = isolated('a');
  a.href = href;
  a.target = '_blank';
  a.rel = 'noopener noreferrer';
  a.textContent = label;
  return a;
}

// Inline tokens, earliest match wins; at the same place, the first
// alternative. Superscript and subscript start with a letter or digit, so
// that ^_^ and ~5 stay text.
const inlinePattern = new RegExp([
  '(?<ticks>`+)(?<code>[^`]|[^`][\\s\\S]*?[^`])\\k<ticks>(?!`)',
  '\\*\\*(?=\\S)(?<bold>[\\s\\S]*?\\S)\\*\\*',
  '(?<![\\p{L}\\p{N}_])__(?=\\S)(?<bold2>[\\s\\S]*?\\S)__(?![\\p{L}\\p{N}_])',
  '~~(?=\\S)(?<strike>[\\s\\S]*?\\S)~~',
  '\\+\\+(?=[^\\s+])(?<under>[\\s\\S]*?[^\\s+])\\+\\+',
  '\\*(?=[^\\s*])(?<em>[\\s\\S]*?[^\\s*])\\*(?!\\*)',
  '(?<![\\p{L}\\p{N}_])_(?=[^\\s_])(?<em2>[\\s\\S]*?[^\\s_])_(?![\\p{L}\\p{N}_])',
  '\\^(?=[\\p{L}\\p{N}])(?<sup>[^\\^\\n]{0,199}?[^\\s\\^])\\^',
  '(?<!~)~(?=[\\p{L}\\p{N}])(?<sub>[^~\\n]{0,199}?[^\\s~])~(?!~)',
  '\\{(?<tag>color|highlight):(?<tagName>[a-z]{1,20})\\}(?<tagBody>[\\s\\S]*?)\\{\\/\\k<tag>\\}',
  '\\[(?<label>[^\\]\\n]{1,500})\\]\\((?<href>[^()\\s]{1,2000})\\)',
  '(?<url>(?:https?:\\/\\/|mailto:)[^\\s<>]*[^\\s<>.,:;"\'!?)\\]}])',
].join('|'), 'u');

/** renderInline appends inline Markdown of text to parent. */
export function renderInline(text, parent, depth = 0) {
  let rest = text;
  while (rest.length) {
    const m = depth < maxDepth ? inlinePattern.exec(rest) : null;
    if (!m) {
      parent.appendChild(document.createTextNode(rest));
      return parent;
    }
    if (m.index > 0) parent.appendChild(document.createTextNode(rest.slice(0, m.index)));
    parent.appendChild(inlineNode(m.groups, m[0], depth));
    rest = rest.slice(m.index + m[0].length);
  }
  return parent;
}

const simple = [['bold', 'strong'], ['bold2', 'strong'], ['strike', 'del'], ['under', 'u'], ['em', 'em'], ['em2', 'em'], ['sup', 'sup'], ['sub', 'sub']];

function inlineNode(g, whole, depth) {
  const wrap = (tag, inner) => renderInline(inner, isolated(tag), depth + 1);
  if (g.code !== undefined) {
    const code = isolated('code');
    code.textContent = g.code.length > 2 && g.code.startsWith(' ') && g.code.endsWith(' ') ? g.code.slice(1, -1) : g.code;
    return code;
  }
  for (const [group, tag] of simple) if (g[group] !== undefined) return wrap(tag, g[group]);
  if (g.tag !== undefined) {
    if (palette[g.tag].has(g.tagName)) {
      const span = wrap('span', g.tagBody);
      span.className = `md-${g.tag}-${g.tagName}`;
      return span;
    }
    // A name outside the palette: its markers stay as they were written.
    const out = document.createDocumentFragment();
    out.appendChild(document.createTextNode(`{${g.tag}:${g.tagName}}`));
    renderInline(g.tagBody, out, depth + 1);
    out.appendChild(document.createTextNode(`{/${g.tag}}`));
    return out;
  }
  if (g.label !== undefined) {
    const href = safeURL(g.href);
    return href ? link(href, g.label) : document.createTextNode(whole);
  }
  const href = safeURL(g.url);
  return href ? link(href, g.url) : document.createTextNode(g.url);
}

const fence = /^\s{0,3}```/;
const quote = /^\s{0,3}> ?(.*)$/;
const bullet = /^\s{0,3}[-*+]\s+(.*)$/;
const ordered = /^\s{0,3}(\d{1,9})[.)]\s+(.*)$/;
const heading = /^\s{0,3}(#{1,3})[ \t]+(.*\S.*)$/;

/** render turns message text into a DocumentFragment of safe Markdown. */
export function render(text, depth = 0) {
  const out = document.createDocumentFragment();
  const lines = String(text).replace(/\r\n?/g, '\n').split('\n');
  let i = 0;
  let paragraph = [];
  const flush = () => {
    if (!paragraph.length) return;
    const p = document.createElement('p');
    p.dir = 'auto';
    paragraph.forEach((line, n) => {
      if (n) p.appendChild(document.createElement('br'));
      renderInline(line, p, depth);
    });
    out.appendChild(p);
    paragraph = [];
  };
  while (i < lines.length) {
    const line = lines[i];
    if (fence.test(line)) {
      flush();
      const body = [];
      i++;
      while (i < lines.length && !fence.test(lines[i])) body.push(lines[i++]);
      i++; // the closing fence, or the end
      const pre = document.createElement('pre');
      const code = document.createElement('code');
      code.textContent = body.join('\n');
      pre.appendChild(code);
      pre.dir = 'ltr';
      out.appendChild(pre);
      continue;
    }
    if (depth < maxDepth && quote.test(line)) {
      flush();
      const body = [];
      while (i < lines.length && quote.test(lines[i])) body.push(quote.exec(lines[i++])[1]);
      const bq = document.createElement('blockquote');
      bq.dir = 'auto';
      bq.appendChild(render(body.join('\n'), depth + 1));
      out.appendChild(bq);
      continue;
    }
    if (heading.test(line)) {
      // A heading is a large, bold line of the message; it stays out of
      // the page's outline, which belongs to the app.
      flush();
      const m = heading.exec(line);
      const p = document.createElement('p');
      p.dir = 'auto';
      p.className = `md-heading md-h${m[1].length}`;
      renderInline(m[2], p, depth);
      out.appendChild(p);
      i++;
      continue;
    }
    if (bullet.test(line) || ordered.test(line)) {
      flush();
      const isOrdered = ordered.test(line);
      const pattern = isOrdered ? ordered : bullet;
      const list = document.createElement(isOrdered ? 'ol' : 'ul');
      list.dir = 'auto';
      if (isOrdered) {
        const start = Number(ordered.exec(line)[1]);
        if (start !== 1) list.start = start;
      }
      while (i < lines.length && pattern.test(lines[i])) {
        const m = pattern.exec(lines[i++]);
        const li = document.createElement('li');
        li.dir = 'auto';
        renderInline(isOrdered ? m[2] : m[1], li, depth);
        list.appendChild(li);
      }
      out.appendChild(list);
      continue;
    }
    if (line.trim() === '') {
      flush();
      i++;
      continue;
    }
    paragraph.push(line);
    i++;
  }
  flush();
  return out;
}

// Blocks whose text a preview keeps apart with a space.
const blockTags = new Set(['P', 'PRE', 'BLOCKQUOTE', 'UL', 'OL', 'LI']);
const plainCache = new Map(); // text → plain text, the most recent few hundred

/**
 * plain is a message's text without its Markdown, on one line, for
 * previews, reply quotes and notifications. It reads what render draws, so
 * a preview strips exactly the markers a bubble shows as formatting.
 */
export function plain(text) {
  const source = String(text);
  const known = plainCache.get(source);
  if (known !== undefined) return known;
  const parts = [];
  const walk = (node) => {
    for (const child of node.childNodes) {
      if (child.nodeType === 3) {
        parts.push(child.nodeValue);
      } else if (child.nodeName === 'BR') {
        parts.push(' ');
      } else {
        walk(child);
        if (blockTags.has(child.nodeName)) parts.push(' ');
      }
    }
  };
  walk(render(source));
  const out = parts.join('').replace(/\s+/g, ' ').trim();
  if (plainCache.size >= 500) plainCache.delete(plainCache.keys().next().value);
  plainCache.set(source, out);
  return out;
}

const emojiOnly = /^(?:\p{Extended_Pictographic}(?:\uFE0F|\u200D|\p{Emoji_Modifier}|\p{Extended_Pictographic})*\s*){1,3}$/u;

/** isEmojiOnly says whether a message is one to three emoji (shown large). */
export function isEmojiOnly(text) {
  return emojiOnly.test(String(text).trim());
}
