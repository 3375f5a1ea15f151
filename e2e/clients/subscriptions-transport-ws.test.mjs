// The legacy protocol (subscriptions-transport-ws 0.11, subprotocol `graphql-ws`), still
// used by older Apollo apps and tools: authentication in connection params, live events.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import WebSocket from 'ws';
import { startServer } from '../lib/server.mjs';
import { ok, show, signUp } from '../lib/api.mjs';

const require = createRequire(import.meta.url);
const { SubscriptionClient } = require('subscriptions-transport-ws');

let server;
before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

function next(observable) {
  const queue = [];
  const waiters = [];
  const sub = observable.subscribe({
    next: (v) => (waiters.length ? waiters.shift()(v) : queue.push(v)),
    error: (e) => { const v = { error: e }; return waiters.length ? waiters.shift()(v) : queue.push(v); },
  });
  return {
    take: (ms = 5000) => new Promise((resolve, reject) => {
      if (queue.length) return resolve(queue.shift());
      const t = setTimeout(() => reject(new Error(`no event in ${ms} ms`)), ms);
      waiters.push((v) => { clearTimeout(t); resolve(v); });
    }),
    close: () => sub.unsubscribe(),
  };
}

test('seat changes arrive over the legacy protocol', async () => {
  const s = await show(server);
  const me = await signUp(server);
  const other = await signUp(server);
  const client = new SubscriptionClient(server.wsUrl, {
    connectionParams: { Authorization: `Bearer ${me.accessToken}` },
    reconnect: false,
  }, WebSocket);
  try {
    const events = next(client.request({
      query: 'subscription($s: ID!) { seatChanges(scheduleId: $s) { version seats { __typename id status } } }',
      variables: { s: s.scheduleId },
    }));
    const first = await events.take();
    assert.deepEqual(first.data.seatChanges.seats, []);
    await ok(server, 'mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }',
      { i: { scheduleId: s.scheduleId, seatIds: [s.seatIds[2]] } }, other.accessToken);
    const change = await events.take();
    assert.deepEqual(change.data.seatChanges.seats, [{ __typename: 'Seat', id: s.seatIds[2], status: 'HELD' }]);
    events.close();
  } finally {
    client.close();
  }
});

test('an operation error over the legacy protocol carries its code', async () => {
  const client = new SubscriptionClient(server.wsUrl, { reconnect: false }, WebSocket);
  try {
    const events = next(client.request({ query: 'subscription { seatChanges(scheduleId: "1") { version ' }));
    const res = await events.take();
    const errors = res.error ? [res.error].flat() : res.errors;
    assert.equal(errors[0].extensions?.code, 'GRAPHQL_PARSE_FAILED', JSON.stringify(res));
  } finally {
    client.close();
  }
});
