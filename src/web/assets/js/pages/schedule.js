// `/schedules/{id}`: a fan's seat page. The whole map on a canvas, kept live by the
// seatChanges subscription; the waiting queue when the performance has one; picking seats
// (mouse or keyboard), holding them through placeOrder with its result followed live, the
// hold's countdown, paying with points (charging the shortfall first), and the fan's own
// reservations for this performance. "Best available" asks the box office to choose the
// seats (count and grade); on a sold-out performance the fan can join its waiting list, and
// an offer (a hold made for them when seats come back) arrives live through waitlistOffers.
import { h, fill, refill, focusOn, notice, toast, points, when, countdown, key, busy } from '../ui.js';
import { gql } from '../api.js';
import { subscribe } from '../live.js';
import { explain } from '../errors.js';
import * as auth from '../auth.js';
import { accountDialog } from '../app.js';
import {
  fromSeatMap, readSeatMap, countByGrade, describe, SeatCanvas, AVAILABLE, STATUS_OF, HELD_COLOR, SOLD_COLOR, BLOCKED_COLOR,
} from '../seatmap.js';

const SCHEDULE = `query Schedule($s: ID!) { schedule(id: $s) {
  id startsAt salesOpenAt salesCloseAt onSale status perUserLimit holdSeconds queueEnabled capacity
  concert { id title artist venue status }
} }`;
const MAP = `query SeatMap($s: ID!) { schedule(id: $s) { seatMap { version grades { name price color }
  rows { section row seats grade } idRuns statuses } } }`;
const SEAT_CHANGES = `subscription SeatChanges($s: ID!, $v: Int) { seatChanges(scheduleId: $s, sinceVersion: $v) {
  version resync seats { id status } availability { grade price color total available held sold } } }`;
const RESERVATION = 'id status totalPrice expiresAt seatCount seats { id section row number grade price } schedule { id }';
const TICKET = 'state position ahead etaSeconds admitted admissionExpiresAt';

