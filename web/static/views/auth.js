// The sign-in screen: log in, or register and log in.

import { h } from '../dom.js';
import { t, has } from '../i18n.js';
import * as controller from '../controller.js';
import { languagePicker, uid } from './common.js';

function authError(err, action) {
  // English shows the server's own sentence; other languages use their
  // catalogue's wording for the common cases.
  const key = `auth.error.${action}.${err.code}`;
  if (has(key)) return t(key, { seconds: err.retryAfter || 0 });
  if (has(`auth.error.${err.code}`)) return t(`auth.error.${err.code}`, { seconds: err.retryAfter || 0 });
  return controller.errorText(err);
}

/** mountAuth shows the sign-in screen in root; onSignedIn(session) runs after a login. */
export function mountAuth(root, { message, onSignedIn }) {
  const userId = uid('username');
  const passId = uid('password');
  const error = h('p', { class: 'auth-error', 'data-testid': 'auth-error', role: 'alert', hidden: true });
  const username = h('input', {
    id: userId, name: 'username', autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false',
    dir: 'auto', required: true, maxlength: '32', 'aria-describedby': `${userId}-hint`,
  });
  const password = h('input', {
    id: passId, name: 'password', type: 'password', autocomplete: 'current-password', required: true,
    'aria-describedby': `${passId}-hint`,
  });
  const login = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'login', value: 'login', text: t('auth.login') });
  const register = h('button', { type: 'submit', class: 'btn btn-secondary', 'data-testid': 'register', value: 'register', text: t('auth.register') });

  const showError = (text) => {
    error.textContent = text || '';
    error.hidden = !text;
  };

  let busy = false;
  const form = h('form', {
    class: 'auth-form', 'data-testid': 'auth-form', novalidate: true,
    onsubmit: async (event) => {
      event.preventDefault();
      if (busy) return;
      const action = event.submitter?.value === 'register' ? 'register' : 'login';
      const name = username.value.trim();
      if (!name || !password.value) {
        showError(t('auth.missing'));
        (name ? password : username).focus();
        return;
      }
      busy = true;
      form.setAttribute('aria-busy', 'true');
      login.disabled = register.disabled = true;
      showError('');
      try {
        const session = action === 'register'
          ? await controller.register(name, password.value)
          : await controller.signIn(name, password.value);
        onSignedIn(session);
      } catch (err) {
        showError(authError(err, action));
        password.select();
      } finally {
        busy = false;
        form.removeAttribute('aria-busy');
        login.disabled = register.disabled = false;
      }
    },
  },
  h('div', { class: 'field' },
    h('label', { for: userId, text: t('auth.username') }),
    username,
    h('p', { class: 'hint', id: `${userId}-hint`, text: t('auth.usernameHint') })),
  h('div', { class: 'field' },
    h('label', { for: passId, text: t('auth.password') }),
    password,
    h('p', { class: 'hint', id: `${passId}-hint`, text: t('auth.passwordHint') })),
  error,
  h('div', { class: 'auth-actions' }, login, register));

  if (message) showError(message);

  const screen = h('main', { class: 'auth' },
    h('div', { class: 'auth-card' },
      h('div', { class: 'brand' },
        h('img', { src: '/static/icon.svg', alt: '', width: '48', height: '48' }),
        h('div', {},
          h('h1', { text: 'Mapsim Chat' }),
          h('p', { class: 'tagline', text: t('auth.tagline') }))),
      form,
      h('div', { class: 'auth-foot' }, languagePicker(), h('p', { class: 'auth-note', text: t('auth.note') }))));

  root.replaceChildren(screen);
  root.className = 'root-auth';
  username.focus();
  return { unmount() { screen.remove(); } };
}
