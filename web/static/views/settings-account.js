// Settings sections about the account: change my password, and the
// sessions signed in to it (each browser and terminal), which I can end.

import { h, userText } from '../dom.js';
import { icon } from '../icons.js';
import { t } from '../i18n.js';
import * as api from '../api.js';
import * as controller from '../controller.js';
import { shortWhen, fullDateTime } from '../format.js';
import { confirmDialog } from './dialogs.js';
import { uid } from './common.js';

// field is a labelled password input.
function passwordField(name, label, autocomplete) {
  const id = uid(name);
  const input = h('input', { id, name, type: 'password', autocomplete, required: true, 'data-testid': name });
  return { input, node: h('div', { class: 'field' }, h('label', { for: id, text: label }), input) };
}

function passwordPanel() {
  const current = passwordField('current-password', t('account.currentPassword'), 'current-password');
  const next = passwordField('new-password', t('account.newPassword'), 'new-password');
  const again = passwordField('new-password-again', t('account.newPasswordAgain'), 'new-password');
  const error = h('p', { class: 'form-error', role: 'alert', 'data-testid': 'password-error', hidden: true });
  const done = h('p', { class: 'form-done', role: 'status', 'data-testid': 'password-done', hidden: true });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'change-password', text: t('account.changePassword') });
  const show = (el, text) => { el.textContent = text || ''; el.hidden = !text; };
  let busy = false;
  const form = h('form', {
    class: 'account-form', novalidate: true,
    onsubmit: async (event) => {
      event.preventDefault();
      if (busy) return;
      show(error, '');
      show(done, '');
      if (!current.input.value || !next.input.value) {
        show(error, t('account.passwordMissing'));
        (current.input.value ? next.input : current.input).focus();
        return;
      }
      if (next.input.value !== again.input.value) {
        show(error, t('account.passwordMismatch'));
        again.input.focus();
        return;
      }
      busy = true;
      submit.disabled = true;
      form.setAttribute('aria-busy', 'true');
      try {
        const answer = await api.post('/password/', { current_password: current.input.value, new_password: next.input.value });
        form.reset();
        show(done, t('account.passwordChanged', { count: answer.ended || 0 }));
      } catch (err) {
        show(error, controller.errorText(err));
        (err.code === 'invalid' ? next.input : current.input).select();
      } finally {
        busy = false;
        submit.disabled = false;
        form.removeAttribute('aria-busy');
      }
    },
  }, current.node, next.node, again.node, h('p', { class: 'hint', text: t('auth.passwordHint') }), error, done, submit);
  return h('div', { class: 'account-panel', 'data-testid': 'password-panel' },
    h('p', { class: 'dialog-text', text: t('account.passwordText') }), form);
}

// deviceLabel names a session's browser and system, or says it is unknown.
function deviceLabel(s) {
  if (s.browser && s.os) return t('sessions.device', { browser: s.browser, os: s.os });
  return s.browser || s.os || t('sessions.unknownDevice');
}

function sessionsPanel() {
  const list = h('ul', { class: 'device-list', role: 'list', 'aria-busy': 'true', 'data-testid': 'session-list' });
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const status = h('p', { class: 'form-done', role: 'status', 'data-testid': 'sessions-status', hidden: true });
  const endOthers = h('button', {
    type: 'button', class: 'btn btn-danger', 'data-testid': 'end-other-sessions', text: t('sessions.endOthers'), hidden: true,
    onclick: async () => {
      const ok = await confirmDialog({ title: t('sessions.endOthers'), message: t('sessions.endOthersText'), confirm: t('sessions.endOthers'), danger: true });
      if (!ok) return;
      try {
        const answer = await api.post('/sessions/end-others/');
        status.textContent = t('sessions.ended', { count: answer.ended || 0 });
        status.hidden = false;
        render();
      } catch (err) { fail(err); }
    },
  });
  const fail = (err) => { error.textContent = controller.errorText(err); error.hidden = false; };
  const render = async () => {
    let sessions;
    try {
      sessions = (await api.get('/sessions/')).sessions || [];
    } catch (err) { fail(err); return; }
    error.hidden = true;
    list.removeAttribute('aria-busy');
    endOthers.hidden = !sessions.some((s) => !s.current);
    list.replaceChildren(...sessions.map((s) => h('li', {
      class: 'device', 'data-testid': 'session-row', 'data-session-id': String(s.id), 'data-current': s.current ? 'true' : 'false',
    },
    icon(s.current ? 'check' : 'globe', 'device-icon'),
    h('div', { class: 'device-info' },
      // The label comes from the session's User-Agent: text the client chose.
      userText('span', deviceLabel(s), { class: 'device-name', title: s.user_agent || '' }),
      s.current ? h('span', { class: 'hint', 'data-testid': 'this-session', text: t('sessions.thisBrowser') }) : null,
      h('span', {
        class: 'hint', title: `${fullDateTime(s.created_at)} · ${fullDateTime(s.last_used_at)}`,
        text: t('sessions.meta', { created: shortWhen(s.created_at), used: shortWhen(s.last_used_at), ip: s.ip || '' }),
      })),
    s.current ? null : h('button', {
      type: 'button', class: 'btn btn-danger btn-sm', 'data-testid': 'end-session', text: t('sessions.end'),
      'aria-label': t('sessions.endNamed', { name: deviceLabel(s) }),
      onclick: async () => {
        const ok = await confirmDialog({ title: t('sessions.endTitle'), message: t('sessions.endText', { name: deviceLabel(s) }), confirm: t('sessions.end'), danger: true });
        if (!ok) return;
        try {
          await api.request('DELETE', `/sessions/${s.id}`);
          render();
        } catch (err) {
          if (err.status === 404) render(); else fail(err);
        }
      },
    }))));
  };
  render();
  return h('div', { class: 'account-panel', 'data-testid': 'sessions-panel' },
    h('p', { class: 'dialog-text', text: t('sessions.text') }), list, error, status, endOthers);
}

/** accountSections: see settings.js for a section's shape. */
export const accountSections = [
  { id: 'password', icon: 'lock', label: () => t('account.password'), build: () => passwordPanel() },
  { id: 'sessions', icon: 'globe', label: () => t('sessions.title'), build: () => sessionsPanel() },
];
