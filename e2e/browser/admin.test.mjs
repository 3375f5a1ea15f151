// The admin page in headless Chromium: find an account, change its role, adjust its
// points with a reason, and see both in the audit log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { launch } from '../lib/browser.mjs';
import { ok, admin, signUp } from '../lib/api.mjs';
import { openPage, shot } from './support.mjs';

let server;
let browser;
before(async () => { server = await startServer(); browser = await launch(); });
after(async () => { await browser?.close(); await server?.stop(); });

test('an admin changes a role and adjusts points, and the audit log shows both', async () => {
  const boss = await admin(server);
  const user = await signUp(server, 'promoted');
  const p = await openPage(browser, server, { session: boss });
  const { page } = p;
  await page.goto(`${server.url}/admin`);
  await page.getByRole('searchbox', { name: 'Search accounts' }).fill(user.email);
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  const row = page.locator(`tr[data-user="${user.id}"]`);
  await row.waitFor();
  await row.getByLabel(`Role of ${user.email}`).selectOption('HOST');
  await row.getByRole('button', { name: 'Set role' }).click();
  await page.locator('.toast .msg', { hasText: `${user.email} is now HOST.` }).waitFor();

  await row.getByLabel('Amount', { exact: true }).fill('500');
  await row.getByLabel('Reason', { exact: true }).fill('welcome bonus');
  await row.getByRole('button', { name: 'Adjust' }).click();
  await row.locator('td.points', { hasText: '500 pts' }).waitFor();
  await page.locator('table.audit code', { hasText: 'adjust_points' }).first().waitFor();
  await page.locator('table.audit code', { hasText: 'set_user_role' }).first().waitFor();
  await shot(page, 'admin');

  const check = await ok(server, 'query($q: String) { users(search: $q, first: 1) { nodes { role points } } }', { q: user.email }, boss.accessToken);
  assert.deepEqual(check.users.nodes[0], { role: 'HOST', points: 500 });
  p.assertClean();
  await p.context.close();
});
