// `/host/concerts/{id}`: a concert's sales and orders for its host (or an admin).
// The chart covers the sale from its first payment (salesTimeline), one line per
// performance labelled with its start, and per grade beside it; the orders of a chosen
// performance can be searched, refunded (with a reason) and exported as CSV through a
// signed link that the browser downloads from this server. At the door: live check-ins
// per performance and its scanners (`sales-door.js`).
import { h, fill, field, notice, toast, points, when, busy, crispCanvas } from '../ui.js';
import { gql } from '../api.js';
import { explain } from '../errors.js';
import * as auth from '../auth.js';
import { accountDialog } from '../app.js';
import { doorPanel } from './sales-door.js';

const CONCERT = `query($c: ID!) { concert(id: $c) { id title venue status schedules { id startsAt status capacity } } }`;
const TIMELINE = `query($c: ID!) { salesTimeline(concertId: $c) { from bucketSeconds
  schedules { scheduleId startsAt grades { grade points { at seats revenue totalSeats totalRevenue } } } } }`;
const ORDERS = `query($s: ID!, $after: String, $f: ScheduleOrderFilter) {
  scheduleOrders(scheduleId: $s, first: 25, after: $after, filter: $f) {
    nodes { id status seatCount totalPrice refunded createdAt paidAt cancelledAt
      buyer { id displayName email } reservation { seats { section row number grade } } }
    pageInfo { hasNextPage endCursor } } }`;
const REFUND = 'mutation($id: ID!, $r: String!) { refundReservation(id: $id, reason: $r) { id status } }';
const EXPORT = 'mutation($s: ID!, $k: ExportKind!) { exportSchedule(scheduleId: $s, kind: $k) { url expiresAt } }';
const COLORS = ['#1f4fd1', '#c0392b', '#1e7b3a', '#8e44ad', '#d35400', '#16a085', '#7f8c8d', '#b8860b'];

export function render(main, [concertId]) {
  let stopped = false;
  const show = () => {
    if (!auth.hasRole('HOST')) {
      const login = h('button', { type: 'button', class: 'primary' }, 'Log in');
      login.onclick = () => accountDialog();
      fill(main, h('h1', {}, 'Sales'), h('p', {}, auth.signedIn() ? 'This page is for the concert\'s host.' : 'Log in with a host account.'), auth.signedIn() ? null : login);
      return;
    }
    page(main, concertId, () => stopped);
  };
  const stop = auth.onAccountChange(show);
  show();
  return () => { stopped = true; stop(); };
}

async function page(main, concertId, gone) {
  const msg = h('div', { class: 'page-msg' });
  fill(main, h('p', {}, h('a', { href: '/host', 'data-nav': true }, '← Host')), h('h1', {}, 'Sales'), msg);
  const fail = (e) => notice(msg, explain(e), 'error');
  let concert;
  try {
    concert = (await gql(CONCERT, { c: concertId })).concert;
  } catch (e) { fail(e); return; }
  if (gone()) return;
  fill(main.querySelector('h1'), `Sales · ${concert.title}`);
  const chartPanel = h('section', { class: 'panel', 'aria-labelledby': 'timeline-title' }, h('h2', { id: 'timeline-title' }, 'Sold over time'));
  const ordersPanel = h('section', { class: 'panel', 'aria-labelledby': 'orders-title' }, h('h2', { id: 'orders-title' }, 'Orders'));
  const doorsPanel = h('section', { class: 'panel doors', 'aria-labelledby': 'doors-title' }, h('h2', { id: 'doors-title' }, 'At the door'));
  main.append(chartPanel, ordersPanel, doorsPanel);
  timeline(chartPanel, concert, fail);
  orders(ordersPanel, concert, fail);
  doorPanel(doorsPanel, concert);
}

/** Label of a performance: what tells one line of the chart from another. */
const perf = (concert, id) => {
  const s = concert.schedules.find((x) => x.id === id);
  return s ? when(s.startsAt) : `#${id}`;
};

