// The server as a newcomer may first run it, without Redis: no order stream, so the seat
// page holds with reserveSeats instead of placeOrder, and live updates come through the
// in-process broker.
import { test, before, after } from 'node:test';
import { startServer } from '../lib/server.mjs';
import { launch } from '../lib/browser.mjs';
import { ok, show, signUp } from '../lib/api.mjs';
import { openPage } from './support.mjs';

let server;
let browser;
before(async () => { server = await startServer({ REDIS_URL: '' }); browser = await launch(); });
after(async () => { await browser?.close(); await server?.stop(); });

test('without Redis a fan still sees the map live and holds seats', async () => {
  const s = await show(server, { rows: 2, perRow: 10 });
  const fan = await signUp(server, 'solo');
  const p = await openPage(browser, server, { session: fan });
  const { page } = p;
  await page.goto(`${server.url}/schedules/${s.scheduleId}`);
  await page.waitForFunction(() => /live · v\d+/.test(document.querySelector('.live')?.textContent || ''));
  const other = await signUp(server, 'other');
  await ok(server, 'mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }',
    { i: { scheduleId: s.scheduleId, seatIds: [s.seatIds[0]] } }, other.accessToken);
  await page.waitForFunction(() => document.querySelector('#seats-left')?.textContent === '19 of 20 seats available', null, { timeout: 1000 });
  await page.locator('canvas.seatmap').focus();
  await page.keyboard.press('Enter');
  await page.getByRole('button', { name: /Hold 1 seat/ }).click();
  await page.locator('#hold-title', { hasText: 'Your hold' }).waitFor();
  await page.waitForFunction(() => document.querySelector('#seats-left')?.textContent === '18 of 20 seats available');
  p.assertClean();
  await p.context.close();
});
