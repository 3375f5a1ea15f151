// `/admin`: accounts (search, role changes, point adjustments with a reason, locking and
// unlocking) and the audit log of privileged actions.
import { h, fill, field, notice, toast, points, when, busy, fromLocalInput } from '../ui.js';
import { gql } from '../api.js';
import { explain } from '../errors.js';
import * as auth from '../auth.js';
import { accountDialog } from '../app.js';

const USERS = `query Users($q: String, $after: String) { users(search: $q, first: 20, after: $after) {
  nodes { id email displayName role points createdAt lockedAt } pageInfo { hasNextPage endCursor } } }`;
const AUDIT = `query Audit($after: String, $f: AuditLogFilter) { auditLog(first: 30, after: $after, filter: $f) {
  nodes { id actorId actor { id displayName email } action targetType targetId targetName details createdAt }
  pageInfo { hasNextPage endCursor } } }`;
// The actions the server audits today; the field takes any other name too.
const ACTIONS = ['set_user_role', 'adjust_points', 'cancel_concert', 'cancel_schedule', 'lock_account', 'unlock_account',
  'refund_reservation', 'export_schedule'];

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
  const stop = auth.onAccountChange(show);
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
  const af = {
    actor: field('Who', { type: 'search', name: 'actor', placeholder: 'email or name' }),
    action: field('Action', { name: 'action', list: 'audit-actions', placeholder: 'any' }),
    targetType: field('Target', { name: 'targetType' }, 'select'),
    targetId: field('Target id', { name: 'targetId', inputmode: 'numeric', size: 6 }),
    since: field('From', { type: 'datetime-local', name: 'since' }),
    until: field('Until', { type: 'datetime-local', name: 'until' }),
  };
  for (const [v, t] of [['', 'any'], ['user', 'account'], ['concert', 'concert'], ['schedule', 'performance'], ['reservation', 'reservation']]) af.targetType.input.append(h('option', { value: v }, t));
  const applyAudit = h('button', { type: 'submit', class: 'primary' }, 'Filter');
  const clearAudit = h('button', { type: 'button' }, 'Clear');
  const auditForm = h('form', { class: 'inline audit-filter', 'aria-label': 'Filter the audit log' },
    Object.values(af).map((x) => x.wrap), applyAudit, clearAudit,
    h('datalist', { id: 'audit-actions' }, ACTIONS.map((a) => h('option', { value: a }))));
  fill(main, h('h1', {}, 'Admin'), msg,
    h('section', { class: 'panel', 'aria-labelledby': 'users-title' }, h('h2', { id: 'users-title' }, 'Accounts'), form,
      h('div', { class: 'scroll' }, h('table', { class: 'users' },
        h('thead', {}, h('tr', {}, ['Account', 'Role', 'Points', 'Adjust points', 'Access'].map((t) => h('th', { scope: 'col' }, t)))), users)), moreUsers),
    h('section', { class: 'panel', 'aria-labelledby': 'audit-title' }, h('h2', { id: 'audit-title' }, 'Audit log'), auditForm,
      h('div', { class: 'scroll' }, h('table', { class: 'audit' },
        h('thead', {}, h('tr', {}, ['When', 'Who', 'Action', 'Target', 'Details'].map((t) => h('th', { scope: 'col' }, t)))), audit)), moreAudit));

  let usersAfter = null;
  let auditAfter = null;
  // The page's first list and a search can be in flight at once: only the newest request's
  // answer may fill the table, or a late first list would replace the rows being edited.
  let usersRequest = 0;
  // aria-busy while a list is on its way: the rows shown may still be replaced (assistive
  // technology waits, and so can a test).
  const loadUsers = async (append) => {
    const mine = ++usersRequest;
    const table = users.parentElement;
    table?.setAttribute('aria-busy', 'true');
    let d;
    try {
      d = (await gql(USERS, { q: search.input.value.trim() || null, after: append ? usersAfter : null })).users;
    } finally {
      if (mine === usersRequest) table?.setAttribute('aria-busy', 'false');
    }
    if (mine !== usersRequest) return;
    if (!append) fill(users);
    for (const u of d.nodes) users.append(userRow(u));
    if (!append && d.nodes.length === 0) users.append(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No accounts match.')));
    usersAfter = d.pageInfo.endCursor;
    moreUsers.hidden = !d.pageInfo.hasNextPage;
  };
  const auditFilter = () => {
    const v = (x) => x.input.value.trim() || null;
    return {
      actor: v(af.actor), action: v(af.action), targetType: v(af.targetType), targetId: v(af.targetId),
      since: fromLocalInput(af.since.input.value), until: fromLocalInput(af.until.input.value),
    };
  };
  // Only the newest request fills the table (a filter applied while a page loads).
  let auditRequest = 0;
  const loadAudit = async (append) => {
    const mine = ++auditRequest;
    const d = (await gql(AUDIT, { after: append ? auditAfter : null, f: auditFilter() })).auditLog;
    if (mine !== auditRequest) return;
    if (!append) fill(audit);
    for (const a of d.nodes) audit.append(auditRow(a));
    if (!append && d.nodes.length === 0) audit.append(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No entries match.')));
    auditAfter = d.pageInfo.endCursor;
    moreAudit.hidden = !d.pageInfo.hasNextPage;
  };
  // Names link to the same log narrowed to that account or target.
  const narrow = (set) => { for (const [k, val] of Object.entries(set)) af[k].input.value = val; busy(applyAudit, () => loadAudit(false), fail); };
  function auditRow(a) {
    const who = a.actor
      ? h('button', { type: 'button', class: 'link', title: 'Only this account\'s actions' }, `${a.actor.displayName} <${a.actor.email}>`)
      : h('span', { class: 'muted' }, a.actorId ? `deleted account #${a.actorId}` : 'system');
    if (a.actor) who.onclick = () => narrow({ actor: a.actor.email });
    const kind = { user: 'account', schedule: 'performance' }[a.targetType] || a.targetType;
    const target = h('button', { type: 'button', class: 'link', title: 'Only entries about this' },
      a.targetName ? `${kind}: ${a.targetName}` : `${kind}${a.targetId ? ` #${a.targetId}` : ''}`);
    target.onclick = () => narrow({ targetType: a.targetType, targetId: a.targetId ?? '' });
    const action = h('button', { type: 'button', class: 'link' }, h('code', {}, a.action));
    action.onclick = () => narrow({ action: a.action });
    return h('tr', { dataset: { entry: a.id } }, h('td', {}, when(a.createdAt)), h('td', { class: 'who' }, who),
      h('td', {}, action), h('td', { class: 'target' }, target),
      h('td', {}, h('code', { class: 'details' }, JSON.stringify(a.details))));
  }
  auditForm.onsubmit = (ev) => { ev.preventDefault(); busy(applyAudit, () => loadAudit(false), fail); };
  clearAudit.onclick = () => { auditForm.reset(); busy(applyAudit, () => loadAudit(false), fail); };
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
    const access = h('td', { class: 'access' });
    // Locking ends the account's sessions on every instance at once; the reason is audited.
    const drawAccess = () => {
      if (u.lockedAt) {
        const unlock = h('button', { type: 'button' }, 'Unlock');
        unlock.onclick = () => busy(unlock, async () => {
          const d = await gql('mutation($u: ID!) { unlockAccount(userId: $u) { id lockedAt } }', { u: u.id });
          u.lockedAt = d.unlockAccount.lockedAt;
          toast(`${u.email} is unlocked.`, 'ok');
          drawAccess();
          loadAudit(false).catch(fail);
        }, fail);
        fill(access, h('span', { class: 'badge cancelled' }, 'LOCKED'), h('span', { class: 'muted small' }, ` since ${when(u.lockedAt)} `), unlock);
        return;
      }
      const why = field(`Reason for locking ${u.email}`, { name: 'lockReason', required: true, placeholder: 'why' });
      why.wrap.classList.add('compact');
      const lock = h('button', { type: 'submit' }, 'Lock');
      const form = h('form', { class: 'inline' }, why.wrap, lock);
      form.onsubmit = (ev) => {
        ev.preventDefault();
        busy(lock, async () => {
          const d = await gql('mutation($u: ID!, $r: String!) { lockAccount(userId: $u, reason: $r) { id lockedAt } }',
            { u: u.id, r: why.input.value.trim() });
          u.lockedAt = d.lockAccount.lockedAt;
          toast(`${u.email} is locked: signed out everywhere.`, 'ok');
          drawAccess();
          loadAudit(false).catch(fail);
        }, fail);
      };
      fill(access, form);
    };
    drawAccess();
    return h('tr', { dataset: { user: u.id } },
      h('td', {}, h('strong', {}, u.displayName), h('br'), h('span', { class: 'small' }, u.email), h('br'), h('span', { class: 'muted small' }, `#${u.id} · since ${when(u.createdAt)}`)),
      h('td', {}, h('div', { class: 'inline' }, role.wrap, save)), balance, h('td', {}, adjust), access);
  }

  form.onsubmit = (ev) => { ev.preventDefault(); busy(go, () => loadUsers(false), fail); };
  moreUsers.onclick = () => busy(moreUsers, () => loadUsers(true), fail);
  moreAudit.onclick = () => busy(moreAudit, () => loadAudit(true), fail);
  loadUsers(false).catch(fail);
  loadAudit(false).catch(fail);
}
