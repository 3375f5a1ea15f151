// `/tickets`: "My tickets", everything the fan booked across all performances:
// - holds waiting for payment, each with its countdown, Pay and Release; when a hold runs
//   out the page says so where it was (the seats went back on sale), not silently;
// - every ticket of the paid reservations as its QR code (an inline SVG from the server, so
//   nothing more is fetched to show it), its seat and its code in text for a door that has
//   to type it;
// - cancelled, refunded and expired reservations.
// Once loaded the tickets need no network; the last copy is kept in this tab's
// sessionStorage, so a page opened again without a network still shows them
// (sessionStorage: the codes admit their holder, and must not outlive the tab on a shared
// computer).
import { h, fill, notice, when, points, countdown, key, busy, toast } from '../ui.js';
import { gql } from '../api.js';
import { explain } from '../errors.js';
import * as auth from '../auth.js';

const QUERY = `query($after: String) { myReservations(first: 50, after: $after) {
  pageInfo { hasNextPage endCursor }
  nodes { id status totalPrice expiresAt paidAt cancelledAt
    seats { section row number grade }
    schedule { id startsAt concert { title venue } }
    tickets { id holderName status code qrSvg checkedInAt gate seat { section row number grade } } } } }`;
const PAY = 'mutation($r: ID!, $k: String!) { payReservation(reservationId: $r, idempotencyKey: $k) { id status } }';
const RELEASE = 'mutation($r: ID!) { cancelReservation(reservationId: $r) { id status } }';
const COPY = 'boxoffice.myTickets';

function addStyles() {
  if (document.getElementById('door-css')) return;
  document.head.append(h('link', { id: 'door-css', rel: 'stylesheet', href: new URL('../../css/door.css', import.meta.url).href }));
}

async function loadAll() {
  const reservations = [];
  let after = null;
  // A fan has a few pages at most; the bound keeps a broken cursor from looping.
  for (let page = 0; page < 20; page++) {
    const { myReservations: r } = await gql(QUERY, { after });
    reservations.push(...r.nodes);
    if (!r.pageInfo.hasNextPage) break;
    after = r.pageInfo.endCursor;
  }
  return reservations;
}

const showName = (r) => `${r.schedule.concert.title}, ${when(r.schedule.startsAt)}`;
const seatList = (r) => r.seats.map((s) => `${s.section} ${s.row}-${s.number} (${s.grade})`).join(', ');

