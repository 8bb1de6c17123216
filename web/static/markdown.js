// A safe Markdown subset, rendered by building DOM nodes: **bold**, *italic*
// and _italic_, ~~strikethrough~~, `code`, fenced code blocks, [links](url)
// and bare URLs (http, https and mailto only), lists and > quotes. Text is
// only ever placed with text nodes; nothing is parsed as HTML.

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

function link(href, label) {
  const a = isolated('a');
  a.href = href;
  a.target = '_blank';
  a.rel = 'noopener noreferrer';
  a.textContent = label;
  return a;
}

// Inline tokens, earliest match wins. Groups: 1-2 code, 3 bold, 4 bold_,
// 5 strike, 6 italic*, 7 italic_, 8-9 link, 10 bare URL.
const inlinePattern = new RegExp([
  '(`+)([^`]|[^`][\\s\\S]*?[^`])\\1(?!`)',
  '\\*\\*(?=\\S)([\\s\\S]*?\\S)\\*\\*',
  '(?<![\\p{L}\\p{N}_])__(?=\\S)([\\s\\S]*?\\S)__(?![\\p{L}\\p{N}_])',
  '~~(?=\\S)([\\s\\S]*?\\S)~~',
  '\\*(?=[^\\s*])([\\s\\S]*?[^\\s*])\\*(?!\\*)',
  '(?<![\\p{L}\\p{N}_])_(?=[^\\s_])([\\s\\S]*?[^\\s_])_(?![\\p{L}\\p{N}_])',
  '\\[([^\\]\\n]{1,500})\\]\\(([^()\\s]{1,2000})\\)',
  '((?:https?:\\/\\/|mailto:)[^\\s<>]*[^\\s<>.,:;"\'!?)\\]}])',
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
    parent.appendChild(inlineNode(m, depth));
    rest = rest.slice(m.index + m[0].length);
  }
  return parent;
}

function inlineNode(m, depth) {
  const wrap = (tag, inner) => renderInline(inner, isolated(tag), depth + 1);
  if (m[2] !== undefined) {
    const code = isolated('code');
    code.textContent = m[2].length > 2 && m[2].startsWith(' ') && m[2].endsWith(' ') ? m[2].slice(1, -1) : m[2];
    return code;
  }
  if (m[3] !== undefined) return wrap('strong', m[3]);
  if (m[4] !== undefined) return wrap('strong', m[4]);
  if (m[5] !== undefined) return wrap('del', m[5]);
  if (m[6] !== undefined) return wrap('em', m[6]);
  if (m[7] !== undefined) return wrap('em', m[7]);
  if (m[8] !== undefined) {
    const href = safeURL(m[9]);
    return href ? link(href, m[8]) : document.createTextNode(m[0]);
  }
  const href = safeURL(m[10]);
  return href ? link(href, m[10]) : document.createTextNode(m[10]);
}

const fence = /^\s{0,3}```/;
const quote = /^\s{0,3}> ?(.*)$/;
const bullet = /^\s{0,3}[-*+]\s+(.*)$/;
const ordered = /^\s{0,3}(\d{1,9})[.)]\s+(.*)$/;

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
