// The theme: the system's (the default), light or dark, remembered in this
// browser. The stylesheet states its dark colours under
// `@media (prefers-color-scheme: dark)`; a chosen theme rewrites those
// media rules' conditions through the CSSOM (to "all" or "not all"), so the
// colours stay written once, and the page's color-scheme follows for form
// controls and scroll bars.

const key = 'mapsim.theme';
export const themes = ['system', 'light', 'dark'];
const original = new WeakMap(); // CSSMediaRule → its media text as written

/** theme is the chosen theme: 'system', 'light' or 'dark'. */
export function theme() {
  try {
    const v = localStorage.getItem(key);
    return themes.includes(v) ? v : 'system';
  } catch {
    return 'system';
  }
}

/** setTheme applies a theme and remembers it. */
export function setTheme(value) {
  if (!themes.includes(value)) value = 'system';
  try { localStorage.setItem(key, value); } catch { /* memory only */ }
  applyTheme();
}

/** applyTheme applies the remembered theme; call it once the stylesheet has loaded. */
export function applyTheme() {
  const chosen = theme();
  document.documentElement.dataset.theme = chosen;
  document.documentElement.style.colorScheme = chosen === 'system' ? 'light dark' : chosen;
  for (const sheet of document.styleSheets) {
    let rules;
    try { rules = sheet.cssRules; } catch { continue; }
    rewrite(rules, chosen);
  }
}

function rewrite(rules, chosen) {
  for (const rule of rules) {
    if (!(rule instanceof CSSMediaRule)) continue;
    if (!original.has(rule)) original.set(rule, rule.media.mediaText);
    const text = original.get(rule);
    const scheme = /prefers-color-scheme:\s*(dark|light)/.exec(text)?.[1];
    if (scheme && /^\(?\s*prefers-color-scheme:\s*(dark|light)\s*\)?$/.test(text.trim())) {
      rule.media.mediaText = chosen === 'system' ? text : chosen === scheme ? 'all' : 'not all';
    }
    rewrite(rule.cssRules, chosen);
  }
}
