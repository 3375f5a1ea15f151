// A fan's seat page in headless Chromium: the live map, picking with the keyboard,
// holding through placeOrder, paying with points, and the waiting queue.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { launch } from '../lib/browser.mjs';
import { ok, show, signUp, uniqueEmail, PASSWORD } from '../lib/api.mjs';
import { openPage, shot, text } from './support.mjs';

let server;
let browser;
before(async () => { server = await startServer(); browser = await launch(); });
after(async () => { await browser?.close(); await server?.stop(); });

const hold = (s, seatIds, token) => ok(server,
  'mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id status } }',
  { i: { scheduleId: s.scheduleId, seatIds } }, token);

test('the seat page shows availability and follows another fan\'s hold within a second', async () => {
  const s = await show(server, { rows: 4, perRow: 10, concert: { title: 'Blue Night', artist: 'IU', venue: 'Olympic Hall' } });
  const p = await openPage(browser, server);
  await p.page.goto(`${server.url}/`);
  await p.page.locator('.concert h2', { hasText: 'Blue Night' }).waitFor();
  await shot(p.page, 'home');
  await p.page.locator('.concert', { hasText: 'Blue Night' }).getByRole('link').first().click();
  await p.page.waitForURL(`${server.url}/schedules/${s.scheduleId}`);
  await p.page.waitForFunction(() => document.querySelector('#seats-left')?.textContent === '40 of 40 seats available');
  // The subscription is live once its first event has set the version label.
  await p.page.waitForFunction(() => /live · v\d+/.test(document.querySelector('.live')?.textContent || ''));
  // The map is the cacheable HTTP snapshot; the subscription follows from its version.
  assert.ok(p.requests.some((u) => u.endsWith(`/schedules/${s.scheduleId}/seat-map`)), 'the map is read over plain HTTP');

  const other = await signUp(server, 'other');
  await hold(s, s.seatIds.slice(0, 3), other.accessToken);
  const held = Date.now();
  await p.page.waitForFunction(() => document.querySelector('#seats-left')?.textContent === '37 of 40 seats available', null, { timeout: 1000 });
  const ms = Date.now() - held;
  // The first row is VIP: its line of the table says 3 held.
  const vip = await text(p.page, 'tr[data-grade="VIP"]');
  assert.match(vip, /7 \/ 10\s+3\s+0/);
  console.log(`# availability updated ${ms} ms after the hold answered`);
  assert.ok(ms < 1000);
  await shot(p.page, 'schedule');
  p.assertClean();
  await p.context.close();
});

test('a fan signs up, picks seats with the keyboard, holds them and pays, charging the shortfall', async () => {
  const s = await show(server, { rows: 4, perRow: 10 });
  const p = await openPage(browser, server);
  const { page } = p;
  // The hold goes through placeOrder and its result arrives on the orderResult subscription.
  const frames = [];
  page.on('websocket', (ws) => ws.on('framesent', (f) => frames.push(String(f.payload))));
  await page.goto(`${server.url}/schedules/${s.scheduleId}`);
  await page.waitForFunction(() => /live · v\d+/.test(document.querySelector('.live')?.textContent || ''));

  // Sign up through the dialog.
  await page.getByRole('button', { name: 'Log in / Sign up' }).click();
  await page.getByRole('button', { name: 'New here? Sign up' }).click();
  const email = uniqueEmail('buyer');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Display name').fill('Buyer');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign up', exact: true }).click();
  await page.locator('#account .who', { hasText: 'Buyer' }).waitFor();

  // Keyboard only: focus the map (the cursor goes to the first free seat), pick two.
  await page.locator('canvas.seatmap').focus();
  await page.keyboard.press('Enter');
  await page.keyboard.press('ArrowRight');
  await page.keyboard.press('Space');
  await page.getByRole('button', { name: /Hold 2 seats · 300 pts/ }).waitFor();
  assert.match(await text(page, '#seat-cursor'), /Floor, row R1, seat 2: VIP, 150 pts, available, picked/);

  await page.getByRole('button', { name: /Hold 2 seats/ }).click();
  await page.locator('#hold-title', { hasText: 'Your hold' }).waitFor();
  assert.match(await text(page, '.countdown'), /^[45]:\d\d$/);
  await shot(page, 'schedule-hold');
  assert.ok(frames.some((f) => f.includes('orderResult')), 'no orderResult subscription');

  // A new account has no points: paying tops the wallet up by the 300 first (a sandbox
  // top-up on this dev server).
  await page.getByRole('button', { name: 'Top up 300 pts and pay' }).click();
  await page.locator('#hold-title', { hasText: 'Paid' }).waitFor();
  await page.locator('.reservations [data-status="CONFIRMED"]').waitFor();
  await page.waitForFunction(() => document.querySelector('#seats-left')?.textContent === '38 of 40 seats available');

  const seats = await ok(server, 'query($s: ID!) { schedule(id: $s) { seats { id status } } }', { s: s.scheduleId });
  const sold = seats.schedule.seats.filter((x) => x.status === 'SOLD').map((x) => x.id);
  assert.deepEqual(sold, s.seatIds.slice(0, 2));
  p.assertClean();
  await p.context.close();
});

