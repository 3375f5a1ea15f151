// Tickets and the door in headless Chromium: a fan's "My tickets" page shows QR codes;
// the /scan page, opened with a scanner token, admits a ticket once and says why it
// refuses; offline it checks signatures itself (WebCrypto Ed25519 with the published
// keys), keeps its scans in localStorage and uploads them when the network is back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { launch } from '../lib/browser.mjs';
import { gql, ok, signUp, show as makeShow } from '../lib/api.mjs';
import { openPage, text } from './support.mjs';

let server;
let browser;
before(async () => { server = await startServer(); browser = await launch(); });
after(async () => { await browser?.close(); await server?.stop(); });

/** A show whose doors are open (it starts in an hour), a fan with two paid tickets, a scanner. */
async function setUp() {
  const now = Date.now();
  const s = await makeShow(server, {
    rows: 1,
    perRow: 8,
    schedule: { startsAt: new Date(now + 3600_000).toISOString(), salesCloseAt: new Date(now + 1800_000).toISOString() },
  });
  const fan = await signUp(server, 'doorfan');
  await ok(server, 'mutation { chargePoints(amount: 1000, idempotencyKey: "c1") { balanceAfter } }', {}, fan.accessToken);
  const r = await ok(server, 'mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }',
    { i: { scheduleId: s.scheduleId, seatIds: s.seatIds.slice(0, 2) } }, fan.accessToken);
  await ok(server, 'mutation($r: ID!) { payReservation(reservationId: $r, idempotencyKey: "p1") { id } }', { r: r.reserveSeats.id }, fan.accessToken);
  const t = await ok(server, 'query($r: ID!) { reservation(id: $r) { tickets { id code } } }', { r: r.reserveSeats.id }, fan.accessToken);
  const { createScanner } = await ok(server, 'mutation($s: ID!) { createScanner(scheduleId: $s, name: "North door") { token } }',
    { s: s.scheduleId }, s.host.accessToken);
  return { show: s, fan, tickets: t.reservation.tickets, token: createScanner.token };
}

async function scan(page, code) {
  await page.locator('#door-code').fill(code);
  await page.locator('#door-check').click();
}

async function verdict(page, status) {
  await page.locator(`#door-result[data-status="${status}"]`).waitFor();
}

test('a fan sees their tickets as QR codes', async () => {
  const { fan, tickets } = await setUp();
  const p = await openPage(browser, server, { session: fan });
  const { page } = p;
  await page.goto(`${server.url}/`);
  await page.getByRole('link', { name: 'My tickets' }).click();
  await page.waitForURL(/\/tickets$/);
  await page.locator('#tickets li.ticket').nth(1).waitFor();
  assert.equal(await page.locator('#tickets li.ticket img').count(), 2);
  const codes = await page.locator('#tickets .code').allInnerTexts();
  assert.deepEqual(codes.map((c) => c.trim()).sort(), tickets.map((t) => t.code).sort());
  // Loaded once, the page keeps working without a network.
  await p.context.setOffline(true);
  assert.equal(await page.locator('#tickets li.ticket img').count(), 2);
  await p.context.setOffline(false);
  p.assertClean();
  await p.context.close();
});

