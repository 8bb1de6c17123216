// The composer's formatting as edits of plain text: each function takes
// the text and the selection (start, end) and returns the new text and
// selection, writing the Markdown that markdown.js renders. Nothing here
// touches the page, so the rules are tested in Node (web/fuzz).

/** inlineMarkers are the markers of each inline format, before and after. */
export const inlineMarkers = {
  bold: ['**', '**'],
  italic: ['*', '*'],
  underline: ['++', '++'],
  strike: ['~~', '~~'],
  code: ['`', '`'],
  superscript: ['^', '^'],
  subscript: ['~', '~'],
};

const edge = /^\s*([\s\S]*?)\s*$/;

// trimmed narrows a selection to its text without the spaces at its ends
// (a double click selects a word with its space, and "** bold **" is not
// bold).
function trimmed(value, start, end) {
  const inner = edge.exec(value.slice(start, end))[1];
  if (!inner) return [start, end];
  const from = start + value.slice(start, end).indexOf(inner);
  return [from, from + inner.length];
}

// result is an edit's answer.
function result(value, start, end) {
  return { value, start, end };
}

// wrapped tells whether [start, end) sits right inside before…after, with
// a single-character marker not being half of a double one (the * of **).
function wrapped(value, start, end, before, after) {
  if (value.slice(start - before.length, start) !== before || value.slice(end, end + after.length) !== after) return false;
  if (before.length === 1 && (value[start - 2] === before || value[end + 1] === after)) return false;
  return true;
}

/**
 * toggleInline wraps the selection in a format's markers, or unwraps it
 * when it is already wrapped; with nothing selected it puts the markers
 * around the caret. A selection over several lines is wrapped line by line
 * (a marker does not cross a line), skipping empty lines.
 */
export function toggleInline(value, start, end, format) {
  const [before, after] = inlineMarkers[format];
  if (format === 'code' && value.slice(start, end).includes('\n')) return codeBlock(value, start, end);
  return wrap(value, start, end, before, after);
}