async function timeline(panel, concert, fail) {
  const info = h('p', { class: 'muted', 'aria-live': 'polite' });
  const canvas = h('canvas', { class: 'chart', role: 'img', 'aria-label': 'Seats sold over time, one line per performance' });
  const legend = h('ul', { class: 'legend' });
  const grades = h('div', { class: 'scroll' });
  panel.append(info, h('div', { class: 'chart-box' }, canvas), legend, h('h3', {}, 'By grade'), grades);
  let t;
  try {
    t = (await gql(TIMELINE, { c: concert.id })).salesTimeline;
  } catch (e) { fail(e); return; }
  if (!t.from) { fill(info, 'Nothing sold yet.'); return; }
  const bucket = t.bucketSeconds >= 86400 ? `${t.bucketSeconds / 86400} day` : t.bucketSeconds >= 3600 ? `${t.bucketSeconds / 3600} h` : `${t.bucketSeconds / 60} min`;
  fill(info, `Since the first sale, ${when(t.from)} (steps of ${bucket}).`);
  // One cumulative line per performance: the sum of its grades' totals at each step.
  const series = t.schedules.map((s, k) => {
    const steps = new Map();
    for (const g of s.grades) for (const p of g.points) steps.set(p.at, (steps.get(p.at) || 0) + p.seats);
    let total = 0;
    const pts = [...steps.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([at, n]) => { total += n; return { t: Date.parse(at), v: total }; });
    return { id: s.scheduleId, name: perf(concert, s.scheduleId), color: COLORS[k % COLORS.length], pts };
  });
  drawLines(canvas, series, Date.parse(t.from), Date.now());
  fill(legend, series.map((s) => {
    // Coloured through the CSSOM: the page's CSP refuses style attributes.
    const swatch = h('span', { class: 'swatch', 'aria-hidden': 'true' });
    swatch.style.backgroundColor = s.color;
    return h('li', { dataset: { schedule: s.id } }, swatch, ` ${s.name}: ${s.pts.at(-1)?.v ?? 0} seats`);
  }));
  fill(grades, h('table', { class: 'grade-sales' },
    h('thead', {}, h('tr', {}, ['Performance', 'Grade', 'Seats sold', 'Revenue'].map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, t.schedules.flatMap((s) => s.grades.map((g) => {
      const last = g.points.at(-1);
      return h('tr', { dataset: { schedule: s.scheduleId, grade: g.grade } }, h('th', { scope: 'row' }, perf(concert, s.scheduleId)),
        h('td', {}, g.grade), h('td', {}, String(last.totalSeats)), h('td', {}, points(last.totalRevenue)));
    })))));
}

/** Step lines of cumulative seats sold, from `t0` to `t1`. */
function drawLines(canvas, series, t0, t1) {
  const height = 180;
  const { ctx, width } = crispCanvas(canvas, height);
  ctx.font = '11px system-ui, sans-serif';
  const left = 40;
  const bottom = height - 18;
  const end = Math.max(t0 + 60_000, t1);
  const top = Math.max(4, ...series.map((s) => s.pts.at(-1)?.v ?? 0));
  const x = (t) => left + ((t - t0) / (end - t0)) * (width - left - 8);
  const y = (v) => bottom - (v / top) * (bottom - 8);
  ctx.strokeStyle = '#d9dee5';
  ctx.fillStyle = '#5f6b7a';
  for (const v of [0, Math.round(top / 2), top]) {
    ctx.beginPath(); ctx.moveTo(left, y(v)); ctx.lineTo(width - 8, y(v)); ctx.stroke();
    ctx.fillText(String(v), 4, y(v) + 4);
  }
  ctx.fillText(new Date(t0).toLocaleDateString(), left, height - 4);
  ctx.fillText('now', width - 30, height - 4);
  for (const s of series) {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(x(t0), y(0));
    let v = 0;
    for (const p of s.pts) { ctx.lineTo(x(p.t), y(v)); v = p.v; ctx.lineTo(x(p.t), y(v)); }
    ctx.lineTo(x(end), y(v));
    ctx.stroke();
  }
}

function orders(panel, concert, fail) {
  const pick = field('Performance', { name: 'schedule' }, 'select');
  for (const s of concert.schedules) pick.input.append(h('option', { value: s.id }, when(s.startsAt)));
  const text = field('Search orders', { type: 'search', name: 'text', placeholder: 'buyer email, name or #id' });
  const status = field('Status', { name: 'status' }, 'select');
  for (const [v, t] of [['', 'any'], ['CONFIRMED', 'paid'], ['HELD', 'held'], ['CANCELLED', 'cancelled'], ['EXPIRED', 'expired']]) status.input.append(h('option', { value: v }, t));
  const go = h('button', { type: 'submit', class: 'primary' }, 'Show orders');
  const form = h('form', { class: 'inline orders-filter', role: 'search', 'aria-label': 'Find orders' }, pick.wrap, text.wrap, status.wrap, go);
  const exportSales = h('button', { type: 'button' }, 'Export sales (CSV)');
  const exportAttendees = h('button', { type: 'button' }, 'Export attendees (CSV)');
  const body = h('tbody');
  const more = h('button', { type: 'button', hidden: true }, 'More orders');
  panel.append(form, h('div', { class: 'row' }, exportSales, exportAttendees),
    h('div', { class: 'scroll' }, h('table', { class: 'orders' },
      h('thead', {}, h('tr', {}, ['Order', 'Buyer', 'Seats', 'Amount', 'Status', '', ''].map((x) => h('th', { scope: 'col' }, x)))), body)), more);
  if (!concert.schedules.length) { fill(body, h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'No performances yet.'))); return; }

  let after = null;
  let request = 0;
  const load = async (append) => {
    const mine = ++request;
    const f = { text: text.input.value.trim() || null, status: status.input.value ? [status.input.value] : null };
    const d = (await gql(ORDERS, { s: pick.input.value, after: append ? after : null, f })).scheduleOrders;
    if (mine !== request) return;
    if (!append) fill(body);
    for (const o of d.nodes) body.append(row(o));
    if (!append && !d.nodes.length) body.append(h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'No orders match.')));
    after = d.pageInfo.endCursor;
    more.hidden = !d.pageInfo.hasNextPage;
  };
  function row(o) {
    const seats = o.reservation.seats.map((s) => `${s.section} ${s.row}-${s.number} (${s.grade})`).join(', ');
    const state = o.refunded > 0 ? `REFUNDED ${points(o.refunded)}` : o.status;
    let action = null;
    if (o.status === 'CONFIRMED') {
      const reason = field(`Reason for refunding order ${o.id}`, { name: 'reason', required: true, placeholder: 'why' });
      reason.wrap.classList.add('compact');
      const refund = h('button', { type: 'submit' }, 'Refund');
      action = h('form', { class: 'inline refund' }, reason.wrap, refund);
      action.onsubmit = (ev) => {
        ev.preventDefault();
        busy(refund, async () => {
          await gql(REFUND, { id: o.id, r: reason.input.value.trim() });
          toast(`Order #${o.id} refunded: ${points(o.totalPrice)} back to ${o.buyer.email}.`, 'ok');
          await load(false);
        }, fail);
      };
    }
    return h('tr', { dataset: { order: o.id } },
      h('td', {}, `#${o.id}`, h('br'), h('span', { class: 'muted small' }, when(o.createdAt))),
      h('td', {}, h('strong', {}, o.buyer.displayName), h('br'), h('span', { class: 'small' }, o.buyer.email)),
      h('td', { class: 'small' }, seats), h('td', {}, points(o.totalPrice)),
      h('td', { class: 'status' }, h('span', { class: `badge ${o.status.toLowerCase()}` }, state)),
      h('td', { class: 'muted small' }, o.paidAt ? `paid ${when(o.paidAt)}` : ''),
      h('td', {}, action));
  }
  // The link is signed and short-lived: ask for it on the click, then let the browser
  // download it (a plain navigation: the file comes as an attachment).
  const download = (button, kind) => busy(button, async () => {
    const d = (await gql(EXPORT, { s: pick.input.value, k: kind })).exportSchedule;
    const a = h('a', { href: d.url, download: '', hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
  }, fail);
  exportSales.onclick = () => download(exportSales, 'SALES');
  exportAttendees.onclick = () => download(exportAttendees, 'ATTENDEES');
  form.onsubmit = (ev) => { ev.preventDefault(); busy(go, () => load(false), fail); };
  pick.input.onchange = () => busy(go, () => load(false), fail);
  more.onclick = () => busy(more, () => load(true), fail);
  load(false).catch(fail);
}
