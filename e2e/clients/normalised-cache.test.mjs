// Normalised caches with no cache code (issue 21, finding 10): an app holds a seat page and
// its waiting list in Apollo InMemoryCache or urql graphcache, keeps the seatChanges and
// waitlistOffers subscriptions open and calls joinWaitlist / leaveWaitlist, and writes no
// update code, no type policies and no keys. After a sale, a cancel, a leave and a
// waiting-list offer, what it renders from the cache is what a fresh read returns, field
// by field. The one thing no cache can know by itself is that a LEFT entry leaves the
// `myWaitlist` list: it shows it as LEFT, and that is the only difference allowed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql as apolloGql } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { getMainDefinition } from '@apollo/client/utilities';
import { Client, fetchExchange, gql as urqlGql, subscriptionExchange } from '@urql/core';
import { cacheExchange } from '@urql/exchange-graphcache';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { startServer } from '../lib/server.mjs';
import { admin, ok, show, signUp } from '../lib/api.mjs';

let server;
before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

const SCHEDULE_FIELDS = 'id version bookedCount remainingSeats availability { grade total available held sold }';
const ENTRY_FIELDS = 'id status position count grade reservation { id status seatCount expiresAt }';
const PAGE = `query Page($s: ID!) { schedule(id: $s) { ${SCHEDULE_FIELDS} seats { id status } } }`;
const MINE = `query Mine { myWaitlist { ${ENTRY_FIELDS} } }`;
const SEATS = `subscription Seats($s: ID!) { seatChanges(scheduleId: $s) { version seats { id status } schedule { ${SCHEDULE_FIELDS} } } }`;
const OFFERS = `subscription Offers { waitlistOffers { entryId entry { ${ENTRY_FIELDS} } } }`;
const JOIN = `mutation Join($s: ID!, $n: Int!) { joinWaitlist(scheduleId: $s, count: $n) { ${ENTRY_FIELDS} } }`;
const LEAVE = `mutation Leave($s: ID!) { leaveWaitlist(scheduleId: $s) { ${ENTRY_FIELDS} } }`;

/** `data` without the `__typename` fields the caches add, as plain JSON. */
function plain(v) {
  return JSON.parse(JSON.stringify(v ?? null, (k, x) => (k === '__typename' ? undefined : x)));
}

