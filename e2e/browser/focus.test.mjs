// Keyboard and screen-reader users: the log-in dialog shows only its own fields and tabs
// through them in order, and the focus stays where the user is after logging in and after
// holding seats (it used to fall back to the top of the page).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { launch } from '../lib/browser.mjs';
import { show, signUp, PASSWORD } from '../lib/api.mjs';
import { openPage } from './support.mjs';

let server;
let browser;
before(async () => { server = await startServer(); browser = await launch(); });
after(async () => { await browser?.close(); await server?.stop(); });

/** What has the focus: "tag#id.class" and its accessible text, or "body". */
const focused = (page) => page.evaluate(() => {
  const a = document.activeElement;
  if (!a || a === document.body) return 'body';
  return `${a.tagName.toLowerCase()}${a.id ? `#${a.id}` : ''}${a.name ? `[${a.name}]` : ''} ${(a.closest('#account') ? 'in-account ' : '')}${a.textContent.trim().slice(0, 30)}`;
});

for (const [name, viewport] of [['desktop', { width: 1280, height: 900 }], ['phone', { width: 390, height: 844 }]]) {
  test(`${name}: the log-in dialog has only its fields, in order, and log-in keeps the focus in the account area`, async () => {
    const fan = await signUp(server, 'dialog');
    const p = await openPage(browser, server, { viewport });
    const { page } = p;
    await page.goto(`${server.url}/`);
    await page.getByRole('button', { name: 'Log in / Sign up' }).click();
    const dialog = page.locator('dialog.account-dialog');
    await dialog.waitFor();
    assert.equal(await dialog.getByLabel('Display name').isVisible(), false, 'Display name shows in the log-in dialog');
    assert.match(await focused(page), /^input#\w+\[email\]/);
    await page.keyboard.type(fan.email);
    await page.keyboard.press('Tab');
    assert.match(await focused(page), /\[password\]/, 'Tab from Email did not reach Password');
    // Signing up needs the name: it shows, between email and password.
    await dialog.getByRole('button', { name: 'New here? Sign up' }).click();
    assert.equal(await dialog.getByLabel('Display name').isVisible(), true);
    await dialog.getByLabel('Email').focus();
    await page.keyboard.press('Tab');
    assert.match(await focused(page), /\[displayName\]/);
    await dialog.getByRole('button', { name: 'Have an account? Log in' }).click();

    await dialog.getByLabel('Password').fill(PASSWORD);
    await dialog.getByLabel('Password').press('Enter');
    await page.locator('#account .who').waitFor();
    await page.waitForFunction(() => document.activeElement !== document.body);
    assert.match(await focused(page), /in-account/);
    p.assertClean();
    await p.context.close();
  });
}

test('after Hold the focus is on the hold, also when Hold first asked to log in', async () => {
  const s = await show(server, { rows: 2, perRow: 10 });
  const fan = await signUp(server, 'keys');
  const p = await openPage(browser, server);
  const { page } = p;
  await page.goto(`${server.url}/schedules/${s.scheduleId}`);
  await page.waitForFunction(() => /live · v\d+/.test(document.querySelector('.live')?.textContent || ''));
  await page.locator('canvas.seatmap').focus();
  await page.keyboard.press('Enter');
  const holdBtn = page.getByRole('button', { name: /Hold 1 seat/ });
  await holdBtn.focus();
  await page.keyboard.press('Enter');
  // Not signed in: the dialog asks first; after it the hold goes on.
  const dialog = page.locator('dialog.account-dialog');
  await dialog.waitFor();
  await page.keyboard.type(fan.email);
  await page.keyboard.press('Tab');
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press('Enter');
  await page.locator('#hold-title', { hasText: 'Your hold' }).waitFor();
  await page.waitForFunction(() => document.activeElement?.id === 'hold-title', null, { timeout: 5000 })
    .catch(async () => assert.fail(`focus after Hold: ${await focused(page)}`));
  // Tab goes on to the hold's own buttons, not to the top of the page.
  await page.keyboard.press('Tab');
  assert.match(await focused(page), /^button#pay/);

  // A second hold by keyboard, signed in: the focus lands on the new hold again.
  await page.getByRole('button', { name: 'Release the seats' }).click();
  await page.locator('.toast .msg', { hasText: 'Seats released.' }).waitFor();
  await page.locator('canvas.seatmap').focus();
  await page.keyboard.press('ArrowRight');
  await page.keyboard.press('Enter');
  await page.getByRole('button', { name: /Hold 1 seat/ }).focus();
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.activeElement?.id === 'hold-title' && /Your hold/.test(document.activeElement.textContent), null, { timeout: 5000 })
    .catch(async () => assert.fail(`focus after the second Hold: ${await focused(page)}`));
  p.assertClean();
  await p.context.close();
});
