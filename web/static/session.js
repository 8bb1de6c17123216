// The signed-in session: the access token lives in memory and in
// sessionStorage (so a reload keeps you signed in), never in a URL.

const tokenKey = 'mapsim.token';
const userKey = 'mapsim.username';

let token = null;
let username = null;

/** loadSession restores a session kept in this tab, or returns null. */
export function loadSession() {
  try {
    token = sessionStorage.getItem(tokenKey);
    username = sessionStorage.getItem(userKey);
  } catch {
    token = username = null;
  }
  return token && username ? { token, username } : null;
}

/** saveSession keeps a new session in memory and in this tab's storage. */
export function saveSession(next) {
  token = next.token;
  username = next.username;
  try {
    sessionStorage.setItem(tokenKey, token);
    sessionStorage.setItem(userKey, username);
  } catch { /* memory only */ }
}

/** clearSession forgets the session and anything kept for it. */
export function clearSession() {
  token = username = null;
  try {
    sessionStorage.removeItem(tokenKey);
    sessionStorage.removeItem(userKey);
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
