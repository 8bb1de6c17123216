// Mapsim Chat's browser client: the entry point. It picks the language,
// restores the sign-in from the refresh cookie and shows the sign-in screen, the
// key setup or restore screen (end-to-end encryption), or the main screen.

import { setLanguage, preferredLanguage, onLanguage, t } from './i18n.js';
import { restoreSession, clearSession } from './session.js';
import * as secure from './secure.js';
import * as controller from './controller.js';
import { mountAuth } from './views/auth.js';
import { mountShell } from './views/shell.js';
import { mountKeys } from './views/keys.js';
import { applyTheme } from './theme.js';

const root = document.getElementById('root');
let screen = null;
let signedIn = false;
let keys = null; // {mode, session} while the key screen shows

function showAuth(message) {
  signedIn = false;
  keys = null;
  screen?.unmount();
  screen = mountAuth(root, { message, onSignedIn: enter });
}

// enter opens this browser's end-to-end encryption keys for a session:
// straight to the chats when they are here, else the setup or restore
// screen first.
async function enter(session) {
  let mode;
  try {
    mode = await secure.prepare(session.username);
  } catch (err) {
    secure.close();
    clearSession();
    showAuth(err.status === 401 ? t('auth.expired') : t('keys.error.load', { reason: controller.errorText(err) }));
    return;
  }
  if (mode === 'ready') {
    controller.start(session); // sets the user synchronously, then loads
    showMain({ focus: true });
    return;
  }
  showKeys(mode, session);
}

function showKeys(mode, session) {
  signedIn = false;
  keys = { mode, session };
  screen?.unmount();
  screen = mountKeys(root, {
    mode,
    username: session.username,
    onDone: () => {
      keys = null;
      controller.start(session);
      showMain({ focus: true });
    },
    onSignOut: () => controller.logout(),
  });
}

function showMain(options) {
  signedIn = true;
  keys = null;
  screen?.unmount();
  screen = mountShell(root, options);
}

// A language switch rebuilds the screen from the store; the connection,
// the messages, drafts and pending sends stay as they are.
function remount() {
  if (signedIn) {
    const showChat = screen?.isChatOpen?.() || false;
    showMain({ showChat });
  } else if (keys) {
    showKeys(screen?.mode?.() || keys.mode, keys.session);
  } else {
    showAuth();
  }
}

async function boot() {
  applyTheme();
  window.addEventListener('load', applyTheme, { once: true }); // in case the stylesheet was still loading
  await setLanguage(preferredLanguage());
  controller.onSignedOut((message) => showAuth(message));
  onLanguage(remount);
  let session = null;
  let message;
  try {
    session = await restoreSession();
  } catch {
    message = t('error.network');
  }
  if (session) {
    enter(session);
  } else {
    showAuth(message);
  }
}

boot();