test('the door admits a ticket once, online and offline, and uploads offline scans', async () => {
  const { show, tickets, token } = await setUp();
  const p = await openPage(browser, server);
  const { page } = p;
  await page.goto(`${server.url}/scan#token=${token}`);
  await page.locator('#door-title', { hasText: 'Night Show' }).waitFor();
  assert.match(await text(page, '#door-count'), /^0 \/ 8 admitted$/);
  assert.equal(new URL(page.url()).hash, '', 'the token leaves the address bar');

  await scan(page, tickets[0].code);
  await verdict(page, 'ADMITTED');
  assert.match(await text(page, '#door-result'), /Admitted[\s\S]*Floor · row R1/);
  assert.match(await text(page, '#door-count'), /^1 \/ 8 admitted$/);
  await scan(page, tickets[0].code);
  await verdict(page, 'ALREADY_USED');
  assert.match(await text(page, '#door-first'), /First at Gate 1/);
  await scan(page, 'NOT-A-TICKET');
  await verdict(page, 'INVALID');

  // Offline: checked on the device with the published keys, queued for upload.
  await p.context.setOffline(true);
  await scan(page, tickets[1].code);
  await verdict(page, 'ADMITTED');
  assert.match(await text(page, '#door-result'), /offline/);
  await scan(page, tickets[1].code);
  await verdict(page, 'ALREADY_USED');
  const forged = tickets[1].code.slice(0, 40) + (tickets[1].code[40] === 'A' ? 'B' : 'A') + tickets[1].code.slice(41);
  await scan(page, forged);
  await verdict(page, 'INVALID');
  assert.match(await text(page, '#door-net'), /Offline/);
  assert.match(await text(page, '#door-queued'), /^2 scans waiting to upload$/);
  assert.match(await text(page, '#door-count'), /^2 \/ 8 admitted$/);
  // The queue survives a reload of the page made offline... once the page is back.
  const queued = await page.evaluate(() => JSON.parse(localStorage.getItem('boxoffice.scan.queue')).length);
  assert.equal(queued, 2);

  // Back online: the upload admits the first scan, lists the second as a conflict.
  // The page's 'online' listener starts the upload by itself and the button starts one
  // too; both share one upload, so the click goes through the DOM (a disabled button
  // ignores it) rather than waiting for a button the first upload may already have
  // disabled.
  await p.context.setOffline(false);
  await page.evaluate(() => document.getElementById('door-upload').click());
  await page.locator('#door-msg', { hasText: 'Uploaded 2 offline scans; 1 conflict' }).waitFor();
  await page.locator('#door-conflicts li', { hasText: 'first let in at Gate 1' }).waitFor();
  assert.match(await text(page, '#door-queued'), /Nothing waiting to upload/);
  assert.match(await text(page, '#door-count'), /^2 \/ 8 admitted$/);

  const { scanner } = await ok(server, '{ scanner { admittedCount } }', {}, token);
  assert.equal(scanner.admittedCount, 2);
  const revoked = await ok(server, 'query($s: ID!) { revokedTickets(scheduleId: $s) { ticketId } }', { s: show.scheduleId }, token);
  assert.deepEqual(revoked.revokedTickets, []);
  p.assertClean();
  await p.context.close();
});

test("the host's concert page shows the door live and manages its scanners", async () => {
  const { show, tickets, token: north } = await setUp();
  const p = await openPage(browser, server, { session: show.host });
  const { page } = p;
  await page.goto(`${server.url}/host/concerts/${show.concertId}`);
  const card = page.locator(`.door-performance[data-schedule="${show.scheduleId}"]`);
  await card.locator('.door-admitted', { hasText: '0 / 8 admitted' }).waitFor();
  await card.locator('.scanners li', { hasText: 'North door' }).waitFor();

  // A new scanner: its link is shown once and works at /scan.
  await card.getByLabel(/^New scanner for/).fill('South door');
  await card.getByRole('button', { name: 'Create scanner' }).click();
  const link = await card.getByLabel('Door link for South door').inputValue();
  assert.match(link, new RegExp(`^${server.url}/scan#token=bos_scan_`));
  await card.locator('.scanners li', { hasText: 'South door' }).waitFor();
  const south = link.split('#token=')[1];

  // Scans at two gates show up live, by gate, without a reload.
  const checkIn = (code, gate, t) => ok(server, 'mutation($i: CheckInInput!) { checkIn(input: $i) { status } }',
    { i: { code, scheduleId: show.scheduleId, gate, nonce: `${gate}-${code.slice(0, 8)}` } }, t);
  assert.equal((await checkIn(tickets[0].code, 'South', south)).checkIn.status, 'ADMITTED');
  await card.locator('.door-admitted', { hasText: '1 / 8 admitted' }).waitFor();
  await card.locator('.door-gates tr[data-gate="South"] td', { hasText: '1' }).waitFor();
  assert.equal((await checkIn(tickets[1].code, 'North', north)).checkIn.status, 'ADMITTED');
  await card.locator('.door-admitted', { hasText: '2 / 8 admitted' }).waitFor();
  await card.locator('.door-gates tr[data-gate="North"] td', { hasText: '1' }).waitFor();

  // Revoking a scanner ends its token at once.
  await card.getByRole('button', { name: 'Revoke North door' }).click();
  await card.locator('.scanners li', { hasText: /North door\s+revoked/ }).waitFor();
  const after = await gql(server, '{ scanner { id } }', {}, north);
  assert.ok(after.errors?.length, JSON.stringify(after));
  assert.equal((await ok(server, '{ scanner { admittedCount } }', {}, south)).scanner.admittedCount, 2);
  p.assertClean();
  await p.context.close();
});

