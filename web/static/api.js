// REST calls: JSON in and out, the bearer token from the session, errors
// as ApiError {status, detail, code, retryAfter}. A call refused for an
// expired access token renews it from the refresh cookie and goes again,
// once.

import { currentToken, refreshSession, expiresSoon } from './session.js';

/** ApiError is a failed call: the server's detail sentence and machine code. */
export class ApiError extends Error {
  constructor(status, detail, code, retryAfter = 0, body = {}) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.code = code;
    this.retryAfter = retryAfter;
    this.body = body; // the whole answer, for codes that carry more (epoch_conflict's current)
  }
}

let unauthorized = () => {};

/** onUnauthorized sets what happens when the server rejects our token (401). */
export function onUnauthorized(fn) {
  unauthorized = fn;
}

async function errorFrom(response) {
  let body = {};
  try { body = await response.json(); } catch { /* not JSON */ }
  const retryAfter = Number(response.headers.get('Retry-After')) || 0;
  return new ApiError(response.status, body.detail || response.statusText || `HTTP ${response.status}`,
    body.code || 'http_' + response.status, retryAfter, body);
}

// send makes one authorised fetch; a 401 for the token it sent renews the
// token (once) and sends again. A 401 after that ends the session here.
async function send(path, init) {
  for (let attempt = 0; ; attempt++) {
    const token = currentToken();
    const headers = { ...init.headers };
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(path, { ...init, headers });
    } catch {
      throw new ApiError(0, '', 'network');
    }
    if (response.status !== 401 || !token) return response;
    if (attempt === 0) {
      if (currentToken() !== token) continue; // renewed meanwhile
      const renewed = await refreshSession();
      if (renewed) continue;
      if (renewed === null) throw new ApiError(0, '', 'network');
    }
    const err = await errorFrom(response);
    unauthorized(err);
    throw err;
  }
}

/** request calls the API; body (an object) goes as JSON. It resolves to the answer's JSON. */
export async function request(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await send(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  if (!response.ok) throw await errorFrom(response);
  if (response.status === 204) return {};
  try {
    return await response.json();
  } catch {
    return {};
  }
}

/** get is request('GET', …) with query parameters. */
export function get(path, params = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') query.set(k, v);
  const qs = query.toString();
  return request('GET', qs ? `${path}?${qs}` : path);
}

/** post is request('POST', …). */
export function post(path, body = {}) {
  return request('POST', path, body);
}

/** fetchBlob downloads a protected file with the token and returns it as a Blob. */
export async function fetchBlob(path) {
  const response = await send(path, {});
  if (!response.ok) throw await errorFrom(response);
  return response.blob();
}

/**
 * upload sends one file to POST /upload/ with chat_id before the file (so
 * the server knows the chat before the bytes arrive), reporting progress as
 * a fraction. It returns {promise, abort}.
 */
export function upload(chatName, file, onProgress) {
  const xhr = new XMLHttpRequest();
  let aborted = false;
  const promise = new Promise((resolve, reject) => {
    // A file is not sent twice for a token that expired on the way: the
    // token is renewed first when it has less than a minute left.
    (expiresSoon(60_000) ? refreshSession() : Promise.resolve(true)).then(() => {
      if (aborted) reject(new ApiError(0, '', 'aborted'));
      else start(resolve, reject);
    });
  });
  function start(resolve, reject) {
    xhr.open('POST', '/upload/');
    xhr.setRequestHeader('Authorization', `Bearer ${currentToken()}`);
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.responseType = 'json';
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onload = () => {
      const body = xhr.response || {};
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else {
        const err = new ApiError(xhr.status, body.detail || `HTTP ${xhr.status}`, body.code || 'http_' + xhr.status,
          Number(xhr.getResponseHeader('Retry-After')) || 0);
        if (xhr.status === 401) unauthorized(err);
        reject(err);
      }
    };
    xhr.onerror = () => reject(new ApiError(0, '', 'network'));
    xhr.onabort = () => reject(new ApiError(0, '', 'aborted'));
    const form = new FormData();
    form.append('chat_id', chatName);
    form.append('file', file, file.name || 'file');
    xhr.send(form);
  }
  return { promise, abort: () => { aborted = true; xhr.abort(); } };
}
