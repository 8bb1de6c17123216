// The composer: Enter sends, Shift+Enter makes a new line; a formatting
// toolbar and shortcuts (format-bar.js); emoji picker; files by button,
// drag-and-drop and paste, with upload progress; replies.

import { h } from '../dom.js';
import { icon } from '../icons.js';
import { t, formatNumber } from '../i18n.js';
import { state, emit } from '../store.js';
import * as local from '../local.js';
import * as controller from '../controller.js';
import * as files from '../files.js';
import { plain } from '../markdown.js';
import { fileSize } from '../format.js';
import { emojiGroups } from '../emoji.js';
import { iconButton, uid } from './common.js';
import { mountFormatBar } from './format-bar.js';

// Replies outlive a re-render (a language switch) and follow the chat;
// drafts are kept per chat across reloads too (local.js).
const replies = new Map();
const uploads = { queue: [], current: null, wait: null };

function imageSize(file) {
  return new Promise((resolve) => {
    const url = URL.createObjectURL(file);
    const img = new Image();
    img.onload = () => resolve({ url, width: img.naturalWidth, height: img.naturalHeight });
    img.onerror = () => { URL.revokeObjectURL(url); resolve(null); };
    img.src = url;
  });
}

/** mountComposer builds the composer; onEditLast() edits my last message (ArrowUp in an empty box). */
export function mountComposer({ onEditLast, onSent }) {
  const inputId = uid('composer');
  const textarea = h('textarea', {
    id: inputId, class: 'composer-input', 'data-testid': 'composer', rows: '1', dir: 'auto',
    'aria-label': t('composer.label'), placeholder: t('composer.placeholder'), enterkeyhint: 'send',
  });
  const fileInput = h('input', { type: 'file', class: 'sr-only', 'data-testid': 'file-input', multiple: true, tabindex: '-1', 'aria-hidden': 'true' });
  const attach = iconButton('attach', t('composer.attach'), { 'data-testid': 'attach', onclick: () => fileInput.click() });
  const emojiButton = iconButton('emoji', t('composer.emoji'), { 'data-testid': 'emoji', 'aria-haspopup': 'true', 'aria-expanded': 'false' });
  const send = h('button', { type: 'submit', class: 'send-btn', 'data-testid': 'send', 'aria-label': t('composer.send'), title: t('composer.send') }, icon('send', 'flip-rtl'));

  const replyText = h('span', { class: 'rb-text', dir: 'auto' });
  const replyWho = h('span', { class: 'rb-who', dir: 'auto' });
  const replyBar = h('div', { class: 'reply-bar', hidden: true },
    icon('reply', 'rb-icon'),
    h('div', { class: 'rb-body' }, h('span', { class: 'rb-label' }, h('span', { text: t('composer.replyingTo') }), ' ', replyWho), replyText),
    iconButton('close', t('composer.cancelReply'), { onclick: () => setReply(null) }));

  const uploadName = h('span', { class: 'ub-name', dir: 'auto' });
  const uploadPct = h('span', { class: 'ub-pct' });
  const progress = h('progress', { class: 'ub-progress', 'data-testid': 'upload-progress', max: '1', value: '0', 'aria-label': t('composer.uploading') });
  const uploadBar = h('div', { class: 'upload-bar', hidden: true },
    icon('attach', 'ub-icon'),
    h('div', { class: 'ub-body' }, h('div', { class: 'ub-row' }, uploadName, uploadPct), progress),
    iconButton('close', t('composer.cancelUpload'), { onclick: () => cancelUploads() }));

  const picker = buildEmojiPicker((emoji) => insert(emoji));
  const formatting = mountFormatBar(textarea);
  const form = h('form', { class: 'composer', onsubmit: (event) => { event.preventDefault(); submit(); } },
    formatting.toolbar, attach, fileInput, textarea, formatting.toggle, emojiButton, send, picker.element);
  const element = h('div', { class: 'composer-wrap' }, replyBar, uploadBar, form);

  function chatName() {
    return state.current;
  }

  function grow() {
    textarea.style.height = 'auto';
    textarea.style.height = `${Math.min(textarea.scrollHeight, Math.max(120, window.innerHeight * 0.35))}px`;
    form.classList.toggle('has-text', textarea.value.trim().length > 0);
  }

  function submit() {
    const name = chatName();
    const text = textarea.value;
    if (!name || !text.trim()) return;
    const reply = replies.get(name);
    if (!controller.sendText(text, reply?.id || 0)) return;
    textarea.value = '';
    local.setDraft(name, '');
    emit('drafts', name);
    setReply(null);
    grow();
    onSent?.();
  }

  function insert(text) {
    textarea.focus();
    textarea.setRangeText(text, textarea.selectionStart, textarea.selectionEnd, 'end');
    textarea.dispatchEvent(new Event('input'));
  }

  function setReply(m) {
    const name = chatName();
    if (!name) return;
    if (m) replies.set(name, m);
    else replies.delete(name);
    renderReply();
  }

  function renderReply() {
    const m = replies.get(chatName());
    replyBar.hidden = !m;
    if (!m) return;
    replyWho.textContent = m.username;
    replyText.textContent = m.type === 'file' ? `📎 ${m.file?.name || t('message.file')}` : plain(m.text || '');
  }

  textarea.addEventListener('input', () => {
    const name = chatName();
    if (name) {
      local.setDraft(name, textarea.value);
      emit('drafts', name);
    }
    grow();
    controller.typingChanged(textarea.value);
  });
  textarea.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      submit();
    } else if (event.key === 'Escape' && replies.get(chatName())) {
      event.preventDefault();
      setReply(null);
    } else if (event.key === 'ArrowUp' && textarea.value === '' && onEditLast) {
      if (onEditLast()) event.preventDefault();
    }
  });
  textarea.addEventListener('paste', (event) => {
    const pasted = [...(event.clipboardData?.files || [])];
    if (pasted.length) {
      event.preventDefault();
      addFiles(pasted);
    }
  });
  fileInput.addEventListener('change', () => {
    addFiles([...fileInput.files]);
    fileInput.value = '';
  });

  // ---- emoji ----
  const closePicker = (refocus) => {
    picker.element.hidden = true;
    emojiButton.setAttribute('aria-expanded', 'false');
    document.removeEventListener('mousedown', outside, true);
    if (refocus) emojiButton.focus();
  };
  const outside = (event) => {
    if (!picker.element.contains(event.target) && !emojiButton.contains(event.target)) closePicker(false);
  };
  emojiButton.addEventListener('click', () => {
    if (!picker.element.hidden) { closePicker(true); return; }
    picker.element.hidden = false;
    emojiButton.setAttribute('aria-expanded', 'true');
    document.addEventListener('mousedown', outside, true);
    picker.first().focus();
  });
  picker.element.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') { event.preventDefault(); event.stopPropagation(); closePicker(true); }
  });
  picker.onPicked = () => closePicker(false);

  // ---- uploads ----
  // A file over the server's limit is refused here, before any byte goes up.
  function addFiles(list) {
    const name = chatName();
    if (!name || !list.length) return;
    const fitting = list.filter((file) => {
      if (!controller.tooLarge(file)) return true;
      controller.toast(t('composer.fileTooLarge', { name: file.name || t('message.file'), size: fileSize(file.size), max: fileSize(controller.uploadLimit()) }));
      return false;
    });
    if (!fitting.length) return;
    const reply = replies.get(name);
    for (const file of fitting) uploads.queue.push({ file, chatName: name, replyTo: reply?.id || 0 });
    setReply(null);
    if (!uploads.current) nextUpload();
  }

  async function nextUpload() {
    const job = uploads.queue.shift();
    if (!job) {
      uploads.current = null;
      uploadBar.hidden = true;
      return;
    }
    uploads.current = job;
    uploadBar.hidden = false;
    uploadName.textContent = job.file.name || t('message.file');
    const show = (fraction) => {
      progress.value = fraction;
      uploadPct.textContent = `${formatNumber(Math.round(fraction * 100))}%`;
    };
    show(0);
    const local = job.file.type.startsWith('image/') ? await imageSize(job.file) : null;
    job.request = controller.upload(job.chatName, job.file, show);
    try {
      const answer = await job.request.promise;
      show(1);
      if (local && answer.e2ee) {
        if (answer.file.thumb) files.seed(`e2ee:/file/${answer.file.thumb.id}`, local.url);
      } else if (local) {
        files.seed(answer.thumbnail_url, local.url);
        answer.width = local.width;
        answer.height = local.height;
      }
      controller.sendFile(job.chatName, answer, job.replyTo);
      onSent?.();
    } catch (err) {
      if (local) URL.revokeObjectURL(local.url);
      if (err.status === 429 && err.retryAfter > 0) {
        // Over the server's upload rate: this file goes again when it says.
        uploads.queue.unshift(job);
        uploads.wait = setTimeout(() => { uploads.wait = null; nextUpload(); }, err.retryAfter * 1000);
        return;
      }
      if (err.code !== 'aborted') controller.toast(t('composer.uploadFailed', { name: job.file.name, reason: controller.errorText(err) }));
    }
    nextUpload();
  }

  function cancelUploads() {
    uploads.queue = [];
    uploads.current?.request?.abort();
    if (uploads.wait) {
      clearTimeout(uploads.wait);
      uploads.wait = null;
      uploads.current = null;
      uploadBar.hidden = true;
    }
  }

  // A re-render during an upload shows the bar again.
  if (uploads.current) {
    uploadBar.hidden = false;
    uploadName.textContent = uploads.current.file.name;
  }

  return {
    element,
    addFiles,
    setReply,
    focus() { textarea.focus(); },
    /** showChat restores the draft and reply of the chat now open. */
    showChat() {
      textarea.value = local.draft(chatName());
      textarea.placeholder = t('composer.placeholder');
      renderReply();
      grow();
      closePicker(false);
      formatting.close();
    },
  };
}

