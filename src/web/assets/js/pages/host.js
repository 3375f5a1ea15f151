// `/host`: a host's workspace. Concerts (create, edit, publish, cancel with a reason),
// their performances (add, edit times, limits and prices, cancel), a layout builder with a
// live preview of the seat map before generateSeats, the seats of a performance (keep
// seats back, put them back on sale, give complimentary tickets), and live sales per
// performance drawn as a chart.
import { h, fill, field, notice, toast, points, when, toLocalInput, fromLocalInput, busy, focusOn, crispCanvas } from '../ui.js';
import { gql } from '../api.js';
import { subscribe } from '../live.js';
import { explain } from '../errors.js';
import * as auth from '../auth.js';
import { accountDialog } from '../app.js';
import { fromLayout, fromSeatMap, describe, SeatCanvas } from '../seatmap.js';

const SCHEDULE_FIELDS = 'id startsAt salesOpenAt salesCloseAt perUserLimit holdSeconds queueEnabled admitPerSecond maxActive admissionSeconds status capacity bookedCount complimentarySeats waitlistLength';
const CONCERT_FIELDS = `id title artist venue category description posterUrl status cancelReason schedules { ${SCHEDULE_FIELDS} }`;

export function render(main) {
  const state = { concerts: [], selected: null, stops: [] };
  const msg = h('div', { class: 'page-msg' });
  const list = h('nav', { class: 'concert-list', 'aria-label': 'Your concerts' });
  const detail = h('div', { class: 'host-detail' });
  const gate = h('div');

  const show = () => {
    if (!auth.hasRole('HOST', 'ADMIN')) {
      const login = h('button', { type: 'button', class: 'primary' }, 'Log in');
      login.onclick = () => accountDialog();
      fill(main, h('h1', {}, 'Host workspace'), gate);
      fill(gate, h('p', {}, auth.signedIn() ? 'This workspace is for hosts. Ask an admin to make your account a host.' : 'Log in with a host account to manage your concerts.'),
        auth.signedIn() ? null : login);
      return;
    }
    fill(main, h('h1', {}, 'Host workspace'), msg, h('div', { class: 'host-grid' }, list, detail));
    load();
  };

  async function load(selectId) {
    try {
      const d = await gql(`{ myConcerts(first: 100) { nodes { ${CONCERT_FIELDS} } } }`);
      state.concerts = d.myConcerts.nodes;
    } catch (e) { notice(msg, explain(e), 'error'); return; }
    const newBtn = h('button', { type: 'button', class: 'primary', id: 'new-concert' }, 'New concert');
    newBtn.onclick = () => select(null);
    fill(list, newBtn, h('ul', {}, state.concerts.map((c) => {
      const b = h('button', { type: 'button', class: 'link', dataset: { concert: c.id } }, c.title);
      b.onclick = () => select(c.id);
      return h('li', {}, b, ' ', h('span', { class: `badge ${c.status.toLowerCase()}` }, c.status));
    })));
    const id = selectId ?? state.selected?.id;
    select(id && state.concerts.some((c) => c.id === id) ? id : (state.concerts[0]?.id ?? null), false);
  }

  function select(id, focus = true) {
    for (const s of state.stops) s();
    state.stops = [];
    const c = state.concerts.find((x) => x.id === id) || null;
    state.selected = c;
    list.querySelectorAll('[data-concert]').forEach((el) => {
      if (el.dataset.concert === c?.id) el.setAttribute('aria-current', 'true');
      else el.removeAttribute('aria-current');
    });
    fill(detail, concertForm(c), c ? concertActions(c) : null, c ? schedules(c) : null, c ? sales(c) : null,
      c ? h('p', {}, h('a', { href: `/host/concerts/${c.id}`, 'data-nav': true, class: 'sales-link' }, 'Sales over time, orders, refunds and exports →')) : null);
    if (focus) detail.querySelector('input')?.focus();
  }

  function concertForm(c) {
    const f = {
      title: field('Title', { name: 'title', required: true, value: c?.title ?? '' }),
      artist: field('Artist', { name: 'artist', required: true, value: c?.artist ?? '' }),
      venue: field('Venue', { name: 'venue', required: true, value: c?.venue ?? '' }),
      category: field('Category', { name: 'category', required: true, value: c?.category ?? '', placeholder: 'pop' }),
      posterUrl: field('Poster URL (optional)', { name: 'posterUrl', type: 'url', value: c?.posterUrl ?? '' }),
      description: field('Description', { name: 'description', rows: 3 }, 'textarea'),
    };
    f.description.input.value = c?.description ?? '';
    const fmsg = h('div');
    const save = h('button', { type: 'submit', class: 'primary' }, c ? 'Save changes' : 'Create concert');
    const form = h('form', { class: 'panel', 'aria-labelledby': 'concert-title' },
      h('h2', { id: 'concert-title' }, c ? `Concert: ${c.title}` : 'New concert'), fmsg,
      h('div', { class: 'grid2' }, Object.values(f).map((x) => x.wrap)), save);
    form.onsubmit = (ev) => {
      ev.preventDefault();
      const input = Object.fromEntries(Object.entries(f).map(([k, x]) => [k, x.input.value.trim()]));
      if (!input.posterUrl) { if (c) delete input.posterUrl; else input.posterUrl = null; }
      busy(save, async () => {
        if (c) {
          await gql(`mutation($id: ID!, $i: ConcertUpdateInput!) { updateConcert(id: $id, input: $i) { id } }`, { id: c.id, i: input });
          toast('Concert saved.', 'ok');
          await load(c.id);
        } else {
          const d = await gql(`mutation($i: ConcertInput!) { createConcert(input: $i) { id } }`, { i: input });
          toast('Concert created as a draft. Add a performance and its seats, then publish.', 'ok');
          await load(d.createConcert.id);
        }
      }, (e) => notice(fmsg, explain(e), 'error'));
    };
    return form;
  }

  function concertActions(c) {
    const amsg = h('div');
    const box = h('section', { class: 'panel', 'aria-labelledby': 'status-title' }, h('h2', { id: 'status-title' }, 'Status: ', h('span', { class: `badge ${c.status.toLowerCase()}` }, c.status)), amsg);
    if (c.status === 'DRAFT') {
      const publish = h('button', { type: 'button', class: 'primary', id: 'publish' }, 'Publish');
      publish.onclick = () => busy(publish, async () => {
        await gql('mutation($id: ID!) { publishConcert(id: $id) { id status } }', { id: c.id });
        toast('Published: fans can find it now.', 'ok');
        await load(c.id);
      }, (e) => notice(amsg, explain(e), 'error'));
      box.append(h('p', { class: 'muted' }, 'Drafts are visible only to you. Publishing needs a performance with seats.'), publish);
    }
    if (c.status === 'CANCELLED') {
      box.append(h('p', {}, `Cancelled: ${c.cancelReason ?? ''}`));
    } else {
      const reason = field('Reason for cancelling', { name: 'reason', required: true });
      const cancel = h('button', { type: 'submit', class: 'danger' }, 'Cancel concert');
      const form = h('form', { class: 'inline' }, reason.wrap, cancel);
      form.onsubmit = (ev) => {
        ev.preventDefault();
        if (!window.confirm(`Cancel "${c.title}"? Every hold is released and every paid seat refunded.`)) return;
        busy(cancel, async () => {
          await gql('mutation($id: ID!, $r: String!) { cancelConcert(id: $id, reason: $r) { id status } }', { id: c.id, r: reason.input.value.trim() });
          toast('Concert cancelled; fans were refunded.', 'ok');
          await load(c.id);
        }, (e) => notice(amsg, explain(e), 'error'));
      };
      box.append(form);
    }
    return box;
  }

  function schedules(c) {
    const smsg = h('div');
    const builderBox = h('div');
    const rows = c.schedules.map((s) => {
      const layoutBtn = h('button', { type: 'button', dataset: { schedule: s.id } }, s.capacity ? 'Replace layout' : 'Build layout');
      // Replacing starts from the layout the performance has now, not from a template.
      layoutBtn.onclick = () => busy(layoutBtn, async () => {
        const current = s.capacity ? await currentLayout(s.id) : null;
        fill(builderBox, builder(c, s, current));
        builderBox.scrollIntoView({ block: 'start' });
        focusOn(document.getElementById('builder-title'));
      }, (e) => notice(smsg, explain(e), 'error'));
      const edit = h('button', { type: 'button', dataset: { schedule: s.id } }, 'Edit');
      edit.onclick = () => {
        fill(builderBox, editForm(c, s));
        builderBox.scrollIntoView({ block: 'start' });
        focusOn(document.getElementById('edit-title'));
      };
      const seatsBtn = h('button', { type: 'button', dataset: { schedule: s.id } }, 'Seats');
      seatsBtn.onclick = () => busy(seatsBtn, async () => {
        fill(builderBox, await seatsPanel(c, s));
        builderBox.scrollIntoView({ block: 'start' });
        focusOn(document.getElementById('seats-title'));
      }, (e) => notice(smsg, explain(e), 'error'));
      const cancel = h('button', { type: 'button', class: 'link' }, 'cancel');
      cancel.onclick = () => {
        if (!window.confirm('Cancel this performance? Holds are released and paid seats refunded.')) return;
        busy(cancel, async () => {
          await gql('mutation($id: ID!) { cancelSchedule(id: $id) { id status } }', { id: s.id });
          toast('Performance cancelled.', 'ok');
          await load(c.id);
        }, (e) => notice(smsg, explain(e), 'error'));
      };
      return h('tr', {},
        h('td', {}, h('a', { href: `/schedules/${s.id}`, 'data-nav': true }, when(s.startsAt))),
        h('td', {}, `${when(s.salesOpenAt)} – ${when(s.salesCloseAt)}`),
        h('td', {}, s.capacity ? `${s.bookedCount} / ${s.capacity}${s.complimentarySeats ? ` (${s.complimentarySeats} complimentary)` : ''}` : 'no seats yet'),
        h('td', {}, s.queueEnabled ? 'queue' : ''),
        h('td', { class: 'waitlist-length' }, s.waitlistLength ? `${s.waitlistLength} waiting` : ''),
        h('td', {}, s.status === 'CANCELLED' ? 'cancelled' : [edit, ' ', s.capacity ? [seatsBtn, ' '] : null, layoutBtn, ' ', cancel]));
    });
    return h('section', { class: 'panel', 'aria-labelledby': 'sched-title' },
      h('h2', { id: 'sched-title' }, 'Performances'), smsg,
      c.schedules.length ? h('div', { class: 'scroll' }, h('table', {},
        h('thead', {}, h('tr', {}, ['Starts', 'Sales', 'Booked', '', 'Waiting list', ''].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, rows))) : h('p', { class: 'muted' }, 'No performances yet.'),
      c.status === 'CANCELLED' ? null : scheduleForm(c, smsg), builderBox);
  }

  function scheduleForm(c, smsg) {
    const day = 86400_000;
    const now = Date.now();
    const f = {
      startsAt: field('Starts', { type: 'datetime-local', name: 'startsAt', required: true, value: toLocalInput(now + 30 * day) }),
      salesOpenAt: field('Sales open', { type: 'datetime-local', name: 'salesOpenAt', required: true, value: toLocalInput(now) }),
      salesCloseAt: field('Sales close', { type: 'datetime-local', name: 'salesCloseAt', required: true, value: toLocalInput(now + 29 * day) }),
      perUserLimit: field('Seats per person', { type: 'number', name: 'perUserLimit', min: 1, max: 20, value: 4 }),
      holdSeconds: field('Hold time (s)', { type: 'number', name: 'holdSeconds', min: 30, max: 3600, value: 300 }),
      admitPerSecond: field('Queue: admitted per second', { type: 'number', name: 'admitPerSecond', min: 1, value: 50 }),
      maxActive: field('Queue: shoppers at once', { type: 'number', name: 'maxActive', min: 1, value: 1000 }),
      admissionSeconds: field('Queue: admission lasts (s)', { type: 'number', name: 'admissionSeconds', min: 30, value: 600 }),
    };
    const queue = h('input', { type: 'checkbox', id: 'queue-enabled', name: 'queueEnabled' });
    const add = h('button', { type: 'submit' }, 'Add performance');
    const form = h('form', { class: 'sub', 'aria-label': 'Add a performance' }, h('h3', {}, 'Add a performance'),
      h('div', { class: 'grid2' }, Object.values(f).map((x) => x.wrap),
        h('div', { class: 'field check' }, queue, h('label', { for: 'queue-enabled' }, 'Sell through the waiting queue'))), add);
    form.onsubmit = (ev) => {
      ev.preventDefault();
      const input = { queueEnabled: queue.checked };
      for (const k of ['startsAt', 'salesOpenAt', 'salesCloseAt']) input[k] = fromLocalInput(f[k].input.value);
      for (const k of ['perUserLimit', 'holdSeconds', 'admitPerSecond', 'maxActive', 'admissionSeconds']) input[k] = Number(f[k].input.value);
      busy(add, async () => {
        await gql('mutation($c: ID!, $i: ScheduleInput!) { addSchedule(concertId: $c, input: $i) { id } }', { c: c.id, i: input });
        toast('Performance added. Build its seat layout next.', 'ok');
        await load(c.id);
      }, (e) => notice(smsg, explain(e), 'error'));
    };
    return form;
  }

  // --- editing a performance ------------------------------------------------------------------
  // Only what the host changed is sent; the server names the rule of any refusal.
  function editForm(c, s) {
    const emsg = h('div');
    const f = {
      startsAt: field('Starts', { type: 'datetime-local', value: toLocalInput(Date.parse(s.startsAt)) }),
      salesOpenAt: field('Sales open', { type: 'datetime-local', value: toLocalInput(Date.parse(s.salesOpenAt)) }),
      salesCloseAt: field('Sales close', { type: 'datetime-local', value: toLocalInput(Date.parse(s.salesCloseAt)) }),
      perUserLimit: field('Seats per person', { type: 'number', min: 1, max: 20, value: s.perUserLimit }),
      holdSeconds: field('Hold time (s)', { type: 'number', min: 30, max: 3600, value: s.holdSeconds }),
      admitPerSecond: field('Queue: admitted per second', { type: 'number', min: 1, value: s.admitPerSecond }),
      maxActive: field('Queue: shoppers at once', { type: 'number', min: 1, value: s.maxActive }),
      admissionSeconds: field('Queue: admission lasts (s)', { type: 'number', min: 30, value: s.admissionSeconds }),
    };
    const initial = Object.fromEntries(Object.entries(f).map(([k, x]) => [k, x.input.value]));
    const queue = h('input', { type: 'checkbox', id: 'edit-queue', checked: s.queueEnabled });
    const save = h('button', { type: 'submit', class: 'primary' }, 'Save changes');
    const form = h('form', { class: 'sub', 'aria-label': 'Edit the performance' },
      h('div', { class: 'grid2' }, Object.values(f).map((x) => x.wrap),
        h('div', { class: 'field check' }, queue, h('label', { for: 'edit-queue' }, 'Sell through the waiting queue'))), save);
    form.onsubmit = (ev) => {
      ev.preventDefault();
      const input = {};
      for (const [k, x] of Object.entries(f)) {
        if (x.input.value === initial[k]) continue;
        input[k] = ['startsAt', 'salesOpenAt', 'salesCloseAt'].includes(k) ? fromLocalInput(x.input.value) : Number(x.input.value);
      }
      if (queue.checked !== s.queueEnabled) input.queueEnabled = queue.checked;
      busy(save, async () => {
        await gql(`mutation($id: ID!, $i: ScheduleUpdateInput!) { updateSchedule(id: $id, input: $i) { ${SCHEDULE_FIELDS} } }`, { id: s.id, i: input });
        toast('Performance updated.', 'ok');
        await load(c.id);
      }, (e) => notice(emsg, explain(e), 'error'));
    };
    const pmsg = h('div');
    const pricesBox = h('div');
    gql('query($s: ID!) { schedule(id: $s) { availability { grade price held sold } } }', { s: s.id }).then((d) => {
      const grades = d.schedule.availability;
      if (!grades.length) return;
      const inputs = grades.map((g) => field(`Price of ${g.grade} (points)`, { type: 'number', min: 0, value: g.price }));
      const savePrices = h('button', { type: 'button' }, 'Save prices');
      savePrices.onclick = () => busy(savePrices, async () => {
        const prices = grades.map((g, i) => ({ grade: g.grade, price: Number(inputs[i].input.value) })).filter((p, i) => p.price !== grades[i].price);
        if (!prices.length) return;
        await gql('mutation($s: ID!, $p: [GradePriceInput!]!) { updateGradePrices(scheduleId: $s, prices: $p) { id } }', { s: s.id, p: prices });
        toast('Prices updated.', 'ok');
        for (const p of prices) grades.find((g) => g.grade === p.grade).price = p.price;
      }, (e) => notice(pmsg, explain(e), 'error'));
      fill(pricesBox, h('h4', {}, 'Prices'), h('p', { class: 'muted' }, 'A grade\'s price can change until one of its seats is held or sold.'),
        pmsg, h('div', { class: 'grid2' }, inputs.map((x) => x.wrap)), savePrices);
    }, (e) => notice(pmsg, explain(e), 'error'));
    return h('section', { class: 'panel edit-schedule', 'aria-labelledby': 'edit-title' },
      h('h3', { id: 'edit-title' }, `Edit the performance of ${when(s.startsAt)}`),
      h('p', { class: 'muted' }, 'Nothing moves into the past; sales close before the show. A lower seat limit applies to the next holds; moving a show with tickets sold tells their holders.'),
      emsg, form, pricesBox);
  }

  // --- the seats of a performance: kept back, put back, given away ------------------------------
  // A fan's "someone was faster" would mislead a host: the server names the seat and the rule.
  const seatRefusal = (e) => (e?.code === 'SEAT_UNAVAILABLE' ? `Not possible: ${e.message}.` : explain(e));
  async function seatsPanel(c, s) {
    const MAP = 'query($s: ID!) { schedule(id: $s) { seatMap { version grades { name price color } rows { section row seats grade } idRuns statuses } } }';
    const read = async () => fromSeatMap((await gql(MAP, { s: s.id })).schedule.seatMap);
    let model = await read();
    const picked = new Set();
    const kmsg = h('div');
    const chosen = h('p', { class: 'picked-seats', 'aria-live': 'polite' });
    const canvas = h('canvas', { class: 'seatmap', tabindex: 0, role: 'application', 'aria-label': 'Seat map: pick the seats to keep back or give away' });
    const view = new SeatCanvas(canvas, model, {
      pickable: true,
      selection: () => [...picked],
      onPick: (i) => { if (picked.has(i)) picked.delete(i); else picked.add(i); showPicked(); view.invalidate(); },
    });
    function showPicked() {
      const seats = [...picked].sort((a, b) => a - b).map((i) => {
        const d = describe(model, i);
        return `${d.section} ${d.row}-${d.number} (${d.status})`;
      });
      fill(chosen, seats.length ? `Picked: ${seats.join(', ')}` : 'Pick seats on the map (click, or arrows and Enter).');
    }
    const ids = () => [...picked].map((i) => String(model.ids[i]));
    const after = async (text) => {
      toast(text, 'ok');
      picked.clear();
      model = await read();
      view.setModel(model);
      showPicked();
    };
    const reason = field('Reason', { value: 'production' });
    const block = h('button', { type: 'button' }, 'Keep back');
    block.onclick = () => busy(block, async () => {
      await gql('mutation($s: ID!, $ids: [ID!]!, $r: String!) { blockSeats(scheduleId: $s, seatIds: $ids, reason: $r) { id } }', { s: s.id, ids: ids(), r: reason.input.value });
      await after('Seats kept back.');
    }, (e) => notice(kmsg, seatRefusal(e), 'error'));
    const unblock = h('button', { type: 'button' }, 'Put back on sale');
    unblock.onclick = () => busy(unblock, async () => {
      await gql('mutation($s: ID!, $ids: [ID!]!) { unblockSeats(scheduleId: $s, seatIds: $ids) { id } }', { s: s.id, ids: ids() });
      await after('Seats back on sale.');
    }, (e) => notice(kmsg, seatRefusal(e), 'error'));
    const email = field('Guest e-mail', { type: 'email' });
    const note = field('Note', {});
    const comp = h('button', { type: 'button', class: 'primary' }, 'Give tickets');
    comp.onclick = () => busy(comp, async () => {
      const d = await gql('mutation($s: ID!, $ids: [ID!]!, $e: String!, $n: String) { issueComplimentary(scheduleId: $s, seatIds: $ids, email: $e, note: $n) { reservation { id seatCount } claim { url expiresAt } } }',
        { s: s.id, ids: ids(), e: email.input.value, n: note.input.value || null });
      const { reservation, claim } = d.issueComplimentary;
      await after(`${reservation.seatCount} complimentary ticket(s) issued to ${email.input.value}.`);
      showClaim(email.input.value, claim);
    }, (e) => notice(kmsg, seatRefusal(e), 'error'));
    // The guest's one-time link is shown once (the server keeps only its hash): the host
    // copies it and passes it on, since boxoffice sends no e-mail.
    const claimBox = h('div', { class: 'claim-link', 'aria-live': 'polite' });
    function showClaim(to, claim) {
      if (!claim) { fill(claimBox); return; }
      const link = new URL(claim.url, location.origin).href;
      const input = h('input', { readonly: true, value: link, 'aria-label': `Claim link for ${to}`, class: 'claim-url' });
      const copy = h('button', { type: 'button' }, 'Copy link');
      copy.onclick = async () => {
        input.select();
        try { await navigator.clipboard.writeText(link); toast('Link copied.', 'ok'); } catch { /* selected: the host copies it by hand */ }
      };
      fill(claimBox, h('p', {}, `${to} has no password yet. Send them this link to set one and see their tickets; it works once, until ${when(claim.expiresAt)}, and is shown only now:`),
        h('div', { class: 'builder-row' }, input, copy));
    }
    showPicked();
    return h('section', { class: 'panel seats-panel', 'aria-labelledby': 'seats-title' },
      h('h3', { id: 'seats-title' }, `Seats of ${when(s.startsAt)}`),
      h('p', { class: 'muted' }, 'Seats kept back are never sold and show as not for sale on every map. Complimentary tickets go at price 0 to the e-mail given (a new e-mail gets an invited account, with a one-time link for the guest to set a password).'),
      kmsg, h('div', { class: 'mapbox' }, canvas), chosen,
      h('div', { class: 'builder-row' }, reason.wrap, block, unblock),
      h('div', { class: 'builder-row' }, email.wrap, note.wrap, comp), claimBox);
  }

  // --- the layout builder ---------------------------------------------------------------------
  function builder(c, s, current = null) {
    const layout = current || {
      grades: [
        { name: 'VIP', price: 150000, color: '#d4af37' },
        { name: 'R', price: 120000, color: '#c0392b' },
        { name: 'S', price: 90000, color: '#2980b9' },
      ],
      sections: [{ name: 'Floor', groups: [{ first: 'A', count: 2, seats: 20, grade: 'VIP' }, { first: 'C', count: 4, seats: 24, grade: 'R' }] },
        { name: 'Balcony', groups: [{ first: '1', count: 3, seats: 30, grade: 'S' }] }],
    };
    const bmsg = h('div');
    const gradesBox = h('div');
    const sectionsBox = h('div');
    const stats = h('p', { class: 'layout-stats', 'aria-live': 'polite' });
    const canvas = h('canvas', { class: 'seatmap', role: 'img', 'aria-label': 'Preview of the seat map' });
    const box = h('div', { class: 'mapbox preview' }, canvas);
    let view = null;

    const toInput = () => ({
      grades: layout.grades.map((g) => ({ name: g.name.trim(), price: Number(g.price), color: g.color })),
      sections: layout.sections.map((sec) => ({ name: sec.name.trim(), rows: sec.groups.flatMap((g) => labels(g.first, Number(g.count)).map((label) => ({ label, seats: Number(g.seats), grade: g.grade }))) })),
    });
    const preview = () => {
      const input = toInput();
      const model = fromLayout(input);
      if (view) view.setModel(model); else view = new SeatCanvas(canvas, model);
      const per = input.grades.map((g) => `${g.name} ${input.sections.reduce((n, sec) => n + sec.rows.filter((r) => r.grade === g.name).reduce((m, r) => m + r.seats, 0), 0)}`);
      fill(stats, `${model.count} seats in ${model.rows.length} rows · ${per.join(' · ')}`);
    };
    const num = (label, obj, k, attrs = {}) => {
      const x = field(label, { type: 'number', value: obj[k], min: 0, ...attrs });
      x.input.oninput = () => { obj[k] = x.input.value; preview(); };
      return x.wrap;
    };
    const text = (label, obj, k, attrs = {}) => {
      const x = field(label, { value: obj[k], ...attrs });
      x.input.oninput = () => { obj[k] = x.input.value; renderSections(); preview(); };
      return x.wrap;
    };
    function renderGrades() {
      const add = h('button', { type: 'button' }, 'Add grade');
      add.onclick = () => { layout.grades.push({ name: `G${layout.grades.length + 1}`, price: 50000, color: '#27ae60' }); renderGrades(); renderSections(); preview(); };
      fill(gradesBox, h('h4', {}, 'Grades'), layout.grades.map((g, gi) => {
        const name = field('Grade name', { value: g.name, required: true });
        name.input.onchange = () => {
          const old = g.name;
          g.name = name.input.value.trim();
          for (const sec of layout.sections) for (const grp of sec.groups) if (grp.grade === old) grp.grade = g.name;
          renderSections(); preview();
        };
        const color = field('Colour', { type: 'color', value: g.color });
        color.input.oninput = () => { g.color = color.input.value; preview(); };
        const rm = h('button', { type: 'button', class: 'link', 'aria-label': `Remove grade ${g.name}` }, 'remove');
        rm.onclick = () => { layout.grades.splice(gi, 1); renderGrades(); renderSections(); preview(); };
        return h('div', { class: 'builder-row' }, name.wrap, num('Price (points)', g, 'price'), color.wrap, rm);
      }), add);
    }
    function renderSections() {
      const active = document.activeElement;
      if (active && sectionsBox.contains(active) && active.tagName === 'INPUT' && active.type !== 'number') return; // typing a name: keep focus
      const add = h('button', { type: 'button' }, 'Add section');
      add.onclick = () => { layout.sections.push({ name: `Section ${layout.sections.length + 1}`, groups: [{ first: 'A', count: 5, seats: 20, grade: layout.grades[0]?.name ?? '' }] }); renderSections(); preview(); };
      fill(sectionsBox, h('h4', {}, 'Sections and rows'), layout.sections.map((sec, si) => {
        const addRows = h('button', { type: 'button' }, 'Add rows');
        addRows.onclick = () => { sec.groups.push({ first: nextLabel(sec), count: 1, seats: sec.groups.at(-1)?.seats ?? 20, grade: layout.grades[0]?.name ?? '' }); renderSections(); preview(); };
        const rmSec = h('button', { type: 'button', class: 'link', 'aria-label': `Remove section ${sec.name}` }, 'remove section');
        rmSec.onclick = () => { layout.sections.splice(si, 1); renderSections(); preview(); };
        return h('fieldset', { class: 'section' }, h('legend', {}, sec.name || '(unnamed)'),
          h('div', { class: 'builder-row' }, text('Section name', sec, 'name', { required: true }), rmSec),
          sec.groups.map((g, gi) => {
            const grade = field('Grade', {}, 'select');
            for (const gr of layout.grades) grade.input.append(h('option', { value: gr.name, selected: gr.name === g.grade }, gr.name));
            grade.input.onchange = () => { g.grade = grade.input.value; preview(); };
            const first = field('First row label', { value: g.first, size: 4, required: true });
            first.input.oninput = () => { g.first = first.input.value.trim(); preview(); };
            const rm = h('button', { type: 'button', class: 'link', 'aria-label': 'Remove these rows' }, 'remove');
            rm.onclick = () => { sec.groups.splice(gi, 1); renderSections(); preview(); };
            return h('div', { class: 'builder-row' }, first.wrap, num('Rows', g, 'count', { min: 1, max: 500 }), num('Seats per row', g, 'seats', { min: 1, max: 1000 }), grade.wrap, rm);
          }), addRows);
      }), add);
    }
    const generate = h('button', { type: 'button', class: 'primary', id: 'generate' }, 'Generate seats');
    generate.onclick = () => busy(generate, async () => {
      const d = await gql('mutation($s: ID!, $l: SeatLayoutInput!) { generateSeats(scheduleId: $s, layout: $l) { id capacity } }', { s: s.id, l: toInput() });
      toast(`${d.generateSeats.capacity} seats generated.`, 'ok');
      await load(c.id);
    }, (e) => notice(bmsg, explain(e), 'error'));
    renderGrades();
    renderSections();
    const panel = h('section', { class: 'panel builder', 'aria-labelledby': 'builder-title' },
      h('h3', { id: 'builder-title' }, `Seat layout for ${when(s.startsAt)}`),
      h('p', { class: 'muted' }, 'Rows of a group get consecutive labels from the first one (A, B, C… or 1, 2, 3…). The preview shows the map fans will see.'),
      bmsg, h('div', { class: 'builder-grid' }, h('div', {}, gradesBox, sectionsBox), h('div', {}, h('h4', {}, 'Preview'), stats, box, generate)));
    requestAnimationFrame(preview);
    return panel;
  }

  // --- live sales ---------------------------------------------------------------------------
  function sales(c) {
    const canvas = h('canvas', { class: 'chart', role: 'img', 'aria-label': 'Seats sold and held per performance' });
    const trend = h('canvas', { class: 'chart', role: 'img', 'aria-label': 'Seats sold and held over time, since this page opened' });
    const history = [];
    const table = h('table', { class: 'sales' });
    const total = h('p', { class: 'sales-total', 'aria-live': 'polite' });
    const panel = h('section', { class: 'panel', 'aria-labelledby': 'sales-title' }, h('h2', { id: 'sales-title' }, 'Live sales'), total, h('div', { class: 'chart-box' }, canvas),
      h('h3', {}, 'Since this page opened'), h('div', { class: 'chart-box' }, trend), h('div', { class: 'scroll' }, table));
    let timer = null;
    const refresh = async () => {
      try {
        const d = (await gql('query($c: ID!) { concertSales(concertId: $c) { seatsSold complimentary revenue schedules { scheduleId capacity seatsHeld seatsSold complimentary revenue refunded } } }', { c: c.id })).concertSales;
        const named = d.schedules.map((x) => ({ ...x, name: when(c.schedules.find((s) => s.id === x.scheduleId)?.startsAt) }));
        // Sold means paid for, as on the concert's sales page; seats given away count apart.
        fill(total, `${d.seatsSold} seats sold${d.complimentary ? ` · ${d.complimentary} complimentary` : ''} · revenue ${points(d.revenue)}`);
        fill(table, h('thead', {}, h('tr', {}, ['Performance', 'Held', 'Sold', 'Complimentary', 'Capacity', 'Revenue', 'Refunded'].map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', {}, named.map((x) => h('tr', { dataset: { schedule: x.scheduleId } }, h('th', { scope: 'row' }, x.name), h('td', { class: 'held' }, String(x.seatsHeld)), h('td', { class: 'sold' }, String(x.seatsSold)),
            h('td', { class: 'comp' }, String(x.complimentary)), h('td', {}, String(x.capacity)), h('td', {}, points(x.revenue)), h('td', {}, points(x.refunded))))));
        drawSales(canvas, named);
        history.push({ t: Date.now(), rows: named });
        if (history.length > 600) history.shift();
        drawTrend(trend, history);
      } catch (e) { fill(total, explain(e)); }
    };
    const soon = () => { clearTimeout(timer); timer = setTimeout(refresh, 300); };
    for (const s of c.schedules.filter((x) => x.capacity > 0 && c.status !== 'DRAFT')) {
      state.stops.push(subscribe('subscription($s: ID!) { seatChanges(scheduleId: $s) { version } }', { s: s.id }, { next: soon, reconnect: soon }));
    }
    const every = setInterval(refresh, 15_000);
    state.stops.push(() => { clearInterval(every); clearTimeout(timer); });
    refresh();
    return panel;
  }

  const stopAuth = auth.onAccountChange(show);
  show();
  return () => { stopAuth(); for (const s of state.stops) s(); };
}

