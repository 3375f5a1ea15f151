// A single-page app on another origin, in headless Chromium: its origin is listed in
// CORS_ALLOWED_ORIGINS, so fetch (with the preflight a bearer token causes) and the
// WebSocket work; a page on an unlisted origin is refused both.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startServer } from '../lib/server.mjs';
import { signUp } from '../lib/api.mjs';
import { launch } from '../lib/browser.mjs';

/** A static page server on a free port: another origin than the API's. */
async function site() {
  const srv = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>spa</title><p>spa</p>');
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return { origin: `http://127.0.0.1:${srv.address().port}`, close: () => new Promise((r) => srv.close(r)) };
}

let server; let allowed; let unlisted; let browser;
before(async () => {
  allowed = await site();
  unlisted = await site();
  server = await startServer({ CORS_ALLOWED_ORIGINS: `http://localhost:5173,${allowed.origin}` });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.stop();
  await allowed?.close();
  await unlisted?.close();
});

/** In a page of `origin`: a GraphQL POST with a bearer token, and a WebSocket. */
async function fromPage(origin, token) {
  const page = await browser.newPage();
  try {
    await page.goto(`${origin}/`);
    return await page.evaluate(async ({ url, wsUrl, token }) => {
      const out = {};
      try {
        const r = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify({ query: '{ me { email } }' }),
        });
        out.fetch = await r.json();
      } catch (e) {
        out.fetch = { failed: String(e) };
      }
      out.ws = await new Promise((resolve) => {
        const ws = new WebSocket(wsUrl, 'graphql-transport-ws');
        ws.onopen = () => ws.send(JSON.stringify({ type: 'connection_init', payload: { Authorization: `Bearer ${token}` } }));
        ws.onmessage = (m) => { resolve(JSON.parse(m.data).type); ws.close(); };
        ws.onerror = () => resolve('error');
        setTimeout(() => resolve('timeout'), 5000);
      });
      return out;
    }, { url: server.graphqlUrl, wsUrl: server.wsUrl, token });
  } finally {
    await page.close();
  }
}

test('an SPA on a listed origin calls the API over fetch and WebSocket', async () => {
  const fan = await signUp(server);
  const out = await fromPage(allowed.origin, fan.accessToken);
  assert.equal(out.fetch.data?.me?.email, fan.email, JSON.stringify(out.fetch));
  assert.equal(out.ws, 'connection_ack');
});

test('a page on an unlisted origin is refused', async () => {
  const fan = await signUp(server);
  const out = await fromPage(unlisted.origin, fan.accessToken);
  assert.match(out.fetch.failed ?? '', /Failed to fetch/, JSON.stringify(out.fetch));
  assert.equal(out.ws, 'error');
});

test('the preflight answers what GraphQL clients send, and no credentials', async () => {
  const r = await fetch(server.graphqlUrl, {
    method: 'OPTIONS',
    headers: {
      origin: allowed.origin,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'authorization,content-type,apollographql-client-name,apollographql-client-version,apollo-require-preflight',
    },
  });
  assert.ok(r.status === 200 || r.status === 204, `status ${r.status}`);
  assert.equal(r.headers.get('access-control-allow-origin'), allowed.origin);
  const headers = r.headers.get('access-control-allow-headers').toLowerCase();
  for (const h of ['authorization', 'content-type', 'apollographql-client-name', 'apollo-require-preflight']) {
    assert.ok(headers.includes(h), `${h} in ${headers}`);
  }
  assert.match(r.headers.get('access-control-allow-methods'), /POST/);
  assert.equal(r.headers.get('access-control-allow-credentials'), null);

  const other = await fetch(server.graphqlUrl, {
    method: 'OPTIONS',
    headers: { origin: unlisted.origin, 'access-control-request-method': 'POST' },
  });
  assert.equal(other.headers.get('access-control-allow-origin'), null);
});