function buildEmojiPicker(onPick) {
  const buttons = [];
  const cols = 8;
  const element = h('div', { class: 'emoji-picker', 'data-testid': 'emoji-picker', role: 'dialog', 'aria-label': t('composer.emoji'), hidden: true });
  const self = { element, onPicked: null, first: () => buttons[0] };
  for (const [key, emojis] of emojiGroups) {
    const headingId = uid('emoji-group');
    const grid = h('div', { class: 'emoji-grid', role: 'group', 'aria-labelledby': headingId });
    for (const emoji of emojis) {
      const b = h('button', {
        type: 'button', class: 'emoji-btn', text: emoji, 'aria-label': emoji,
        onclick: () => { onPick(emoji); self.onPicked?.(); },
      });
      buttons.push(b);
      grid.appendChild(b);
    }
    element.append(h('h3', { id: headingId, class: 'emoji-heading', text: t(key) }), grid);
  }
  element.addEventListener('keydown', (event) => {
    const i = buttons.indexOf(document.activeElement);
    if (i < 0) return;
    const rtl = document.documentElement.dir === 'rtl';
    const step = { ArrowRight: rtl ? -1 : 1, ArrowLeft: rtl ? 1 : -1, ArrowDown: cols, ArrowUp: -cols }[event.key];
    if (!step) return;
    event.preventDefault();
    buttons[Math.max(0, Math.min(buttons.length - 1, i + step))].focus();
  });
  return self;
}
