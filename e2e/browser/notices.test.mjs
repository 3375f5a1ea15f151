// A webhook given up on, as its host meets it in headless Chromium: the receiver answers
// 410 Gone, the relay disables the webhook, and the host's next page shows the notice
// (URL and reason) above it until "Mark read"; a fan sees no banner.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startServer } from '../lib/server.mjs';
import { launch } from '../lib/browser.mjs';
import { ok, signUp, show as makeShow } from '../lib/api.mjs';
import { openPage, shot } from './support.mjs';

let server;
let browser;
let receiver;
let hits = 0;
before(async () => {
  server = await startServer({ WEBHOOK_ALLOW_PRIVATE: 'true', RELAY_POLL_MS: '50' });
  browser = await launch();
  receiver = http.createServer((req, res) => { hits += 1; req.resume(); res.writeHead(410).end(); });
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
});
after(async () => { receiver?.close(); await browser?.close(); await server?.stop(); });

test('a host is told, above every page, that a webhook was disabled', async () => {
  const s = await makeShow(server, { rows: 1, perRow: 4 });
  const url = `http://127.0.0.1:${receiver.address().port}/hook`;
  await ok(server, 'mutation($i: CreateWebhookInput!) { createWebhook(input: $i) { id } }',
    { i: { url, events: ['reservation.held'], concertId: s.concertId } }, s.host.accessToken);
  const fan = await signUp(server, 'fan');
  await ok(server, 'mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }',
    { i: { scheduleId: s.scheduleId, seatIds: [s.seatIds[0]] } }, fan.accessToken);
  for (let i = 0; i < 100; i += 1) {
    const n = await ok(server, '{ unreadNoticeCount }', {}, s.host.accessToken);
    if (n.unreadNoticeCount === 1) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(hits, 1, 'the receiver was asked once');

  const p = await openPage(browser, server, { session: s.host });
  const { page } = p;
  await page.goto(`${server.url}/host`);
  const banner = page.getByRole('region', { name: 'Notices' });
  await banner.getByText(url).waitFor();
  assert.match(await banner.textContent(), /410/);
  await shot(page, 'notice-webhook-disabled');
  await banner.getByRole('button', { name: 'Mark read' }).click();
  await banner.waitFor({ state: 'detached' });
  await page.goto(`${server.url}/`);
  await page.getByRole('heading', { level: 1 }).first().waitFor();
  assert.equal(await page.getByRole('region', { name: 'Notices' }).count(), 0, 'read notices stay away');
  const left = await ok(server, '{ unreadNoticeCount }', {}, s.host.accessToken);
  assert.equal(left.unreadNoticeCount, 0);
  p.assertClean();
  await p.context.close();

  const theirs = await openPage(browser, server, { session: fan });
  await theirs.page.goto(`${server.url}/`);
  await theirs.page.getByRole('heading', { level: 1 }).first().waitFor();
  assert.equal(await theirs.page.getByRole('region', { name: 'Notices' }).count(), 0);
  theirs.assertClean();
  await theirs.context.close();
});
