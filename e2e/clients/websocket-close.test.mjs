// A client's goodbye is answered (issue 21, finding 9). Before, the server dropped the
// connection on a close frame or a legacy `connection_terminate`, and Node's `ws` (like
// browsers) reported 1006, "abnormal closure", after its close timeout. Now a close frame
// comes back with the client's own code, on both subprotocols, and `connection_terminate`
// ends in a 1000 close: through raw `ws`, graphql-ws's client and subscriptions-transport-ws.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';
import { startServer } from '../lib/server.mjs';

const require = createRequire(import.meta.url);
const { SubscriptionClient } = require('subscriptions-transport-ws');

let server;
before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

/** Opens a socket of `protocol` and waits for the ack of an anonymous connection_init. */
async function acked(protocol) {
  const ws = new WebSocket(server.wsUrl, protocol);
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  ws.send(JSON.stringify({ type: 'connection_init', payload: {} }));
  await new Promise((resolve, reject) => {
    ws.on('message', (m) => { if (JSON.parse(m.toString()).type === 'connection_ack') resolve(); });
    ws.once('close', (code) => reject(new Error(`closed ${code} before the ack`)));
  });
  return ws;
}

/** The close event's code, within `ms` (Node's own timeout for an unanswered close is 30 s). */
function closed(ws, ms = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no close within ${ms} ms`)), ms);
    ws.once('close', (code) => { clearTimeout(t); resolve(code); });
  });
}

for (const protocol of ['graphql-transport-ws', 'graphql-ws']) {
  test(`${protocol}: close(1000) and close(4000) come back with the same code`, async () => {
    for (const code of [1000, 4000]) {
      const ws = await acked(protocol);
      const started = Date.now();
      const end = closed(ws);
      ws.close(code, 'bye');
      assert.equal(await end, code);
      assert.ok(Date.now() - started < 2000, 'answered, not timed out');
    }
  });
}

test('graphql-ws legacy connection_terminate ends in a normal close (1000)', async () => {
  const ws = await acked('graphql-ws');
  const end = closed(ws);
  ws.send(JSON.stringify({ type: 'connection_terminate' }));
  assert.equal(await end, 1000);
});

test("graphql-ws's client disposes with a clean close", async () => {
  let code;
  const client = createClient({
    url: server.wsUrl,
    webSocketImpl: WebSocket,
    lazy: false,
    retryAttempts: 0,
    on: { closed: (event) => { code = event.code; } },
  });
  await new Promise((resolve, reject) => {
    const off = client.on('connected', () => { off(); resolve(); });
    setTimeout(() => reject(new Error('not connected')), 5000);
  });
  const done = new Promise((resolve) => client.on('closed', resolve));
  await client.dispose();
  await done;
  assert.equal(code, 1000);
});

test("subscriptions-transport-ws's close() does not end as 1006", async () => {
  const client = new SubscriptionClient(server.wsUrl, { reconnect: false }, WebSocket);
  await new Promise((resolve, reject) => {
    client.onConnected(resolve);
    setTimeout(() => reject(new Error('not connected')), 5000);
  });
  const end = closed(client.client);
  client.close();
  const code = await end;
  assert.notEqual(code, 1006);
  assert.ok([1000, 1005].includes(code), `closed with ${code}`);
});
