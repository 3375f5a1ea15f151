// The session: sign up, log in, token refresh before expiry, log out.
//
// The access token lives only in memory (a variable of this module), so no other script
// and no other tab can read it from storage. The refresh token is kept in sessionStorage,
// as the README recommends for SPAs: it survives a reload of this tab, dies with the tab,
// is never sent automatically (unlike a cookie, so no CSRF), and is single-use: every
// refresh rotates it, and a stolen copy used after us revokes the whole login (the server
// detects the reuse). The access token is renewed a minute before it expires.
import { gql, useTokens } from './api.js';
import { useToken, reconnect } from './live.js';

const STORE = 'boxoffice.refreshToken';
const USER = 'id email displayName role points';
const PAYLOAD = `accessToken accessTokenExpiresAt refreshToken user { ${USER} }`;

let access = null;
let expiresAt = 0;
let user = null;
let timer = null;
let inflight = null;
const listeners = new Set();

export const currentUser = () => user;
export const accessToken = () => access;
export const accessExpiresAt = () => expiresAt;
export const signedIn = () => !!access;
export const hasRole = (...roles) => !!user && roles.includes(user.role);

/** Calls `fn(user)` now and on every change of session; returns an unsubscribe. */
export function onChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/**
 * Calls `fn(user)` when who is signed in or their role changes, not on a token refresh or
 * a re-read balance: a page that rebuilds itself per account (admin, host, sales) keeps a
 * search, a form being filled and what it loaded across the refresh every few minutes.
 */
export function onAccountChange(fn) {
  let seen = `${user?.id ?? ''}:${user?.role ?? ''}`;
  return onChange((u) => {
    const now = `${u?.id ?? ''}:${u?.role ?? ''}`;
    if (now === seen) return;
    seen = now;
    fn(u);
  });
}

function changed() {
  reconnect();
  for (const fn of listeners) fn(user);
}

function storeRefresh(token) {
  try {
    if (token) sessionStorage.setItem(STORE, token);
    else sessionStorage.removeItem(STORE);
  } catch { /* storage disabled: the session lasts as long as the page */ }
}

function readRefresh() {
  try { return sessionStorage.getItem(STORE); } catch { return null; }
}

function accept(payload) {
  access = payload.accessToken;
  expiresAt = new Date(payload.accessTokenExpiresAt).getTime();
  user = payload.user;
  storeRefresh(payload.refreshToken);
  clearTimeout(timer);
  const ms = new Date(payload.accessTokenExpiresAt).getTime() - Date.now() - 60_000;
  timer = setTimeout(() => refresh(), Math.max(5_000, ms));
  changed();
}

function clear() {
  const had = access || user;
  access = null;
  user = null;
  clearTimeout(timer);
  storeRefresh(null);
  if (had) changed();
}

/**
 * Exchanges the stored refresh token for a new pair. One at a time: concurrent callers
 * share the same attempt (two would present the same single-use token, and the second
 * would revoke the login). Resolves true when signed in afterwards.
 */
export function refresh() {
  if (inflight) return inflight;
  const token = readRefresh();
  if (!token) return Promise.resolve(false);
  inflight = (async () => {
    try {
      const d = await gql(`mutation($t: String!) { refreshToken(refreshToken: $t) { ${PAYLOAD} } }`, { t: token }, { anonymous: true });
      accept(d.refreshToken);
      return true;
    } catch (e) {
      if (e.code === 'NETWORK' || e.code === 'UNAVAILABLE') {
        clearTimeout(timer);
        timer = setTimeout(() => refresh(), 10_000);
        return false;
      }
      clear();
      return false;
    } finally {
      inflight = null;
    }
  })();
  return inflight;
}

export async function logIn(email, password) {
  const d = await gql(`mutation($e: String!, $p: String!) { logIn(email: $e, password: $p) { ${PAYLOAD} } }`, { e: email, p: password }, { anonymous: true });
  accept(d.logIn);
  return user;
}

export async function signUp(email, password, displayName) {
  const d = await gql(`mutation($i: SignUpInput!) { signUp(input: $i) { ${PAYLOAD} } }`, { i: { email, password, displayName } }, { anonymous: true });
  accept(d.signUp);
  return user;
}

/** Claims an invited account with its one-time link's token: sets the password, signs in. */
export async function claimAccount(token, password, displayName) {
  const d = await gql(`mutation($t: String!, $p: String!, $n: String) { claimAccount(token: $t, password: $p, displayName: $n) { ${PAYLOAD} } }`,
    { t: token, p: password, n: displayName || null }, { anonymous: true });
  accept(d.claimAccount);
  return user;
}

export async function logOut() {
  const token = readRefresh();
  try {
    if (token) await gql('mutation($t: String!) { logOut(refreshToken: $t) }', { t: token }, { anonymous: true });
  } finally {
    clear();
  }
}

/** Re-reads the signed-in user (e.g. the balance after a payment). */
export async function reloadUser() {
  if (!access) return null;
  const d = await gql(`{ me { ${USER} } }`);
  user = d.me;
  for (const fn of listeners) fn(user);
  return user;
}

// The playground (/playground) borrows this page's session: it asks on this channel and
// the app answers with its access token, so a playground in another tab never presents
// the single-use refresh token the app holds (two tabs refreshing one token would revoke
// the login). Same origin only, like sessionStorage itself.
const channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel('boxoffice.session') : null;

/** Tells the playground the session now (a log-out too: a null token). */
function share() {
  if (channel) channel.postMessage({ type: 'session', accessToken: access, expiresAt, user });
}

/** At page load: resume the tab's session, if it has one, and lend it to the playground. */
export async function start() {
  useTokens({ access: () => access, refresh });
  useToken(() => access, () => { if (access) refresh(); });
  if (channel) channel.onmessage = (ev) => { if (ev.data?.type === 'ask' && access) share(); };
  onChange(() => share());
  await refresh();
}