test('a picked seat taken by someone else is dropped with a message', async () => {
  const s = await show(server, { rows: 2, perRow: 10 });
  const fan = await signUp(server, 'picker');
  const p = await openPage(browser, server, { session: fan });
  await p.page.goto(`${server.url}/schedules/${s.scheduleId}`);
  await p.page.waitForFunction(() => /live · v\d+/.test(document.querySelector('.live')?.textContent || ''));
  await p.page.locator('canvas.seatmap').focus();
  await p.page.keyboard.press('Enter');
  await p.page.getByRole('button', { name: /Hold 1 seat/ }).waitFor();
  const other = await signUp(server, 'faster');
  await hold(s, [s.seatIds[0]], other.accessToken);
  await p.page.locator('.toast .msg.error', { hasText: 'Taken by someone else just now: Floor R1-1' }).waitFor({ timeout: 2000 });
  await p.page.getByRole('button', { name: 'Hold seats' }).waitFor();
  p.assertClean();
  await p.context.close();
});

test('with the queue on, a fan enters it, is admitted live, then holds', async () => {
  const s = await show(server, { rows: 2, perRow: 10, schedule: { queueEnabled: true, admitPerSecond: 50, maxActive: 100 } });
  const fan = await signUp(server, 'queuer');
  const p = await openPage(browser, server, { session: fan });
  const { page } = p;
  await page.goto(`${server.url}/schedules/${s.scheduleId}`);
  await page.getByRole('button', { name: 'Enter the queue' }).click();
  await page.locator('.queue-state', { hasText: 'It is your turn' }).waitFor({ timeout: 10_000 });
  await page.locator('canvas.seatmap').focus();
  await page.keyboard.press('Enter');
  await page.getByRole('button', { name: /Hold 1 seat/ }).click();
  await page.locator('#hold-title', { hasText: 'Your hold' }).waitFor();
  p.assertClean();
  await p.context.close();
});

test('a fan who queues before opening is EARLY, then admitted live at opening', async () => {
  const opening = Date.now() + 8000;
  const s = await show(server, { rows: 2, perRow: 10, schedule: { queueEnabled: true, admitPerSecond: 50, salesOpenAt: new Date(opening).toISOString() } });
  const fan = await signUp(server, 'early');
  const p = await openPage(browser, server, { session: fan });
  const { page } = p;
  await page.goto(`${server.url}/schedules/${s.scheduleId}`);
  await page.getByRole('button', { name: 'Enter the queue' }).click();
  await page.locator('.queue-state', { hasText: 'You are in early' }).waitFor();
  await page.locator('canvas.seatmap').focus();
  await page.keyboard.press('Enter');
  assert.equal(await page.getByRole('button', { name: /Hold 1 seat/ }).isDisabled(), true);
  await page.locator('.queue-state', { hasText: 'It is your turn' }).waitFor({ timeout: 20_000 });
  assert.ok(Date.now() >= opening - 1000, 'admitted before opening');
  await page.getByRole('button', { name: /Hold 1 seat/ }).click();
  await page.locator('#hold-title', { hasText: 'Your hold' }).waitFor();
  p.assertClean();
  await p.context.close();
});

