// Best available and the waiting list on the seat page, in headless Chromium: the box
// office chooses the seats; on a sold-out performance the fan joins the line and the offer
// (a hold made for them when seats come back) arrives live.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { launch } from '../lib/browser.mjs';
import { ok, show, signUp } from '../lib/api.mjs';
import { openPage, text } from './support.mjs';

let server;
let browser;
before(async () => { server = await startServer(); browser = await launch(); });
after(async () => { await browser?.close(); await server?.stop(); });

const live = (page) => page.waitForFunction(() => /live · v\d+/.test(document.querySelector('.live')?.textContent || ''));

test('best available holds the centre of the front row of the asked grade', async () => {
  const s = await show(server, { rows: 4, perRow: 10 });
  const fan = await signUp(server, 'best');
  const p = await openPage(browser, server, { session: fan });
  const { page } = p;
  await page.goto(`${server.url}/schedules/${s.scheduleId}`);
  await live(page);
  await page.locator('#best-count').selectOption('2');
  await page.locator('#best-grade').selectOption('R');
  await page.locator('#best-hold').click();
  await page.locator('#hold-title', { hasText: 'Your hold' }).waitFor();
  const hold = await text(page, '[aria-labelledby="hold-title"]');
  // Row R2 is the first R row; seats 5 and 6 are its centre.
  assert.match(hold, /row R2, seat 5 · R/);
  assert.match(hold, /row R2, seat 6 · R/);
  await page.waitForFunction(() => document.querySelector('#seats-left')?.textContent === '38 of 40 seats available');
  p.assertClean();
  await p.context.close();
});

test('on a sold-out performance a fan joins the waiting list and the offer arrives live', async () => {
  const s = await show(server, { rows: 1, perRow: 2 });
  const holder = await signUp(server, 'holder');
  const sold = await ok(server, 'mutation($i: BestAvailableInput!) { reserveBestAvailable(input: $i) { id } }',
    { i: { scheduleId: s.scheduleId, count: 2 } }, holder.accessToken);
  const fan = await signUp(server, 'waiter');
  const p = await openPage(browser, server, { session: fan });
  const { page } = p;
  await page.goto(`${server.url}/schedules/${s.scheduleId}`);
  await live(page);
  await page.locator('#join-waitlist').click();
  await page.locator('#waitlist-place', { hasText: 'number 1 for 1 seat' }).waitFor();

  await ok(server, 'mutation($r: ID!) { cancelReservation(reservationId: $r) { id } }', { r: sold.reserveBestAvailable.id }, holder.accessToken);
  await page.locator('#hold-title', { hasText: 'Your hold' }).waitFor({ timeout: 5000 });
  await page.locator('.reservations [data-status="HELD"]').waitFor();
  assert.equal(await page.locator('#waitlist-place').count(), 0);
  p.assertClean();
  await p.context.close();
});
