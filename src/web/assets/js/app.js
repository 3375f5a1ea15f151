// The app shell: navigation, the account area (sign up, log in, log out) and a router
// that picks the page from the path. Pages are modules with
// `render(main, params) -> cleanup`; links marked data-nav change page without a reload.
import { h, fill, field, notice, points, busy, focusOn } from './ui.js';
import * as auth from './auth.js';
import { explain } from './errors.js';
import { closeAll } from './live.js';
import { showNotices } from './notices.js';

const routes = [
  [/^\/$/, () => import('./pages/home.js'), 'Concerts'],
  [/^\/schedules\/(\d+)$/, () => import('./pages/schedule.js'), 'Seats'],
  [/^\/host$/, () => import('./pages/host.js'), 'Host'],
  [/^\/host\/concerts\/(\d+)$/, () => import('./pages/sales.js'), 'Sales'],
  [/^\/admin$/, () => import('./pages/admin.js'), 'Admin'],
  [/^\/wallet$/, () => import('./pages/wallet.js'), 'Wallet'],
  [/^\/tickets$/, () => import('./pages/tickets.js'), 'My tickets'],
  [/^\/scan$/, () => import('./pages/scan.js'), 'Door'],
  [/^\/claim$/, () => import('./pages/claim.js'), 'Claim your account'],
];

let cleanup = null;

async function route() {
  const main = document.getElementById('main');
  if (cleanup) { try { cleanup(); } catch { /* page already gone */ } cleanup = null; }
  closeAll();
  renderNav(auth.currentUser());
  const path = location.pathname;
  for (const [re, load, title] of routes) {
    const m = path.match(re);
    if (!m) continue;
    document.title = `${title} · boxoffice`;
    const page = await load();
    fill(main);
    cleanup = (await page.render(main, m.slice(1))) || null;
    return;
  }
  fill(main, h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '/', 'data-nav': true }, 'See the concerts')));
}

export function navigate(url) {
  history.pushState(null, '', url);
  route();
  window.scrollTo(0, 0);
}

document.addEventListener('click', (ev) => {
  const a = ev.target.closest?.('a[data-nav]');
  if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey) return;
  ev.preventDefault();
  navigate(a.getAttribute('href'));
});
window.addEventListener('popstate', route);

function renderNav(user) {
  const here = location.pathname;
  const link = (href, text) => h('a', { href, 'data-nav': true, 'aria-current': here === href ? 'page' : false }, text);
  fill(document.getElementById('nav'),
    link('/', 'Concerts'),
    // A full page load: the wallet's document may load the payment provider's window.
    user ? h('a', { href: '/wallet', 'aria-current': here === '/wallet' ? 'page' : false }, 'Wallet') : null,
    user ? link('/tickets', 'My tickets') : null,
    user && ['HOST', 'ADMIN'].includes(user.role) ? link('/host', 'Host') : null,
    user?.role === 'ADMIN' ? link('/admin', 'Admin') : null,
    h('a', { href: '/playground' }, 'Playground'));
}

function renderAccount(user) {
  const box = document.getElementById('account');
  if (user) {
    const out = h('button', { type: 'button', class: 'link' }, 'Log out');
    out.onclick = () => busy(out, () => auth.logOut(), () => {});
    fill(box, h('span', { class: 'who' }, h('strong', {}, user.displayName), ' ', h('span', { class: 'badge' }, user.role), ' ',
      h('span', { id: 'balance' }, points(user.points))), out);
  } else {
    const open = h('button', { type: 'button', class: 'primary' }, 'Log in / Sign up');
    open.onclick = () => accountDialog();
    fill(box, open);
  }
}

/** The log-in / sign-up dialog. Resolves when the user is signed in or closes it. */
export function accountDialog(mode = 'login') {
  const opener = document.activeElement;
  const dialog = h('dialog', { class: 'account-dialog', 'aria-labelledby': 'acct-title' });
  const msg = h('div');
  const email = field('Email', { type: 'email', name: 'email', required: true, autocomplete: 'email' });
  const password = field('Password', { type: 'password', name: 'password', required: true, minlength: 8 });
  const name = field('Display name', { name: 'displayName', autocomplete: 'nickname' });
  const title = h('h2', { id: 'acct-title' });
  const submit = h('button', { type: 'submit', class: 'primary' });
  const other = h('button', { type: 'button', class: 'link' });
  const cancel = h('button', { type: 'button', class: 'link' }, 'Close');
  const form = h('form', { method: 'dialog' }, title, msg, email.wrap, name.wrap, password.wrap,
    h('div', { class: 'row' }, submit, other, cancel));
  const setMode = (m) => {
    mode = m;
    title.textContent = m === 'login' ? 'Log in' : 'Create an account';
    submit.textContent = m === 'login' ? 'Log in' : 'Sign up';
    other.textContent = m === 'login' ? 'New here? Sign up' : 'Have an account? Log in';
    name.wrap.hidden = m === 'login';
    name.input.required = m !== 'login';
    password.input.autocomplete = m === 'login' ? 'current-password' : 'new-password';
    notice(msg, m === 'signup' ? 'Passwords: at least 8 characters, letters with digits or symbols.' : '');
  };
  other.onclick = () => setMode(mode === 'login' ? 'signup' : 'login');
  cancel.onclick = () => dialog.close();
  form.onsubmit = (ev) => {
    ev.preventDefault();
    busy(submit, async () => {
      if (mode === 'login') await auth.logIn(email.input.value.trim(), password.input.value);
      else await auth.signUp(email.input.value.trim(), password.input.value, name.input.value.trim());
      dialog.close();
    }, (e) => notice(msg, explain(e), 'error'));
  };
  setMode(mode);
  dialog.append(form);
  document.body.append(dialog);
  dialog.addEventListener('close', () => {
    dialog.remove();
    // After the pages re-drew for the new session: back to the control that opened the
    // dialog, or the one that replaced it (same id), or the account area, never the top.
    requestAnimationFrame(() => {
      if (opener?.isConnected && !opener.disabled && focusOn(opener)) return;
      if (opener?.id && focusOn(document.getElementById(opener.id))) return;
      focusOn(document.querySelector('#account .who') || document.querySelector('#account button'));
    });
  });
  dialog.showModal();
  email.input.focus();
  return new Promise((resolve) => dialog.addEventListener('close', () => resolve(auth.currentUser())));
}

auth.onChange((user) => { renderNav(user); renderAccount(user); showNotices(user); });

(async () => {
  renderNav(null);
  renderAccount(null);
  await auth.start();
  route();
  showNotices(auth.currentUser());
})();