test('the seat page is usable on a phone-sized screen', async () => {
  const s = await show(server, { rows: 12, perRow: 30 });
  const p = await openPage(browser, server, { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  await p.page.goto(`${server.url}/schedules/${s.scheduleId}`);
  await p.page.waitForFunction(() => document.querySelector('#seats-left')?.textContent === '360 of 360 seats available');
  // Nothing but the map box scrolls sideways.
  const overflow = await p.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `page is ${overflow}px wider than the screen`);
  await shot(p.page, 'schedule-phone', false);
  p.assertClean();
  await p.context.close();
});

test('a 50,000-seat map is drawn, followed live and usable from the keyboard', async () => {
  const s = await show(server, { rows: 200, perRow: 250 });
  const p = await openPage(browser, server);
  const { page } = p;
  const start = Date.now();
  await page.goto(`${server.url}/schedules/${s.scheduleId}`);
  await page.waitForFunction(() => document.querySelector('#seats-left')?.textContent === '50000 of 50000 seats available', null, { timeout: 20_000 });
  const ready = Date.now() - start;
  await page.waitForFunction(() => /live · v\d+/.test(document.querySelector('.live')?.textContent || ''));
  // The canvas is as tall as 200 rows of at least 2 px.
  const height = await page.evaluate(() => document.querySelector('canvas.seatmap').getBoundingClientRect().height);
  assert.ok(height >= 400, `canvas ${height}px high`);

  const other = await signUp(server, 'bulk');
  const last = s.seatIds.slice(-4);
  await hold(s, last, other.accessToken);
  const held = Date.now();
  await page.waitForFunction(() => document.querySelector('#seats-left')?.textContent === '49996 of 50000 seats available', null, { timeout: 1000 });
  const live = Date.now() - held;

  await page.locator('canvas.seatmap').focus();
  await page.keyboard.press('End');
  await page.keyboard.press('Enter');
  assert.match(await text(page, '#seat-cursor'), /Floor, row R1, seat 250: VIP, 150 pts, available, picked/);
  await shot(page, 'schedule-50k', false);
  // Seats of 2 px are too small for a mouse: zoom in three times, then pick with a click.
  const narrow = await page.evaluate(() => document.querySelector('canvas.seatmap').getBoundingClientRect().width);
  for (let k = 0; k < 3; k += 1) await page.getByRole('button', { name: 'Zoom in' }).click();
  const wide = await page.evaluate(() => document.querySelector('canvas.seatmap').getBoundingClientRect().width);
  assert.ok(wide >= narrow * 4, `zoomed from ${narrow} to ${wide} px`);
  await page.locator('canvas.seatmap').click();
  await page.getByRole('button', { name: /Hold 2 seats/ }).waitFor();
  console.log(`# 50,000 seats: page ready in ${ready} ms, live update ${live} ms after the hold answered`);
  p.assertClean();
  await p.context.close();
});

test('a refused hold says why, in a fan\'s words, and an expired hold keeps saying so', async () => {
  const s = await show(server, { rows: 2, perRow: 10, schedule: { holdSeconds: 30 } });
  const fan = await signUp(server, 'expiring');
  const p = await openPage(browser, server, { session: fan });
  const { page } = p;
  await page.goto(`${server.url}/schedules/${s.scheduleId}`);
  await page.waitForFunction(() => /live · v\d+/.test(document.querySelector('.live')?.textContent || ''));
  await page.locator('#account .who').waitFor();
  await page.locator('canvas.seatmap').focus();
  await page.keyboard.press('Enter');
  await page.getByRole('button', { name: /Hold 1 seat/ }).click();
  await page.locator('#hold-title', { hasText: 'Your hold' }).waitFor();

  // The hold runs out (30 s): the box stays, says so, and still does once the page has
  // re-read the reservation as EXPIRED.
  await page.locator('#hold-title', { hasText: 'Your hold expired' }).waitFor({ timeout: 40_000 });
  await page.locator('.reservations li[data-status="EXPIRED"]').waitFor({ timeout: 15_000 });
  assert.equal(await page.locator('#hold-title').isVisible(), true, 'the expired hold vanished');
  assert.match(await text(page, '.hold-expired [role="alert"]'), /Your hold expired and the seats were released/);
  await page.getByRole('button', { name: 'Dismiss' }).click();
  assert.equal(await page.locator('#hold-title').isVisible(), false);

  // The host cancels the performance while the page is open: the next hold says that.
  await ok(server, 'mutation($s: ID!) { cancelSchedule(id: $s) { id } }', { s: s.scheduleId }, s.host.accessToken);
  await page.locator('canvas.seatmap').focus();
  await page.keyboard.press('ArrowRight');
  await page.keyboard.press('Enter');
  await page.getByRole('button', { name: /Hold 1 seat/ }).click();
  const said = page.locator('.page-msg [role="alert"]');
  await said.waitFor();
  assert.equal((await said.innerText()).trim(), 'This performance is cancelled.');
  p.assertClean();
  await p.context.close();
});
