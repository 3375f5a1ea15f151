// The door, on the host's side of `/host/concerts/{id}`: per performance, the tickets let in
// so far against its capacity and by gate, live from the `checkIns` subscription (counts
// first, then after every scan; read again after a dropped socket); and its scanners:
// create one (its token and /scan link are shown once, the server keeps only a hash), the
// list with each one's state, revoke one.
import { h, fill, field, notice, toast, when, busy } from '../ui.js';
import { gql } from '../api.js';
import { explain } from '../errors.js';
import { subscribe } from '../live.js';

const COUNTS = 'subscription($s: ID!) { checkIns(scheduleId: $s) { scheduleId admitted byGate { gate admitted } lastGate lastStatus } }';
const SCANNERS = 'query($s: ID!) { scanners(scheduleId: $s) { id name createdAt revokedAt } }';
const CREATE = 'mutation($s: ID!, $n: String!) { createScanner(scheduleId: $s, name: $n) { token scanner { id name } } }';
const REVOKE = 'mutation($id: ID!) { revokeScanner(id: $id) { id revokedAt } }';

/** Fills `panel` with one card per performance that has seats and is not cancelled. */
export function doorPanel(panel, concert) {
  const shows = concert.schedules.filter((s) => s.status !== 'CANCELLED' && s.capacity > 0);
  if (!shows.length) {
    panel.append(h('p', { class: 'muted' }, 'No performance with seats yet.'));
    return;
  }
  for (const s of shows) panel.append(performance(s));
}

function performance(s) {
  const id = `door-${s.id}`;
  const msg = h('div');
  const count = h('p', { class: 'door-admitted', 'aria-live': 'polite' }, `… / ${s.capacity} admitted`);
  const gates = h('table', { class: 'door-gates' });
  const list = h('ul', { class: 'scanners' });
  const created = h('div', { class: 'scanner-created', 'aria-live': 'polite' });
  const name = field(`New scanner for ${when(s.startsAt)}`, { name: 'scanner', required: true, maxlength: 100, placeholder: 'North door' });
  const add = h('button', { type: 'submit' }, 'Create scanner');
  const form = h('form', { class: 'inline' }, name.wrap, add);
  const card = h('section', { class: 'door-performance', dataset: { schedule: s.id }, 'aria-labelledby': id },
    h('h3', { id }, when(s.startsAt)), msg, count, gates,
    h('h4', {}, 'Scanners'), list, form, created);

  const draw = (c) => {
    fill(count, `${c.admitted} / ${s.capacity} admitted`);
    fill(gates, c.byGate.length
      ? [h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Gate'), h('th', { scope: 'col' }, 'Admitted'))),
        h('tbody', {}, c.byGate.map((g) => h('tr', { dataset: { gate: g.gate } }, h('th', { scope: 'row' }, g.gate), h('td', {}, String(g.admitted)))))]
      : h('tbody', {}, h('tr', {}, h('td', { class: 'muted' }, 'Nobody let in yet.'))));
  };
  subscribe(COUNTS, { s: s.id }, {
    next: (d) => draw(d.checkIns),
    error: (e) => notice(msg, explain(e), 'error'),
  });

  const load = async () => {
    const { scanners } = await gql(SCANNERS, { s: s.id });
    fill(list, scanners.length ? scanners.map(row) : h('li', { class: 'muted' }, 'None yet.'));
  };
  function row(sc) {
    const item = h('li', { dataset: { scanner: sc.id } }, h('strong', {}, sc.name), ' ',
      h('span', { class: 'muted small' }, sc.revokedAt ? `revoked ${when(sc.revokedAt)}` : `since ${when(sc.createdAt)}`));
    if (!sc.revokedAt) {
      const revoke = h('button', { type: 'button', 'aria-label': `Revoke ${sc.name}` }, 'Revoke');
      revoke.onclick = () => busy(revoke, async () => {
        await gql(REVOKE, { id: sc.id });
        toast(`Scanner “${sc.name}” revoked: its token no longer works.`, 'ok');
        fill(created);
        await load();
      }, (e) => notice(msg, explain(e), 'error'));
      item.append(' ', revoke);
    }
    return item;
  }
  form.onsubmit = (ev) => {
    ev.preventDefault();
    busy(add, async () => {
      const { createScanner: c } = await gql(CREATE, { s: s.id, n: name.input.value.trim() });
      // In the fragment: a link's fragment never reaches a server log.
      const link = `${location.origin}/scan#token=${c.token}`;
      const input = h('input', { readonly: true, value: link, class: 'claim-url', 'aria-label': `Door link for ${c.scanner.name}` });
      const copy = h('button', { type: 'button' }, 'Copy link');
      copy.onclick = async () => {
        input.select();
        try { await navigator.clipboard.writeText(link); toast('Link copied.', 'ok'); } catch { /* selected: copied by hand */ }
      };
      fill(created, h('p', {}, `Give this link to the staff at “${c.scanner.name}”. It is shown only now and lets its holder check tickets in for this performance, nothing else:`),
        h('div', { class: 'builder-row' }, input, copy));
      name.input.value = '';
      await load();
    }, (e) => notice(msg, explain(e), 'error'));
  };
  load().catch((e) => notice(msg, explain(e), 'error'));
  return card;
}