test('the camera path: a code the camera reads is checked in like a typed one', async () => {
  const { tickets, token } = await setUp();
  const p = await openPage(browser, server);
  const { page } = p;
  // Chromium on Linux has no BarcodeDetector and this machine no camera: both are stubbed,
  // the detector reading whatever code the test holds up (`__held`) from a playing video
  // fed by a canvas stream, so the page's own loop, dedupe and check-in run as written.
  await p.context.addInitScript(() => {
    window.__held = null;
    window.BarcodeDetector = class {
      constructor(options) { window.__formats = options?.formats; }
      static async getSupportedFormats() { return ['qr_code']; }
      async detect(source) {
        if (!(source instanceof HTMLVideoElement) || source.readyState < 2) throw new TypeError('not a playing video');
        return window.__held ? [{ rawValue: window.__held, format: 'qr_code' }] : [];
      }
    };
    const getUserMedia = async (constraints) => {
      window.__constraints = constraints;
      const canvas = document.createElement('canvas');
      canvas.width = 160;
      canvas.height = 120;
      const g = canvas.getContext('2d');
      let n = 0;
      setInterval(() => { g.fillStyle = n++ % 2 ? '#000' : '#fff'; g.fillRect(0, 0, 160, 120); }, 40);
      window.__stream = canvas.captureStream(25);
      return window.__stream;
    };
    if (navigator.mediaDevices) navigator.mediaDevices.getUserMedia = getUserMedia;
    else Object.defineProperty(navigator, 'mediaDevices', { value: { getUserMedia } });
  });
  await page.goto(`${server.url}/scan#token=${token}`);
  await page.locator('#door-title', { hasText: 'Night Show' }).waitFor();
  await page.locator('#door-camera').click();
  await page.locator('.door-camera video').waitFor();
  assert.deepEqual(await page.evaluate(() => [window.__formats, window.__constraints.video.facingMode]), [['qr_code'], 'environment']);

  await page.evaluate((code) => { window.__held = code; }, tickets[0].code);
  await verdict(page, 'ADMITTED');
  assert.match(await text(page, '#door-count'), /^1 \/ 8 admitted$/);
  // Held in front of the camera, the same code is one scan, not one every tick.
  await page.waitForTimeout(1500);
  assert.equal(await page.locator('#door-log li').count(), 1);
  assert.equal(await page.locator('#door-result').getAttribute('data-status'), 'ADMITTED');
  // The next ticket, then the first again: refused, with where it was first let in.
  await page.evaluate((code) => { window.__held = code; }, tickets[1].code);
  await page.locator('#door-count', { hasText: '2 / 8 admitted' }).waitFor();
  await page.evaluate((code) => { window.__held = code; }, tickets[0].code);
  await verdict(page, 'ALREADY_USED');
  assert.match(await text(page, '#door-first'), /First at Gate 1/);

  // Leaving the page turns the camera off.
  await page.evaluate(() => { window.__held = null; });
  await page.getByRole('link', { name: 'Concerts' }).click();
  await page.waitForFunction(() => window.__stream.getTracks().every((t) => t.readyState === 'ended'));
  p.assertClean();
  await p.context.close();
});
