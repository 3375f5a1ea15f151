// Apollo Client 4 as a single-page app uses it: InMemoryCache, queries over HTTP,
// subscriptions over graphql-ws (GraphQLWsLink), automatic persisted queries. The point
// is what the app does NOT write: no cache update code for live events.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { getMainDefinition } from '@apollo/client/utilities';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { startServer } from '../lib/server.mjs';
import { ok, show, signUp } from '../lib/api.mjs';

let server;
before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

/** An SPA's client: HTTP for queries and mutations, graphql-ws for subscriptions. */
function spaClient(token, { fetch: fetchFn = fetch, persisted = false } = {}) {
  const ws = createClient({
    url: server.wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: token ? { Authorization: `Bearer ${token}` } : {},
    lazy: true,
  });
  let http = new HttpLink({
    uri: server.graphqlUrl,
    headers: token ? { authorization: `Bearer ${token}` } : {},
    fetch: fetchFn,
  });
  if (persisted) {
    const sha256 = (q) => createHash('sha256').update(q).digest('hex');
    http = new PersistedQueryLink({ sha256, useGETForHashedQueries: true }).concat(http);
  }
  const link = ApolloLink.split(
    ({ query }) => {
      const def = getMainDefinition(query);
      return def.kind === 'OperationDefinition' && def.operation === 'subscription';
    },
    new GraphQLWsLink(ws),
    http,
  );
  const client = new ApolloClient({ link, cache: new InMemoryCache() });
  return { client, ws };
}

/** Resolves with the first value of `observable` that passes `pred`, within `ms`. */
function until(observable, pred, ms = 5000) {
  return new Promise((resolve, reject) => {
    const seen = [];
    // Unsubscribing inside `next` would tear the query down while Apollo delivers: later.
    const stop = () => setTimeout(() => sub.unsubscribe(), 0);
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`nothing matched in ${ms} ms; saw ${JSON.stringify(seen)}`));
    }, ms);
    const sub = observable.subscribe({
      next(v) {
        seen.push(v.data);
        if (pred(v)) { clearTimeout(timer); stop(); resolve(v); }
      },
      error(e) { clearTimeout(timer); reject(e); },
    });
  });
}

const SEAT_MAP = gql`
  query SeatMap($s: ID!) { schedule(id: $s) { id version seats { id section row number status } } }`;
const SEAT_CHANGES = gql`
  subscription SeatChanges($s: ID!) { seatChanges(scheduleId: $s) { version seats { id status } } }`;

test('a seat held by another fan updates the cached seat map by itself', async () => {
  const s = await show(server);
  const me = await signUp(server);
  const other = await signUp(server);
  const { client, ws } = spaClient(me.accessToken);
  try {
    const watched = client.watchQuery({ query: SEAT_MAP, variables: { s: s.scheduleId } });
    const first = await until(watched, (r) => r.data?.schedule);
    const target = s.seatIds[5];
    assert.equal(first.data.schedule.seats.find((x) => x.id === target).status, 'AVAILABLE');

    // Live events, and no update code: the app only keeps the subscription open.
    const events = [];
    const live = client.subscribe({ query: SEAT_CHANGES, variables: { s: s.scheduleId } })
      .subscribe({ next: (e) => events.push(e.data) });
    const heldInCache = until(watched, (r) =>
      r.data?.schedule?.seats.find((x) => x.id === target)?.status === 'HELD');
    // Wait for the first event (the subscription is live) before another fan acts.
    for (let i = 0; i < 50 && events.length === 0; i += 1) await new Promise((r) => setTimeout(r, 100));
    assert.ok(events.length > 0, 'the first seatChanges event arrived');

    await ok(server, 'mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }',
      { i: { scheduleId: s.scheduleId, seatIds: [target] } }, other.accessToken);
    const updated = await heldInCache;
    const seat = updated.data.schedule.seats.find((x) => x.id === target);
    assert.equal(seat.status, 'HELD');
    assert.equal(seat.section, 'Floor', 'the rest of the seat is still the map\'s');
    const cached = client.readQuery({ query: SEAT_MAP, variables: { s: s.scheduleId } });
    assert.equal(cached.schedule.seats.filter((x) => x.status === 'HELD').length, 1);
    live.unsubscribe();
  } finally {
    await ws.dispose();
    client.stop();
  }
});

test('an order placed by mutation is followed in the cache by its subscription', async () => {
  const s = await show(server);
  const me = await signUp(server);
  const { client, ws } = spaClient(me.accessToken);
  try {
    const placed = await client.mutate({
      mutation: gql`mutation Place($i: ReserveSeatsInput!) { placeOrder(input: $i) { jobId order { id status } } }`,
      variables: { i: { scheduleId: s.scheduleId, seatIds: [s.seatIds[0]] } },
    });
    const jobId = placed.data.placeOrder.jobId;
    const ORDER = gql`query Order($j: String!) { order(jobId: $j) { id status errorCode } }`;
    // The mutation's answer is already in the cache under OrderResult:<jobId>.
    const watched = client.watchQuery({ query: ORDER, variables: { j: jobId }, fetchPolicy: 'cache-first' });
    const done = until(watched, (r) => r.data?.order?.status === 'DONE');
    client.subscribe({
      query: gql`subscription Follow($j: String!) { orderResult(jobId: $j) { id status errorCode } }`,
      variables: { j: jobId },
    }).subscribe({});
    const final = await done;
    assert.equal(final.data.order.id, jobId);
  } finally {
    await ws.dispose();
    client.stop();
  }
});

test('automatic persisted queries: a known hash is enough, by GET', async () => {
  const s = await show(server);
  const requests = [];
  const recording = (url, init) => {
    const u = new URL(url);
    requests.push({ method: init?.method ?? 'GET', hasQuery: u.searchParams.has('query') || /"query"/.test(init?.body ?? '') });
    return fetch(url, init);
  };
  const query = gql`query Capacity($s: ID!) { schedule(id: $s) { id capacity } }`;
  const a = spaClient(null, { fetch: recording, persisted: true });
  const first = await a.client.query({ query, variables: { s: s.scheduleId } });
  assert.equal(first.data.schedule.capacity, 40);
  // The server did not know the hash: one miss, then the query with its hash.
  assert.deepEqual(requests.map((r) => r.hasQuery), [false, true]);
  a.client.stop();

  // A second app (a new page load) sends only the hash, by GET, and is answered.
  requests.length = 0;
  const b = spaClient(null, { fetch: recording, persisted: true });
  const second = await b.client.query({ query, variables: { s: s.scheduleId } });
  assert.equal(second.data.schedule.capacity, 40);
  assert.deepEqual(requests, [{ method: 'GET', hasQuery: false }]);
  b.client.stop();
});
