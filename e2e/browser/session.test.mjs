// The session in the browser: the access token is renewed before it expires, a reload
// resumes the tab's session from sessionStorage, and logging out ends it on the server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { launch } from '../lib/browser.mjs';
import { gql, logIn, signUp } from '../lib/api.mjs';
import { openPage } from './support.mjs';

let server;
let browser;
// Access tokens of 62 s: the app renews them a minute early, i.e. after a few seconds.
before(async () => { server = await startServer({ ACCESS_TOKEN_TTL_SECONDS: '62' }); browser = await launch(); });
after(async () => { await browser?.close(); await server?.stop(); });

const stored = (page) => page.evaluate(() => sessionStorage.getItem('boxoffice.refreshToken'));

test('log in, refresh before expiry, resume after a reload, log out', async () => {
  const fan = await signUp(server, 'session');
  const p = await openPage(browser, server);
  const { page } = p;
  await page.goto(`${server.url}/`);
  await page.getByRole('button', { name: 'Log in / Sign up' }).click();
  await page.getByLabel('Email').fill(fan.email);
  await page.getByLabel('Password').fill('correct horse battery 9');
  await page.getByRole('button', { name: 'Log in', exact: true }).click();
  await page.locator('#account .who', { hasText: 'session' }).waitFor();
  const first = await stored(page);
  assert.match(first, /^rt_/);
  // Nothing about the session in localStorage or cookies.
  assert.equal(await page.evaluate(() => localStorage.length), 0);
  assert.deepEqual(await p.context.cookies(), []);

  // Renewed before expiry: a new refresh token replaces the old one, which is now spent.
  await page.waitForFunction((old) => {
    const now = sessionStorage.getItem('boxoffice.refreshToken');
    return now && now !== old;
  }, first, { timeout: 15_000 });
  const second = await stored(page);

  // A reload resumes the session with the stored token (and rotates it again).
  await page.reload();
  await page.locator('#account .who', { hasText: 'session' }).waitFor();
  const third = await stored(page);
  assert.notEqual(third, second);

  // Log out: the token is gone from the tab and refused by the server.
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('button', { name: 'Log in / Sign up' }).waitFor();
  assert.equal(await stored(page), null);
  const reuse = await gql(server, 'mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }', { t: third });
  assert.equal(reuse.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
  p.assertClean();
  await p.context.close();
});

test('a wrong password gets a clear message', async () => {
  const fan = await signUp(server, 'wrongpw');
  const p = await openPage(browser, server);
  const { page } = p;
  await page.goto(`${server.url}/`);
  await page.getByRole('button', { name: 'Log in / Sign up' }).click();
  await page.getByLabel('Email').fill(fan.email);
  await page.getByLabel('Password').fill('not the password 1');
  await page.getByRole('button', { name: 'Log in', exact: true }).click();
  await page.getByRole('alert').filter({ hasText: 'Wrong email or password.' }).waitFor();
  await logIn(server, fan.email); // the account itself is fine
  p.assertClean();
  await p.context.close();
});
