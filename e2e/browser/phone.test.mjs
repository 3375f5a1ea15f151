// The first minute and phones: `boxoffice demo` seeds a box office (twice: nothing is
// duplicated), and its pages fit a 390 x 844 phone and a 1280 px desktop: no sideways
// scrolling, the zoom buttons inside the screen, seats big enough to tap on the phone
// (the map starts zoomed and pans), and the availability table inside its panel.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { startServer, binary } from '../lib/server.mjs';
import { launch } from '../lib/browser.mjs';
import { ok, logIn } from '../lib/api.mjs';
import { openPage, shot } from './support.mjs';

const PASSWORD = 'demo password 42';
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true };
const DESKTOP = { viewport: { width: 1280, height: 900 } };

let server;
let browser;
let seeded;
before(async () => {
  server = await startServer();
  browser = await launch();
  const run = () => execFileSync(binary(), ['demo', '--no-serve', '--password', PASSWORD], { env: server.env, encoding: 'utf8' });
  seeded = [run(), run()];
});
after(async () => { await browser?.close(); await server?.stop(); });

const schedules = async () => {
  const d = await ok(server, '{ concerts(first: 10) { nodes { title schedules { id capacity queueEnabled } } } }');
  return Object.fromEntries(d.concerts.nodes.map((c) => [c.schedules[0].capacity, c.schedules[0]]));
};

test('boxoffice demo prints the passwords once and seeds nothing twice', async () => {
  assert.match(seeded[0], /demo-admin@example\.com\s+password: demo password 42/);
  assert.match(seeded[0], /demo-fan@example\.com got 1000000 points/);
  assert.doesNotMatch(seeded[1], /password: /, 'the second run printed a password');
  assert.match(seeded[1], /already there/);
  const d = await ok(server, '{ concerts(first: 10) { nodes { title status schedules { capacity onSale queueEnabled } } } }');
  const shows = d.concerts.nodes.map((c) => [c.title, c.status, ...Object.values(c.schedules[0])]).sort();
  assert.deepEqual(shows, [
    ['Northern Lights World Tour', 'PUBLISHED', 20000, true, true],
    ['별빛 오케스트라 — 겨울밤의 클래식', 'PUBLISHED', 2004, true, false],
  ]);
  const fan = await logIn(server, 'demo-fan@example.com', PASSWORD);
  const me = await ok(server, '{ me { points } }', {}, fan.accessToken);
  assert.equal(me.me.points, 1000000);
});

/** Page width against the viewport, and the elements that stick out on the right. */
const overflow = (page) => page.evaluate(() => {
  const vw = document.documentElement.clientWidth;
  const out = [...document.querySelectorAll('body *')]
    .filter((e) => e.getBoundingClientRect().right > vw + 0.5 && !e.closest('.mapbox, .scroll, .chart-box'))
    .slice(0, 5).map((e) => `${e.tagName.toLowerCase()}.${e.className}`);
  return { scrollWidth: document.documentElement.scrollWidth, vw, out };
});

for (const [name, device] of [['phone', PHONE], ['desktop', DESKTOP]]) {
  test(`${name}: the host workspace and both seat pages fit the screen`, async () => {
    const host = await logIn(server, 'demo-host@example.com', PASSWORD);
    const p = await openPage(browser, server, { session: host, ...device });
    const { page } = p;
    await page.goto(`${server.url}/host`);
    await page.locator('#sched-title').waitFor();
    await page.locator('.sales-total').filter({ hasText: 'seats sold' }).waitFor();
    let o = await overflow(page);
    assert.deepEqual(o.out, [], `/host: sticking out at ${o.vw} px`);
    assert.ok(o.scrollWidth <= o.vw, `/host is ${o.scrollWidth} px wide on a ${o.vw} px screen`);
    if (name === 'phone') await shot(page, 'host-phone', false);

    const byCapacity = await schedules();
    for (const capacity of [2004, 20000]) {
      const s = byCapacity[capacity];
      await page.goto(`${server.url}/schedules/${s.id}`);
      await page.waitForFunction(() => /live · v\d+/.test(document.querySelector('.live')?.textContent || ''));
      o = await overflow(page);
      assert.deepEqual(o.out, [], `${capacity} seats: sticking out at ${o.vw} px`);
      assert.ok(o.scrollWidth <= o.vw, `the ${capacity}-seat page is ${o.scrollWidth} px wide on a ${o.vw} px screen`);
      const zoom = await page.getByRole('button', { name: 'Zoom in' }).boundingBox();
      assert.ok(zoom.x + zoom.width <= o.vw, `"+" clipped: ${JSON.stringify(zoom)}`);
      const cell = Number(await page.locator('canvas.seatmap').getAttribute('data-cell'));
      if (name === 'phone') {
        assert.ok(cell >= 24, `${capacity} seats: a seat is ${cell} px on a phone, too small to tap`);
        // The map pans inside its box: wider than the box, and the box scrolls.
        const box = await page.locator('.mapbox').evaluate((b) => ({ scroll: b.scrollWidth, client: b.clientWidth, css: getComputedStyle(b).overflowX }));
        assert.ok(box.scroll > box.client && box.css === 'auto', JSON.stringify(box));
      }
      // The availability table stays inside its panel (its Sold column spilled at 1280 px).
      const fit = await page.locator('table.avail').evaluate((t) => {
        const panel = t.closest('.panel').getBoundingClientRect();
        const right = Math.max(...[...t.querySelectorAll('th, td')].map((c) => c.getBoundingClientRect().right));
        return { right, inner: panel.right - 1 };
      });
      assert.ok(fit.right <= fit.inner, `availability table ends at ${fit.right}, panel at ${fit.inner}`);
      if (name === 'phone' && capacity === 20000) await shot(page, 'schedule-phone-zoomed', false);
    }
    p.assertClean();
    await p.context.close();
  });
}

test('phone: a tap picks a seat of the zoomed map', async () => {
  const fan = await logIn(server, 'demo-fan@example.com', PASSWORD);
  const p = await openPage(browser, server, { session: fan, ...PHONE });
  const { page } = p;
  const s = (await schedules())[2004];
  await page.goto(`${server.url}/schedules/${s.id}`);
  await page.waitForFunction(() => /live · v\d+/.test(document.querySelector('.live')?.textContent || ''));
  const canvas = page.locator('canvas.seatmap');
  await canvas.scrollIntoViewIfNeeded();
  const box = await page.locator('.mapbox').boundingBox();
  // The middle of the box's first row of seats, whatever the horizontal pan.
  await page.touchscreen.tap(box.x + box.width / 2, box.y + 20 + 12);
  await page.locator('.picked-list li').first().waitFor();
  assert.match(await page.locator('.picked-list li').first().innerText(), /^1층 A-\d+ · VIP/);
  p.assertClean();
  await p.context.close();
});