/** wrap is toggleInline with the markers given. */
export function wrap(value, start, end, before, after) {
  if (start === end) {
    return result(value.slice(0, start) + before + after + value.slice(end), start + before.length, start + before.length);
  }
  [start, end] = trimmed(value, start, end);
  if (wrapped(value, start, end, before, after)) {
    const out = value.slice(0, start - before.length) + value.slice(start, end) + value.slice(end + after.length);
    return result(out, start - before.length, end - before.length);
  }
  const selected = value.slice(start, end);
  if (selected.length >= before.length + after.length && selected.startsWith(before) && selected.endsWith(after)) {
    const inner = selected.slice(before.length, selected.length - after.length);
    return result(value.slice(0, start) + inner + value.slice(end), start, start + inner.length);
  }
  if (selected.includes('\n')) {
    const lines = selected.split('\n').map((line) => {
      const [a, b] = trimmed(line, 0, line.length);
      return a === b ? line : line.slice(0, a) + before + line.slice(a, b) + after + line.slice(b);
    });
    const joined = lines.join('\n');
    return result(value.slice(0, start) + joined + value.slice(end), start, start + joined.length);
  }
  // Backticks inside code need a longer run around them.
  if (before === '`' && selected.includes('`')) {
    const run = '`'.repeat(Math.max(...selected.match(/`+/g).map((s) => s.length)) + 1);
    return result(`${value.slice(0, start)}${run} ${selected} ${run}${value.slice(end)}`, start + run.length + 1, end + run.length + 1);
  }
  return result(value.slice(0, start) + before + selected + after + value.slice(end), start + before.length, end + before.length);
}

function codeBlock(value, start, end) {
  const selected = value.slice(start, end).replace(/^\n+|\n+$/g, '');
  const lead = start > 0 && value[start - 1] !== '\n' ? '\n' : '';
  const tail = end < value.length && value[end] !== '\n' ? '\n' : '';
  const block = `${lead}\`\`\`\n${selected}\n\`\`\`${tail}`;
  const from = start + lead.length + 4;
  return result(value.slice(0, start) + block + value.slice(end), from, from + selected.length);
}

const tagPattern = /\{(color|highlight):([a-z]{1,20})\}$/;

/**
 * toggleColor wraps the selection in {kind:name}…{/kind} (kind is color or
 * highlight). The same colour again unwraps it, another colour replaces
 * it, and name null removes it.
 */
export function toggleColor(value, start, end, kind, name) {
  [start, end] = start === end ? [start, end] : trimmed(value, start, end);
  const close = `{/${kind}}`;
  const open = tagPattern.exec(value.slice(Math.max(0, start - 40), start));
  if (open && open[1] === kind && value.slice(end, end + close.length) === close) {
    const from = start - open[0].length;
    const inner = value.slice(start, end);
    if (!name || open[2] === name) {
      return result(value.slice(0, from) + inner + value.slice(end + close.length), from, from + inner.length);
    }
    const tag = `{${kind}:${name}}`;
    return result(value.slice(0, from) + tag + inner + value.slice(end), from + tag.length, from + tag.length + inner.length);
  }
  if (!name) return result(value, start, end);
  return wrap(value, start, end, `{${kind}:${name}}`, close);
}

/**
 * link makes the selection a link's label and selects the URL to type; a
 * selected URL becomes the link's destination, with the caret in its label.
 */
export function link(value, start, end) {
  [start, end] = start === end ? [start, end] : trimmed(value, start, end);
  const selected = value.slice(start, end);
  if (/^(https?:\/\/|mailto:)\S+$/i.test(selected)) {
    return result(`${value.slice(0, start)}[](${selected})${value.slice(end)}`, start + 1, start + 1);
  }
  const placeholder = 'https://';
  const from = start + selected.length + 3;
  return result(`${value.slice(0, start)}[${selected}](${placeholder})${value.slice(end)}`, from, from + placeholder.length);
}

/** linePrefixes are the block formats, each a prefix of its lines. */
export const linePrefixes = {
  heading1: '# ',
  heading2: '## ',
  heading3: '### ',
  quote: '> ',
  bullets: '- ',
  numbers: null, // 1. 2. 3.
};

const headingPrefix = /^#{1,3}[ \t]+/;
const numberPrefix = /^\d{1,9}[.)][ \t]+/;

/**
 * toggleLines puts a block format's prefix on every line the selection
 * touches, or takes it off when all of them have it. A heading replaces
 * another heading's level; numbers count from 1.
 */
export function toggleLines(value, start, end, format) {
  const from = value.lastIndexOf('\n', start - 1) + 1;
  let to = value.indexOf('\n', end > start && value[end - 1] === '\n' ? end - 1 : end);
  if (to < 0) to = value.length;
  const lines = value.slice(from, to).split('\n');
  const prefix = linePrefixes[format];
  const has = (line) => (format === 'numbers' ? numberPrefix.test(line) : line.startsWith(prefix));
  const content = lines.filter((line) => line.trim() !== '');
  const remove = content.length > 0 && content.every(has);
  let n = 0;
  const out = lines.map((line) => {
    if (line.trim() === '' && lines.length > 1) return line;
    if (remove) return format === 'numbers' ? line.replace(numberPrefix, '') : line.slice(prefix.length);
    n += 1;
    const bare = format.startsWith('heading') ? line.replace(headingPrefix, '') : line;
    return (format === 'numbers' ? `${n}. ` : prefix) + bare;
  });
  const joined = out.join('\n');
  const next = value.slice(0, from) + joined + value.slice(to);
  if (start === end && lines.length === 1) {
    const caret = Math.max(from, start + joined.length - lines[0].length);
    return result(next, caret, caret);
  }
  return result(next, from, from + joined.length);
}

// markerRuns lists a line's runs of marker characters (*, ~, +, ^, `) as
// [char, from, to], with the text of code spans left out (a * inside `…`
// is text). A run ends at cut (the caret: "**|**" is two runs).
function markerRuns(line, cut) {
  const runs = [];
  let code = null; // the open backtick run while inside code
  for (let i = 0; i < line.length;) {
    const c = line[i];
    if (!'*~+^`'.includes(c) || (i > 0 && line[i - 1] === '\\')) { i++; continue; }
    let j = i;
    while (line[j] === c && (j === i || j !== cut)) j++;
    if (c === '`') {
      if (!code) code = [c, i, j];
      else if (j - i === code[2] - code[1]) { runs.push(code, [c, i, j]); code = null; }
    } else if (!code) {
      runs.push([c, i, j]);
    }
    i = j;
  }
  return runs;
}

// runFormats are the inline formats a run of markers opens or closes.
function runFormats(c, length) {
  switch (c) {
    case '*': return [...(length >= 2 ? ['bold'] : []), ...(length % 2 ? ['italic'] : [])];
    case '~': return [...(length >= 2 ? ['strike'] : []), ...(length % 2 ? ['subscript'] : [])];
    case '+': return length === 2 ? ['underline'] : [];
    case '^': return length === 1 ? ['superscript'] : [];
    case '`': return ['code'];
  }
  return [];
}

/**
 * activeFormats tells which formats the selection (or the caret) is inside
 * of, as the toolbar's pressed buttons: an inline format when the
 * selection lies between an opening marker and its closing one on its
 * line, a block format when every line it touches has the prefix (what
 * toggleInline and toggleLines would take off).
 */
export function activeFormats(value, start, end) {
  const active = new Set();
  const from = value.lastIndexOf('\n', start - 1) + 1;
  let to = value.indexOf('\n', start);
  if (to < 0) to = value.length;
  if (end <= to) {
    [start, end] = start === end ? [start, end] : trimmed(value, start, end);
    const open = new Map(); // format → where its content starts
    for (const [c, a, b] of markerRuns(value.slice(from, to), start === end ? start - from : -1)) {
      for (const format of runFormats(c, b - a)) {
        if (!open.has(format)) { open.set(format, from + b); continue; }
        if (open.get(format) <= start && end <= from + a) active.add(format);
        open.delete(format);
      }
    }
  }
  let last = value.indexOf('\n', end > start && value[end - 1] === '\n' ? end - 1 : end);
  if (last < 0) last = value.length;
  const lines = value.slice(from, last).split('\n').filter((line) => line.trim() !== '');
  if (lines.length) {
    for (const format of ['quote', 'bullets', 'numbers']) {
      if (lines.every((line) => (format === 'numbers' ? numberPrefix.test(line) : line.startsWith(linePrefixes[format])))) active.add(format);
    }
    if (lines.every((line) => headingPrefix.test(line))) active.add('heading');
  }
  return active;
}
