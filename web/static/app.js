// Mapsim Chat's browser client: the entry point. It picks the language,
// restores the session kept in this tab and shows the sign-in or the main screen.

import { setLanguage, preferredLanguage, onLanguage } from './i18n.js';
import { loadSession } from './session.js';
import * as controller from './controller.js';
import { mountAuth } from './views/auth.js';
import { mountShell } from './views/shell.js';

const root = document.getElementById('root');
let screen = null;
let signedIn = false;

function showAuth(message) {
  signedIn = false;
  screen?.unmount();
  screen = mountAuth(root, {
    message,
    onSignedIn: (session) => {
      controller.start(session); // sets the user synchronously, then loads
      showMain();
    },
  });
}

function showMain(options) {
  signedIn = true;
  screen?.unmount();
  screen = mountShell(root, options);
}

// A language switch rebuilds the screen from the store; the connection,
// the messages, drafts and pending sends stay as they are.
function remount() {
  if (signedIn) {
    const showChat = screen?.isChatOpen?.() || false;
    showMain({ showChat });
  } else {
    showAuth();
  }
}

async function boot() {
  await setLanguage(preferredLanguage());
  controller.onSignedOut((message) => showAuth(message));
  onLanguage(remount);
  const session = loadSession();
  if (session) {
    controller.start(session);
    showMain();
  } else {
    showAuth();
  }
}

boot();
