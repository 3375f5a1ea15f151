// The wallet in headless Chromium: a fan on the sandbox provider sees the SANDBOX label,
// tops up, refunds an unspent top-up to the "card", and reads the ledger saying what
// each entry was for.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { launch } from '../lib/browser.mjs';
import { ok, signUp } from '../lib/api.mjs';
import { openPage, text } from './support.mjs';

let server;
let browser;
before(async () => { server = await startServer(); browser = await launch(); });
after(async () => { await browser?.close(); await server?.stop(); });

test('a fan tops up on the sandbox, refunds it, and reads the ledger', async () => {
  const fan = await signUp(server, 'wallet');
  const p = await openPage(browser, server, { session: fan });
  const { page } = p;
  await page.goto(`${server.url}/`);
  await page.getByRole('link', { name: 'Wallet' }).click();
  await page.waitForURL(/\/wallet$/);
  await page.locator('#wallet-points', { hasText: '0 pts' }).waitFor();
  assert.match(await text(page, '#sandbox-label'), /SANDBOX.*no money moves.*1,000,000 pts a day/);

  await page.getByLabel('Points to add').fill('2500');
  await page.getByRole('button', { name: 'Top up (sandbox, free)' }).click();
  await page.locator('#wallet-points', { hasText: '2,500 pts' }).waitFor();
  await page.locator('#ledger li', { hasText: /\+2,500 pts Top-up \d+ · balance 2,500 pts/ }).waitFor();
  await page.locator('.top-ups li', { hasText: 'CONFIRMED' }).locator('.badge', { hasText: 'SANDBOX' }).waitFor();
  assert.match(await text(page, '#sandbox-label'), /997,500 pts left today/);

  await page.getByRole('button', { name: 'Refund to card' }).click();
  await page.locator('#wallet-points', { hasText: '0 pts' }).waitFor();
  await page.locator('.top-ups li', { hasText: 'REFUNDED' }).waitFor();
  await page.locator('#ledger li', { hasText: /-2,500 pts Top-up \d+ refunded to the card/ }).waitFor();

  // Above the cap: the server's refusal, in words.
  await page.getByLabel('Points to add').fill('999000');
  await page.getByRole('button', { name: 'Top up (sandbox, free)' }).click();
  await page.locator('#wallet-msg [role="alert"]', { hasText: 'the sandbox gives at most 1000000 points per account per 24 hours; 997500 left' }).waitFor();

  const me = await ok(server, '{ me { points } }', {}, fan.accessToken);
  assert.equal(me.me.points, 0);
  p.assertClean();
  await p.context.close();
});