export async function render(main, [id]) {
  const stops = [];
  const page = { id, model: null, selection: new Set(), holding: new Set(), mine: [], hold: null, ticket: null, rereading: true };

  const head = h('div');
  const msg = h('div', { class: 'page-msg' });
  const legend = h('ul', { class: 'legend', 'aria-label': 'Colours' });
  const canvas = h('canvas', {
    tabindex: '0', class: 'seatmap',
    'aria-label': 'Seat map. Arrow keys move between seats, Enter or Space picks a seat, N jumps to the next free seat.',
    'aria-describedby': 'seat-cursor',
  });
  const cursorInfo = h('p', { id: 'seat-cursor', class: 'cursor-info', 'aria-live': 'polite' }, 'Move over the map or focus it and use the arrow keys.');
  const summary = h('p', { id: 'seats-left', class: 'seats-left', 'aria-live': 'polite' });
  const live = h('span', { class: 'live', title: 'Updated live' }, 'connecting…');
  const availTable = h('table', { class: 'avail' });
  const zoomIn = h('button', { type: 'button', class: 'zoom', 'aria-label': 'Zoom in' }, '+');
  const zoomOut = h('button', { type: 'button', class: 'zoom', 'aria-label': 'Zoom out' }, '−');
  zoomIn.onclick = () => view?.setZoom((view.zoom || 1) * 2);
  zoomOut.onclick = () => view?.setZoom((view.zoom || 1) / 2);
  const queueBox = h('section', { class: 'panel', hidden: true, 'aria-labelledby': 'q-title' });
  const pickBox = h('section', { class: 'panel', 'aria-labelledby': 'pick-title' });
  const bestBox = h('section', { class: 'panel', 'aria-labelledby': 'best-title' });
  const waitBox = h('div', { class: 'waitlist', 'aria-live': 'polite' });
  const holdBox = h('section', { class: 'panel', hidden: true, 'aria-labelledby': 'hold-title', 'aria-live': 'polite' });
  const mineBox = h('section', { class: 'panel', 'aria-labelledby': 'mine-title' });
  const orderStatus = h('p', { class: 'order-status', 'aria-live': 'polite' });
  const saleNote = h('p', { class: 'msg info', hidden: true });

  fill(main, head, msg, h('div', { class: 'seat-page' },
    h('div', { class: 'map-col' }, h('div', { class: 'map-tools' }, legend, zoomOut, zoomIn), h('div', { class: 'mapbox' }, canvas), cursorInfo,
      h('p', { class: 'muted small' }, 'Keyboard: arrows move, Enter or Space picks, N / P next / previous free seat, Home / End row ends, + / − zoom.')),
    h('div', { class: 'side-col' },
      h('section', { class: 'panel', 'aria-labelledby': 'avail-title' },
        h('h2', { id: 'avail-title' }, 'Availability ', live), summary, availTable),
      queueBox, pickBox, bestBox, holdBox, mineBox)));

  let schedule;
  try {
    schedule = (await gql(SCHEDULE, { s: id })).schedule;
  } catch (e) {
    fill(head, h('h1', {}, 'Performance not found'));
    notice(msg, explain(e), 'error');
    return () => {};
  }
  page.schedule = schedule;
  const c = schedule.concert;
  fill(head, h('h1', {}, c.title),
    h('p', { class: 'meta' }, `${c.artist} · ${c.venue} · ${when(schedule.startsAt)}`),
    schedule.status === 'CANCELLED' ? h('p', { class: 'msg error' }, 'This performance is cancelled.') : saleNote,
    h('p', { class: 'muted small' }, `Up to ${schedule.perUserLimit} seats per person; a hold lasts ${Math.round(schedule.holdSeconds / 60)} min.`));

  // --- the map, live ------------------------------------------------------------------
  let view = null;
  const showCursor = (i) => {
    if (i < 0 || !page.model) return;
    const d = describe(page.model, i);
    fill(cursorInfo, `${d.section}, row ${d.row}, seat ${d.number}: ${d.grade}, ${points(d.price)}, ${d.status}${page.selection.has(i) ? ', picked' : ''}${page.mine.includes(page.model.ids[i]) ? ', yours' : ''}`);
  };
  const pick = (i) => {
    const m = page.model;
    if (page.selection.has(i)) page.selection.delete(i);
    else if (m.status[i] !== AVAILABLE) { toast(`That seat is ${describe(m, i).status}.`); return; }
    else if (page.selection.size >= Math.min(10, schedule.perUserLimit)) { toast(`At most ${Math.min(10, schedule.perUserLimit)} seats at once.`, 'error'); return; }
    else page.selection.add(i);
    showCursor(i);
    renderPick();
    view.invalidate();
  };

  const renderAvailability = (avail) => {
    page.avail = avail;
    // The best-available panel is built further down, after the first read of the map.
    if (page.bestReady) renderWait();
    fill(legend, avail.map((g) => h('li', {}, swatch(g.color), `${g.grade} ${points(g.price)}`)),
      h('li', {}, swatch(HELD_COLOR), 'held'), h('li', {}, swatch(SOLD_COLOR), 'sold'), h('li', {}, swatch(BLOCKED_COLOR), 'not for sale'),
      h('li', {}, h('span', { class: 'swatch picked', 'aria-hidden': 'true' }), 'your pick'),
      h('li', {}, h('span', { class: 'swatch mine', 'aria-hidden': 'true' }), 'yours'));
    const free = avail.reduce((n, g) => n + g.available, 0);
    const total = avail.reduce((n, g) => n + g.total, 0);
    fill(summary, `${free} of ${total} seats available`);
    fill(availTable, h('caption', { class: 'sr-only' }, 'Seats per grade'),
      h('thead', {}, h('tr', {}, ['Grade', 'Price', 'Available', 'Held', 'Sold'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, avail.map((g) => h('tr', { dataset: { grade: g.grade } },
        h('th', { scope: 'row' }, swatch(g.color), g.grade), h('td', {}, points(g.price)),
        h('td', { class: 'available' }, `${g.available} / ${g.total}`), h('td', {}, String(g.held)), h('td', {}, String(g.sold))))));
  };

  const applyEvent = (ev) => {
    const m = page.model;
    // The server could not say what changed since our map's version: read it afresh.
    if (ev.resync) { reread(true); return; }
    if (ev.version <= m.version) return;
    const lost = [];
    for (const s of ev.seats) {
      const i = m.index.get(Number(s.id));
      if (i === undefined) continue;
      m.status[i] = STATUS_OF[s.status];
      if (page.selection.has(i) && m.status[i] !== AVAILABLE) { page.selection.delete(i); lost.push(i); }
    }
    m.version = ev.version;
    renderAvailability(ev.availability);
    fill(live, `live · v${m.version}`);
    if (lost.length) {
      toast(`Taken by someone else just now: ${lost.map((i) => seatName(m, i)).join(', ')}.`, 'error');
      renderPick();
    }
    if (view.cursor >= 0) showCursor(view.cursor);
    view.invalidate();
  };

  // Read the map (the cacheable HTTP snapshot; after a resync GraphQL's, which is never a
  // cached copy), then follow the changes since its version: the subscription's first
  // event carries what changed in between, or says resync.
  const graphqlMap = async () => (await gql(MAP, { s: id })).schedule.seatMap;
  let stopLive = null;
  stops.push(() => stopLive?.());
  function follow() {
    stopLive?.();
    // Sent again after a dropped socket from the map's version then: it catches up.
    stopLive = subscribe(SEAT_CHANGES, () => ({ s: id, v: page.model.version }), {
      next: (d) => { if (!page.rereading) applyEvent(d.seatChanges); },
      error: (e) => fill(live, `not live: ${explain({ code: e.extensions?.code, message: e.message })}`),
    });
  }

  async function reread(fresh = false) {
    if (page.rereading && page.model) return;
    page.rereading = true;
    try {
      const sm = fresh ? await graphqlMap() : await readSeatMap(id, graphqlMap);
      const keep = page.model ? [...page.selection].map((i) => page.model.ids[i]) : [];
      const holding = page.model ? [...page.holding].map((i) => page.model.ids[i]) : [];
      const model = fromSeatMap(sm);
      page.holding = new Set(holding.map((sid) => model.index.get(sid)).filter((i) => i !== undefined));
      page.selection = new Set(keep.map((sid) => model.index.get(sid)).filter((i) => i !== undefined && model.status[i] === AVAILABLE));
      page.model = model;
      if (view) view.setModel(model);
      else view = new SeatCanvas(canvas, model, { pickable: true, selection: () => [...page.selection, ...page.holding], mine: () => mineIndexes(), onPick: pick, onCursor: showCursor });
      renderAvailability(countByGrade(model));
      fill(live, `live · v${model.version}`);
      renderPick();
      follow();
    } catch (e) {
      notice(msg, explain(e), 'error');
    } finally {
      page.rereading = false;
    }
  }

  await reread();

  // --- queue --------------------------------------------------------------------------
  let queueStop = null;
  let admissionTimer = null;
  const renderQueue = () => {
    if (!schedule.queueEnabled) return;
    queueBox.hidden = false;
    const t = page.ticket;
    const title = h('h2', { id: 'q-title' }, 'Waiting queue');
    clearInterval(admissionTimer);
    if (!auth.signedIn()) {
      const login = h('button', { type: 'button', class: 'primary' }, 'Log in to enter the queue');
      login.onclick = () => accountDialog();
      fill(queueBox, title, h('p', {}, 'This performance sells through a fair waiting queue.'), login);
      return;
    }
    if (!t || t.state === 'NOT_IN_QUEUE') {
      const enter = h('button', { type: 'button', class: 'primary', id: 'enter-queue' }, 'Enter the queue');
      enter.onclick = () => busy(enter, async () => {
        page.ticket = (await gql(`mutation($s: ID!) { enterQueue(scheduleId: $s) { ${TICKET} } }`, { s: id })).enterQueue;
        followQueue();
        renderQueue();
      }, (e) => notice(msg, explain(e), 'error'));
      fill(queueBox, title, h('p', {}, 'Take your place; the page follows it live and lets you pick seats when it is your turn.'), enter);
    } else if (t.state === 'EARLY') {
      fill(queueBox, title, h('p', { class: 'queue-state' }, 'You are in early. When sales open, everyone who came early is placed in random order.'),
        t.etaSeconds != null ? h('p', {}, `Opening in about ${countdown(t.etaSeconds)}.`) : null);
    } else if (t.state === 'WAITING') {
      fill(queueBox, title, h('p', { class: 'queue-state' }, h('strong', {}, `Position ${t.position}`), ` · ${t.ahead} ahead`),
        t.etaSeconds != null ? h('p', {}, `About ${countdown(t.etaSeconds)} to wait. Keep this page open to keep your place.`) : null);
    } else if (t.state === 'ADMITTED') {
      const left = h('strong');
      const tick = () => {
        const s = (new Date(t.admissionExpiresAt) - Date.now()) / 1000;
        fill(left, countdown(s));
        if (s <= 0) { clearInterval(admissionTimer); page.ticket = null; renderQueue(); renderPick(); }
      };
      fill(queueBox, title, h('p', { class: 'queue-state ok' }, 'It is your turn! Pick your seats and hold them within ', left, '.'));
      tick();
      admissionTimer = setInterval(tick, 1000);
    }
    renderPick();
  };
  const followQueue = () => {
    if (queueStop || !schedule.queueEnabled) return;
    queueStop = subscribe(`subscription($s: ID!) { queueStatus(scheduleId: $s) { ${TICKET} } }`, { s: id }, {
      next: (d) => { page.ticket = d.queueStatus; renderQueue(); },
      error: (e) => notice(msg, explain({ code: e.extensions?.code, message: e.message }), 'error'),
    });
    stops.push(() => queueStop?.());
  };
  const loadQueue = async () => {
    if (!schedule.queueEnabled || !auth.signedIn()) { renderQueue(); return; }
    try {
      page.ticket = (await gql(`query($s: ID!) { queueStatus(scheduleId: $s) { ${TICKET} } }`, { s: id })).queueStatus;
      if (page.ticket.state !== 'NOT_IN_QUEUE') followQueue();
    } catch (e) { notice(msg, explain(e), 'error'); }
    renderQueue();
  };

  function mineIndexes() {
    const m = page.model;
    return m ? page.mine.map((sid) => m.index.get(sid)).filter((i) => i !== undefined) : [];
  }

  // --- picking and holding --------------------------------------------------------------
  // On sale by the clock, not only as read at load: a page opened early turns on at opening.
  function onSale() {
    const now = Date.now();
    return schedule.status !== 'CANCELLED' && now >= new Date(schedule.salesOpenAt).getTime() && now < new Date(schedule.salesCloseAt).getTime();
  }
  const opens = new Date(schedule.salesOpenAt).getTime() - Date.now();
  if (opens > 0 && opens < 2 ** 31) {
    const t = setTimeout(() => renderPick(), opens + 50);
    stops.push(() => clearTimeout(t));
  }
  function admitted() {
    return !schedule.queueEnabled || (page.ticket?.state === 'ADMITTED' && new Date(page.ticket.admissionExpiresAt) > new Date());
  }
  function renderPick() {
    const closed = schedule.status !== 'CANCELLED' && !onSale();
    saleNote.hidden = !closed;
    if (closed) fill(saleNote, new Date(schedule.salesOpenAt) > new Date() ? `Sales open ${when(schedule.salesOpenAt)}.` : 'Sales are closed.');
    const m = page.model;
    if (!m) return;
    const chosen = [...page.selection];
    const total = chosen.reduce((n, i) => n + describe(m, i).price, 0);
    const holdBtn = h('button', { type: 'button', class: 'primary', id: 'hold', disabled: chosen.length === 0 },
      chosen.length ? `Hold ${chosen.length} seat${chosen.length > 1 ? 's' : ''} · ${points(total)}` : 'Hold seats');
    holdBtn.onclick = () => hold(holdBtn);
    const why = !onSale() ? 'Sales are not open.' : !admitted() ? 'Wait for your turn in the queue first.' : null;
    if (why) holdBtn.disabled = true;
    refill(pickBox, h('h2', { id: 'pick-title' }, 'Your pick'),
      chosen.length === 0 ? h('p', { class: 'muted' }, 'Pick seats on the map.') : h('ul', { class: 'picked-list' }, chosen.map((i) => {
        const d = describe(m, i);
        const rm = h('button', { type: 'button', class: 'link', 'aria-label': `Remove ${seatName(m, i)}` }, 'remove');
        rm.onclick = () => pick(i);
        return h('li', {}, `${seatName(m, i)} · ${d.grade} · ${points(d.price)} `, rm);
      })),
      why && chosen.length ? h('p', { class: 'muted' }, why) : null, holdBtn, orderStatus);
    if (page.bestReady) renderBest();
  }

  async function hold(button) {
    if (!auth.signedIn() && !(await accountDialog())) return;
    const m = page.model;
    const input = { scheduleId: id, seatIds: [...page.selection].map((i) => String(m.ids[i])), idempotencyKey: key('hold') };
    // While the order is decided its seats are ours-in-waiting: the live event that shows
    // them held is not "someone else was faster".
    const seatIds = input.seatIds.map(Number);
    page.holding = new Set(page.selection);
    page.selection.clear();
    const failed = () => {
      const mm = page.model;
      page.selection = new Set(seatIds.map((sid) => mm.index.get(sid)).filter((i) => i !== undefined && mm.status[i] === AVAILABLE));
      page.holding.clear();
      renderPick();
      view.invalidate();
      // The button that was pressed was re-drawn: keep the keyboard where it was.
      if (document.activeElement === document.body) focusOn(document.getElementById('hold'));
    };
    await busy(button, async () => {
      let ticket;
      try {
        ticket = (await gql('mutation($i: ReserveSeatsInput!) { placeOrder(input: $i) { jobId } }', { i: input })).placeOrder;
      } catch (e) {
        if (e.code !== 'UNAVAILABLE') throw e;
        // No order stream (a server without Redis): hold synchronously instead.
        fill(orderStatus, 'Holding…');
        const r = (await gql(`mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { ${RESERVATION} } }`, { i: input })).reserveSeats;
        held(r);
        return;
      }
      fill(orderStatus, 'Order accepted: waiting for its turn…');
      await followOrder(ticket.jobId, failed);
    }, (e) => { fill(orderStatus); failed(); notice(msg, explain(e), 'error'); });
  }

  function followOrder(jobId, failed) {
    return new Promise((resolve) => {
      let done = false;
      const finish = (r) => {
        if (done) return;
        done = true;
        stop();
        clearTimeout(poll);
        if (r.status === 'DONE') held(r.reservation);
        else { fill(orderStatus); failed(); notice(msg, explain({ code: r.errorCode, message: r.errorMessage }), 'error'); }
        resolve();
      };
      const stop = subscribe(`subscription($j: String!) { orderResult(jobId: $j) { jobId status errorCode errorMessage reservation { ${RESERVATION} } } }`, { j: jobId }, {
        next: (d) => {
          const r = d.orderResult;
          if (r.status === 'QUEUED') fill(orderStatus, 'Order queued…');
          else if (r.status === 'PROCESSING') fill(orderStatus, 'Order being processed…');
          else finish(r);
        },
        error: () => { /* the poll below answers */ },
      });
      stops.push(stop);
      // If the socket is down, ask once more after a while.
      const poll = setTimeout(async () => {
        try {
          const r = (await gql(`query($j: String!) { order(jobId: $j) { jobId status errorCode errorMessage reservation { ${RESERVATION} } } }`, { j: jobId })).order;
          if (r.status === 'DONE' || r.status === 'FAILED') finish(r);
        } catch { /* keep waiting for the subscription */ }
      }, 10_000);
    });
  }

  function held(r) {
    fill(orderStatus);
    page.holding.clear();
    notice(msg, '');
    if (view.cursor >= 0) showCursor(view.cursor);
    renderPick();
    view.invalidate();
    toast(`Held ${r.seatCount} seat${r.seatCount > 1 ? 's' : ''}: pay before the countdown ends.`, 'ok');
    // The fan asked for this hold: take the keyboard to it (its heading, then Pay).
    showHold(r).then(() => focusOn(document.getElementById('hold-title')));
    loadMine();
  }

  // --- best available and the waiting list ---------------------------------------------
  const bestCount = h('select', { id: 'best-count', 'aria-label': 'Number of seats' });
  const bestGrade = h('select', { id: 'best-grade', 'aria-label': 'Grade' });
  const bestBtn = h('button', { type: 'button', class: 'primary', id: 'best-hold' }, 'Hold the best seats');
  const bestMsg = h('div');
  for (let n = 1; n <= Math.min(10, schedule.perUserLimit); n += 1) bestCount.append(h('option', { value: String(n) }, String(n)));
  bestCount.onchange = () => renderWait();
  bestGrade.onchange = () => renderWait();
  const ask = () => ({ count: Number(bestCount.value), grade: bestGrade.value || null });
  bestBtn.onclick = () => busy(bestBtn, async () => {
    if (!auth.signedIn() && !(await accountDialog())) return;
    const a = ask();
    const input = { scheduleId: id, count: a.count, grade: a.grade, idempotencyKey: key('best') };
    const r = (await gql(`mutation($i: BestAvailableInput!) { reserveBestAvailable(input: $i) { together ${RESERVATION} } }`, { i: input })).reserveBestAvailable;
    notice(bestMsg, r.together ? '' : 'No seats side by side were left: these are the closest.', 'info');
    held(r);
  }, (e) => { notice(bestMsg, explain(e), 'error'); renderWait(); });
  function renderBest() {
    if (bestGrade.options.length === 0 && page.avail) {
      bestGrade.append(h('option', { value: '' }, 'Any grade'), ...page.avail.map((g) => h('option', { value: g.grade }, `${g.grade} · ${points(g.price)}`)));
    }
    bestBtn.disabled = !onSale() || !admitted();
    refill(bestBox, h('h2', { id: 'best-title' }, 'Best available'),
      h('p', { class: 'muted small' }, 'Let us choose: seats side by side, the best there are.'),
      h('div', { class: 'row' }, bestCount, bestGrade, bestBtn), bestMsg, waitBox);
  }
  // Whether what the fan asks for is sold out (no grade has that many seats free).
  const soldOutFor = () => {
    if (!page.avail) return false;
    const a = ask();
    const free = page.avail.filter((g) => !a.grade || g.grade === a.grade).map((g) => g.available);
    return Math.max(0, ...free) < a.count;
  };
  async function loadWait() {
    if (!auth.signedIn()) { page.waiting = null; renderWait(); return; }
    try {
      const list = (await gql('{ myWaitlist { id status position count grade schedule { id } } }')).myWaitlist;
      page.waiting = list.find((w) => w.schedule.id === id && w.status === 'WAITING') || null;
    } catch { page.waiting = null; }
    renderWait();
  }
  function renderWait() {
    const w = page.waiting;
    if (w) {
      const leave = h('button', { type: 'button', id: 'leave-waitlist' }, 'Leave the waiting list');
      leave.onclick = () => busy(leave, async () => {
        await gql('mutation($s: ID!) { leaveWaitlist(scheduleId: $s) { id status } }', { s: id });
        toast('You left the waiting list.');
        loadWait();
      }, (e) => notice(waitBox, explain(e), 'error'));
      fill(waitBox, h('p', { class: 'queue-state', id: 'waitlist-place' }, `On the waiting list: number ${w.position} for ${w.count} seat${w.count > 1 ? 's' : ''}${w.grade ? ` of ${w.grade}` : ''}. Keep this page open or check My reservations: a hold is made for you when seats come back.`), leave);
    } else if (soldOutFor() && onSale() && schedule.status !== 'CANCELLED') {
      const join = h('button', { type: 'button', id: 'join-waitlist' }, 'Join the waiting list');
      join.onclick = () => busy(join, async () => {
        if (!auth.signedIn() && !(await accountDialog())) return;
        const a = ask();
        await gql('mutation($s: ID!, $n: Int!, $g: String) { joinWaitlist(scheduleId: $s, count: $n, grade: $g) { id } }', { s: id, n: a.count, g: a.grade });
        toast('You are on the waiting list.', 'ok');
        loadWait();
      }, (e) => notice(waitBox, explain(e), 'error'));
      fill(waitBox, h('p', { class: 'muted' }, 'Sold out for this choice.'), join);
    } else {
      fill(waitBox);
    }
  }
  page.bestReady = true;
  let offerStop = null;
  const followOffers = () => {
    if (offerStop || !auth.signedIn()) return;
    offerStop = subscribe(`subscription { waitlistOffers { scheduleId reservation { ${RESERVATION} } } }`, {}, {
      next: (d) => {
        const o = d.waitlistOffers;
        if (o.scheduleId !== id) return;
        toast('Seats came back for you: they are held, pay before the countdown ends.', 'ok');
        page.waiting = null;
        renderWait();
        showHold(o.reservation);
        loadMine();
      },
      error: () => { /* myWaitlist and myReservations still show the offer */ },
    });
    stops.push(() => offerStop?.());
  };

  // --- the hold: countdown, pay, cancel ---------------------------------------------------
  let holdTimer = null;
  // A hold that ran out stays on screen, saying so, until the fan dismisses it or holds
  // again: the box vanishing with its message left them wondering what happened.
  function showExpired(r) {
    page.hold = null;
    clearInterval(holdTimer);
    const dismiss = h('button', { type: 'button', id: 'dismiss-expired' }, 'Dismiss');
    dismiss.onclick = () => { holdBox.hidden = true; holdBox.classList.remove('hold-expired'); focusOn(document.getElementById('pick-title')); };
    holdBox.hidden = false;
    holdBox.classList.add('hold-expired');
    refill(holdBox, h('h2', { id: 'hold-title' }, 'Your hold expired'),
      h('p', { class: 'msg error', role: 'alert' }, explain({ code: 'HOLD_EXPIRED' })),
      h('ul', {}, r.seats.map((x) => h('li', {}, `${x.section}, row ${x.row}, seat ${x.number} · ${x.grade}`))),
      dismiss);
  }
  async function showHold(r) {
    page.hold = r;
    holdBox.classList.remove('hold-expired');
    clearInterval(holdTimer);
    holdBox.hidden = !r;
    if (!r) return;
    const payKey = (r.payKey ||= key(`pay-${r.id}`));
    const user = await auth.reloadUser().catch(() => auth.currentUser());
    const balance = user?.points ?? 0;
    const short = Math.max(0, r.totalPrice - balance);
    const left = h('strong', { class: 'countdown' });
    const hmsg = h('div');
    const seats = h('ul', {}, r.seats.map((s) => h('li', {}, `${s.section}, row ${s.row}, seat ${s.number} · ${s.grade} · ${points(s.price)}`)));
    if (r.status !== 'HELD') {
      refill(holdBox, h('h2', { id: 'hold-title' }, r.status === 'CONFIRMED' ? 'Paid — enjoy the show!' : `Reservation ${r.status.toLowerCase()}`),
        seats, h('p', {}, `Total ${points(r.totalPrice)}`));
      return;
    }
    const pay = h('button', { type: 'button', class: 'primary', id: 'pay' }, short > 0 ? `Top up ${points(short)} and pay` : `Pay ${points(r.totalPrice)}`);
    const cancel = h('button', { type: 'button', id: 'release' }, 'Release the seats');
    pay.onclick = () => busy(pay, async () => {
      if (short > 0) {
        // A top-up through the payment provider: the sandbox confirms at once; a real
        // provider's window takes the fan away and the wallet brings them back here.
        const { topUp } = await import('./wallet.js');
        if (!(await topUp(short, { back: location.pathname, idempotencyKey: (r.chargeKey ||= key('topup')) }))) return;
      }
      const paid = (await gql(`mutation($r: ID!, $k: String!) { payReservation(reservationId: $r, idempotencyKey: $k) { ${RESERVATION} } }`, { r: r.id, k: payKey })).payReservation;
      toast('Paid. The seats are yours.', 'ok');
      await showHold(paid);
      loadMine();
    }, (e) => { notice(hmsg, explain(e), 'error'); if (e.code === 'HOLD_EXPIRED') { showExpired(r); loadMine(); } });
    cancel.onclick = () => busy(cancel, async () => {
      await gql(`mutation($r: ID!) { cancelReservation(reservationId: $r) { ${RESERVATION} } }`, { r: r.id });
      toast('Seats released.');
      showHold(null);
      loadMine();
    }, (e) => notice(hmsg, explain(e), 'error'));
    refill(holdBox, h('h2', { id: 'hold-title' }, 'Your hold'), seats,
      h('p', {}, 'Pay within ', left, ` · total ${points(r.totalPrice)} · your balance ${points(balance)}`),
      short > 0 ? h('p', { class: 'muted' }, `You are ${points(short)} short: paying tops your wallet up first (through the payment provider).`) : null,
      hmsg, h('div', { class: 'row' }, pay, cancel));
    const tick = () => {
      const s = (new Date(r.expiresAt) - Date.now()) / 1000;
      fill(left, countdown(s));
      if (s <= 0) {
        showExpired(r);
        setTimeout(loadMine, 2000);
      }
    };
    tick();
    holdTimer = setInterval(tick, 1000);
  }

  // --- my reservations --------------------------------------------------------------------
  async function loadMine() {
    const title = h('h2', { id: 'mine-title' }, 'My reservations here');
    if (!auth.signedIn()) {
      page.mine = [];
      view?.invalidate();
      fill(mineBox, title, h('p', { class: 'muted' }, 'Log in to see your reservations.'));
      return;
    }
    let list;
    try {
      list = (await gql(`{ myReservations(first: 50) { nodes { ${RESERVATION} } } }`)).myReservations.nodes.filter((r) => r.schedule.id === id);
    } catch (e) {
      fill(mineBox, title, h('p', { class: 'msg error' }, explain(e)));
      return;
    }
    page.mine = list.filter((r) => r.status === 'HELD' || r.status === 'CONFIRMED').flatMap((r) => r.seats.map((x) => Number(x.id)));
    view?.invalidate();
    const mmsg = h('div');
    fill(mineBox, title, mmsg, list.length === 0 ? h('p', { class: 'muted' }, 'None yet.') : h('ul', { class: 'reservations' }, list.map((r) => {
      const live = r.status === 'HELD' || r.status === 'CONFIRMED';
      const cancel = h('button', { type: 'button', class: 'link', 'aria-label': `Cancel reservation ${r.id}` }, r.status === 'HELD' ? 'release' : 'cancel and refund');
      cancel.onclick = () => busy(cancel, async () => {
        await gql(`mutation($r: ID!) { cancelReservation(reservationId: $r) { ${RESERVATION} } }`, { r: r.id });
        toast(r.status === 'HELD' ? 'Seats released.' : 'Cancelled and refunded.');
        if (page.hold?.id === r.id) showHold(null);
        loadMine();
        auth.reloadUser().catch(() => {});
      }, (e) => notice(mmsg, explain(e), 'error'));
      const resume = h('button', { type: 'button', class: 'link' }, 'pay');
      resume.onclick = () => showHold(r);
      return h('li', { dataset: { status: r.status } },
        h('span', { class: `badge ${r.status.toLowerCase()}` }, r.status), ` ${r.seats.map((s) => `${s.section} ${s.row}-${s.number}`).join(', ')} · ${points(r.totalPrice)} `,
        r.status === 'HELD' && page.hold?.id !== r.id ? resume : null, live ? cancel : null);
    })));
    // A hold past its time may not be swept yet: it is not one to pay.
    const current = list.find((r) => r.status === 'HELD' && new Date(r.expiresAt) > new Date());
    if (current && !page.hold) showHold(current);
    if (page.hold && !list.some((r) => r.id === page.hold.id && r.status === page.hold.status)) {
      const now = list.find((r) => r.id === page.hold.id);
      if (now?.status === 'EXPIRED') showExpired(now);
      else showHold(now && now.status !== 'CANCELLED' ? now : null);
    }
  }

  const sessionChanged = () => { loadMine(); loadQueue(); renderPick(); renderBest(); loadWait(); followOffers(); };
  stops.push(auth.onChange(sessionChanged));
  renderPick();
  renderBest();
  loadMine();
  loadQueue();
  loadWait();
  followOffers();

  return () => {
    for (const s of stops) s();
    clearInterval(holdTimer);
    clearInterval(admissionTimer);
    view?.destroy();
  };
}

function swatch(color) {
  const s = h('span', { class: 'swatch', 'aria-hidden': 'true' });
  s.style.background = color;
  return s;
}

function seatName(m, i) {
  const d = describe(m, i);
  return `${d.section} ${d.row}-${d.number}`;
}
