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
  // The page's first list may show the account before the search answers and replaces
  // the rows (with a fresh select and fields): wait for the search's own rows.
  await page.locator('table.users[aria-busy="false"]').waitFor();
  const row = page.locator(`tr[data-user="${user.id}"]`);
  await row.waitFor();
  // A token refresh (every few minutes in real life) keeps the page as it is: the search,
  // its results and what is being typed. It used to rebuild the page.
  const typed = await row.getByLabel('Reason', { exact: true });
  await typed.fill('half typed');
  const refreshed = await page.evaluate(async () => {
    const app = document.querySelector('script[type=module]').src;
    const auth = await import(app.replace(/app\.js$/, 'auth.js'));
    const before = auth.accessToken();
    return (await auth.refresh()) && auth.accessToken() !== before;
  });
  assert.ok(refreshed, 'the session was refreshed');
  assert.equal(await typed.inputValue(), 'half typed');
  assert.equal(await page.getByRole('searchbox', { name: 'Search accounts' }).inputValue(), user.email);
  await typed.fill('');

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

  // Names, not ids: who acted and on whom.
  const first = page.locator('table.audit tbody tr').first();
  assert.match(await first.locator("td.who").innerText(), new RegExp(`^admin\\w+ <${boss.email}>$`));
  assert.match(await first.locator('td.target').innerText(), new RegExp(`^account: promoted <${user.email}>$`));
  // Filters: by action, by target (a click on its name), by who, by time.
  const audit = page.locator('form.audit-filter');
  await audit.getByLabel('Action').fill('set_user_role');
  await audit.getByRole('button', { name: 'Filter' }).click();
  await page.waitForFunction(() => [...document.querySelectorAll('table.audit tbody tr')].every((r) => r.textContent.includes('set_user_role')));
  assert.equal(await page.locator('table.audit tbody tr').count(), 1);
  await audit.getByRole('button', { name: 'Clear' }).click();
  await page.locator('table.audit tbody tr').nth(1).waitFor();
  await audit.getByLabel('Who').fill('nobody-at-all');
  await audit.getByRole('button', { name: 'Filter' }).click();
  await page.locator('table.audit td', { hasText: 'No entries match.' }).waitFor();
  await audit.getByRole('button', { name: 'Clear' }).click();
  await page.locator('table.audit tbody tr td.target').first().waitFor();
  await audit.getByLabel('From').fill('2000-01-01T00:00');
  await audit.getByLabel('Until').fill('2000-01-02T00:00');
  await audit.getByRole('button', { name: 'Filter' }).click();
  await page.locator('table.audit td', { hasText: 'No entries match.' }).waitFor();
  await audit.getByRole('button', { name: 'Clear' }).click();
  await page.locator('table.audit tbody tr td.target button').first().click();
  await page.waitForFunction(() => document.querySelector('form.audit-filter [name=targetId]')?.value !== '');
  await page.waitForFunction(() => document.querySelectorAll('table.audit tbody tr').length === 2);

  const check = await ok(server, 'query($q: String) { users(search: $q, first: 1) { nodes { role points } } }', { q: user.email }, boss.accessToken);
  assert.deepEqual(check.users.nodes[0], { role: 'HOST', points: 500 });
  p.assertClean();
  await p.context.close();
});