function wsClient(token) {
  return createClient({
    url: server.wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${token}` },
    lazy: true,
  });
}

/** Apollo Client as an SPA sets it up: nothing but `new InMemoryCache()`. */
function apollo(token) {
  const ws = wsClient(token);
  const link = ApolloLink.split(
    ({ query }) => {
      const def = getMainDefinition(query);
      return def.kind === 'OperationDefinition' && def.operation === 'subscription';
    },
    new GraphQLWsLink(ws),
    new HttpLink({ uri: server.graphqlUrl, headers: { authorization: `Bearer ${token}` } }),
  );
  const client = new ApolloClient({ link, cache: new InMemoryCache() });
  const shown = {};
  const watches = [];
  const app = {
    name: 'Apollo InMemoryCache',
    shown,
    watch(key, query, variables) {
      const q = client.watchQuery({ query: apolloGql(query), variables });
      q.subscribe({ next: (r) => { if (r.data) shown[key] = plain(r.data); } });
      watches.push([key, q]);
    },
    async refetch(key) { await watches.find(([k]) => k === key)[1].refetch(); },
    listen(query, variables) {
      client.subscribe({ query: apolloGql(query), variables }).subscribe({ next() {}, error() {} });
    },
    async mutate(query, variables) {
      const r = await client.mutate({ mutation: apolloGql(query), variables });
      return plain(r.data);
    },
    async stop() { await ws.dispose(); client.stop(); },
  };
  return app;
}

/** urql with graphcache as its docs set it up, and no `keys`, `updates` or `resolvers`. */
function urql(token) {
  const ws = wsClient(token);
  const client = new Client({
    url: server.graphqlUrl,
    fetchOptions: () => ({ headers: { authorization: `Bearer ${token}` } }),
    exchanges: [
      // Types without an id (events, per-grade counts) are embedded in their parent; the
      // cache logs that, and it is what the schema means.
      cacheExchange({ logger: () => {} }),
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query || '' };
          return { subscribe: (sink) => ({ unsubscribe: ws.subscribe(input, sink) }) };
        },
      }),
    ],
  });
  const shown = {};
  const keep = [];
  const queries = {};
  return {
    name: 'urql graphcache',
    shown,
    watch(key, query, variables) {
      queries[key] = [urqlGql(query), variables];
      keep.push(client.query(urqlGql(query), variables).subscribe((r) => { if (r.data) shown[key] = plain(r.data); }));
    },
    async refetch(key) {
      const [q, v] = queries[key];
      await client.query(q, v, { requestPolicy: 'network-only' }).toPromise();
    },
    listen(query, variables) {
      keep.push(client.subscription(urqlGql(query), variables).subscribe(() => {}));
    },
    async mutate(query, variables) {
      const r = await client.mutation(urqlGql(query), variables).toPromise();
      if (r.error) throw r.error;
      return plain(r.data);
    },
    async stop() { keep.forEach((k) => k.unsubscribe()); await ws.dispose(); },
  };
}

/** Waits until what the app shows equals a fresh read, or fails with both. */
async function settles(app, me, scheduleId, step, { allowLeft = false } = {}) {
  const deadline = Date.now() + 8000;
  let last;
  for (;;) {
    const fresh = {
      page: plain(await ok(server, PAGE, { s: scheduleId }, me.accessToken)),
      mine: plain(await ok(server, MINE, {}, me.accessToken)),
    };
    let mine = app.shown.mine;
    if (allowLeft && mine) mine = { myWaitlist: mine.myWaitlist.filter((e) => e.status !== 'LEFT') };
    const cached = { page: app.shown.page, mine };
    last = { cached, fresh };
    if (JSON.stringify(cached) === JSON.stringify(fresh)) return;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(last.cached, last.fresh, `${app.name}: the cache differs from a fresh read after ${step}`);
}

async function until(check, what, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const RESERVE = 'mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }';
const PAY = 'mutation($r: ID!, $k: String!) { payReservation(reservationId: $r, idempotencyKey: $k) { id } }';
const CANCEL = 'mutation($r: ID!) { cancelReservation(reservationId: $r) { id } }';

for (const make of [apollo, urql]) {
  test(`${make.name}: every cached field follows a sale, a cancel, a leave and an offer`, async () => {
    const s = await show(server, { rows: 2, perRow: 4 });
    const me = await signUp(server);
    const other = await signUp(server);
    const third = await signUp(server);
    const boss = await admin(server);
    await ok(server, 'mutation($u: ID!) { adjustPoints(userId: $u, amount: 10000, reason: "test") { id } }', { u: other.id }, boss.accessToken);
    const seats = (from, n) => s.seatIds.slice(from, from + n);
    const reserve = async (who, ids) => (await ok(server, RESERVE, { i: { scheduleId: s.scheduleId, seatIds: ids } }, who.accessToken)).reserveSeats.id;

    const app = make(me.accessToken);
    try {
      app.watch('page', PAGE, { s: s.scheduleId });
      app.watch('mine', MINE, {});
      await until(() => app.shown.page && app.shown.mine, 'first reads');
      app.listen(SEATS, { s: s.scheduleId });
      app.listen(OFFERS, {});
      // Both subscriptions are live once a seat event has come (the first is the state).
      await new Promise((r) => setTimeout(r, 500));

      // A sale: another fan holds four seats and pays.
      const sold = await reserve(other, seats(0, 4));
      await ok(server, PAY, { r: sold, k: 'pay-1' }, other.accessToken);
      await settles(app, me, s.scheduleId, 'a sale');
      assert.equal(app.shown.page.schedule.remainingSeats, 4);

      // A cancel: the paid reservation is refunded and its seats come back.
      await ok(server, CANCEL, { r: sold }, other.accessToken);
      await settles(app, me, s.scheduleId, 'a cancel');
      assert.equal(app.shown.page.schedule.remainingSeats, 8);

      // Sold out: the app's fan joins the waiting list, then leaves it.
      const held = await reserve(other, seats(0, 4));
      await reserve(third, seats(4, 4));
      await app.mutate(JOIN, { s: s.scheduleId, n: 2 });
      await app.refetch('mine');
      await settles(app, me, s.scheduleId, 'joining the waiting list');
      const left = await app.mutate(LEAVE, { s: s.scheduleId });
      assert.equal(left.leaveWaitlist.status, 'LEFT');
      await settles(app, me, s.scheduleId, 'a leave', { allowLeft: true });
      assert.deepEqual(app.shown.mine.myWaitlist.map((e) => e.status), ['LEFT'], 'the cached entry is LEFT');

      // A waiting-list offer: in line again, seats come back, two are held for the fan.
      await app.mutate(JOIN, { s: s.scheduleId, n: 2 });
      await app.refetch('mine');
      await ok(server, CANCEL, { r: held }, other.accessToken);
      await until(() => app.shown.mine.myWaitlist.some((e) => e.status === 'OFFERED'), 'the offer reaches the cache');
      await settles(app, me, s.scheduleId, 'a waiting-list offer', { allowLeft: true });
      const offered = app.shown.mine.myWaitlist.find((e) => e.status === 'OFFERED');
      assert.equal(offered.reservation.status, 'HELD');
      assert.equal(app.shown.page.schedule.availability.reduce((n, g) => n + g.held, 0), 6);
    } finally {
      await app.stop();
    }
  });
}