/** The schedule's layout as the builder edits it: grades, and sections of row groups. */
async function currentLayout(scheduleId) {
  const d = await gql('query($s: ID!) { schedule(id: $s) { seatMap { grades { name price color } rows { section row seats grade } } } }', { s: scheduleId });
  const sm = d.schedule.seatMap;
  return {
    grades: sm.grades.map((g) => ({ name: g.name, price: g.price, color: g.color.toLowerCase() })),
    sections: toSections(sm.rows.map((r) => ({ section: r.section, label: r.row, seats: r.seats, grade: sm.grades[r.grade]?.name ?? '' }))),
  };
}

/**
 * Rows (in layout order) to the builder's sections of groups: consecutive rows of a
 * section with the same seats and grade whose labels follow each other (A, B, C… or
 * 1, 2, 3…) make one group; any other row is a group of its own.
 */
export function toSections(rows) {
  const sections = [];
  for (const r of rows) {
    let sec = sections.at(-1);
    if (!sec || sec.name !== r.section) {
      sec = { name: r.section, groups: [] };
      sections.push(sec);
    }
    const g = sec.groups.at(-1);
    if (g && g.seats === r.seats && g.grade === r.grade && labels(g.first, g.count + 1).at(-1) === r.label) g.count += 1;
    else sec.groups.push({ first: r.label, count: 1, seats: r.seats, grade: r.grade });
  }
  return sections;
}

