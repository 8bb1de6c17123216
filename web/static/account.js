// Signing in and up, and the words for a failed call: all the sign-in
// screen needs, so that it loads without the chat modules (app.js imports
// those once someone is signed in).

import * as api from './api.js';
import * as session from './session.js';
import { t } from './i18n.js';

/** errorText is what to tell the user about a failed call. */
export function errorText(err) {
  if (!err) return t('error.generic');
  if (err.code === 'network') return t('error.network');
  return err.detail || t('error.generic');
}

/** signIn logs in and keeps the session (controller.start starts it). */
export async function signIn(username, password) {
  // "cookie": a short-lived token for this page, and the refresh cookie
  // that keeps this browser signed in (see session.js).
  const answer = await api.post('/login/', { username, password, cookie: true });
  session.clearSession();
  session.saveSession({ ...answer, username: answer.username || username });
  return session.loadSession();
}

/** register makes an account and logs in with it. */
export async function register(username, password) {
  await api.post('/register/', { username, password });
  return signIn(username, password);
}
