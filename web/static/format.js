// Dates, times and sizes in the language in use.

import { language, t } from './i18n.js';

function locale() {
  return language().code;
}

/** time is "14:05" (or the locale's form) for a timestamp. */
export function time(ts) {
  return new Intl.DateTimeFormat(locale(), { hour: 'numeric', minute: '2-digit' }).format(new Date(ts));
}

/** fullDateTime is a long date and time, for tooltips. */
export function fullDateTime(ts) {
  return new Intl.DateTimeFormat(locale(), { dateStyle: 'full', timeStyle: 'short' }).format(new Date(ts));
}

/** dayKey identifies a local calendar day. */
export function dayKey(ts) {
  const d = new Date(ts);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

function daysAgo(ts) {
  const d = new Date(ts);
  const today = new Date();
  const a = Date.UTC(d.getFullYear(), d.getMonth(), d.getDate());
  const b = Date.UTC(today.getFullYear(), today.getMonth(), today.getDate());
  return Math.round((b - a) / 86400000);
}

/** dayLabel is "Today", "Yesterday" or a date, for day separators. */
export function dayLabel(ts) {
  const ago = daysAgo(ts);
  if (ago === 0) return t('day.today');
  if (ago === 1) return t('day.yesterday');
  const sameYear = new Date(ts).getFullYear() === new Date().getFullYear();
  return new Intl.DateTimeFormat(locale(), sameYear
    ? { weekday: 'long', month: 'long', day: 'numeric' }
    : { year: 'numeric', month: 'long', day: 'numeric' }).format(new Date(ts));
}

/** shortWhen is a compact last-activity label for the chat list. */
export function shortWhen(ts) {
  if (!ts) return '';
  const ago = daysAgo(ts);
  if (ago === 0) return time(ts);
  if (ago === 1) return t('day.yesterday');
  if (ago < 7) return new Intl.DateTimeFormat(locale(), { weekday: 'short' }).format(new Date(ts));
  return new Intl.DateTimeFormat(locale(), { month: 'short', day: 'numeric' }).format(new Date(ts));
}

/** fileSize is "12 KB" and the like. */
export function fileSize(bytes) {
  const units = ['B', 'KB', 'MB', 'GB'];
  let n = Number(bytes) || 0;
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  const value = i === 0 ? n : Math.round(n * 10) / 10;
  return t('size.' + units[i], { n: value });
}
