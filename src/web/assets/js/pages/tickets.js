// `/tickets`: "My tickets", every ticket of the fan's paid reservations, all performances,
// each as its QR code (an inline SVG from the server, so nothing more is fetched to show
// it), its seat and its code in text for a door that has to type it. Once loaded the page
// needs no network; the last copy is kept in this tab's sessionStorage, so a page opened
// again without a network still shows them (sessionStorage: the codes admit their
// holder, and must not outlive the tab on a shared computer).
import { h, fill, notice, when } from '../ui.js';
import { gql } from '../api.js';
import { explain } from '../errors.js';
import * as auth from '../auth.js';

const QUERY = `query($after: String) { myReservations(first: 50, after: $after) {
  pageInfo { hasNextPage endCursor }
  nodes { id status schedule { id startsAt concert { title venue } }
    tickets { id holderName status code qrSvg checkedInAt gate seat { section row number grade } } } } }`;
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
  return reservations.filter((r) => r.tickets.length > 0);
}

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

function draw(list, reservations) {
  const upcoming = [...reservations].sort((a, b) => a.schedule.startsAt.localeCompare(b.schedule.startsAt));
  fill(list, upcoming.flatMap((r) => r.tickets.map((t) => ticketCard(r, t))));
}

export async function render(main) {
  addStyles();
  const msg = h('div', { id: 'tickets-msg' });
  const list = h('ul', { class: 'tickets', id: 'tickets' });
  fill(main, h('h1', {}, 'My tickets'), msg, list);
  if (!auth.signedIn()) {
    let copy = null;
    try { copy = JSON.parse(sessionStorage.getItem(COPY) || 'null'); } catch { /* none */ }
    if (copy && !navigator.onLine) {
      notice(msg, 'Offline: these are your tickets as last loaded in this tab.', 'info');
      draw(list, copy);
    } else {
      notice(msg, 'Log in to see your tickets.');
    }
    return null;
  }
  try {
    const reservations = await loadAll();
    try { sessionStorage.setItem(COPY, JSON.stringify(reservations)); } catch { /* storage off */ }
    if (!reservations.length) {
      fill(list, h('li', { class: 'muted' }, 'No tickets yet: a paid reservation gives one ticket per seat.'));
      return null;
    }
    draw(list, reservations);
    notice(msg, 'Show the QR code at the door. This page keeps working without a network once loaded.', 'info');
  } catch (e) {
    let copy = null;
    try { copy = JSON.parse(sessionStorage.getItem(COPY) || 'null'); } catch { /* none */ }
    if (copy && (e.code === 'NETWORK' || e.code === 'UNAVAILABLE')) {
      notice(msg, 'Offline: these are your tickets as last loaded in this tab.', 'info');
      draw(list, copy);
    } else {
      notice(msg, explain(e), 'error');
    }
  }
  return null;
}
