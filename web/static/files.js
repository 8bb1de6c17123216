// Protected files: fetched with the token and shown through blob: URLs,
// which the page's CSP allows for images and media (img-src and media-src
// blob:). Each URL is fetched once. A file of an end-to-end encrypted chat
// is decrypted here, after its SHA-256 is checked, with the key its message
// carries. Audio and video of a chat that is not end-to-end encrypted
// stream instead: a media element cannot send the bearer token, so it
// plays from a short-lived URL the server signs for this file and this
// session (POST /file/{id}/media-url), fetching ranges as it plays and
// seeks; an encrypted chat's media is opaque to the server and is
// decrypted whole into a blob: URL. A PDF opens from a blob: URL in a new
// tab, never from the server, which sends every non-image file as an
// attachment under a sandbox CSP.

import { fetchBlob, request } from './api.js';
import { decryptFile } from './secure.js';

// Types a decrypted file keeps for display; anything else (HTML, SVG, …)
// becomes an opaque download, so that a sender cannot run a page in ours.
const safeImages = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/bmp']);
// Media and PDF types are shown too: a media element or the PDF viewer
// reads them, and neither runs a page's script in our origin.
const audioTypes = new Set(['audio/mpeg', 'audio/mp4', 'audio/aac', 'audio/ogg', 'audio/opus', 'audio/wav', 'audio/webm', 'audio/flac']);
const videoTypes = new Set(['video/mp4', 'video/webm', 'video/ogg']);
const pdfType = 'application/pdf';

// baseType is a MIME type without parameters, under one name: Ogg, which
// the server's sniffer names application/ogg, is taken as audio (voice
// notes), and WAV's several names are one.
const aliases = { 'application/ogg': 'audio/ogg', 'audio/wave': 'audio/wav', 'audio/vnd.wave': 'audio/wav', 'audio/x-wav': 'audio/wav', 'audio/x-flac': 'audio/flac' };

function baseType(mime) {
  const base = String(mime || '').split(';')[0].trim().toLowerCase();
  return aliases[base] || base;
}

function displayType(mime) {
  const base = baseType(mime);
  return safeImages.has(base) || audioTypes.has(base) || videoTypes.has(base) || base === pdfType ? base : 'application/octet-stream';
}

/**
 * mediaKind says how a message's file is shown: 'audio' or 'video' (played
 * inline, when this browser can play its type), 'pdf' (opened in a tab),
 * or '' (a download).
 */
export function mediaKind(file) {
  const base = baseType(file?.mime_type);
  if (audioTypes.has(base) || videoTypes.has(base)) {
    const kind = base.startsWith('audio/') ? 'audio' : 'video';
    return document.createElement(kind).canPlayType(base) ? kind : '';
  }
  return base === pdfType ? 'pdf' : '';
}

const cache = new Map(); // path → Promise<object URL>

/** objectURL resolves to a blob: URL for a protected path. */
export function objectURL(path) {
  if (!cache.has(path)) {
    const p = fetchBlob(path).then((blob) => URL.createObjectURL(blob));
    p.catch(() => cache.delete(path));
    cache.set(path, p);
  }
  return cache.get(path);
}

/**
 * thumbnailURL is objectURL for a thumbnail. The server makes a thumbnail
 * after its upload answers and says 404 with Retry-After until it is ready,
 * so that answer is asked again, a limited number of times.
 */
export async function thumbnailURL(path, tries = 30) {
  for (let i = 1; ; i++) {
    try {
      return await objectURL(path);
    } catch (err) {
      if (err.status !== 404 || !(err.retryAfter > 0) || i >= tries) throw err;
      await new Promise((resolve) => setTimeout(resolve, err.retryAfter * 1000));
    }
  }
}

/**
 * decryptedURL resolves to a blob: URL of an encrypted file's plaintext.
 * path is where its ciphertext is; descriptor is the message's file (or
 * thumb) with key, nonce_prefix and sha256. A file whose bytes do not match
 * fails with the E2EEError of decryptFile.
 */
export function decryptedURL(path, descriptor) {
  const id = `e2ee:${path}`;
  if (!cache.has(id)) {
    const p = fetchBlob(path)
      .then(async (blob) => decryptFile(new Uint8Array(await blob.arrayBuffer()), descriptor))
      .then((plain) => URL.createObjectURL(new Blob([plain], { type: displayType(descriptor.mime) })));
    p.catch(() => cache.delete(id));
    cache.set(id, p);
  }
  return cache.get(id);
}

