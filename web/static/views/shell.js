// The signed-in screen: sidebar, chat view, connection banner, toasts.
// On narrow screens the sidebar and the chat are separate panes.

import { h } from '../dom.js';
import { t } from '../i18n.js';
import * as store from '../store.js';
import { state } from '../store.js';
import * as controller from '../controller.js';
import { mountSidebar } from './sidebar.js';
import { mountChat } from './chat.js';
import { mountToasts } from './toast.js';

const narrowQuery = window.matchMedia('(max-width: 760px)');

/**
 * mountShell shows the main screen in root and returns {unmount}. With
 * focus (after a sign-in) the composer of the first chat opened takes the
 * focus, or on a narrow screen that chat in the list.
 */
export function mountShell(root, { showChat = false, focus = false } = {}) {
  const banner = h('div', { class: 'banner', 'data-testid': 'connection-banner', role: 'status', hidden: true },
    h('span', { class: 'spinner', 'aria-hidden': 'true' }),
    h('span', { text: t('connection.reconnecting') }),
    h('button', { type: 'button', class: 'link-btn', text: t('connection.retry'), onclick: () => controller.reconnectNow() }));

  // The whole signed-in screen is the page's main landmark (on a phone the
  // chat list and the chat take turns, so neither alone could be).
  const app = h('main', { class: 'app', 'data-testid': 'app' });
  let chatPaneOpen = showChat;

  const setPane = (open) => {
    chatPaneOpen = open;
    app.classList.toggle('show-chat', open);
    controller.setChatVisible(!narrowQuery.matches || open);
  };

  const sidebar = mountSidebar({ onOpen: (name) => { controller.openChat(name); setPane(true); chat.focusComposer(); } });
  const chat = mountChat({ onBack: () => { setPane(false); sidebar.focusCurrent(); } });
  const toasts = mountToasts();
  // A keyboard user's first Tab offers a way past the sidebar.
  const skip = h('a', {
    class: 'skip-link', 'data-testid': 'skip-link', href: '#chat-pane', text: t('a11y.skip'),
    onclick: (event) => { event.preventDefault(); setPane(true); chat.focusMain(); },
  });
  app.append(skip, h('h1', { class: 'sr-only', text: 'Mapsim Chat' }), banner, sidebar.element, chat.element, toasts.element);

  const renderBanner = () => {
    banner.hidden = state.connection !== 'reconnecting';
    app.classList.toggle('is-offline', state.connection === 'reconnecting');
  };
  const offs = [
    store.on('connection', renderBanner),
    store.on('current', (name) => { if (!name && narrowQuery.matches) setPane(false); }),
  ];
  let wantFocus = focus;
  const focusFirst = () => {
    if (!wantFocus || !state.current) return;
    wantFocus = false;
    if (narrowQuery.matches && !chatPaneOpen) sidebar.focusCurrent();
    else chat.focusComposer();
  };
  offs.push(store.on('current', () => queueMicrotask(focusFirst)));
  const onMedia = () => setPane(chatPaneOpen);
  narrowQuery.addEventListener('change', onMedia);
  renderBanner();
  setPane(chatPaneOpen);

  root.replaceChildren(app);
  root.className = 'root-app';
  queueMicrotask(focusFirst);
  return {
    isChatOpen: () => chatPaneOpen,
    unmount() {
      for (const off of offs) off();
      narrowQuery.removeEventListener('change', onMedia);
      sidebar.unmount();
      chat.unmount();
      toasts.off();
      app.remove();
    },
  };
}
