// Mapsim Chat's browser client: the entry point. It picks the language,
// restores the sign-in from the refresh cookie and shows the sign-in screen, the
// key setup or restore screen (end-to-end encryption), or the main screen.

//
// Only the sign-in screen's modules load with the page; the chat modules
// (the controller, end-to-end encryption, the views, Markdown…) are
// imported once someone is signed in, so a first visit fetches a fraction
// of the client. The server's import map versions these imports too.

import { setLanguage, preferredLanguage, onLanguage, t } from './i18n.js';
import { restoreSession, clearSession } from './session.js';
import { errorText } from './account.js';
import { mountAuth } from './views/auth.js';
import { applyTheme } from './theme.js';

const root = document.getElementById('root');
let screen = null;
let signedIn = false;
let keys = null; // {mode, session} while the key screen shows

// The signed-in modules, once loaded: secure, controller, mountShell,
// mountKeys.
let secure = null;
let controller = null;
let mountShell = null;
let mountKeys = null;
let loading = null;

function loadApp() {
  loading ||= Promise.all([
    import('./secure.js'),
    import('./controller.js'),
    import('./views/shell.js'),
    import('./views/keys.js'),
  ]).then(([secureModule, controllerModule, shell, keysView]) => {
    secure = secureModule;
    controller = controllerModule;
    mountShell = shell.mountShell;
    mountKeys = keysView.mountKeys;
    controller.onSignedOut((message) => showAuth(message));
  }).catch((err) => {
    loading = null; // a later sign-in tries again
    throw err;
  });
  return loading;
}

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
    await loadApp();
  } catch {
    clearSession();
    showAuth(t('error.network'));
    return;
  }
  try {
    mode = await secure.prepare(session.username);
  } catch (err) {
    secure.close();
    clearSession();
    showAuth(err.status === 401 ? t('auth.expired') : t('keys.error.load', { reason: errorText(err) }));
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
  // The language and the sign-in load side by side; signed in, so do the
  // chat modules.
  const language = setLanguage(preferredLanguage());
  let session = null;
  let unreachable = false;
  try {
    session = await restoreSession();
  } catch {
    unreachable = true;
  }
  if (session) loadApp().catch(() => {}); // enter() reports a failure
  await language;
  onLanguage(remount);
  const message = unreachable ? t('error.network') : undefined;
  if (session) {
    enter(session);
  } else {
    showAuth(message);
  }
}

boot();
