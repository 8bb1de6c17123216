// The signed-in session. The access token is short-lived and lives only
// in this page's memory, never in storage or a URL. What makes a sign-in
// last (a reload, a new tab, a browser restart) is the refresh token in an
// HttpOnly cookie that page script cannot read: the server sends it to
// /session/refresh only, and trades it there for a new access token and a
// new cookie. Tabs take turns refreshing (navigator.locks), because a
// cookie traded twice ends the sign-in everywhere (replay detection).

const refreshPath = '/session/refresh';
const lockName = 'mapsim.refresh';
// Kept by older versions of this client in sessionStorage; removed.
const oldKeys = ['mapsim.token', 'mapsim.username'];

let token = null;
let username = null;
let expiresAt = 0; // ms since the epoch
let timer = 0;
let inFlight = null;
let expired = () => {};

/** onExpired sets what happens when a background refresh finds the sign-in over. */
export function onExpired(fn) {
  expired = fn;
}

/** loadSession returns the session in memory, or null. */
export function loadSession() {
  return token && username ? { token, username } : null;
}

/**
 * saveSession keeps a new access token in memory (never in storage) and
 * schedules its renewal before it expires. next is the server's token
 * answer: { access_token, expires_in, username }.
 */
export function saveSession(next) {
  if (username && next.username && next.username !== username) {
    // The cookie now belongs to another account (signed in as someone
    // else in another tab): this tab's sign-in is over.
    clearSession();
    return false;
  }
  token = next.access_token;
  username = next.username || username;
  const lifetime = Math.max(10, Number(next.expires_in) || 0) * 1000;
  expiresAt = Date.now() + lifetime;
  clearTimeout(timer);
  // Renew at three quarters of the lifetime, so that a request rarely
  // meets an expired token; one that does refreshes and retries.
  timer = setTimeout(() => {
    refreshSession().then((ok) => { if (ok === false && !token) expired(); });
  }, lifetime * 0.75);
  return true;
}

/** clearSession forgets the session and anything kept for it. */
export function clearSession() {
  token = username = null;
  expiresAt = 0;
  clearTimeout(timer);
  try {
    for (const key of oldKeys) sessionStorage.removeItem(key);
    sessionStorage.removeItem('mapsim.outbox');
  } catch { /* nothing kept */ }
}

/** currentToken is the access token, or null when signed out. */
export function currentToken() {
  return token;
}

/** currentUsername is the signed-in user's name, or null. */
export function currentUsername() {
  return username;
}

/**
 * restoreSession signs this page in from the refresh cookie (a reload, a
 * new tab, a browser restart). It resolves to the session, or null when
 * there is none to restore; it rejects with {code: 'network'} when the
 * server cannot be reached, so the caller can tell "signed out" apart.
 */
export async function restoreSession() {
  try {
    for (const key of oldKeys) sessionStorage.removeItem(key);
  } catch { /* nothing kept */ }
  const ok = await refreshSession();
  if (ok === null) throw Object.assign(new Error('network'), { code: 'network', status: 0 });
  return ok ? loadSession() : null;
}

/** expiresSoon says whether the access token expires within ms. */
export function expiresSoon(ms) {
  return !token || Date.now() + ms >= expiresAt;
}

/**
 * refreshSession trades the refresh cookie for a new access token. It
 * resolves to true (renewed), false (the sign-in is over: the session is
 * cleared) or null (the server could not be reached; nothing changed).
 * Calls in one tab share one request, and tabs take turns.
 */
export function refreshSession() {
  if (!inFlight) {
    inFlight = withLock(trade).finally(() => { inFlight = null; });
  }
  return inFlight;
}

async function trade() {
  let response;
  try {
    response = await fetch(refreshPath, {
      method: 'POST', credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' },
    });
  } catch {
    return null;
  }
  if (response.status === 204 || response.status === 401 || response.status === 403) {
    clearSession();
    return false;
  }
  if (!response.ok) return null;
  let body;
  try { body = await response.json(); } catch { return null; }
  return saveSession(body);
}

// withLock runs fn while holding the refresh lock shared by this
// browser's tabs, so that no two of them trade the same cookie; a browser
// without Web Locks relies on the server's short grace instead.
function withLock(fn) {
  if (globalThis.navigator?.locks?.request) return navigator.locks.request(lockName, fn);
  return fn();
}
