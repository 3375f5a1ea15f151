// urql 5 with the normalised graphcache and graphql-ws subscriptions: a watched seat map
// follows live events with no update code, and the entity types need no key config.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client, fetchExchange, gql, subscriptionExchange } from '@urql/core';
import { cacheExchange } from '@urql/exchange-graphcache';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { startServer } from '../lib/server.mjs';
import { ok, show, signUp } from '../lib/api.mjs';

let server;
before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

function urql(token, warnings) {
  const ws = createClient({
    url: server.wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${token}` },
    lazy: true,
  });
  const cache = cacheExchange({
    // What the schema documents as keyless: an event is a value, not an entity.
    keys: { SeatChangeEvent: () => null },
    logger: (level, message) => { if (level !== 'debug') warnings.push(message); },
  });
  const client = new Client({
    url: server.graphqlUrl,
    fetchOptions: () => ({ headers: { authorization: `Bearer ${token}` } }),
    exchanges: [
      cache,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query || '' };
          return { subscribe: (sink) => ({ unsubscribe: ws.subscribe(input, sink) }) };
        },
      }),
    ],
  });
  return { client, ws };
}

async function eventually(check, ms = 5000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('graphcache updates a watched seat map from seatChanges', async () => {
  const s = await show(server);
  const me = await signUp(server);
  const other = await signUp(server);
  const warnings = [];
  const { client, ws } = urql(me.accessToken, warnings);
  try {
    const results = [];
    const watched = client
      .query(gql`query SeatMap($s: ID!) { schedule(id: $s) { id version seats { id row number status } } }`, { s: s.scheduleId })
      .subscribe((r) => results.push(r));
    await eventually(() => results.at(-1)?.data?.schedule);
    const events = [];
    const live = client
      .subscription(gql`subscription Live($s: ID!) { seatChanges(scheduleId: $s) { version seats { id status } } }`, { s: s.scheduleId })
      .subscribe((e) => events.push(e));
    await eventually(() => events.length > 0);

    const target = s.seatIds[7];
    await ok(server, 'mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }',
      { i: { scheduleId: s.scheduleId, seatIds: [target] } }, other.accessToken);
    const seat = await eventually(() => {
      const found = results.at(-1)?.data?.schedule?.seats.find((x) => x.id === target);
      return found?.status === 'HELD' ? found : null;
    });
    assert.equal(seat.row, 'R1');
    assert.equal(results.at(-1).error, undefined);
    assert.deepEqual(warnings.filter((w) => /Seat\b|Schedule/.test(w)), [], 'Seat and Schedule are keyed by id');
    live.unsubscribe();
    watched.unsubscribe();
  } finally {
    await ws.dispose();
  }
});

test('a queue ticket from the mutation and from the query is one cache entity', async () => {
  const s = await show(server, {
    schedule: { queueEnabled: true, salesOpenAt: new Date(Date.now() + 3_600_000).toISOString() },
  });
  const me = await signUp(server);
  const warnings = [];
  const { client, ws } = urql(me.accessToken, warnings);
  try {
    const entered = await client
      .mutation(gql`mutation Enter($s: ID!) { enterQueue(scheduleId: $s) { id state etaSeconds } }`, { s: s.scheduleId })
      .toPromise();
    assert.equal(entered.error, undefined);
    const polled = await client
      .query(gql`query Place($s: ID!) { queueStatus(scheduleId: $s) { id state } }`, { s: s.scheduleId }, { requestPolicy: 'network-only' })
      .toPromise();
    assert.equal(polled.data.queueStatus.id, entered.data.enterQueue.id);
    assert.deepEqual(warnings.filter((w) => /QueueTicket/.test(w)), []);
  } finally {
    await ws.dispose();
  }
});
