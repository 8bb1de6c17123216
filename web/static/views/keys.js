// The key screens shown between sign-in and the chats: set up end-to-end
// encryption on an account's first sign-in (a recovery passphrase, a
// generated one offered), or restore the keys on a new browser with that
// passphrase. A lost passphrase can start over with new keys.

import { h } from '../dom.js';
import { t } from '../i18n.js';
import * as secure from '../secure.js';
import * as controller from '../controller.js';
import { languagePicker, uid } from './common.js';

// The passphrase on the setup screen outlives a re-render (a language
// switch rebuilds the screen), so that the words written down stay the
// words used.
let draft = null;
let draftFor = null;

function setupErrorText(err) {
  const known = ['wrong_passphrase', 'passphrase_short', 'identity_exists', 'no_backup', 'backup_mismatch', 'unsupported_algorithm'];
  if (known.includes(err?.code)) return t(`keys.error.${err.code}`, { min: secure.PASSPHRASE_MIN });
  if (err?.reason === 'unsupported_algorithm') return t('keys.error.unsupported_algorithm');
  return controller.errorText(err);
}

/**
 * mountKeys shows the setup (mode 'setup') or restore (mode 'restore')
 * screen in root; onDone() runs once this browser has its keys,
 * onSignOut() when the user leaves instead.
 */
export function mountKeys(root, { mode, username, onDone, onSignOut }) {
  if (draftFor !== username) {
    draft = null;
    draftFor = username;
  }
  let current = mode;
  let replace = false;
  const card = h('div', { class: 'auth-card keys-card' });
  const screen = h('main', { class: 'auth' }, card);

  const error = h('p', { class: 'auth-error', 'data-testid': 'key-error', role: 'alert', hidden: true });
  const showError = (text) => {
    error.textContent = text || '';
    error.hidden = !text;
  };

  const busyWhile = async (form, buttons, fn) => {
    form.setAttribute('aria-busy', 'true');
    for (const b of buttons) b.disabled = true;
    showError('');
    try {
      await fn();
    } catch (err) {
      showError(setupErrorText(err));
      if (err?.code === 'identity_exists') render('restore');
    } finally {
      form.removeAttribute('aria-busy');
      for (const b of buttons) b.disabled = false;
    }
  };

  function setupForm() {
    const id = uid('passphrase');
    const savedId = uid('saved');
    const input = h('input', {
      id, class: 'input passphrase', 'data-testid': 'recovery-passphrase', autocomplete: 'off', spellcheck: 'false',
      autocapitalize: 'none', dir: 'ltr', value: (draft ??= secure.suggestPassphrase()), 'aria-describedby': `${id}-hint`,
      oninput: () => { draft = input.value; },
    });
    const saved = h('input', { id: savedId, type: 'checkbox', 'data-testid': 'passphrase-saved' });
    const again = h('button', {
      type: 'button', class: 'btn btn-secondary btn-sm', 'data-testid': 'generate-passphrase', text: t('keys.generate'),
      onclick: () => { input.value = draft = secure.suggestPassphrase(); saved.checked = false; input.focus(); },
    });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'key-setup-submit', text: t('keys.setupSubmit') });
    const form = h('form', {
      class: 'auth-form', novalidate: true,
      onsubmit: (event) => {
        event.preventDefault();
        if (!saved.checked) {
          showError(t('keys.error.notSaved'));
          saved.focus();
          return;
        }
        busyWhile(form, [submit, again], async () => {
          await secure.createKeys(input.value.trim(), { replace });
          draft = null;
          onDone();
        });
      },
    },
    h('div', { class: 'field' },
      h('label', { for: id, text: t('keys.passphrase') }),
      input,
      h('p', { class: 'hint', id: `${id}-hint`, text: t('keys.passphraseHint') }),
      again),
    h('label', { class: 'check', for: savedId }, saved, h('span', { text: t('keys.saved') })),
    error, submit);
    return { form, focus: () => input.focus() };
  }

  function restoreForm() {
    const id = uid('restore');
    const input = h('input', {
      id, type: 'password', class: 'input', 'data-testid': 'restore-passphrase', autocomplete: 'off', spellcheck: 'false',
      autocapitalize: 'none', dir: 'ltr',
    });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'restore-submit', text: t('keys.restoreSubmit') });
    const reset = h('button', {
      type: 'button', class: 'link-btn', 'data-testid': 'key-reset', text: t('keys.lost'),
      onclick: () => {
        if (reset.dataset.armed !== 'true') {
          reset.dataset.armed = 'true';
          reset.textContent = t('keys.lostConfirm');
          return;
        }
        replace = true;
        render('setup');
      },
    });
    const form = h('form', {
      class: 'auth-form', novalidate: true,
      onsubmit: (event) => {
        event.preventDefault();
        if (!input.value.trim()) {
          showError(t('keys.error.empty'));
          input.focus();
          return;
        }
        busyWhile(form, [submit, reset], async () => {
          await secure.restore(input.value.trim());
          onDone();
        }).then(() => input.select());
      },
    },
    h('div', { class: 'field' },
      h('label', { for: id, text: t('keys.passphrase') }),
      input,
      h('p', { class: 'hint', text: t('keys.restoreHint') })),
    error, submit, reset);
    return { form, focus: () => input.focus() };
  }

  function render(next) {
    current = next;
    showError('');
    const part = current === 'setup' ? setupForm() : restoreForm();
    card.replaceChildren(
      h('div', { class: 'keys', 'data-testid': 'key-setup', 'data-mode': current },
        h('div', { class: 'brand' },
          h('img', { src: '/static/icon.svg', alt: '', width: '48', height: '48' }),
          h('div', {},
            h('h1', { text: current === 'setup' ? (replace ? t('keys.resetTitle') : t('keys.setupTitle')) : t('keys.restoreTitle') }),
            h('p', { class: 'tagline', dir: 'auto', text: username }))),
        h('p', { class: 'dialog-text', text: current === 'setup' ? (replace ? t('keys.resetText') : t('keys.setupText')) : t('keys.restoreText') }),
        part.form,
        h('div', { class: 'auth-foot' }, languagePicker(),
          h('button', { type: 'button', class: 'link-btn', 'data-testid': 'key-sign-out', text: t('auth.logout'), onclick: onSignOut }))));
    part.focus();
  }

  render(current);
  root.replaceChildren(screen);
  root.className = 'root-auth';
  return { unmount() { screen.remove(); }, mode: () => current };
}
