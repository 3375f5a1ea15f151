// Running a show's orders in headless Chromium: the host finds an order, refunds it and
// downloads the sales CSV, and the sales chart names its performances; a fan's "My
// tickets" shows a hold counting down (and says when it expired), paid tickets and the
// refunded order; an admin locks an account, which is signed out at once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { startServer } from '../lib/server.mjs';
import { launch } from '../lib/browser.mjs';
import { ok, gql, admin, signUp, show as makeShow, PASSWORD } from '../lib/api.mjs';
import { openPage, shot } from './support.mjs';

let server;
let browser;
before(async () => { server = await startServer(); browser = await launch(); });
after(async () => { await browser?.close(); await server?.stop(); });

const RESERVE = 'mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id expiresAt } }';

async function paid(fan, s, seats, key) {
  await ok(server, 'mutation($k: String!) { chargePoints(amount: 1000, idempotencyKey: $k) { balanceAfter } }', { k: `c-${key}` }, fan.accessToken);
  const r = await ok(server, RESERVE, { i: { scheduleId: s.scheduleId, seatIds: seats } }, fan.accessToken);
  await ok(server, 'mutation($r: ID!, $k: String!) { payReservation(reservationId: $r, idempotencyKey: $k) { id } }', { r: r.reserveSeats.id, k: `p-${key}` }, fan.accessToken);
  return r.reserveSeats.id;
}

test('a host refunds an order and downloads the sales CSV', async () => {
  const s = await makeShow(server, { rows: 1, perRow: 8 });
  const ann = await signUp(server, 'ann');
  const bob = await signUp(server, 'bob');
  const annOrder = await paid(ann, s, s.seatIds.slice(0, 2), 'ann');
  const bobOrder = await paid(bob, s, s.seatIds.slice(2, 3), 'bob');
  const p = await openPage(browser, server, { session: s.host, acceptDownloads: true });
  const { page } = p;
  await page.goto(`${server.url}/host`);
  await page.getByRole('link', { name: /Sales over time, orders/ }).click();
  await page.waitForURL(new RegExp(`/host/concerts/${s.concertId}$`));
  // The chart names its performance and the grades sold.
  await page.locator('ul.legend li', { hasText: '3 seats' }).waitFor();
  await page.locator('table.grade-sales tr[data-grade="VIP"]').waitFor();

  await page.locator(`tr[data-order="${annOrder}"]`).waitFor();
  await page.locator(`tr[data-order="${bobOrder}"]`).waitFor();
  const filter = page.locator('form.orders-filter');
  await filter.getByLabel('Search orders').fill(ann.email);
  await filter.getByRole('button', { name: 'Show orders' }).click();
  await page.waitForFunction((id) => document.querySelectorAll('table.orders tbody tr').length === 1
    && document.querySelector(`tr[data-order="${id}"]`), annOrder);

  const row = page.locator(`tr[data-order="${annOrder}"]`);
  await row.getByLabel(`Reason for refunding order ${annOrder}`).fill('asked by phone');
  await row.getByRole('button', { name: 'Refund' }).click();
  await page.locator('.toast .msg', { hasText: `Order #${annOrder} refunded` }).waitFor();
  await row.locator('td.status', { hasText: 'REFUNDED 300 pts' }).waitFor();
  const me = await ok(server, '{ me { points } }', {}, ann.accessToken);
  assert.equal(me.me.points, 1000, 'the points are back in the wallet');
  await shot(page, 'host-orders');

  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Export sales (CSV)' }).click(),
  ]);
  assert.equal(download.suggestedFilename(), `schedule-${s.scheduleId}-sales.csv`);
  const csv = (await readFile(await download.path(), 'utf8')).replace(/^\uFEFF/, '');
  const lines = csv.trim().split('\r\n');
  assert.match(lines[0], /^reservation_id,status,buyer_name,buyer_email,/);
  assert.equal(lines.length, 3, csv);
  assert.ok(lines.some((l) => l.startsWith(`${annOrder},CANCELLED,ann,${ann.email},2,`) && l.includes(',300,300,')), csv);
  assert.ok(lines.some((l) => l.startsWith(`${bobOrder},CONFIRMED,bob,${bob.email},1,`)), csv);
  p.assertClean();
  await p.context.close();
});

