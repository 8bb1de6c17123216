// The sign-in screen: log in, or create an account and log in, as the
// chosen tab says.

import { h } from '../dom.js';
import { t, has } from '../i18n.js';
import * as controller from '../account.js';
import { languagePicker, uid } from './common.js';

function authError(err, action) {
  // English shows the server's own sentence; other languages use their
  // catalogue's wording for the common cases.
  const key = `auth.error.${action}.${err.code}`;
  if (has(key)) return t(key, { seconds: err.retryAfter || 0 });
  if (has(`auth.error.${err.code}`)) return t(`auth.error.${err.code}`, { seconds: err.retryAfter || 0 });
  return controller.errorText(err);
}

/**
 * mountAuth shows the sign-in screen in root; onSignedIn(session) runs
 * after a login. Two tabs say what the form does, log in or create an
 * account, and Enter does what the chosen tab says.
 */
export function mountAuth(root, { message, onSignedIn }) {
  const userId = uid('username');
  const passId = uid('password');
  const error = h('p', { class: 'auth-error', 'data-testid': 'auth-error', role: 'alert', hidden: true });
  const offer = h('button', { type: 'button', class: 'link-btn', 'data-testid': 'offer-register', hidden: true, text: t('auth.offerRegister'), onclick: () => setMode('register', true) });
  const username = h('input', {
    id: userId, name: 'username', autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false',
    dir: 'auto', required: true, maxlength: '32',
  });
  const password = h('input', { id: passId, name: 'password', type: 'password', required: true });
  const userHint = h('p', { class: 'hint', id: `${userId}-hint`, text: t('auth.usernameHint') });
  const passHint = h('p', { class: 'hint', id: `${passId}-hint`, text: t('auth.passwordHint') });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' });
  const tabs = {
    login: h('button', { type: 'button', role: 'tab', id: uid('tab-login'), class: 'auth-tab', 'data-testid': 'mode-login', text: t('auth.login') }),
    register: h('button', { type: 'button', role: 'tab', id: uid('tab-register'), class: 'auth-tab', 'data-testid': 'mode-register', text: t('auth.register') }),
  };
  const tablist = h('div', { class: 'auth-tabs', role: 'tablist', 'aria-label': t('auth.mode') }, tabs.login, tabs.register);
  let mode = 'login';
  // The tabs' panel holds the form (a form may not itself be a tabpanel).
  const panel = h('div', { class: 'auth-panel', role: 'tabpanel' });

  const showError = (text, withOffer = false) => {
    error.textContent = text || '';
    error.hidden = !text;
    offer.hidden = !withOffer;
  };

  // setMode switches between logging in and creating an account: the tab,
  // the button, the browser's password manager hint and the rules shown.
  function setMode(next, focus = false) {
    mode = next;
    for (const [key, tab] of Object.entries(tabs)) {
      const on = key === mode;
      tab.setAttribute('aria-selected', String(on));
      tab.tabIndex = on ? 0 : -1;
    }
    panel.setAttribute('aria-labelledby', tabs[mode].id);
    form.dataset.mode = mode;
    submit.textContent = mode === 'register' ? t('auth.register') : t('auth.login');
    submit.dataset.testid = mode;
    submit.value = mode;
    password.autocomplete = mode === 'register' ? 'new-password' : 'current-password';
    userHint.hidden = passHint.hidden = mode !== 'register';
    if (mode === 'register') {
      username.setAttribute('aria-describedby', userHint.id);
      password.setAttribute('aria-describedby', passHint.id);
    } else {
      username.removeAttribute('aria-describedby');
      password.removeAttribute('aria-describedby');
    }
    showError('');
    if (focus) (username.value.trim() ? password : username).focus();
  }

  for (const [key, tab] of Object.entries(tabs)) tab.addEventListener('click', () => setMode(key));
  // The ARIA tabs pattern: arrows move between the two tabs, and select.
  tablist.addEventListener('keydown', (event) => {
    if (!['ArrowLeft', 'ArrowRight', 'Home', 'End'].includes(event.key)) return;
    event.preventDefault();
    const next = mode === 'login' ? 'register' : 'login';
    const target = event.key === 'Home' ? 'login' : event.key === 'End' ? 'register' : next;
    setMode(target);
    tabs[target].focus();
  });

  let busy = false;
  const form = h('form', {
    class: 'auth-form', 'data-testid': 'auth-form', novalidate: true,
    onsubmit: async (event) => {
      event.preventDefault();
      if (busy) return;
      const action = mode;
      const name = username.value.trim();
      if (!name || !password.value) {
        showError(t('auth.missing'));
        (name ? password : username).focus();
        return;
      }
      busy = true;
      form.setAttribute('aria-busy', 'true');
      submit.disabled = true;
      showError('');
      try {
        const session = action === 'register'
          ? await controller.register(name, password.value)
          : await controller.signIn(name, password.value);
        onSignedIn(session);
      } catch (err) {
        // A failed login may be a new user on the wrong tab: offer the other.
        showError(authError(err, action), action === 'login' && err.code === 'unauthorized');
        password.select();
      } finally {
        busy = false;
        form.removeAttribute('aria-busy');
        submit.disabled = false;
      }
    },
  },
  h('div', { class: 'field' },
    h('label', { for: userId, text: t('auth.username') }),
    username,
    userHint),
  h('div', { class: 'field' },
    h('label', { for: passId, text: t('auth.password') }),
    password,
    passHint),
  error,
  offer,
  h('div', { class: 'auth-actions' }, submit));
  panel.append(form);
  setMode('login');

  if (message) showError(message);

  const screen = h('main', { class: 'auth' },
    h('div', { class: 'auth-card' },
      h('div', { class: 'brand' },
        h('img', { src: '/static/icon.svg', alt: '', width: '48', height: '48' }),
        h('div', {},
          h('h1', { text: 'Mapsim Chat' }),
          h('p', { class: 'tagline', text: t('auth.tagline') }))),
      tablist,
      panel,
      h('div', { class: 'auth-foot' }, languagePicker(), h('p', { class: 'auth-note', text: t('auth.note') }))));

  root.replaceChildren(screen);
  root.className = 'root-auth';
  username.focus();
  return { unmount() { screen.remove(); } };
}
