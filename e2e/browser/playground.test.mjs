// GraphiQL at /playground, offline: every request that does not go to the server is
// aborted, and the playground still renders, runs a query with headers from its headers
// editor, and runs a subscription over graphql-transport-ws.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { launch } from '../lib/browser.mjs';
import { show, signUp, admin } from '../lib/api.mjs';
import { openPage, shot } from './support.mjs';

let server;
let browser;
before(async () => { server = await startServer(); browser = await launch(); });
after(async () => { await browser?.close(); await server?.stop(); });

/** Sets the text of the CodeMirror editor inside `selector` (GraphiQL 3 uses CodeMirror 5). */
async function setEditor(page, selector, value) {
  await page.evaluate(([sel, v]) => {
    const cm = document.querySelector(`${sel} .CodeMirror`);
    if (!cm) throw new Error(`no editor in ${sel}`);
    cm.CodeMirror.setValue(v);
  }, [selector, value]);
  // GraphiQL reads the operation name from the editor after a short debounce.
  await page.waitForTimeout(400);
}

const result = (page) => page.evaluate(() => document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue() ?? '');

test('the playground renders and runs a query, with headers and a subscription, offline', async () => {
  const s = await show(server);
  const fan = await signUp(server, 'graphiql');
  const p = await openPage(browser, server);
  const { page } = p;
  const aborted = [];
  await p.context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(server.url) || url.startsWith('data:')) return route.continue();
    aborted.push(url);
    return route.abort('internetdisconnected');
  });
  await page.goto(`${server.url}/playground`);
  await page.locator('.graphiql-container').waitFor();
  await page.locator('.graphiql-query-editor .CodeMirror').waitFor();

  // The default query lists concerts.
  await page.locator('.graphiql-execute-button').click();
  await page.waitForFunction(() => (document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue() ?? '').includes('"Night Show"'));

  // Headers from the headers editor reach the server.
  await setEditor(page, '.graphiql-query-editor', '{ me { email } }');
  await setEditor(page, '.graphiql-editor-tool .graphiql-editor:not(.hidden)', JSON.stringify({ Authorization: `Bearer ${fan.accessToken}` }));
  await page.locator('.graphiql-execute-button').click();
  await page.waitForFunction((email) => (document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue() ?? '').includes(email), fan.email);
  await shot(page, 'playground', false);

  // A subscription over the WebSocket: the first seatChanges event is the current version.
  await setEditor(page, '.graphiql-query-editor', `subscription { seatChanges(scheduleId: "${s.scheduleId}") { scheduleId version } }`);
  await page.locator('.graphiql-execute-button').click();
  await page.waitForFunction(() => (document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue() ?? '').includes('"version"'));
  assert.match(await result(page), new RegExp(`"scheduleId": "${s.scheduleId}"`));

  assert.deepEqual(aborted, [], 'the playground tried to reach another host');
  p.assertClean();
  await p.context.close();
});

test('every page carries a Content-Security-Policy that allows only its own origin', async () => {
  for (const path of ['/', '/schedules/1', '/host', '/admin', '/playground']) {
    const r = await fetch(`${server.url}${path}`);
    assert.equal(r.status, 200, path);
    const csp = r.headers.get('content-security-policy');
    assert.match(csp, /default-src 'self'/, path);
    assert.doesNotMatch(csp, /https?:|\*|unsafe/, path);
  }
});

test('the playground is signed in with the app\'s session, in the same tab and in another one', async () => {
  const boss = await admin(server);
  const p = await openPage(browser, server, { session: boss });
  const { page } = p;
  await page.goto(`${server.url}/admin`);
  await page.locator('#account .who').waitFor();

  // Another tab of the same browser: the open app page lends its session.
  const other = await p.context.newPage();
  await other.goto(`${server.url}/playground`);
  await other.locator('#session', { hasText: 'Signed in as' }).waitFor();
  await other.locator('.graphiql-query-editor .CodeMirror').waitFor();
  await setEditor(other, '.graphiql-query-editor', '{ me { email role } }');
  await other.locator('.graphiql-execute-button').click();
  await other.waitForFunction((email) => (document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue() ?? '').includes(email), boss.email);
  assert.match(await result(other), /"role": "ADMIN"/);
  await other.close();

  // The same tab, leaving the app for the playground: it resumes the tab's session, and
  // the app is still signed in when the user comes back.
  await page.getByRole('link', { name: 'Playground' }).first().click();
  await page.locator('#session', { hasText: 'Signed in as' }).waitFor();
  await page.locator('.graphiql-query-editor .CodeMirror').waitFor();
  await setEditor(page, '.graphiql-query-editor', '{ me { email } }');
  await page.locator('.graphiql-execute-button').click();
  await page.waitForFunction((email) => (document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue() ?? '').includes(email), boss.email);
  // A header of the user's own wins over the session.
  const fan = await signUp(server, 'ownheader');
  await setEditor(page, '.graphiql-editor-tool .graphiql-editor:not(.hidden)', JSON.stringify({ Authorization: `Bearer ${fan.accessToken}` }));
  await page.locator('.graphiql-execute-button').click();
  await page.waitForFunction((email) => (document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue() ?? '').includes(email), fan.email);
  await page.goBack();
  await page.locator('#account .who').waitFor();
  p.assertClean();
  await p.context.close();
});