test('a fan sees holds counting down, tickets and refunds on My tickets, and a hold that runs out', async () => {
  const s = await makeShow(server, { rows: 1, perRow: 8, schedule: { holdSeconds: 30 } });
  const fan = await signUp(server, 'mine');
  const paidOrder = await paid(fan, s, s.seatIds.slice(0, 1), 'mine1');
  const refunded = await paid(fan, s, s.seatIds.slice(1, 2), 'mine2');
  await ok(server, 'mutation($r: ID!) { refundReservation(id: $r, reason: "moved") { id } }', { r: refunded }, s.host.accessToken);
  const held = (await ok(server, RESERVE, { i: { scheduleId: s.scheduleId, seatIds: s.seatIds.slice(2, 4) } }, fan.accessToken)).reserveSeats;

  const p = await openPage(browser, server, { session: fan });
  const { page } = p;
  await page.goto(`${server.url}/tickets`);
  const hold = page.locator(`#holds li[data-reservation="${held.id}"]`);
  await hold.waitFor();
  assert.match(await hold.locator('.countdown').innerText(), /^0:[0-3]\d$/);
  await page.locator('#tickets li.ticket').first().waitFor();
  assert.equal(await page.locator('#tickets li.ticket').count(), 1);
  await page.locator(`#past-reservations li[data-reservation="${refunded}"]`, { hasText: 'REFUNDED 150 pts' }).waitFor();
  await shot(page, 'my-tickets');

  // The hold runs out (made to, in the database's own terms: its expiry moves to now).
  await gqlExpire(held.id);
  await page.reload();
  await page.locator(`#holds li[data-reservation="${held.id}"].hold-expired`, { hasText: 'expired' }).waitFor({ timeout: 15_000 });
  assert.match(await page.locator('#holds .hold-expired [role=alert]').innerText(), /went back on sale and nothing was charged/);
  await page.locator(`#past-reservations li[data-reservation="${held.id}"]`, { hasText: 'EXPIRED' }).waitFor({ timeout: 15_000 });
  assert.ok(paidOrder);
  p.assertClean();
  await p.context.close();
});

/**
 * Brings a hold's end to six seconds from now through the test server's database
 * (what waiting out a real hold time would do, faster).
 */
async function gqlExpire(reservationId) {
  const { execFileSync } = await import('node:child_process');
  const db = new URL(server.env.DATABASE_URL);
  execFileSync('psql', ['-h', db.hostname, '-p', db.port || '5432', '-U', db.username || 'postgres', '-d', db.pathname.slice(1), '-qc',
    `UPDATE reservations SET expires_at = now() + interval '6 seconds' WHERE id = ${Number(reservationId)}`]);
}

test('an admin locks an account, which is signed out at once', async () => {
  const boss = await admin(server);
  const user = await signUp(server, 'locked');
  const victim = await openPage(browser, server, { session: user });
  await victim.page.goto(`${server.url}/tickets`);
  await victim.page.locator('#account .who').waitFor();

  const p = await openPage(browser, server, { session: boss });
  const { page } = p;
  await page.goto(`${server.url}/admin`);
  await page.getByRole('searchbox', { name: 'Search accounts' }).fill(user.email);
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  // The page's first list may show the account before the search answers and replaces
  // the rows (with a fresh select and fields): wait for the search's own rows.
  await page.locator('table.users[aria-busy="false"]').waitFor();
  const row = page.locator(`tr[data-user="${user.id}"]`);
  await row.waitFor();
  await row.getByLabel(`Reason for locking ${user.email}`).fill('chargeback');
  await row.getByRole('button', { name: 'Lock', exact: true }).click();
  await row.locator('td.access', { hasText: 'LOCKED' }).waitFor();
  await page.locator('table.audit code', { hasText: 'lock_account' }).first().waitFor();

  // The account's token is refused at once, and it cannot log in again.
  const refused = await gql(server, '{ me { id } }', {}, user.accessToken);
  assert.equal(refused.errors[0].extensions.code, 'UNAUTHENTICATED');
  const login = await gql(server, 'mutation($e: String!, $p: String!) { logIn(email: $e, password: $p) { accessToken } }', { e: user.email, p: PASSWORD });
  assert.equal(login.errors[0].extensions.code, 'FORBIDDEN');
  // Its open page is signed out on its next call.
  await victim.page.reload();
  await victim.page.getByRole('button', { name: 'Log in / Sign up' }).waitFor();

  await row.getByRole('button', { name: 'Unlock', exact: true }).click();
  // exact: a name match is a case-insensitive substring by default, and "Unlock" contains
  // "lock", so without it this wait ended before the unlock was answered.
  await row.getByRole('button', { name: 'Lock', exact: true }).waitFor();
  const back = await gql(server, 'mutation($e: String!, $p: String!) { logIn(email: $e, password: $p) { accessToken } }', { e: user.email, p: PASSWORD });
  assert.ok(back.data.logIn.accessToken);
  p.assertClean();
  await p.context.close();
  await victim.context.close();
});
