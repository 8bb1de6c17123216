// Protected files: fetched with the token and shown through blob: URLs,
// which the page's CSP allows for images. Each URL is fetched once.

import { fetchBlob } from './api.js';

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

/** seed stores a local blob URL for a path (our own upload, shown without a round trip). */
export function seed(path, url) {
  if (path && !cache.has(path)) cache.set(path, Promise.resolve(url));
}

/** download saves a protected file under its name. */
export async function download(path, name) {
  const url = await objectURL(path);
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