/** `count` consecutive row labels from `first`: 1, 2, 3…, A, B, … Z, AA, AB… or R1, R2… */
export function labels(first, count) {
  const out = [];
  const n = Math.max(0, Math.min(1000, count | 0));
  // One row keeps its label whatever it is (a layout read back may have any).
  if (n === 1 && first) return [first];
  if (/^\d+$/.test(first)) {
    for (let i = 0; i < n; i += 1) out.push(String(Number(first) + i));
    return out;
  }
  // A label ending in a number counts on: R1, R2, R3 (a layout read back has such rows).
  const d = /^(.*?[^\d])(\d+)$/.exec(first || '');
  if (d) {
    for (let i = 0; i < n; i += 1) out.push(d[1] + String(Number(d[2]) + i));
    return out;
  }
  const m = /^(.*?)([A-Z]+)$/i.exec(first || 'A');
  const prefix = m ? m[1] : `${first}-`;
  let v = m ? toNum(m[2].toUpperCase()) : 1;
  for (let i = 0; i < n; i += 1, v += 1) out.push(prefix + toLetters(v));
  return out;
}
const toNum = (s) => [...s].reduce((n, ch) => n * 26 + (ch.charCodeAt(0) - 64), 0);
const toLetters = (n) => { let s = ''; for (; n > 0; n = Math.floor((n - 1) / 26)) s = String.fromCharCode(65 + ((n - 1) % 26)) + s; return s; };
function nextLabel(sec) {
  const g = sec.groups.at(-1);
  if (!g) return 'A';
  const all = labels(g.first, Number(g.count) + 1);
  return all.at(-1) ?? 'A';
}

