// Protected files: fetched with the token and shown through blob: URLs,
// which the page's CSP allows for images. Each URL is fetched once. A file
// of an end-to-end encrypted chat is decrypted here, after its SHA-256 is
// checked, with the key its message carries.

import { fetchBlob } from './api.js';
import { decryptFile } from './secure.js';

// Types a decrypted file keeps for display; anything else (HTML, SVG, …)
// becomes an opaque download, so that a sender cannot run a page in ours.
const safeImages = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/bmp']);

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
      .then((plain) => URL.createObjectURL(new Blob([plain], { type: safeImages.has(descriptor.mime) ? descriptor.mime : 'application/octet-stream' })));
    p.catch(() => cache.delete(id));
    cache.set(id, p);
  }
  return cache.get(id);
}

/** fileURL is decryptedURL for a file of an encrypted chat (file.e2ee set), objectURL otherwise. */
export function fileURL(file) {
  return file.e2ee ? decryptedURL(file.url, file.e2ee) : objectURL(file.url);
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

/** forgetAll revokes every blob URL (on logout). */
export function forgetAll() {
  for (const p of cache.values()) p.then((url) => URL.revokeObjectURL(url), () => {});
  cache.clear();
}
