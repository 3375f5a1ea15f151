// `/admin`: accounts (search, role changes, point adjustments with a reason) and the
// audit log of privileged actions.
import { h, fill, field, notice, toast, points, when, busy } from '../ui.js';
import { gql } from '../api.js';
import { explain } from '../errors.js';
import * as auth from '../auth.js';
import { accountDialog } from '../app.js';

const USERS = `query Users($q: String, $after: String) { users(search: $q, first: 20, after: $after) {
  nodes { id email displayName role points createdAt } pageInfo { hasNextPage endCursor } } }`;
const AUDIT = `query Audit($after: String) { auditLog(first: 30, after: $after) {
  nodes { id actorId action targetType targetId details createdAt } pageInfo { hasNextPage endCursor } } }`;

export function render(main) {
  const show = () => {
    if (!auth.hasRole('ADMIN')) {
      const login = h('button', { type: 'button', class: 'primary' }, 'Log in');
      login.onclick = () => accountDialog();
      fill(main, h('h1', {}, 'Admin'), h('p', {}, auth.signedIn() ? 'This page is for admins.' : 'Log in with an admin account.'), auth.signedIn() ? null : login);
      return;
    }
    page(main);
  };
  const stop = auth.onChange(show);
  show();
  return stop;
}

function page(main) {
  const msg = h('div', { class: 'page-msg' });
  const search = field('Search accounts', { type: 'search', name: 'search', placeholder: 'email or name' });
  const go = h('button', { type: 'submit', class: 'primary' }, 'Search');
  const form = h('form', { class: 'search', role: 'search', 'aria-label': 'Search accounts' }, search.wrap, go);
  const users = h('tbody');
  const moreUsers = h('button', { type: 'button', hidden: true }, 'More accounts');
  const audit = h('tbody');
  const moreAudit = h('button', { type: 'button', hidden: true }, 'Older entries');
  fill(main, h('h1', {}, 'Admin'), msg,
    h('section', { class: 'panel', 'aria-labelledby': 'users-title' }, h('h2', { id: 'users-title' }, 'Accounts'), form,
      h('div', { class: 'scroll' }, h('table', { class: 'users' },
        h('thead', {}, h('tr', {}, ['Account', 'Role', 'Points', 'Adjust points'].map((t) => h('th', { scope: 'col' }, t)))), users)), moreUsers),
    h('section', { class: 'panel', 'aria-labelledby': 'audit-title' }, h('h2', { id: 'audit-title' }, 'Audit log'),
      h('div', { class: 'scroll' }, h('table', { class: 'audit' },
        h('thead', {}, h('tr', {}, ['When', 'Who', 'Action', 'Target', 'Details'].map((t) => h('th', { scope: 'col' }, t)))), audit)), moreAudit));

  let usersAfter = null;
  let auditAfter = null;
  // The page's first list and a search can be in flight at once: only the newest request's
  // answer may fill the table, or a late first list would replace the rows being edited.
  let usersRequest = 0;
  const loadUsers = async (append) => {
    const mine = ++usersRequest;
    const d = (await gql(USERS, { q: search.input.value.trim() || null, after: append ? usersAfter : null })).users;
    if (mine !== usersRequest) return;
    if (!append) fill(users);
    for (const u of d.nodes) users.append(userRow(u));
    if (!append && d.nodes.length === 0) users.append(h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'No accounts match.')));
    usersAfter = d.pageInfo.endCursor;
    moreUsers.hidden = !d.pageInfo.hasNextPage;
  };
  const loadAudit = async (append) => {
    const d = (await gql(AUDIT, { after: append ? auditAfter : null })).auditLog;
    if (!append) fill(audit);
    for (const a of d.nodes) {
      audit.append(h('tr', {}, h('td', {}, when(a.createdAt)), h('td', {}, a.actorId ? `#${a.actorId}` : 'system'),
        h('td', {}, h('code', {}, a.action)), h('td', {}, `${a.targetType} ${a.targetId ? `#${a.targetId}` : ''}`),
        h('td', {}, h('code', { class: 'details' }, JSON.stringify(a.details)))));
    }
    auditAfter = d.pageInfo.endCursor;
    moreAudit.hidden = !d.pageInfo.hasNextPage;
  };
  const fail = (e) => notice(msg, explain(e), 'error');

  function userRow(u) {
    const role = field(`Role of ${u.email}`, { name: 'role' }, 'select');
    role.wrap.classList.add('compact');
    for (const r of ['USER', 'HOST', 'ADMIN']) role.input.append(h('option', { value: r, selected: r === u.role }, r));
    const save = h('button', { type: 'button', dataset: { user: u.id } }, 'Set role');
    const balance = h('td', { class: 'points' }, points(u.points));
    save.onclick = () => busy(save, async () => {
      const d = await gql('mutation($u: ID!, $r: Role!) { setUserRole(userId: $u, role: $r) { id role } }', { u: u.id, r: role.input.value });
      toast(`${u.email} is now ${d.setUserRole.role}.`, 'ok');
      u.role = d.setUserRole.role;
      loadAudit(false).catch(fail);
    }, fail);
    const amount = field('Amount', { type: 'number', name: 'amount', step: 1, placeholder: '+/-' });
    const reason = field('Reason', { name: 'reason', required: true, placeholder: 'why' });
    amount.wrap.classList.add('compact');
    reason.wrap.classList.add('compact');
    const apply = h('button', { type: 'submit' }, 'Adjust');
    const adjust = h('form', { class: 'inline' }, amount.wrap, reason.wrap, apply);
    adjust.onsubmit = (ev) => {
      ev.preventDefault();
      const n = Number(amount.input.value);
      if (!Number.isInteger(n) || n === 0) { notice(msg, 'Enter a whole, non-zero number of points.', 'error'); return; }
      busy(apply, async () => {
        const d = await gql('mutation($u: ID!, $a: Int!, $r: String!) { adjustPoints(userId: $u, amount: $a, reason: $r) { balanceAfter } }',
          { u: u.id, a: n, r: reason.input.value.trim() });
        fill(balance, points(d.adjustPoints.balanceAfter));
        amount.input.value = '';
        reason.input.value = '';
        toast(`Balance of ${u.email} is now ${points(d.adjustPoints.balanceAfter)}.`, 'ok');
        loadAudit(false).catch(fail);
      }, fail);
    };
    return h('tr', { dataset: { user: u.id } },
      h('td', {}, h('strong', {}, u.displayName), h('br'), h('span', { class: 'small' }, u.email), h('br'), h('span', { class: 'muted small' }, `#${u.id} · since ${when(u.createdAt)}`)),
      h('td', {}, h('div', { class: 'inline' }, role.wrap, save)), balance, h('td', {}, adjust));
  }

  form.onsubmit = (ev) => { ev.preventDefault(); busy(go, () => loadUsers(false), fail); };
  moreUsers.onclick = () => busy(moreUsers, () => loadUsers(true), fail);
  moreAudit.onclick = () => busy(moreAudit, () => loadAudit(true), fail);
  loadUsers(false).catch(fail);
  loadAudit(false).catch(fail);
}