function drawSales(canvas, rows) {
  const bar = 28;
  const height = rows.length * (bar + 12) + 30;
  const { ctx, width } = crispCanvas(canvas, height);
  const labelW = Math.min(170, width * 0.35);
  ctx.clearRect(0, 0, width, height);
  ctx.font = '12px system-ui, sans-serif';
  const span = width - labelW - 10;
  rows.forEach((r, i) => {
    const y = 8 + i * (bar + 12);
    ctx.fillStyle = '#333';
    ctx.fillText(r.name, 4, y + 15, labelW - 8);
    const cap = Math.max(1, r.capacity);
    const sold = (r.seatsSold / cap) * span;
    const given = ((r.complimentary || 0) / cap) * span;
    const held = (r.seatsHeld / cap) * span;
    ctx.fillStyle = '#e8eaed'; ctx.fillRect(labelW, y, span, bar);
    ctx.fillStyle = '#1e7b3a'; ctx.fillRect(labelW, y, sold, bar);
    ctx.fillStyle = '#8e44ad'; ctx.fillRect(labelW + sold, y, given, bar);
    ctx.fillStyle = '#f0a500'; ctx.fillRect(labelW + sold + given, y, held, bar);
    ctx.fillStyle = '#111';
    const comp = r.complimentary ? ` · ${r.complimentary} given` : '';
    ctx.fillText(`${r.seatsSold} sold${comp} · ${r.seatsHeld} held · ${points(r.revenue)}`, labelW + 6, y + 15, span - 12);
  });
  const ly = height - 12;
  [['#1e7b3a', 'sold'], ['#8e44ad', 'given'], ['#f0a500', 'held'], ['#e8eaed', 'free']].forEach(([col, t], k) => {
    ctx.fillStyle = col; ctx.fillRect(labelW + k * 70, ly - 9, 10, 10);
    ctx.fillStyle = '#333'; ctx.fillText(t, labelW + k * 70 + 14, ly);
  });
}

