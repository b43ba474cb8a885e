// The one way the console talks to the server: fetch with the session's bearer token. The token
// lives in sessionStorage (this tab only, gone when it closes) and travels in the Authorization
// header; the server sets no cookie, so another site cannot make the browser act for the user.

const TOKEN_KEY = 'wallet.console.session';
/** The largest answer the console reads as text (a settlement CSV of a big city is a few MB). */
const ANSWER_BYTES_MAX = 64 * 1024 * 1024;

/** A refusal from the server: its status, error code and message (and any extra fields). */
export class ApiError extends Error {
  constructor(status, code, message, body = null, retryAfterS = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
    this.retryAfterS = retryAfterS;
  }
}

let current = load();
const expiredListeners = [];

function load() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(TOKEN_KEY) || 'null');
    return stored && typeof stored.token === 'string' ? stored : null;
  } catch {
    return null;
  }
}

/** The session in force: {token, role, login, expires_at}, or null. */
export function session() {
  return current;
}

function keep(next) {
  current = next;
  if (next) sessionStorage.setItem(TOKEN_KEY, JSON.stringify(next));
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Called with nothing when the server answers 401 to a request made with a session. */
export function onExpired(listener) {
  expiredListeners.push(listener);
}

/** A fresh Idempotency-Key for one user action (a retry of the action reuses it). */
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

/**
 * One request. `body` is sent as JSON; `key` as Idempotency-Key; `accept: 'text/csv'` returns
 * the answer's bytes (an ArrayBuffer). Resolves with the parsed answer (null for 204); rejects with an ApiError.
 */
export async function request(method, path, {body, key, accept, query, anonymous = false, quiet = false} = {}) {
  const headers = {Accept: accept || 'application/json'};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (key) headers['Idempotency-Key'] = key;
  const sent = !anonymous && current ? current.token : null;
  if (sent) headers.Authorization = `Bearer ${sent}`;
  let url = path;
  if (query) {
    const pairs = Object.entries(query).filter(([, value]) => value !== undefined && value !== null && value !== '');
    if (pairs.length) url += '?' + new URLSearchParams(pairs).toString();
  }
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch (error) {
    throw new ApiError(0, 'network', `the server could not be reached (${error.message})`);
  }
  const length = Number(response.headers.get('Content-Length') || 0);
  if (length > ANSWER_BYTES_MAX) throw new ApiError(response.status, 'too_large', 'the answer is too large to show');
  if (response.ok) {
    if (response.status === 204) return null;
    // A CSV is kept as the server's bytes (a download must equal what the API serves).
    return accept === 'text/csv' ? response.arrayBuffer() : response.json();
  }
  let answer = null;
  try {
    answer = await response.json();
  } catch {
    answer = null;
  }
  const error = answer && answer.error ? answer.error : {code: 'http_' + response.status, message: response.statusText};
  const retryAfter = response.headers.get('Retry-After');
  const failure = new ApiError(response.status, error.code, error.message, answer, retryAfter ? Number(retryAfter) : null);
  if (response.status === 401 && sent && current && current.token === sent) {
    keep(null);
    if (!quiet) for (const listener of expiredListeners) listener(failure);
  }
  throw failure;
}

/** Logs in; keeps the session for this tab. */
export async function logIn(login, password) {
  const answer = await request('POST', '/v1/sessions', {body: {login, password}, anonymous: true});
  keep({token: answer.token, role: answer.role, login, expires_at: answer.expires_at});
  return current;
}

/** Ends the session on the server (best effort) and forgets it here. */
export async function logOut() {
  const had = current;
  if (!had) return;
  try {
    await request('DELETE', '/v1/sessions/current', {quiet: true});
  } catch {
    // The session is forgotten here either way; an expired one needs no deleting.
  } finally {
    keep(null);
  }
}