function ticketCard(reservation, t) {
  const status = t.status.toLowerCase();
  const img = h('img', { src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(t.qrSvg)}`, alt: `QR code of ticket ${t.id}`, width: 240, height: 240 });
  return h('li', { class: `ticket ${status}`, dataset: { ticket: t.id } },
    h('p', {}, h('strong', {}, reservation.schedule.concert.title)),
    h('p', { class: 'muted small' }, `${when(reservation.schedule.startsAt)} · ${reservation.schedule.concert.venue}`),
    img,
    h('p', {}, `${t.seat.section} · row ${t.seat.row} · seat ${t.seat.number} `, h('span', { class: 'badge' }, t.seat.grade)),
    h('p', {}, h('span', { class: `badge ${status}` }, t.status),
      t.status === 'USED' && t.checkedInAt ? ` at ${t.gate} · ${when(t.checkedInAt)}` : '',
      t.holderName ? ` · ${t.holderName}` : ''),
    h('p', { class: 'code' }, t.code));
}

function drawTickets(list, reservations) {
  const paid = reservations.filter((r) => r.status === 'CONFIRMED' && r.tickets.length > 0)
    .sort((a, b) => a.schedule.startsAt.localeCompare(b.schedule.startsAt));
  fill(list, paid.length
    ? paid.flatMap((r) => r.tickets.map((t) => ticketCard(r, t)))
    : h('li', { class: 'muted' }, 'No tickets yet: a paid reservation gives one ticket per seat.'));
}

function drawPast(box, reservations) {
  const past = reservations.filter((r) => r.status === 'CANCELLED' || r.status === 'EXPIRED');
  fill(box, past.length
    ? past.map((r) => h('li', { dataset: { reservation: r.id } },
      h('strong', {}, showName(r)), ' · ', seatList(r), ' ',
      h('span', { class: `badge ${r.status.toLowerCase()}` },
        r.status === 'EXPIRED' ? 'EXPIRED' : r.paidAt ? `REFUNDED ${points(r.totalPrice)}` : 'RELEASED'),
      h('span', { class: 'muted small' }, ` ${when(r.cancelledAt || r.expiresAt)}`)))
    : h('li', { class: 'muted' }, 'None.'));
}

export async function render(main) {
  addStyles();
  const msg = h('div', { id: 'tickets-msg' });
  const holds = h('ul', { class: 'holds', id: 'holds' });
  const list = h('ul', { class: 'tickets', id: 'tickets' });
  const past = h('ul', { class: 'past', id: 'past-reservations' });
  const holdsBox = h('section', { class: 'panel', 'aria-labelledby': 'holds-title', hidden: true },
    h('h2', { id: 'holds-title' }, 'Waiting for payment'), holds);
  fill(main, h('h1', {}, 'My tickets'), msg, holdsBox,
    h('section', { 'aria-labelledby': 'tickets-title' }, h('h2', { id: 'tickets-title' }, 'Tickets'), list),
    h('section', { class: 'panel', 'aria-labelledby': 'past-title' }, h('h2', { id: 'past-title' }, 'Cancelled and expired'), past));
  const timers = [];
  const stop = () => { for (const t of timers.splice(0)) clearInterval(t); };
  const offlineCopy = () => {
    let copy = null;
    try { copy = JSON.parse(sessionStorage.getItem(COPY) || 'null'); } catch { /* none */ }
    return copy;
  };
  if (!auth.signedIn()) {
    const copy = offlineCopy();
    if (copy && !navigator.onLine) {
      notice(msg, 'Offline: these are your tickets as last loaded in this tab.', 'info');
      drawTickets(list, copy);
    } else {
      notice(msg, 'Log in to see your tickets.');
    }
    return stop;
  }

  const reload = async () => {
    stop();
    const reservations = await loadAll();
    try { sessionStorage.setItem(COPY, JSON.stringify(reservations.filter((r) => r.status === 'CONFIRMED'))); } catch { /* storage off */ }
    drawHolds(reservations);
    drawTickets(list, reservations);
    drawPast(past, reservations);
    return reservations;
  };

  // Each hold counts down on the database's expiry; at zero it says what happened.
  function drawHolds(reservations) {
    // A hold past its time that the server has not yet released shows as expired at once.
    const live = reservations.filter((r) => r.status === 'HELD');
    holdsBox.hidden = live.length === 0 && !holds.querySelector('.hold-expired');
    fill(holds, live.map((r) => {
      const left = h('strong', { class: 'countdown', 'aria-live': 'off' });
      const pay = h('button', { type: 'button', class: 'primary' }, `Pay ${points(r.totalPrice)}`);
      const release = h('button', { type: 'button' }, 'Release');
      const item = h('li', { class: 'hold', dataset: { reservation: r.id } },
        h('p', {}, h('strong', {}, showName(r))), h('p', { class: 'small' }, seatList(r)),
        h('p', {}, 'Pay within ', left, ' or the seats go back on sale. ',
          h('a', { href: `/schedules/${r.schedule.id}`, 'data-nav': true }, 'See the seats')),
        h('div', { class: 'row' }, pay, release));
      const tick = () => {
        const s = (Date.parse(r.expiresAt) - Date.now()) / 1000;
        if (s > 0) { fill(left, countdown(s)); return; }
        clearInterval(timer);
        expired(item, r);
      };
      const timer = setInterval(tick, 1000);
      timers.push(timer);
      tick();
      const fail = (e) => {
        if (e.code === 'HOLD_EXPIRED') { expired(item, r); return; }
        notice(msg, explain(e), 'error');
      };
      pay.onclick = () => busy(pay, async () => {
        await gql(PAY, { r: r.id, k: key('pay') });
        toast(`Paid: your tickets for ${r.schedule.concert.title} are below.`, 'ok');
        auth.reloadUser().catch(() => {});
        await reload();
      }, fail);
      release.onclick = () => busy(release, async () => {
        await gql(RELEASE, { r: r.id });
        toast('Released: the seats are back on sale.', 'ok');
        await reload();
      }, fail);
      return item;
    }));
  }

  function expired(item, r) {
    holdsBox.hidden = false;
    item.classList.add('hold-expired');
    fill(item, h('p', { class: 'msg error', role: 'alert' },
      `Your hold on ${showName(r)} expired at ${new Date(r.expiresAt).toLocaleTimeString()}: the seats went back on sale and nothing was charged. `,
      h('a', { href: `/schedules/${r.schedule.id}`, 'data-nav': true }, 'Pick seats again')));
    // The server releases it within a second or so; the list below shows it once it has.
    let tries = 0;
    const again = setInterval(async () => {
      tries += 1;
      try {
        const all = await loadAll();
        drawPast(past, all);
        if (all.some((x) => x.id === r.id && x.status !== 'HELD') || tries >= 5) clearInterval(again);
      } catch { if (tries >= 5) clearInterval(again); }
    }, 2000);
    timers.push(again);
  }

  try {
    const reservations = await reload();
    if (reservations.some((r) => r.status === 'CONFIRMED')) {
      notice(msg, 'Show the QR code at the door. This page keeps working without a network once loaded.', 'info');
    }
  } catch (e) {
    const copy = offlineCopy();
    if (copy && (e.code === 'NETWORK' || e.code === 'UNAVAILABLE')) {
      notice(msg, 'Offline: these are your tickets as last loaded in this tab.', 'info');
      drawTickets(list, copy);
    } else {
      notice(msg, explain(e), 'error');
    }
  }
  return stop;
}