/** fileURL is decryptedURL for a file of an encrypted chat (file.e2ee set), objectURL otherwise. */
export function fileURL(file) {
  return file.e2ee ? decryptedURL(file.url, file.e2ee) : objectURL(file.url);
}

/**
 * mediaURL resolves to what a media element plays a message's audio or
 * video file from: in an encrypted chat the decrypted blob: URL (the whole
 * file, fetched and checked first), else a signed URL of the server's that
 * streams by range. A signed URL works for a few minutes; ask again for a
 * new one when it stops working (see attachMedia).
 */
export async function mediaURL(file) {
  if (file.e2ee) return decryptedURL(file.url, file.e2ee);
  const answer = await request('POST', `${file.url}/media-url`);
  return answer.url;
}

/**
 * attachMedia points a media element at a file (mediaURL) and keeps it
 * playing past its URL's expiry: when a signed URL is refused (a seek or a
 * resume after it expired), it asks for a new one and goes on from the
 * same place, playing if it was. The place is read when the new URL is
 * set, not when the refusal came, so a seek made while the new URL was
 * being asked for is where playback goes on; a seek made while the new URL
 * loads its metadata is kept too. It gives up, calling onFail(err), when
 * even a fresh URL fails before its media loads.
 */
export async function attachMedia(player, file, onFail) {
  let loadedSinceRenewal = true;
  let renewing = false;
  player.addEventListener('loadedmetadata', () => { loadedSinceRenewal = true; });
  player.addEventListener('error', async () => {
    if (file.e2ee || renewing) return;
    if (!loadedSinceRenewal) { onFail(new Error(player.error?.message || 'media')); return; }
    renewing = true;
    loadedSinceRenewal = false;
    const playing = !player.paused;
    try {
      const url = await mediaURL(file);
      // The old URL is still the element's: its currentTime is the last
      // place asked for, also by a seek that the old URL then refused.
      const at = player.currentTime;
      player.addEventListener('loadedmetadata', () => {
        // A position set while the metadata loaded is already applied
        // (the element seeks to it now): a newer wish than at.
        if (at && player.currentTime === 0) player.currentTime = at;
        if (playing) player.play().catch(() => {});
      }, { once: true });
      player.src = url;
    } catch (err) {
      onFail(err);
    } finally {
      renewing = false;
    }
  });
  player.src = await mediaURL(file);
}

/** thumbURL is a file's thumbnail: decrypted in an encrypted chat, else thumbnailURL. */
export function thumbURL(file) {
  return file.e2ee?.thumb ? decryptedURL(file.thumbnail_url, file.e2ee.thumb) : thumbnailURL(file.thumbnail_url);
}

/** seed stores a local blob URL for a path (our own upload, shown without a round trip). */
export function seed(path, url) {
  if (path && !cache.has(path)) cache.set(path, Promise.resolve(url));
}

/** download saves a protected file under its name; file is the message's file. */
export async function download(file) {
  const url = await fileURL(file);
  const name = file.name;
  const a = document.createElement('a');
  a.href = url;
  a.download = name || 'file';
  a.rel = 'noopener';
  document.body.appendChild(a);
  a.click();
  a.remove();
}

/**
 * openInTab shows a PDF in a new tab from a blob: URL of its bytes
 * (decrypted in an encrypted chat). The tab is opened at once, while the
 * click still counts as the user's, and pointed at the file when it has
 * arrived; a browser that blocks the tab gets the file as a download, and
 * the answer says so ('downloaded'), else 'opened'.
 */
export async function openInTab(file) {
  const tab = window.open('', '_blank');
  if (tab) {
    tab.opener = null;
    tab.document.title = file.name || 'PDF';
  }
  try {
    const url = await fileURL(file);
    if (!tab) {
      await download(file);
      return 'downloaded';
    }
    tab.location.href = url;
    return 'opened';
  } catch (err) {
    tab?.close();
    throw err;
  }
}

/** forgetAll revokes every blob URL (on logout). */
export function forgetAll() {
  for (const p of cache.values()) p.then((url) => URL.revokeObjectURL(url), () => {});
  cache.clear();
}
