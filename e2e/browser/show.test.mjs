// Running a show in headless Chromium: the host edits a performance (a refused edit names
// its rule), keeps seats back on the map, gives complimentary tickets to a guest (who
// claims their new account through the one-time link at /claim), and a fan sees the
// kept-back seats as not for sale.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { launch } from '../lib/browser.mjs';
import { ok, show, signUp } from '../lib/api.mjs';
import { openPage, shot } from './support.mjs';

let server;
let browser;
before(async () => { server = await startServer(); browser = await launch(); });
after(async () => { await browser?.close(); await server?.stop(); });

const STATE = 'query($s: ID!) { schedule(id: $s) { holdSeconds perUserLimit bookedCount complimentarySeats seatMap { statuses } } }';

test('a host edits a performance, keeps seats back and gives a guest tickets', async () => {
  const s = await show(server, { rows: 2, perRow: 6 });
  const p = await openPage(browser, server, { session: s.host });
  const { page } = p;
  await page.goto(`${server.url}/host`);

  // Edit: a refused change says which rule refused it; an accepted one is saved.
  await page.getByRole('button', { name: 'Edit', exact: true }).click();
  const edit = page.locator('.edit-schedule');
  await edit.waitFor();
  await edit.getByLabel('Sales close').fill('2099-01-01T00:00');
  await edit.getByRole('button', { name: 'Save changes' }).click();
  await edit.getByRole('alert').filter({ hasText: 'sales close before the show' }).waitFor();
  await page.getByRole('button', { name: 'Edit', exact: true }).click();
  await page.locator('.edit-schedule').getByLabel('Hold time (s)').fill('120');
  await page.locator('.edit-schedule').getByLabel('Seats per person').fill('2');
  await page.locator('.edit-schedule').getByRole('button', { name: 'Save changes' }).click();
  await page.locator('.toast .msg', { hasText: 'Performance updated.' }).waitFor();
  let st = (await ok(server, STATE, { s: s.scheduleId }, s.host.accessToken)).schedule;
  assert.equal(st.holdSeconds, 120);
  assert.equal(st.perUserLimit, 2);

  // Seats: pick the first two on the map with the keyboard and keep them back.
  await page.getByRole('button', { name: 'Seats', exact: true }).click();
  const panel = page.locator('.seats-panel');
  await panel.waitFor();
  const map = panel.locator('canvas.seatmap');
  await map.focus();
  await map.press('Enter');
  await map.press('ArrowRight');
  await map.press('Enter');
  await panel.locator('.picked-seats', { hasText: 'Floor R1-1 (available), Floor R1-2 (available)' }).waitFor();
  await panel.getByLabel('Reason').fill('camera platform');
  await panel.getByRole('button', { name: 'Keep back' }).click();
  await page.locator('.toast .msg', { hasText: 'Seats kept back.' }).waitFor();
  st = (await ok(server, STATE, { s: s.scheduleId }, s.host.accessToken)).schedule;
  assert.equal(st.seatMap.statuses, 'BBAAAAAAAAAA');
  assert.equal(st.bookedCount, 2);

  // Comp: a kept-back seat and a free one to a guest's e-mail.
  await map.focus();
  await map.press('Home');
  await map.press('Enter');
  await map.press('ArrowRight');
  await map.press('ArrowRight');
  await map.press('Enter');
  await panel.locator('.picked-seats', { hasText: 'Floor R1-1 (blocked), Floor R1-3 (available)' }).waitFor();
  await panel.getByLabel('Guest e-mail').fill('guest@example.com');
  await panel.getByLabel('Note').fill('press');
  await panel.getByRole('button', { name: 'Give tickets' }).click();
  await page.locator('.toast .msg', { hasText: '2 complimentary ticket(s) issued to guest@example.com.' }).waitFor();
  st = (await ok(server, STATE, { s: s.scheduleId }, s.host.accessToken)).schedule;
  assert.equal(st.seatMap.statuses, 'SBSAAAAAAAAA');
  assert.equal(st.complimentarySeats, 2);
  await shot(page, 'host-seats');

  // The guest has no password yet: the host is shown a one-time link to pass on; the guest
  // opens it, sets a password and lands on their tickets. The token leaves the address bar.
  const link = await panel.getByLabel('Claim link for guest@example.com').inputValue();
  assert.match(link, /\/claim\?token=ct_[0-9a-f]{24}_[0-9a-f]{64}$/);
  assert.ok(link.startsWith(`${server.url}/claim?`), link);
  const g = await openPage(browser, server);
  await g.page.goto(link);
  await g.page.getByRole('heading', { name: 'Claim your account' }).waitFor();
  assert.equal(new URL(g.page.url()).search, '');
  await g.page.getByLabel('New password').fill('onlyletters');
  await g.page.getByRole('button', { name: 'Set password and see my tickets' }).click();
  await g.page.getByRole('alert').filter({ hasText: 'must mix letters with digits or symbols (password)' }).waitFor();
  await g.page.getByLabel('Your name (optional)').fill('Gina Guest');
  await g.page.getByLabel('New password').fill('blue harbor 42');
  await g.page.getByRole('button', { name: 'Set password and see my tickets' }).click();
  await g.page.waitForURL(`${server.url}/tickets`);
  await g.page.locator('#account .who', { hasText: 'Gina Guest' }).waitFor();
  await g.page.locator('#tickets li').nth(1).waitFor();
  assert.equal(await g.page.locator('#tickets li').count(), 2);
  g.assertClean();
  await g.context.close();
  // The link works once: opened again it says so.
  const again = await openPage(browser, server);
  await again.page.goto(link);
  await again.page.getByLabel('New password').fill('another pass 7');
  await again.page.getByRole('button', { name: 'Set password and see my tickets' }).click();
  await again.page.getByRole('alert').filter({ hasText: 'already used' }).waitFor();
  await again.context.close();

  // A held seat cannot be given away: the server's words reach the host.
  const fan = await signUp(server, 'fan');
  await ok(server, 'mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }',
    { i: { scheduleId: s.scheduleId, seatIds: [s.seatIds[3]] } }, fan.accessToken);
  await map.focus();
  await map.press('Home');
  for (let k = 0; k < 3; k += 1) await map.press('ArrowRight');
  await map.press('Enter');
  await panel.getByRole('button', { name: 'Give tickets' }).click();
  await panel.getByRole('alert').filter({ hasText: 'only free seats can be given away' }).waitFor();
  p.assertClean();
  await p.context.close();

  // The fan's map shows the kept-back seat as not for sale.
  const f = await openPage(browser, server, { session: fan });
  await f.page.goto(`${server.url}/schedules/${s.scheduleId}`);
  await f.page.locator('.legend li', { hasText: 'not for sale' }).waitFor();
  f.assertClean();
  await f.context.close();
});
