// A host's workspace in headless Chromium: create a concert and a performance, build a
// layout in the builder with its live preview, generate the seats, publish, and watch
// sales move live.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { launch } from '../lib/browser.mjs';
import { ok, signUp, userWithRole } from '../lib/api.mjs';
import { openPage, shot, text } from './support.mjs';

let server;
let browser;
before(async () => { server = await startServer(); browser = await launch(); });
after(async () => { await browser?.close(); await server?.stop(); });

test('a host builds a layout in the builder, publishes it and sees sales live', async () => {
  const host = await userWithRole(server, 'HOST');
  const p = await openPage(browser, server, { session: host });
  const { page } = p;
  await page.goto(`${server.url}/host`);

  await page.getByLabel('Title').fill('Winter Strings');
  await page.getByLabel('Artist').fill('Seoul Philharmonic');
  await page.getByLabel('Venue').fill('Lotte Concert Hall');
  await page.getByLabel('Category').fill('classical');
  await page.getByRole('button', { name: 'Create concert' }).click();
  await page.locator('#concert-title', { hasText: 'Concert: Winter Strings' }).waitFor();

  await page.getByRole('button', { name: 'Add performance' }).click();
  await page.getByRole('button', { name: 'Build layout' }).click();
  await page.locator('.layout-stats').waitFor();
  // The default layout: Floor A-B (2 x 20 VIP), C-F (4 x 24 R); Balcony 1-3 (3 x 30 S).
  assert.equal(await text(page, '.layout-stats'), '226 seats in 9 rows · VIP 40 · R 96 · S 90');

  // A bad layout is refused whole, with the server's words and the field it names.
  const builder = page.locator('.builder');
  await builder.getByLabel('Seats per row', { exact: true }).first().fill('0');
  await page.getByRole('button', { name: 'Generate seats' }).click();
  await builder.getByRole('alert').filter({ hasText: 'layout.sections[0].rows[0].seats' }).waitFor();

  // Change it: the VIP rows get 10 seats each, and a new section of 2 rows of 12 S seats.
  await builder.getByLabel('Seats per row', { exact: true }).first().fill('10');
  await builder.getByRole('button', { name: 'Add section' }).click();
  const box = builder.locator('fieldset.section').last();
  await box.getByLabel('Rows', { exact: true }).fill('2');
  await box.getByLabel('Seats per row', { exact: true }).fill('12');
  await box.getByLabel('Grade', { exact: true }).selectOption('S');
  await page.waitForFunction(() => document.querySelector('.layout-stats')?.textContent === '230 seats in 11 rows · VIP 20 · R 96 · S 114');
  await shot(page, 'host-builder');

  await page.getByRole('button', { name: 'Generate seats' }).click();
  await page.locator('.toast .msg', { hasText: '230 seats generated.' }).waitFor();
  // Replacing starts from the layout just generated, not from the template.
  await page.getByRole('button', { name: 'Replace layout' }).click();
  await page.waitForFunction(() => document.querySelector('.layout-stats')?.textContent === '230 seats in 11 rows · VIP 20 · R 96 · S 114');
  assert.deepEqual(await builder.locator('fieldset.section legend').allInnerTexts(), ['Floor', 'Balcony', 'Section 3']);
  assert.equal(await builder.getByLabel('Seats per row', { exact: true }).first().inputValue(), '10');
  await page.getByRole('button', { name: 'Publish' }).click();
  await page.locator('#status-title .badge', { hasText: 'PUBLISHED' }).waitFor();

  const mine = await ok(server, '{ myConcerts(first: 5) { nodes { id status schedules { id capacity availability { grade total } } } } }', {}, host.accessToken);
  const concert = mine.myConcerts.nodes[0];
  assert.equal(concert.status, 'PUBLISHED');
  const sched = concert.schedules[0];
  assert.equal(sched.capacity, 230);
  assert.deepEqual(sched.availability.map((g) => [g.grade, g.total]), [['VIP', 20], ['R', 96], ['S', 114]]);

  // Sales move on the chart's table as a fan holds seats through the API.
  await page.locator('table.sales tr[data-schedule] td.held', { hasText: '0' }).waitFor();
  const fan = await signUp(server, 'buyer');
  const seats = await ok(server, 'query($s: ID!) { schedule(id: $s) { seats(grade: "S") { id } } }', { s: sched.id });
  const r = await ok(server, 'mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }',
    { i: { scheduleId: sched.id, seatIds: seats.schedule.seats.slice(0, 3).map((x) => x.id) } }, fan.accessToken);
  await page.locator('table.sales tr[data-schedule] td.held', { hasText: '3' }).waitFor({ timeout: 3000 });
  // Paid: the seats move from held to sold, and the revenue is the S price three times.
  await ok(server, 'mutation { chargePoints(amount: 270000, idempotencyKey: "c1") { balanceAfter } }', {}, fan.accessToken);
  await ok(server, 'mutation($r: ID!) { payReservation(reservationId: $r, idempotencyKey: "p1") { id } }', { r: r.reserveSeats.id }, fan.accessToken);
  await page.locator('table.sales tr[data-schedule] td.sold', { hasText: '3' }).waitFor({ timeout: 3000 });
  await page.locator('.sales-total', { hasText: '3 seats sold · revenue 270,000 pts' }).waitFor();
  await shot(page, 'host');
  p.assertClean();
  await p.context.close();
});

test('a user without the host role is told so', async () => {
  const fan = await signUp(server, 'plain');
  const p = await openPage(browser, server, { session: fan });
  await p.page.goto(`${server.url}/host`);
  await p.page.getByText('This workspace is for hosts.').waitFor();
  p.assertClean();
  await p.context.close();
});