const SERIES = ['#1f4fd1', '#c0392b', '#1e7b3a', '#8e44ad', '#d35400', '#16a085'];

/** Sold (solid) and held (dashed) seats of each performance over time. */
function drawTrend(canvas, history) {
  const height = 160;
  const { ctx, width } = crispCanvas(canvas, height);
  ctx.clearRect(0, 0, width, height);
  ctx.font = '11px system-ui, sans-serif';
  const left = 40;
  const bottom = height - 18;
  const t0 = history[0].t;
  const t1 = Math.max(t0 + 20_000, history.at(-1).t);
  const top = Math.max(4, ...history.flatMap((h) => h.rows.map((r) => r.seatsSold + r.seatsHeld)));
  const x = (t) => left + ((t - t0) / (t1 - t0)) * (width - left - 8);
  const y = (v) => bottom - (v / top) * (bottom - 8);
  ctx.strokeStyle = '#d9dee5';
  ctx.fillStyle = '#5f6b7a';
  for (const v of [0, Math.round(top / 2), top]) {
    ctx.beginPath(); ctx.moveTo(left, y(v)); ctx.lineTo(width - 8, y(v)); ctx.stroke();
    ctx.fillText(String(v), 4, y(v) + 4);
  }
  ctx.fillText(`${Math.round((t1 - t0) / 1000)} s`, width - 40, height - 4);
  const ids = history.at(-1).rows.map((r) => r.scheduleId);
  ids.forEach((id, k) => {
    for (const [field, dash] of [['seatsSold', []], ['seatsHeld', [4, 3]]]) {
      ctx.strokeStyle = SERIES[k % SERIES.length];
      ctx.setLineDash(dash);
      ctx.lineWidth = 2;
      ctx.beginPath();
      history.forEach((hh, i) => {
        const r = hh.rows.find((row) => row.scheduleId === id);
        if (!r) return;
        if (i === 0) ctx.moveTo(x(hh.t), y(r[field])); else ctx.lineTo(x(hh.t), y(r[field]));
      });
      ctx.stroke();
    }
  });
  ctx.setLineDash([]);
  ctx.fillStyle = '#333';
  ctx.fillText('solid: sold · dashed: held', left, height - 4);
}
